//! GreenArrow Engine event notifications: one JSON object, or an array when the
//! event processor batches. GreenArrow signs nothing: put a shared secret in the URL or a
//! header. `event_unique_id` identifies an event.
//!
//! GreenArrow has no per-message id that every event carries. The message id used for the
//! timeline is `click_tracking_id` (set by the sender with X-GreenArrow-Click-Tracking-ID) when
//! present, else `sendid`: together with the recipient that names one message to one person.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{
    NormalizeContext, Normalized, NormalizedEvent, Provider, ProviderId, Raw, Setup, each_record, first_present,
    lookup, message_type, one_or_many, tag_value,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{opt_loose_bool, opt_string_or_number, parse_time};
use crate::webhook::{Webhook, WebhookError};

pub struct Greenarrow;

const EVENTS: &[(&str, Status)] = &[
    ("bounce_all", Status::Bounced),
    ("bounce_bad_address", Status::Suppressed),
    ("bounce_lite", Status::Bounced),
    ("scomp", Status::Complained),
    ("scomp_lite", Status::Complained),
    ("engine_click", Status::Clicked),
    ("studio_click", Status::Clicked),
    ("engine_open", Status::Opened),
    ("studio_open", Status::Opened),
    ("engine_unsub", Status::Unsubscribed),
    ("studio_unsub", Status::Unsubscribed),
    ("delivery_attempt", Status::Delivered),
];

const BOUNCE_TYPES: &[(&str, BounceKind)] =
    &[("h", BounceKind::Hard), ("s", BounceKind::Soft), ("o", BounceKind::Undetermined)];

/// `delivery_attempt` events by `status`.
const ATTEMPT_STATUSES: &[(&str, Status)] = &[
    ("accepted", Status::Delivered),
    ("success", Status::Delivered),
    ("deferral", Status::Deferred),
    ("failure", Status::Bounced),
    ("failure_toolong", Status::Bounced),
];

impl Provider for Greenarrow {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add greenarrow` (prints a secret)",
            paste_url: "Event Notification → HTTP endpoint: `<url>?token=<secret>` (or an `X-Tidings-Token` header)",
            test_event: "any send to a test list",
        }
    }

    fn example(&self) -> &'static str {
        "bounce_all-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Greenarrow
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("bounce_all", "email.bounced (bounce_type h: hard, s: soft, o: undetermined)"),
            ("bounce_bad_address", "email.suppressed"),
            ("bounce_lite", "email.bounced (undetermined)"),
            ("scomp, scomp_lite", "email.complained"),
            ("engine_click, studio_click", "email.clicked"),
            ("engine_open, studio_open", "email.opened (privacy_open from is_privacy_open)"),
            ("engine_unsub, studio_unsub", "email.unsubscribed"),
            ("delivery_attempt accepted, success", "email.delivered"),
            ("delivery_attempt deferral", "email.deferred"),
            ("delivery_attempt failure, failure_toolong", "email.bounced (undetermined)"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        each_record(id, one_or_many(id, webhook.body)?, |record: Record<'_>, _, raw| Ok(to_event(&record, ctx, raw)))
    }
}

fn to_event<'a>(r: &Record<'_>, ctx: &NormalizeContext<'_>, raw: &Raw<'a>) -> NormalizedEvent<'a> {
    let id = ProviderId::Greenarrow;
    let name = r.event_type.as_ref();
    let mut status = lookup(EVENTS, name);
    let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
    data.provider_event_id = r.event_unique_id.clone();
    data.message_id = first_present([r.click_tracking_id.as_deref(), r.sendid.as_deref()]).map(str::to_owned);
    data.recipient = r.email.as_deref().map(recipient::email);
    data.ip = r.engine_ip.as_deref().map(str::to_owned);
    data.user_agent = r.user_agent.as_deref().map(str::to_owned);
    for (key, value) in [
        ("listid", &r.listid),
        ("sendid", &r.sendid),
        ("mailclass", &r.mailclass),
        ("instanceid", &r.instanceid),
        ("server_id", &r.server_id),
        ("msguid", &r.msguid),
    ] {
        if let Some(v) = value {
            data.details.insert(key.into(), Value::String(v.clone()));
        }
    }
    let text = first_present([r.bounce_text.as_deref(), r.message.as_deref()]).map(str::to_owned);
    match (name, status) {
        ("delivery_attempt", _) => {
            status = lookup(ATTEMPT_STATUSES, r.status.as_deref().unwrap_or_default()).or(Some(Status::Unknown));
            if status == Some(Status::Bounced) {
                let bounce = Bounce {
                    kind: BounceKind::Undetermined,
                    code: r.bounce_code.clone(),
                    subtype: r.status.clone(),
                    diagnostic: text,
                    reason: None,
                    provider_kind: None,
                };
                data.bounce = Some(bounce);
            } else {
                data.reason = text;
            }
        }
        (_, Some(Status::Bounced)) => {
            let kind = match name {
                "bounce_lite" => BounceKind::Undetermined,
                _ => r.bounce_type.as_deref().and_then(|t| lookup(BOUNCE_TYPES, t)).unwrap_or(BounceKind::Undetermined),
            };
            data.bounce = Some(Bounce {
                kind,
                code: r.bounce_code.clone(),
                subtype: None,
                diagnostic: text,
                reason: None,
                provider_kind: None,
            });
        }
        (_, Some(Status::Suppressed)) => {
            data.reason = Some("address reached the bounce removal threshold".into());
            data.bounce = r.bounce_type.as_deref().and_then(|t| lookup(BOUNCE_TYPES, t)).map(|kind| Bounce {
                kind,
                code: r.bounce_code.clone(),
                subtype: None,
                diagnostic: text,
                reason: None,
                provider_kind: None,
            });
        }
        (_, Some(Status::Clicked | Status::Unsubscribed)) => {
            data.url = r.click_url.as_deref().filter(|u| !u.is_empty()).map(str::to_owned);
        }
        (_, Some(Status::Opened)) => data.privacy_open = Some(r.is_privacy_open.unwrap_or(false)),
        _ => {}
    }
    let time = r.event_time.as_ref().and_then(parse_time);
    let dedup = r.event_unique_id.clone().unwrap_or_else(|| {
        format!(
            "{name}|{}|{}|{}|{}",
            r.id.as_deref().unwrap_or_default(),
            data.message_id.as_deref().unwrap_or_default(),
            data.recipient.as_deref().unwrap_or_default(),
            r.event_time.as_ref().map(tag_value).unwrap_or_default()
        )
    });
    ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw)
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(default)]
    event_time: Option<Value>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    event_unique_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    listid: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    sendid: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    click_tracking_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    mailclass: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    instanceid: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    server_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    msguid: Option<String>,
    #[serde(default, borrow)]
    bounce_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    bounce_code: Option<String>,
    #[serde(default, borrow)]
    bounce_text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    click_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    engine_ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_loose_bool")]
    is_privacy_open: Option<bool>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    status: Option<String>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}
