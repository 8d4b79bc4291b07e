//! The AWS adapters through the real AWS SDK against moto's server on loopback, which
//! `./scripts/test.sh` installs and starts (`TIDINGS_MOTO_ENDPOINT`). Each test makes its own
//! table and queues.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_sqs::types::QueueAttributeName;
use common::{expected_ids, fixture, samples, sqs_event};
use tidings_aws::{DynamoStore, QueueUrls, SqsQueues};
use tidings_core::event::Status;
use tidings_core::pipeline::Processor;
use tidings_core::ports::EventStore;
use tidings_core::ports::SourceStore;
use tidings_core::ports::SubscriptionStore;
use tidings_core::ports::{EventQuery, Outgoing, Queue, QueueName, Recorded, StoreError};
use tidings_core::timestamp::Timestamp;

fn endpoint() -> String {
    std::env::var("TIDINGS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto")
    })
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Aws {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

async fn aws() -> Aws {
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    Aws { dynamo: aws_sdk_dynamodb::Client::new(&config), sqs: aws_sdk_sqs::Client::new(&config) }
}

impl Aws {
    async fn store(&self) -> DynamoStore {
        let table = unique("tidings");
        tidings_aws::dynamo::create_table(&self.dynamo, &table).await.unwrap();
        DynamoStore::new(self.dynamo.clone(), table)
    }

    async fn attribute(&self, url: &str, name: QueueAttributeName) -> String {
        let out = self.sqs.get_queue_attributes().queue_url(url).attribute_names(name.clone()).send().await.unwrap();
        out.attributes.unwrap()[&name].clone()
    }

    /// The events queue with its dead-letter queue, as the template wires them.
    async fn queues(&self) -> (SqsQueues, String, String) {
        let (url, dlq) = common::queue_with_dead_letters(&self.sqs, &unique("events")).await;
        let urls = QueueUrls {
            queues: [(QueueName::Events, url.clone())].into_iter().collect(),
            dead_letters: [(QueueName::Events, dlq.clone())].into_iter().collect(),
        };
        (SqsQueues::new(self.sqs.clone(), urls), url, dlq)
    }

    /// An events queue and a deliveries queue, and one `SqsQueues` that knows both, as the
    /// functions' environment gives them: (queues, events URL, deliveries URL).
    async fn pipeline_queues(&self) -> (SqsQueues, String, String) {
        let (_, events_url, _) = self.queues().await;
        let (_, deliveries_url, _) = self.queues().await;
        let urls = QueueUrls {
            queues: [(QueueName::Events, events_url.clone()), (QueueName::Deliveries, deliveries_url.clone())].into(),
            dead_letters: Default::default(),
        };
        (SqsQueues::new(self.sqs.clone(), urls), events_url, deliveries_url)
    }

    /// Receives everything on `url` (what the SQS event source does for a Lambda).
    async fn receive_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        common::receive_all(&self.sqs, url).await
    }
}

#[tokio::test]
async fn dynamodb_store_conforms() {
    let aws = aws().await;
    let store = aws.store().await;
    tidings_tests::run_all(&store).await;
}

#[tokio::test]
async fn dynamodb_and_sqs_announce_thresholds_and_silent_sources_once_each_way() {
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, _, _) = aws.queues().await;
    let queues = queues.deleting_settled();
    tidings_tests::thresholds_cross_and_recover_once(&store, &queues).await;
    tidings_tests::silent_sources_are_announced_once_each_way(&store, &queues).await;
}

#[tokio::test]
async fn dynamodb_filtered_listings_do_bounded_work_per_page() {
    let aws = aws().await;
    let store = aws.store().await.with_read_budget(20);
    tidings_tests::filtered_listings_do_bounded_work_per_page(&store, 20).await;
}

#[tokio::test]
async fn sqs_batches_within_limits_and_dead_letters_with_the_reason() {
    let aws = aws().await;
    let (queues, url, dlq) = aws.queues().await;
    let messages: Vec<Outgoing> =
        (0..23).map(|i| Outgoing { id: i.to_string(), body: format!("m{i}"), delay_seconds: 0 }).collect();
    queues.send(QueueName::Events, &messages).await.unwrap();
    let mut bodies: Vec<String> = aws.receive_all(&url).await.into_iter().map(|m| m.body.unwrap()).collect();
    bodies.sort_by_key(|b| b[1..].parse::<u32>().unwrap());
    assert_eq!(bodies, (0..23).map(|i| format!("m{i}")).collect::<Vec<_>>());

    queues.dead_letter(QueueName::Events, "poison", "events-queue message is not a queued event").await.unwrap();
    let dead = aws.receive_all(&dlq).await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0].message_attributes.as_ref().unwrap()["tidings-reason"].string_value.clone().unwrap();
    assert_eq!(reason, "events-queue message is not a queued event");

    let too_big = Outgoing { id: "0".into(), body: "x".repeat(300 * 1024), delay_seconds: 0 };
    let error: StoreError = queues.send(QueueName::Events, &[too_big]).await.unwrap_err();
    assert!(!error.is_retryable(), "an oversized message will never fit: {error}");
}

