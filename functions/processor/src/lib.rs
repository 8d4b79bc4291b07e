//! The processor function: an SQS batch from the events queue, each record stored exactly
//! once. Answers with the records to retry (`ReportBatchItemFailures`), so one bad record never
//! fails or repeats its batch: a retryable failure (throttling, a timeout) is left on the queue
//! for SQS to redeliver, and a permanent one goes straight to the dead-letter queue with its
//! reason instead of burning the queue's receive count.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tidings_aws::SqsQueues;
use tidings_core::pipeline::Processor;
use tidings_core::ports::{Queue, QueueName, Store};

pub async fn handle<S: Store, Q: Queue>(
    processor: &Processor<S, Q>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let failed = match processor.process(body).await {
            Ok(_) => false,
            Err(error) if error.retryable => {
                tracing::warn!(message = %id, %error, "will be retried");
                true
            }
            Err(error) => match queues.dead_letter(QueueName::Events, body, &error.message).await {
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
