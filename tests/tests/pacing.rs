//! Pacing and the circuit breaker, end to end on SQLite: a rate limit honoured by two fan-out
//! instances at once, and a circuit that opens, probes and closes, announcing each change.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tidings_core::delivery::DeliveryTask;
use tidings_core::pacing::Pacing;
use tidings_core::pipeline::{Fanout, Processor, QueuedTask, ReplayRange, replay};
use tidings_core::ports::{DeliveryStore, EventStore, QueueName, SubscriptionStore};
use tidings_core::ssrf::Guard;
use tidings_core::timestamp::Timestamp;
use tidings_local::Sqlite;

type Arrivals = Arc<Mutex<Vec<(Instant, String, String)>>>;

/// A subscriber on loopback recording when each delivery arrived (its path, its webhook-id);
/// `/toggle` fails while `failing` is set.
async fn subscriber(failing: Arc<AtomicBool>) -> (SocketAddr, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let (log, toggle_log) = (arrivals.clone(), arrivals.clone());
    let app = Router::new()
        .route(
            "/paced",
            post(move |headers: HeaderMap| async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                log.lock().unwrap().push((Instant::now(), "paced".into(), id));
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/toggle",
            post(move |headers: HeaderMap, body: String| async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let kind = if body.contains("\"subscription.circuit_") { "notice" } else { "toggle" };
                toggle_log.lock().unwrap().push((Instant::now(), kind.into(), id));
                if kind == "toggle" && failing.load(Ordering::SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, arrivals)
}

fn fanout(db: &Sqlite) -> Fanout<Sqlite, Sqlite, tidings_fanout::Deliverer> {
    let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    Fanout::new(db.clone(), db.clone(), tidings_fanout::Deliverer::new(loopback, Duration::from_secs(5)).unwrap())
}

/// One fan-out instance working the deliveries queue as the SQS event source drives the
/// function: a batch of up to ten, delivered, each message settled, until `done` says stop.
async fn work(db: Sqlite, done: impl Fn() -> bool) {
    let fanout = fanout(&db);
    while !done() {
        let batch = db.receive(QueueName::Deliveries, 10, 30).unwrap();
        if batch.is_empty() {
            // What is left waits out its delay on the queue: look again shortly, as a poller does.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let messages: Vec<QueuedTask<'_>> =
            batch.iter().map(|m| QueuedTask { id: &m.id, body: &m.body, receive_count: m.receive_count }).collect();
        let results = fanout.deliver_batch(&messages, Timestamp::now()).await;
        for (message, result) in batch.iter().zip(results) {
            match result.unwrap() {
                None => assert!(db.delete(QueueName::Deliveries, &message.receipt).unwrap()),
                Some(delay) => {
                    db.change_visibility(QueueName::Deliveries, &message.receipt, delay.as_secs() as u32).unwrap();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_two_fan_out_instances_for_a_200_event_replay_and_loses_nothing() {
    let db = Sqlite::in_memory().unwrap();
    let (addr, arrivals) = subscriber(Arc::default()).await;
    let mut subscription =
        tidings_tests::subscription_to("ws_default", "sub_paced", &format!("http://{addr}/paced"), &["*"]);
    subscription.pacing = Pacing { rate_limit: Some(10), max_in_flight: Some(5), ..Pacing::default() };
    db.put_subscription(&subscription).await.unwrap();
    let expires = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 86_400).unwrap();
    let events = tidings_tests::delivered_events("ws_default", 200, "m");
    let batch: Vec<_> = events.iter().map(|e| (e, tidings_core::ports::Expiry::from(expires))).collect();
    for result in db.record_batch(&batch).await {
        result.unwrap();
    }
    let mut from = None;
    loop {
        let progress = replay(&db, &db, &subscription, &ReplayRange::default(), from).await.unwrap();
        match progress.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }

    let delivered = || arrivals.lock().unwrap().len() >= 200;
    let started = Instant::now();
    let instances = (work(db.clone(), delivered), work(db.clone(), delivered));
    tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(instances.0, instances.1) })
        .await
        .expect("the replay was delivered within two minutes");

    let arrivals = arrivals.lock().unwrap().clone();
    let ids: BTreeSet<&str> = arrivals.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!((arrivals.len(), ids.len()), (200, 200), "every event once, none twice");
    let times: Vec<Instant> = arrivals.iter().map(|(at, _, _)| *at).collect();
    let busiest = times
        .iter()
        .map(|start| {
            times.iter().filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1)).count()
        })
        .max()
        .unwrap();
    // 10 per second, plus the one a late timer can add (crate::pacing's documented burst).
    assert!(busiest <= 11, "{busiest} deliveries within one second");
    let span = times.iter().max().unwrap().duration_since(*times.iter().min().unwrap());
    assert!(span >= Duration::from_millis(19_000), "200 events at 10/s take 19.9 s, not {span:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "and not much longer: {:?}", started.elapsed());
    let attempts = db.attempts("ws_default", "sub_paced", 1000).await.unwrap();
    assert!(attempts.iter().all(|a| a.attempt == 1), "waiting for a turn is not an attempt");
    assert_eq!(attempts.len(), 200);
}

/// The deliveries queue of the circuit test, handed over by hand at chosen times (as SQS would
/// once each message's delay passed): each round runs the fan-out on what waits, with a queue of
/// its own for what the round sends, so what a round deferred is the next round's to hand over.
struct Rounds {
    db: Sqlite,
    /// (message id, body, times received so far).
    pending: Vec<(String, String, u32)>,
    next_id: usize,
}

impl Rounds {
    fn new(db: &Sqlite, bodies: &[String]) -> Rounds {
        let mut rounds = Rounds { db: db.clone(), pending: Vec::new(), next_id: 0 };
        for body in bodies {
            rounds.push(body.clone());
        }
        rounds
    }

    fn push(&mut self, body: String) {
        self.next_id += 1;
        self.pending.push((format!("msg-{}", self.next_id), body, 0));
    }

    /// Hands the first `count` waiting messages over at `now`; returns how many were handed.
    async fn hand_over(&mut self, count: usize, now: Timestamp) -> usize {
        let queue = Sqlite::in_memory().unwrap();
        let loopback = Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
        let sender = tidings_fanout::Deliverer::new(loopback, Duration::from_secs(5)).unwrap();
        let fanout = Fanout::new(self.db.clone(), queue.clone(), sender);
        let count = count.min(self.pending.len());
        let handed: Vec<_> = self.pending.drain(..count).collect();
        for (id, body, received) in handed {
            let message = QueuedTask { id: &id, body: &body, receive_count: received + 1 };
            // A retry keeps the message (received once more); anything else finishes it.
            if fanout.deliver(&message, now).await.unwrap().is_some() {
                self.pending.push((id, body, received + 1));
            }
        }
        for (_, body) in queue.peek(QueueName::Deliveries).unwrap() {
            self.push(body);
        }
        // Announcements go on to the pipeline's own events queue.
        let announced: Vec<_> = queue
            .peek(QueueName::Events)
            .unwrap()
            .into_iter()
            .map(|(id, body)| tidings_core::ports::Outgoing { id, body, delay_seconds: 0 })
            .collect();
        tidings_core::ports::Queue::send(&self.db, QueueName::Events, &announced).await.unwrap();
        count
    }
}

#[tokio::test]
async fn a_circuit_opens_after_five_failures_probes_once_and_closes_announcing_each_change() {
    let db = Sqlite::in_memory().unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let (addr, arrivals) = subscriber(failing.clone()).await;
    let flaky = tidings_tests::subscription_to("ws_default", "sub_flaky", &format!("http://{addr}/toggle"), &["*"]);
    let watcher = tidings_tests::subscription_to(
        "ws_default",
        "sub_watcher",
        &format!("http://{addr}/toggle"),
        &["subscription.circuit_opened", "subscription.circuit_closed"],
    );
    db.put_subscription(&flaky).await.unwrap();
    db.put_subscription(&watcher).await.unwrap();
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    let events = tidings_tests::delivered_events("ws_default", 8, "c");
    let tasks: Vec<String> =
        events.iter().map(|e| serde_json::to_string(&DeliveryTask::new(&flaky, &e.event)).unwrap()).collect();
    let mut queue = Rounds::new(&db, &tasks);
    let t0 = Timestamp::now();
    let at = |seconds: u64| t0.plus_seconds(seconds);
    let attempts = |db: Sqlite| async move { db.attempts("ws_default", "sub_flaky", 100).await.unwrap() };

    // Five failures in a row open the circuit.
    queue.hand_over(5, t0).await;
    let stored = db.subscription("ws_default", "sub_flaky").await.unwrap().unwrap();
    let open = stored.circuit.open.clone().expect("the circuit opened");
    assert_eq!(open.reason, "5 consecutive failed attempts");
    assert!(stored.enabled, "an open circuit is not a disable");
    assert_eq!(queue.pending.len(), 8, "five retries and three not yet handed over");

    // While it is open, deliveries wait on the queue as new messages; no attempt is made, and a
    // retried task keeps the count of attempts it made.
    queue.hand_over(8, at(10)).await;
    assert_eq!(attempts(db.clone()).await.len(), 5);
    let counts: Vec<u32> =
        queue.pending.iter().map(|(_, body, _)| DeliveryTask::from_message(body).unwrap().attempts).collect();
    assert_eq!(counts, [0, 0, 0, 1, 1, 1, 1, 1]);

    // After the backoff one delivery is the probe; it fails, so the others keep waiting and the
    // next probe waits twice as long.
    queue.hand_over(8, at(31)).await;
    assert_eq!(attempts(db.clone()).await.len(), 6, "one probe, not eight attempts");
    let stored = db.subscription("ws_default", "sub_flaky").await.unwrap().unwrap();
    let open = stored.circuit.open.clone().expect("still open");
    assert_eq!((open.probe_at, open.backoff_seconds), (at(61), 60));

    // The subscriber recovers: the next probe succeeds, closes the circuit, and the backlog goes.
    failing.store(false, Ordering::SeqCst);
    queue.hand_over(1, at(62)).await;
    let stored = db.subscription("ws_default", "sub_flaky").await.unwrap().unwrap();
    assert!(stored.circuit.is_default() && stored.failing_since.is_none(), "{:?}", stored.circuit);
    queue.hand_over(100, at(63)).await;
    assert!(queue.pending.is_empty(), "{:?}", queue.pending);
    let delivered: BTreeSet<String> =
        attempts(db.clone()).await.into_iter().filter(|a| a.outcome == "delivered").map(|a| a.event_id).collect();
    assert_eq!(delivered.len(), 8, "every event of the backlog delivered");
    assert_eq!(attempts(db.clone()).await.len(), 6 + 8, "the backlog went in one attempt each");

    // Each change was announced once, as an event delivered to the subscriptions asking for it.
    loop {
        let queued = db.receive(QueueName::Events, 10, 30).unwrap();
        if queued.is_empty() {
            break;
        }
        for m in &queued {
            processor.process(&m.body).await.unwrap();
            db.delete(QueueName::Events, &m.receipt).unwrap();
        }
    }
    let notices: Vec<String> = db.peek(QueueName::Deliveries).unwrap().into_iter().map(|(_, body)| body).collect();
    let mut notices_queue = Rounds::new(&db, &notices);
    notices_queue.hand_over(100, at(64)).await;
    let notices = arrivals.lock().unwrap().iter().filter(|(_, kind, _)| kind == "notice").count();
    assert_eq!(notices, 2, "circuit_opened and circuit_closed, once each");
}

#[tokio::test]
async fn a_failure_rate_over_its_window_opens_the_circuit_where_no_run_of_failures_would() {
    let db = Sqlite::in_memory().unwrap();
    let failing = Arc::new(AtomicBool::new(false));
    let (addr, _) = subscriber(failing.clone()).await;
    let mut flaky = tidings_tests::subscription_to("ws_default", "sub_rate", &format!("http://{addr}/toggle"), &["*"]);
    flaky.pacing = Pacing {
        circuit_failures: Some(100),
        circuit_failure_rate: Some(50),
        circuit_window_seconds: Some(60),
        ..Pacing::default()
    };
    db.put_subscription(&flaky).await.unwrap();
    let events = tidings_tests::delivered_events("ws_default", 10, "r");
    let tasks: Vec<String> =
        events.iter().map(|e| serde_json::to_string(&DeliveryTask::new(&flaky, &e.event)).unwrap()).collect();
    let mut queue = Rounds::new(&db, &tasks);
    let t0 = Timestamp::now();
    // Successes and failures taking turns: never more than one failure in a row.
    for i in 0..9 {
        failing.store(i % 2 == 1, Ordering::SeqCst);
        queue.hand_over(1, t0.plus_seconds(i)).await;
        let stored = db.subscription("ws_default", "sub_rate").await.unwrap().unwrap();
        assert!(stored.circuit.open.is_none(), "closed after {} attempts", i + 1);
    }
    // The tenth attempt fails: 5 of 10 within the minute.
    failing.store(true, Ordering::SeqCst);
    let tenth = queue.pending.iter().position(|(_, body, received)| *received == 0 && body.contains("\"r9\"")).unwrap();
    let last = queue.pending.remove(tenth);
    queue.pending.insert(0, last);
    queue.hand_over(1, t0.plus_seconds(9)).await;
    let stored = db.subscription("ws_default", "sub_rate").await.unwrap().unwrap();
    let open = stored.circuit.open.expect("opened by the failure rate");
    assert_eq!(open.reason, "50% or more of the attempts in 60 s failed");
    assert_eq!(stored.circuit.consecutive_failures, 1);
}
