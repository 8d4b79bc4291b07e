//! The README's "Local testing with the sample JSON", as written: `infra/local-aws.sh` starts
//! moto and makes the table, queues and example sources; the function binaries, given
//! `target/local-aws.env` as `cargo lambda watch --env-file` gives it to them, are handed the
//! envelopes in `events/lambda/` (here by the test's Runtime API emulator instead of
//! `cargo lambda invoke`). Every envelope's source exists, so each answer is the documented one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::deployment;
use crate::runtime_api::Function;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn envelopes(kind: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(repo().join("events/lambda").join(kind)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
        })
        .collect()
}

/// Stops the moto the script started, however the test ends.
struct Moto;

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("infra/local-aws.sh")).arg("stop").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_local_lambda_steps_work_on_the_sample_envelopes() {
    let binaries = deployment::binaries();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = Command::new(repo().join("infra/local-aws.sh"))
        .arg(port.to_string())
        .env("TIDINGS_BIN", binaries.join("tidings"))
        .output()
        .unwrap();
    let _moto = Moto;
    assert!(script.status.success(), "infra/local-aws.sh: {}", String::from_utf8_lossy(&script.stderr));
    let text = std::fs::read_to_string(repo().join("target/local-aws.env")).unwrap();
    let env: Vec<(&str, String)> =
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k, v.to_owned())).collect();
    assert!(env.iter().any(|(k, v)| *k == "AWS_ENDPOINT_URL" && v.ends_with(&format!(":{port}"))));
    // The functions find every queue and dead-letter queue in it.
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    let settings = tidings_aws::Settings::from_lookup(lookup).unwrap();
    for queue in tidings_core::ports::QueueName::ALL {
        assert!(settings.queues.queues.contains_key(&queue), "no {} queue URL in local-aws.env", queue.as_str());
        assert!(settings.queues.dead_letters.contains_key(&queue), "no {} DLQ URL in local-aws.env", queue.as_str());
    }

    // One ingest function for every provider (no TIDINGS_PROVIDER, as under cargo lambda watch):
    // each envelope reaches its source, and an unsigned webhook is refused as unauthenticated.
    let ingest = Function::start(&binaries.join("ingest"), "ingest", &env).await;
    let http = envelopes("http");
    assert!(http.len() >= 11);
    for (name, envelope) in &http {
        let answer = ingest.call(envelope).await;
        assert_eq!(answer["statusCode"], 401, "{name}: {answer}\n{}", ingest.output());
    }

    // SES records from the SES intake queue are accepted as they are, and queued.
    let ses = Function::start(&binaries.join("ses-queue"), "ses-queue", &env).await;
    for (name, envelope) in envelopes("ses-queue") {
        let answer = ses.call(&envelope).await;
        assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}\n{}", ses.output());
    }

    // The processor stores the events of its envelopes.
    let processor = Function::start(&binaries.join("processor"), "processor", &env).await;
    for (name, envelope) in envelopes("processor") {
        let answer = processor.call(&envelope).await;
        assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{name}: {answer}\n{}", processor.output());
    }
}
