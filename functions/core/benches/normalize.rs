//! Verify + normalize + serialize, per provider, against the floor of parsing the same bytes
//! into a generic `serde_json::Value` (and writing it back out). Numbers and how to read them:
//! BENCHMARKS.md. Run: `cargo bench -p tidings-core --bench normalize`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::auth::sns::CertificateCache;
use tidings_core::auth::{SourceAuth, VerifyContext};
use tidings_core::pipeline;
use tidings_core::{Headers, NormalizeContext, ProviderId, Timestamp, Transport, Webhook};

/// The system allocator, counting the bytes live and their peak while `COUNTING` is set (one
/// relaxed load per allocation otherwise, so the timings are not disturbed).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn counted(change: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(change, Ordering::Relaxed) + change;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            counted(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) };
        counted(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            counted(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap `work` holds at once beyond what was live before it (its result included).
fn peak_heap<T>(work: impl FnOnce() -> T) -> usize {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let result = work();
    COUNTING.store(false, Ordering::Relaxed);
    drop(result);
    PEAK.load(Ordering::Relaxed).max(0) as usize
}

const TWILIO_URL: &str = "https://tidings.example.com/webhooks/twilio/src_bench";

struct Case {
    label: String,
    provider: ProviderId,
    body: Vec<u8>,
    headers: Headers,
    auth: SourceAuth,
    transport: Transport,
    events: u64,
}

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_764_311_400).unwrap()
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(path)).unwrap()
}

/// A signed request for `provider`, as the provider would post it.
fn case(label: &str, provider: ProviderId, body: Vec<u8>) -> Case {
    let mut headers = Headers::new();
    headers.insert("svix-id", "msg_bench");
    let (secret, verify_secret) = match signer::generate_key_pair(provider.provider().authentication()) {
        Some(pair) => pair.unwrap(),
        None if provider == ProviderId::Resend => {
            ("whsec_YmVuY2gtc2VjcmV0".to_owned(), "whsec_YmVuY2gtc2VjcmV0".to_owned())
        }
        None => ("bench-secret".to_owned(), "bench-secret".to_owned()),
    };
    let (body, transport) = if provider.provider().authentication() == tidings_core::auth::Authentication::SnsSignature
    {
        (body, Transport::Queue)
    } else {
        let key = SigningKey { secret: &secret, public_url: Some(TWILIO_URL) };
        (signer::sign(provider, &body, &mut headers, &key, now()).unwrap(), Transport::Http)
    };
    let mut auth = SourceAuth::with_secret(verify_secret);
    auth.public_url = Some(TWILIO_URL.into());
    let events = run(&Case {
        label: String::new(),
        provider,
        body: body.clone(),
        headers: headers.clone(),
        auth: auth.clone(),
        transport,
        events: 0,
    });
    Case { label: label.to_owned(), provider, body, headers, auth, transport, events: events as u64 }
}

/// The request verified, then normalized.
fn verified_and_normalized(case: &Case) -> tidings_core::providers::Normalized<'_> {
    let certificates = CertificateCache::new();
    let webhook = Webhook { body: &case.body, headers: &case.headers, query: None, transport: case.transport };
    let provider = case.provider.provider();
    provider.verify(&webhook, &case.auth, &VerifyContext { now: now(), certificates: &certificates }).unwrap();
    provider.normalize(&webhook, &NormalizeContext { workspace: "ws_bench", received_at: now() }).unwrap()
}

/// verify + normalize + serialize every event; returns the number of events.
fn run(case: &Case) -> usize {
    let normalized = verified_and_normalized(case);
    let mut out = Vec::with_capacity(case.body.len() * 2);
    for event in &normalized.events {
        serde_json::to_writer(&mut out, &event.event).unwrap();
        out.push(b'\n');
    }
    black_box(out);
    normalized.events.len()
}

/// What ingest holds for one request: the request verified and normalized, then its events
/// written as the queue messages they become (`QueuedEvent`: the event, its raw provider record
/// and the source) `ENQUEUE_CHUNK` at a time, each chunk dropped once "sent", as `Ingest` does
/// (the same `pipeline::next_messages`). Returns the number of bytes "sent".
fn ingest_messages(case: &Case) -> usize {
    let mut events = verified_and_normalized(case).events.into_iter().enumerate();
    let mut sent = 0;
    loop {
        let messages = pipeline::next_messages(&mut events, "src_bench").expect("bench events serialize");
        if messages.is_empty() {
            return sent;
        }
        sent += black_box(messages).iter().map(|m| m.body.len()).sum::<usize>();
    }
}

/// Peak heap per request beside the input's size, for tidings' ingest and for the `Value` floor
/// (printed before the timings; `infra/bench/normalize.sh` keeps these lines).
fn memory(cases: &[Case]) {
    for case in cases {
        let input = case.body.len();
        let tidings = peak_heap(|| ingest_messages(case));
        let floor = peak_heap(|| {
            let value: Value = serde_json::from_slice(&case.body).unwrap_or(Value::Null);
            (serde_json::to_vec(&value).unwrap(), value)
        });
        println!(
            "memory {}: input {input} B; tidings peak {tidings} B ({:.2}x input); floor peak {floor} B ({:.2}x)",
            case.label,
            tidings as f64 / input as f64,
            floor as f64 / input as f64
        );
    }
}

/// A SendGrid batch of `n` events cycling through every event type, each with its own id.
fn sendgrid_batch(n: usize) -> Vec<u8> {
    let sample: Vec<Value> = serde_json::from_slice(&read("sendgrid/batch-every-type.json")).unwrap();
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            let mut event = sample[i % sample.len()].clone();
            event["sg_event_id"] = Value::String(format!("bench-{i:06}-{}", event["sg_event_id"].as_str().unwrap()));
            event["email"] = Value::String(format!("user{}@example.com", i % 97));
            event
        })
        .collect();
    serde_json::to_vec(&batch).unwrap()
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        case("sendgrid 100000-event batch", ProviderId::Sendgrid, sendgrid_batch(100_000)),
        case("sendgrid 1000-event batch", ProviderId::Sendgrid, sendgrid_batch(1000)),
    ];
    // Each provider's own example payload (`Provider::example`).
    for provider in ProviderId::ALL {
        let path = format!("{provider}/{}", provider.provider().example());
        cases.push(case(&format!("{provider} {path}"), provider, read(&path)));
    }
    cases
}

fn normalize(c: &mut Criterion) {
    let cases = cases();
    memory(&cases);
    for case in cases {
        let mut group = c.benchmark_group(&case.label);
        if case.events > 10_000 {
            // ~0.3 s an iteration: fewer samples keep the run short.
            group.sample_size(10);
        }
        group.throughput(Throughput::Elements(case.events));
        group.bench_function("tidings verify+normalize+serialize", |b| b.iter(|| run(black_box(&case))));
        // Twilio posts a form, not JSON: there is no JSON floor to compare with.
        if case.provider != ProviderId::Twilio {
            group.bench_function("floor: Value parse", |b| {
                b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&case.body)).unwrap()))
            });
            group.bench_function("floor: Value parse + to_vec", |b| {
                b.iter(|| {
                    let value: Value = serde_json::from_slice(black_box(&case.body)).unwrap();
                    black_box(serde_json::to_vec(&value).unwrap())
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = normalize
}
criterion_main!(benches);
