//! `tidings` as a user runs it: exit codes, NDJSON on stdout, one-line errors on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn tidings(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidings")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(path: &str) -> String {
    repo().join("events").join(path).to_string_lossy().into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ndjson(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn normalize_prints_one_canonical_event_per_line() {
    let out = tidings(&[
        "normalize",
        "--provider",
        "sendgrid",
        "--no-verify",
        "--now",
        "1764311400",
        &sample("sendgrid/batch-every-type.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = ndjson(&out);
    assert_eq!(events.len(), 15);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(sample("sendgrid/expected/batch-every-type.json")).unwrap())
            .unwrap();
    assert_eq!(Value::Array(events), expected["events"], "CLI output and the checked-in snapshot agree");
}

#[test]
fn normalize_reads_standard_input_and_headers_flags() {
    let body = std::fs::read(sample("resend/email.delivered.json")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["normalize", "-p", "resend", "--no-verify", "-H", "svix-id: msg_fixed", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &body).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let events = ndjson(&out);
    assert_eq!(events[0]["type"], "email.delivered");
    assert_eq!(events[0]["data"]["provider_event_id"], "msg_fixed");
}

#[test]
fn normalize_without_verification_reads_an_sns_envelope_that_names_no_topic() {
    // The topic only matters for authenticity: without verification, the message is read.
    let mut envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(sample("ses/delivery.json")).unwrap()).unwrap();
    envelope.as_object_mut().unwrap().remove("TopicArn");
    let path = std::env::temp_dir().join(format!("tidings-sns-no-topic-{}.json", std::process::id()));
    std::fs::write(&path, envelope.to_string()).unwrap();
    let out = tidings(&["normalize", "--provider", "ses", "--no-verify", &path.to_string_lossy()]);
    std::fs::remove_file(&path).ok();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ndjson(&out)[0]["type"], "email.delivered");
}

#[test]
fn real_sns_messages_verify_offline_from_a_certificate_directory() {
    let dir = std::env::temp_dir().join(format!("tidings-cli-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vectors = repo().join("functions/core/tests/vectors");
    for entry in std::fs::read_dir(&vectors).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(cert) = name.strip_prefix("sns_cert_") {
            std::fs::copy(&path, dir.join(cert)).unwrap();
        }
    }
    let message = vectors.join("sns_real_signed_v2_sha256.json").to_string_lossy().into_owned();
    let topic = "arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e";
    let dir_arg = dir.to_string_lossy().into_owned();
    let ok = tidings(&["normalize", "-p", "ses", "--sns-cert-dir", &dir_arg, "--allow-topic", topic, &message]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(ok.stdout.is_empty(), "a non-SES message yields no event");
    assert!(stderr(&ok).contains("is not an event record of this provider"), "{}", stderr(&ok));

    let refused = tidings(&["normalize", "-p", "ses", "--sns-cert-dir", &dir_arg, &message]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).starts_with("ses: TopicArn"), "{}", stderr(&refused));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unauthenticated_and_malformed_input_exit_1_with_one_line_naming_the_provider() {
    let bad_sig = tidings(&[
        "normalize",
        "-p",
        "activereach",
        "--secret",
        "whk_test",
        "-H",
        "X-Aegis-Signature: 00ff",
        &sample("activereach/delivery.sent.json"),
    ]);
    assert_eq!(bad_sig.status.code(), Some(1));
    let line = stderr(&bad_sig);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("activereach: header X-Aegis-Signature does not match"), "{line}");

    let tmp = std::env::temp_dir().join(format!("tidings-cli-bad-{}.json", std::process::id()));
    std::fs::write(&tmp, br#"{"RecordType": 7}"#).unwrap();
    let malformed = tidings(&["normalize", "-p", "postmark", "--no-verify", &tmp.to_string_lossy()]);
    assert_eq!(malformed.status.code(), Some(1));
    assert!(
        stderr(&malformed).starts_with("postmark: body field `RecordType`: invalid type"),
        "{}",
        stderr(&malformed)
    );
    std::fs::remove_file(tmp).ok();
}

#[test]
fn usage_errors_exit_2() {
    let unknown = tidings(&["normalize", "-p", "pigeonpost", &sample("sendgrid/bounce.json")]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown provider \"pigeonpost\""), "{}", stderr(&unknown));
    let no_secret = tidings(&["normalize", "-p", "sendgrid", &sample("sendgrid/bounce.json")]);
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(stderr(&no_secret).contains("--secret <verification public key> is needed"), "{}", stderr(&no_secret));
    let missing = tidings(&["normalize", "-p", "sendgrid", "--no-verify", "/nonexistent/file.json"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn providers_lists_every_provider_with_its_authentication() {
    let out = tidings(&["providers", "--json"]);
    assert!(out.status.success());
    let rows = ndjson(&out);
    let ids: Vec<&str> = rows.iter().map(|r| r["provider"].as_str().unwrap()).collect();
    let registry: Vec<&str> = tidings_core::ProviderId::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(ids, registry);
    assert_eq!(rows[0]["name"], "Amazon SES");
    assert!(rows[1]["authentication"].as_str().unwrap().contains("ECDSA P-256"));
    assert!(rows.iter().all(|r| !r["event_types"].as_array().unwrap().is_empty()));
}

#[test]
fn schema_prints_the_checked_in_schema() {
    let out = tidings(&["schema"]);
    let checked_in = std::fs::read(repo().join("functions/core/schema/canonical-event.schema.json")).unwrap();
    assert_eq!(out.stdout, checked_in);
}

#[test]
fn bounce_reason_explains_one_reply_and_batches_of_them() {
    let out = tidings(&["bounce-reason", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "mailbox_unknown\thard\n");

    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["bounce-reason", "--ndjson"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = concat!(
        r#"{"id":"a","smtp":"421 4.7.28 Gmail has detected an unusual rate of mail; rate limited","status":"4.7.28"}"#,
        "\n",
        "not json\n",
        r#"{"id":2,"smtp":"552 5.2.2 Mailbox full"}"#,
        "\n"
    );
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a line that cannot be read fails the run");
    assert!(stderr(&out).contains("line 2: not JSON"), "{}", stderr(&out));
    let answers = ndjson(&out);
    assert_eq!(
        answers,
        vec![
            serde_json::json!({"id": "a", "reason": "rate_limited", "kind": "soft"}),
            serde_json::json!({"id": 2, "reason": "mailbox_full", "kind": "soft"}),
        ],
        "one answer per readable line, in order"
    );
}
