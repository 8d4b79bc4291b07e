//! Postal (self-hosted MTA) webhooks: one event per request, `{"event", "timestamp", "payload",
//! "uuid"}`, signed by the server's RSA key (see [`crate::auth::postal`]). `uuid` is the webhook
//! request's id, the same on every retry: it identifies the event.
//!
//! `MessageSent` means the receiving server accepted the message (`delivered`); `MessageDelayed`
//! is a temporary failure Postal retries (`deferred`); `MessageDeliveryFailed` is permanent: a
//! hard bounce, except when Postal gave up after its maximum number of attempts (the address is
//! not known to be bad: soft). `MessageHeld` was not sent (a suppression-list entry, a send
//! limit, development mode): `dropped`. `MessageBounced` is a bounce message received after the
//! fact, which Postal does not classify: an undetermined bounce. Server events
//! (`DomainDNSError`, `SendLimitApproaching`, `SendLimitExceeded`) become platform events named
//! `postal.<event in snake case>`.

use serde_json::Value;

use super::value_text as text;
use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, message_type, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::{StrictValue, parse_time};
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Postal;

const EVENTS: &[(&str, Status)] = &[
    ("MessageSent", Status::Delivered),
    ("MessageDelayed", Status::Deferred),
    ("MessageDeliveryFailed", Status::Bounced),
    ("MessageHeld", Status::Dropped),
    ("MessageBounced", Status::Bounced),
    ("MessageLinkClicked", Status::Clicked),
    ("MessageLoaded", Status::Opened),
];

const SERVER_EVENTS: &[(&str, &str)] = &[
    ("DomainDNSError", "postal.domain_dns_error"),
    ("SendLimitApproaching", "postal.send_limit_approaching"),
    ("SendLimitExceeded", "postal.send_limit_exceeded"),
];

impl Provider for Postal {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add postal --secret <public key>` (the `p=` value of `postal default-dkim-record`, or the key at `https://<postal host>/.well-known/jwks.json`)",
            paste_url: "your mail server → Webhooks → Add webhook: URL, all events",
            test_event: "send a message through the server",
        }
    }

    fn example(&self) -> &'static str {
        "message-delivery-failed.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Postal
    }

    fn authentication(&self) -> Authentication {
        Authentication::PostalRsa
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("MessageSent", "email.delivered"),
            ("MessageDelayed", "email.deferred"),
            ("MessageDeliveryFailed", "email.bounced (hard; soft after Postal's maximum attempts)"),
            ("MessageHeld", "email.dropped"),
            ("MessageBounced", "email.bounced (undetermined)"),
            ("MessageLinkClicked", "email.clicked"),
            ("MessageLoaded", "email.opened"),
            ("DomainDNSError, SendLimitApproaching, SendLimitExceeded", "postal.domain_dns_error, … (platform events)"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let StrictValue(body) = parse_json(id, &"body", webhook.body)?;
        let name = body["event"]
            .as_str()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| WebhookError::malformed(id, "body field `event` is missing"))?;
        let payload = &body["payload"];
        if !payload.is_object() {
            return Err(WebhookError::malformed(
                id,
                format!("body field `payload` of a {name} event is not an object"),
            ));
        }
        let uuid = text(&body["uuid"]);
        let time = parse_time(&payload["timestamp"]).or_else(|| parse_time(&body["timestamp"]));
        let raw = raw_body(webhook);
        let dedup = |fallback: String| format!("{name}|{}", uuid.clone().unwrap_or(fallback));
        if let Some((_, platform)) = SERVER_EVENTS.iter().find(|(e, _)| *e == name) {
            let event_type = EventType::platform(platform).unwrap_or_else(|| message_type(&Channel::EMAIL, None));
            let mut data = EventData::new(None, id.as_str(), name);
            data.details.insert("payload".into(), payload.clone());
            let digest = ring::digest::digest(&ring::digest::SHA256, webhook.body);
            let event = ctx.event(event_type, time, &dedup(hex::encode(digest.as_ref())), data, &raw);
            return Ok(Normalized::events(vec![event]));
        }
        let message =
            if payload["original_message"].is_object() { &payload["original_message"] } else { &payload["message"] };
        let status = super::lookup(EVENTS, name);
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        data.provider_event_id = uuid.clone();
        data.message_id = text(&message["message_id"]);
        data.recipient = message["to"].as_str().map(recipient::email);
        if let Some(tag) = text(&message["tag"]) {
            data.labels.push(tag);
        }
        for (key, field) in [("postal_id", "id"), ("token", "token"), ("direction", "direction")] {
            if let Some(value) = text(&message[field]) {
                data.details.insert(key.into(), Value::String(value));
            }
        }
        data.url = text(&payload["url"]);
        data.ip = text(&payload["ip_address"]);
        data.user_agent = text(&payload["user_agent"]);
        let details = text(&payload["details"]);
        let output = text(&payload["output"]);
        data.reason = details.clone();
        match name {
            "MessageDeliveryFailed" => {
                let gave_up = details.as_deref().is_some_and(|d| d.contains("Maximum number of delivery attempts"));
                let kind = if gave_up { BounceKind::Soft } else { BounceKind::Hard };
                data.bounce = Some(Bounce {
                    kind,
                    code: None,
                    subtype: text(&payload["status"]),
                    diagnostic: output.or(details),
                    reason: None,
                    provider_kind: None,
                });
            }
            "MessageBounced" => {
                data.bounce = Some(Bounce {
                    kind: BounceKind::Undetermined,
                    code: None,
                    subtype: None,
                    diagnostic: text(&payload["bounce"]["subject"]),
                    reason: None,
                    provider_kind: None,
                });
                if let Some(bounce_id) = text(&payload["bounce"]["message_id"]) {
                    data.details.insert("bounce_message_id".into(), Value::String(bounce_id));
                }
            }
            "MessageDelayed" => data.reason = output.or(details),
            _ => {}
        }
        let fallback = format!(
            "{}|{}|{}",
            data.message_id.as_deref().unwrap_or_default(),
            data.recipient.as_deref().unwrap_or_default(),
            payload["timestamp"]
        );
        let event = ctx.event(message_type(&Channel::EMAIL, status), time, &dedup(fallback), data, &raw);
        Ok(Normalized::events(vec![event]))
    }
}
