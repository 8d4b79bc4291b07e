//! What a subscriber receives: the body in the subscription's format, and the Standard Webhooks
//! headers that let it check the body came from tidings (`webhook-id` is the event id, so a
//! retried or replayed delivery carries the same id and can be deduplicated).
//!
//! ## The Dittofeed format
//!
//! A `track` call for Dittofeed's public API (`POST /api/public/apps/track`), made the way
//! Dittofeed's own provider webhook handlers make theirs, so Dittofeed attributes each event to
//! the message it sent:
//!
//! - `userId` is the `userId` tag Dittofeed put on the message at send time. An event without
//!   one is **not sent** (Dittofeed's handlers drop such events too): it is logged as a
//!   `skipped` attempt. A subscription with `anonymous_id: "recipient"` sends it instead with
//!   the recipient as `anonymousId` (Dittofeed then keys a profile by the address).
//! - `properties` carries every message metadata field Dittofeed's handlers forward
//!   (`workspaceId`, `broadcastId`, `journeyId`, `runId`, `messageId`, `userId`, `templateId`,
//!   `nodeId`, and Twilio's `subscriptionGroupId`), `email` on email events, and tidings' own
//!   fields (`tidingsType`, `provider`, …).
//! - Event names are Dittofeed's (`DFEmailDelivered`, `DFSmsFailed`, …). A send that failed
//!   for good (`*.failed`, and `*.retries_exhausted` after tidings' resends gave up) is
//!   `DFMessageFailure`, the event Dittofeed records for its own failed sends, with the
//!   `variant` it expects where the provider is one Dittofeed knows.
//! - An unsubscribe or resubscribe is `DFSubscriptionChange` with `subscriptionId` (the
//!   subscription group Dittofeed matches on) from the `subscriptionGroupId` tag; without that
//!   tag Dittofeed could not apply it, so it is skipped.
//! - Other types go out under their canonical name (`email.deferred`), usable in segments.
//! - `subscription.test` is skipped: every track call belongs to a user in Dittofeed, so a test
//!   would create one.

use serde_json::{Map, Value, json};

use crate::auth::standard_webhooks;
use crate::event::{CanonicalEvent, Status};
use crate::subscription::{AnonymousId, Format, Subscription};
use crate::timestamp::Timestamp;

/// Why an event is not sent to a subscription in its format. The delivery is logged as a
/// `skipped` attempt with this reason and counts as handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped(pub &'static str);

/// The request body for `event` in the subscription's format, or why it is not sent.
pub fn body(event: &CanonicalEvent, subscription: &Subscription) -> Result<Vec<u8>, Skipped> {
    let value = match subscription.format {
        Format::Cloudevents => return Ok(serde_json::to_vec(event).unwrap_or_default()),
        Format::Dittofeed => dittofeed_track(event, subscription.anonymous_id)?,
    };
    Ok(serde_json::to_vec(&value).unwrap_or_default())
}

/// The Standard Webhooks headers for `body`, signed at `now` by every active secret.
pub fn signed_headers(
    subscription: &Subscription,
    event: &CanonicalEvent,
    body: &[u8],
    now: Timestamp,
) -> Result<Vec<(String, String)>, standard_webhooks::SecretError> {
    let id = event.id.as_str();
    let timestamp = now.unix_seconds();
    let mut signatures = Vec::new();
    for secret in subscription.active_secrets(now) {
        let key = standard_webhooks::secret_key(&secret.secret)?;
        signatures.push(standard_webhooks::sign(&key, id, timestamp, body));
    }
    if signatures.is_empty() {
        return Err(standard_webhooks::SecretError::NoneActive(subscription.id.clone()));
    }
    Ok(vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signatures.join(" ")),
        ("content-type".into(), subscription.format.media_type().into()),
    ])
}

/// The type of tidings' subscription test event.
pub const TEST_EVENT_TYPE: &str = "subscription.test";

