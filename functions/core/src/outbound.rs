//! What a subscriber receives: the body in the subscription's format, and the Standard Webhooks
//! headers that let it check the body came from tidings (`webhook-id` is the event id, so a
//! retried or replayed delivery carries the same id and can be deduplicated).

use serde_json::{Map, Value, json};

use crate::auth::standard_webhooks;
use crate::event::{CanonicalEvent, Status};
use crate::subscription::{Format, Subscription};
use crate::timestamp::Timestamp;

/// The request body for `event` in `format`.
pub fn body(event: &CanonicalEvent, format: Format) -> Vec<u8> {
    match format {
        Format::Cloudevents => serde_json::to_vec(event).unwrap_or_default(),
        Format::Dittofeed => serde_json::to_vec(&dittofeed_track(event)).unwrap_or_default(),
    }
}

/// The Standard Webhooks headers for `body`, signed at `now` by every active secret.
pub fn signed_headers(
    subscription: &Subscription,
    event: &CanonicalEvent,
    body: &[u8],
    now: Timestamp,
) -> Result<Vec<(String, String)>, String> {
    let id = event.id.as_str();
    let timestamp = now.unix_seconds();
    let mut signatures = Vec::new();
    for secret in subscription.active_secrets(now) {
        let key = standard_webhooks::secret_key(&secret.secret)?;
        signatures.push(standard_webhooks::sign(&key, id, timestamp, body));
    }
    if signatures.is_empty() {
        return Err(format!("subscription {} has no active signing secret", subscription.id));
    }
    Ok(vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signatures.join(" ")),
        ("content-type".into(), "application/json".into()),
    ])
}

/// The Dittofeed event name for a canonical event (seed 000's internal events); other types
/// keep their canonical name, so they can still be used in Dittofeed segments.
pub fn dittofeed_event_name(event: &CanonicalEvent) -> String {
    let channel = event.data.channel.as_ref().map(|c| c.as_str());
    let name = match (channel, event.event_type.status()) {
        (Some("email"), Some(Status::Sent)) => "DFEmailProcessed",
        (Some("email"), Some(Status::Delivered)) => "DFEmailDelivered",
        (Some("email"), Some(Status::Dropped | Status::Suppressed)) => "DFEmailDropped",
        (Some("email"), Some(Status::Bounced)) => "DFEmailBounced",
        (Some("email"), Some(Status::Complained)) => "DFEmailMarkedSpam",
        (Some("email"), Some(Status::Opened)) => "DFEmailOpened",
        (Some("email"), Some(Status::Clicked)) => "DFEmailClicked",
        (Some("sms" | "whatsapp"), Some(Status::Delivered)) => "DFSmsDelivered",
        (Some("sms" | "whatsapp"), Some(Status::Failed | Status::Bounced | Status::Dropped)) => "DFSmsFailed",
        (_, Some(Status::Failed)) => "DFMessageFailure",
        (_, Some(Status::Unsubscribed | Status::Resubscribed)) => "DFSubscriptionChange",
        (_, Some(Status::RetriesExhausted)) => "DFJourneyEarlyExit",
        _ => return event.event_type.to_string(),
    };
    name.into()
}

/// The message tags Dittofeed sets at send time and reads back as properties.
const DITTOFEED_TAGS: &[&str] = &["workspaceId", "journeyId", "nodeId", "templateId", "messageId", "userId", "channel"];

/// A Dittofeed `track` call: `messageId` is the tidings event id (Dittofeed's idempotency key),
/// the user is the `userId` tag Dittofeed set when sending, else the recipient as anonymous.
pub fn dittofeed_track(event: &CanonicalEvent) -> Value {
    let d = &event.data;
    let mut properties = Map::new();
    for tag in DITTOFEED_TAGS {
        if let Some(value) = d.tags.get(*tag) {
            properties.insert((*tag).into(), Value::String(value.clone()));
        }
    }
    properties.insert("tidingsType".into(), json!(event.event_type.to_string()));
    properties.insert("provider".into(), json!(d.provider));
    properties.insert("providerEventType".into(), json!(d.provider_event_type));
    for (key, value) in
        [("providerMessageId", &d.message_id), ("recipient", &d.recipient), ("url", &d.url), ("reason", &d.reason)]
    {
        if let Some(v) = value {
            properties.insert(key.into(), json!(v));
        }
    }
    if let Some(bounce) = &d.bounce {
        properties.insert("bounceKind".into(), json!(bounce.kind));
    }
    if let Some(status) = event.event_type.status().filter(|s| matches!(s, Status::Unsubscribed | Status::Resubscribed))
    {
        let action = if status == Status::Unsubscribed { "Unsubscribe" } else { "Subscribe" };
        properties.insert("action".into(), json!(action));
    }
    let mut call = json!({
        "type": "track",
        "messageId": event.id.as_str(),
        "event": dittofeed_event_name(event),
        "timestamp": event.time.to_string(),
        "properties": properties,
        "context": {"library": {"name": "tidings"}},
    });
    match d.tags.get("userId") {
        Some(user) => call["userId"] = json!(user),
        None => call["anonymousId"] = json!(d.recipient.clone().unwrap_or_else(|| event.id.to_string())),
    }
    call
}
