//! Amazon SES event publishing and identity notifications, in all four ways they arrive:
//! an SNS envelope over HTTPS, the same envelope on an SQS queue, a bare SES record on a queue
//! (SNS raw message delivery), and an EventBridge event whose `detail` is the record.
//!
//! One SES record can name several recipients; it becomes one event per recipient. The dedup
//! key is built from the SES record itself (message id, event type, and the event's own
//! feedback id or timestamp), not from the transport, so the same SES event wired two ways is
//! still stored once.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, NormalizedEvent, Notice, Provider, ProviderId, Raw, Setup, lookup, message_type,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Ses;

const EVENTS: &[(&str, Status)] = &[
    ("Send", Status::Sent),
    ("Delivery", Status::Delivered),
    ("DeliveryDelay", Status::Deferred),
    ("Bounce", Status::Bounced),
    ("Complaint", Status::Complained),
    ("Reject", Status::Dropped),
    ("Open", Status::Opened),
    ("Click", Status::Clicked),
    ("Rendering Failure", Status::Failed),
    ("Subscription", Status::Unsubscribed),
    ("Received", Status::Received),
];

const BOUNCE_TYPES: &[(&str, BounceKind)] =
    &[("Permanent", BounceKind::Hard), ("Transient", BounceKind::Soft), ("Undetermined", BounceKind::Undetermined)];

/// Permanent bounces SES generated itself because the address is suppressed: SES never tried,
/// so they are drops, not bounces.
const SUPPRESSION_SUBTYPES: &[(&str, &str)] = &[
    ("Suppressed", "address is on the SES global suppression list"),
    ("OnAccountSuppressionList", "address is on the SES account-level suppression list"),
];

/// What SES publishes to a topic when a configuration set's event destination is attached.
const VALIDATION_MESSAGE: &str = "Successfully validated SNS topic for Amazon SES event publishing.";

impl Provider for Ses {
    fn setup(&self) -> Setup {
        Setup { add_source: "see [SES](#ses)", paste_url: "", test_event: "" }
    }

    fn example(&self) -> &'static str {
        "bounce-permanent.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Ses
    }

    fn authentication(&self) -> Authentication {
        Authentication::SnsSignature
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("Send", "email.sent"),
            ("Delivery", "email.delivered (one per delivery.recipients)"),
            ("DeliveryDelay", "email.deferred (one per delayedRecipients; delayType kept)"),
            ("Bounce Permanent", "email.bounced (hard); subtypes Suppressed, OnAccountSuppressionList: email.dropped"),
            ("Bounce Transient", "email.bounced (soft)"),
            ("Bounce Undetermined", "email.bounced (undetermined)"),
            ("Complaint", "email.complained; complaintSubType OnAccountSuppressionList: email.dropped"),
            ("Reject", "email.dropped"),
            ("Open", "email.opened"),
            ("Click", "email.clicked"),
            ("Rendering Failure", "email.failed"),
            ("Subscription", "email.unsubscribed or email.resubscribed by newTopicPreferences"),
            ("Received (inbound receipt notification)", "email.received (one per receipt.recipients)"),
            (
                "SendFailure (report from a sending application)",
                "email.retry_scheduled when retryable, else email.failed",
            ),
            ("SNS SubscriptionConfirmation", "no event; confirmed for allow-listed topics"),
            ("SNS UnsubscribeConfirmation / topic validation message", "no event"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let shape: Shape<'_> = parse_json(id, &"body", webhook.body)?;
        if shape.kind.is_some() {
            return from_sns(webhook.body, ctx);
        }
        if let Some(detail) = shape.detail {
            if shape.detail_type.is_none() {
                return Err(WebhookError::malformed(id, "EventBridge event has `detail` but no `detail-type`"));
            }
            let send_failure = serde_json::from_str::<Shape<'_>>(detail.get()).is_ok_and(|s| s.is_send_failure());
            return from_record(detail.get(), send_failure, ctx);
        }
        if shape.event_type.is_some() || shape.notification_type.is_some() {
            return from_record(std::str::from_utf8(webhook.body).unwrap_or_default(), shape.is_send_failure(), ctx);
        }
        Err(WebhookError::malformed(
            id,
            "body is not an SNS message (no `Type`), an EventBridge event (no `detail`) or an SES record (no `eventType`)",
        ))
    }
}

impl Shape<'_> {
    /// A `SendFailure` record (tidings' own, from a send that SES refused).
    fn is_send_failure(&self) -> bool {
        self.event_type.as_ref().and_then(Value::as_str) == Some("SendFailure")
    }
}