/// Dittofeed's event name for a canonical event; other types keep their canonical name, so
/// they can still be used in Dittofeed segments.
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
        (_, Some(Status::Failed | Status::RetriesExhausted)) => "DFMessageFailure",
        (_, Some(Status::Unsubscribed | Status::Resubscribed)) => "DFSubscriptionChange",
        _ => return event.event_type.to_string(),
    };
    name.into()
}

/// The message metadata Dittofeed's webhook handlers read back from a provider event and
/// forward as properties (its own list, plus the subscription group its Twilio callbacks carry).
pub const DITTOFEED_METADATA: &[&str] = &[
    "workspaceId",
    "broadcastId",
    "journeyId",
    "runId",
    "messageId",
    "userId",
    "templateId",
    "nodeId",
    "subscriptionGroupId",
];

/// Dittofeed's name for a provider, in a `DFMessageFailure` variant (its `EmailProviderType`
/// and `SmsProviderType` values).
fn dittofeed_provider(provider: &str) -> Option<(&'static str, &'static str)> {
    Some(match provider {
        "ses" => ("Email", "AmazonSes"),
        "sendgrid" => ("Email", "SendGrid"),
        "resend" => ("Email", "Resend"),
        "postmark" => ("Email", "PostMark"),
        "twilio" => ("Sms", "Twilio"),
        _ => return None,
    })
}

/// A Dittofeed `track` call for `event` (see the module documentation), or why none is sent.
/// `messageId` is the tidings event id: Dittofeed's idempotency key, the same on every retry.
pub fn dittofeed_track(event: &CanonicalEvent, anonymous: AnonymousId) -> Result<Value, Skipped> {
    let d = &event.data;
    if event.event_type.to_string() == TEST_EVENT_TYPE {
        return Err(Skipped("Dittofeed records every track call against a user: a test event would create one"));
    }
    let name = dittofeed_event_name(event);
    let mut properties = Map::new();
    for tag in DITTOFEED_METADATA {
        if let Some(value) = d.tags.get(*tag) {
            properties.insert((*tag).into(), Value::String(value.clone()));
        }
    }
    if d.channel.as_ref().is_some_and(|c| c.as_str() == "email")
        && let Some(recipient) = &d.recipient
    {
        properties.insert("email".into(), json!(recipient));
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
    match name.as_str() {
        "DFSubscriptionChange" => {
            let Some(group) = d.tags.get("subscriptionGroupId").or_else(|| d.tags.get("subscriptionId")) else {
                return Err(Skipped(
                    "a subscription change without a subscriptionGroupId tag names no subscription group Dittofeed could apply it to",
                ));
            };
            let action =
                if event.event_type.status() == Some(Status::Unsubscribed) { "Unsubscribe" } else { "Subscribe" };
            properties.insert("subscriptionId".into(), json!(group));
            properties.insert("action".into(), json!(action));
        }
        "DFMessageFailure" => {
            if let Some((channel, provider)) = dittofeed_provider(&d.provider) {
                let mut failure = json!({"type": provider});
                if let Some(reason) = &d.reason {
                    failure["message"] = json!(reason);
                }
                properties.insert("variant".into(), json!({"type": channel, "provider": failure}));
            }
        }
        _ => {}
    }
    let mut call = json!({
        "type": "track",
        "messageId": event.id.as_str(),
        "event": name,
        "timestamp": event.time.to_string(),
        "properties": properties,
        "context": {"library": {"name": "tidings"}},
    });
    match (d.tags.get("userId"), anonymous, &d.recipient) {
        (Some(user), _, _) => call["userId"] = json!(user),
        (None, AnonymousId::Recipient, Some(recipient)) => call["anonymousId"] = json!(recipient),
        (None, AnonymousId::Recipient, None) => {
            return Err(Skipped("no userId tag and no recipient to send as anonymousId"));
        }
        (None, AnonymousId::None, _) => {
            return Err(Skipped(
                "no userId tag (Dittofeed sets one at send time; its own webhook handlers skip events without it)",
            ));
        }
    }
    Ok(call)
}
