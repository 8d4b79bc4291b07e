//! The conformance suite on the SQLite adapter, plus what only the local queue does.

use tidings_core::ports::{Outgoing, Queue, QueueName};
use tidings_local::Sqlite;

#[tokio::test]
async fn sqlite_store_conforms() {
    let store = Sqlite::in_memory().unwrap();
    tidings_tests::run_all(&store).await;
}

#[tokio::test]
async fn sqlite_filtered_listings_do_bounded_work_per_page() {
    let store = Sqlite::in_memory().unwrap().with_scan_budget(20);
    tidings_tests::filtered_listings_do_bounded_work_per_page(&store, 20).await;
}

#[tokio::test]
async fn sqlite_store_conforms_on_disk_and_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("tidings-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tidings.db");
    {
        let store = Sqlite::open(&path).unwrap();
        tidings_tests::records_each_event_once(&store).await;
    }
    // Reopened, the event is still there and still a duplicate.
    let store = Sqlite::open(&path).unwrap();
    let e = tidings_tests::event("ws_once", tidings_core::Status::Delivered, "m1", "a@example.com", 10, "k1");
    let expires = tidings_core::Timestamp::from_unix_seconds(2_000_000_000).unwrap();
    let recorded = tidings_core::ports::EventStore::record(&store, &e, expires.into()).await.unwrap();
    assert_eq!(recorded, tidings_core::ports::Recorded::Duplicate);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn thresholds_and_silent_sources_are_announced_once_each_way() {
    let db = Sqlite::in_memory().unwrap();
    tidings_tests::thresholds_cross_and_recover_once(&db, &db).await;
    tidings_tests::silent_sources_are_announced_once_each_way(&db, &db).await;
}

#[tokio::test]
async fn sqlite_queues_conform_through_the_consumer_port() {
    use tidings_tests::queues;
    let db = Sqlite::in_memory().unwrap();
    queues::received_messages_are_hidden_and_counted(&db, QueueName::Events).await;
    queues::delayed_messages_wait(&db, QueueName::Deliveries).await;
    let dead_letters = || async {
        let dead = db.dead_letters(QueueName::Resend).unwrap();
        dead.into_iter().map(|d| (d.body, d.reason)).collect::<Vec<_>>()
    };
    queues::a_batch_settles_each_message_its_own_way(&db, QueueName::Resend, dead_letters).await;
}

fn message(body: &str) -> Outgoing {
    Outgoing { id: "0".into(), body: body.into(), delay_seconds: 0 }
}

#[tokio::test]
async fn queue_hides_received_messages_and_dead_letters_after_max_receives() {
    let queue = Sqlite::in_memory().unwrap().with_max_receives(2);
    queue.send(QueueName::Events, &[message("a"), message("b")]).await.unwrap();
    let first = queue.receive(QueueName::Events, 10, 30).unwrap();
    assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(queue.receive(QueueName::Events, 10, 30).unwrap().is_empty(), "in flight: invisible");
    assert!(queue.delete(QueueName::Events, &first[0].receipt).unwrap());

    // "b" was not deleted: make it visible again, as if its visibility timeout passed.
    assert!(queue.change_visibility(QueueName::Events, &first[1].receipt, 0).unwrap());
    let second = queue.receive(QueueName::Events, 10, 0).unwrap();
    assert_eq!((second[0].body.as_str(), second[0].receive_count), ("b", 2));
    assert!(!queue.delete(QueueName::Events, &first[1].receipt).unwrap(), "a stale receipt deletes nothing");

    // A third receive exceeds max_receives = 2: the message moves to the dead-letter queue.
    assert!(queue.receive(QueueName::Events, 10, 0).unwrap().is_empty());
    let dead = queue.dead_letters(QueueName::Events).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "b");
    assert!(dead[0].reason.contains("received 2 times"), "{}", dead[0].reason);

    assert_eq!(queue.redrive(QueueName::Events).unwrap(), 1);
    assert!(queue.dead_letters(QueueName::Events).unwrap().is_empty());
    assert_eq!(queue.receive(QueueName::Events, 10, 30).unwrap()[0].body, "b");
}

#[tokio::test]
async fn a_batch_delete_removes_current_receipts_only() {
    let queue = Sqlite::in_memory().unwrap();
    queue.send(QueueName::Deliveries, &[message("a"), message("b"), message("c")]).await.unwrap();
    let first = queue.receive(QueueName::Deliveries, 10, 0).unwrap();
    // "c" is received again: its first receipt is stale.
    let again = queue.receive(QueueName::Deliveries, 10, 30).unwrap();
    assert_eq!(again.len(), 3);
    let receipts = [again[0].receipt.as_str(), again[1].receipt.as_str(), first[2].receipt.as_str(), "not-a-receipt"];
    assert_eq!(queue.delete_all(QueueName::Deliveries, &receipts).unwrap(), 2);
    assert_eq!(queue.delete_all(QueueName::Events, &[again[2].receipt.as_str()]).unwrap(), 0, "another queue's");
    assert_eq!(queue.depth(QueueName::Deliveries).unwrap(), 1, "c stays until its current receipt deletes it");
}