#[tokio::test]
async fn sqs_queues_conform_through_the_consumer_port() {
    use tidings_tests::queues;
    let aws = aws().await;
    let events = aws.sqs.create_queue().queue_name(unique("conform-events")).send().await.unwrap().queue_url.unwrap();
    let deliveries =
        aws.sqs.create_queue().queue_name(unique("conform-deliveries")).send().await.unwrap().queue_url.unwrap();
    let (resend, dlq) = common::queue_with_dead_letters(&aws.sqs, &unique("conform-resend")).await;
    let urls = QueueUrls {
        queues: [(QueueName::Events, events), (QueueName::Deliveries, deliveries), (QueueName::Resend, resend)]
            .into_iter()
            .collect(),
        dead_letters: [(QueueName::Resend, dlq.clone())].into_iter().collect(),
    };
    let queues = SqsQueues::new(aws.sqs.clone(), urls).deleting_settled();
    queues::received_messages_are_hidden_and_counted(&queues, QueueName::Events).await;
    queues::delayed_messages_wait(&queues, QueueName::Deliveries).await;
    let dead_letters = || async {
        let dead = aws.receive_all(&dlq).await;
        dead.into_iter()
            .map(|m| {
                let reason = m.message_attributes.as_ref().and_then(|a| a.get("tidings-reason"));
                (m.body.unwrap_or_default(), reason.and_then(|r| r.string_value.clone()).unwrap_or_default())
            })
            .collect::<Vec<_>>()
    };
    queues::a_batch_settles_each_message_its_own_way(&queues, QueueName::Resend, dead_letters).await;
}

#[tokio::test]
async fn listing_a_workspace_reads_only_the_days_that_hold_its_events() {
    let aws = aws().await;
    let store = aws.store().await;
    let ws = "ws_quiet";
    let count = |store: &DynamoStore, op: &str| store.usage().requests.get(op).copied().unwrap_or(0);
    let list = |store: DynamoStore| async move {
        let before = count(&store, "Query");
        let page = store.events(&EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() }).await;
        let ids: Vec<String> = page.unwrap().events.iter().map(|e| e.id.to_string()).collect();
        (ids, count(&store, "Query") - before)
    };

    assert_eq!(list(store.clone()).await, (vec![], 0), "a workspace without events needs no Query");
    // Two events 300 days apart, nothing in between; the second day's two events are stored by
    // another instance (another store), which marks the day again, harmlessly.
    let expires = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap();
    let old = tidings_tests::event(ws, Status::Delivered, "m1", "a@example.com", 0, "old");
    let new = tidings_tests::event(ws, Status::Delivered, "m2", "b@example.com", 300 * 86_400, "new");
    let newer = tidings_tests::event(ws, Status::Opened, "m2", "b@example.com", 300 * 86_400 + 60, "newer");
    store.record(&old, expires.into()).await.unwrap();
    store.record(&new, expires.into()).await.unwrap();
    let other = DynamoStore::new(aws.dynamo.clone(), store.table());
    other.record(&newer, expires.into()).await.unwrap();
    // Each day marked once per store: its day index, and the workspace in the watch's list.
    assert_eq!(count(&store, "UpdateItem"), 4, "each day is marked once per store");

    let (ids, queries) = list(store).await;
    let expected: Vec<String> = [&newer, &new, &old].iter().map(|e| e.event.id.to_string()).collect();
    assert_eq!(ids, expected, "newest first across days");
    assert_eq!(queries, 2, "one Query per day that holds events, not one per day in between");
}

#[tokio::test]
async fn a_retry_after_a_crash_between_the_state_and_the_event_write_counts_the_event_once() {
    let aws = aws().await;
    let store = aws.store().await;
    let ws = "ws_crash";
    let expires = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap();
    let sent = tidings_tests::event(ws, Status::Delivered, "m1", "a@example.com", 0, "delivered");
    let open = tidings_tests::event(ws, Status::Opened, "m1", "a@example.com", 60, "open");
    store.record(&sent, expires.into()).await.unwrap();
    store.record(&open, expires.into()).await.unwrap();
    // The crash: the processor wrote the message state for the open, then died before writing
    // the event item. Take the event item away to get there.
    let item = tidings_aws::dynamo::event_item(&open, expires).unwrap();
    aws.dynamo
        .delete_item()
        .table_name(store.table())
        .key("PK", item["PK"].clone())
        .key("SK", item["SK"].clone())
        .send()
        .await
        .unwrap();

    // SQS delivers the message again: the event is stored, and the state counts it once.
    assert_eq!(store.record(&open, expires.into()).await.unwrap(), Recorded::Stored);
    assert_eq!(store.record(&open, expires.into()).await.unwrap(), Recorded::Duplicate);
    let states = store.message_states(ws, "m1").await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!((states[0].events, states[0].opens), (2, 1), "{:?}", states[0]);
    let page = store.events(&EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() }).await.unwrap();
    assert_eq!(page.events.len(), 2);
}

