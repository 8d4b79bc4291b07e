//! Brevo (formerly Sendinblue) transactional webhooks: one JSON object per event (or an array,
//! when batching is on). Brevo signs nothing: protect the URL with a shared secret. Brevo
//! retries only timeouts and 429s and **discards on any other 4xx or 5xx**, so rejections here
//! lose data for good: the pipeline logs and counts every one loudly.
//! `ts_event` is when the event happened, in seconds; `ts_epoch`'s unit varies (below); `tag` is
//! sometimes a JSON-encoded list inside a string.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{
    NormalizeContext, Normalized, NormalizedEvent, Provider, ProviderId, Raw, Setup, each_record, labels_from, lookup,
    message_type, one_or_many, tag_value,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{opt_string_or_number, parse_time};
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError};

pub struct Brevo;

const EVENTS: &[(&str, Status)] = &[
    ("request", Status::Sent),
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("deferred", Status::Deferred),
    ("hard_bounce", Status::Bounced),
    ("invalid_email", Status::Bounced),
    ("soft_bounce", Status::Bounced),
    ("blocked", Status::Dropped),
    ("opened", Status::Opened),
    ("unique_opened", Status::Opened),
    ("proxy_open", Status::Opened),
    ("unique_proxy_open", Status::Opened),
    ("click", Status::Clicked),
    ("spam", Status::Complained),
    ("complaint", Status::Complained),
    ("unsubscribe", Status::Unsubscribed),
    ("unsubscribed", Status::Unsubscribed),
    ("error", Status::Failed),
];

impl Provider for Brevo {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add brevo` (prints a secret)",
            paste_url: "Transactional → Settings → Webhooks → add URL `<url>?token=<secret>` (or Bearer auth with the secret, if your plan offers it)",
            test_event: "the webhook's *Test* button",
        }
    }

    fn lost_on_server_error(&self) -> Option<&'static str> {
        Some("Brevo discards webhooks answered 5xx, these events are lost unless Brevo is asked to resend")
    }

    fn example(&self) -> &'static str {
        "hard_bounce.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Brevo
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("request", "email.sent"),
            ("delivered", "email.delivered"),
            ("deferred", "email.deferred"),
            ("hard_bounce, invalid_email", "email.bounced (hard)"),
            ("soft_bounce", "email.bounced (soft)"),
            ("blocked", "email.dropped"),
            ("opened, unique_opened", "email.opened"),
            ("proxy_open, unique_proxy_open", "email.opened (privacy_open)"),
            ("click", "email.clicked"),
            ("spam, complaint", "email.complained"),
            ("unsubscribe(d)", "email.unsubscribed"),
            ("error", "email.failed"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        each_record(id, one_or_many(id, webhook.body)?, |record: Record<'_>, _, raw| Ok(to_event(&record, ctx, raw)))
    }
}

fn to_event<'a>(r: &Record<'_>, ctx: &NormalizeContext<'_>, raw: &Raw<'a>) -> NormalizedEvent<'a> {
    let id = ProviderId::Brevo;
    let name = r.event.as_ref();
    let status = lookup(EVENTS, name);
    let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
    data.message_id = r.message_id.as_deref().map(|m| m.trim_matches(|c| c == '<' || c == '>').to_owned());
    data.recipient = r.email.as_deref().map(recipient::email);
    data.labels = labels_from(r.tags.as_ref());
    if data.labels.is_empty() {
        // `tag` is a JSON list encoded in a string: `"[\"welcome\"]"`.
        data.labels = match r.tag.as_ref() {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .map(|v| labels_from(Some(&v)))
                .unwrap_or_else(|| labels_from(Some(&Value::String(s.clone())))),
            other => labels_from(other),
        };
    }
    if let Some(webhook_id) = &r.id {
        // Brevo's `id` names the webhook configuration, not the event.
        data.details.insert("webhook_id".into(), Value::String(webhook_id.clone()));
    }
    if let Some(custom) = &r.custom {
        data.tags.insert("X-Mailin-custom".into(), tag_value(custom));
    }
    data.ip = r.sending_ip.as_deref().map(str::to_owned);
    data.user_agent = r.user_agent.as_deref().map(str::to_owned);
    let reason = r.reason.as_deref().map(str::to_owned);
    match status {
        Some(Status::Bounced) => {
            let kind = if name == "soft_bounce" { BounceKind::Soft } else { BounceKind::Hard };
            data.bounce = Some(Bounce {
                kind,
                code: None,
                subtype: Some(name.to_owned()),
                diagnostic: reason,
                reason: None,
                provider_kind: None,
            });
        }
        Some(Status::Opened) => data.privacy_open = Some(name.contains("proxy")),
        Some(Status::Clicked) => data.url = r.link.as_deref().map(str::to_owned),
        _ => data.reason = reason,
    }
    // When it happened. `ts_event` is that, in Unix seconds. `ts_epoch` is documented in
    // milliseconds, yet Brevo's own documentation samples carry seconds in it, so its unit is
    // judged by magnitude (`parse_time`), and it is used (for its finer precision) only where it
    // agrees with `ts_event`: a body that disagrees with itself gets its event time.
    let event_time = r.ts_event.as_ref().and_then(parse_time);
    let epoch = r.ts_epoch.as_ref().and_then(parse_time);
    let time = match (epoch, event_time) {
        (Some(epoch), Some(at)) if epoch.seconds_until(at).abs() <= 1 => Some(epoch),
        (_, Some(at)) => Some(at),
        (epoch, None) => epoch
            .or_else(|| r.ts.as_ref().and_then(parse_time))
            .or_else(|| r.date.as_deref().and_then(Timestamp::parse_rfc3339)),
    };
    let when = r
        .ts_epoch
        .as_ref()
        .or(r.ts_event.as_ref())
        .map(tag_value)
        .or_else(|| r.date.as_deref().map(str::to_owned))
        .unwrap_or_default();
    let dedup = format!(
        "{name}|{}|{}|{when}|{}",
        data.message_id.as_deref().unwrap_or_default(),
        data.recipient.as_deref().unwrap_or_default(),
        data.url.as_deref().unwrap_or_default()
    );
    ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw)
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(rename = "message-id", alias = "message_id", default, borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    ts_epoch: Option<Value>,
    #[serde(default)]
    ts_event: Option<Value>,
    #[serde(default)]
    ts: Option<Value>,
    #[serde(default, borrow)]
    date: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    link: Option<Cow<'a, str>>,
    #[serde(default)]
    tag: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(rename = "X-Mailin-custom", default)]
    custom: Option<Value>,
    #[serde(default, borrow)]
    sending_ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
}
