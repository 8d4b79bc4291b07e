//! [`Queue`] on SQS: `SendMessageBatch` in chunks SQS accepts (at most 10 entries and 256 KiB a
//! call), entries a call refuses retried, and dead letters sent with their reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tidings_core::ports::{Consumer, Outgoing, Queue, QueueName, Received, Settlement, StoreError};

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
    /// Whether [`Consumer::settle`] deletes the messages it settles for good. Under Lambda it
    /// must not: the event source mapping deletes every message the function does not report.
    pub(crate) delete_settled: bool,
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
            return Err(StoreError::refused(format!(
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
        SqsQueues { client: client.into(), urls, requests: Arc::new(AtomicU64::new(0)), delete_settled: false }
    }

    /// For a consumer that receives for itself (not through Lambda's event source mapping):
    /// settling also deletes the messages that are done or dead-lettered.
    pub fn deleting_settled(mut self) -> Self {
        self.delete_settled = true;
        self
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
            StoreError::misconfigured(format!("no URL configured for the {} dead-letter queue", queue.as_str()))
        })
    }

    pub(crate) fn url(&self, queue: QueueName) -> Result<&str, StoreError> {
        self.urls
            .queues
            .get(&queue)
            .map(String::as_str)
            .ok_or_else(|| StoreError::misconfigured(format!("no URL configured for the {} queue", queue.as_str())))
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
                        .map_err(|e| StoreError::refused(format!("batch entry: {e}")))
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
                return Err(StoreError::refused(format!(
                    "SQS refused a message: {} {}",
                    refused.code,
                    refused.message.as_deref().unwrap_or("")
                )));
            }
            pending.retain(|m| failed.iter().any(|f| f.id == m.id));
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(StoreError::unavailable(format!(
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

    /// Deletes received messages by receipt (`DeleteMessageBatch`, ten a call).
    async fn delete_batch(&self, queue: QueueName, receipts: &[&str]) -> Result<(), StoreError> {
        let url = self.url(queue)?.to_owned();
        for chunk in receipts.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*receipt)
                        .build()
                        .map_err(|e| StoreError::refused(format!("batch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client()
                .await
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("DeleteMessageBatch", &e))?;
            if let Some(failed) = out.failed.first() {
                return Err(StoreError::unavailable(format!(
                    "SQS did not delete {} of {} messages: {}",
                    out.failed.len(),
                    chunk.len(),
                    failed.code
                )));
            }
        }
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
            .map_err(|e| StoreError::refused(format!("message attribute: {e}")))?;
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

    /// The answer to a Lambda batch from `queue`, given how handling each record went
    /// (`results`, one per record, in order), settled by the one batch policy
    /// ([`Settlement::of`]) through the consumer port: the records to keep are reported as batch
    /// item failures; the others Lambda deletes.
    pub async fn answer_batch(
        &self,
        queue: QueueName,
        records: &[&SqsMessage],
        results: Vec<Result<Option<Duration>, StoreError>>,
    ) -> SqsBatchResponse {
        let batch: Vec<(Received, Settlement)> = records
            .iter()
            .zip(results)
            .map(|(record, result)| {
                let message = received(record);
                let settlement = Settlement::of(&result, message.receive_count);
                (message, settlement)
            })
            .collect();
        // Boxed: the SDK's futures nest deep enough, under a Lambda handler's own, to overflow
        // the compiler's type-layout depth limit.
        batch_item_failures(Box::pin(Consumer::settle(self, queue, &batch)).await)
    }
}

/// The answer to a Lambda batch from a queue tidings does not own (the SES intake queue, which
/// dead-letters by its own redrive policy): settled by the same policy, every record not done is
/// reported, so it comes back until the queue's `maxReceiveCount` moves it to the queue's
/// dead-letter queue. Why a record could never be handled is logged with its id.
pub fn answer_redriven_batch(
    records: &[&SqsMessage],
    results: Vec<Result<Option<Duration>, StoreError>>,
) -> SqsBatchResponse {
    let mut back = Vec::new();
    for (record, result) in records.iter().zip(results) {
        let message = received(record);
        match Settlement::of(&result, message.receive_count) {
            Settlement::Done => continue,
            Settlement::DeadLetter(reason) => {
                tracing::error!(message = %message.id, reason, "cannot be handled; left to the queue's redrive policy");
            }
            Settlement::Later(_) | Settlement::Retry { .. } => {
                tracing::warn!(message = %message.id, "will be retried");
            }
        }
        back.push(message.id);
    }
    batch_item_failures(back)
}

/// A Lambda batch answer that keeps the messages of these ids on the queue.
fn batch_item_failures(ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in ids {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// How many times a Lambda SQS record has been received, this time included (SQS's
/// `ApproximateReceiveCount`; 1 when absent).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1)
}

/// A Lambda SQS record as the consumer port sees it.
fn received(record: &SqsMessage) -> Received {
    Received {
        id: record.message_id.clone().unwrap_or_default(),
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count: receive_count(record),
    }
}

/// The consumer port on SQS. Under Lambda, receiving is the event source mapping's and a
/// message not reported back is deleted by Lambda, so settling a message as done deletes
/// nothing (unless [`SqsQueues::deleting_settled`], for a consumer that receives for itself); a
/// retry comes back after the queue's visibility timeout, a delay after its own.
impl Consumer for SqsQueues {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_seconds: u32,
    ) -> Result<Vec<Received>, StoreError> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let url = self.url(queue)?.to_owned();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let received = self
            .client()
            .await
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility_seconds.min(43_200) as i32)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify("ReceiveMessage", &e))?;
        Ok(received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    async fn settle(&self, queue: QueueName, batch: &[(Received, Settlement)]) -> Vec<String> {
        let settled = batch.iter().map(|(message, settlement)| async move {
            let id = message.id.as_str();
            let back = match settlement {
                Settlement::Done => false,
                Settlement::Later(delay) => {
                    let seconds = delay.as_secs().min(43_200) as u32;
                    if let Err(error) = self.change_visibility(queue, &message.receipt, seconds).await {
                        tracing::warn!(message = %id, %error, "cannot delay the retry; SQS will redeliver after the visibility timeout");
                    }
                    true
                }
                Settlement::Retry { .. } => {
                    tracing::warn!(message = %id, "will be retried");
                    true
                }
                Settlement::DeadLetter(reason) => match self.dead_letter(queue, &message.body, reason).await {
                    Ok(()) => {
                        tracing::error!(message = %id, reason, "dead-lettered");
                        false
                    }
                    Err(dlq_error) => {
                        tracing::error!(message = %id, reason, %dlq_error, "cannot dead-letter; will be retried");
                        true
                    }
                },
            };
            (message, back)
        });
        let settled = futures_util::future::join_all(settled).await;
        if self.delete_settled {
            let done: Vec<&str> = settled.iter().filter(|(_, back)| !back).map(|(m, _)| m.receipt.as_str()).collect();
            if let Err(error) = self.delete_batch(queue, &done).await {
                // They come back after the visibility timeout and are handled again.
                tracing::error!(%error, queue = queue.as_str(), "cannot delete settled messages");
            }
        }
        settled.into_iter().filter(|(_, back)| *back).map(|(m, _)| m.id.clone()).collect()
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
