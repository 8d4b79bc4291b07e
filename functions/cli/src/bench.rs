//! `tidings bench pipeline`: the local pipeline end to end, measured. For each batch size it
//! starts a fresh `tidings dev` (this same binary, its own temporary database and port), adds a
//! subscription to a subscriber served by the bench itself, posts signed SendGrid batches with
//! a fixed number of requests in flight, and times every event from the start of the POST that
//! carried it to its delivery at the subscriber: HTTP ingest, verification, normalization, the
//! events queue, the processor's store, fan-out and a signed delivery. Numbers and how to read
//! them: BENCHMARKS.md.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_local::Sqlite;
use tokio::sync::{Notify, Semaphore};

use crate::{Failure, dev};
use tidings_core::ports::SourceStore;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Bench,
}

#[derive(clap::Subcommand)]
enum Bench {
    /// `tidings dev` end to end: ingest → stored → delivered to a local subscriber.
    Pipeline(PipelineArgs),
}

#[derive(clap::Args)]
struct PipelineArgs {
    /// Events per request (SendGrid posts batches of up to ~1,000); comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,1000")]
    batch: Vec<usize>,
    /// Events posted per batch size.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Requests in flight at once (SendGrid keeps several connections open).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Offer events at this rate (events per second, paced requests) instead of as fast as
    /// the requests in flight allow: latency at a sustained load below saturation.
    #[arg(long)]
    rate: Option<f64>,
    /// Give up on a batch size when its events are not all delivered within this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// SendGrid event types the batches cycle through (one canonical type each).
const TYPES: [&str; 4] = ["processed", "delivered", "open", "click"];

pub async fn run(args: Args) -> Result<(), Failure> {
    let Bench::Pipeline(args) = args.command;
    if args.batch.contains(&0) || args.events == 0 || args.concurrency == 0 {
        return Err(Failure::Usage("--batch, --events and --concurrency must be at least 1".into()));
    }
    let offered =
        args.rate.map_or("as fast as they are answered".to_owned(), |r| format!("offered at {r:.0} events/s"));
    println!(
        "tidings bench pipeline: {} events per batch size, {} requests in flight at most, {offered}, {} cores",
        args.events,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("\n| events per request | requests | events | ingest events/s | end-to-end events/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for &batch in &args.batch {
        let result = run_one(batch, &args).await?;
        println!(
            "| {batch} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
            result.requests,
            result.events,
            result.events as f64 / result.ingest.as_secs_f64(),
            result.events as f64 / result.end_to_end.as_secs_f64(),
            ms(result.p50),
            ms(result.p99),
            ms(result.max)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Outcome {
    requests: usize,
    events: usize,
    /// First POST started → last POST answered.
    ingest: Duration,
    /// First POST started → last event delivered.
    end_to_end: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// What the subscriber saw: each event's delivery time, keyed by the request that carried it.
struct Received {
    seen: HashSet<String>,
    arrivals: Vec<(usize, Instant)>,
    expected: usize,
}

#[derive(Clone)]
struct Subscriber {
    received: Arc<Mutex<Received>>,
    done: Arc<Notify>,
}

async fn receive(State(sub): State<Subscriber>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let at = Instant::now();
    // Retries of a delivery carry the same webhook-id: count each event once.
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let request = serde_json::from_slice::<Value>(&body).ok().and_then(|event| {
        let provider_id = event["data"]["provider_event_id"].as_str()?.to_owned();
        provider_id.strip_prefix('b')?.split('-').next()?.parse::<usize>().ok()
    });
    let (Some(request), Ok(mut received)) = (request, sub.received.lock()) else {
        return StatusCode::BAD_REQUEST;
    };
    if received.seen.insert(id) {
        received.arrivals.push((request, at));
        if received.arrivals.len() >= received.expected {
            sub.done.notify_one();
        }
    }
    StatusCode::NO_CONTENT
}

/// A `tidings dev` child process, killed and its directory removed when dropped.
struct DevServer {
    child: Child,
    dir: PathBuf,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `tidings dev` on a free port and returns once it says it is listening.
fn start_dev(dir: &Path) -> Result<(DevServer, PathBuf), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::Usage(format!("bench: {what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| fail("temporary directory", &e))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail("no free port", &e))?
        .port();
    let db = dir.join("dev.db");
    let exe = std::env::current_exe().map_err(|e| fail("cannot find this program", &e))?;
    let mut child = Command::new(exe)
        .args(["dev", "--addr", &format!("127.0.0.1:{port}"), "--db"])
        .arg(&db)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail("cannot start tidings dev", &e))?;
    let stdout = child.stdout.take();
    let server = DevServer { child, dir: dir.to_owned() };
    let mut lines = BufReader::new(stdout.ok_or_else(|| fail("tidings dev", &"no stdout"))?).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(fail("reading tidings dev's output", &e)),
            None => return Err(fail("tidings dev", &"exited before listening")),
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((server, db))
}

/// One SendGrid batch of `size` events for request `request`, each event its own message.
fn batch_body(request: usize, size: usize) -> Vec<u8> {
    let now = Timestamp::now().unix_seconds();
    let events: Vec<Value> = (0..size)
        .map(|i| {
            json!({
                "email": format!("user{}@example.com", (request * size + i) % 997),
                "timestamp": now,
                "event": TYPES[i % TYPES.len()],
                "sg_event_id": format!("b{request}-{i}"),
                "sg_message_id": format!("m{request}x{}.filter0001", i / TYPES.len()),
                "category": ["bench"],
                "url": "https://example.com/welcome",
            })
        })
        .collect();
    serde_json::Value::Array(events).to_string().into_bytes()
}

async fn run_one(batch: usize, args: &PipelineArgs) -> Result<Outcome, Failure> {
    let requests = args.events.div_ceil(batch);
    let events = requests * batch;
    let dir = std::env::temp_dir().join(format!("tidings-bench-{}-{batch}", std::process::id()));
    let (_server, db_path) = start_dev(&dir)?;
    let config =
        dev::read_config(&db_path).ok_or_else(|| Failure::Usage("bench: tidings dev wrote no dev.json".into()))?;
    let db = Sqlite::open(&db_path).map_err(|e| Failure::Usage(format!("bench: {e}")))?;
    let sources = db.sources(&config.workspace).await.map_err(|e| Failure::Usage(format!("bench: {e}")))?;
    let source = sources
        .into_iter()
        .find(|s| s.provider == ProviderId::Sendgrid)
        .ok_or_else(|| Failure::Usage("bench: the dev workspace has no SendGrid source".into()))?;

    let subscriber = Subscriber {
        received: Arc::new(Mutex::new(Received { seen: HashSet::new(), arrivals: Vec::new(), expected: events })),
        done: Arc::new(Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::Usage(format!("bench: subscriber: {e}")))?;
    let sub_url = format!("http://{}/hook", listener.local_addr().map_err(|e| Failure::Usage(e.to_string()))?);
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(subscriber.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/subscriptions", config.api))
        .bearer_auth(&config.api_key)
        .json(&json!({"url": sub_url, "types": ["*"], "description": "bench"}))
        .send()
        .await
        .map_err(|e| Failure::Usage(format!("bench: creating the subscription: {e}")))?;
    if !created.status().is_success() {
        return Err(Failure::Usage(format!("bench: creating the subscription: {}", created.status())));
    }

    let url = format!("{}/webhooks/sendgrid/{}", config.api, source.id);
    let secret = source.signing_secret().unwrap_or_default().to_owned();
    let bodies: Vec<Vec<u8>> = (0..requests).map(|r| batch_body(r, batch)).collect();
    let started: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; requests]));
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let mut posts = tokio::task::JoinSet::new();
    let first = Instant::now();
    for (request, body) in bodies.into_iter().enumerate() {
        if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
            let due = first + Duration::from_secs_f64((request * batch) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = limit.clone().acquire_owned().await.map_err(|e| Failure::Usage(e.to_string()))?;
        let (http, url, secret, started) = (http.clone(), url.clone(), secret.clone(), started.clone());
        posts.spawn(async move {
            let _permit = permit;
            let mut headers = Headers::new();
            let key = SigningKey { secret: &secret, public_url: None };
            let body = signer::sign(ProviderId::Sendgrid, &body, &mut headers, &key, Timestamp::now())?;
            let mut post = http.post(&url).body(body);
            for (name, value) in headers.iter() {
                post = post.header(name, value);
            }
            if let Ok(mut started) = started.lock() {
                started[request] = Some(Instant::now());
            }
            let response = post.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() { Ok(()) } else { Err(format!("request {request}: {status}: {text}")) }
        });
    }
    while let Some(result) = posts.join_next().await {
        result
            .map_err(|e| Failure::Usage(format!("bench: {e}")))?
            .map_err(|e| Failure::Usage(format!("bench: {e}")))?;
    }
    let ingest = first.elapsed();

    let delivered = tokio::time::timeout(Duration::from_secs(args.timeout), async {
        loop {
            let notified = subscriber.done.notified();
            if subscriber.received.lock().map(|r| r.arrivals.len() >= events).unwrap_or(true) {
                return;
            }
            notified.await;
        }
    })
    .await;
    serving.abort();
    let received = subscriber.received.lock().map_err(|_| Failure::Usage("bench: subscriber state lost".into()))?;
    if delivered.is_err() {
        return Err(Failure::Usage(format!(
            "bench: batch {batch}: {} of {events} events delivered within {} s",
            received.arrivals.len(),
            args.timeout
        )));
    }
    let started = started.lock().map_err(|_| Failure::Usage("bench: post times lost".into()))?;
    let mut latencies: Vec<Duration> = received
        .arrivals
        .iter()
        .filter_map(|(request, at)| Some(at.saturating_duration_since((*started.get(*request)?)?)))
        .collect();
    latencies.sort_unstable();
    let last = received.arrivals.iter().map(|(_, at)| *at).max().unwrap_or(first);
    let pick = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    Ok(Outcome {
        requests,
        events,
        ingest,
        end_to_end: last.saturating_duration_since(first),
        p50: pick(0.50).copied().unwrap_or_default(),
        p99: pick(0.99).copied().unwrap_or_default(),
        max: latencies.last().copied().unwrap_or_default(),
    })
}