#[tokio::test]
async fn every_sample_posted_twice_is_stored_once_on_dynamodb_and_sqs() {
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, url, dlq) = aws.queues().await;
    let f = fixture(store.clone(), queues).await;
    let processor = Processor::new(store.clone(), 90);
    let mut accepted = 0;
    let mut processed = 0;
    for round in 0..2 {
        for (provider, path) in samples() {
            let (status, body) = f.post_sample(provider, &path).await;
            assert_eq!(status.as_u16(), 200, "round {round}: {}: {body}", path.display());
            accepted += body["accepted"].as_u64().unwrap() as usize;
            // Drain as we go, as the processor Lambda would, keeping moto's queue shallow.
            for message in aws.receive_all(&url).await {
                processor.process(message.body.as_deref().unwrap()).await.unwrap();
                processed += 1;
            }
        }
    }
    assert_eq!(processed, accepted);
    assert_eq!(f.stored_ids().await, expected_ids());
    assert!(aws.receive_all(&dlq).await.is_empty());
    common::check_states_and_suppressions(&f.store).await;
}

#[tokio::test]
async fn processor_function_stores_once_and_dead_letters_poison_with_its_reason() {
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, _, dlq) = aws.queues().await;
    let processor = Processor::new(store.clone(), 90);
    let queued = tidings_tests::event("ws_lambda", tidings_core::Status::Delivered, "m1", "a@example.com", 1, "lambda");
    let body = serde_json::to_string(&queued).unwrap();

    let response = tidings_processor::handle(&processor, &queues, sqs_event(&[&body, &body, "{not json"])).await;
    assert!(response.batch_item_failures.is_empty(), "nothing to retry: {:?}", response.batch_item_failures);
    let stored = tidings_core::ports::EventStore::events(
        &store,
        &tidings_core::ports::EventQuery { workspace: "ws_lambda".into(), limit: 10, ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(stored.events.len(), 1, "the redelivered record is a duplicate");
    let dead = aws.receive_all(&dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some("{not json"));
    let reason = dead[0].message_attributes.as_ref().unwrap()["tidings-reason"].string_value.clone().unwrap();
    assert!(reason.starts_with("events-queue message is not a queued event"), "{reason}");
}

#[tokio::test]
async fn processor_function_reports_records_to_retry_when_the_store_is_down() {
    let aws = aws().await;
    let (queues, _, dlq) = aws.queues().await;
    // Nothing listens on port 9: every DynamoDB call fails to connect, a retryable failure.
    let down = tidings_aws::sdk_config_for_endpoint("http://127.0.0.1:9").await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&down), "tidings");
    let processor = Processor::new(store, 90);
    let queued = tidings_tests::event("ws_down", tidings_core::Status::Delivered, "m1", "a@example.com", 1, "down");
    let body = serde_json::to_string(&queued).unwrap();
    let response = tidings_processor::handle(&processor, &queues, sqs_event(&[&body])).await;
    let ids: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(ids, ["m0"], "left on the queue for SQS to redeliver");
    assert!(aws.receive_all(&dlq).await.is_empty(), "a retryable failure is not dead-lettered");
}

#[tokio::test]
async fn ses_intake_takes_sqs_and_eventbridge_records() {
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, url, _) = aws.queues().await;
    let f = fixture(store.clone(), queues.clone()).await;
    let source = f.source(tidings_core::ProviderId::Ses).id.clone();
    let ingest = tidings_core::pipeline::Ingest::new(store.clone(), queues, common::Offline);
    let read = |name: &str| std::fs::read_to_string(common::events_dir().join("ses").join(name)).unwrap();
    let batch = serde_json::json!({"Records": [
        {"messageId": "sns", "body": read("bounce-permanent.json")},
        {"messageId": "raw", "body": read("delivery.json")},
        {"messageId": "junk", "body": "{\"hello\": 1}"},
    ]});
    let response = tidings_ingest::lambda::handle_ses_event(&ingest, &source, batch).await.unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([{"itemIdentifier": "junk"}]));
    let eventbridge: serde_json::Value = serde_json::from_str(&read("eventbridge-delivery.json")).unwrap();
    tidings_ingest::lambda::handle_ses_event(&ingest, &source, eventbridge).await.unwrap();
    // One bounce, two deliveries, and the EventBridge delivery (the same SES event as one of them).
    assert_eq!(aws.receive_all(&url).await.len(), 4);
}

