//! Faults injected into every DynamoDB and SQS call the pipeline makes, and the accounting that
//! must still hold: every event stored exactly once, each message state exact, every matching
//! event delivered to the subscriber, the dead-letter queues empty.
//!
//! A proxy on loopback stands between the AWS SDK and moto. At a set rate it answers a call
//! itself, before moto sees it (throttling, a 500), or passes the call on and then loses the
//! answer (a 503, a reset connection, an answer slower than the SDK's attempt timeout): the
//! second kind is the hard one, since the write was made and the caller does not know it.
//!
//! The SQS event sources of the processor and fan-out functions are played by this test, as
//! Lambda plays them: receive a batch without faults, call the handler, delete what it did not
//! report as failed and make the rest visible again. A provider whose webhook gets a 5xx posts
//! it again. `TIDINGS_FAULT_RATE` (default 0.1) and `TIDINGS_SOAK_EVENTS` (extra generated
//! Postmark deliveries, default 50) size the run; `infra/soak.sh` runs it with 10,000.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{expected_ids, fixture, samples};
use tidings_aws::{DynamoStore, QueueUrls, SqsQueues};
use tidings_core::pipeline::{Fanout, Processor};
use tidings_core::ports::EventStore;
use tidings_core::ports::QueueName;
use tidings_core::ports::SubscriptionStore;
use tidings_core::{Headers, ProviderId, Status};

/// How long the SDK waits for one attempt before it retries (the production default is longer;
/// the "slow answer" fault outlasts this one).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// 400 ThrottlingException, before moto sees the call.
    Throttled,
    /// 500 InternalServerError, before moto sees the call.
    ServerError,
    /// Passed on; the answer replaced by a 503.
    UnavailableAfter,
    /// Passed on; the connection cut in the middle of the answer.
    ResetAfter,
    /// Passed on; the answer held past the SDK's attempt timeout.
    SlowAfter,
}

const FAULTS: [Fault; 5] =
    [Fault::Throttled, Fault::ServerError, Fault::UnavailableAfter, Fault::ResetAfter, Fault::SlowAfter];

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    /// Faults per million calls.
    rate_ppm: u64,
    /// Added before each call is passed on (a slow backend, so a deadline falls mid-batch).
    delay: Duration,
    state: AtomicU64,
    calls: AtomicUsize,
    injected: Mutex<BTreeMap<Fault, usize>>,
}

impl Proxy {
    /// A deterministic stream of choices (xorshift), so a failing run can be repeated.
    fn next(&self) -> u64 {
        let mut x = self.state.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self.state.compare_exchange(x, y, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return y,
                Err(current) => x = current,
            }
        }
    }

    fn pick(&self) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let roll = self.next();
        if roll % 1_000_000 >= self.rate_ppm {
            return None;
        }
        let fault = FAULTS[(roll / 1_000_000) as usize % FAULTS.len()];
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
        Some(fault)
    }
}

fn aws_error(status: StatusCode, code: &str) -> Response {
    let body = format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#);
    (status, [("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", code)], body).into_response()
}

async fn proxy(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let fault = proxy.pick();
    match fault {
        Some(Fault::Throttled) => return aws_error(StatusCode::BAD_REQUEST, "ThrottlingException"),
        Some(Fault::ServerError) => return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        _ => {}
    }
    tokio::time::sleep(proxy.delay).await;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = proxy.client.request(parts.method.clone(), format!("{}{path}", proxy.upstream));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.body(body).send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    match fault {
        Some(Fault::UnavailableAfter) => aws_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        Some(Fault::ResetAfter) => {
            // The status line and half the body, then the connection drops.
            let half = bytes.slice(..bytes.len() / 2);
            let stream = futures_util::stream::iter([
                Ok(half),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")),
            ]);
            let mut response = Response::new(Body::from_stream(stream));
            *response.status_mut() = status;
            response
        }
        Some(Fault::SlowAfter) => {
            tokio::time::sleep(ATTEMPT_TIMEOUT + Duration::from_millis(100)).await;
            (status, bytes).into_response()
        }
        _ => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
    }
}

