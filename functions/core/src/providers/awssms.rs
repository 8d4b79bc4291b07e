//! AWS End User Messaging SMS (the `pinpoint-sms-voice-v2` API) events, published by a
//! configuration set's event destination to an Amazon SNS topic, and two-way SMS (inbound
//! messages) published by a phone number to a topic. Like SES, they arrive as signed SNS
//! messages over HTTPS (topic allow-list required), or unsigned from an SQS queue subscribed to
//! the topic (raw or enveloped), or as EventBridge events (`detail-type` "Text Message Delivery
//! Status Updated") through a queue; IAM guards the queue paths.
//!
//! Events are read by `eventType`: `TEXT_INVALID` (not a valid number) is a hard bounce,
//! `TEXT_UNREACHABLE`, `TEXT_CARRIER_UNREACHABLE` and `TEXT_TTL_EXPIRED` soft ones, `TEXT_BLOCKED`
//! (the recipient's device or carrier blocks the sender) `dropped`, `TEXT_CARRIER_BLOCKED` and
//! `TEXT_SPAM` (the carrier refused the content) and `TEXT_INVALID_MESSAGE` `failed`,
//! `TEXT_PROTECT_BLOCKED` (the account's own protect configuration) `dropped`. `TEXT_SUCCESSFUL`
//! (accepted by the carrier) stays `sent`: AWS says it stands for delivery only where carriers
//! send no handset receipt. An inbound message is `received`, about its sender; STOP and the other
//! opt-out keywords (AWS also acts on them itself) opt the sender out. Event times are Unix
//! milliseconds.

use serde_json::Value;

use super::value_text as text;
use super::{NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, message_type, opt_out};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{StrictValue, parse_time};
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Awssms;

const EVENTS: &[(&str, Status, Option<BounceKind>)] = &[
    ("TEXT_QUEUED", Status::Sent, None),
    ("TEXT_PENDING", Status::Sent, None),
    ("TEXT_SENT", Status::Sent, None),
    ("TEXT_SUCCESSFUL", Status::Sent, None),
    ("TEXT_DELIVERED", Status::Delivered, None),
    ("TEXT_INVALID", Status::Bounced, Some(BounceKind::Hard)),
    ("TEXT_UNREACHABLE", Status::Bounced, Some(BounceKind::Soft)),
    ("TEXT_CARRIER_UNREACHABLE", Status::Bounced, Some(BounceKind::Soft)),
    ("TEXT_TTL_EXPIRED", Status::Bounced, Some(BounceKind::Soft)),
    ("TEXT_UNKNOWN", Status::Bounced, Some(BounceKind::Undetermined)),
    ("TEXT_BLOCKED", Status::Dropped, None),
    ("TEXT_PROTECT_BLOCKED", Status::Dropped, None),
    ("TEXT_CARRIER_BLOCKED", Status::Failed, None),
    ("TEXT_SPAM", Status::Failed, None),
    ("TEXT_INVALID_MESSAGE", Status::Failed, None),
];