#[tokio::test]
async fn fan_out_on_dynamodb_and_sqs_delivers_each_matching_event_once() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, events_url, deliveries_url) = aws.pipeline_queues().await;

    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap| async move {
            log.lock().unwrap().push(headers.get("webhook-id").unwrap().to_str().unwrap().to_owned());
            axum::http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let f = fixture(store.clone(), queues.clone()).await;
    let subscription =
        tidings_tests::subscription_to("ws_default", "sub_moto", &format!("http://{addr}/hook"), &["*.bounced"]);
    tidings_core::ports::SubscriptionStore::put_subscription(&store, &subscription).await.unwrap();
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = tidings_core::pipeline::Fanout::new(
        store.clone(),
        queues.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let batch = common::events_dir().join("sendgrid/batch-every-type.json");
    let mut handed_over = Vec::new();
    for _ in 0..2 {
        assert_eq!(f.post_sample(tidings_core::ProviderId::Sendgrid, &batch).await.0.as_u16(), 200);
        let events = aws.receive_all(&events_url).await;
        let sends = queues.requests();
        let response = tidings_processor::handle(
            &processor,
            &queues,
            sqs_event(&events.iter().map(|m| m.body.as_deref().unwrap()).collect::<Vec<_>>()),
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        let tasks = aws.receive_all(&deliveries_url).await;
        // The batch's delivery tasks go out together: one SendMessageBatch per ten, not one per event.
        assert_eq!(queues.requests() - sends, tasks.len().div_ceil(10) as u64, "{} tasks", tasks.len());
        // Each task twice in the batch, as SQS holds it after a SendMessageBatch retried when its
        // answer was lost: delivered once.
        let bodies: Vec<&str> = tasks.iter().map(|m| m.body.as_deref().unwrap()).collect();
        let response = tidings_fanout::handle(&fanout, &queues, sqs_event(&[bodies.clone(), bodies].concat())).await;
        assert!(response.batch_item_failures.is_empty());
        handed_over.extend(tasks.iter().map(|m| m.body.clone().unwrap()));
    }
    // And every task again, in a later batch, as SQS hands a copy over when the copies of a
    // SendMessageBatch land in different batches: acknowledged, not sent again.
    let bodies: Vec<&str> = handed_over.iter().map(String::as_str).collect();
    let response = tidings_fanout::handle(&fanout, &queues, sqs_event(&bodies)).await;
    assert!(response.batch_item_failures.is_empty());
    let mut ids = received.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!((received.lock().unwrap().len(), ids.len()), (3, 3), "three bounces, each delivered once");
    let attempts = tidings_core::ports::DeliveryStore::attempts(&store, "ws_default", "sub_moto", 10).await.unwrap();
    assert_eq!(attempts.iter().filter(|a| a.outcome == "delivered").count(), 3);
}

#[tokio::test]
async fn a_hanging_subscriber_does_not_hold_up_another_subscribers_delivery() {
    use axum::routing::post;
    use std::time::{Duration, Instant};
    let aws = aws().await;
    let store = aws.store().await;
    let (_, deliveries_url, _) = aws.queues().await;
    let urls = QueueUrls {
        queues: [(QueueName::Deliveries, deliveries_url.clone())].into(),
        dead_letters: Default::default(),
    };
    let queues = SqsQueues::new(aws.sqs.clone(), urls);
    let started = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel::<Duration>();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = axum::Router::new()
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                axum::http::StatusCode::OK
            }),
        )
        .route(
            "/ok",
            post(move || {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(started.elapsed());
                }
                async { axum::http::StatusCode::OK }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let event = tidings_tests::event("ws_chaos", Status::Delivered, "m1", "a@example.com", 1, "chaos");
    let mut bodies = Vec::new();
    for (id, path) in [("sub_hang", "hang"), ("sub_ok", "ok")] {
        let subscription = tidings_tests::subscription_to("ws_chaos", id, &format!("http://{addr}/{path}"), &["*"]);
        store.put_subscription(&subscription).await.unwrap();
        let task = tidings_core::delivery::DeliveryTask::new(&subscription, &event.event);
        bodies.push(serde_json::to_string(&task).unwrap());
    }
    let limit = Duration::from_secs(2);
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = tidings_core::pipeline::Fanout::new(
        store.clone(),
        queues.clone(),
        tidings_fanout::Deliverer::new(loopback, limit).unwrap(),
    );
    let response = tidings_fanout::handle(&fanout, &queues, sqs_event(&bodies)).await;
    let batch_took = started.elapsed();
    let ok_at = rx.await.unwrap();
    assert!(batch_took >= limit, "the hanging delivery ran to its limit: {batch_took:?}");
    assert!(ok_at < limit / 2, "the other subscriber got its event at once, not after the hang: {ok_at:?}");
    let retried: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(retried, ["m0"], "only the hanging subscriber's task is retried");
}

#[tokio::test]
async fn a_failed_delivery_stays_on_sqs_hidden_until_its_retry_is_due() {
    use axum::routing::post;
    let aws = aws().await;
    let store = aws.store().await;
    let (_, deliveries_url, _) = aws.queues().await;
    let queues = SqsQueues::new(
        aws.sqs.clone(),
        QueueUrls { queues: [(QueueName::Deliveries, deliveries_url.clone())].into(), ..QueueUrls::default() },
    );
    let app = axum::Router::new().route("/fail", post(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let queued = tidings_tests::event("ws_retry", tidings_core::Status::Bounced, "m1", "a@example.com", 1, "retry");
    tidings_core::ports::EventStore::record(
        &store,
        &queued,
        tidings_core::Timestamp::from_unix_seconds(2_000_000_000).unwrap().into(),
    )
    .await
    .unwrap();
    let subscription = tidings_tests::subscription_to("ws_retry", "sub_retry", &format!("http://{addr}/fail"), &["*"]);
    tidings_core::ports::SubscriptionStore::put_subscription(&store, &subscription).await.unwrap();
    let task = serde_json::json!({"workspace": "ws_retry", "subscription": "sub_retry", "event_id": queued.event.id, "message_id": "m1"});
    aws.sqs.send_message().queue_url(&deliveries_url).message_body(task.to_string()).send().await.unwrap();

    let received = aws.sqs.receive_message().queue_url(&deliveries_url).send().await.unwrap();
    let message = received.messages.unwrap().remove(0);
    let mut event = sqs_event(&[message.body.as_deref().unwrap()]);
    event.records[0].receipt_handle = message.receipt_handle.clone();
    event.records[0].attributes.insert("ApproximateReceiveCount".into(), "1".into());
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = tidings_core::pipeline::Fanout::new(
        store.clone(),
        queues.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let response = tidings_fanout::handle(&fanout, &queues, event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "kept on the queue for the retry, not deleted");
    let again = aws.sqs.receive_message().queue_url(&deliveries_url).send().await.unwrap();
    assert!(again.messages.unwrap_or_default().is_empty(), "hidden until the retry is due");
    let log = tidings_core::ports::DeliveryStore::attempts(&store, "ws_retry", "sub_retry", 10).await.unwrap();
    assert_eq!((log[0].attempt, log[0].status), (1, Some(503)));
    assert!(log[0].next_attempt_at.is_some());
}

/// The `mail` (SendEmail request) of the throttled send-failure sample.
fn reported_send_request() -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::events_dir().join("ses/send-failure-throttled.json")).unwrap(),
    )
    .unwrap();
    report["mail"].clone()
}

#[tokio::test]
async fn a_reported_send_request_is_resent_through_sesv2() {
    use tidings_core::ports::Emailer;
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity().email_identity("acme.example").send().await.unwrap();
    let emailer = tidings_aws::SesEmailer::new(ses);

    let id = emailer.send_email(&reported_send_request()).await.expect("a verified sender's request is resent");
    assert!(!id.is_empty(), "SES answers with the new message's id");

    // SES refusing the request (here: the sender is not verified) is a client error: not
    // retryable, so the resender reports the event as failed instead of trying again.
    let mut unverified = reported_send_request();
    unverified["FromEmailAddress"] = "billing@not-verified.example".into();
    let error = emailer.send_email(&unverified).await.expect_err("an unverified sender is refused");
    assert!(!error.is_retryable(), "{error:?}");

    // A request with no content never reaches SES.
    let mut empty = reported_send_request();
    empty.as_object_mut().unwrap().remove("Content");
    let error = emailer.send_email(&empty).await.expect_err("nothing to send");
    assert!(!error.is_retryable());
    assert!(error.message.as_deref().unwrap_or_default().contains("Content"), "{error:?}");
}

#[tokio::test]
async fn resend_function_reports_an_sesv2_refusal_as_failed_once_for_all_its_tasks() {
    use tidings_core::ports::EventQuery;
    let aws = aws().await;
    let store = aws.store().await;
    let (_, events_url, _) = aws.queues().await;
    let (_, resend_url, resend_dlq) = aws.queues().await;
    let urls = QueueUrls {
        queues: [(QueueName::Events, events_url.clone()), (QueueName::Resend, resend_url.clone())].into(),
        dead_letters: [(QueueName::Resend, resend_dlq.clone())].into(),
    };
    let queues = SqsQueues::new(aws.sqs.clone(), urls);
    let f = fixture(store.clone(), queues.clone()).await;
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let stored = |pattern: &'static str| {
        let store = store.clone();
        async move {
            let query = EventQuery {
                workspace: common::WS.into(),
                type_pattern: Some(pattern.into()),
                limit: 10,
                ..Default::default()
            };
            store.events(&query).await.unwrap().events
        }
    };
    let process_events = async || {
        let events = aws.receive_all(&events_url).await;
        let bodies: Vec<&str> = events.iter().map(|m| m.body.as_deref().unwrap()).collect();
        assert!(
            tidings_processor::handle(&processor, &queues, sqs_event(&bodies)).await.batch_item_failures.is_empty()
        );
        events.len()
    };

    let sample = common::events_dir().join("ses/send-failure-throttled.json");
    assert_eq!(f.post_sample(tidings_core::ProviderId::Ses, &sample).await.0.as_u16(), 200);
    assert_eq!(process_events().await, 2, "one event per recipient");
    let scheduled = stored("email.retry_scheduled").await;
    assert_eq!(scheduled.len(), 2);
    let delayed = aws.attribute(&resend_url, QueueAttributeName::ApproximateNumberOfMessagesDelayed).await;
    assert_eq!(delayed, "2", "each resend waits out its backoff on the queue");
    // The tasks as the processor enqueued them (they stay delayed for ~30 s on the queue).
    let source = f.source(tidings_core::ProviderId::Ses).id.clone();
    let tasks: Vec<String> = scheduled
        .iter()
        .map(|e| serde_json::to_string(&tidings_core::resend::task_for(e, &source).unwrap().0).unwrap())
        .collect();
    let tasks: Vec<&str> = tasks.iter().map(String::as_str).collect();

    // SES refuses the resend (no verified identity in this region): the send is reported as
    // failed, once, though both recipients' tasks arrive.
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    let unverified = aws_sdk_sesv2::config::Builder::from(&config)
        .region(aws_sdk_sesv2::config::Region::new("ap-southeast-2"))
        .build();
    let resender = tidings_core::resend::Resender::new(
        store.clone(),
        queues.clone(),
        tidings_aws::SesEmailer::new(aws_sdk_sesv2::Client::from_conf(unverified)),
    );
    let response = tidings_processor::handle_resend(&resender, &queues, sqs_event(&tasks)).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    assert_eq!(process_events().await, 2, "the refusal, reported once per recipient");
    assert_eq!(stored("email.failed").await.len(), 2);
    assert!(aws.receive_all(&resend_dlq).await.is_empty());
}

