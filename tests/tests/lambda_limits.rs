//! The function binaries under what the Lambda service does to them and an in-process test
//! cannot: an invocation cut off mid-batch (Lambda ends a function that outlives its timeout
//! wherever it is) and many instances of one function at once. The binaries run under the
//! Runtime API emulator with the template's environment, on moto (`tests/tests/lambda.rs` has
//! the full walk through every function).

mod common;
#[path = "lambda/deployment.rs"]
mod deployment;
#[path = "lambda/runtime_api.rs"]
mod runtime_api;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use deployment::{Deployment, moto, subscriber};
use serde_json::{Value, json};
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::ports::DeliverabilityStore;
use tidings_core::ports::EventQuery;
use tidings_core::ports::EventStore;
use tidings_core::ports::SourceStore;
use tidings_core::ports::SubscriptionStore;
use tidings_core::{Headers, ProviderId, Status, Timestamp};
use tidings_tests::lambda_events::{api_gateway_v2, sqs_batch};

/// Passes AWS calls on to moto until `after` of them have gone through; every later call is
/// held without an answer, as a function's calls are when Lambda ends it at its timeout.
struct Cutoff {
    after: usize,
    calls: AtomicUsize,
    reached: tokio::sync::Notify,
    client: reqwest::Client,
}

async fn pass_or_hold(State(cut): State<Arc<Cutoff>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if cut.calls.fetch_add(1, Ordering::SeqCst) >= cut.after {
        cut.reached.notify_one();
        std::future::pending::<()>().await;
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = cut.client.request(parts.method.clone(), format!("{}{path}", moto()));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    match forward.body(body).send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(axum::body::Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

async fn start_cutoff(after: usize) -> (String, Arc<Cutoff>) {
    tidings_ingest::install_crypto_provider();
    let cut = Arc::new(Cutoff {
        after,
        calls: AtomicUsize::new(0),
        reached: tokio::sync::Notify::new(),
        client: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(pass_or_hold).with_state(cut.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, cut)
}

/// Twelve events on four messages of `workspace`, as ingest queues them.
fn batch_for(workspace: &str) -> (Vec<String>, BTreeMap<String, u64>) {
    let statuses = [Status::Sent, Status::Delivered, Status::Opened];
    let mut bodies = Vec::new();
    let mut per_message = BTreeMap::new();
    for i in 0..12 {
        let message = format!("m{}", i % 4);
        let queued = tidings_tests::event(
            workspace,
            statuses[i / 4],
            &message,
            &format!("r{}@example.com", i % 4),
            i as i64,
            &format!("{workspace}-{i}"),
        );
        *per_message.entry(message).or_default() += 1;
        bodies.push(serde_json::to_string(&queued).unwrap());
    }
    (bodies, per_message)
}

/// A processor invocation ended by its timeout after 0, a few, about half and nearly all of its
/// AWS calls (the process killed there, as Lambda does), then the batch handed back by SQS to a
/// new instance: every event stored once, each message state counting each event once, and
/// each event delivered to the subscriber once by the fan-out function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_batch_loses_and_doubles_nothing_when_sqs_hands_the_batch_back() {
    let deployment = Deployment::new().await;
    let (hook, received) = subscriber().await;
    let allow = [("TIDINGS_ALLOW_NETWORKS", "127.0.0.0/8".to_owned())];

    // How many calls an uncut run of such a batch makes, on a workspace of its own.
    let (counting_url, counting) = start_cutoff(usize::MAX).await;
    let (bodies, _) = batch_for("ws_count");
    let processor = deployment.start_at("Processor", &[], &counting_url).await;
    assert_eq!(processor.call(&sqs_batch("events", "count", &bodies)).await, json!({"batchItemFailures": []}));
    drop(processor);
    deployment.drain("DeliveriesQueue").await;
    let calls = counting.calls.load(Ordering::SeqCst);
    assert!(calls > 12, "a batch of twelve events takes more than {calls} calls");

    let mut cuts = Vec::new();
    for (round, after) in [0, 3, calls / 2, calls - 1].into_iter().enumerate() {
        let workspace = format!("ws_cut{round}");
        let subscription = tidings_tests::subscription_to(&workspace, "sub_all", &hook, &["*"]);
        deployment.store.put_subscription(&subscription).await.unwrap();
        let (bodies, per_message) = batch_for(&workspace);
        let event = sqs_batch("events", &format!("cut{round}"), &bodies);

        let (cut_url, cut) = start_cutoff(after).await;
        let doomed = deployment.start_at("Processor", &[], &cut_url).await;
        let answer = doomed.start_invocation(&event);
        cut.reached.notified().await;
        drop(doomed);
        assert!(answer.await.is_err(), "round {round}: the killed instance never answers");
        let query = EventQuery { workspace: workspace.clone(), limit: 100, ..Default::default() };
        let before = deployment.store.events(&query).await.unwrap().events.len();
        // The event items are the batch's last writes (after states, suppressions and counters).
        if after == calls - 1 {
            assert!(before > 0, "round {round}: cut after {after} of {calls} calls, some events were stored");
        }
        cuts.push(format!("after {after} calls, {before} of 12 stored"));

        // SQS makes the batch visible again after the visibility timeout; a new instance takes it.
        let processor = deployment.start("Processor", &[]).await;
        assert_eq!(processor.call(&event).await, json!({"batchItemFailures": []}), "round {round}");
        let tasks = deployment.drain_bodies("DeliveriesQueue").await;
        let fanout = deployment.start("Fanout", &allow).await;
        assert_eq!(
            fanout.call(&sqs_batch("deliveries", &format!("d{round}"), &tasks)).await["batchItemFailures"],
            json!([])
        );

        let query = EventQuery { workspace: workspace.clone(), limit: 100, ..Default::default() };
        let page = deployment.store.events(&query).await.unwrap();
        let stored: Vec<String> = page.events.iter().map(|e| e.id.to_string()).collect();
        let unique: BTreeSet<&String> = stored.iter().collect();
        assert_eq!((stored.len(), unique.len()), (12, 12), "round {round} (cut after {after} calls): each event once");
        // Counted once each too, whatever the killed instance had counted.
        let hour = tidings_core::deliverability::counters::hour_of(page.events[0].data.received_at);
        let counted: u64 = deployment
            .store
            .counters(&workspace, tidings_core::deliverability::Series::Sources, hour - 3600, hour + 3600)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, 12, "round {round} (cut after {after} calls): each event counted once");
        for (message, events) in &per_message {
            let states = deployment.store.message_states(&workspace, message).await.unwrap();
            assert_eq!(states.len(), 1, "round {round}: {message}");
            assert_eq!(states[0].events, *events, "round {round}: {message} counts each event once");
            assert_eq!(states[0].progress, Status::Opened, "round {round}: {message}");
        }
        let mut delivered: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains(&format!("\"{workspace}\"")))
            .map(|(headers, _)| headers["webhook-id"].to_str().unwrap().to_owned())
            .collect();
        delivered.sort();
        let mut expected = stored.clone();
        expected.sort();
        assert_eq!(delivered, expected, "round {round} (cut after {after} calls): each event delivered once");
        assert!(deployment.drain("EventsDeadLetterQueue").await.is_empty(), "round {round}");
    }
    // The figures RELIABILITY.md reports.
    println!(
        "lambda cut-off: a batch of 12 takes {calls} AWS calls; killed {cuts:?}; then every event stored and delivered once"
    );
}

/// Instances of one ingest function taking webhooks at once, each a process of its own as on
/// Lambda, then the processor storing what they queued: no errors, bounded memory per
/// instance, every event stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_instances_under_concurrent_load_answer_every_webhook_in_bounded_memory() {
    const INSTANCES: usize = 4;
    const PER_INSTANCE: usize = 150;
    let deployment = Deployment::new().await;
    let source = tidings_core::source::Source {
        id: tidings_core::source::new_id("src"),
        workspace: "ws_load".into(),
        provider: ProviderId::Postmark,
        description: "load".into(),
        secrets: vec!["postmark-load-secret".into()],
        public_url: None,
        allowed_topics: vec![],
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: Timestamp::now(),
    };
    deployment.store.put_source(&source).await.unwrap();
    let sample: Value =
        serde_json::from_slice(&std::fs::read(common::events_dir().join("postmark/delivery.json")).unwrap()).unwrap();
    let key = SigningKey { secret: "postmark-load-secret", public_url: None };
    let webhook = |n: usize| {
        let mut record = sample.clone();
        record["MessageID"] = json!(format!("load-{n:05}"));
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        let body = signer::sign(
            ProviderId::Postmark,
            &serde_json::to_vec(&record).unwrap(),
            &mut headers,
            &key,
            Timestamp::now(),
        )
        .unwrap();
        api_gateway_v2("POST", &format!("/webhooks/postmark/{}", source.id), "", &headers, &body)
    };

    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(deployment.start("IngestPostmark", &[]).await);
    }
    let started = Instant::now();
    let answered = futures_util::future::join_all(instances.iter().enumerate().map(|(i, function)| async move {
        let mut statuses = BTreeMap::<u64, usize>::new();
        for n in 0..PER_INSTANCE {
            let response = function.call(&webhook(i * PER_INSTANCE + n)).await;
            *statuses.entry(response["statusCode"].as_u64().unwrap_or(0)).or_default() += 1;
        }
        statuses
    }))
    .await;
    let elapsed = started.elapsed();
    for (i, statuses) in answered.iter().enumerate() {
        assert_eq!(statuses, &BTreeMap::from([(200, PER_INSTANCE)]), "instance {i}");
    }
    let peaks: Vec<u64> = instances.iter().map(|f| f.peak_rss_kib().unwrap() / 1024).collect();
    for (i, peak) in peaks.iter().enumerate() {
        assert!(*peak < 64, "instance {i} peaked at {peak} MiB after {PER_INSTANCE} invocations");
    }

    let queued = deployment.drain_bodies("EventsQueue").await;
    assert_eq!(queued.len(), INSTANCES * PER_INSTANCE, "one queued event per webhook");
    let processor = deployment.start("Processor", &[]).await;
    for (i, chunk) in queued.chunks(10).enumerate() {
        assert_eq!(
            processor.call(&sqs_batch("events", &format!("l{i}"), chunk)).await,
            json!({"batchItemFailures": []})
        );
    }
    let mut stored = Vec::new();
    let mut cursor = None;
    loop {
        let query = EventQuery { workspace: "ws_load".into(), limit: 500, cursor, ..Default::default() };
        let page = deployment.store.events(&query).await.unwrap();
        stored.extend(page.events.iter().filter_map(|e| e.data.message_id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let messages: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(
        (stored.len(), messages.len()),
        (INSTANCES * PER_INSTANCE, INSTANCES * PER_INSTANCE),
        "every webhook's event stored once"
    );
    // The figures RELIABILITY.md reports.
    println!(
        "lambda load: {INSTANCES} ingest instances × {PER_INSTANCE} webhooks = {} answered 200 in {:.1} s ({:.0}/s on moto); peak RSS per instance {peaks:?} MiB",
        INSTANCES * PER_INSTANCE,
        elapsed.as_secs_f64(),
        (INSTANCES * PER_INSTANCE) as f64 / elapsed.as_secs_f64(),
    );
}
