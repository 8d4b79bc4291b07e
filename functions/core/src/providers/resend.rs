//! Resend webhooks: `{"type": "email.bounced", "created_at": …, "data": {…}}`, delivered and
//! signed by Svix (Standard Webhooks). The `svix-id` header identifies a delivery and survives
//! retries, so it is the dedup key; one event lists every recipient in `data.to`, and becomes
//! one canonical event per recipient.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, lookup, message_type, raw_body, tag_value};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Resend;

const EVENTS: &[(&str, Status)] = &[
    ("email.sent", Status::Sent),
    ("email.delivered", Status::Delivered),
    ("email.delivery_delayed", Status::Deferred),
    ("email.bounced", Status::Bounced),
    ("email.complained", Status::Complained),
    ("email.opened", Status::Opened),
    ("email.clicked", Status::Clicked),
    ("email.failed", Status::Failed),
    ("email.suppressed", Status::Dropped),
    ("email.received", Status::Received),
];

const BOUNCE_TYPES: &[(&str, BounceKind)] =
    &[("Permanent", BounceKind::Hard), ("Transient", BounceKind::Soft), ("Undetermined", BounceKind::Undetermined)];

impl Provider for Resend {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add resend --secret whsec_…` (the webhook's signing secret)",
            paste_url: "Webhooks → Add endpoint; select events; then copy its signing secret into the source",
            test_event: "send an email from Resend's dashboard",
        }
    }

    fn example(&self) -> &'static str {
        "email.bounced.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Resend
    }

    fn authentication(&self) -> Authentication {
        Authentication::StandardWebhooks { header_prefix: "svix" }
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("email.sent", "email.sent"),
            ("email.delivered", "email.delivered"),
            ("email.delivery_delayed", "email.deferred"),
            (
                "email.bounced Permanent / Transient",
                "email.bounced (hard / soft); suppression-list bounces: email.dropped",
            ),
            ("email.complained", "email.complained"),
            ("email.opened", "email.opened"),
            ("email.clicked", "email.clicked"),
            ("email.failed", "email.failed"),
            ("email.suppressed", "email.dropped"),
            ("email.received", "email.received"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let envelope: Envelope<'_> = parse_json(id, &"body", webhook.body)?;
        let name = envelope.kind.as_ref();
        let d = &envelope.data;
        let mut status = lookup(EVENTS, name);
        let mut base = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        base.message_id = d.email_id.as_deref().map(str::to_owned);
        base.provider_event_id = webhook.headers.get("svix-id").map(str::to_owned);
        base.tags = tags(d.tags.as_ref());
        let mut time = envelope.created_at.as_deref().and_then(Timestamp::parse_rfc3339);
        match status {
            Some(Status::Bounced) => {
                let b = d.bounce.as_ref();
                let message = b.and_then(|b| b.message.as_deref()).unwrap_or_default();
                let subtype = b.and_then(|b| b.sub_type.as_deref()).unwrap_or_default();
                // Older payloads report a suppressed address as a bounce; Resend never tried.
                if subtype == "Suppressed" || message.to_ascii_lowercase().contains("suppression list") {
                    status = Some(Status::Dropped);
                    base.reason = Some(message.to_owned()).filter(|m| !m.is_empty());
                } else {
                    let kind = b.and_then(|b| b.kind.as_deref()).and_then(|k| lookup(BOUNCE_TYPES, k));
                    // Resend documents email.bounced as a permanent rejection; older payloads carry
                    // no `bounce.type` at all.
                    base.bounce = Some(Bounce {
                        kind: kind.unwrap_or(BounceKind::Hard),
                        code: None,
                        subtype: b.and_then(|b| b.sub_type.as_deref()).map(str::to_owned),
                        diagnostic: Some(message.to_owned()).filter(|m| !m.is_empty()),
                        reason: None,
                        provider_kind: None,
                    });
                }
            }
            Some(Status::Dropped) => {
                base.reason =
                    d.suppressed.as_ref().and_then(|s| s.message.as_deref().or(s.kind.as_deref())).map(str::to_owned);
            }
            Some(Status::Failed) => base.reason = d.failed.as_ref().and_then(|f| f.reason.clone()),
            Some(Status::Clicked) => {
                if let Some(click) = &d.click {
                    base.url = click.link.clone();
                    base.ip = click.ip_address.clone();
                    base.user_agent = click.user_agent.clone();
                    time = click.timestamp.as_deref().and_then(Timestamp::parse_rfc3339).or(time);
                }
            }
            _ => {}
        }
        let recipients: Vec<String> = match &d.to {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let dedup = match webhook.headers.get("svix-id") {
            Some(svix_id) => svix_id.to_owned(),
            None => format!(
                "{name}|{}|{}",
                d.email_id.as_deref().unwrap_or_default(),
                envelope.created_at.as_deref().unwrap_or_default()
            ),
        };
        let raw = raw_body(webhook);
        let event_type = message_type(&Channel::EMAIL, status);
        let events = if recipients.is_empty() {
            vec![ctx.event(event_type, time, &dedup, base, &raw)]
        } else {
            recipients
                .iter()
                .map(|r| {
                    let mut data = base.clone();
                    data.recipient = Some(recipient::email(r));
                    ctx.event(event_type.clone(), time, &dedup, data, &raw)
                })
                .collect()
        };
        Ok(Normalized::events(events))
    }
}

/// Resend tags arrive as a `{name: value}` map or as a `[{name, value}]` list.
fn tags(value: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    match value {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                out.insert(k.clone(), tag_value(v));
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                if let (Some(name), Some(value)) = (item.get("name").and_then(Value::as_str), item.get("value")) {
                    out.insert(name.to_owned(), tag_value(value));
                }
            }
        }
        _ => {}
    }
    out
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    created_at: Option<Cow<'a, str>>,
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default, borrow)]
    email_id: Option<Cow<'a, str>>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    bounce: Option<ResendBounce>,
    #[serde(default)]
    click: Option<Click>,
    #[serde(default)]
    failed: Option<Failed>,
    #[serde(default)]
    suppressed: Option<ResendBounce>,
}

#[derive(Deserialize)]
struct ResendBounce {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "subType", default)]
    sub_type: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Click {
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Failed {
    #[serde(default)]
    reason: Option<String>,
}
