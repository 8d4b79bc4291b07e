//! SendGrid Event Webhook: a JSON array of events, signed with ECDSA P-256 (Signed Event
//! Webhook). Custom args are merged into each event at the top level, so every key SendGrid does
//! not define is a tag. SendGrid retries whole batches for up to 24 hours, so duplicates are
//! normal; `sg_event_id` identifies an event.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    BodyItem, NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, each_record, labels_from, lookup,
    message_type, tag_value,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{Text, parse_time};
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Sendgrid;

const EVENTS: &[(&str, Status)] = &[
    ("processed", Status::Sent),
    ("delivered", Status::Delivered),
    ("deferred", Status::Deferred),
    ("bounce", Status::Bounced),
    ("dropped", Status::Dropped),
    ("open", Status::Opened),
    ("click", Status::Clicked),
    ("spamreport", Status::Complained),
    ("unsubscribe", Status::Unsubscribed),
    ("group_unsubscribe", Status::Unsubscribed),
    ("group_resubscribe", Status::Resubscribed),
];

/// `bounce` events by their `type`.
const BOUNCE_TYPES: &[(&str, BounceKind)] =
    &[("bounce", BounceKind::Hard), ("blocked", BounceKind::Soft), ("expired", BounceKind::Soft)];

/// Keys SendGrid itself defines; anything else on an event is a custom arg (a tag).
const SENDGRID_KEYS: &[&str] = &[
    "email",
    "timestamp",
    "event",
    "smtp-id",
    "sg_event_id",
    "sg_message_id",
    "category",
    "reason",
    "status",
    "response",
    "attempt",
    "type",
    "bounce_classification",
    "useragent",
    "ip",
    "url",
    "url_offset",
    "sg_machine_open",
    "asm_group_id",
    "tls",
    "cert_err",
    "pool",
    "send_at",
    "sg_content_type",
    "sg_template_id",
    "sg_template_name",
    "template_id",
    "template_version_id",
    "template_name",
    "template_hash",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "marketing_campaign_version",
    "marketing_campaign_split_id",
    "singlesend_id",
    "singlesend_name",
    "mc_stats",
    "phase_id",
    "post_type",
    "ab_variation_id",
    "ab_phase_id",
    "sg_user_id",
    "newsletter",
    "nlvx_campaign_id",
    "nlvx_user_id",
    "mc_auto_id",
    "mc_auto_name",
    "mc_auto_step_id",
    "unique_args",
];