/// Starts the proxy in front of `upstream`; returns its URL.
async fn start_proxy(upstream: String, rate: f64, delay: Duration) -> (String, Arc<Proxy>) {
    // reqwest is built without a default TLS provider (as tidings' own clients are).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let proxy = Arc::new(Proxy {
        upstream,
        client: reqwest::Client::new(),
        rate_ppm: (rate * 1_000_000.0) as u64,
        delay,
        state: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        calls: AtomicUsize::new(0),
        injected: Mutex::default(),
    });
    let app = axum::Router::new().fallback(proxy_route).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, proxy)
}

async fn proxy_route(state: State<Arc<Proxy>>, request: Request) -> Response {
    proxy(state, request).await
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Concurrent invocations of a function while its queue has messages.
const LANES: usize = 4;

/// Plays a Lambda SQS event source over `url` until the queue is empty, with `lanes` concurrent
/// pollers. Returns invocations.
async fn drain<F, Fut>(sqs: &aws_sdk_sqs::Client, url: &str, lanes: usize, handler: F) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let receiving = tokio::sync::Mutex::new(());
    let lanes = (0..lanes).map(|_| poll(sqs, url, &handler, &receiving));
    futures_util::future::join_all(lanes).await.into_iter().sum()
}

/// Messages being handled by a poller, by SQS message id.
static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
/// Messages handed to a poller while another was still handling them.
static DOUBLE_RECEIVES: AtomicUsize = AtomicUsize::new(0);

/// One poller: receive (no faults), invoke, delete what succeeded, make the failures visible
/// again at once; until a receive comes back empty. Returns invocations.
///
/// The pollers take turns to call ReceiveMessage: moto's has no lock, and two calls at once can
/// hand the same message to both (SQS's own at-least-once delivery allows that too, rarely; the
/// fan-out then sends it once only if the first copy has claimed it before the second looks).
/// The run counts any message handed out twice while in flight.
async fn poll<F, Fut>(sqs: &aws_sdk_sqs::Client, url: &str, handler: &F, receiving: &tokio::sync::Mutex<()>) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let mut invocations = 0;
    loop {
        let turn = receiving.lock().await;
        let page = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        drop(turn);
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            return invocations;
        }
        {
            let mut in_flight = IN_FLIGHT.lock().unwrap();
            for message in &messages {
                if !in_flight.insert(message.message_id.clone().unwrap_or_default()) {
                    DOUBLE_RECEIVES.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut event = SqsEvent::default();
        for message in &messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.body = message.body.clone();
            record.attributes =
                message.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
            event.records.push(record);
        }
        invocations += 1;
        let response = handler(event).await;
        {
            let mut in_flight = IN_FLIGHT.lock().unwrap();
            for message in &messages {
                in_flight.remove(message.message_id.as_deref().unwrap_or_default());
            }
        }
        let failed: BTreeSet<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        for message in &messages {
            let handle = message.receipt_handle.clone().unwrap();
            if failed.contains(message.message_id.as_deref().unwrap_or_default()) {
                sqs.change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();
            }
        }
    }
}

