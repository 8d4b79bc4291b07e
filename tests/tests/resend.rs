//! SES sends that failed retryably are resent (once per attempt) and never reported as failed;
//! the rest fail; a send that keeps failing ends as email.retries_exhausted.

mod common;

use common::{WS, events_dir, fixture};
use tidings_core::pipeline::Processor;
use tidings_core::ports::EventStore;
use tidings_core::ports::{EventQuery, QueueName};
use tidings_core::resend::{self, Resender};
use tidings_core::retryable::SendError;
use tidings_core::{ProviderId, Timestamp};
use tidings_local::Sqlite;

async fn drain_events(db: &Sqlite, processor: &Processor<Sqlite, Sqlite>) {
    loop {
        let batch = db.receive(QueueName::Events, 10, 30).unwrap();
        if batch.is_empty() {
            return;
        }
        for m in &batch {
            processor.process(&m.body).await.unwrap();
            db.delete(QueueName::Events, &m.receipt).unwrap();
        }
    }
}

async fn stored(db: &Sqlite, pattern: &str) -> Vec<tidings_core::CanonicalEvent> {
    db.events(&EventQuery {
        workspace: WS.into(),
        type_pattern: Some(pattern.into()),
        limit: 100,
        ..Default::default()
    })
    .await
    .unwrap()
    .events
}

/// An emailer whose every send is throttled.
struct Throttled;
impl tidings_core::ports::Emailer for Throttled {
    async fn send_email(&self, _: &serde_json::Value) -> Result<String, SendError> {
        Err(serde_json::from_str(r#"{"name":"ThrottlingException","message":"Rate exceeded","$retryable":{"throttling":true},"$metadata":{"httpStatusCode":400}}"#).unwrap())
    }
}

#[tokio::test]
async fn a_throttled_send_is_scheduled_and_resent_once_per_attempt() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    assert_eq!(
        f.post_sample(ProviderId::Ses, &events_dir().join("ses/send-failure-throttled.json")).await.0.as_u16(),
        200
    );
    drain_events(&db, &processor).await;
    let scheduled = stored(&db, "email.retry_scheduled").await;
    assert_eq!(scheduled.len(), 2, "one per recipient");
    assert!(stored(&db, "email.failed").await.is_empty(), "a retryable failure is never reported as failed");
    assert_eq!(db.depth(QueueName::Resend).unwrap(), 2, "a resend scheduled (delayed) for each recipient's event");

    // Both tasks (and a redelivery) resend the request once.
    let resender = Resender::new(db.clone(), db.clone(), db.clone());
    for event in scheduled.iter().chain(scheduled.iter()) {
        let (task, attempt) = resend::task_for(event, "src").unwrap();
        assert_eq!(attempt, 1);
        resender.resend(&serde_json::to_string(&task).unwrap(), Timestamp::now()).await.unwrap();
    }
    let outbox = db.outbox().unwrap();
    assert_eq!(outbox.len(), 1, "one resend for attempt 2");
    assert_eq!(outbox[0].1["Destination"]["ToAddresses"][0], "Jane.Doe@example.com");
    assert_eq!(outbox[0].1["ConfigurationSetName"], "tidings", "same configuration set, so SES's events come back");
    let tags = outbox[0].1["EmailTags"].as_array().unwrap();
    assert!(tags.contains(&serde_json::json!({"Name": "userId", "Value": "user_7"})), "the sender's tags are kept");
    assert!(
        tags.contains(&serde_json::json!({"Name": "tidings-message", "Value": "rep_01JDXA0000000000000000001"})),
        "the resend names the timeline it belongs to: {tags:?}"
    );

    // SES's delivery of the resent message (its tags as SES reports them) joins the same timeline.
    f.post_sample(ProviderId::Ses, &events_dir().join("ses/delivery-after-resend.json")).await;
    drain_events(&db, &processor).await;
    let timeline = db
        .events(&EventQuery {
            workspace: WS.into(),
            message_id: Some("rep_01JDXA0000000000000000001".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .events;
    let mut types: Vec<String> = timeline.iter().map(|e| e.event_type.to_string()).collect();
    types.sort();
    assert_eq!(types, ["email.delivered", "email.delivered", "email.retry_scheduled", "email.retry_scheduled"]);
    let states = db.message_states(WS, "rep_01JDXA0000000000000000001").await.unwrap();
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|s| s.status == tidings_core::Status::Delivered), "{states:?}");
}

#[tokio::test]
async fn a_rejected_send_fails_and_is_not_resent() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    f.post_sample(ProviderId::Ses, &events_dir().join("ses/send-failure-rejected.json")).await;
    drain_events(&db, &processor).await;
    let failed = stored(&db, "email.failed").await;
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.data.retryable == Some(false)));
    assert_eq!(db.depth(QueueName::Resend).unwrap(), 0);
}

#[tokio::test]
async fn a_send_that_keeps_failing_ends_as_retries_exhausted() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let processor = Processor::with_fanout(db.clone(), db.clone(), 90);
    f.post_sample(ProviderId::Ses, &events_dir().join("ses/send-failure-throttled.json")).await;
    drain_events(&db, &processor).await;
    let resender = Resender::new(db.clone(), db.clone(), Throttled);
    for attempt in 1..resend::MAX_ATTEMPTS {
        // The resend queue would hand over the task for the newest scheduled retry.
        let latest = stored(&db, "email.retry_scheduled")
            .await
            .into_iter()
            .find(|e| e.data.details["attempt"] == attempt)
            .unwrap_or_else(|| panic!("no retry_scheduled for attempt {attempt}"));
        let (task, _) = resend::task_for(&latest, "src").unwrap();
        resender.resend(&serde_json::to_string(&task).unwrap(), Timestamp::now()).await.unwrap();
        drain_events(&db, &processor).await;
    }
    let exhausted = stored(&db, "email.retries_exhausted").await;
    assert_eq!(exhausted.len(), 2, "one per recipient");
    assert!(
        exhausted[0].data.reason.as_deref().unwrap().starts_with("gave up after 5 attempts"),
        "{:?}",
        exhausted[0].data.reason
    );
    assert!(stored(&db, "email.failed").await.is_empty(), "never reported as failed");
    assert_eq!(
        stored(&db, "email.retry_scheduled").await.len(),
        2 * 4,
        "attempts 1 to 4 scheduled, for both recipients"
    );
}