/// A record: an SMS event (`eventType`) or an inbound message (`inboundMessageId`). `None` for
/// anything else.
fn from_record(record: &str, sns_time: Option<Timestamp>, ctx: &NormalizeContext<'_>) -> Option<Normalized<'static>> {
    let id = ProviderId::Awssms;
    let r: Value = serde_json::from_str(record).ok()?;
    let raw = Raw::from(record.to_owned());
    if let Some(inbound) = text(&r["inboundMessageId"]) {
        let words = r["messageBody"].as_str();
        let status = opt_out::by_keyword(words).unwrap_or(Status::Received);
        let mut data = EventData::new(Some(Channel::SMS), id.as_str(), "INBOUND");
        data.message_id = Some(inbound.clone());
        data.recipient = r["originationNumber"].as_str().map(recipient::phone);
        for (key, field) in
            [("to", "destinationNumber"), ("keyword", "messageKeyword"), ("in_reply_to", "previousPublishedMessageId")]
        {
            if let Some(value) = text(&r[field]) {
                data.details.insert(key.into(), Value::String(value));
            }
        }
        let event =
            ctx.event(message_type(&Channel::SMS, Some(status)), sns_time, &format!("inbound|{inbound}"), data, &raw);
        return Some(Normalized::events(vec![event]));
    }
    let name = text(&r["eventType"])?;
    let meaning = EVENTS.iter().find(|(e, _, _)| *e == name);
    let status = meaning.map(|(_, s, _)| *s);
    let channel = if name.starts_with("MEDIA_") { Channel::parse("mms").unwrap_or(Channel::SMS) } else { Channel::SMS };
    let mut data = EventData::new(Some(channel.clone()), id.as_str(), &name);
    data.message_id = text(&r["messageId"]);
    data.recipient = r["destinationPhoneNumber"].as_str().map(recipient::phone);
    data.reason = text(&r["messageStatusDescription"]);
    if let Value::Object(context) = &r["context"] {
        for (k, v) in context {
            data.tags.insert(k.clone(), super::tag_value(v));
        }
    }
    for (key, field) in [
        ("origination", "originationPhoneNumber"),
        ("message_type", "messageType"),
        ("iso_country_code", "isoCountryCode"),
        ("carrier", "carrierName"),
        ("message_status", "messageStatus"),
    ] {
        if let Some(value) = text(&r[field]) {
            data.details.insert(key.into(), Value::String(value));
        }
    }
    if let Some(is_final) = r["isFinal"].as_bool() {
        data.details.insert("is_final".into(), Value::Bool(is_final));
    }
    data.bounce = meaning.and_then(|(_, _, kind)| *kind).map(|kind| Bounce {
        kind,
        code: text(&r["messageStatus"]),
        subtype: Some(name.clone()),
        diagnostic: data.reason.clone(),
        reason: None,
        provider_kind: None,
    });
    let time = parse_time(&r["eventTimestamp"]).or(sns_time);
    let dedup = format!(
        "{name}|{}|{}",
        data.message_id.as_deref().unwrap_or_default(),
        text(&r["eventTimestamp"]).unwrap_or_default()
    );
    Some(Normalized::events(vec![ctx.event(message_type(&channel, status), time, &dedup, data, &raw)]))
}

impl Provider for Awssms {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add awssms --allow-topic <topic ARN>` (repeat for the two-way SMS topic); no secret: SNS signs",
            paste_url: "End User Messaging SMS → Configuration sets → your set → Event destinations → Amazon SNS topic; subscribe the printed URL to that topic (HTTPS); for inbound messages, the phone number's two-way SMS topic too",
            test_event: "send an SMS with the configuration set (tidings confirms the subscription for allow-listed topics)",
        }
    }

    fn example(&self) -> &'static str {
        "text-invalid.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Awssms
    }

    fn authentication(&self) -> Authentication {
        Authentication::SnsSignature
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("TEXT_QUEUED, TEXT_PENDING, TEXT_SENT, TEXT_SUCCESSFUL", "sms.sent"),
            ("TEXT_DELIVERED", "sms.delivered"),
            ("TEXT_INVALID", "sms.bounced (hard)"),
            ("TEXT_UNREACHABLE, TEXT_CARRIER_UNREACHABLE, TEXT_TTL_EXPIRED", "sms.bounced (soft)"),
            ("TEXT_UNKNOWN", "sms.bounced (undetermined)"),
            ("TEXT_BLOCKED, TEXT_PROTECT_BLOCKED", "sms.dropped"),
            ("TEXT_CARRIER_BLOCKED, TEXT_SPAM, TEXT_INVALID_MESSAGE", "sms.failed"),
            ("two-way SMS (inboundMessageId)", "sms.received (recipient: the sender)"),
            ("two-way SMS whose body is an opt-out keyword", "sms.unsubscribed / sms.resubscribed"),
            ("SNS SubscriptionConfirmation", "no event; confirmed for allow-listed topics"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let StrictValue(shape) = parse_json(id, &"body", webhook.body)?;
        if shape.get("Type").is_some() {
            return super::sns::read(id, webhook.body, |envelope| {
                let sns_time = envelope.timestamp.as_deref().and_then(Timestamp::parse_rfc3339);
                from_record(&envelope.message, sns_time, ctx)
            });
        }
        let record = if shape.get("detail-type").is_some() { &shape["detail"] } else { &shape };
        let text = record.to_string();
        let sns_time = shape["time"].as_str().and_then(Timestamp::parse_rfc3339);
        from_record(&text, sns_time, ctx).ok_or_else(|| {
            WebhookError::malformed(
                id,
                "body is not an SNS message (no `Type`), an EventBridge event (no `detail`) or an SMS event record (no `eventType` or `inboundMessageId`)",
            )
        })
    }
}