/// A Postmark delivery of its own message, from the sample.
fn generated_delivery(sample: &serde_json::Value, n: usize) -> Vec<u8> {
    let mut record = sample.clone();
    record["MessageID"] = serde_json::json!(format!("soak-{n:06}"));
    record["Recipient"] = serde_json::json!(format!("soak-{n}@example.com"));
    serde_json::to_vec(&record).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_every_event_is_stored_once_and_delivered() {
    let rate: f64 = env_or("TIDINGS_FAULT_RATE", 0.1);
    let generated: usize = env_or("TIDINGS_SOAK_EVENTS", 50);
    let moto = std::env::var("TIDINGS_MOTO_ENDPOINT")
        .expect("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto");
    let (proxy_url, proxy) = start_proxy(moto.clone(), rate, Duration::ZERO).await;

    // Direct clients set up the table and queues and play the event sources; the pipeline's own
    // clients go through the proxy.
    let direct = tidings_aws::sdk_config_for_endpoint(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let faulty = tidings_aws::sdk_config_for_endpoint(&proxy_url)
        .await
        .into_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).build(),
        )
        .build();
    let run = format!("faults-{}", std::process::id());
    let table = run.clone();
    tidings_aws::dynamo::create_table(&aws_sdk_dynamodb::Client::new(&direct), &table).await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&faulty), table);
    let (events, events_dlq) = common::queue_with_dead_letters(&sqs, &format!("{run}-events")).await;
    let (deliveries, deliveries_dlq) = common::queue_with_dead_letters(&sqs, &format!("{run}-deliveries")).await;
    // SES sends that failed retryably become resend tasks on the resend queue; resending is
    // tested elsewhere (tests/tests/redrive.rs), so here they are only counted.
    let (resend, resend_dlq) = common::queue_with_dead_letters(&sqs, &format!("{run}-resend")).await;
    let urls = QueueUrls {
        queues: [
            (QueueName::Events, events.clone()),
            (QueueName::Deliveries, deliveries.clone()),
            (QueueName::Resend, resend.clone()),
        ]
        .into(),
        dead_letters: [
            (QueueName::Events, events_dlq.clone()),
            (QueueName::Deliveries, deliveries_dlq.clone()),
            (QueueName::Resend, resend_dlq.clone()),
        ]
        .into(),
    };
    let queues = SqsQueues::new(aws_sdk_sqs::Client::new(&faulty), urls.clone());
    // What is read back at the end, and the set-up (sources, keys, the subscription), goes
    // around the proxy: the faults are for the pipeline.
    let reader = DynamoStore::new(aws_sdk_dynamodb::Client::new(&direct), run.clone());

    // A subscriber to every event, counting each webhook-id it receives.
    let received: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            *log.lock().unwrap().entry(id).or_default() += 1;
            StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut f = fixture(reader.clone(), SqsQueues::new(sqs.clone(), urls)).await;
    let ingest = tidings_core::pipeline::Ingest::new(store.clone(), queues.clone(), common::Offline)
        .without_subscription_confirmation();
    f.app = tidings_ingest::router(ingest, tidings_ingest::Options { queue_route: true, only: None });
    let subscription = tidings_tests::subscription_to(common::WS, "sub_faults", &hook, &["*"]);
    reader.put_subscription(&subscription).await.unwrap();
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        store.clone(),
        queues.clone(),
        tidings_fanout::Deliverer::new(loopback, Duration::from_secs(5)).unwrap(),
    );

    // Every sample, then the generated deliveries; a 5xx is answered by posting again, as
    // providers do (which also makes some posts a provider's retry of an accepted webhook: the
    // faults after moto took the message).
    let postmark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::events_dir().join("postmark/delivery.json")).unwrap()).unwrap();
    let mut posts: Vec<(ProviderId, Vec<u8>, Headers)> = Vec::new();
    for (provider, path) in samples() {
        posts.push((provider, std::fs::read(&path).unwrap(), common::sample_headers(&path)));
    }
    for n in 0..generated {
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        posts.push((ProviderId::Postmark, generated_delivery(&postmark, n), headers));
    }
    // Posted fifty at a time, concurrently, as providers post; drained between chunks by several
    // concurrent invocations of each function, as Lambda scales an event source.
    let provider_retries = AtomicUsize::new(0);
    let post = |(provider, body, headers): (ProviderId, Vec<u8>, Headers)| {
        let (f, provider_retries) = (&f, &provider_retries);
        async move {
            loop {
                let (status, answer) = f.post_signed(provider, body.clone(), headers.clone()).await;
                if status.is_server_error() {
                    let retries = provider_retries.fetch_add(1, Ordering::Relaxed);
                    assert!(retries < 10_000, "providers gave up retrying: {answer}");
                    continue;
                }
                assert_eq!(status, StatusCode::OK, "{provider}: {answer}");
                return;
            }
        }
    };
    let process = |event| tidings_processor::handle(&processor, &queues, event);
    let deliver = |event| tidings_fanout::handle(&fanout, &queues, event);
    let mut posts = posts.into_iter().peekable();
    while posts.peek().is_some() {
        futures_util::future::join_all(posts.by_ref().take(50).map(post)).await;
        drain(&sqs, &events, LANES, process).await;
        drain(&sqs, &deliveries, LANES, deliver).await;
    }
    loop {
        let processed = drain(&sqs, &events, LANES, process).await;
        let delivered = drain(&sqs, &deliveries, LANES, deliver).await;
        if processed + delivered == 0 {
            break;
        }
    }
    let provider_retries = provider_retries.into_inner();

    // The accounting, read without faults.
    let stored = f.stored_ids().await;
    let samples_expected = expected_ids();
    let missing: Vec<&String> = samples_expected.difference(&stored).collect();
    let dead_events = common::receive_all(&sqs, &events_dlq).await;
    let dead_deliveries = common::receive_all(&sqs, &deliveries_dlq).await;
    let reasons: Vec<String> = dead_events
        .iter()
        .chain(&dead_deliveries)
        .map(|m| {
            format!(
                "{:?}",
                m.message_attributes
                    .as_ref()
                    .and_then(|a| a.get("tidings-reason"))
                    .and_then(|r| r.string_value.clone())
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} sample events not stored ({:?}…); dead letters: {reasons:?}; faults {:?}",
        missing.len(),
        missing.first(),
        proxy.injected.lock().unwrap()
    );
    assert_eq!(stored.len(), samples_expected.len() + generated, "and nothing else: each generated delivery once");
    common::check_states_and_suppressions(&reader).await;
    for n in (0..generated).step_by((generated / 20).max(1)) {
        let states = reader.message_states(common::WS, &format!("soak-{n:06}")).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!((states[0].status, states[0].events), (Status::Delivered, 1), "soak-{n:06}");
    }
    assert!(dead_events.is_empty() && dead_deliveries.is_empty(), "dead letters: {dead_events:?} {dead_deliveries:?}");
    let resends = common::receive_all(&sqs, &resend).await.len();
    assert!(common::receive_all(&sqs, &resend_dlq).await.is_empty());

    let received = received.lock().unwrap().clone();
    let delivered: BTreeSet<String> = received.keys().cloned().collect();
    assert_eq!(delivered, stored, "every stored event delivered to the subscriber");
    let twice = received.values().filter(|count| **count > 1).count();
    let injected = proxy.injected.lock().unwrap().clone();
    // The figures RELIABILITY.md reports.
    println!(
        "faults: {} calls, {} faults injected {injected:?}; {} events stored once; {provider_retries} provider retries; \
         {} delivered, {twice} of them more than once; \
         {resends} SES resend tasks queued; dead letters 0; {} messages handed out twice at once",
        proxy.calls.load(Ordering::Relaxed),
        injected.values().sum::<usize>(),
        stored.len(),
        delivered.len(),
        DOUBLE_RECEIVES.load(Ordering::Relaxed),
    );
    assert_eq!(injected.len(), FAULTS.len(), "every kind of fault was tried: {injected:?}");
    // Copies of a task (a SendMessageBatch retried after its answer was lost), handled at once
    // by two pollers, find the delivery claimed by the other; later ones, and retries after a
    // fault that followed the subscriber's 2xx, find it marked. Only losing the mark's write six
    // times in a row (about 4% of calls here fail before moto sees them: 0.04^6) and a copy
    // arriving after the claim's 5-minute lease would send one twice.
    assert_eq!(twice, 0, "deliveries made more than once");
}

