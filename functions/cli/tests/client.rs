//! The client commands as a person at a terminal uses them against `tidings dev`: they find the
//! server, say when a listing is cut short, show what happened, keep foreign text from driving
//! the terminal, and stop quietly when the reader of their output goes away.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, dev_command, free_port, repo, spawn_dev, start, temp_dir};
use serde_json::Value;

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).args(["--db", &db.to_string_lossy()]).output().unwrap()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(out.status.success(), "tidings {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Waits (bounded) until at least `count` events are stored.
fn wait_events(db: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok(db, &["events", "--json", "--limit", "100000"]).lines().count() < count {
        assert!(Instant::now() < deadline, "fewer than {count} events stored");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tidings attempts <subscription> <extra>` once it shows an attempt (waited for, bounded).
fn logged_attempts(db: &Path, subscription: &str, extra: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut args = vec!["attempts", subscription];
        args.extend(extra);
        let attempts = ok(db, &args);
        if !attempts.is_empty() {
            return attempts;
        }
        assert!(Instant::now() < deadline, "no attempt logged for {subscription}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_commands_find_a_dev_server_started_with_another_db_elsewhere() {
    let dir = temp_dir("client-elsewhere");
    let (state, somewhere, db) = (dir.join("state"), dir.join("somewhere"), dir.join("data/mine.db"));
    std::fs::create_dir_all(&somewhere).unwrap();
    let port = free_port();
    let mut command = dev_command(&db, port);
    command.env("XDG_STATE_HOME", &state).stderr(Stdio::null());
    let _dev = spawn_dev(command, port);
    // From a directory without .tidings/, with no --db: the server is found.
    let out = Command::new(bin())
        .args(["sources", "list"])
        .current_dir(&somewhere)
        .env("XDG_STATE_HOME", &state)
        .env_remove("TIDINGS_API")
        .env_remove("TIDINGS_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/webhooks/sendgrid/"));
    // With no record of one, the error says what to pass.
    let out = Command::new(bin())
        .args(["sources", "list"])
        .current_dir(&somewhere)
        .env("XDG_STATE_HOME", dir.join("nothing-here"))
        .env_remove("TIDINGS_API")
        .env_remove("TIDINGS_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("--db") && error.contains("--api-key"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_dev_servers_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("client-private");
    let db = dir.join("state/dev.db");
    let _dev = start(&db, free_port());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("state")), 0o700);
    assert_eq!(mode(&db), 0o600, "every source's and subscription's secret is in it");
    assert_eq!(mode(&dir.join("state/dev.json")), 0o600, "the API key is in it");
    for companion in ["dev.db-wal", "dev.db-shm"] {
        let path = dir.join("state").join(companion);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{companion}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn listings_stop_quietly_when_their_reader_goes_away_and_say_when_they_are_cut_short() {
    let dir = temp_dir("client-listings");
    let db = dir.join("dev.db");
    let _dev = start(&db, free_port());
    ok(&db, &["replay", &repo().join("events").to_string_lossy()]);
    wait_events(&db, 150);

    // `tidings events --json | head -1`: more output than a pipe holds, and a reader that
    // stops after one line.
    let mut child = Command::new(bin())
        .args(["events", "--json", "--limit", "1000", "--db", &db.to_string_lossy()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    serde_json::from_str::<Value>(&first).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = run(&db, &["events", "--limit", "5"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("more match") && note.contains("--limit"), "{note}");
    let all = run(&db, &["events", "--limit", "100000"]);
    assert!(all.stderr.is_empty(), "nothing was cut: {}", String::from_utf8_lossy(&all.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn text_from_outside_cannot_drive_the_terminal() {
    let dir = temp_dir("client-terminal");
    let db = dir.join("dev.db");
    let _dev = start(&db, free_port());
    let evil = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("events/postmark/delivery.json")).unwrap()).unwrap();
    record["MessageID"] = Value::String(format!("m-{evil}"));
    std::fs::create_dir_all(dir.join("postmark")).unwrap();
    std::fs::write(dir.join("postmark/evil.json"), record.to_string()).unwrap();
    ok(&db, &["replay", &dir.join("postmark/evil.json").to_string_lossy()]);
    wait_events(&db, 1);
    ok(&db, &["subscriptions", "add", "http://127.0.0.1:9/hook\r", "--type", "*"]);

    for args in [&["events"][..], &["subscriptions", "list"]] {
        let shown = ok(&db, args);
        assert!(!shown.contains('\u{1b}') && !shown.contains('\r') && !shown.contains('\u{7}'), "{args:?}: {shown:?}");
    }
    assert!(ok(&db, &["events"]).contains("m-\\u{1b}]0;owned"), "escaped, not dropped");
    // JSON output stays JSON, the text intact.
    let json: Value = serde_json::from_str(ok(&db, &["events", "--json"]).lines().next().unwrap()).unwrap();
    assert_eq!(json["data"]["message_id"], format!("m-{evil}"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_dev_server_refuses_secrets_it_cannot_resolve_and_logs_what_an_operator_must_do() {
    let dir = temp_dir("client-operator");
    let db = dir.join("dev.db");
    let port = free_port();
    let log = dir.join("dev.log");
    let mut command = dev_command(&db, port);
    command.stderr(std::fs::File::create(&log).unwrap());
    let _dev = spawn_dev(command, port);

    let out = run(&db, &["sources", "add", "postmark", "--secret", "ssm:/tidings/postmark"]);
    assert_eq!(out.status.code(), Some(1));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("400") && error.contains("secret: ssm:"), "{error}");

    // SNS cannot reach a laptop: the confirmation URL is in the server's log to visit.
    ok(&db, &["replay", &repo().join("events/ses/subscription-confirmation.json").to_string_lossy()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap().contains("Action=ConfirmSubscription") {
        assert!(Instant::now() < deadline, "no SubscribeURL in the dev server's log");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A successful delivery's attempt shows the subscriber's status code.
    let subscriber = common::Subscriber::start();
    let created: Value =
        serde_json::from_str(&ok(&db, &["subscriptions", "add", &subscriber.url("/hook"), "--type", "*"])).unwrap();
    let id = created["id"].as_str().unwrap();
    ok(&db, &["subscriptions", "test", id]);
    subscriber.wait_for("/hook", 1);
    let attempts = logged_attempts(&db, id, &[]);
    assert!(attempts.contains("delivered") && attempts.contains(" 200 "), "{attempts}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn with_refuse_loopback_the_dev_server_delivers_under_the_production_ssrf_policy() {
    let dir = temp_dir("client-ssrf");
    let db = dir.join("dev.db");
    let port = free_port();
    let mut command = dev_command(&db, port);
    command.arg("--refuse-loopback").stderr(Stdio::null());
    let _dev = spawn_dev(command, port);
    let subscriber = common::Subscriber::start();
    for url in [subscriber.url("/hook"), format!("http://localhost:{}/hook", subscriber.addr.port())] {
        let created: Value = serde_json::from_str(&ok(&db, &["subscriptions", "add", &url, "--type", "*"])).unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        ok(&db, &["subscriptions", "test", &id]);
        let json = logged_attempts(&db, &id, &["--json"]);
        let attempt: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(attempt["outcome"], "unreachable", "{url}: {attempt}");
        assert!(attempt["detail"].as_str().unwrap().contains("loopback"), "{attempt}");
    }
    assert!(subscriber.at("/hook").is_empty(), "nothing reached the loopback subscriber");
    std::fs::remove_dir_all(&dir).ok();
}
