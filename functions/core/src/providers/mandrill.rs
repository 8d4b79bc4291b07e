//! Mailchimp Transactional (Mandrill) webhooks: a form with one field, `mandrill_events`, a JSON
//! array of up to 1,000 events posted about once a minute, signed with `X-Mandrill-Signature`
//! (base64 HMAC-SHA1 under the webhook's key of the URL exactly as configured followed by the
//! form fields sorted by name, as Twilio signs).
//!
//! Message events name the message (`_id`, shared by all its events) and the event time (`ts`,
//! Unix seconds): an event is its message, name, time and clicked link. Deny-list sync events
//! (`type: blacklist`) say an address was put on (`email.suppressed`) or taken off
//! (`email.resubscribed`) the account's reject list; allow-list events are kept as unknown.
//!
//! When a webhook is added, Mandrill checks the URL with a HEAD and then, if that is not answered
//! 200, a POST of an empty batch signed with the fixed key `test-webhook`: that POST is accepted
//! under that key (it makes no event), so the webhook can be saved.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, Notice, Provider, ProviderId, Raw, Setup, labels_from, lookup, message_type,
    tags_from_object,
};
use crate::auth::{self, Authentication, SourceAuth, Verified, VerifyContext};
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Mandrill;

/// The key Mandrill signs its URL check with.
pub const TEST_KEY: &str = "test-webhook";

const EVENTS: &[(&str, Status)] = &[
    ("send", Status::Sent),
    ("deferral", Status::Deferred),
    ("hard_bounce", Status::Bounced),
    ("soft_bounce", Status::Bounced),
    ("delivered", Status::Delivered),
    ("open", Status::Opened),
    ("click", Status::Clicked),
    ("spam", Status::Complained),
    ("unsub", Status::Unsubscribed),
    ("reject", Status::Dropped),
];

/// The `mandrill_events` field's text; any other field, or the field twice, is refused.
fn events_field(id: ProviderId, body: &[u8]) -> Result<String, WebhookError> {
    if std::str::from_utf8(body).is_err() {
        return Err(WebhookError::malformed(id, "body is not UTF-8 form data"));
    }
    let mut events = None;
    for (name, value) in form_urlencoded::parse(body) {
        if name != "mandrill_events" {
            return Err(WebhookError::malformed(
                id,
                format!("form field `{name}` is not Mandrill's (`mandrill_events`)"),
            ));
        }
        if events.replace(value.into_owned()).is_some() {
            return Err(WebhookError::malformed(id, "form field `mandrill_events` is given twice"));
        }
    }
    events.ok_or_else(|| WebhookError::malformed(id, "form field `mandrill_events` is missing"))
}

