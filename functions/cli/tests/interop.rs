//! The other side's own code checks what tidings sends and accepts (the interop suite).
//!
//! Deliveries are made for real: `tidings dev` is sent every sample in `events/`, and delivers
//! them to a subscriber on loopback in both formats. What arrived is then handed, exactly as it
//! arrived, to the official libraries of each protocol, installed at pinned versions by
//! `./scripts/test.sh` (`tests/interop/`):
//! - the CloudEvents SDKs for JavaScript (`cloudevents`) and Python (`cloudevents`) parse every
//!   canonical-event delivery;
//! - the Standard Webhooks libraries for JavaScript and Python, and `svix` for Python, verify
//!   every delivery, before and during a secret rotation;
//! - `jsonschema` validates every delivery and every normalized sample against the published
//!   schema;
//! - every Dittofeed delivery is checked against Dittofeed's track contract and the attribution
//!   rules of its own webhook handlers.
//!
//! And Twilio's own request validator (the `twilio` package) signs Twilio callbacks with and
//! without a query string, form-encoded and JSON, which tidings must accept; Plivo's, Vonage's
//! and Mailtrap's own libraries verify what tidings' signers make of their samples, and Plivo's
//! signs them anew for tidings to verify; and Schemathesis fuzzes the admin API from its OpenAPI
//! document.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Subscriber, bin, expected_ids, free_port, post, repo, start, temp_dir};
use serde_json::{Value, json};

fn interop_python() -> String {
    std::env::var("TIDINGS_INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TIDINGS_INTEROP_PYTHON is not set: run ./scripts/test.sh, which installs tests/interop/requirements.txt"
        )
    })
}

fn interop_dir() -> PathBuf {
    let dir = repo().join("tests/interop");
    assert!(
        dir.join("node_modules/cloudevents").is_dir(),
        "tests/interop/node_modules is missing: run ./scripts/test.sh, which runs npm ci there"
    );
    dir
}

