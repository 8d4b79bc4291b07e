//! Unisender Go webhooks: `{"auth", "events_by_user": [{"user_id", "project_id", "events":
//! [{"event_name", "event_data"}]}]}` with up to 100 events, or, with *Use single event*, one
//! event whose data stands at the top level. Signed by the `auth` field (see
//! [`crate::auth::unisender`]). When a webhook is switched on, Unisender checks the URL with a
//! GET, answered 200.
//!
//! `transactional_email_status` events carry a `status`: `soft_bounced` is an attempt Unisender
//! retries, so it is a soft bounce, `hard_bounced` a hard one (its `delivery_info` says why),
//! `spam` a complaint. `transactional_spam_block` says a receiving domain started or stopped
//! blocking the sender: the platform event `unisender.spam_block`. Unisender sends no event id:
//! an event is its job, address, status, time and link. Times (`2025-11-28 06:00:05`) are UTC.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, NormalizedEvent, Provider, ProviderId, Raw, Setup, lookup, message_type,
    tags_from_object,
};
use crate::auth::{Authentication, SourceAuth};
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Unisender;

const STATUSES: &[(&str, Status)] = &[
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("opened", Status::Opened),
    ("clicked", Status::Clicked),
    ("unsubscribed", Status::Unsubscribed),
    ("subscribed", Status::Resubscribed),
    ("soft_bounced", Status::Bounced),
    ("hard_bounced", Status::Bounced),
    ("spam", Status::Complained),
];

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    events_by_user: Option<Vec<User<'a>>>,
    #[serde(default, borrow)]
    event_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    project_id: Option<String>,
    #[serde(default, borrow)]
    events: Vec<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    event_name: Cow<'a, str>,
    #[serde(borrow)]
    event_data: &'a RawValue,
}

#[derive(Deserialize)]
struct EmailStatus<'a> {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    job_id: Option<String>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    delivery_info: Option<DeliveryInfo>,
    #[serde(default, borrow)]
    comment: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    project_id: Option<String>,
}

#[derive(Deserialize)]
struct DeliveryInfo {
    #[serde(default)]
    delivery_status: Option<String>,
    #[serde(default)]
    destination_response: Option<String>,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

impl Provider for Unisender {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add unisender --secret <API key>` (the account's API key, or the project's when the webhook names a project)",
            paste_url: "Settings → Webhooks: *Notification URL*, event format `json_post`, the email status and spam block events",
            test_event: "switch the webhook on (Unisender checks the URL), then send an email",
        }
    }

    fn example(&self) -> &'static str {
        "hard-bounced.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Unisender
    }

    fn authentication(&self) -> Authentication {
        Authentication::UnisenderMd5
    }

    fn answers_get(&self) -> bool {
        true
    }

    fn handshake(&self, _query: Option<&str>, _auth: &SourceAuth) -> Result<String, WebhookError> {
        // Unisender's check only wants a 200 from the URL it will post to.
        Ok(String::new())
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("sent / delivered / opened / clicked", "email.sent / email.delivered / email.opened / email.clicked"),
            ("hard_bounced", "email.bounced (hard)"),
            ("soft_bounced", "email.bounced (soft)"),
            ("spam", "email.complained"),
            ("unsubscribed / subscribed", "email.unsubscribed / email.resubscribed"),
            ("transactional_spam_block", "unisender.spam_block (platform event)"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let body: Body<'a> = parse_json(id, &"body", webhook.body)?;
        let mut events = Vec::new();
        match body.events_by_user {
            Some(users) => {
                for (u, user) in users.iter().enumerate() {
                    for (e, event) in user.events.iter().enumerate() {
                        let at = format!("events_by_user[{u}].events[{e}].event_data");
                        let raw = Raw::Borrowed(event.event_data.get());
                        events.push(one(
                            ctx,
                            &event.event_name,
                            event.event_data.get().as_bytes(),
                            &at,
                            user.project_id.as_deref(),
                            raw,
                        )?);
                    }
                }
            }
            None => {
                let name = body
                    .event_name
                    .ok_or_else(|| WebhookError::malformed(id, "body has neither `events_by_user` nor `event_name`"))?;
                let raw = super::raw_body(webhook);
                events.push(one(ctx, &name, webhook.body, "body", None, raw)?);
            }
        }
        Ok(Normalized::events(events))
    }
}

fn one<'a>(
    ctx: &NormalizeContext<'_>,
    name: &str,
    data_json: &[u8],
    at: &str,
    project: Option<&str>,
    raw: Raw<'a>,
) -> Result<NormalizedEvent<'a>, WebhookError> {
    let id = ProviderId::Unisender;
    if name == "transactional_spam_block" {
        let details: Value = parse_json(id, &at, data_json)?;
        let event_type =
            EventType::platform("unisender.spam_block").unwrap_or_else(|| message_type(&Channel::EMAIL, None));
        let time = details["block_time"].as_str().and_then(super::utc_time);
        let mut data = EventData::new(None, id.as_str(), name);
        let dedup = format!("{name}|{}|{}|{}", details["domain"], details["domain_status"], details["block_time"]);
        data.details.insert("spam_block".into(), details);
        return Ok(ctx.event(event_type, time, &dedup, data, &raw));
    }
    let e: EmailStatus<'_> = parse_json(id, &at, data_json)?;
    let state = e.status.as_deref().unwrap_or_default();
    let status = if name == "transactional_email_status" { lookup(STATUSES, state) } else { None };
    let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), &format!("{name}:{state}"));
    data.message_id = e.job_id.clone();
    data.recipient = e.email.as_deref().map(recipient::email);
    data.url = e.url.as_deref().map(str::to_owned);
    tags_from_object(e.metadata.as_ref(), &mut data.tags);
    if let Some(project) = e.project_id.as_deref().or(project) {
        data.details.insert("project_id".into(), Value::String(project.to_owned()));
    }
    let info = e.delivery_info.as_ref();
    data.user_agent = info.and_then(|i| i.user_agent.clone());
    data.ip = info.and_then(|i| i.ip.clone());
    let delivery_status = info.and_then(|i| i.delivery_status.clone());
    let response = info.and_then(|i| i.destination_response.clone());
    data.reason = e.comment.as_deref().map(str::to_owned).or_else(|| delivery_status.clone());
    if status == Some(Status::Bounced) {
        let kind = if state == "hard_bounced" { BounceKind::Hard } else { BounceKind::Soft };
        data.bounce = Some(Bounce {
            kind,
            code: None,
            subtype: delivery_status,
            diagnostic: response,
            reason: None,
            provider_kind: None,
        });
    }
    let time = e.event_time.as_deref().and_then(super::utc_time);
    let dedup = format!(
        "{name}|{}|{}|{state}|{}|{}",
        data.message_id.as_deref().unwrap_or_default(),
        data.recipient.as_deref().unwrap_or_default(),
        e.event_time.as_deref().unwrap_or_default(),
        data.url.as_deref().unwrap_or_default()
    );
    Ok(ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, &raw))
}