impl Provider for Mandrill {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mandrill --secret <webhook key>` (Settings → Webhooks → the webhook's *Key*); `--public-url <URL>` when a proxy or custom domain stands in front",
            paste_url: "Settings → Webhooks → Add a Webhook: *Post To URL* as printed (Mandrill signs the URL), tick the events",
            test_event: "*Send Test* beside the webhook",
        }
    }

    fn example(&self) -> &'static str {
        "bounce-hard.form"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mandrill
    }

    fn authentication(&self) -> Authentication {
        Authentication::MandrillHmacSha1
    }

    fn verify(
        &self,
        webhook: &Webhook<'_>,
        source: &SourceAuth,
        ctx: &VerifyContext<'_>,
    ) -> Result<Verified, WebhookError> {
        let is_empty_batch = || events_field(self.id(), webhook.body).is_ok_and(|events| events.trim() == "[]");
        auth::verify_or_url_check(self.id(), self.authentication(), webhook, source, ctx, is_empty_batch, TEST_KEY)
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("send", "email.sent"),
            ("deferral", "email.deferred"),
            ("hard_bounce", "email.bounced (hard)"),
            ("soft_bounce", "email.bounced (soft)"),
            ("delivered", "email.delivered"),
            ("open", "email.opened"),
            ("click", "email.clicked"),
            ("spam", "email.complained"),
            ("unsub", "email.unsubscribed"),
            ("reject", "email.dropped"),
            ("blacklist add / remove (deny-list sync)", "email.suppressed / email.resubscribed"),
            ("an empty batch (the URL check)", "no event"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        // The form value is decoded text of its own: each event keeps its record as owned text.
        let text = events_field(id, webhook.body)?;
        let records: Vec<&RawValue> = parse_json(id, &"form field `mandrill_events` (a JSON array)", text.as_bytes())?;
        if records.is_empty() {
            return Ok(Normalized::notice(Notice::TestPing));
        }
        let mut events = Vec::with_capacity(records.len());
        for (index, raw) in records.iter().enumerate() {
            let e: Record<'_> = parse_json(id, &format_args!("mandrill_events[{index}]"), raw.get().as_bytes())?;
            events.push(event(ctx, e, &Raw::from(raw.get().to_owned())));
        }
        Ok(Normalized::events(events))
    }
}

fn event<'a>(ctx: &NormalizeContext<'_>, e: Record<'_>, raw: &Raw<'a>) -> super::NormalizedEvent<'a> {
    let id = ProviderId::Mandrill;
    let time = e.ts.as_deref().and_then(Timestamp::from_unix_text);
    if e.event.is_none()
        && let Some(kind) = e.kind.as_deref()
    {
        // A sync event: an address put on or taken off the account's deny or allow list.
        let action = e.action.as_deref().unwrap_or_default();
        let status = match (kind, action) {
            ("blacklist", "add") => Some(Status::Suppressed),
            ("blacklist", "remove") => Some(Status::Resubscribed),
            _ => None,
        };
        let entry = e.reject.as_ref().or(e.entry.as_ref());
        let address = entry.and_then(|r| r["email"].as_str());
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), &format!("{kind}:{action}"));
        data.recipient = address.map(recipient::email);
        data.reason = entry.and_then(|r| r["reason"].as_str().or(r["detail"].as_str())).map(str::to_owned);
        let dedup = format!(
            "{kind}|{action}|{}|{}",
            data.recipient.as_deref().unwrap_or_default(),
            e.ts.as_deref().unwrap_or_default()
        );
        return ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw);
    }
    let name = e.event.as_deref().unwrap_or("unknown");
    let status = lookup(EVENTS, name);
    let msg = e.msg.unwrap_or_default();
    let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
    data.message_id = e.id.clone().or_else(|| msg.id.clone());
    data.recipient = msg.email.as_deref().map(recipient::email);
    data.labels = labels_from(msg.tags.as_ref());
    tags_from_object(msg.metadata.as_ref(), &mut data.tags);
    data.url = e.url.as_deref().map(str::to_owned);
    data.ip = e.ip.as_deref().map(str::to_owned);
    data.user_agent = e.user_agent.as_deref().map(str::to_owned);
    if let Some(subaccount) = &msg.subaccount {
        data.details.insert("subaccount".into(), Value::String(subaccount.clone()));
    }
    let last_smtp = msg.smtp_events.last().and_then(|s| s.diag.clone());
    match name {
        "hard_bounce" | "soft_bounce" => {
            let kind = if name == "hard_bounce" { BounceKind::Hard } else { BounceKind::Soft };
            let diagnostic = msg.diag.clone().or(last_smtp);
            data.reason = msg.bounce_description.clone().or_else(|| diagnostic.clone());
            data.bounce = Some(Bounce {
                kind,
                code: msg.bgtools_code.clone(),
                subtype: msg.bounce_description.clone(),
                diagnostic,
                reason: None,
                provider_kind: None,
            });
        }
        "deferral" => data.reason = last_smtp,
        "reject" => data.reason = msg.state.clone(),
        _ => {}
    }
    let dedup = format!(
        "{name}|{}|{}|{}",
        data.message_id.as_deref().unwrap_or_default(),
        e.ts.as_deref().unwrap_or_default(),
        data.url.as_deref().unwrap_or_default()
    );
    ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw)
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    ts: Option<String>,
    #[serde(rename = "_id", default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    msg: Option<Message>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default)]
    reject: Option<Value>,
    #[serde(default)]
    entry: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(rename = "_id", default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    subaccount: Option<String>,
    #[serde(default)]
    bounce_description: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    bgtools_code: Option<String>,
    #[serde(default)]
    diag: Option<String>,
    #[serde(default)]
    smtp_events: Vec<SmtpEvent>,
}

#[derive(Deserialize)]
struct SmtpEvent {
    #[serde(default)]
    diag: Option<String>,
}