#[tokio::test]
async fn manual_redrive_moves_every_dead_letter_back_to_its_queue_once() {
    use tidings_core::ports::{DeadLetters, MoveMethod};
    let aws = aws().await;
    let (queues, url, dlq) = aws.queues().await;
    for i in 0..13 {
        queues.dead_letter(QueueName::Events, &format!("poison {i}"), "test").await.unwrap();
    }
    let status = queues.redrive_dead_letters(QueueName::Events, MoveMethod::Manual).await.unwrap();
    assert_eq!((status.moved, status.waiting), (13, 0), "{status:?}");
    let mut bodies: Vec<String> = aws.receive_all(&url).await.into_iter().filter_map(|m| m.body).collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..13).map(|i| format!("poison {i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each dead letter back on its queue, once");
    assert!(aws.receive_all(&dlq).await.is_empty());
}

#[tokio::test]
async fn source_secrets_kept_in_ssm_are_read_only_under_the_deployment_prefix() {
    let aws = aws().await;
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let prefix = format!("/{}/", unique("tidings"));
    let name = format!("{prefix}postmark");
    common::put_secret(&ssm, &name, "s3cret-from-ssm").await;
    let store = aws.store().await.with_secrets(tidings_aws::SsmSecrets::new(ssm, prefix.clone()));
    let mut source =
        common::fixture(store.clone(), aws.queues().await.0).await.source(tidings_core::ProviderId::Postmark).clone();

    source.secrets = vec![format!("ssm:{name}"), "plain-secret".into()];
    store.put_source(&source).await.unwrap();
    let loaded = store.source(&source.id).await.unwrap().unwrap();
    assert_eq!(loaded.secrets, vec!["s3cret-from-ssm".to_owned(), "plain-secret".to_owned()]);

    // A reference outside the prefix is refused before SSM is asked, and says why.
    source.secrets = vec!["ssm:/elsewhere/database-password".into()];
    store.put_source(&source).await.unwrap();
    let error = store.source(&source.id).await.unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.message().contains("TIDINGS_SECRETS_PREFIX"), "{}", error.message());

    // A missing parameter is an error too, naming the parameter (never a value).
    source.secrets = vec![format!("ssm:{prefix}missing")];
    store.put_source(&source).await.unwrap();
    let error = store.source(&source.id).await.unwrap_err();
    assert!(error.message().contains(&format!("{prefix}missing")), "{}", error.message());
}