/// Just enough of the body to tell the four shapes apart.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(rename = "Type", default)]
    kind: Option<Value>,
    #[serde(rename = "detail-type", default)]
    detail_type: Option<Value>,
    #[serde(default, borrow)]
    detail: Option<&'a RawValue>,
    #[serde(rename = "eventType", default)]
    event_type: Option<Value>,
    #[serde(rename = "notificationType", default)]
    notification_type: Option<Value>,
}

fn from_sns(body: &[u8], ctx: &NormalizeContext<'_>) -> Result<Normalized<'static>, WebhookError> {
    super::sns::read(ProviderId::Ses, body, |envelope| {
        if envelope.message.trim() == VALIDATION_MESSAGE {
            return Some(Normalized::notice(Notice::SesTopicValidated));
        }
        match serde_json::from_str::<Shape<'_>>(&envelope.message) {
            Ok(shape) if shape.event_type.is_some() || shape.notification_type.is_some() => {
                from_record(&envelope.message, shape.is_send_failure(), ctx).map(Normalized::into_static).ok()
            }
            _ => None,
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(alias = "notificationType", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    mail: Mail<'a>,
    #[serde(default, borrow)]
    bounce: Option<BounceRecord<'a>>,
    #[serde(default, borrow)]
    complaint: Option<ComplaintRecord<'a>>,
    #[serde(default, borrow)]
    delivery: Option<DeliveryRecord<'a>>,
    #[serde(default, borrow)]
    delivery_delay: Option<DelayRecord<'a>>,
    #[serde(default, borrow)]
    reject: Option<RejectRecord<'a>>,
    #[serde(default, borrow)]
    open: Option<Engagement<'a>>,
    #[serde(default, borrow)]
    click: Option<Engagement<'a>>,
    #[serde(default, borrow)]
    failure: Option<FailureRecord<'a>>,
    #[serde(default)]
    subscription: Option<SubscriptionRecord>,
    #[serde(default)]
    receipt: Option<ReceiptRecord>,
}

#[derive(Deserialize)]
struct ReceiptRecord {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mail<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
    /// The sender's address (`"Name" <a@example.com>` or bare).
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BounceRecord<'a> {
    #[serde(borrow)]
    bounce_type: Cow<'a, str>,
    #[serde(default, borrow)]
    bounce_sub_type: Option<Cow<'a, str>>,
    #[serde(default)]
    bounced_recipients: Vec<RecipientStatus>,
    #[serde(default, borrow)]
    feedback_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecipientStatus {
    email_address: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComplaintRecord<'a> {
    #[serde(default)]
    complained_recipients: Vec<RecipientStatus>,
    #[serde(default, borrow)]
    complaint_sub_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    complaint_feedback_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    feedback_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryRecord<'a> {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    smtp_response: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayRecord<'a> {
    #[serde(default)]
    delayed_recipients: Vec<RecipientStatus>,
    #[serde(default, borrow)]
    delay_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    expiration_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RejectRecord<'a> {
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Engagement<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    link: Option<Cow<'a, str>>,
    #[serde(default)]
    link_tags: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureRecord<'a> {
    #[serde(default, borrow)]
    error_message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    template_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionRecord {
    #[serde(default)]
    contact_list: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    new_topic_preferences: Option<TopicPreferences>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicPreferences {
    #[serde(default)]
    unsubscribe_all: bool,
    #[serde(default)]
    topic_subscription_status: Vec<TopicStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicStatus {
    #[serde(default)]
    topic_name: Option<String>,
    #[serde(default)]
    subscription_status: Option<String>,
}

/// One canonical event in the making: who, what, when, what makes it unique, and the fields
/// specific to its kind.
struct Part {
    recipient: String,
    status: Option<Status>,
    time: Option<Timestamp>,
    discriminator: String,
    data: EventData,
}

fn time(text: &Option<Cow<'_, str>>) -> Option<Timestamp> {
    text.as_deref().and_then(Timestamp::parse_rfc3339)
}

fn owned(text: &Option<Cow<'_, str>>) -> Option<String> {
    text.as_deref().map(str::to_owned)
}

/// One SES record (its text); `send_failure` when its `eventType` is tidings' own
/// `SendFailure` (the caller has read the record's shape already).
fn from_record<'a>(
    text: &'a str,
    send_failure: bool,
    ctx: &NormalizeContext<'_>,
) -> Result<Normalized<'a>, WebhookError> {
    let id = ProviderId::Ses;
    if send_failure {
        return from_send_failure(text, ctx);
    }
    let record: Record<'_> = parse_json(id, &"SES record", text.as_bytes())?;
    let raw = Raw::Borrowed(text);
    let name = record.event_type.as_ref();
    let mail_time = time(&record.mail.timestamp);
    let blank = || {
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        // A resend tidings made carries the timeline it belongs to in a tag (see `MESSAGE_TAG`).
        match record.mail.tags.get(MESSAGE_TAG).and_then(|v| v.first()).filter(|v| !v.is_empty()) {
            Some(timeline) => {
                data.message_id = Some(timeline.clone());
                data.details.insert("ses_message_id".into(), Value::String(record.mail.message_id.to_string()));
            }
            None => data.message_id = Some(record.mail.message_id.to_string()),
        }
        data.tags = record.mail.tags.iter().map(|(k, values)| (k.clone(), values.join(","))).collect();
        data.sending_domain = record.mail.source.clone();
        data
    };
    // Events about the message as a whole (send, reject, open, click…) name no recipient of
    // their own: they are about every address the message went to.
    let per_destination =
        |status: Option<Status>, time: Option<Timestamp>, discriminator: &str, data: EventData| -> Vec<Part> {
            record
                .mail
                .destination
                .iter()
                .map(|r| Part {
                    recipient: r.clone(),
                    status,
                    time,
                    discriminator: discriminator.to_owned(),
                    data: data.clone(),
                })
                .collect()
        };
    let missing = |field: &str| WebhookError::malformed(id, format!("SES {name} record has no `{field}` object"));

    let parts: Vec<Part> = match lookup(EVENTS, name) {
        Some(Status::Bounced) => {
            let b = record.bounce.as_ref().ok_or_else(|| missing("bounce"))?;
            let kind = lookup(BOUNCE_TYPES, &b.bounce_type).unwrap_or(BounceKind::Undetermined);
            let subtype = owned(&b.bounce_sub_type);
            let suppression =
                subtype.as_deref().and_then(|s| lookup(SUPPRESSION_SUBTYPES, s)).filter(|_| kind == BounceKind::Hard);
            b.bounced_recipients
                .iter()
                .map(|r| {
                    let mut data = blank();
                    data.bounce = Some(Bounce {
                        kind,
                        code: r.status.clone(),
                        subtype: subtype.clone(),
                        diagnostic: r.diagnostic_code.clone(),
                        reason: None,
                        provider_kind: None,
                    });
                    data.provider_event_id = owned(&b.feedback_id);
                    data.reason = suppression.map(str::to_owned);
                    Part {
                        recipient: r.email_address.clone(),
                        status: Some(if suppression.is_some() { Status::Dropped } else { Status::Bounced }),
                        time: time(&b.timestamp),
                        discriminator: owned(&b.feedback_id).unwrap_or_default(),
                        data,
                    }
                })
                .collect()
        }
        Some(Status::Complained) => {
            let c = record.complaint.as_ref().ok_or_else(|| missing("complaint"))?;
            let on_list = c.complaint_sub_type.as_deref() == Some("OnAccountSuppressionList");
            c.complained_recipients
                .iter()
                .map(|r| {
                    let mut data = blank();
                    data.provider_event_id = owned(&c.feedback_id);
                    data.user_agent = owned(&c.user_agent);
                    data.reason = if on_list {
                        lookup(SUPPRESSION_SUBTYPES, "OnAccountSuppressionList").map(str::to_owned)
                    } else {
                        owned(&c.complaint_feedback_type)
                    };
                    Part {
                        recipient: r.email_address.clone(),
                        status: Some(if on_list { Status::Dropped } else { Status::Complained }),
                        time: time(&c.timestamp),
                        discriminator: owned(&c.feedback_id).unwrap_or_default(),
                        data,
                    }
                })
                .collect()
        }
        Some(Status::Delivered) => {
            let dlv = record.delivery.as_ref().ok_or_else(|| missing("delivery"))?;
            dlv.recipients
                .iter()
                .map(|r| {
                    let mut data = blank();
                    data.reason = owned(&dlv.smtp_response);
                    Part {
                        recipient: r.clone(),
                        status: Some(Status::Delivered),
                        time: time(&dlv.timestamp),
                        discriminator: owned(&dlv.timestamp).unwrap_or_default(),
                        data,
                    }
                })
                .collect()
        }
        Some(Status::Deferred) => {
            let delay = record.delivery_delay.as_ref().ok_or_else(|| missing("deliveryDelay"))?;
            delay
                .delayed_recipients
                .iter()
                .map(|r| {
                    let mut data = blank();
                    data.reason = owned(&delay.delay_type);
                    insert_text(&mut data.details, "delay_type", &owned(&delay.delay_type));
                    insert_text(&mut data.details, "expiration_time", &owned(&delay.expiration_time));
                    insert_text(&mut data.details, "status", &r.status);
                    insert_text(&mut data.details, "diagnostic_code", &r.diagnostic_code);
                    Part {
                        recipient: r.email_address.clone(),
                        status: Some(Status::Deferred),
                        time: time(&delay.timestamp),
                        discriminator: owned(&delay.timestamp).unwrap_or_default(),
                        data,
                    }
                })
                .collect()
        }
        Some(Status::Dropped) => {
            let mut data = blank();
            data.reason = record.reject.as_ref().and_then(|r| owned(&r.reason));
            per_destination(Some(Status::Dropped), mail_time, "", data)
        }
        Some(status @ (Status::Opened | Status::Clicked)) => {
            let (e, field) = if status == Status::Opened {
                (record.open.as_ref(), "open")
            } else {
                (record.click.as_ref(), "click")
            };
            let e = e.ok_or_else(|| missing(field))?;
            let mut data = blank();
            data.ip = owned(&e.ip_address);
            data.user_agent = owned(&e.user_agent);
            data.url = owned(&e.link);
            if let Some(tags) = e.link_tags.clone().filter(|t| !t.is_null()) {
                data.details.insert("link_tags".into(), tags);
            }
            // Two opens (or clicks) differ in time, client or link: never collapse them.
            let discriminator = format!(
                "{}|{}|{}",
                e.timestamp.as_deref().unwrap_or_default(),
                e.ip_address.as_deref().unwrap_or_default(),
                e.link.as_deref().unwrap_or_default()
            );
            per_destination(Some(status), time(&e.timestamp).or(mail_time), &discriminator, data)
        }
        Some(Status::Failed) => {
            let mut data = blank();
            let failure = record.failure.as_ref();
            data.reason = failure.and_then(|f| owned(&f.error_message));
            data.retryable = Some(false);
            insert_text(&mut data.details, "template_name", &failure.and_then(|f| owned(&f.template_name)));
            per_destination(Some(Status::Failed), mail_time, "", data)
        }
        Some(Status::Unsubscribed) => {
            let s = record.subscription.as_ref().ok_or_else(|| missing("subscription"))?;
            let prefs = s.new_topic_preferences.as_ref();
            let opted_out = prefs.is_some_and(|p| {
                p.unsubscribe_all
                    || p.topic_subscription_status.iter().any(|t| t.subscription_status.as_deref() == Some("OptOut"))
            });
            let mut data = blank();
            insert_text(&mut data.details, "contact_list", &s.contact_list);
            if let Some(p) = prefs.filter(|p| !p.topic_subscription_status.is_empty()) {
                let topics = p
                    .topic_subscription_status
                    .iter()
                    .map(|t| serde_json::json!({"topic": t.topic_name, "status": t.subscription_status}))
                    .collect();
                data.details.insert("topics".into(), Value::Array(topics));
            }
            let stamp = s.timestamp.clone().unwrap_or_default();
            let status = if opted_out { Status::Unsubscribed } else { Status::Resubscribed };
            per_destination(Some(status), Timestamp::parse_rfc3339(&stamp).or(mail_time), &stamp, data)
        }
        Some(Status::Received) => {
            // Inbound mail: the receipt names the recipients on our side of the exchange.
            let receipt = record.receipt.as_ref();
            let when = receipt.and_then(|r| r.timestamp.as_deref()).and_then(Timestamp::parse_rfc3339).or(mail_time);
            match receipt.filter(|r| !r.recipients.is_empty()) {
                Some(r) => r
                    .recipients
                    .iter()
                    .map(|to| Part {
                        recipient: to.clone(),
                        status: Some(Status::Received),
                        time: when,
                        discriminator: String::new(),
                        data: blank(),
                    })
                    .collect(),
                None => per_destination(Some(Status::Received), when, "", blank()),
            }
        }
        status => per_destination(status, mail_time, "", blank()),
    };

    let events = parts
        .into_iter()
        .map(|mut part| {
            part.data.recipient = Some(recipient::email(&part.recipient));
            let dedup = format!("{}|{}|{}", record.mail.message_id, name, part.discriminator);
            let event_type: EventType = message_type(&Channel::EMAIL, part.status);
            ctx.event(event_type, part.time.or(mail_time), &dedup, part.data, &raw)
        })
        .collect::<Vec<NormalizedEvent<'_>>>();
    Ok(Normalized::events(events))
}

fn insert_text(details: &mut BTreeMap<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        details.insert(key.to_owned(), Value::String(v.clone()));
    }
}

/// The email tag that names the timeline a message belongs to. tidings adds it to every resend
/// (SES tag values allow ASCII letters, digits, `_` and `-`), so the SES events of the new
/// message join the failed send's timeline instead of starting their own; a sending application
/// can set it on its own sends too.
pub const MESSAGE_TAG: &str = "tidings-message";

/// Whether a value can be an SES email tag value.
pub fn valid_tag_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A report a sending application makes when an SESv2 `SendEmail` call failed (see the README,
/// "Reporting SES send failures"): `{"eventType": "SendFailure", "mail": <the SendEmail request,
/// or at least its destination and tags>, "error": <the SDK error>, "attempt": n, "timestamp": …,
/// "reportId": …}`. Retryable errors become `email.retry_scheduled`, the rest `email.failed`, one
/// event per recipient of the request.
#[derive(Deserialize)]
struct SendFailure {
    #[serde(default)]
    mail: Value,
    #[serde(default)]
    error: crate::retryable::SendError,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default, rename = "reportId")]
    report_id: Option<String>,
}

fn from_send_failure<'a>(text: &'a str, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
    let id = ProviderId::Ses;
    let report: SendFailure = parse_json(id, &"SES SendFailure report", text.as_bytes())?;
    let mail = &report.mail;
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let destination = mail.get("Destination");
    let mut recipients: Vec<String> = ["ToAddresses", "CcAddresses", "BccAddresses"]
        .iter()
        .flat_map(|field| strings(destination.and_then(|d| d.get(*field))))
        .collect();
    recipients.extend(strings(mail.get("destination")));
    if recipients.is_empty() {
        return Err(WebhookError::malformed(
            id,
            "SendFailure report names no recipient (mail.Destination or mail.destination)",
        ));
    }
    let mut tags = BTreeMap::new();
    if let Some(list) = mail.get("EmailTags").and_then(Value::as_array) {
        for tag in list {
            if let (Some(name), Some(value)) =
                (tag.get("Name").and_then(Value::as_str), tag.get("Value").and_then(Value::as_str))
            {
                tags.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    super::tags_from_object(mail.get("tags"), &mut tags);
    let retryable = report.error.is_retryable();
    let attempt = report.attempt.unwrap_or(1);
    // A retryable failure is resent until its last attempt; a failure of the last
    // attempt ends the message's retries, whichever attempt number the sender reports.
    let exhausted = retryable && attempt >= crate::retryable::MAX_SEND_ATTEMPTS;
    let status = match (retryable, exhausted) {
        (true, false) => Status::RetryScheduled,
        (true, true) => Status::RetriesExhausted,
        (false, _) => Status::Failed,
    };
    let time = report.timestamp.as_deref().and_then(Timestamp::parse_rfc3339);
    let report_key = report
        .report_id
        .clone()
        .unwrap_or_else(|| hex::encode(&ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..16]));
    let raw = Raw::Borrowed(text);
    let error = serde_json::to_value(&report.error)
        .map_err(|e| WebhookError::malformed(ProviderId::Ses, format!("report `error`: {e}")))?;
    let events = recipients
        .iter()
        .map(|recipient| {
            let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), "SendFailure");
            // A failed send has no SES message id; its timeline is named by the request's
            // `tidings-message` tag, or else by the report, and a resend carries that name on.
            data.message_id = mail
                .get("MessageId")
                .or_else(|| mail.get("messageId"))
                .and_then(Value::as_str)
                .or_else(|| tags.get(MESSAGE_TAG).map(String::as_str))
                .or(Some(report_key.as_str()))
                .map(str::to_owned);
            data.recipient = Some(recipient::email(recipient));
            data.tags = tags.clone();
            data.retryable = Some(retryable);
            data.reason = report.error.message.clone().or_else(|| report.error.name.clone());
            if exhausted {
                let last = data.reason.take().unwrap_or_default();
                data.reason = Some(format!("gave up after {attempt} attempts; the last error: {last}"));
            }
            data.details.insert("error".into(), error.clone());
            data.details.insert("attempt".into(), Value::from(attempt));
            data.details.insert("throttling".into(), Value::Bool(report.error.is_throttling()));
            // The request can be sent again only if the report carried it whole.
            data.details.insert("resendable".into(), Value::Bool(mail.get("Content").is_some()));
            if let Some(set) = mail.get("ConfigurationSetName").and_then(Value::as_str) {
                data.details.insert("configuration_set".into(), Value::String(set.to_owned()));
            }
            let dedup = format!("SendFailure|{report_key}|{attempt}");
            ctx.event(message_type(&Channel::EMAIL, Some(status)), time, &dedup, data, &raw)
        })
        .collect();
    Ok(Normalized::events(events))
}