impl Provider for Sendgrid {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add sendgrid --secret <verification key>`: Settings → Mail Settings → Event Webhook → enable *Signed Event Webhook Requests* and copy the **verification key**",
            paste_url: "the same page, *HTTP Post URL*; tick the events you want",
            test_event: "*Test Your Integration* on that page",
        }
    }

    fn example(&self) -> &'static str {
        "batch-every-type.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Sendgrid
    }

    fn authentication(&self) -> Authentication {
        Authentication::SendgridEcdsa
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("processed", "email.sent"),
            ("delivered", "email.delivered"),
            ("deferred", "email.deferred"),
            ("bounce (type bounce)", "email.bounced (hard)"),
            ("bounce (type blocked, expired)", "email.bounced (soft)"),
            ("dropped", "email.dropped"),
            ("open", "email.opened (privacy_open from sg_machine_open)"),
            ("click", "email.clicked"),
            ("spamreport", "email.complained"),
            ("unsubscribe, group_unsubscribe", "email.unsubscribed"),
            ("group_resubscribe", "email.resubscribed"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        // SendGrid always posts an array, even for one event.
        let items: Vec<&RawValue> = parse_json(id, &"body (a JSON array of events)", webhook.body)?;
        let items = items.into_iter().enumerate().map(|(index, raw)| BodyItem { raw, index: Some(index) }).collect();
        each_record(id, items, |record: Record<'_>, item, raw| to_event(record, item, ctx, raw))
    }
}

fn to_event<'a>(
    mut record: Record<'_>,
    item: &BodyItem<'_>,
    ctx: &NormalizeContext<'_>,
    raw: &Raw<'a>,
) -> Result<super::NormalizedEvent<'a>, WebhookError> {
    let id = ProviderId::Sendgrid;
    let name = record
        .event
        .as_ref()
        .map(Text::as_str)
        .ok_or_else(|| WebhookError::malformed(id, format!("{item} has no `event` field")))?;
    let status = lookup(EVENTS, name);
    let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
    data.provider_event_id = record.sg_event_id.as_ref().map(|t| t.as_str().to_owned());
    data.message_id = record
        .sg_message_id
        .as_ref()
        .map(|m| message_id(m.as_str()).to_owned())
        .or_else(|| record.smtp_id.as_ref().map(|s| s.as_str().trim_matches(|c| c == '<' || c == '>').to_owned()));
    data.recipient = record.email.as_ref().map(|e| recipient::email(e.as_str()));
    data.tags = std::mem::take(&mut record.tags);
    data.labels = labels_from(record.category.as_ref());
    data.ip = record.ip.as_ref().map(|t| t.as_str().to_owned());
    data.user_agent = record.useragent.as_ref().map(|t| t.as_str().to_owned());
    let reason = record.reason.as_ref().or(record.response.as_ref()).map(|t| t.as_str().to_owned());
    match status {
        Some(Status::Bounced) => {
            let kind =
                record.bounce_type.as_ref().and_then(|t| lookup(BOUNCE_TYPES, t.as_str())).unwrap_or(BounceKind::Hard);
            data.bounce = Some(Bounce {
                kind,
                code: record.status.as_ref().map(|t| t.as_str().to_owned()),
                subtype: record
                    .bounce_classification
                    .as_ref()
                    .or(record.bounce_type.as_ref())
                    .map(|t| t.as_str().to_owned()),
                diagnostic: reason,
                reason: None,
                provider_kind: None,
            });
        }
        Some(Status::Clicked) => data.url = record.url.as_ref().map(|t| t.as_str().to_owned()),
        Some(Status::Opened) => data.privacy_open = Some(record.machine_open),
        _ => data.reason = reason,
    }
    if let Some(attempt) = &record.attempt {
        data.details.insert("attempt".into(), attempt.clone());
    }
    if let Some(group) = &record.asm_group_id {
        data.details.insert("asm_group_id".into(), group.clone());
    }
    let time = record.timestamp.as_ref().and_then(parse_time);
    let dedup = match &record.sg_event_id {
        Some(event_id) => event_id.as_str().to_owned(),
        None => format!(
            "{name}|{}|{}|{}|{}",
            data.message_id.as_deref().unwrap_or(""),
            data.recipient.as_deref().unwrap_or(""),
            record.timestamp.as_ref().map(tag_value).unwrap_or_default(),
            data.url.as_deref().unwrap_or("")
        ),
    };
    Ok(ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, raw))
}

/// The message id the send API returned (`X-Message-Id`): `sg_message_id` up to the filter
/// node suffix SendGrid appends (`.filter…`, `.recvd-…`).
fn message_id(sg_message_id: &str) -> &str {
    [".filter", ".recvd-"]
        .iter()
        .filter_map(|marker| sg_message_id.find(marker))
        .min()
        .map_or(sg_message_id, |cut| &sg_message_id[..cut])
}

/// One SendGrid event, read in one pass: known fields typed, every other key kept as a tag.
#[derive(Default)]
struct Record<'a> {
    email: Option<Text<'a>>,
    timestamp: Option<Value>,
    event: Option<Text<'a>>,
    smtp_id: Option<Text<'a>>,
    sg_event_id: Option<Text<'a>>,
    sg_message_id: Option<Text<'a>>,
    category: Option<Value>,
    reason: Option<Text<'a>>,
    response: Option<Text<'a>>,
    status: Option<Text<'a>>,
    bounce_type: Option<Text<'a>>,
    bounce_classification: Option<Text<'a>>,
    useragent: Option<Text<'a>>,
    ip: Option<Text<'a>>,
    url: Option<Text<'a>>,
    machine_open: bool,
    attempt: Option<Value>,
    asm_group_id: Option<Value>,
    tags: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SendGrid event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let mut r = Record::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.as_str() {
                "email" => r.email = map.next_value()?,
                "timestamp" => r.timestamp = map.next_value()?,
                "event" => r.event = map.next_value()?,
                "smtp-id" => r.smtp_id = map.next_value()?,
                "sg_event_id" => r.sg_event_id = map.next_value()?,
                "sg_message_id" => r.sg_message_id = map.next_value()?,
                "category" => r.category = map.next_value()?,
                "reason" => r.reason = map.next_value()?,
                "response" => r.response = map.next_value()?,
                "status" => r.status = map.next_value::<Option<Value>>()?.map(|v| Text(tag_value(&v).into())),
                "type" => r.bounce_type = map.next_value()?,
                "bounce_classification" => r.bounce_classification = map.next_value()?,
                "useragent" => r.useragent = map.next_value()?,
                "ip" => r.ip = map.next_value()?,
                "url" => r.url = map.next_value()?,
                "sg_machine_open" => {
                    let v: Value = map.next_value()?;
                    r.machine_open =
                        matches!(v, Value::Bool(true)) || v.as_str() == Some("true") || v.as_i64() == Some(1);
                }
                "attempt" => r.attempt = map.next_value()?,
                "asm_group_id" => r.asm_group_id = map.next_value()?,
                other if SENDGRID_KEYS.contains(&other) => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                other => {
                    let value: Value = map.next_value()?;
                    if !value.is_null() {
                        r.tags.insert(other.to_owned(), tag_value(&value));
                    }
                }
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_drops_the_filter_suffix() {
        assert_eq!(message_id("14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"), "14c5d75ce93.dfd.64b469");
        assert_eq!(
            message_id("qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-canary-547b64655b-cw6zx-1-6089EA4A-56.0"),
            "qNwBLgPQQjW6DJvKQwSAbw"
        );
        assert_eq!(message_id("LRzXl66JR9ib5IKZs8u3Gg.recvd-5f8c5ddf6-q8wld-1-5EAEB3A7-F.0"), "LRzXl66JR9ib5IKZs8u3Gg");
        assert_eq!(message_id("plain"), "plain");
    }
}