#[tokio::test]
async fn an_event_whose_delivery_task_sqs_refuses_fails_alone_not_with_its_batch() {
    let aws = aws().await;
    let store = aws.store().await;
    let (_, deliveries_url, _) = aws.queues().await;
    let urls = QueueUrls { queues: [(QueueName::Deliveries, deliveries_url.clone())].into(), ..QueueUrls::default() };
    let queues = SqsQueues::new(aws.sqs.clone(), urls);
    let subscription = tidings_tests::subscription_to("ws_big", "sub_all", "https://hooks.example.com/all", &["*"]);
    store.put_subscription(&subscription).await.unwrap();
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let small = tidings_tests::event("ws_big", Status::Delivered, "m1", "a@example.com", 0, "small");
    let mut huge = tidings_tests::event("ws_big", Status::Delivered, "m2", "b@example.com", 0, "huge");
    // A task carries its event: this one can never fit an SQS message.
    huge.event.data.reason = Some("x".repeat(300 * 1024));
    let bodies = [serde_json::to_string(&small).unwrap(), serde_json::to_string(&huge).unwrap()];
    let results = processor.process_batch(&[bodies[0].as_str(), bodies[1].as_str()]).await;
    assert!(matches!(results[0], Ok(tidings_core::pipeline::Processed::Stored)), "{:?}", results[0]);
    let error = results[1].as_ref().unwrap_err();
    assert!(!error.is_retryable(), "it will never fit: {error}");
    assert_eq!(aws.receive_all(&deliveries_url).await.len(), 1, "the small event's task");
}

