//! [`Queue`] on SQS: `SendMessageBatch` in chunks SQS accepts (at most 10 entries and 256 KiB a
//! call), entries a call refuses retried, and dead letters sent with their reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tidings_core::ports::{Outgoing, Queue, QueueName, StoreError};

use crate::classify;

/// SQS's limits for one `SendMessageBatch` call.
pub const MAX_BATCH_ENTRIES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Attempts for entries a batch call reports as failed (not the call itself: the SDK retries
/// throttled and failed calls on its own).
const ENTRY_ATTEMPTS: u32 = 3;

/// The pipeline's queue URLs.
#[derive(Debug, Clone, Default)]
pub struct QueueUrls {
    pub queues: HashMap<QueueName, String>,
    pub dead_letters: HashMap<QueueName, String>,
}

#[derive(Clone)]
pub struct SqsQueues {
    pub(crate) client: crate::LazyClient<Client>,
    pub(crate) urls: QueueUrls,
    /// SQS requests this sender made (each `SendMessageBatch` or `SendMessage` call).
    pub(crate) requests: Arc<AtomicU64>,
}

/// Splits `messages` into batches within SQS's entry and size limits. A single message over
/// the size limit is an error: SQS would refuse it on every attempt.
pub fn chunks(messages: &[Outgoing]) -> Result<Vec<&[Outgoing]>, StoreError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, message) in messages.iter().enumerate() {
        let size = message.body.len();
        if size > MAX_BATCH_BYTES {
            return Err(StoreError::permanent(format!(
                "message of {size} bytes is over SQS's {MAX_BATCH_BYTES}-byte limit"
            )));
        }
        if i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    Ok(out)
}

impl SqsQueues {
    pub fn new(client: impl Into<crate::LazyClient<Client>>, urls: QueueUrls) -> Self {
        SqsQueues { client: client.into(), urls, requests: Arc::new(AtomicU64::new(0)) }
    }

    /// The SDK client, built on first use ([`crate::LazyClient`]).
    pub(crate) async fn client(&self) -> &Client {
        self.client.get().await
    }

    /// SQS requests made so far (billed per request, each up to 64 KiB).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn dead_letter_url(&self, queue: QueueName) -> Result<&str, StoreError> {
        self.urls.dead_letters.get(&queue).map(String::as_str).ok_or_else(|| {
            StoreError::permanent(format!("no URL configured for the {} dead-letter queue", queue.as_str()))
        })
    }

    pub(crate) fn url(&self, queue: QueueName) -> Result<&str, StoreError> {
        self.urls
            .queues
            .get(&queue)
            .map(String::as_str)
            .ok_or_else(|| StoreError::permanent(format!("no URL configured for the {} queue", queue.as_str())))
    }

    async fn send_chunk(&self, url: &str, chunk: &[Outgoing]) -> Result<(), StoreError> {
        let mut pending: Vec<&Outgoing> = chunk.iter().collect();
        for attempt in 0..ENTRY_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|m| {
                    SendMessageBatchRequestEntry::builder()
                        .id(&m.id)
                        .message_body(&m.body)
                        .delay_seconds(m.delay_seconds.min(900) as i32)
                        .build()
                        .map_err(|e| StoreError::permanent(format!("batch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client()
                .await
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("SendMessageBatch", &e))?;
            let failed = out.failed;
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(refused) = failed.iter().find(|f| f.sender_fault) {
                return Err(StoreError::permanent(format!(
                    "SQS refused a message: {} {}",
                    refused.code,
                    refused.message.as_deref().unwrap_or("")
                )));
            }
            pending.retain(|m| failed.iter().any(|f| f.id == m.id));
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(StoreError::retryable(format!(
            "SQS did not take {} of {} messages after {ENTRY_ATTEMPTS} attempts",
            pending.len(),
            chunk.len()
        )))
    }

    /// Hides a received message for `seconds` from now (`ChangeMessageVisibility`, at most
    /// 12 hours): how a delivery waits for its retry without a new message.
    pub async fn change_visibility(
        &self,
        queue: QueueName,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), StoreError> {
        let url = self.url(queue)?.to_owned();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.client()
            .await
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| classify("ChangeMessageVisibility", &e))?;
        Ok(())
    }

    /// Sends `body` to `queue`'s dead-letter queue with the reason it could not be processed
    /// (as the `tidings-reason` message attribute), and counts it (`DeadLettered` by queue).
    pub async fn dead_letter(&self, queue: QueueName, body: &str, reason: &str) -> Result<(), StoreError> {
        let url = self.dead_letter_url(queue)?;
        let reason: String = reason.chars().take(1024).collect();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| StoreError::permanent(format!("message attribute: {e}")))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.client()
            .await
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("tidings-reason", attribute)
            .send()
            .await
            .map_err(|e| classify("SendMessage", &e))?;
        tidings_core::metrics::record(
            &[("Queue", queue.as_str())],
            &[("DeadLettered", tidings_core::metrics::Unit::Count, 1.0)],
        );
        Ok(())
    }

    /// What SQS should do with each record of a Lambda batch from `queue`, given how handling
    /// it went (`results`, one per record, in order): nothing (done: Lambda deletes it), wait and
    /// come back (`Ok(Some(delay))`: its visibility extended to the delay, and reported as a batch
    /// item failure so Lambda keeps it), come back after the visibility timeout (a retryable
    /// error), or, for a permanent error, go to the dead-letter queue with the reason (retried
    /// instead when even that fails).
    pub async fn settle(
        &self,
        queue: QueueName,
        records: &[&SqsMessage],
        results: Vec<Result<Option<Duration>, StoreError>>,
    ) -> SqsBatchResponse {
        let settled = records.iter().zip(results).map(|(record, result)| async move {
            let id = record.message_id.as_deref().unwrap_or_default();
            let receipt = record.receipt_handle.as_deref().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or_default();
            let retry = match result {
                Ok(None) => false,
                Ok(Some(delay)) => {
                    let seconds = delay.as_secs().min(43_200) as u32;
                    if let Err(error) = self.change_visibility(queue, receipt, seconds).await {
                        tracing::warn!(message = %id, %error, "cannot delay the retry; SQS will redeliver after the visibility timeout");
                    }
                    true
                }
                Err(error) if error.retryable => {
                    tracing::warn!(message = %id, %error, "will be retried");
                    true
                }
                Err(error) => match self.dead_letter(queue, body, &error.message).await {
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
            retry.then(|| id.to_owned())
        });
        let mut response = SqsBatchResponse::default();
        for id in futures_util::future::join_all(settled).await.into_iter().flatten() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }
}

impl Queue for SqsQueues {
    async fn send(&self, queue: QueueName, messages: &[Outgoing]) -> Result<(), StoreError> {
        let url = self.url(queue)?.to_owned();
        for chunk in chunks(messages)? {
            self.send_chunk(&url, chunk).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(size: usize) -> Outgoing {
        Outgoing { id: "x".into(), body: "a".repeat(size), delay_seconds: 0 }
    }

    #[test]
    fn chunks_respect_entry_and_byte_limits() {
        let many: Vec<Outgoing> = (0..25).map(|_| message(10)).collect();
        let sizes: Vec<usize> = chunks(&many).unwrap().iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<Outgoing> = (0..4).map(|_| message(100 * 1024)).collect();
        let sizes: Vec<usize> = chunks(&big).unwrap().iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2]);
        assert!(chunks(&[message(MAX_BATCH_BYTES + 1)]).is_err());
        assert!(chunks(&[]).unwrap().is_empty());
    }
}
