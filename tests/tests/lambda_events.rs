//! `events/lambda/` holds the Lambda event envelopes built from the raw samples (see
//! `tidings_tests::lambda_events`); this keeps them in step with the samples. After a change to
//! a sample or to normalization, regenerate them with
//! `TIDINGS_BLESS=1 cargo test -p tidings-tests --test lambda_events` and review the diff.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tidings_tests::lambda_events::generate;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

#[test]
fn lambda_envelopes_match_the_samples_they_are_built_from() {
    let events = dir();
    let lambda = events.join("lambda");
    let generated = generate(&events);
    if std::env::var_os("TIDINGS_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&lambda);
        for (path, text) in &generated {
            let path = lambda.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &generated {
        match std::fs::read_to_string(lambda.join(path)) {
            Ok(found) if &found == text => {}
            Ok(_) => stale.push(format!("{} differs from its sample", path.display())),
            Err(_) => stale.push(format!("{} is missing", path.display())),
        }
    }
    // Nothing in the directory that the samples do not produce.
    let expected: BTreeSet<PathBuf> = generated.iter().map(|(p, _)| p.clone()).collect();
    for sub in std::fs::read_dir(&lambda).unwrap() {
        let sub = sub.unwrap().path();
        for file in std::fs::read_dir(&sub).unwrap() {
            let relative = file.unwrap().path().strip_prefix(&lambda).unwrap().to_path_buf();
            if !expected.contains(&relative) {
                stale.push(format!("{} is not built from any sample", relative.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "events/lambda is out of step (TIDINGS_BLESS=1 cargo test -p tidings-tests --test lambda_events):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_provider_has_an_envelope_for_its_function() {
    let generated = generate(&dir());
    for provider in tidings_core::ProviderId::ALL {
        // SES over HTTPS is signed by SNS with AWS's key, so its envelope is the queue one.
        let sns = provider.provider().authentication() == tidings_core::auth::Authentication::SnsSignature;
        let prefix = if provider == tidings_core::ProviderId::Ses {
            "ses-queue/".to_owned()
        } else if sns {
            format!("sns-http/{provider}-")
        } else {
            format!("http/{provider}-")
        };
        assert!(
            generated.iter().any(|(p, _)| p.to_string_lossy().starts_with(&prefix)),
            "no Lambda envelope for {provider}"
        );
    }
}

#[test]
fn every_envelope_parses_as_the_lambda_event_its_function_takes() {
    // The types are the ones the functions are handed by their runtimes: lambda_http's API
    // Gateway HTTP API request for ingest, aws_lambda_events' SQS event for the queue readers.
    let lambda = dir().join("lambda");
    let mut checked = 0;
    for kind in std::fs::read_dir(&lambda).unwrap() {
        let kind = kind.unwrap().path();
        for file in std::fs::read_dir(&kind).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            match kind.file_name().unwrap().to_str().unwrap() {
                "http" | "sns-http" => {
                    let request = lambda_http::request::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: not an API Gateway request: {e}", path.display()));
                    assert_eq!(request.method(), "POST", "{}", path.display());
                    assert!(request.uri().path().starts_with("/webhooks/"), "{}", path.display());
                }
                "ses-queue" | "processor" => {
                    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: not an SQS event: {e}", path.display()));
                    assert!(!event.records.is_empty(), "{}", path.display());
                    assert!(event.records.iter().all(|r| r.body.as_deref().is_some_and(|b| !b.is_empty())));
                }
                other => panic!("events/lambda/{other}: no function takes these"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked} envelopes");
}