/// Runs a `tidings` client command against the dev server on `db`; its stdout.
fn tidings(db: &Path, args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).args(["--db", &db.to_string_lossy()]).output().unwrap();
    assert!(out.status.success(), "tidings {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Waits (bounded) until `count` attempts are logged for `subscription`; returns them.
fn wait_attempts(db: &Path, subscription: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempts = json_lines(&tidings(db, &["attempts", subscription, "--json", "--limit", "1000"]));
        if attempts.len() >= count {
            return attempts;
        }
        assert!(Instant::now() < deadline, "{} of {count} attempts logged for {subscription}", attempts.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a checker on the cases; its report, when it found problems.
fn run_checker(program: &str, args: &[&Path]) -> Option<String> {
    let out = Command::new(program).args(args).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    (!out.status.success()).then(|| format!("{program} {args:?} found problems:\n{report}"))
}

#[test]
fn every_delivery_is_parsed_and_verified_by_the_protocols_own_libraries() {
    let (python, interop) = (interop_python(), interop_dir());
    let dir = temp_dir("interop");
    let db = dir.join("dev.db");
    let _dev = start(&db, free_port());
    let subscriber = Subscriber::start();

    let add = |path: &str, extra: &[&str]| -> (String, String) {
        let mut args = vec!["subscriptions", "add"];
        let url = subscriber.url(path);
        args.extend([url.as_str(), "--type", "*"]);
        args.extend(extra);
        let created: Value = serde_json::from_str(&tidings(&db, &args)).unwrap();
        (created["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
    };
    let (ce, ce_secret) = add("/ce", &[]);
    let (df, df_secret) = add("/df", &["--format", "dittofeed"]);
    let (dfa, dfa_secret) = add("/dfa", &["--format", "dittofeed", "--anonymous-id", "recipient"]);
    for id in [&ce, &df, &dfa] {
        tidings(&db, &["subscriptions", "test", id]);
    }
    tidings(&db, &["replay", &repo().join("events").to_string_lossy()]);

    // Every sample's events (several samples share some), and the three test events, once stored.
    let expected_samples = expected_ids().len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let stored = loop {
        let stored = json_lines(&tidings(&db, &["events", "--json", "--limit", "100000"]));
        if stored.len() >= expected_samples + 3 {
            break stored;
        }
        assert!(Instant::now() < deadline, "{} of {} events stored", stored.len(), expected_samples + 3);
        std::thread::sleep(Duration::from_millis(50));
    };
    let by_id: BTreeMap<String, Value> =
        stored.iter().map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone())).collect();
    let tests = stored.iter().filter(|e| e["type"] == "subscription.test").count();
    let own = stored.len() - tests + 1; // every sample event and the subscription's own test

    let first = subscriber.wait_for("/ce", own);
    let df_attempts = wait_attempts(&db, &df, own);
    let dfa_attempts = wait_attempts(&db, &dfa, own);

    // A rotation: the replayed deliveries are signed by the old and the new secret, and a
    // subscriber holding either one accepts them.
    let rotated = tidings(&db, &["subscriptions", "rotate", &ce, "--grace-seconds", "3600"]);
    let new_secret = rotated.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"), "{rotated}");
    tidings(&db, &["subscriptions", "replay", &ce]);
    let all = subscriber.wait_for("/ce", own + stored.len());

    // Dittofeed: events without a userId tag are skipped (logged), unless the subscription
    // sends the recipient as anonymousId; the test event is never sent.
    let skipped = |attempts: &[Value]| attempts.iter().filter(|a| a["outcome"] == "skipped").count();
    let df_received = subscriber.at("/df");
    let dfa_received = subscriber.at("/dfa");
    assert_eq!(df_received.len() + skipped(&df_attempts), own, "every Dittofeed task is delivered or skipped");
    assert_eq!(dfa_received.len() + skipped(&dfa_attempts), own);
    assert!(skipped(&df_attempts) > skipped(&dfa_attempts), "the recipient stands in for a missing userId");
    assert!(!df_received.is_empty() && dfa_received.len() > df_received.len());

    let mut cases = Vec::new();
    for (index, delivery) in all.iter().enumerate() {
        let secrets = if index < first.len() { vec![&ce_secret] } else { vec![&ce_secret, &new_secret] };
        cases.push(case("cloudevents", delivery, &secrets, None, false));
    }
    for (received, secret, anonymous) in [(&df_received, &df_secret, false), (&dfa_received, &dfa_secret, true)] {
        for delivery in received {
            let body: Value = serde_json::from_slice(&delivery.body).unwrap();
            let event = by_id.get(body["messageId"].as_str().unwrap()).expect("a delivery of a stored event");
            cases.push(case("dittofeed", delivery, &[secret], Some(event), anonymous));
        }
    }
    let cases_file = dir.join("cases.json");
    std::fs::write(&cases_file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let problems: Vec<String> = [
        run_checker(&python, &[&interop.join("check.py"), &cases_file, &repo()]),
        run_checker("node", &[&interop.join("check.mjs"), &cases_file]),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    std::fs::remove_dir_all(&dir).ok();
}

fn case(kind: &str, delivery: &common::Received, secrets: &[&String], event: Option<&Value>, anonymous: bool) -> Value {
    let headers: serde_json::Map<String, Value> = delivery.headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
    json!({
        "kind": kind,
        "secrets": secrets,
        "headers": headers,
        "body": String::from_utf8(delivery.body.clone()).expect("deliveries are UTF-8 JSON"),
        "event": event,
        "anonymous_recipient": anonymous,
    })
}

/// Signs Twilio requests with Twilio's own helper library: `[(url, signature)]`.
fn twilio_signed(auth_token: &str, requests: &[Value]) -> Vec<(String, String)> {
    let mut child = Command::new(interop_python())
        .arg(interop_dir().join("twilio_sign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"auth_token": auth_token, "requests": requests});
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "twilio_sign.py failed");
    let signed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    signed
        .iter()
        .map(|s| (s["url"].as_str().unwrap().to_owned(), s["signature"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn twilio_callbacks_signed_by_twilios_own_validator_are_accepted_query_string_and_all() {
    let dir = temp_dir("interop-twilio");
    let db = dir.join("dev.db");
    let port = free_port();
    let _dev = start(&db, port);
    let token = "f2a9c1d83e7b4c5a9d0e1f2a3b4c5d6e";
    let source: Value = serde_json::from_str(&tidings(&db, &["sources", "add", "twilio", "--secret", token])).unwrap();
    let url = source["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/webhooks/twilio/")), "{url}");

    let form = |sid: &str, status: &str| -> BTreeMap<String, String> {
        [
            ("MessageSid", sid),
            ("SmsSid", sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("AccountSid", "AC0000000000000000000000000000000a"),
            ("From", "+15005550006"),
            ("To", "+15558675310"),
            ("ApiVersion", "2010-04-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    // Dittofeed's status-callback URL puts its context in the query, as senders do.
    let with_query = format!("{url}?workspaceId=ws_1&userId=user%2042&messageId=m-1&journeyId=j_1");
    let json_body =
        json!({"MessageSid": "SM03", "MessageStatus": "delivered", "AccountSid": "AC0000000000000000000000000000000a", "To": "+15558675310", "From": "+15005550006"})
            .to_string();
    let requests = [
        json!({"url": url, "form": form("SM01", "delivered")}),
        json!({"url": with_query, "form": form("SM02", "delivered")}),
        json!({"url": with_query, "json": json_body}),
    ];
    let signed = twilio_signed(token, &requests);
    for (request, (called, signature)) in requests.iter().zip(&signed) {
        let (content_type, body) = match request.get("form") {
            Some(form) => (
                "application/x-www-form-urlencoded",
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.as_object().unwrap().iter().map(|(k, v)| (k, v.as_str().unwrap())))
                    .finish(),
            ),
            None => ("application/json", json_body.clone()),
        };
        let headers = [("X-Twilio-Signature", signature.as_str()), ("Content-Type", content_type)];
        let (status, answer) = post(called, &headers, body.as_bytes());
        assert!((200..300).contains(&status), "{called}: {status} {answer}");
        // The same signature over another query, or another body, is refused.
        let other_query =
            called.replace("userId=user%2042", "userId=someone-else").replace("bodySHA256=", "x=1&bodySHA256=");
        if other_query != *called {
            assert_eq!(post(&other_query, &headers, body.as_bytes()).0, 401, "{other_query}");
        }
        assert_eq!(post(called, &headers, body.replace("delivered", "failed").as_bytes()).0, 401, "{called}");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let events = loop {
        let events = json_lines(&tidings(&db, &["events", "--json", "--type", "sms.*"]));
        if events.len() >= 3 {
            break events;
        }
        assert!(Instant::now() < deadline, "{} of 3 Twilio events stored", events.len());
        std::thread::sleep(Duration::from_millis(50));
    };
    let by_message: BTreeMap<&str, &Value> =
        events.iter().map(|e| (e["data"]["message_id"].as_str().unwrap(), e)).collect();
    assert!(by_message["SM01"]["data"]["tags"].as_object().unwrap().is_empty());
    for sid in ["SM02", "SM03"] {
        let tags = &by_message[sid]["data"]["tags"];
        assert_eq!(tags["userId"], "user 42", "{sid}: the query's parameters are tags");
        assert_eq!(tags["journeyId"], "j_1");
        assert!(tags.get("bodySHA256").is_none(), "Twilio's own parameter is not a tag");
        assert_eq!(by_message[sid]["type"], "sms.delivered");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Schemathesis, a property-based API tester, generates requests from the served OpenAPI
/// document (valid and deliberately invalid, then sequences that follow its links) and holds
/// every answer to it. `tidings dev` runs with the production outbound policy and a stored
/// history, so listings and timelines answer with real events. The checks: no 5xx; every status,
/// content type, header and body as documented; what the document forbids is refused; a request
/// without a key is refused; unsupported methods are 405. Not checked: that every request the
/// schema allows is accepted, since the schema cannot say all of what makes a secret or a
/// subscriber URL acceptable (the one-line 400s of the hostile-input tests cover those).
/// Bounded and reproducible: 25 examples per operation, a fixed seed.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let dir = temp_dir("schemathesis");
    let db = dir.join("dev.db");
    let port = free_port();
    let mut command = common::dev_command(&db, port);
    command.arg("--refuse-loopback").stderr(Stdio::null());
    let _dev = common::spawn_dev(command, port);
    let replay = Command::new(bin())
        .args(["replay", &repo().join("events").to_string_lossy(), "--db", &db.to_string_lossy()])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stdout));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("dev.json")).unwrap()).unwrap();
    let st = Path::new(&interop_python()).with_file_name("st");
    let out = Command::new(&st)
        .current_dir(&dir)
        .args(["--no-color", "run", &format!("http://127.0.0.1:{port}/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {}", config["api_key"].as_str().unwrap())])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // One worker: with two, Hypothesis parses lambdas' sources on two threads at once, and
        // CPython 3.11's parser then fails now and then ("AST constructor recursion depth
        // mismatch"), an error of the tool's, not an answer of tidings'.
        .args(["--max-examples", "25", "--seed", "20261207", "--workers", "1"])
        .args(["--report", "junit", "--report-dir", &dir.join("report").to_string_lossy()])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run ./scripts/test.sh, which installs it)", st.display()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "schemathesis found problems:\n{report}");
    // It ran every operation of the document, not none.
    let served: Value =
        serde_json::from_str(&common::get(&format!("http://127.0.0.1:{port}/api/openapi.json"), &[]).1).unwrap();
    let operations: usize = served["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(report.contains(&format!("Tested: {operations}")), "not every operation was tested:\n{report}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every Plivo, Vonage (Messages API) and Mailtrap sample, signed as tidings' signer signs it for
/// tests and `tidings replay`, is accepted by the provider's own library; and every Plivo sample
/// signed by Plivo's own signer is accepted by tidings.
#[test]
fn provider_libraries_verify_tidings_signatures_and_plivo_signs_what_tidings_accepts() {
    use tidings_core::auth::signer::{self, SigningKey};
    use tidings_core::auth::sns::CertificateCache;
    use tidings_core::auth::{SourceAuth, VerifyContext};
    use tidings_core::{Headers, ProviderId, Timestamp, Transport, Webhook};

    let url = "https://hooks.example.com/webhooks/plivo/src_interop?userId=42";
    let now = Timestamp::now();
    let mut cases = Vec::new();
    let mut requests = Vec::new();
    for (provider, secret) in [
        (ProviderId::Plivo, "MAbcdefghij0123456789Token"),
        (ProviderId::Vonage, "vonage-signature-secret-0123"),
        (ProviderId::Mailtrap, "8d9a3c0e7f5b2d4a6c1e9f8b3a7d5c2e"),
    ] {
        let dir = repo().join("events").join(provider.as_str());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "form")))
            .collect();
        files.sort();
        for file in files {
            let body = std::fs::read(&file).unwrap();
            // Vonage's older SMS API signs with `sig`, not a JWT: its samples are the Messages
            // API's here (the SMS API vectors are in tidings-core's unit tests).
            if provider == ProviderId::Vonage && !String::from_utf8_lossy(&body).contains("message_uuid") {
                continue;
            }
            let mut headers = Headers::new();
            let key = SigningKey { secret, public_url: Some(url) };
            let signed = signer::sign(provider, &body, &mut headers, &key, now).unwrap();
            let header_map: BTreeMap<&str, &str> = headers.iter().collect();
            cases.push(json!({
                "provider": provider.as_str(),
                "secret": secret,
                "url": url,
                "headers": header_map,
                "body": String::from_utf8(signed.clone()).unwrap(),
            }));
            requests.push((provider, secret, signed, headers.clone()));
        }
    }
    assert!(cases.len() > 30, "the samples of three providers, found {}", cases.len());
    let mut child = Command::new(interop_python())
        .arg(repo().join("tests/interop/provider_signatures.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(json!({"cases": cases}).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "provider_signatures.py failed");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failures = answer["failures"].as_array().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");

    // Plivo's own signer, with a nonce of its own: tidings must accept each.
    let resigned = answer["plivo_resigned"].as_array().unwrap();
    assert!(resigned.len() >= 10, "every Plivo sample re-signed");
    let certificates = CertificateCache::new();
    for item in resigned {
        let (provider, secret, body, _) = &requests[item["index"].as_u64().unwrap() as usize];
        let headers: Headers = [
            ("X-Plivo-Signature-V3", item["signature"].as_str().unwrap()),
            ("X-Plivo-Signature-V3-Nonce", item["nonce"].as_str().unwrap()),
        ]
        .into_iter()
        .collect();
        let (public, query) = url.split_once('?').unwrap();
        let mut auth = SourceAuth::with_secret(*secret);
        auth.public_url = Some(public.to_owned());
        let webhook = Webhook { body, headers: &headers, query: Some(query), transport: Transport::Http };
        let verified = provider.provider().verify(&webhook, &auth, &VerifyContext { now, certificates: &certificates });
        assert!(verified.is_ok(), "Plivo-signed request refused: {verified:?}");
    }
}