/// Erasure proven on DynamoDB's items: after erasing a recipient of many events of five
/// providers, no item of the table (every attribute, deflated ones inflated) holds the address
/// in any of its spellings; the recipient who stays is still there.
#[tokio::test]
async fn dynamodb_erasure_leaves_no_item_with_the_recipient() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use tidings_tests::privacy::{ERASED, KEPT, assert_nowhere, erases_a_recipient_everywhere};
    let aws = aws().await;
    let store = aws.store().await;
    erases_a_recipient_everywhere(&store, "ws_erase").await;

    fn text_of(value: &AttributeValue, out: &mut String) {
        match value {
            AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
            AttributeValue::B(blob) => {
                match miniz_oxide::inflate::decompress_to_vec_with_limit(blob.as_ref(), 16 << 20) {
                    Ok(inflated) => out.push_str(&String::from_utf8_lossy(inflated.as_slice())),
                    Err(_) => out.push_str(&String::from_utf8_lossy(blob.as_ref())),
                }
            }
            AttributeValue::Ss(list) | AttributeValue::Ns(list) => list.iter().for_each(|s| out.push_str(s)),
            AttributeValue::L(list) => list.iter().for_each(|v| text_of(v, out)),
            AttributeValue::M(map) => map.iter().for_each(|(k, v)| {
                out.push_str(k);
                text_of(v, out);
            }),
            _ => {}
        }
        out.push('\n');
    }
    let mut everything = String::new();
    let mut items = 0;
    let mut start = None;
    loop {
        let page =
            aws.dynamo.scan().table_name(store.table()).set_exclusive_start_key(start.take()).send().await.unwrap();
        for item in page.items() {
            items += 1;
            for (name, value) in item {
                everything.push_str(name);
                text_of(value, &mut everything);
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    assert!(items > 10, "{items} items scanned");
    assert_nowhere(&everything, ERASED, "the table");
    assert!(everything.contains(KEPT), "the table still holds the recipient who stays");
}

/// A workspace's own retention is the `ttl` of its event items and message states; a provider
/// record kept for less is an item of its own with the shorter `ttl`.
#[tokio::test]
async fn dynamodb_workspace_retention_sets_each_item_s_ttl() {
    use tidings_core::ports::PrivacyStore;
    use tidings_core::privacy::PrivacySettings;
    let aws = aws().await;
    let store = aws.store().await;
    let short = PrivacySettings { retention_days: Some(7), raw_retention_days: Some(1), ..PrivacySettings::default() };
    store.put_privacy_settings("ws_short", &short).await.unwrap();
    let processor = Processor::new(store.clone(), 90);
    let received = Timestamp::now();
    let mut ttls = Vec::new();
    for ws in ["ws_short", "ws_default"] {
        let mut queued = tidings_tests::event(ws, Status::Delivered, "m1", "a@example.com", 0, "k");
        queued.event.data.received_at = received;
        processor.process(&serde_json::to_string(&queued).unwrap()).await.unwrap();
        let ttl = |sk: String| {
            let aws = &aws;
            let store = &store;
            async move {
                let item = aws
                    .dynamo
                    .get_item()
                    .table_name(store.table())
                    .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("WS#{ws}#MSG#m1")))
                    .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(sk))
                    .send()
                    .await
                    .unwrap()
                    .item;
                item.map(|i| i["ttl"].as_n().unwrap().parse::<i64>().unwrap() - received.unix_seconds())
            }
        };
        let id = queued.event.id.as_str().trim_start_matches("evt_").to_owned();
        ttls.push((
            ttl(format!("EVT#{id}")).await,
            ttl(format!("RAW#{id}")).await,
            ttl("STATE#a@example.com".into()).await,
        ));
    }
    let day = 86_400;
    assert_eq!(ttls[0], (Some(7 * day), Some(day), Some(7 * day)), "the workspace's settings");
    assert_eq!(ttls[1], (Some(90 * day), None, Some(90 * day)), "the deployment's default, the record inline");
}

/// The account moto answers as: an ARN of a bus or queue made on moto names it.
const MOTO_ACCOUNT: &str = "123456789012";

