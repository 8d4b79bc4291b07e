//! Mailgun webhooks (the JSON kind): `{"signature": {...}, "event-data": {...}}`. The signature
//! covers only its own timestamp and token (see [`crate::auth::mailgun`]).
//!
//! Dedup uses `event-data.id` with the event's timestamp: Mailgun documents the id as unique only
//! within a day, and the signature token may or may not be renewed when Mailgun retries, so the
//! event's own identity is what survives retries.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, labels_from, lookup, message_type, tag_value,
    tags_from_object,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{opt_string_or_number, parse_time};
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Mailgun;

const EVENTS: &[(&str, Status)] = &[
    ("accepted", Status::Sent),
    ("delivered", Status::Delivered),
    ("failed", Status::Bounced),
    ("rejected", Status::Dropped),
    ("opened", Status::Opened),
    ("clicked", Status::Clicked),
    ("unsubscribed", Status::Unsubscribed),
    ("complained", Status::Complained),
];

impl Provider for Mailgun {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mailgun --secret <HTTP webhook signing key>` (Settings → Webhooks / API security)",
            paste_url: "Sending → Webhooks → add the URL for each event type",
            test_event: "*Test webhook* next to each",
        }
    }

    fn example(&self) -> &'static str {
        "failed-permanent.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mailgun
    }

    fn authentication(&self) -> Authentication {
        Authentication::MailgunHmac
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("accepted", "email.sent"),
            ("delivered", "email.delivered"),
            ("failed (severity temporary)", "email.deferred"),
            ("failed (severity permanent)", "email.bounced (hard); reason suppress-*: email.dropped"),
            ("rejected", "email.dropped"),
            ("opened", "email.opened"),
            ("clicked", "email.clicked"),
            ("unsubscribed", "email.unsubscribed"),
            ("complained", "email.complained"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let body = Body::parse(id, webhook.body)?;
        let e = body.event_data;
        let name = e.event.as_ref();
        let mut status = lookup(EVENTS, name);
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        data.provider_event_id = e.id.as_deref().map(str::to_owned);
        data.message_id = e
            .message
            .as_ref()
            .and_then(|m| m.headers.as_ref())
            .and_then(|h| h.message_id.as_deref())
            .map(|m| m.trim_matches(|c| c == '<' || c == '>').to_owned());
        data.recipient = e.recipient.as_deref().map(recipient::email);
        tags_from_object(e.user_variables.as_ref(), &mut data.tags);
        data.labels = labels_from(e.tags.as_ref());
        data.ip = e.ip.as_deref().map(str::to_owned);
        data.user_agent = e.client_info.as_ref().and_then(|c| c.user_agent.clone());
        let delivery = e.delivery_status.as_ref();
        let diagnostic =
            delivery.and_then(|d| d.description.clone().filter(|s| !s.is_empty()).or_else(|| d.message.clone()));
        match status {
            Some(Status::Bounced) => {
                let temporary = e.severity.as_deref() == Some("temporary");
                let reason = e.reason.as_deref().unwrap_or_default();
                if temporary {
                    status = Some(Status::Deferred);
                    data.reason = diagnostic.clone();
                } else if reason.starts_with("suppress-") {
                    status = Some(Status::Dropped);
                    data.reason = Some(reason.to_owned());
                } else {
                    data.bounce = Some(Bounce {
                        kind: BounceKind::Hard,
                        code: delivery.and_then(|d| d.code.clone()),
                        subtype: e.reason.as_deref().map(str::to_owned),
                        diagnostic: diagnostic.clone(),
                        reason: None,
                        provider_kind: None,
                    });
                }
                if let Some(attempt) = delivery.and_then(|d| d.attempt_no.clone()) {
                    data.details.insert("attempt".into(), attempt);
                }
            }
            Some(Status::Dropped) => {
                data.reason = e.reject.as_ref().and_then(|r| r.reason.clone()).filter(|r| !r.is_empty()).or(diagnostic)
            }
            Some(Status::Clicked) => data.url = e.url.as_deref().map(str::to_owned),
            _ => {}
        }
        let time = e.timestamp.as_ref().and_then(parse_time);
        let dedup = format!(
            "{}|{}",
            e.id.as_deref().unwrap_or_default(),
            e.timestamp.as_ref().map(tag_value).unwrap_or_default()
        );
        data.sending_domain = e.envelope.as_ref().and_then(|v| v.sender.clone());
        let raw = Raw::Borrowed(body.raw_event.get());
        let event_type = message_type(&Channel::EMAIL, status);
        // `rejected` events often name no recipient: the message's envelope targets, or its `To`
        // header, say whom it was for (one event for each).
        let recipients = match &data.recipient {
            Some(_) => Vec::new(),
            None => e
                .envelope
                .as_ref()
                .and_then(|v| v.targets.as_deref())
                .or(to_header(&e))
                .map_or_else(Vec::new, recipient::emails),
        };
        if recipients.is_empty() {
            return Ok(Normalized::events(vec![ctx.event(event_type, time, &dedup, data, &raw)]));
        }
        let events = recipients
            .into_iter()
            .map(|address| {
                let mut data = data.clone();
                data.recipient = Some(address);
                ctx.event(event_type.clone(), time, &dedup, data, &raw)
            })
            .collect();
        Ok(Normalized::events(events))
    }
}

/// The body: `event-data` kept as its raw text (stored beside the event) and read typed.
struct Body<'a> {
    raw_event: &'a RawValue,
    event_data: EventRecord<'a>,
}

impl<'a> Body<'a> {
    fn parse(provider: ProviderId, bytes: &'a [u8]) -> Result<Body<'a>, WebhookError> {
        #[derive(Deserialize)]
        struct Outer<'a> {
            #[serde(rename = "event-data", borrow)]
            event_data: &'a RawValue,
        }
        let outer: Outer<'a> = parse_json(provider, &"body", bytes)?;
        let event_data = parse_json(provider, &"event-data", outer.event_data.get().as_bytes())?;
        Ok(Body { raw_event: outer.event_data, event_data })
    }
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default, borrow)]
    recipient: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<MessageRecord>,
    #[serde(rename = "delivery-status", default)]
    delivery_status: Option<DeliveryStatus>,
    #[serde(rename = "user-variables", default)]
    user_variables: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(rename = "client-info", default)]
    client_info: Option<ClientInfo>,
    #[serde(default)]
    reject: Option<Reject>,
    #[serde(default)]
    envelope: Option<Envelope>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    targets: Option<String>,
    #[serde(default)]
    sender: Option<String>,
}

/// The message's `To` header.
fn to_header<'e>(e: &'e EventRecord<'_>) -> Option<&'e str> {
    e.message.as_ref()?.headers.as_ref()?.to.as_deref()
}

#[derive(Deserialize)]
struct Reject {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageRecord {
    #[serde(default)]
    headers: Option<MessageHeaders>,
}

#[derive(Deserialize)]
struct MessageHeaders {
    #[serde(rename = "message-id", default)]
    message_id: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Deserialize)]
struct DeliveryStatus {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "attempt-no", default)]
    attempt_no: Option<Value>,
}

#[derive(Deserialize)]
struct ClientInfo {
    #[serde(rename = "user-agent", default)]
    user_agent: Option<String>,
}
