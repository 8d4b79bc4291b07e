//! Active Reach webhooks: `{id, type, timestamp, workspace_id, data}`, signed with
//! HMAC-SHA256 of the raw body in `X-Aegis-Signature` (header name configurable). Delivery
//! events name their channel in `data.channel`; contact, segment, campaign and billing events
//! are not about a message and pass through under their own names with `data` kept in
//! `details`. Active Reach disables a webhook that answers 410, so tidings never does.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, lookup, message_type, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::parse_time;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Activereach;

const EVENTS: &[(&str, Status)] = &[
    ("delivery.sent", Status::Sent),
    ("delivery.delivered", Status::Delivered),
    ("delivery.failed", Status::Failed),
    ("delivery.bounced", Status::Bounced),
    ("delivery.opened", Status::Opened),
    ("delivery.clicked", Status::Clicked),
    ("delivery.replied", Status::Replied),
    ("delivery.read", Status::Read),
];

/// Event families that are about the account, not a message: kept under their own names.
const PLATFORM_PREFIXES: &[&str] = &["contact.", "segment.", "campaign.", "billing."];

const BOUNCE_TYPES: &[(&str, BounceKind)] = &[("hard", BounceKind::Hard), ("soft", BounceKind::Soft)];

/// Where each status keeps its own time, when the envelope's `timestamp` is missing.
const TIME_FIELDS: &[&str] = &["delivered_at", "opened_at", "clicked_at", "read_at"];

impl Provider for Activereach {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add activereach --secret <webhook secret>` (or let it generate one and paste that)",
            paste_url: "Webhooks → endpoint URL; signature header `X-Aegis-Signature` (set `signature_header` through the API if you renamed it)",
            test_event: "the endpoint's test delivery",
        }
    }

    fn example(&self) -> &'static str {
        "delivery.bounced.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Activereach
    }

    fn authentication(&self) -> Authentication {
        Authentication::HmacSha256Hex { default_header: "X-Aegis-Signature" }
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("delivery.sent", "<channel>.sent"),
            ("delivery.delivered", "<channel>.delivered"),
            ("delivery.failed", "<channel>.failed"),
            ("delivery.bounced (bounce_type hard/soft)", "<channel>.bounced"),
            ("delivery.opened", "<channel>.opened"),
            ("delivery.clicked", "<channel>.clicked"),
            ("delivery.replied", "<channel>.replied"),
            ("delivery.read", "<channel>.read"),
            ("contact.*, segment.*, campaign.*, billing.*", "the same name (platform event)"),
            ("anything else", "<channel>.unknown (channel from data.channel, else email)"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let r: Record<'_> = parse_json(id, &"body", webhook.body)?;
        let name = r.kind.as_ref();
        let d = r.data.unwrap_or_default();
        let text = |key: &str| d.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let channel = text("channel").and_then(|c| Channel::parse(&c)).unwrap_or(Channel::EMAIL);
        let platform =
            PLATFORM_PREFIXES.iter().any(|p| name.starts_with(p)).then(|| EventType::platform(name)).flatten();
        let status = lookup(EVENTS, name);
        let mut data = EventData::new(if platform.is_some() { None } else { Some(channel.clone()) }, id.as_str(), name);
        data.provider_event_id = Some(r.id.clone());
        data.message_id = text("message_id");
        data.recipient = ["recipient", "email", "phone", "to"].iter().find_map(|k| text(k)).map(|r| recipient::any(&r));
        if let Some(workspace) = &r.workspace_id {
            data.details.insert("activereach_workspace_id".into(), Value::String(workspace.clone()));
        }
        if platform.is_some() {
            data.details.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else {
            for key in ["contact_id", "campaign_id", "reply_text", "error_code"] {
                if let Some(v) = d.get(key).filter(|v| !v.is_null()) {
                    data.details.insert(key.into(), v.clone());
                }
            }
        }
        match status {
            Some(Status::Bounced) => {
                let kind = text("bounce_type")
                    .and_then(|k| lookup(BOUNCE_TYPES, k.to_ascii_lowercase().as_str()))
                    .unwrap_or(BounceKind::Undetermined);
                data.bounce = Some(Bounce {
                    kind,
                    code: None,
                    subtype: None,
                    diagnostic: text("bounce_reason"),
                    reason: None,
                    provider_kind: None,
                });
            }
            Some(Status::Failed) => data.reason = text("error_reason"),
            Some(Status::Clicked) => data.url = text("link_url"),
            _ => {}
        }
        let time = r
            .timestamp
            .as_ref()
            .and_then(parse_time)
            .or_else(|| TIME_FIELDS.iter().find_map(|k| d.get(*k).and_then(parse_time)));
        let event_type = platform.unwrap_or_else(|| message_type(&channel, status));
        let raw = raw_body(webhook);
        Ok(Normalized::events(vec![ctx.event(event_type, time, &r.id, data, &raw)]))
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    id: String,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default, deserialize_with = "crate::serde_util::opt_string_or_number")]
    workspace_id: Option<String>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
}
