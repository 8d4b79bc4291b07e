//! The processor functions: an SQS batch from the events queue, each record stored exactly
//! once, and a batch from the resend queue, each retryable SES send failure resent. Both answer
//! with the records to retry (`ReportBatchItemFailures`), so one bad record never fails or
//! repeats its batch: a retryable failure (throttling, a timeout) is left on the queue for SQS
//! to redeliver, and a permanent one goes straight to the dead-letter queue with its reason
//! instead of burning the queue's receive count.

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tidings_aws::{SesSuppressionList, SqsQueues};
use tidings_core::Timestamp;
use tidings_core::pipeline::Processor;
use tidings_core::ports::{Emailer, Queue, QueueName, QueuedEvent, Store, StoreError};
use tidings_core::resend::Resender;
use tidings_core::suppression::{self, Change};

/// Mirrors hard bounces and complaints onto the SES account-level suppression list, for the
/// workspaces that asked (`TIDINGS_SES_SUPPRESSION_SYNC`: comma-separated workspace ids, or `*`).
pub struct SuppressionSync {
    pub list: SesSuppressionList,
    pub workspaces: Vec<String>,
}

impl SuppressionSync {
    fn covers(&self, workspace: &str) -> bool {
        self.workspaces.iter().any(|w| w == "*" || w == workspace)
    }

    /// Puts the event's recipient on the SES list if the event suppresses it. Runs for
    /// duplicates too (the put is idempotent), so a sync that failed is completed when SQS
    /// redelivers the record. A refusal that will not change (no IAM permission) is logged and
    /// counted, not retried: the event itself is stored.
    async fn mirror(&self, body: &str) -> Result<(), StoreError> {
        let Ok(queued) = serde_json::from_str::<QueuedEvent>(body) else { return Ok(()) };
        let event = &queued.event;
        let (Some(Change::Add(reason)), Some(recipient)) = (suppression::change_for(event), &event.data.recipient)
        else {
            return Ok(());
        };
        if !self.covers(&event.workspaceid) || !recipient.contains('@') {
            return Ok(());
        }
        match self.list.put(recipient, reason).await {
            Ok(mirrored) => {
                if mirrored {
                    tracing::info!(event = %event.id, workspace = %event.workspaceid, "recipient put on the SES suppression list");
                }
                Ok(())
            }
            Err(error) if error.is_retryable() => Err(error),
            Err(error) => {
                tracing::error!(event = %event.id, %error, metric = "ses_suppression_sync_failed", "SES suppression sync refused");
                Ok(())
            }
        }
    }
}

/// Handles one events-queue batch.
pub async fn handle<S: Store, Q: Queue>(
    processor: &Processor<S, Q>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    handle_with_sync(processor, queues, None, event).await
}

/// Handles one events-queue batch, mirroring suppressions to SES when `sync` is given. The
/// batch is processed together ([`Processor::process_batch`]): its delivery tasks go out in as
/// few SQS requests as possible.
pub async fn handle_with_sync<S: Store, Q: Queue>(
    processor: &Processor<S, Q>,
    queues: &SqsQueues,
    sync: Option<&SuppressionSync>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let bodies: Vec<String> = event.records.iter().map(|r| r.body.clone().unwrap_or_default()).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    // Boxed: the store and queue futures nest deep enough to overflow the layout depth limit.
    let processed = Box::pin(processor.process_batch(&refs)).await;
    let mut results = Vec::with_capacity(processed.len());
    for (body, result) in bodies.iter().zip(processed) {
        results.push(match (result, sync) {
            (Ok(_), Some(sync)) => sync.mirror(body).await,
            (result, _) => result.map(|_| ()),
        });
    }
    settle(QueueName::Events, queues, event, results).await
}

/// Handles one resend-queue batch: each task resends its report's request through SESv2 (at
/// most once per attempt, however often SQS delivers it) and reports a new failure as an event.
pub async fn handle_resend<S: Store, Q: Queue, E: Emailer>(
    resender: &Resender<S, Q, E>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    each_record(QueueName::Resend, queues, event, |body| async move { resender.resend(&body, Timestamp::now()).await })
        .await
}

async fn each_record<F, Fut>(queue: QueueName, queues: &SqsQueues, event: SqsEvent, run: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut results = Vec::with_capacity(event.records.len());
    for record in &event.records {
        // Boxed: the store and queue futures nest deep enough to overflow the layout depth limit.
        results.push(Box::pin(run(record.body.clone().unwrap_or_default())).await);
    }
    settle(queue, queues, event, results).await
}

/// Settles each record of `event` by its result ([`SqsQueues::answer_batch`]).
async fn settle(
    queue: QueueName,
    queues: &SqsQueues,
    event: SqsEvent,
    results: Vec<Result<(), StoreError>>,
) -> SqsBatchResponse {
    let records: Vec<_> = event.records.iter().collect();
    queues.answer_batch(queue, &records, results.into_iter().map(|r| r.map(|()| None)).collect()).await
}