#[tokio::test]
async fn eventbridge_and_sqs_destinations_receive_what_https_would_have_delivered() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use axum::routing::post;
    use serde_json::Value;
    use std::sync::{Arc, Mutex};
    let aws = aws().await;
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let store = aws.store().await;
    let (queues, events_url, deliveries_url) = aws.pipeline_queues().await;

    // The destinations: a standard queue, a FIFO queue, and a bus whose rule sends what tidings
    // puts on it to a third queue, where the test reads it.
    let make_queue = |name: String, fifo: bool| {
        let sqs = aws.sqs.clone();
        async move {
            let mut request = sqs.create_queue().queue_name(&name);
            if fifo {
                request = request.attributes(QueueAttributeName::FifoQueue, "true");
            }
            let url = request.send().await.unwrap().queue_url.unwrap();
            (format!("arn:aws:sqs:us-east-1:{MOTO_ACCOUNT}:{name}"), url)
        }
    };
    let (standard_arn, standard_url) = make_queue(unique("standard"), false).await;
    let (fifo_arn, fifo_url) = make_queue(format!("{}.fifo", unique("ordered")), true).await;
    let (target_arn, target_url) = make_queue(unique("bus-target"), false).await;
    let bus = unique("bus");
    let bus_arn = events.create_event_bus().name(&bus).send().await.unwrap().event_bus_arn.unwrap();
    events
        .put_rule()
        .name("all-tidings")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["tidings"]}"#)
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(&target_arn).build().unwrap();
    events.put_targets().rule("all-tidings").event_bus_name(&bus).targets(target).send().await.unwrap();

    // And an HTTPS subscriber: what it is sent is what the others must receive.
    let posted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = posted.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| async move {
            log.lock().unwrap().push(serde_json::from_str(&body).unwrap());
            axum::http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let missing = format!("arn:aws:sqs:us-east-1:{MOTO_ACCOUNT}:{}", unique("no-such-queue"));
    let subscriptions = [
        ("sub_https", format!("http://{addr}/hook")),
        ("sub_bus", bus_arn.clone()),
        ("sub_queue", standard_arn),
        ("sub_fifo", fifo_arn),
        ("sub_missing", missing.clone()),
    ];
    for (id, url) in &subscriptions {
        tidings_core::subscription::validate(url, &["*".into()], &[]).unwrap();
        let subscription = tidings_tests::subscription_to("ws_default", id, url, &["*"]);
        store.put_subscription(&subscription).await.unwrap();
    }
    let f = fixture(store.clone(), queues.clone()).await;
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let sender = tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5))
        .unwrap()
        .with_publisher(Arc::new(tidings_aws::AwsPublisher::with_config(config.clone())));
    let fanout = tidings_core::pipeline::Fanout::new(store.clone(), queues.clone(), sender);
    let batch = common::events_dir().join("sendgrid/batch-every-type.json");
    assert_eq!(f.post_sample(tidings_core::ProviderId::Sendgrid, &batch).await.0.as_u16(), 200);
    let stored = aws.receive_all(&events_url).await;
    let response = tidings_processor::handle(
        &processor,
        &queues,
        sqs_event(&stored.iter().map(|m| m.body.as_deref().unwrap()).collect::<Vec<_>>()),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let tasks = aws.receive_all(&deliveries_url).await;
    let bodies: Vec<&str> = tasks.iter().map(|m| m.body.as_deref().unwrap()).collect();
    // Handed over twice, as SQS may: each destination still receives each event once.
    let first = tidings_fanout::handle(&fanout, &queues, sqs_event(&bodies)).await;
    tidings_fanout::handle(&fanout, &queues, sqs_event(&bodies)).await;

    let mut https = posted.lock().unwrap().clone();
    assert!(https.len() >= 5, "the batch's events went to the HTTPS subscriber: {}", https.len());
    let by_id = |events: &mut Vec<Value>| events.sort_by_key(|e| e["id"].as_str().unwrap().to_owned());
    by_id(&mut https);

    let aws = &aws;
    let read = |url: String| async move { aws.receive_all(&url).await };

    // The standard queue: the same events, each once, with the signature headers as attributes.
    let on_queue = read(standard_url).await;
    let mut bodies: Vec<Value> = on_queue.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    by_id(&mut bodies);
    assert_eq!(bodies, https, "the queue holds what the HTTPS subscriber was sent");
    for message in &on_queue {
        let attributes = message.message_attributes().unwrap();
        let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(attributes["webhook-id"].string_value(), body["id"].as_str());
        assert!(attributes["webhook-signature"].string_value().unwrap().starts_with("v1,"));
        assert!(attributes["content-type"].string_value().unwrap().starts_with("application/cloudevents+json"));
    }

    // The FIFO queue: grouped by the provider's message id, in the order the processor queued
    // them within each group.
    let on_fifo = read(fifo_url).await;
    let mut bodies: Vec<Value> = on_fifo.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    for (message, body) in on_fifo.iter().zip(&bodies) {
        let group = message.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].clone();
        let expected = body["data"]["message_id"].as_str().or(body["id"].as_str()).unwrap();
        assert_eq!(group, tidings_core::destination::fifo_id(expected));
    }
    by_id(&mut bodies);
    assert_eq!(bodies, https, "the FIFO queue holds what the HTTPS subscriber was sent, each once");

    // The bus: EventBridge's envelope around the same events.
    let from_bus = read(target_url).await;
    let mut details = Vec::new();
    for message in &from_bus {
        let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(envelope["source"], "tidings");
        assert_eq!(envelope["detail-type"], envelope["detail"]["type"]);
        details.push(envelope["detail"].clone());
    }
    by_id(&mut details);
    assert_eq!(details, https, "the bus's rule delivered what the HTTPS subscriber was sent");

    // A queue that does not exist: each task is an attempt that failed with the service's
    // answer, kept on the deliveries queue for its retry, and logged.
    assert_eq!(first.batch_item_failures.len(), https.len(), "only the missing queue's tasks wait for a retry");
    let attempts = tidings_core::ports::DeliveryStore::attempts(&store, "ws_default", "sub_missing", 50).await.unwrap();
    let mut failed: Vec<&str> = attempts.iter().map(|a| a.event_id.as_str()).collect();
    failed.sort_unstable();
    failed.dedup();
    assert_eq!(failed.len(), https.len(), "each event was attempted");
    for attempt in &attempts {
        assert_eq!((attempt.outcome.as_str(), attempt.status), ("status", Some(404)), "{attempt:?}");
        assert!(attempt.detail.contains("SendMessage"), "{}", attempt.detail);
        assert!(attempt.next_attempt_at.is_some());
    }
    let attempts = tidings_core::ports::DeliveryStore::attempts(&store, "ws_default", "sub_bus", 50).await.unwrap();
    assert!(attempts.iter().all(|a| a.outcome == "delivered" && a.detail.starts_with("EventBridge event")));
}
