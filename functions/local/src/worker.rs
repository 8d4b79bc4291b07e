//! `tidings dev`'s worker: one loop per queue that receives a batch through the consumer port,
//! hands it to the service, and settles each message by the one batch policy
//! ([`Settlement::of`]), as the Lambda functions do on SQS. Sends wake the loop of their queue at
//! once; without one, a loop looks again after a second (for messages whose delay or visibility
//! timeout ran out).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tidings_core::ports::{
    Consumer, DeadLetterStatus, DeadLetters, MoveMethod, Outgoing, Queue, QueueName, Received, Settlement, StoreError,
};
use tokio::sync::Notify;

use crate::Sqlite;

/// How long a received message stays hidden while its batch is handled.
pub const VISIBILITY_SECONDS: u32 = 30;

/// One wake-up per queue: `notify_one` keeps a permit when its worker is busy, so a send that
/// lands while the worker is reading is not missed.
#[derive(Default)]
pub struct Wake {
    events: Notify,
    deliveries: Notify,
    resend: Notify,
}

impl Wake {
    pub fn of(&self, queue: QueueName) -> &Notify {
        match queue {
            QueueName::Events => &self.events,
            QueueName::Deliveries => &self.deliveries,
            QueueName::Resend => &self.resend,
        }
    }
}

/// The SQLite queues, waking the worker of a queue whenever something is put on it.
#[derive(Clone)]
pub struct Waking {
    pub db: Sqlite,
    pub wake: Arc<Wake>,
}

impl DeadLetters for Waking {
    async fn dead_letter_status(&self, queue: QueueName) -> Result<DeadLetterStatus, StoreError> {
        self.db.dead_letter_status(queue).await
    }

    async fn redrive_dead_letters(&self, queue: QueueName, method: MoveMethod) -> Result<DeadLetterStatus, StoreError> {
        let status = self.db.redrive_dead_letters(queue, method).await?;
        self.wake.of(queue).notify_one();
        Ok(status)
    }
}

impl Queue for Waking {
    async fn send(&self, queue: QueueName, messages: &[Outgoing]) -> Result<(), StoreError> {
        self.db.send(queue, messages).await?;
        self.wake.of(queue).notify_one();
        Ok(())
    }
}

/// One queue's loop, until `stop` turns true: receive up to 10 messages, `handle` them (one
/// result per message, in order: a delay when it should come back later, `None` when done),
/// settle each.
pub async fn drain<C, F, Fut>(
    queue: QueueName,
    consumer: &C,
    wake: &Wake,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    C: Consumer,
    F: Fn(Vec<Received>) -> Fut,
    Fut: Future<Output = Vec<Result<Option<Duration>, StoreError>>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match consumer.receive(queue, 10, VISIBILITY_SECONDS).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, queue = queue.as_str(), "cannot read the queue");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = wake.of(queue).notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let results = handle(batch.clone()).await;
        let settled: Vec<(Received, Settlement)> = batch
            .into_iter()
            .zip(results)
            .map(|(message, result)| {
                let settlement = Settlement::of(&result, message.receive_count);
                match &result {
                    Err(error) if error.is_retryable() => {
                        tracing::warn!(%error, receive_count = message.receive_count, "will be retried");
                    }
                    Err(error) => tracing::error!(%error, queue = queue.as_str(), "dead-lettered"),
                    Ok(_) => {}
                }
                (message, settlement)
            })
            .collect();
        consumer.settle(queue, &settled).await;
    }
}
