//! CM.com Email Gateway webhooks: `{type, createdAt, messageId, data{to, from, id,
//! customerReference, …}}`. Before 2025-12-04 the same payload came in PascalCase
//! (`Type: "Delivered"`, `Data{To, …}`); both are accepted. CM.com signs nothing: put a shared
//! secret in the URL. `customerReference: "testing-integration-mode"` marks simulated events.
//! Soft bounces are retried by CM.com for 24 hours, each retry a new webhook for the same
//! `messageId` with its own `data.id`: each is its own event.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, lookup, message_type, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Cmcom;

const EVENTS: &[(&str, Status)] = &[
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("opened", Status::Opened),
    ("clicked", Status::Clicked),
    ("bounced", Status::Bounced),
    ("suppressed", Status::Suppressed),
    ("unsubscribed", Status::Unsubscribed),
    ("complained", Status::Complained),
    ("failed", Status::Failed),
];

const BOUNCE_TYPES: &[(&str, BounceKind)] =
    &[("hard bounce", BounceKind::Hard), ("soft bounce", BounceKind::Soft), ("bounce", BounceKind::Undetermined)];

/// The `customerReference` CM.com puts on simulated events.
const INTEGRATION_MODE: &str = "testing-integration-mode";

impl Provider for Cmcom {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add cmcom` (prints a secret)",
            paste_url: "Email Gateway webhook URL: `<url>?token=<secret>`",
            test_event: "send a test email",
        }
    }

    fn example(&self) -> &'static str {
        "bounced-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Cmcom
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("sent", "email.sent"),
            ("delivered", "email.delivered"),
            ("opened", "email.opened"),
            ("clicked", "email.clicked"),
            ("bounced (Hard Bounce / Soft Bounce / Bounce)", "email.bounced (hard / soft / undetermined)"),
            ("suppressed", "email.suppressed"),
            ("unsubscribed", "email.unsubscribed"),
            ("complained", "email.complained"),
            ("failed", "email.failed"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let r: Record<'_> = parse_json(id, &"body", webhook.body)?;
        let name = r.kind.as_ref();
        let status = lookup(EVENTS, name.to_ascii_lowercase().as_str());
        let d = r.data.unwrap_or_default();
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        data.provider_event_id = d.id.clone();
        data.message_id = r.message_id.as_deref().map(str::to_owned);
        data.recipient = d.to.as_deref().map(recipient::email);
        if let Some(reference) = &d.customer_reference {
            data.tags.insert("customerReference".into(), reference.clone());
            if reference == INTEGRATION_MODE {
                data.test = Some(true);
            }
        }
        if let Some(from) = &d.from {
            data.details.insert("from".into(), Value::String(from.clone()));
        }
        match status {
            Some(Status::Bounced) => {
                let b = d.bounce.unwrap_or_default();
                let kind = b
                    .kind
                    .as_deref()
                    .and_then(|k| lookup(BOUNCE_TYPES, k.to_ascii_lowercase().as_str()))
                    .unwrap_or(BounceKind::Undetermined);
                data.bounce = Some(Bounce {
                    kind,
                    code: None,
                    subtype: b.sub_type,
                    diagnostic: b.message,
                    reason: None,
                    provider_kind: None,
                });
            }
            Some(Status::Suppressed) => data.reason = d.suppressed.and_then(|s| s.message),
            Some(Status::Unsubscribed) => {
                data.reason = d.unsubscribe.and_then(|u| u.unsubscribe_reason.or(u.unsubscribe_type));
            }
            Some(Status::Failed) => {
                let messages = d.failed.map(|f| f.messages).unwrap_or_default();
                data.reason = Some(messages.join("; ")).filter(|m| !m.is_empty());
            }
            Some(Status::Clicked) => data.url = d.url.or(d.link),
            _ => {}
        }
        let time = r.created_at.as_deref().and_then(Timestamp::parse_rfc3339);
        let dedup = match &data.provider_event_id {
            Some(event_id) => event_id.clone(),
            None => format!(
                "{}|{}|{}",
                r.message_id.as_deref().unwrap_or_default(),
                name.to_ascii_lowercase(),
                r.created_at.as_deref().unwrap_or_default()
            ),
        };
        let raw = raw_body(webhook);
        Ok(Normalized::events(vec![ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, &raw)]))
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "type", alias = "Type", borrow)]
    kind: Cow<'a, str>,
    #[serde(rename = "createdAt", alias = "CreatedAt", default, borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(rename = "messageId", alias = "MessageId", default, borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(rename = "data", alias = "Data", default)]
    data: Option<Data>,
}

#[derive(Deserialize, Default)]
struct Data {
    #[serde(alias = "To", default)]
    to: Option<String>,
    #[serde(alias = "From", default)]
    from: Option<String>,
    #[serde(alias = "Id", default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(rename = "customerReference", alias = "CustomerReference", default)]
    customer_reference: Option<String>,
    #[serde(alias = "Bounce", default)]
    bounce: Option<CmBounce>,
    #[serde(alias = "Suppressed", default)]
    suppressed: Option<Message>,
    #[serde(alias = "Unsubscribe", default)]
    unsubscribe: Option<Unsubscribe>,
    #[serde(alias = "Failed", default)]
    failed: Option<Failed>,
    #[serde(alias = "Url", default)]
    url: Option<String>,
    #[serde(alias = "Link", default)]
    link: Option<String>,
}

#[derive(Deserialize, Default)]
struct CmBounce {
    #[serde(rename = "type", alias = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "subType", alias = "SubType", default)]
    sub_type: Option<String>,
    #[serde(alias = "Message", default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(alias = "Message", default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Unsubscribe {
    #[serde(rename = "unsubscribeType", alias = "UnsubscribeType", default)]
    unsubscribe_type: Option<String>,
    #[serde(rename = "unsubscribeReason", alias = "UnsubscribeReason", default)]
    unsubscribe_reason: Option<String>,
}

#[derive(Deserialize)]
struct Failed {
    #[serde(alias = "Messages", default)]
    messages: Vec<String>,
}
