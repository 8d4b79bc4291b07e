//! Fan-out end to end, in process: events posted to the ingest router are stored, fanned out
//! to matching subscriptions, and POSTed, signed, to subscribers on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use common::{events_dir, fixture};
use serde_json::{Value, json};
use tidings_core::ProviderId;
use tidings_core::auth::standard_webhooks;
use tidings_core::pipeline::{Fanout, Processor};
use tidings_core::ports::DeliveryStore;
use tidings_core::ports::EventStore;
use tidings_core::ports::QueueName;
use tidings_core::ports::SubscriptionStore;
use tidings_core::ssrf::Guard;
use tidings_core::timestamp::Timestamp;
use tidings_local::Sqlite;

type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// Subscribers on 127.0.0.1: `/hook` takes everything, `/gone` answers 410, `/fail` 500, `/echo`
/// 400 with the request's body.
async fn subscribers() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let app = Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: String| async move {
                log.lock().unwrap().push((headers, body));
                StatusCode::NO_CONTENT
            }),
        )
        .route("/gone", post(|| async { StatusCode::GONE }))
        .route("/fail", post(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/echo", post(|body: String| async move { (StatusCode::BAD_REQUEST, body) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// `POST /api/subscriptions` with `body`, with the default workspace's key.
fn new_subscription(body: Value) -> Request<Body> {
    Request::post("/api/subscriptions")
        .header("Authorization", "Bearer key-default")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A deliveries-queue message as the fan-out is handed it.
fn task_message<'a>(id: &'a str, body: &'a str, receive_count: u32) -> tidings_core::pipeline::QueuedTask<'a> {
    tidings_core::pipeline::QueuedTask { id, body, receive_count }
}

async fn drain(
    db: &Sqlite,
    processor: &Processor<Sqlite, Sqlite>,
    fanout: &Fanout<Sqlite, Sqlite, tidings_fanout::Deliverer>,
) {
    loop {
        let events = db.receive(QueueName::Events, 10, 30).unwrap();
        for m in &events {
            processor.process(&m.body).await.unwrap();
            db.delete(QueueName::Events, &m.receipt).unwrap();
        }
        let deliveries = db.receive(QueueName::Deliveries, 10, 30).unwrap();
        for m in &deliveries {
            match fanout.deliver(&task_message(&m.id, &m.body, m.receive_count), Timestamp::now()).await.unwrap() {
                None => assert!(db.delete(QueueName::Deliveries, &m.receipt).unwrap()),
                // A retry: the same message, hidden until due (not waited for in these tests).
                Some(delay) => {
                    assert!(db.change_visibility(QueueName::Deliveries, &m.receipt, delay.as_secs() as u32).unwrap())
                }
            }
        }
        if events.is_empty() && deliveries.is_empty() {
            return;
        }
    }
}

#[tokio::test]
async fn matching_events_are_delivered_signed_once_and_a_gone_subscriber_is_disabled() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, received) = subscribers().await;
    let api = new_subscription;
    let (status, bounced) = f.call(api(json!({"url": format!("http://{addr}/hook"), "types": ["*.bounced"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{bounced}");
    let secret = bounced["secret"].as_str().unwrap().to_owned();
    let (_, gone) = f.call(api(json!({"url": format!("http://{addr}/gone"), "types": ["email.*"]}))).await;
    let (_, watcher) = f.call(api(json!({"url": format!("http://{addr}/hook"), "types": ["subscription.*"]}))).await;
    let (status, refused) = f.call(api(json!({"url": "http://user:pw@example.com/", "types": ["*"]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let batch = events_dir().join("sendgrid/batch-every-type.json");
    for _ in 0..2 {
        // The second time is SendGrid retrying the batch: stored once, delivered once.
        assert_eq!(f.post_sample(ProviderId::Sendgrid, &batch).await.0, StatusCode::OK);
        drain(&db, &processor, &fanout).await;
    }

    let received = received.lock().unwrap().clone();
    let disabled_notice: Vec<&(HeaderMap, String)> =
        received.iter().filter(|(_, b)| b.contains("\"subscription.disabled\"")).collect();
    assert_eq!(disabled_notice.len(), 1, "the watcher hears about the disabled subscription once");
    let notice: Value = serde_json::from_str(&disabled_notice[0].1).unwrap();
    assert_eq!(notice["data"]["details"]["subscription"], gone["id"]);
    assert_eq!(notice["data"]["reason"], "the subscriber answered 410 Gone");
    let watcher_log = db.attempts("ws_default", watcher["id"].as_str().unwrap(), 10).await.unwrap();
    assert_eq!(watcher_log.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), ["delivered"]);
    let received: Vec<(HeaderMap, String)> =
        received.into_iter().filter(|(_, b)| !b.contains("\"subscription.disabled\"")).collect();
    assert_eq!(received.len(), 3, "the batch's three bounces, each once");
    let key = standard_webhooks::secret_key(&secret).unwrap();
    for (headers, body) in &received {
        let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["type"], "email.bounced");
        assert_eq!(header("webhook-id"), event["id"].as_str().unwrap(), "webhook-id is the event id");
        assert!(standard_webhooks::verify_signature(
            std::slice::from_ref(&key),
            &header("webhook-id"),
            &header("webhook-timestamp"),
            body.as_bytes(),
            &header("webhook-signature")
        ));
    }

    let gone_id = gone["id"].as_str().unwrap();
    let disabled = db.subscription("ws_default", gone_id).await.unwrap().unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("the subscriber answered 410 Gone"));
    let log = db.attempts("ws_default", gone_id, 100).await.unwrap();
    assert_eq!(log.len(), 1, "disabled at once: no more attempts");
    assert_eq!(log[0].status, Some(410));
    let bounced_log = db.attempts("ws_default", bounced["id"].as_str().unwrap(), 100).await.unwrap();
    assert_eq!(bounced_log.iter().filter(|a| a.outcome == "delivered").count(), 3);
}

#[tokio::test]
async fn a_disabled_subscription_gets_nothing_and_after_enable_a_replay_redelivers_with_the_same_ids() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, received) = subscribers().await;
    let call = |uri: String, body: Value| {
        Request::post(uri)
            .header("Authorization", "Bearer key-default")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (_, sub) = f
        .call(call(
            "/api/subscriptions".into(),
            json!({"url": format!("http://{addr}/hook"), "types": ["email.bounced"]}),
        ))
        .await;
    let id = sub["id"].as_str().unwrap().to_owned();
    let old_secret = sub["secret"].as_str().unwrap().to_owned();
    assert_eq!(f.call(call(format!("/api/subscriptions/{id}/disable"), json!({}))).await.0, StatusCode::OK);

    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    drain(&db, &processor, &fanout).await;
    assert!(received.lock().unwrap().is_empty(), "nothing for a disabled subscription");

    assert_eq!(f.call(call(format!("/api/subscriptions/{id}/enable"), json!({}))).await.0, StatusCode::OK);
    let (_, rotated) = f.call(call(format!("/api/subscriptions/{id}/rotate"), json!({}))).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let (status, replay) =
        f.call(call(format!("/api/subscriptions/{id}/replay?since=2025-01-01T00:00:00Z"), json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["replayed"], 3);
    drain(&db, &processor, &fanout).await;

    let received = received.lock().unwrap().clone();
    let stored: Vec<String> = db
        .events(&tidings_core::ports::EventQuery {
            workspace: "ws_default".into(),
            type_pattern: Some("email.bounced".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    let mut delivered: Vec<String> =
        received.iter().map(|(h, _)| h.get("webhook-id").unwrap().to_str().unwrap().to_owned()).collect();
    delivered.sort();
    let mut expected = stored.clone();
    expected.sort();
    assert_eq!(delivered, expected, "replayed with the stored events' ids");
    // During the rotation's grace period both secrets sign: either verifies.
    for secret in [&old_secret, &new_secret] {
        let key = standard_webhooks::secret_key(secret).unwrap();
        for (headers, body) in &received {
            let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
            assert!(standard_webhooks::verify_signature(
                std::slice::from_ref(&key),
                &header("webhook-id"),
                &header("webhook-timestamp"),
                body.as_bytes(),
                &header("webhook-signature")
            ));
        }
    }
}

#[tokio::test]
async fn exhausted_retries_are_announced_to_others_but_never_to_the_failing_subscription() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, received) = subscribers().await;
    let api = new_subscription;
    // The failing subscriber also asks for delivery.*: it must not be fed its own failures.
    let (_, failing) =
        f.call(api(json!({"url": format!("http://{addr}/fail"), "types": ["email.bounced", "delivery.*"]}))).await;
    f.call(api(json!({"url": format!("http://{addr}/hook"), "types": ["delivery.exhausted"]}))).await;
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/bounce.json")).await;
    // Store the event; its first delivery fails and is rescheduled (5 s, not waited for here).
    let events = db.receive(QueueName::Events, 10, 30).unwrap();
    processor.process(&events[0].body).await.unwrap();
    let first = db.receive(QueueName::Deliveries, 10, 30).unwrap();
    assert_eq!(first.len(), 1);
    // The eighth attempt, as the queue would hand the message over after seven retries.
    assert_eq!(
        fanout.deliver(&task_message(&first[0].id, &first[0].body, 8), Timestamp::now()).await.unwrap(),
        None,
        "no ninth attempt"
    );
    drain(&db, &processor, &fanout).await;

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "the watcher gets delivery.exhausted");
    let notice: Value = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(notice["type"], "delivery.exhausted");
    assert_eq!(notice["data"]["details"]["subscription"], failing["id"]);
    let log = db.attempts("ws_default", failing["id"].as_str().unwrap(), 10).await.unwrap();
    assert!(
        log.iter().all(|a| a.event_id != notice["id"].as_str().unwrap()),
        "never delivered to the failing subscription"
    );
}

#[tokio::test]
async fn one_workspace_can_neither_see_nor_act_on_another_workspace_s_subscriptions() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let request = |method: &str, uri: String, key: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("Authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"url": "https://hooks.example.com/x", "types": ["*"], "headers": ["Authorization: Bearer sekrit"]}).to_string()))
            .unwrap()
    };
    let (_, created) = f.call(request("POST", "/api/subscriptions".into(), "key-default")).await;
    let id = created["id"].as_str().unwrap();
    let (_, theirs) = f.call(request("GET", "/api/subscriptions".into(), "key-other")).await;
    assert!(theirs["subscriptions"].as_array().unwrap().is_empty());
    for action in ["rotate", "enable", "disable", "replay", "test"] {
        let (status, _) = f.call(request("POST", format!("/api/subscriptions/{id}/{action}"), "key-other")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action} from another workspace");
    }
    let (status, _) = f.call(request("GET", format!("/api/subscriptions/{id}/attempts"), "key-other")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The owner's listing names the header but never shows its value or the secret.
    let (_, mine) = f.call(request("GET", "/api/subscriptions".into(), "key-default")).await;
    let text = mine.to_string();
    assert!(text.contains("Authorization") && !text.contains("sekrit") && !text.contains("whsec_"), "{text}");
    assert_eq!(db.depth(QueueName::Deliveries).unwrap(), 0, "nothing was queued by the other workspace");
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_on_schedule_and_disabled_after_five_days() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, received) = subscribers().await;
    let create = new_subscription;
    let (_, failing) = f.call(create(json!({"url": format!("http://{addr}/fail"), "types": ["email.bounced"]}))).await;
    let (_, ditto) = f
        .call(create(json!({"url": format!("http://{addr}/hook"), "types": ["email.bounced"], "format": "dittofeed"})))
        .await;
    f.call(create(json!({"url": format!("http://{addr}/hook"), "types": ["subscription.disabled"]}))).await;
    let id = failing["id"].as_str().unwrap();
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/bounce.json")).await;
    drain(&db, &processor, &fanout).await;

    // The 500 is logged with the time of the next attempt, and the task waits on the queue.
    let log = db.attempts("ws_default", id, 10).await.unwrap();
    assert_eq!((log.len(), log[0].outcome.as_str(), log[0].status), (1, "status", Some(500)));
    let wait = log[0].at.seconds_until(log[0].next_attempt_at.unwrap());
    assert!((4..=6).contains(&wait), "first retry 5 s ±20%, got {wait} s");
    assert_eq!(db.depth(QueueName::Deliveries).unwrap(), 1, "the retry is queued, delayed");
    let sub = db.subscription("ws_default", id).await.unwrap().unwrap();
    assert!(sub.enabled && sub.failing_since.is_some());

    // The Dittofeed subscriber got a track call for the same event.
    let track: Value = serde_json::from_str(&received.lock().unwrap()[0].1).unwrap();
    assert_eq!((track["type"].as_str(), track["event"].as_str()), (Some("track"), Some("DFEmailBounced")));
    assert_eq!(track["userId"], "user_7");
    let ditto_log = db.attempts("ws_default", ditto["id"].as_str().unwrap(), 10).await.unwrap();
    assert_eq!(ditto_log.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(), ["delivered"]);

    // Five days of failure later, the next failed attempt disables it, and says so.
    let mut sub = sub;
    sub.failing_since = Some(Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() - 5 * 86_400).unwrap());
    db.put_subscription(&sub).await.unwrap();
    // The queued retry is still delayed: hand its message over as the queue will.
    let pending = db.peek(QueueName::Deliveries).unwrap();
    assert_eq!(pending.len(), 1);
    let (message, task) = &pending[0];
    assert_eq!(fanout.deliver(&task_message(message, task, 2), Timestamp::now()).await.unwrap(), None);
    drain(&db, &processor, &fanout).await;
    let sub = db.subscription("ws_default", id).await.unwrap().unwrap();
    assert_eq!((sub.enabled, sub.disabled_reason.as_deref()), (false, Some("deliveries failed for 5 days")));
    let notices = received.lock().unwrap().iter().filter(|(_, b)| b.contains("\"subscription.disabled\"")).count();
    assert_eq!(notices, 1);
}

#[tokio::test]
async fn a_delivery_task_carrying_another_workspace_s_event_is_refused_and_sends_nothing() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, received) = subscribers().await;
    let create = new_subscription(json!({"url": format!("http://{addr}/hook"), "types": ["*"]}));
    let (_, created) = f.call(create).await;
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let theirs = tidings_tests::event("ws_other", tidings_core::Status::Delivered, "m1", "a@example.com", 0, "k").event;
    let mut task = tidings_core::delivery::DeliveryTask {
        workspace: "ws_default".into(),
        subscription: created["id"].as_str().unwrap().into(),
        event_id: theirs.id.clone(),
        message_id: theirs.data.message_id.clone(),
        event: Some(theirs.clone()),
        replay: None,
        attempts: 0,
        holder: None,
    };
    let error = fanout
        .deliver(&task_message("m1", &serde_json::to_string(&task).unwrap(), 1), Timestamp::now())
        .await
        .unwrap_err();
    assert!(!error.is_retryable() && error.message().contains("another event or workspace"), "{error}");
    // Nor may a task name one event and carry another.
    let mine =
        tidings_tests::event("ws_default", tidings_core::Status::Delivered, "m1", "a@example.com", 0, "k2").event;
    task.workspace = "ws_default".into();
    task.event = Some(mine);
    assert!(
        fanout.deliver(&task_message("m1", &serde_json::to_string(&task).unwrap(), 1), Timestamp::now()).await.is_err()
    );
    assert!(received.lock().unwrap().is_empty(), "nothing was sent");
}

/// A task the deliveries queue hands over again in a later batch (SQS holds a copy after a
/// `SendMessageBatch` retried when its answer was lost; a retry follows a fault after the
/// subscriber's 2xx) is acknowledged without a second POST; a replay sends the event once more,
/// once, however many copies of the replay's task arrive.
#[tokio::test]
async fn a_delivered_task_handed_over_again_is_not_sent_again_but_a_replay_is_sent_once() {
    let db = Sqlite::in_memory().unwrap();
    let (addr, received) = subscribers().await;
    let subscription = tidings_tests::subscription_to("ws_default", "sub_once", &format!("http://{addr}/hook"), &["*"]);
    db.put_subscription(&subscription).await.unwrap();
    let queued = tidings_tests::event("ws_default", tidings_core::Status::Delivered, "m1", "a@example.com", 0, "k");
    db.record(&queued, Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap().into())
        .await
        .unwrap();
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let task = serde_json::to_string(&tidings_core::delivery::DeliveryTask::new(&subscription, &queued.event)).unwrap();
    for (copy, receive_count) in [("copy-1", 1), ("copy-2", 1), ("copy-1", 2)] {
        assert_eq!(fanout.deliver(&task_message(copy, &task, receive_count), Timestamp::now()).await.unwrap(), None);
    }
    assert_eq!(received.lock().unwrap().len(), 1, "one POST for three copies");
    let attempts = db.attempts("ws_default", "sub_once", 10).await.unwrap();
    assert_eq!(attempts.len(), 1, "the copies are not attempts: {attempts:?}");

    let range = tidings_core::pipeline::ReplayRange::default();
    let progress = tidings_core::pipeline::replay(&db, &db, &subscription, &range, None).await.unwrap();
    assert_eq!((progress.queued, progress.next), (1, None));
    let replayed = db.receive(QueueName::Deliveries, 10, 30).unwrap();
    assert_eq!(replayed.len(), 1);
    for copy in ["replay-1", "replay-2"] {
        assert_eq!(fanout.deliver(&task_message(copy, &replayed[0].body, 1), Timestamp::now()).await.unwrap(), None);
    }
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2, "the replay sent it once more, once");
    let id = |i: usize| received[i].0.get("webhook-id").unwrap().to_str().unwrap().to_owned();
    assert_eq!(id(0), id(1), "with the same webhook-id");
}

/// A subscriber that answers 503 only when told to: the test holds its answer while it acts.
async fn held_503() -> (SocketAddr, tokio::sync::mpsc::Receiver<()>, Arc<tokio::sync::Notify>) {
    let (arrived_tx, arrived_rx) = tokio::sync::mpsc::channel(8);
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let app = Router::new().route(
        "/slow",
        post(move || {
            let (arrived, gate) = (arrived_tx.clone(), gate.clone());
            async move {
                arrived.send(()).await.unwrap();
                gate.notified().await;
                StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, arrived_rx, release)
}

#[tokio::test]
async fn an_operators_disable_or_rotation_during_a_failing_attempt_is_not_undone() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let (addr, mut arrived, release) = held_503().await;
    let api = |uri: String, body: Value| {
        Request::post(uri)
            .header("Authorization", "Bearer key-default")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (_, created) = f
        .call(api("/api/subscriptions".into(), json!({"url": format!("http://{addr}/slow"), "types": ["email.*"]})))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Arc::new(Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(10)).unwrap(),
    ));
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/bounce.json")).await;
    let events = db.receive(QueueName::Events, 10, 30).unwrap();
    processor.process(&events[0].body).await.unwrap();

    for action in ["disable", "rotate"] {
        if action == "rotate" {
            f.call(api(format!("/api/subscriptions/{id}/enable"), json!({}))).await;
        }
        let task = db.receive(QueueName::Deliveries, 10, 0).unwrap().remove(0);
        let attempt = {
            let (fanout, task) = (fanout.clone(), task.clone());
            tokio::spawn(async move {
                fanout.deliver(&task_message(&task.id, &task.body, task.receive_count), Timestamp::now()).await
            })
        };
        // While the attempt waits for its answer, the operator acts.
        arrived.recv().await.unwrap();
        let (status, answer) = f.call(api(format!("/api/subscriptions/{id}/{action}"), json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        release.notify_one();
        attempt.await.unwrap().unwrap();

        let stored = db.subscription("ws_default", &id).await.unwrap().unwrap();
        match action {
            "disable" => assert!(!stored.enabled, "the operator's disable was undone by the failed attempt"),
            _ => {
                let secret = answer["secret"].as_str().unwrap();
                assert!(stored.secrets.iter().any(|s| s.secret == secret), "the rotated-in secret was lost");
                assert!(stored.enabled);
            }
        }
        assert!(stored.failing_since.is_some() || !stored.enabled, "the attempt's own bookkeeping is kept too");
        db.change_visibility(QueueName::Deliveries, &task.receipt, 0).unwrap();
    }
}

/// A replay of a history longer than one call reads is several calls, each bounded, all of one
/// replay: every event queued once across them, every task carrying the same replay id.
#[tokio::test]
async fn a_long_replay_goes_on_call_after_call_each_reading_a_bounded_stretch() {
    use tidings_core::pipeline::{REPLAY_EVENTS_PER_CALL, ReplayRange, replay};
    let db = Sqlite::in_memory().unwrap();
    let subscription = tidings_tests::subscription_to("ws_default", "sub_long", "https://example.com/hook", &["*"]);
    db.put_subscription(&subscription).await.unwrap();
    let stored = REPLAY_EVENTS_PER_CALL * 2 + 7;
    let expires = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap();
    let events = tidings_tests::delivered_events("ws_default", stored, "m");
    let batch: Vec<_> = events.iter().map(|e| (e, tidings_core::ports::Expiry::from(expires))).collect();
    for result in db.record_batch(&batch).await {
        result.unwrap();
    }
    let range = ReplayRange::default();
    let (mut calls, mut queued, mut from) = (0, 0, None);
    loop {
        let progress = replay(&db, &db, &subscription, &range, from).await.unwrap();
        calls += 1;
        assert!(progress.queued <= REPLAY_EVENTS_PER_CALL, "one call queued {}", progress.queued);
        queued += progress.queued;
        match progress.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!((calls, queued), (3, stored));
    let tasks = db.peek(QueueName::Deliveries).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut replays = std::collections::BTreeSet::new();
    for (_, body) in &tasks {
        let task = tidings_core::delivery::DeliveryTask::from_message(body).unwrap();
        ids.insert(task.event_id.to_string());
        replays.insert(task.replay.unwrap());
    }
    assert_eq!(ids.len(), stored, "each event queued once");
    assert_eq!(replays.len(), 1, "one replay across the calls");
}

/// A delivery queued before its recipient was erased is not sent (on SQS its task outlives the
/// erasure); the attempt log never keeps the recipient a subscriber's answer echoes.
#[tokio::test]
async fn an_erased_recipient_s_queued_deliveries_are_dropped_and_attempts_never_keep_the_address() {
    let db = Sqlite::in_memory().unwrap();
    let (addr, received) = subscribers().await;
    let hook = tidings_tests::subscription_to("ws_default", "sub_hook", &format!("http://{addr}/hook"), &["*"]);
    let echo = tidings_tests::subscription_to("ws_default", "sub_echo", &format!("http://{addr}/echo"), &["*"]);
    db.put_subscription(&hook).await.unwrap();
    db.put_subscription(&echo).await.unwrap();
    let now = Timestamp::now();
    let mut queued =
        tidings_tests::event("ws_default", tidings_core::Status::Delivered, "m1", "erin@example.com", 0, "k");
    queued.event.data.received_at = now;
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let fanout = Fanout::new(
        db.clone(),
        db.clone(),
        tidings_fanout::Deliverer::new(loopback, std::time::Duration::from_secs(5)).unwrap(),
    );
    let task = |s| serde_json::to_string(&tidings_core::delivery::DeliveryTask::new(s, &queued.event)).unwrap();

    let echoed = task(&echo);
    fanout.deliver(&task_message("e-1", &echoed, 1), now).await.unwrap();
    let attempts = db.attempts("ws_default", "sub_echo", 10).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].detail.contains("[recipient]"), "{}", attempts[0].detail);
    assert!(!tidings_core::privacy::mentions(&attempts[0].detail, "erin@example.com"), "{}", attempts[0].detail);

    let erased_at = Timestamp::from_unix_seconds(now.unix_seconds() + 1).unwrap();
    tidings_core::pipeline::erase_recipient(&db, "ws_default", "erin@example.com", erased_at).await.unwrap();
    let hooked = task(&hook);
    assert_eq!(fanout.deliver(&task_message("h-1", &hooked, 1), erased_at).await.unwrap(), None);
    let batch = [task_message("h-2", &hooked, 1)];
    assert!(fanout.deliver_batch(&batch, erased_at).await[0].as_ref().unwrap().is_none());
    assert!(received.lock().unwrap().is_empty(), "nothing was sent about the erased recipient");
    assert!(db.attempts("ws_default", "sub_hook", 10).await.unwrap().is_empty());
}

/// A subscription's content filter decides which events it gets, as they are stored and when
/// they are replayed.
#[tokio::test]
async fn a_content_filter_picks_the_events_delivered_and_replayed() {
    let db = Sqlite::in_memory().unwrap();
    let mut hard_only = tidings_tests::subscription_to("ws_default", "sub_hard", "https://example.com/hook", &["*"]);
    hard_only.filter = Some(r#"data.bounce.kind == "hard" and data.tags.userId exists"#.into());
    db.put_subscription(&hard_only).await.unwrap();
    let processor = tidings_core::pipeline::Processor::with_fanout(db.clone(), db.clone(), 90);
    let mut tagged_hard = tidings_tests::hard_bounce("ws_default", "m1", "a@example.com", 1, "k1");
    tagged_hard.event.data.tags.insert("userId".into(), "u_1".into());
    let untagged_hard = tidings_tests::hard_bounce("ws_default", "m2", "b@example.com", 2, "k2");
    let mut soft = tidings_tests::event("ws_default", tidings_core::Status::Bounced, "m3", "c@example.com", 3, "k3");
    soft.event.data.tags.insert("userId".into(), "u_3".into());
    soft.event.data.bounce = Some(tidings_core::event::Bounce::of_kind(tidings_core::event::BounceKind::Soft));
    let bodies: Vec<String> =
        [&tagged_hard, &untagged_hard, &soft].iter().map(|q| serde_json::to_string(q).unwrap()).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    for result in processor.process_batch(&refs).await {
        result.unwrap();
    }
    let tasks = db.receive(QueueName::Deliveries, 10, 30).unwrap();
    let delivered: Vec<String> = tasks
        .iter()
        .map(|t| tidings_core::delivery::DeliveryTask::from_message(&t.body).unwrap().event_id.to_string())
        .collect();
    assert_eq!(delivered, [tagged_hard.event.id.to_string()], "only the tagged hard bounce");
    for task in &tasks {
        db.delete(QueueName::Deliveries, &task.receipt).unwrap();
    }

    let range = tidings_core::pipeline::ReplayRange::default();
    let progress = tidings_core::pipeline::replay(&db, &db, &hard_only, &range, None).await.unwrap();
    assert_eq!(progress.queued, 1, "a replay applies the filter too");
}

/// Each delivery carries its message's state once the event is folded in, and a version that
/// grows with every event: a consumer applying deliveries in any order and keeping the highest
/// version ends at the state the store holds.
#[tokio::test]
async fn deliveries_carry_the_message_state_and_the_highest_version_is_the_true_state() {
    use tidings_core::Status;
    let db = Sqlite::in_memory().unwrap();
    let everything = tidings_tests::subscription_to("ws_default", "sub_all", "https://example.com/hook", &["*"]);
    db.put_subscription(&everything).await.unwrap();
    let processor = tidings_core::pipeline::Processor::with_fanout(db.clone(), db.clone(), 90);
    let statuses = [Status::Sent, Status::Delivered, Status::Opened, Status::Opened, Status::Clicked, Status::Bounced];
    let events: Vec<_> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            tidings_tests::event("ws_default", *status, "m1", "a@example.com", i as i64, &format!("k{i}"))
        })
        .collect();
    // Two events alone, then the rest as one batch, out of time order.
    for batch in
        [&events[..1], &events[1..2], &[events[4].clone(), events[2].clone(), events[5].clone(), events[3].clone()][..]]
    {
        let bodies: Vec<String> = batch.iter().map(|q| serde_json::to_string(q).unwrap()).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        for result in processor.process_batch(&refs).await {
            result.unwrap();
        }
    }
    let mut carried: Vec<(u64, serde_json::Value)> = db
        .receive(QueueName::Deliveries, 100, 30)
        .unwrap()
        .iter()
        .map(|task| {
            let event = tidings_core::delivery::DeliveryTask::from_message(&task.body).unwrap().event.unwrap();
            (event.data.state_version.unwrap(), serde_json::to_value(event.data.state.unwrap()).unwrap())
        })
        .collect();
    let mut versions: Vec<u64> = carried.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6], "one version per event folded in");
    let truth = serde_json::to_value(&db.message_states("ws_default", "m1").await.unwrap()[0]).unwrap();
    // Applied in several orders, keeping the highest version seen.
    for rotation in 0..carried.len() {
        carried.rotate_left(1);
        let mut order = carried.clone();
        if rotation % 2 == 1 {
            order.reverse();
        }
        let mut kept: Option<&(u64, serde_json::Value)> = None;
        for delivery in &order {
            if kept.is_none_or(|(version, _)| delivery.0 > *version) {
                kept = Some(delivery);
            }
        }
        assert_eq!(kept.unwrap().1, truth, "order {rotation}");
    }
    // Stored events do not carry it.
    let stored = db
        .events(&tidings_core::ports::EventQuery { workspace: "ws_default".into(), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert!(stored.events.iter().all(|e| e.data.state.is_none() && e.data.state_version.is_none()));
}

/// The API takes a bus or queue ARN as a subscription's url, and a pace and circuit, each
/// checked with a one-line reason naming the field.
#[tokio::test]
async fn the_api_checks_destinations_pace_and_circuit_naming_the_field() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let create = new_subscription;
    let queue = "arn:aws:sqs:us-east-1:123456789012:orders.fifo";
    for (body, field, reason) in [
        (json!({"url": "arn:aws:sns:us-east-1:123456789012:t", "types": ["*"]}), "url", "not a destination"),
        (json!({"url": queue, "types": ["*"], "format": "dittofeed"}), "format", "canonical event"),
        (json!({"url": queue, "types": ["*"], "headers": ["X-Key: k"]}), "headers", "only an https destination"),
        (json!({"url": queue, "types": ["*"], "rate_limit": 0}), "rate_limit", "between 1 and 500"),
        (json!({"url": queue, "types": ["*"], "max_in_flight": 500}), "max_in_flight", "between 1 and 100"),
        (json!({"url": queue, "types": ["*"], "circuit_window_seconds": 60}), "circuit_window_seconds", "not set"),
        (json!({"url": queue, "types": ["*"], "circuit_failure_rate": 0}), "circuit_failure_rate", "between 1 and 100"),
    ] {
        let (status, answer) = f.call(create(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(reason), "{body}: {answer}");
    }
    assert!(db.subscriptions("ws_default").await.unwrap().is_empty(), "nothing refused was kept");
    let body = json!({"url": queue, "types": ["*"], "rate_limit": 25, "max_in_flight": 10,
        "circuit_failures": 3, "circuit_failure_rate": 50, "circuit_window_seconds": 120});
    let (status, created) = f.call(create(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["url"].as_str(), created["rate_limit"].as_u64(), created["max_in_flight"].as_u64()),
        (Some(queue), Some(25), Some(10))
    );
    assert_eq!(
        (created["circuit_failure_rate"].as_u64(), created["circuit_window_seconds"].as_u64()),
        (Some(50), Some(120))
    );
    assert_eq!(created["circuit"], json!({"state": "closed", "consecutive_failures": 0}));
}
