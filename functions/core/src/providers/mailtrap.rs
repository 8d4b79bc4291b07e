//! Mailtrap Email Sending webhooks: `{"events": [...]}` (up to 500 events, sent every 30
//! seconds), or JSON Lines (one event per line, `application/jsonl`) when the webhook is set to
//! it; both are read. Signed with `Mailtrap-Signature`, the hex HMAC-SHA256 of the body under the
//! webhook's signing secret. `event_id` identifies an event.
//!
//! `soft bounce` and `suspension` are attempts Mailtrap is still retrying (`deferred`); `bounce`
//! is final, and its `bounce_category` says whether the address is at fault: the categories
//! Mailtrap itself suppresses the address for (`badrecipient`, `overquota`, `timeout`) and a
//! domain that does not resolve (`dnsFail`) are hard bounces, blocks, spam and content or
//! policy rejections soft ones. Audit Log events (account activity, no message) become platform
//! events named `mailtrap.<event>`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    BodyItem, NormalizeContext, Normalized, Provider, ProviderId, Setup, each_record, lookup, message_type,
    tags_from_object,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Mailtrap;

pub const SIGNATURE_HEADER: &str = "Mailtrap-Signature";

const EVENTS: &[(&str, Status)] = &[
    ("delivery", Status::Delivered),
    ("open", Status::Opened),
    ("click", Status::Clicked),
    ("unsubscribe", Status::Unsubscribed),
    ("spam", Status::Complained),
    ("soft bounce", Status::Deferred),
    ("suspension", Status::Deferred),
    ("bounce", Status::Bounced),
    ("reject", Status::Dropped),
];

/// `bounce_category` values that mean the address itself is bad.
const HARD_CATEGORIES: &[&str] = &["badrecipient", "overquota", "timeout", "dnsFail"];

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// The body's events: the `events` array of a JSON body, or each line of JSON Lines.
fn items<'a>(id: ProviderId, webhook: &Webhook<'a>) -> Result<Vec<BodyItem<'a>>, WebhookError> {
    let jsonl = webhook.headers.get("content-type").is_some_and(|t| t.to_ascii_lowercase().contains("jsonl"));
    if !jsonl {
        let batch: Batch<'a> = parse_json(id, &"body (a JSON object with `events`)", webhook.body)?;
        return Ok(batch.events.into_iter().enumerate().map(|(i, raw)| BodyItem { raw, index: Some(i) }).collect());
    }
    let mut out = Vec::new();
    for (i, line) in webhook.body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw: &'a RawValue = parse_json(id, &format_args!("body line {}", i + 1), line)?;
        out.push(BodyItem { raw, index: Some(out.len()) });
    }
    Ok(out)
}

impl Provider for Mailtrap {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mailtrap --secret <signing secret>` (the webhook's details → *Signing secret*)",
            paste_url: "Settings → Webhooks → Create New Webhook: *Webhook URL*, payload format JSON or JSON Lines, the sending stream, domain and events",
            test_event: "*Run Test* on the webhook form",
        }
    }

    fn example(&self) -> &'static str {
        "bounce-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mailtrap
    }

    fn authentication(&self) -> Authentication {
        Authentication::HmacSha256Hex { default_header: SIGNATURE_HEADER }
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("delivery", "email.delivered"),
            ("open", "email.opened"),
            ("click", "email.clicked"),
            ("unsubscribe", "email.unsubscribed"),
            ("spam", "email.complained"),
            ("soft bounce, suspension (Mailtrap retries)", "email.deferred"),
            ("bounce, bounce_category badrecipient, overquota, timeout or dnsFail", "email.bounced (hard)"),
            ("bounce, other bounce_category", "email.bounced (soft)"),
            ("reject", "email.dropped"),
            ("activity_log.* (Audit Log)", "mailtrap.activity_log.* (platform event)"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let items = items(id, webhook)?;
        each_record(id, items, |e: Record<'_>, _, raw| {
            let name = e.event.as_ref();
            let time = e.timestamp.as_deref().and_then(Timestamp::from_unix_text);
            if name.starts_with("activity_log.") {
                let event_type = EventType::platform(&format!("mailtrap.{name}"))
                    .unwrap_or_else(|| message_type(&Channel::EMAIL, None));
                let mut data = EventData::new(None, id.as_str(), name);
                data.reason = e.description.as_deref().map(str::to_owned);
                if let Some(actor) = &e.actor {
                    data.details.insert("actor".into(), actor.clone());
                }
                let digest = ring::digest::digest(&ring::digest::SHA256, raw.as_bytes());
                let dedup = format!("{name}|{}", hex::encode(digest.as_ref()));
                return Ok(ctx.event(event_type, time, &dedup, data, raw));
            }
            let status = lookup(EVENTS, name);
            let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
            data.provider_event_id = e.event_id.clone();
            data.message_id = e.message_id.clone();
            data.recipient = e.email.as_deref().map(recipient::email);
            data.url = e.url.as_deref().map(str::to_owned);
            data.ip = e.ip.as_deref().map(str::to_owned);
            data.user_agent = e.user_agent.as_deref().map(str::to_owned);
            tags_from_object(e.custom_variables.as_ref(), &mut data.tags);
            if let Some(category) = e.category.as_deref().filter(|c| !c.is_empty()) {
                data.labels.push(category.to_owned());
            }
            for (key, value) in [("sending_stream", &e.sending_stream), ("sending_domain_name", &e.sending_domain_name)]
            {
                if let Some(value) = value {
                    data.details.insert(key.into(), Value::String(value.to_string()));
                }
            }
            data.reason = e.reason.as_deref().or(e.response.as_deref()).map(str::to_owned);
            let category = e.bounce_category.as_deref();
            if let Some(category) = category {
                data.details.insert("bounce_category".into(), Value::String(category.to_owned()));
            }
            if let Some(code) = &e.response_code {
                data.details.insert("response_code".into(), Value::String(code.clone()));
            }
            if status == Some(Status::Bounced) {
                let kind = match category {
                    None => BounceKind::Undetermined,
                    Some(c) if HARD_CATEGORIES.iter().any(|h| h.eq_ignore_ascii_case(c)) => BounceKind::Hard,
                    Some(_) => BounceKind::Soft,
                };
                data.bounce = Some(Bounce {
                    kind,
                    code: e.response_code.clone(),
                    subtype: category.map(str::to_owned),
                    diagnostic: e.response.as_deref().map(str::to_owned),
                    reason: None,
                    provider_kind: None,
                });
            }
            let dedup = match &e.event_id {
                Some(event) => format!("{name}|{event}"),
                None => format!(
                    "{name}|{}|{}|{}",
                    data.message_id.as_deref().unwrap_or_default(),
                    data.recipient.as_deref().unwrap_or_default(),
                    e.timestamp.as_deref().unwrap_or_default()
                ),
            };
            Ok(ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw))
        })
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    timestamp: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    event_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    message_id: Option<String>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sending_stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sending_domain_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(default)]
    custom_variables: Option<Value>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    response: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    response_code: Option<String>,
    #[serde(default, borrow)]
    bounce_category: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default)]
    actor: Option<Value>,
}