#[tokio::test]
async fn delayed_messages_stay_hidden_until_due() {
    let queue = Sqlite::in_memory().unwrap();
    queue
        .send(QueueName::Resend, &[Outgoing { id: "0".into(), body: "later".into(), delay_seconds: 900 }])
        .await
        .unwrap();
    assert!(queue.receive(QueueName::Resend, 10, 30).unwrap().is_empty());
    assert_eq!(queue.depth(QueueName::Resend).unwrap(), 1);
}

/// Erasure proven on the bytes: after erasing a recipient of many events of five providers
/// (and with copies of their events on the queue and its dead letters), the database file, its
/// WAL and shared-memory files hold the address in none of its spellings; the recipient who
/// stays is still there.
#[tokio::test]
async fn sqlite_erasure_leaves_no_byte_of_the_recipient() {
    use tidings_tests::privacy::{ERASED, KEPT, assert_nowhere, corpus, erases_a_recipient_everywhere};
    let dir = std::env::temp_dir().join(format!("tidings-erase-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tidings.db");
    let store = Sqlite::open(&path).unwrap().with_max_receives(1);
    // Copies waiting on the events queue, and one dead-lettered.
    let waiting: Vec<Outgoing> = corpus("ws_erase", tidings_core::Timestamp::now())
        .iter()
        .filter(|e| e.event.data.recipient.as_deref() == Some(ERASED))
        .take(3)
        .enumerate()
        .map(|(i, e)| Outgoing { id: i.to_string(), body: serde_json::to_string(e).unwrap(), delay_seconds: 0 })
        .collect();
    store.send(QueueName::Deliveries, &waiting[..1]).await.unwrap();
    let poisoned = store.receive(QueueName::Deliveries, 10, 0).unwrap();
    assert_eq!(poisoned.len(), 1);
    assert!(store.receive(QueueName::Deliveries, 10, 0).unwrap().is_empty(), "moved to its dead letters");
    assert_eq!(store.dead_letters(QueueName::Deliveries).unwrap().len(), 1);
    store.send(QueueName::Events, &waiting[1..]).await.unwrap();

    let erased = erases_a_recipient_everywhere(&store, "ws_erase").await;
    assert!(erased.queued >= 3, "{erased:?}");
    assert!(store.receive(QueueName::Events, 10, 30).unwrap().is_empty());
    assert!(store.dead_letters(QueueName::Deliveries).unwrap().is_empty());

    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_nowhere(&text, ERASED, &file.display().to_string());
        seen += 1;
        if file.extension().is_none() {
            assert!(text.contains(KEPT), "the database still holds the recipient who stays");
        }
    }
    assert!(seen >= 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// A workspace's own retention decides when its events, their message states and provider
/// records go; another workspace keeps the deployment's default.
#[tokio::test]
async fn sqlite_workspace_retention_applies_to_events_states_and_records() {
    use tidings_core::ports::{EventQuery, EventStore, PrivacyStore};
    use tidings_core::privacy::PrivacySettings;
    let store = Sqlite::in_memory().unwrap();
    let short = PrivacySettings { retention_days: Some(7), raw_retention_days: Some(1), ..PrivacySettings::default() };
    store.put_privacy_settings("ws_short", &short).await.unwrap();
    let processor = tidings_core::pipeline::Processor::new(store.clone(), 90);
    let now = tidings_core::Timestamp::now().unix_seconds();
    for ws in ["ws_short", "ws_default"] {
        for (days, message) in [(10, "m-old"), (3, "m-recent")] {
            let mut queued =
                tidings_tests::event(ws, tidings_core::Status::Delivered, message, "a@example.com", 0, message);
            queued.event.data.received_at = tidings_core::Timestamp::from_unix_seconds(now - days * 86_400).unwrap();
            processor.process(&serde_json::to_string(&queued).unwrap()).await.unwrap();
        }
    }
    store.expire().unwrap();
    let listed = |ws: &'static str| {
        let store = store.clone();
        async move {
            let query = EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() };
            store.events(&query).await.unwrap().events
        }
    };
    let short_events = listed("ws_short").await;
    assert_eq!(short_events.len(), 1, "the 10-day-old event is past the workspace's 7 days");
    assert_eq!(short_events[0].data.message_id.as_deref(), Some("m-recent"));
    assert!(store.message_states("ws_short", "m-old").await.unwrap().is_empty(), "its message state went with it");
    let raw = store.raw("ws_short", Some("m-recent"), &short_events[0].id).await.unwrap();
    assert_eq!(raw.as_deref(), Some(""), "its provider record was kept one day");
    let default_events = listed("ws_default").await;
    assert_eq!(default_events.len(), 2, "the default is 90 days");
    for event in default_events {
        let raw = store.raw("ws_default", event.data.message_id.as_deref(), &event.id).await.unwrap();
        assert!(raw.is_some_and(|r| !r.is_empty()));
    }
}
