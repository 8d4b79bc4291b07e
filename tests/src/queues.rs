//! What every queue adapter must do through the consumer port, written once and run on SQLite
//! and on SQS (moto): hiding what was received, delays, receive counts, settling a batch whose
//! messages went different ways, and dead letters that keep their reason.
//!
//! Each case leaves its queue empty but for delayed messages; give each its own queue. A consumer on SQS must delete what it settles
//! (`SqsQueues::deleting_settled`), as Lambda's event source mapping does under Lambda.

use std::future::Future;
use std::time::Duration;

use tidings_core::ports::{Consumer, Outgoing, Queue, QueueName, Received, Settlement};

fn outgoing(id: &str, body: &str, delay_seconds: u32) -> Outgoing {
    Outgoing { id: id.into(), body: body.into(), delay_seconds }
}

fn bodies(batch: &[Received]) -> Vec<&str> {
    let mut bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    bodies
}

/// A received message is hidden for its visibility timeout; set back, it comes again as the
/// same message with a new receipt and a receive count one higher; settled as done, it is gone.
pub async fn received_messages_are_hidden_and_counted<C: Queue + Consumer>(queue: &C, name: QueueName) {
    queue.send(name, &[outgoing("0", "a", 0)]).await.unwrap();
    let first = queue.receive(name, 10, 30).await.unwrap();
    assert_eq!(bodies(&first), ["a"]);
    assert_eq!(first[0].receive_count, 1);
    assert!(queue.receive(name, 10, 30).await.unwrap().is_empty(), "in flight: hidden");

    let back = queue.settle(name, &[(first[0].clone(), Settlement::Later(Duration::ZERO))]).await;
    assert_eq!(back, [first[0].id.clone()], "a message to handle later stays on the queue");
    let second = queue.receive(name, 10, 0).await.unwrap();
    assert_eq!(bodies(&second), ["a"]);
    assert_eq!((second[0].id.as_str(), second[0].receive_count), (first[0].id.as_str(), 2));
    assert_ne!(second[0].receipt, first[0].receipt, "each receive has its own receipt");

    let back = queue.settle(name, &[(second[0].clone(), Settlement::Done)]).await;
    assert!(back.is_empty(), "{back:?}");
    assert!(queue.receive(name, 10, 0).await.unwrap().is_empty(), "done: deleted");
}

/// A message sent with a delay is not received before the delay is over.
pub async fn delayed_messages_wait<C: Queue + Consumer>(queue: &C, name: QueueName) {
    queue.send(name, &[outgoing("0", "later", 600), outgoing("1", "now", 0)]).await.unwrap();
    let batch = queue.receive(name, 10, 0).await.unwrap();
    assert_eq!(bodies(&batch), ["now"]);
    queue.settle(name, &[(batch[0].clone(), Settlement::Done)]).await;
}

/// One batch settled four ways: the done one is deleted, the dead letter leaves the queue for
/// its dead-letter queue with its reason, and only the one to retry and the one to handle later
/// stay (what a Lambda function reports as its batch item failures).
pub async fn a_batch_settles_each_message_its_own_way<C, D, Fut>(queue: &C, name: QueueName, dead_letters: D)
where
    C: Queue + Consumer,
    D: Fn() -> Fut,
    Fut: Future<Output = Vec<(String, String)>>,
{
    let sent: Vec<Outgoing> =
        ["done", "retry", "poison", "later"].iter().enumerate().map(|(i, b)| outgoing(&i.to_string(), b, 0)).collect();
    queue.send(name, &sent).await.unwrap();
    // Received with no visibility timeout, so a retry is visible again at once. SQS may answer
    // a receive with part of the queue; the newest receipt of each message is the one to settle.
    let mut batch: Vec<Received> = Vec::new();
    for _ in 0..20 {
        for message in queue.receive(name, 10, 0).await.unwrap() {
            batch.retain(|m| m.id != message.id);
            batch.push(message);
        }
        if batch.len() == sent.len() {
            break;
        }
    }
    assert_eq!(bodies(&batch), ["done", "later", "poison", "retry"]);
    let settled: Vec<(Received, Settlement)> = batch
        .iter()
        .map(|m| {
            let settlement = match m.body.as_str() {
                "done" => Settlement::Done,
                "retry" => Settlement::Retry { backoff: Duration::ZERO },
                "poison" => Settlement::DeadLetter("events-queue message is not a queued event".into()),
                _ => Settlement::Later(Duration::from_secs(600)),
            };
            (m.clone(), settlement)
        })
        .collect();
    let mut back = queue.settle(name, &settled).await;
    back.sort();
    let id = |body: &str| batch.iter().find(|m| m.body == body).unwrap().id.clone();
    let mut expected = vec![id("retry"), id("later")];
    expected.sort();
    assert_eq!(back, expected);

    assert_eq!(
        dead_letters().await,
        [("poison".to_owned(), "events-queue message is not a queued event".to_owned())],
        "the dead letter keeps its reason"
    );
    // The retry is back at once, received again; "later" waits out its delay; "done" and
    // "poison" are gone.
    let again = queue.receive(name, 10, 30).await.unwrap();
    assert_eq!(bodies(&again), ["retry"]);
    assert!(again[0].receive_count >= 2, "received {} times", again[0].receive_count);
    queue.settle(name, &[(again[0].clone(), Settlement::Done)]).await;
}
