//! `tidings dev` as a process: killed with SIGKILL at random points of a stream of webhooks and
//! restarted, it loses nothing and stores nothing twice; under many concurrent senders it
//! answers every one and its memory stays bounded; over a long history, a listing that matches
//! nothing answers promptly and webhooks are answered while listings run.

mod common;

use std::collections::BTreeSet;

use common::{Dev, Subscriber, bin, expected_ids, free_port, get, repo, start, temp_dir};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidings_core::ports::EventStore;

fn stored_ids(db: &Path) -> BTreeSet<String> {
    let out = Command::new(bin())
        .args(["events", "--json", "--limit", "100000", "--db", &db.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (bounded) until the background worker has stored `expected.len()` events.
fn wait_stored(db: &Path, expected: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stored = stored_ids(db);
    while stored.len() < expected.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stored = stored_ids(db);
    }
    stored
}

#[test]
fn sigkill_at_random_points_then_restart_loses_nothing_and_doubles_nothing() {
    let dir = std::env::temp_dir().join(format!("tidings-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("dev.db");
    let port = free_port();
    let events = repo().join("events").to_string_lossy().into_owned();
    // Where each kill falls: after a number of accepted webhooks drawn from the clock, printed
    // so a failing run can be repeated (TIDINGS_CRASH_SEED).
    let mut seed: u64 = std::env::var("TIDINGS_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    println!("TIDINGS_CRASH_SEED={seed}");

    // Stream every sample, three times over; each time kill the server hard (SIGKILL: no
    // chance to flush or finish anything) after a random number of accepted webhooks, while
    // the worker is storing what came before.
    for round in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 1 + (seed % 170) as usize;
        let dev = start(&db, port);
        let mut replay = Command::new(bin())
            .args(["replay", &events, "--db", &db.to_string_lossy()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut accepted = 0;
        let mut killed = Some(dev);
        for line in BufReader::new(replay.stdout.take().unwrap()).lines() {
            if line.unwrap().starts_with("200 ") {
                accepted += 1;
                if accepted == kill_after {
                    drop(killed.take());
                }
            }
        }
        let first = replay.wait().unwrap();
        assert!(!first.success(), "round {round}: the replay must have hit the dead server");
        assert!(accepted >= kill_after);
    }

    // Restart on the same file and send everything again, as providers retry.
    let _dev = start(&db, port);
    let again = Command::new(bin())
        .args(["replay", &events, "--db", &db.to_string_lossy()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(again.success());
    let expected = expected_ids();
    assert_eq!(wait_stored(&db, &expected), expected, "every event exactly once");
    std::fs::remove_dir_all(&dir).ok();
}

/// The server's peak resident memory, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn many_concurrent_senders_are_all_answered_with_bounded_memory() {
    const SENDERS: usize = 16;
    let dir = std::env::temp_dir().join(format!("tidings-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("dev.db");
    let port = free_port();
    let events = repo().join("events").to_string_lossy().into_owned();
    let dev = start(&db, port);
    let before = peak_rss_kib(dev.0.id());

    // Sixteen senders at once, each posting every sample (each sample sixteen times in all).
    let started = Instant::now();
    let senders: Vec<Child> = (0..SENDERS)
        .map(|_| {
            Command::new(bin())
                .args(["replay", &events, "--db", &db.to_string_lossy()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut answered = 0;
    for sender in senders {
        let out = sender.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "every post answered 200: {}",
            text.lines().find(|l| !l.starts_with("200 ")).unwrap_or("")
        );
        answered += text.lines().filter(|l| l.starts_with("200 ")).count();
    }
    let took = started.elapsed();
    let expected = expected_ids();
    assert_eq!(wait_stored(&db, &expected), expected, "each event stored once, however many times it was sent");
    let peak = peak_rss_kib(dev.0.id());
    println!(
        "load: {SENDERS} concurrent senders, {answered} webhooks answered 200 in {:.2} s ({:.0}/s); server peak RSS {} MiB (at start {} MiB)",
        took.as_secs_f64(),
        answered as f64 / took.as_secs_f64(),
        peak / 1024,
        before / 1024
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    drop(dev);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ctrl_c_stops_the_dev_server_cleanly() {
    let dir = std::env::temp_dir().join(format!("tidings-sigint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut dev = start(&dir.join("dev.db"), free_port());
    let pid = dev.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    // Bounded wait for the exit the signal asked for.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tidings dev did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_sample_posted_to_tidings_dev_reaches_a_local_subscriber_signed() {
    let dir = std::env::temp_dir().join(format!("tidings-fanout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("dev.db");
    let db_arg = db.to_string_lossy().into_owned();
    let _dev = start(&db, free_port());

    let subscriber = Subscriber::start();

    let tidings = |args: &[&str]| {
        let out = Command::new(bin()).args(args).args(["--db", &db_arg]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let created: Value =
        serde_json::from_str(&tidings(&["subscriptions", "add", &subscriber.url("/hook"), "--type", "*.bounced"]))
            .unwrap();
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    tidings(&["subscriptions", "test", id]);
    let replay = Command::new(bin())
        .args(["replay", &repo().join("events/sendgrid/bounce.json").to_string_lossy(), "--db", &db_arg])
        .status()
        .unwrap();
    assert!(replay.success());

    let received = subscriber.wait_for("/hook", 2);
    let mut types: Vec<String> = received
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["email.bounced", "subscription.test"]);
    let key = tidings_core::auth::standard_webhooks::secret_key(secret).unwrap();
    for request in &received {
        let header = |n: &str| request.headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert!(tidings_core::auth::standard_webhooks::verify_signature(
            std::slice::from_ref(&key),
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &request.body,
            &header("webhook-signature")
        ));
    }
    let attempts = tidings(&["attempts", id, "--json"]);
    assert_eq!(attempts.lines().count(), 2, "{attempts}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn with_an_ses_endpoint_dev_resends_a_throttled_send_through_sesv2() {
    let moto = std::env::var("TIDINGS_MOTO_ENDPOINT")
        .unwrap_or_else(|_| panic!("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which starts moto"));
    let python = std::env::var("TIDINGS_PYTHON")
        .unwrap_or_else(|_| panic!("TIDINGS_PYTHON is not set: run ./scripts/test.sh, which installs it"));
    let dir = std::env::temp_dir().join(format!("tidings-ses-resend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ses")).unwrap();
    // The throttled sample, from a sender of its own so this test finds its own resend on moto.
    let domain = format!("dev-{}.example", std::process::id());
    let mut report: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("events/ses/send-failure-throttled.json")).unwrap())
            .unwrap();
    report["mail"]["FromEmailAddress"] = format!("billing@{domain}").into();
    report["reportId"] = format!("rep_dev_{}", std::process::id()).into();
    let sample = dir.join("ses/resend.json");
    std::fs::write(&sample, report.to_string()).unwrap();
    let aws_env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "eu-north-1"),
        ("AWS_DEFAULT_REGION", "eu-north-1"),
    ];
    let created = Command::new(&python)
        .args([
            "-c",
            "import boto3, sys; boto3.client('sesv2', endpoint_url=sys.argv[1]).create_email_identity(EmailIdentity=sys.argv[2])",
            &moto,
            &domain,
        ])
        .envs(aws_env)
        .status()
        .unwrap();
    assert!(created.success(), "could not create the SES identity on moto");

    let db = dir.join("dev.db");
    let db_arg = db.to_string_lossy().into_owned();
    let port = free_port();
    let child = Command::new(bin())
        .args(["dev", "--addr", &format!("127.0.0.1:{port}"), "--db", &db_arg, "--ses-endpoint", &moto])
        .envs(aws_env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _dev = Dev(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tidings dev did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let replay = Command::new(bin())
        .args(["replay", &sample.to_string_lossy(), "--db", &db_arg, "--to", &format!("http://127.0.0.1:{port}")])
        .status()
        .unwrap();
    assert!(replay.success());

    // The resend waits out its backoff (30 s ± 20%) on the resend queue, then reaches moto.
    let sent_from_domain = || -> usize {
        let out = Command::new(&python)
            .args([
                "-c",
                "import json, sys, urllib.request; d = json.load(urllib.request.urlopen(sys.argv[1] + '/moto-api/data.json')); print(sum(m['source'] == sys.argv[2] for m in d['ses']['Message']))",
                &moto,
                &format!("billing@{domain}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while sent_from_domain() == 0 {
        assert!(Instant::now() < deadline, "the resend did not reach SESv2");
        std::thread::sleep(Duration::from_millis(500));
    }
    let outbox = Command::new(bin()).args(["outbox", "--db", &db_arg]).output().unwrap();
    assert!(outbox.stdout.is_empty(), "nothing went to the local outbox");
    std::fs::remove_dir_all(&dir).ok();
}

/// Stores `count` copies of one Postmark bounce in the dev workspace of the database at `db`,
/// as the processor stores them (a minute apart, each a message of its own).
fn store_history(db: &Path, count: usize) {
    use tidings_core::ports::QueuedEvent;
    use tidings_core::timestamp::Timestamp;
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("events/postmark/expected/bounce-bad-email-address.json")).unwrap(),
    )
    .unwrap();
    let store = tidings_local::Sqlite::open(db).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = Timestamp::now().unix_seconds() - 60 * count as i64;
    let expires = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<QueuedEvent> = chunk
            .iter()
            .map(|i| {
                let mut event = sample["events"][0].clone();
                event["id"] = Value::String(format!("evt_{i:032x}"));
                event["time"] =
                    Value::String(Timestamp::from_unix_seconds(start + 60 * *i as i64).unwrap().to_string());
                event["data"]["message_id"] = Value::String(format!("history-{i}"));
                QueuedEvent {
                    event: serde_json::from_value(event).unwrap(),
                    raw: "{}".into(),
                    source: "history".into(),
                }
            })
            .collect();
        let refs: Vec<(&QueuedEvent, tidings_core::ports::Expiry)> =
            batch.iter().map(|q| (q, expires.into())).collect();
        for result in runtime.block_on(store.record_batch(&refs)) {
            result.unwrap();
        }
    }
}

#[test]
fn over_100000_stored_events_a_listing_matching_nothing_pages_promptly_while_ingest_answers() {
    const STORED: usize = 100_000;
    let dir = temp_dir("long-history");
    let db = dir.join("dev.db");
    store_history(&db, STORED);
    let port = free_port();
    let _dev = start(&db, port);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("dev.json")).unwrap()).unwrap();
    let auth = format!("Bearer {}", config["api_key"].as_str().unwrap());
    let base = format!("http://127.0.0.1:{port}");

    // The first page of a filter that matches nothing: answered promptly, empty, with a cursor.
    let url = format!("{base}/api/events?type=zzz.nomatch&limit=1");
    let started = Instant::now();
    let (status, body) = get(&url, &[("Authorization", &auth)]);
    let first_page = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["events"], serde_json::json!([]));
    assert!(page["next"].is_string(), "a page cut short by its read budget says where to go on: {body}");
    assert!(first_page < Duration::from_secs(5), "first page took {first_page:?}");

    // Two clients page through the whole history, cursor after cursor, while a webhook and the
    // health check are sent: each is answered within a bound, and the pages reach the end.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listers: Vec<_> = (0..2)
        .map(|_| {
            let (base, auth, stop) = (base.clone(), auth.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut pages = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut cursor: Option<String> = None;
                    loop {
                        let url = match &cursor {
                            Some(c) => format!("{base}/api/events?type=zzz.nomatch&limit=1&cursor={c}"),
                            None => format!("{base}/api/events?type=zzz.nomatch&limit=1"),
                        };
                        let (status, body) = get(&url, &[("Authorization", &auth)]);
                        assert_eq!(status, 200, "{body}");
                        pages += 1;
                        let page: Value = serde_json::from_str(&body).unwrap();
                        match page["next"].as_str() {
                            Some(next) => cursor = Some(next.to_owned()),
                            None => break,
                        }
                    }
                }
                pages
            })
        })
        .collect();
    let sample = repo().join("events/postmark/delivery.json");
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = get(&format!("{base}/api/health"), &[]);
        assert_eq!(status, 200, "{body}");
        let out = Command::new(bin())
            .args(["replay", &sample.to_string_lossy(), "--db", &db.to_string_lossy()])
            .output()
            .unwrap();
        assert!(out.status.success(), "webhook answered: {}", String::from_utf8_lossy(&out.stdout));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "health and a webhook took {took:?} while listings ran");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pages: usize = listers.into_iter().map(|l| l.join().unwrap()).sum();
    // Each full pass reads 100,000 rows a budget at a time: more than one page per pass.
    assert!(pages >= 2 * STORED / tidings_local::SCAN_BUDGET, "{pages} pages");
    std::fs::remove_dir_all(&dir).ok();
}

/// `tidings privacy` changes the workspace's settings; `tidings erase` refuses to act without a
/// confirmation, and with `--yes` erases the recipient and says what it removed.
#[test]
fn erase_asks_before_it_acts_and_then_removes_the_recipient() {
    let dir = temp_dir("erase");
    let db = dir.join("dev.db");
    let db_arg = db.to_string_lossy().into_owned();
    let _dev = start(&db, free_port());
    let tidings =
        |args: &[&str]| Command::new(bin()).args(args).args(["--db", &db_arg]).stdin(Stdio::null()).output().unwrap();

    let settings = tidings(&["privacy", "--redact-ip", "true", "--raw-retention-days", "3"]);
    assert!(settings.status.success(), "{}", String::from_utf8_lossy(&settings.stderr));
    let shown = String::from_utf8_lossy(&settings.stdout).into_owned();
    assert!(shown.contains("provider records     3 days") && shown.contains("redact IP addresses  true"), "{shown}");
    let refused = tidings(&["privacy", "--retention-days", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("retention_days"), "the refusal names the field");

    let replay = Command::new(bin())
        .args(["replay", &repo().join("events/sendgrid/batch-every-type.json").to_string_lossy(), "--db", &db_arg])
        .status()
        .unwrap();
    assert!(replay.success());
    let theirs = || {
        let out = tidings(&["events", "--json", "--recipient", "jane.doe@example.com"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while theirs() < 9 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(theirs(), 9, "SendGrid's batch has nine events of the recipient");

    let unconfirmed = tidings(&["erase", "--recipient", "jane.doe@example.com"]);
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    assert_eq!(theirs(), 9, "nothing was erased");

    let erased = tidings(&["erase", "--recipient", "Jane.Doe@example.com", "--yes"]);
    assert!(erased.status.success(), "{}", String::from_utf8_lossy(&erased.stderr));
    let report = String::from_utf8_lossy(&erased.stdout).into_owned();
    assert!(report.starts_with("events          9\n"), "{report}");
    assert!(report.contains("known from now on as erased_"), "{report}");
    assert_eq!(theirs(), 0);
    std::fs::remove_dir_all(&dir).ok();
}
