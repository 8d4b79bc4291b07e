//! Moving dead-lettered messages back to their queue: SQS's own move task
//! (`StartMessageMoveTask`, followed with `ListMessageMoveTasks`), or a receive/send/delete
//! loop for queues or credentials that cannot start one.

use std::sync::atomic::Ordering;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry};
use tidings_core::ports::{DeadLetterStatus, DeadLetters, MoveMethod, QueueName, StoreError};

use crate::{SqsQueues, classify};

impl SqsQueues {
    async fn attribute(&self, url: &str, name: QueueAttributeName) -> Result<Option<String>, StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client()
            .await
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", &e))?;
        Ok(out.attributes.and_then(|mut a| a.remove(&name)))
    }

    /// Messages on the dead-letter queue at `url` now (SQS's approximate count).
    async fn waiting(&self, url: &str) -> Result<u64, StoreError> {
        let count = self.attribute(url, QueueAttributeName::ApproximateNumberOfMessages).await?;
        Ok(count.and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    async fn arn(&self, url: &str) -> Result<String, StoreError> {
        self.attribute(url, QueueAttributeName::QueueArn)
            .await?
            .ok_or_else(|| StoreError::misconfigured(format!("SQS gave no QueueArn for {url}")))
    }

    /// Receives up to ten dead letters, sends them back, deletes them; the number moved.
    async fn move_batch(&self, from: &str, to: &str) -> Result<usize, StoreError> {
        self.requests.fetch_add(3, Ordering::Relaxed);
        let received = self
            .client()
            .await
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", &e))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body.clone().unwrap_or_default())
                    .build()
                    .map_err(|e| StoreError::refused(format!("SendMessageBatch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = self
            .client()
            .await
            .send_message_batch()
            .queue_url(to)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify("SendMessageBatch", &e))?;
        // Only what reached the queue is deleted; the rest stays dead-lettered for the next run.
        let delivered: Vec<usize> = sent.successful.iter().filter_map(|s| s.id.parse().ok()).collect();
        let deletes = delivered
            .iter()
            .filter_map(|&i| messages.get(i))
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .map_err(|e| StoreError::refused(format!("DeleteMessageBatch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !deletes.is_empty() {
            self.client()
                .await
                .delete_message_batch()
                .queue_url(from)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", &e))?;
        }
        if !sent.failed.is_empty() {
            let first = &sent.failed[0];
            return Err(StoreError::unavailable(format!(
                "SendMessageBatch refused {} of {} dead letters ({}: {})",
                sent.failed.len(),
                messages.len(),
                first.code,
                first.message.as_deref().unwrap_or("")
            )));
        }
        Ok(delivered.len())
    }
}

impl DeadLetters for SqsQueues {
    async fn dead_letter_status(&self, queue: QueueName) -> Result<DeadLetterStatus, StoreError> {
        let dlq = self.dead_letter_url(queue)?;
        let mut status = DeadLetterStatus {
            queue: queue.as_str().into(),
            waiting: self.waiting(dlq).await?,
            ..DeadLetterStatus::default()
        };
        let source_arn = self.arn(dlq).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let tasks = self
            .client()
            .await
            .list_message_move_tasks()
            .source_arn(source_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| classify("ListMessageMoveTasks", &e))?;
        if let Some(task) = tasks.results.unwrap_or_default().into_iter().next() {
            status.status = task.status;
            status.moved = task.approximate_number_of_messages_moved.max(0) as u64;
            status.to_move = task.approximate_number_of_messages_to_move.map(|n| n.max(0) as u64);
            status.failure = task.failure_reason;
        }
        Ok(status)
    }

    async fn redrive_dead_letters(&self, queue: QueueName, method: MoveMethod) -> Result<DeadLetterStatus, StoreError> {
        let dlq = self.dead_letter_url(queue)?;
        let target = self.url(queue)?;
        match method {
            MoveMethod::Native => {
                let (source_arn, destination_arn) = (self.arn(dlq).await?, self.arn(target).await?);
                self.requests.fetch_add(1, Ordering::Relaxed);
                self.client()
                    .await
                    .start_message_move_task()
                    .source_arn(source_arn)
                    .destination_arn(destination_arn)
                    .send()
                    .await
                    .map_err(|e| classify("StartMessageMoveTask", &e))?;
                self.dead_letter_status(queue).await
            }
            MoveMethod::Manual => {
                // What was there when the move began, so messages that fail again and come back
                // while it runs do not keep it going forever.
                let budget = self.waiting(dlq).await?.max(10);
                let mut moved = 0u64;
                while moved < budget {
                    let n = self.move_batch(dlq, target).await?;
                    if n == 0 {
                        break;
                    }
                    moved += n as u64;
                }
                Ok(DeadLetterStatus {
                    queue: queue.as_str().into(),
                    waiting: self.waiting(dlq).await?,
                    status: Some("COMPLETED".into()),
                    moved,
                    to_move: Some(moved),
                    failure: None,
                })
            }
        }
    }
}
