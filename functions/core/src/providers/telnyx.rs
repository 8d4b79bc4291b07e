//! Telnyx messaging webhooks (API v2): one event per request, `{"data": {event_type, id,
//! occurred_at, payload}, "meta": {attempt}}`, signed with Ed25519 over `timestamp|body`
//! (`telnyx-signature-ed25519`, `telnyx-timestamp`) under the account's public key.
//!
//! `message.sent` and `message.finalized` carry the message with a status per recipient
//! (`payload.to[].status`): each recipient becomes its own event. A `delivery_failed` recipient is
//! read by the message's error code (`payload.errors[].code`): Telnyx documents which codes mean
//! the number cannot take messages (a hard bounce), which are temporary (soft), and 40300, a
//! recipient who texted STOP (dropped). `message.received` is a message someone sent: its
//! recipient is the sender, and a text that is one opt-out keyword opts them out (Telnyx blocks
//! the number itself and still forwards the message). `data.id` identifies an event; Telnyx keeps
//! it across retries.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, labels_from, message_type, opt_out, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Telnyx;

/// Per-recipient statuses of an outbound message.
const STATUSES: &[(&str, Status)] = &[
    ("queued", Status::Sent),
    ("sending", Status::Sent),
    ("sent", Status::Sent),
    ("delivery_unconfirmed", Status::Sent),
    ("delivered", Status::Delivered),
    ("delivery_failed", Status::Bounced),
    ("expired", Status::Bounced),
    ("sending_failed", Status::Failed),
];

/// Delivery error codes by Telnyx's documented meaning. Unlisted codes on a failed delivery are
/// undetermined bounces.
const ERROR_CODES: &[(&str, Status, Option<BounceKind>)] = &[
    // Not routable (a landline), and an invalid destination number.
    ("40001", Status::Bounced, Some(BounceKind::Hard)),
    ("40012", Status::Bounced, Some(BounceKind::Hard)),
    // Temporary spam block, rejected for an unknown reason, expired in transit, recipient
    // server unavailable, upstream rate limit.
    ("40002", Status::Bounced, Some(BounceKind::Soft)),
    ("40004", Status::Bounced, Some(BounceKind::Soft)),
    ("40005", Status::Bounced, Some(BounceKind::Soft)),
    ("40006", Status::Bounced, Some(BounceKind::Soft)),
    ("40011", Status::Bounced, Some(BounceKind::Soft)),
    // The sender's side: a permanent spam block of the sending number, a loop, the message
    // body, the source number, Telnyx's own spam filter.
    ("40003", Status::Failed, None),
    ("40007", Status::Failed, None),
    ("40009", Status::Failed, None),
    ("40013", Status::Failed, None),
    ("40015", Status::Failed, None),
    // The recipient opted out (texted STOP): Telnyx refuses to send.
    ("40300", Status::Dropped, None),
];

