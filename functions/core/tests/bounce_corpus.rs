//! The bounce classifier against a labelled corpus of real SMTP replies
//! (`tests/bounce_corpus.ndjson`: each line's reply, its label, and the public page or file the
//! reply was published in). Accuracy per reason is in BENCHMARKS.md; regenerate that table with
//! `TIDINGS_CORPUS_REPORT=1 cargo test -p tidings-core --test bounce_corpus -- --nocapture`.

use std::collections::BTreeMap;

use tidings_core::BounceKind;
use tidings_core::deliverability::{BounceReason, Reply, classify};

#[derive(serde::Deserialize)]
struct Line {
    id: String,
    smtp: String,
    status: String,
    reason: BounceReason,
    kind: String,
    source: String,
}

fn corpus() -> Vec<Line> {
    let text = include_str!("bounce_corpus.ndjson");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("corpus line {}: {e}", i + 1)))
        .collect()
}

#[test]
fn the_classifier_reads_real_replies_as_labelled() {
    let lines = corpus();
    assert!(lines.len() >= 150, "the corpus has {} lines", lines.len());
    let mut per_reason: BTreeMap<BounceReason, (usize, usize)> = BTreeMap::new();
    let (mut right, mut kinds_right, mut kinds_judged) = (0, 0, 0);
    let mut misses = Vec::new();
    for line in &lines {
        assert!(line.source.starts_with("https://"), "{}: the source must be a public URL", line.id);
        let status = (!line.status.is_empty()).then_some(line.status.as_str());
        let got =
            classify(&Reply { text: Some(&line.smtp), code: status, ..Reply::default() }, BounceKind::Undetermined);
        let entry = per_reason.entry(line.reason).or_default();
        entry.1 += 1;
        if got.reason == line.reason {
            entry.0 += 1;
            right += 1;
        } else {
            misses.push(format!("{}: labelled {}, read {} — {}", line.id, line.reason, got.reason, line.smtp));
        }
        if line.kind != "undetermined" {
            kinds_judged += 1;
            if got.kind.as_str() == line.kind {
                kinds_right += 1;
            }
        }
    }
    let accuracy = right as f64 / lines.len() as f64;
    let kind_accuracy = kinds_right as f64 / kinds_judged as f64;
    if std::env::var_os("TIDINGS_CORPUS_REPORT").is_some() {
        println!("| reason | replies | read right | accuracy |\n|---|---:|---:|---:|");
        for (reason, (ok, all)) in &per_reason {
            println!("| `{reason}` | {all} | {ok} | {:.0}% |", *ok as f64 * 100.0 / *all as f64);
        }
        println!("| all | {} | {right} | {:.1}% |", lines.len(), accuracy * 100.0);
        println!("\nkind (hard/soft) right: {kinds_right} of {kinds_judged} ({:.1}%)", kind_accuracy * 100.0);
        for miss in &misses {
            println!("miss: {miss}");
        }
    }
    // Floors under the measured figures (BENCHMARKS.md), so a change that makes the classifier
    // worse fails here.
    assert!(
        accuracy >= 0.93,
        "{right} of {} read right ({:.1}%):\n{}",
        lines.len(),
        accuracy * 100.0,
        misses.join("\n")
    );
    assert!(kind_accuracy >= 0.93, "kind right for {kinds_right} of {kinds_judged}");
    for (reason, (ok, all)) in &per_reason {
        assert!(*ok * 2 >= *all, "{reason}: only {ok} of {all} read right:\n{}", misses.join("\n"));
    }
}
