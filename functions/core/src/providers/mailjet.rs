//! Mailjet's Event API: a JSON array of events when the callback groups events (Version 2, the
//! dashboard's *Group events*), a bare object otherwise; both are read. Mailjet signs nothing
//! and recommends basic auth in the callback URL, so the source holds a shared secret.
//!
//! Mailjet's `sent` means the receiving server accepted the message: it is `delivered` here (there
//! is no earlier "accepted" event). A `bounce` is hard when Mailjet says `hard_bounce`; a
//! greylisting, which Mailjet retries, is `deferred`; other bounces are soft. `blocked` messages
//! were never attempted (`dropped`). Events carry no id: one is the message, event, address, time
//! and clicked link. `MessageID` can exceed 2^53, so it is read as text, never as a float.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{
    NormalizeContext, Normalized, Provider, ProviderId, Setup, each_record, lookup, message_type, one_or_many,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError};

pub struct Mailjet;

const EVENTS: &[(&str, Status)] = &[
    ("sent", Status::Delivered),
    ("open", Status::Opened),
    ("click", Status::Clicked),
    ("bounce", Status::Bounced),
    ("blocked", Status::Dropped),
    ("spam", Status::Complained),
    ("unsub", Status::Unsubscribed),
];

impl Provider for Mailjet {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mailjet` (prints a secret)",
            paste_url: "Account settings → REST API → Event tracking (triggers): for each event, URL `https://tidings:<secret>@<host>/webhooks/mailjet/<id>` (basic auth); tick *Group events*",
            test_event: "the *Test* button beside each URL",
        }
    }

    fn example(&self) -> &'static str {
        "bounce-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mailjet
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("sent (accepted by the receiving server)", "email.delivered"),
            ("open", "email.opened"),
            ("click", "email.clicked"),
            ("bounce with hard_bounce", "email.bounced (hard)"),
            ("bounce, error greylisted", "email.deferred"),
            ("bounce, other", "email.bounced (soft)"),
            ("blocked", "email.dropped"),
            ("spam", "email.complained"),
            ("unsub", "email.unsubscribed"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let items = one_or_many(id, webhook.body)?;
        each_record(id, items, |e: Record<'_>, _, raw| {
            let name = e.event.as_ref();
            let mut status = lookup(EVENTS, name);
            let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
            data.message_id = e.message_id.clone().or_else(|| e.message_guid.clone());
            data.recipient = e.email.as_deref().map(recipient::email);
            data.url = e.url.as_deref().map(str::to_owned);
            data.ip = e.ip.as_deref().filter(|ip| !ip.is_empty()).map(str::to_owned);
            data.user_agent = e.agent.as_deref().filter(|a| !a.is_empty()).map(str::to_owned);
            if let Some(campaign) = e.customcampaign.as_deref().filter(|c| !c.is_empty()) {
                data.labels.push(campaign.to_owned());
            }
            if let Some(custom) = e.custom_id.as_deref().filter(|c| !c.is_empty()) {
                data.tags.insert("CustomID".into(), custom.to_owned());
            }
            // The event payload given at send time: JSON object members become tags; any other
            // text is one tag.
            if let Some(payload) = e.payload.as_deref().filter(|p| !p.is_empty()) {
                match serde_json::from_str::<Value>(payload) {
                    Ok(object @ Value::Object(_)) => super::tags_from_object(Some(&object), &mut data.tags),
                    _ => {
                        data.tags.insert("Payload".into(), payload.to_owned());
                    }
                }
            }
            for (key, value) in [("mj_campaign_id", &e.mj_campaign_id), ("message_guid", &e.message_guid)] {
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty() && *v != "0") {
                    data.details.insert(key.into(), Value::String(value.to_owned()));
                }
            }
            let error = e.error.as_deref().filter(|v| !v.is_empty());
            if let Some(related) = e.error_related_to.as_deref().filter(|v| !v.is_empty()) {
                data.details.insert("error_related_to".into(), Value::String(related.to_owned()));
            }
            match status {
                Some(Status::Delivered) => data.reason = e.smtp_reply.as_deref().map(str::to_owned),
                Some(Status::Bounced) => {
                    data.reason = error.map(str::to_owned);
                    if e.hard_bounce != Some(true) && error == Some("greylisted") {
                        status = Some(Status::Deferred);
                    } else {
                        let kind = if e.hard_bounce == Some(true) { BounceKind::Hard } else { BounceKind::Soft };
                        data.bounce = Some(Bounce {
                            kind,
                            code: None,
                            subtype: error.map(str::to_owned),
                            diagnostic: e.comment.as_deref().map(str::to_owned),
                            reason: None,
                            provider_kind: None,
                        });
                    }
                    if let Some(blocked) = e.blocked {
                        data.details.insert("blocked".into(), Value::Bool(blocked));
                    }
                }
                Some(Status::Dropped) => data.reason = error.map(str::to_owned),
                Some(Status::Complained) => data.reason = e.source.as_deref().map(str::to_owned),
                _ => {}
            }
            let time = e.time.as_deref().and_then(Timestamp::from_unix_text);
            let dedup = format!(
                "{name}|{}|{}|{}|{}",
                data.message_id.as_deref().unwrap_or_default(),
                data.recipient.as_deref().unwrap_or_default(),
                e.time.as_deref().unwrap_or_default(),
                data.url.as_deref().unwrap_or_default()
            );
            Ok(ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw))
        })
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    time: Option<String>,
    #[serde(rename = "MessageID", default, deserialize_with = "opt_string_or_number")]
    message_id: Option<String>,
    #[serde(rename = "Message_GUID", default, deserialize_with = "opt_string_or_number")]
    message_guid: Option<String>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    mj_campaign_id: Option<String>,
    #[serde(default, borrow)]
    customcampaign: Option<Cow<'a, str>>,
    #[serde(rename = "CustomID", default, deserialize_with = "opt_string_or_number")]
    custom_id: Option<String>,
    #[serde(rename = "Payload", default, deserialize_with = "opt_string_or_number")]
    payload: Option<String>,
    #[serde(default, borrow)]
    smtp_reply: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    agent: Option<Cow<'a, str>>,
    #[serde(default)]
    blocked: Option<bool>,
    #[serde(default)]
    hard_bounce: Option<bool>,
    #[serde(default, borrow)]
    error_related_to: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    comment: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    source: Option<Cow<'a, str>>,
}