impl Provider for Telnyx {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add telnyx --secret <public key>` (Mission Control → Keys & Credentials → Public Key)",
            paste_url: "Messaging → your messaging profile → *Send a webhook to this URL* (or `webhook_url` on each message)",
            test_event: "send a message from a number on that profile",
        }
    }

    fn example(&self) -> &'static str {
        "failed-invalid-number.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Telnyx
    }

    fn authentication(&self) -> Authentication {
        Authentication::TelnyxEd25519
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("message.sent / message.finalized, to[].status queued, sending, sent, delivery_unconfirmed", "sms.sent"),
            ("to[].status delivered", "sms.delivered"),
            ("to[].status delivery_failed, error 40001 or 40012", "sms.bounced (hard)"),
            ("to[].status delivery_failed, error 40002, 40004, 40005, 40006 or 40011; expired", "sms.bounced (soft)"),
            (
                "to[].status delivery_failed, other errors",
                "sms.bounced (undetermined), or sms.failed for the sender's errors (40003, 40007, 40009, 40013, 40015)",
            ),
            ("to[].status delivery_failed, error 40300 (recipient opted out)", "sms.dropped"),
            ("to[].status sending_failed", "sms.failed (sms.dropped for error 40300)"),
            ("message.received", "sms.received (recipient: the sender)"),
            ("message.received whose text is an opt-out keyword", "sms.unsubscribed / sms.resubscribed"),
            ("(payload.type WHATSAPP)", "the same on channel whatsapp"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let envelope: Envelope<'_> = parse_json(id, &"body", webhook.body)?;
        let d = envelope.data;
        let name = d.event_type.as_ref();
        let p = d.payload.unwrap_or_default();
        let channel = match p.kind.as_deref() {
            Some(kind) if kind.eq_ignore_ascii_case("whatsapp") => Channel::WHATSAPP,
            _ => Channel::SMS,
        };
        let time = d.occurred_at.as_deref().and_then(Timestamp::parse_rfc3339);
        let raw = raw_body(webhook);
        let error = p.errors.first();
        let code = error.and_then(|e| e.code.clone());
        let base = |event_name: &str| {
            let mut data = EventData::new(Some(channel.clone()), id.as_str(), event_name);
            data.provider_event_id = d.id.clone();
            data.message_id = p.id.clone();
            data.labels = labels_from(p.tags.as_ref());
            for (key, value) in [
                ("messaging_profile_id", &p.messaging_profile_id),
                ("message_type", &p.kind),
                ("attempt", &envelope.meta.as_ref().and_then(|m| m.attempt.clone())),
            ] {
                if let Some(value) = value {
                    data.details.insert(key.into(), Value::String(value.clone()));
                }
            }
            data
        };
        let dedup_base = d.id.clone().unwrap_or_else(|| format!("{}|{name}", p.id.as_deref().unwrap_or_default()));

        if name == "message.received" {
            let sender = p.from.as_ref().and_then(|f| f.phone_number.as_deref());
            let status = opt_out::by_keyword(p.text.as_deref()).unwrap_or(Status::Received);
            let mut data = base(name);
            data.recipient = sender.map(recipient::phone);
            if let Some(ours) = p.to.first().and_then(|t| t.phone_number.as_deref()) {
                data.details.insert("to".into(), Value::String(ours.to_owned()));
            }
            let event = ctx.event(message_type(&channel, Some(status)), time, &dedup_base, data, &raw);
            return Ok(Normalized::events(vec![event]));
        }
        let mut events = Vec::with_capacity(p.to.len().max(1));
        let recipients: Vec<Option<&Recipient>> =
            if p.to.is_empty() { vec![None] } else { p.to.iter().map(Some).collect() };
        for to in recipients {
            let state = to.and_then(|t| t.status.as_deref()).unwrap_or_default();
            let mut status = super::lookup(STATUSES, state);
            let mut data = base(if state.is_empty() { name.to_owned() } else { format!("{name}:{state}") }.as_str());
            data.recipient = to.and_then(|t| t.phone_number.as_deref()).map(recipient::phone);
            if let Some(from) = p.from.as_ref().and_then(|f| f.phone_number.as_deref()) {
                data.details.insert("from".into(), Value::String(from.to_owned()));
            }
            if matches!(status, Some(Status::Bounced | Status::Failed)) {
                if let Some(error) = error {
                    data.reason =
                        super::first_present([error.title.as_deref(), error.detail.as_deref()]).map(str::to_owned);
                }
                if let Some(code) = &code {
                    data.details.insert("error_code".into(), Value::String(code.clone()));
                }
            }
            let meaning = code.as_deref().and_then(|c| ERROR_CODES.iter().find(|(k, _, _)| *k == c));
            if status == Some(Status::Failed) && matches!(meaning, Some((_, Status::Dropped, _))) {
                status = Some(Status::Dropped);
            }
            if status == Some(Status::Bounced) {
                let (mapped, kind) = match (state, meaning) {
                    ("expired", None) => (Status::Bounced, Some(BounceKind::Soft)),
                    (_, Some((_, mapped, kind))) => (*mapped, *kind),
                    (_, None) => (Status::Bounced, Some(BounceKind::Undetermined)),
                };
                status = Some(mapped);
                data.bounce = kind.map(|kind| Bounce {
                    kind,
                    code: code.clone(),
                    subtype: error.and_then(|e| e.title.clone()),
                    diagnostic: error.and_then(|e| e.detail.clone()),
                    reason: None,
                    provider_kind: None,
                });
            }
            let dedup = format!("{dedup_base}|{state}");
            events.push(ctx.event(message_type(&channel, status), time, &dedup, data, &raw));
        }
        Ok(Normalized::events(events))
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Data<'a>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    attempt: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    messaging_profile_id: Option<String>,
    #[serde(default)]
    from: Option<Recipient>,
    #[serde(default)]
    to: Vec<Recipient>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    errors: Vec<ErrorRecord>,
}

#[derive(Deserialize)]
struct Recipient {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorRecord {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}
