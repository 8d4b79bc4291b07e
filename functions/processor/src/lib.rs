//! The processor functions: an SQS batch from the events queue, each record stored exactly
//! once, and a batch from the redrive queue, each retryable SES send failure resent. Both answer
//! with the records to retry (`ReportBatchItemFailures`), so one bad record never fails or
//! repeats its batch: a retryable failure (throttling, a timeout) is left on the queue for SQS
//! to redeliver, and a permanent one goes straight to the dead-letter queue with its reason
//! instead of burning the queue's receive count.

use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tidings_aws::SqsQueues;
use tidings_core::Timestamp;
use tidings_core::pipeline::Processor;
use tidings_core::ports::{Emailer, Queue, QueueName, Store, StoreError};
use tidings_core::redrive::Redrive;

/// Handles one events-queue batch.
pub async fn handle<S: Store, Q: Queue>(
    processor: &Processor<S, Q>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    each_record(QueueName::Events, queues, event, |body| async move { processor.process(&body).await.map(drop) }).await
}

/// Handles one redrive-queue batch: each task resends its report's request through SESv2 (at
/// most once per attempt, however often SQS delivers it) and reports a new failure as an event.
pub async fn handle_redrive<S: Store, Q: Queue, E: Emailer>(
    redrive: &Redrive<S, Q, E>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    each_record(QueueName::Redrive, queues, event, |body| async move { redrive.resend(&body, Timestamp::now()).await })
        .await
}

async fn each_record<F, Fut>(queue: QueueName, queues: &SqsQueues, event: SqsEvent, run: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.unwrap_or_default();
        // Boxed: the store and queue futures nest deep enough to overflow the layout depth limit.
        let failed = match Box::pin(run(body.clone())).await {
            Ok(()) => false,
            Err(error) if error.retryable => {
                tracing::warn!(message = %id, %error, "will be retried");
                true
            }
            Err(error) => match queues.dead_letter(queue, &body, &error.message).await {
                Ok(()) => {
                    tracing::error!(message = %id, %error, "dead-lettered");
                    false
                }
                Err(dlq_error) => {
                    tracing::error!(message = %id, %error, %dlq_error, "cannot dead-letter; will be retried");
                    true
                }
            },
        };
        if failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