/// A processor invocation cut off mid-batch (a Lambda timeout: the process is frozen or killed
/// wherever it was), then the batch delivered again by SQS, as it is after the visibility
/// timeout: every event stored once, each message state counting each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_cut_off_mid_batch_loses_and_doubles_nothing_when_the_batch_comes_back() {
    use tidings_tests::{event, hard_bounce};
    let moto = std::env::var("TIDINGS_MOTO_ENDPOINT")
        .expect("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto");
    // No faults; every call 20 ms slower, so a deadline lands between writes.
    let (proxy_url, _) = start_proxy(moto.clone(), 0.0, Duration::from_millis(20)).await;
    let direct = tidings_aws::sdk_config_for_endpoint(&moto).await;
    let slow = tidings_aws::sdk_config_for_endpoint(&proxy_url).await;
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let run = format!("cutoff-{}", std::process::id());
    tidings_aws::dynamo::create_table(&aws_sdk_dynamodb::Client::new(&direct), &run).await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&slow), run.clone());
    let reader = DynamoStore::new(aws_sdk_dynamodb::Client::new(&direct), run.clone());
    let (events, events_dlq) = common::queue_with_dead_letters(&sqs, &format!("{run}-events")).await;
    let urls = QueueUrls {
        queues: [(QueueName::Events, events)].into(),
        dead_letters: [(QueueName::Events, events_dlq.clone())].into(),
    };
    let queues = SqsQueues::new(aws_sdk_sqs::Client::new(&slow), urls);
    let processor = Processor::new(store, 90);

    // Ten events over four messages: states fold several events each, and a hard bounce
    // suppresses its recipient.
    let ws = "ws_cutoff";
    let batch = vec![
        event(ws, Status::Sent, "m1", "a@example.com", 1, "k1"),
        event(ws, Status::Delivered, "m1", "a@example.com", 2, "k2"),
        event(ws, Status::Opened, "m1", "a@example.com", 3, "k3"),
        event(ws, Status::Clicked, "m1", "a@example.com", 4, "k4"),
        event(ws, Status::Sent, "m2", "b@example.com", 1, "k5"),
        hard_bounce(ws, "m2", "b@example.com", 2, "k6"),
        event(ws, Status::Sent, "m3", "c@example.com", 1, "k7"),
        event(ws, Status::Delivered, "m3", "c@example.com", 2, "k8"),
        event(ws, Status::Deferred, "m4", "d@example.com", 1, "k9"),
        event(ws, Status::Delivered, "m4", "d@example.com", 2, "k10"),
    ];
    let bodies: Vec<String> = batch.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let invoke = || {
        let mut sqs_event = SqsEvent::default();
        for (i, body) in bodies.iter().enumerate() {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m{i}"));
            record.body = Some(body.clone());
            sqs_event.records.push(record);
        }
        tidings_processor::handle(&processor, &queues, sqs_event)
    };
    let stored_count = || async {
        let query = tidings_core::ports::EventQuery { workspace: ws.into(), limit: 100, ..Default::default() };
        reader.events(&query).await.unwrap().events.len()
    };

    // Cut off again and again, each time later than the last, until a cut falls mid-batch
    // (some of its events stored, not all); then let the batch run to its end.
    let mut cut_at = Vec::new();
    for deadline in (1..=60).map(|i| i * 50) {
        let cut = tokio::time::timeout(Duration::from_millis(deadline), invoke()).await;
        if cut.is_ok() {
            break;
        }
        // Writes already sent land or not, as with a frozen Lambda; give them time to settle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stored = stored_count().await;
        cut_at.push(stored);
        if stored > 0 && stored < batch.len() {
            break;
        }
    }
    assert!(cut_at.iter().any(|n| *n > 0 && *n < batch.len()), "some cut fell mid-batch: {cut_at:?}");
    let response = invoke().await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);

    assert_eq!(stored_count().await, batch.len(), "every event stored once");
    let events_per_message = [
        ("m1", 4, Status::Clicked),
        ("m2", 2, Status::Bounced),
        ("m3", 2, Status::Delivered),
        ("m4", 2, Status::Delivered),
    ];
    for (message, count, status) in events_per_message {
        let states = reader.message_states(ws, message).await.unwrap();
        assert_eq!(states.len(), 1, "{message}");
        assert_eq!((states[0].events, states[0].status), (count, status), "{message}: each event folded once");
    }
    let suppressed: Vec<String> = reader.suppressions(ws).await.unwrap().into_iter().map(|s| s.recipient).collect();
    assert_eq!(suppressed, ["b@example.com"]);
    assert!(common::receive_all(&sqs, &events_dlq).await.is_empty());
}
