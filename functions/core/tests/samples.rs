//! Every sample payload in `events/` is signed, verified and normalized, and the canonical events
//! must equal the checked-in expectation in `events/<provider>/expected/<name>.json`.
//!
//! After a deliberate change to normalization, regenerate the expectations with
//! `TIDINGS_BLESS=1 cargo test -p tidings-core --test samples` and review the diff.

mod common;

use serde_json::{Value, json};

fn rendered(sample: &common::Sample) -> String {
    let value = match common::run_sample(sample) {
        Ok(normalized) => json!({
            "events": normalized.events.iter().map(|e| serde_json::to_value(&e.event).unwrap()).collect::<Vec<Value>>(),
            "notices": normalized.notices.iter().map(|n| n.to_string()).collect::<Vec<String>>(),
        }),
        Err(error) => json!({"error": error.to_string(), "status": error.status()}),
    };
    let mut text = serde_json::to_string_pretty(&tidings_core::serde_util::sorted_keys(value)).unwrap();
    text.push('\n');
    text
}

#[test]
fn every_sample_normalizes_to_its_checked_in_canonical_events() {
    let bless = std::env::var_os("TIDINGS_BLESS").is_some();
    let samples = common::samples();
    assert!(samples.len() > 150, "expected the full sample corpus, found {}", samples.len());
    let mut mismatches = Vec::new();
    for sample in &samples {
        let actual = rendered(sample);
        let expected_path = sample.path.parent().unwrap().join("expected").join(format!("{}.json", sample.name));
        if bless {
            std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => mismatches.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                sample.path.display(),
                expected_path.display()
            )),
            Err(_) => {
                mismatches.push(format!("{}: no expectation at {}", sample.path.display(), expected_path.display()))
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} samples differ:\n{}",
        mismatches.len(),
        samples.len(),
        mismatches.join("\n")
    );
}

#[test]
fn no_sample_is_rejected() {
    for sample in common::samples() {
        if let Err(error) = common::run_sample(&sample) {
            panic!("{}: rejected: {error}", sample.path.display());
        }
    }
}

#[test]
fn a_provider_retrying_a_sample_produces_the_same_event_ids() {
    // A retry of the same webhook (re-signed, possibly a new Mailgun token) must map to the
    // same ids, or the store would keep it twice.
    for sample in common::samples() {
        let first = common::run_sample(&sample).unwrap();
        let again = common::run_sample(&sample).unwrap();
        let ids = |n: &tidings_core::Normalized| n.events.iter().map(|e| e.event.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&again), "{}", sample.path.display());
    }
}

#[test]
fn events_within_a_sample_never_share_an_id() {
    // One record naming several recipients, or a batch of opens, must stay distinct events.
    for sample in common::samples() {
        let normalized = common::run_sample(&sample).unwrap();
        let mut ids: Vec<_> = normalized.events.iter().map(|e| e.event.id.clone()).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{}: duplicate ids within one webhook", sample.path.display());
    }
}
