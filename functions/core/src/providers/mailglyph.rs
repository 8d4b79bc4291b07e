//! MailGlyph forwards events to a URL from a workflow "Webhook" step. The exact body
//! is not documented, so this reader is defensive *(unverified format)*: the event name is taken
//! from `event`, `type` or `name`; the address from `email`, `contact.email`, `data.email`,
//! `recipient` or `to`; the time from `timestamp`, `time`, `createdAt`, `created_at` or
//! `occurredAt`; details from `data`. MailGlyph signs nothing: use a shared secret.
//!
//! MailGlyph gives no event id, so events are identified by name, address, time and (for
//! clicks) link. Contact subscription changes map to email.unsubscribed / email.resubscribed so
//! they reach the suppression list; `segment.<slug>.entry|exit` become `segment.entered|exited`
//! with the slug in `details.segment`; custom events become `email.unknown`.

use serde_json::{Map, Value};

use super::{
    NormalizeContext, Normalized, Provider, ProviderId, Setup, lookup, message_type, raw_body, tag_value,
    tags_from_object,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::parse_time;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Mailglyph;

const EVENTS: &[(&str, Status)] = &[
    ("email.sent", Status::Sent),
    ("email.delivery", Status::Delivered),
    ("email.open", Status::Opened),
    ("email.click", Status::Clicked),
    ("email.bounce", Status::Bounced),
    ("email.complaint", Status::Complained),
    ("email.received", Status::Received),
    ("contact.subscribed", Status::Resubscribed),
    ("contact.unsubscribed", Status::Unsubscribed),
];

impl Provider for Mailglyph {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mailglyph` (prints a secret)",
            paste_url: "a workflow's *Webhook* step: `<url>?token=<secret>`",
            test_event: "run the workflow on a test contact",
        }
    }

    fn example(&self) -> &'static str {
        "email.bounce.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mailglyph
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("email.sent", "email.sent"),
            ("email.delivery", "email.delivered"),
            ("email.open", "email.opened (first-open flag in details)"),
            ("email.click", "email.clicked"),
            ("email.bounce", "email.bounced (transientBounce: soft, else hard)"),
            ("email.complaint", "email.complained"),
            ("email.received", "email.received"),
            ("contact.subscribed / contact.unsubscribed", "email.resubscribed / email.unsubscribed"),
            ("segment.<slug>.entry / .exit", "segment.entered / segment.exited (details.segment = slug)"),
            ("custom events", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let body: Map<String, Value> = parse_json(id, &"body (a JSON object)", webhook.body)?;
        let get = |path: &[&str]| -> Option<&Value> {
            let mut value = body.get(path[0])?;
            for key in &path[1..] {
                value = value.get(key)?;
            }
            Some(value).filter(|v| !v.is_null())
        };
        let text = |path: &[&str]| get(path).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let name = [&["event"][..], &["type"], &["name"]].iter().find_map(|p| text(p)).ok_or_else(|| {
            WebhookError::malformed(id, "no event name: expected a string `event`, `type` or `name` field")
        })?;
        let payload = get(&["data"]).and_then(Value::as_object).cloned().unwrap_or_default();
        let field = |keys: &[&str]| keys.iter().find_map(|k| payload.get(*k).filter(|v| !v.is_null()).cloned());
        let address = [&["email"][..], &["contact", "email"], &["data", "email"], &["recipient"], &["to"]]
            .iter()
            .find_map(|p| text(p));

        let mut status = lookup(EVENTS, &name);
        let mut event_type = None;
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), &name);
        data.recipient = address.as_deref().map(recipient::email);
        data.message_id = field(&["messageId", "message_id", "emailId", "email_id"]).map(|v| tag_value(&v));
        tags_from_object(get(&["tags"]).or(get(&["metadata"])), &mut data.tags);
        if let Some(segment) = name.strip_prefix("segment.") {
            let (slug, change) = segment.rsplit_once('.').unwrap_or((segment, ""));
            let kind = match change {
                "entry" => "segment.entered",
                "exit" => "segment.exited",
                _ => "",
            };
            if let Some(platform) = EventType::platform(kind) {
                data.channel = None;
                data.details.insert("segment".into(), Value::String(slug.to_owned()));
                event_type = Some(platform);
            }
        }
        match status {
            Some(Status::Bounced) => {
                let transient = field(&["transientBounce"]).and_then(|v| v.as_bool()).unwrap_or(false);
                let kind = if transient { BounceKind::Soft } else { BounceKind::Hard };
                let diagnostic = field(&["reason", "diagnostic", "message"]).map(|v| tag_value(&v));
                let subtype = field(&["bounceType", "bounce_type"]).map(|v| tag_value(&v));
                data.bounce = Some(Bounce { kind, code: None, subtype, diagnostic, reason: None, provider_kind: None });
            }
            Some(Status::Clicked) => data.url = field(&["link", "url"]).map(|v| tag_value(&v)),
            Some(_) => data.reason = field(&["reason"]).map(|v| tag_value(&v)),
            None if event_type.is_none() => status = Some(Status::Unknown),
            None => {}
        }
        if let Some(first) = field(&["isFirstOpen", "firstOpen", "isFirstClick"]) {
            data.details.insert("first".into(), first);
        }
        if status == Some(Status::Unknown) && !payload.is_empty() {
            data.details.insert("data".into(), Value::Object(payload.clone()));
        }
        let time_value = [&["timestamp"][..], &["time"], &["createdAt"], &["created_at"], &["occurredAt"]]
            .iter()
            .find_map(|p| get(p).cloned())
            .or_else(|| field(&["bouncedAt", "timestamp"]));
        let time = time_value.as_ref().and_then(parse_time);
        let dedup = format!(
            "{name}|{}|{}|{}|{}",
            data.message_id.as_deref().unwrap_or_default(),
            data.recipient.as_deref().unwrap_or_default(),
            time_value.as_ref().map(tag_value).unwrap_or_default(),
            data.url.as_deref().unwrap_or_default()
        );
        let event_type = event_type.unwrap_or_else(|| message_type(&Channel::EMAIL, status));
        let raw = raw_body(webhook);
        Ok(Normalized::events(vec![ctx.event(event_type, time, &dedup, data, &raw)]))
    }
}
