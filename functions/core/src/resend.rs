//! Retrying SES sends that failed retryably: a `SendFailure` report stored as
//! `email.retry_scheduled` puts a task on the resend queue with exponential backoff; the
//! resender resends the request the report carried, once per attempt, and a further failure is
//! reported again (next attempt), or ends as `email.retries_exhausted` or `email.failed`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{NonceCheck, ReplayClaim};
use crate::event::{CanonicalEvent, EventId, Status};
use crate::ports::{Emailer, EventStore, NonceStore, Outgoing, Queue, QueueName, StoreError};
use crate::provider_id::ProviderId;
use crate::providers::NormalizeContext;
use crate::timestamp::Timestamp;
use crate::webhook::{Headers, Transport, Webhook};

/// Attempts in all (the first send included) before giving up.
pub const MAX_ATTEMPTS: u32 = crate::retryable::MAX_SEND_ATTEMPTS;

/// What the resend queue carries: the stored `email.retry_scheduled` event whose raw record is
/// the report to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendTask {
    pub workspace: String,
    pub event_id: crate::event::EventId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub source: String,
}

/// The wait before attempt `next` (2 for the first retry): 30 s doubling, at most 15 minutes
/// (SQS's longest delay), ±20%.
pub fn backoff(next: u32, jitter: f64) -> Duration {
    let base = 30u64.saturating_mul(1 << next.saturating_sub(2).min(10)).min(900);
    Duration::from_secs(base).mul_f64(1.0 + jitter.clamp(-1.0, 1.0) * 0.2).min(Duration::from_secs(900))
}

/// Whether the processor should schedule a resend for a stored event, and its task.
pub fn task_for(event: &CanonicalEvent, source: &str) -> Option<(ResendTask, u32)> {
    let d = &event.data;
    let resendable = d.details.get("resendable").and_then(Value::as_bool) == Some(true);
    if event.event_type.status() != Some(Status::RetryScheduled)
        || d.provider != ProviderId::Ses.as_str()
        || !resendable
    {
        return None;
    }
    let attempt = d.details.get("attempt").and_then(Value::as_u64).unwrap_or(1) as u32;
    let task = ResendTask {
        workspace: event.workspaceid.clone(),
        event_id: event.id.clone(),
        message_id: d.message_id.clone(),
        source: source.to_owned(),
    };
    Some((task, attempt))
}

/// Adds the `tidings-message` tag naming the timeline to a `SendEmail` request that lacks it, so
/// SES's events for the resent message join the timeline of the failed send.
fn tag_with_timeline(mail: &mut Value, timeline: Option<&str>) {
    use crate::providers::ses::{MESSAGE_TAG, valid_tag_value};
    let Some(timeline) = timeline.filter(|t| valid_tag_value(t)) else { return };
    let Some(request) = mail.as_object_mut() else { return };
    let tags = request.entry("EmailTags").or_insert_with(|| json!([]));
    let Some(tags) = tags.as_array_mut() else { return };
    if !tags.iter().any(|t| t.get("Name").and_then(Value::as_str) == Some(MESSAGE_TAG)) {
        tags.push(json!({"Name": MESSAGE_TAG, "Value": timeline}));
    }
}

/// Resends reported sends.
pub struct Resender<S, Q, E> {
    store: S,
    queue: Q,
    emailer: E,
}

impl<S: EventStore + NonceStore, Q: Queue, E: Emailer> Resender<S, Q, E> {
    pub fn new(store: S, queue: Q, emailer: E) -> Self {
        Resender { store, queue, emailer }
    }

    /// Handles one resend-queue message.
    pub async fn resend(&self, body: &str, now: Timestamp) -> Result<(), StoreError> {
        let task: ResendTask = serde_json::from_str(body)
            .map_err(|e| StoreError::malformed(format!("resend-queue message is not a resend task: {e}")))?;
        let Some(raw) = self.store.raw(&task.workspace, task.message_id.as_deref(), &task.event_id).await? else {
            tracing::warn!(event = %task.event_id, "redrive for an expired report dropped");
            return Ok(());
        };
        if raw.is_empty() {
            // The report was not kept (the workspace drops provider records, or its recipient
            // was erased): there is nothing to resend.
            tracing::warn!(event = %task.event_id, "redrive for a report not kept dropped");
            return Ok(());
        }
        let report: Value =
            serde_json::from_str(&raw).map_err(|e| StoreError::malformed(format!("stored report unreadable: {e}")))?;
        let attempt = report.get("attempt").and_then(Value::as_u64).unwrap_or(1) as u32 + 1;
        // One resend per attempt, however often SQS delivers this task (one per recipient's
        // event, redeliveries): the first to claim the attempt sends.
        let key = report
            .get("reportId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| task.event_id.to_string());
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref());
        let claim = ReplayClaim {
            provider: ProviderId::Ses,
            nonce: format!("resend|{}|{key}|{attempt}", task.workspace),
            fingerprint,
            remember_until: Timestamp::from_unix_seconds(now.unix_seconds() + 7 * 86_400).unwrap_or(now),
        };
        if self.store.claim_nonce(&claim).await? != NonceCheck::Fresh {
            return Ok(());
        }
        let mut mail = report.get("mail").cloned().unwrap_or(Value::Null);
        tag_with_timeline(&mut mail, task.message_id.as_deref());
        match self.emailer.send_email(&mail).await {
            Ok(message_id) => {
                tracing::info!(report = %key, attempt, message_id, "resent");
                Ok(())
            }
            Err(error) => {
                let mut next = report.clone();
                next["attempt"] = json!(attempt);
                next["error"] = serde_json::to_value(&error)
                    .map_err(|e| StoreError::malformed(format!("SESv2's error cannot be written as JSON: {e}")))?;
                next["timestamp"] = json!(now.to_string());
                next["reportId"] = json!(key);
                // Reported like the first failure: retryable → retry_scheduled (and another
                // resend), otherwise failed; after the last attempt, retries_exhausted.
                self.enqueue_report(&task, &next, now).await
            }
        }
    }

    /// Normalizes a report as the SES source would and puts its events on the events queue
    /// (`email.retries_exhausted` when the report's attempt was the last).
    async fn enqueue_report(&self, task: &ResendTask, report: &Value, now: Timestamp) -> Result<(), StoreError> {
        let body = serde_json::to_vec(report).map_err(|e| StoreError::malformed(e.to_string()))?;
        let headers = Headers::new();
        let webhook = Webhook { body: &body, headers: &headers, query: None, transport: Transport::Queue };
        let ctx = NormalizeContext { workspace: &task.workspace, received_at: now };
        let normalized =
            ProviderId::Ses.provider().normalize(&webhook, &ctx).map_err(|e| StoreError::malformed(e.to_string()))?;
        let messages: Vec<Outgoing> = normalized
            .events
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                let event = &mut e.event;
                if event.event_type.status() == Some(Status::RetriesExhausted) {
                    // Its id is kept apart from that of the retry_scheduled event a report of
                    // the same attempt would make.
                    let key = format!("exhausted|{}", event.id);
                    event.id = EventId::derive(&task.workspace, "ses", &key, event.data.recipient.as_deref());
                }
                crate::messages::event_message(i, &e, &task.source)
            })
            .collect::<Result<_, _>>()?;
        self.queue.send(QueueName::Events, &messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30_seconds_to_at_most_15_minutes() {
        assert_eq!(backoff(2, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(5, 0.0), Duration::from_secs(240));
        assert_eq!(backoff(9, 0.0), Duration::from_secs(900));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(36));
        assert!(backoff(30, 1.0) <= Duration::from_secs(900));
    }
}
