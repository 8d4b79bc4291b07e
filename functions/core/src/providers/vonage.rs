//! Vonage: the Messages API's status and inbound webhooks (JSON, signed with a JWT) and the older
//! SMS API's delivery receipts and inbound messages (form or JSON, signed with `sig` where Vonage
//! turned signing on, else carrying the secret as a shared secret; see [`crate::auth::vonage`]).
//! One message a request. Which it is shows in the body:
//!
//! - Messages API status: `message_uuid` and `status` (`submitted`, `delivered`, `read`,
//!   `rejected`, `undeliverable`), on its `channel` (`sms`, `mms`, `whatsapp`, `viber_service`,
//!   `messenger`, `rcs`). A `rejected` message is read by its error code (`error.title`).
//! - Messages API inbound: `message_uuid` and `message_type`: `received`, about its sender.
//! - SMS API receipt: `messageId`, `status` and `err-code`, read by the error code.
//! - SMS API inbound: `msisdn`, `messageId` and `text`: `received`, about its sender (`msisdn`).
//!
//! An inbound text that is one opt-out keyword opts its sender out. Vonage writes numbers without
//! the `+`; the SMS API's times (`2025-11-28 06:00:12`) are UTC.

use serde_json::Value;

use super::value_text as text;
use super::{NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, message_type, opt_out, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::StrictValue;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Vonage;

/// Messages API error codes (`error.title`) by Vonage's documented meaning; unlisted codes are
/// failures to send (parameters, templates, the account, throttling).
const MESSAGES_ERRORS: &[(&str, Status, Option<BounceKind>)] = &[
    // Number barred, invalid or missing number, absent subscriber (permanent), illegal number,
    // not on the channel's network (not a WhatsApp user).
    ("1050", Status::Bounced, Some(BounceKind::Hard)),
    ("1170", Status::Bounced, Some(BounceKind::Hard)),
    ("1190", Status::Bounced, Some(BounceKind::Hard)),
    ("1240", Status::Bounced, Some(BounceKind::Hard)),
    ("1300", Status::Bounced, Some(BounceKind::Hard)),
    // Absent subscriber (temporary), handset busy, network error, destination unreachable, TTL.
    ("1180", Status::Bounced, Some(BounceKind::Soft)),
    ("1220", Status::Bounced, Some(BounceKind::Soft)),
    ("1230", Status::Bounced, Some(BounceKind::Soft)),
    ("1260", Status::Bounced, Some(BounceKind::Soft)),
    ("1360", Status::Bounced, Some(BounceKind::Soft)),
    // Barred by the person.
    ("1200", Status::Dropped, None),
];

/// SMS API receipt error codes (`err-code`) by Vonage's documented meaning.
const SMS_ERRORS: &[(&str, Status, Option<BounceKind>)] = &[
    // Absent subscriber (permanent), destination unreachable, age restriction, blocked by carrier.
    ("3", Status::Bounced, Some(BounceKind::Hard)),
    ("12", Status::Bounced, Some(BounceKind::Hard)),
    ("13", Status::Bounced, Some(BounceKind::Hard)),
    ("14", Status::Bounced, Some(BounceKind::Hard)),
    // Absent subscriber (temporary), handset busy, network error, prepaid insufficient funds.
    ("2", Status::Bounced, Some(BounceKind::Soft)),
    ("7", Status::Bounced, Some(BounceKind::Soft)),
    ("8", Status::Bounced, Some(BounceKind::Soft)),
    ("15", Status::Bounced, Some(BounceKind::Soft)),
    // Call barred by the user; illegal number (the user opted out of this service).
    ("4", Status::Dropped, None),
    ("9", Status::Dropped, None),
];

/// Fields Vonage always writes as strings: anything else is not a Vonage webhook.
const STRING_FIELDS: &[&str] = &[
    "message_uuid",
    "message_type",
    "status",
    "channel",
    "to",
    "from",
    "timestamp",
    "text",
    "messageId",
    "msisdn",
    "err-code",
    "message-timestamp",
];

/// The body's parameters as one JSON object: a JSON body as it is, a form's fields as strings.
fn parameters(id: ProviderId, body: &[u8]) -> Result<(serde_json::Map<String, Value>, bool), WebhookError> {
    if body.trim_ascii_start().first() == Some(&b'{') {
        let StrictValue(value) = parse_json(id, &"body", body)?;
        return match value {
            Value::Object(object) => Ok((object, true)),
            _ => Err(WebhookError::malformed(id, "body is not a JSON object")),
        };
    }
    if std::str::from_utf8(body).is_err() {
        return Err(WebhookError::malformed(id, "body is neither JSON nor UTF-8 form data"));
    }
    let mut object = serde_json::Map::new();
    for (name, value) in form_urlencoded::parse(body) {
        if object.insert(name.clone().into_owned(), Value::String(value.into_owned())).is_some() {
            return Err(WebhookError::malformed(id, format!("form field `{name}` is given twice")));
        }
    }
    Ok((object, false))
}

fn by_code(table: &[(&str, Status, Option<BounceKind>)], code: &str) -> Option<(Status, Option<BounceKind>)> {
    table.iter().find(|(k, _, _)| *k == code).map(|(_, s, b)| (*s, *b))
}

impl Provider for Vonage {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add vonage --secret <signature secret>` (Dashboard → API Settings → *Signature secret*, method SHA-256 HMAC)",
            paste_url: "Messages API: your application's *Status URL* and *Inbound URL*. SMS API: API Settings → SMS settings, *Delivery receipts* and *Inbound SMS* webhooks, method POST or POST-JSON; add `?token=<signature secret>` unless Vonage signs your SMS webhooks",
            test_event: "send a message",
        }
    }

    fn example(&self) -> &'static str {
        "messages-rejected-permanent.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Vonage
    }

    fn authentication(&self) -> Authentication {
        Authentication::VonageSignature
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("Messages API submitted", "sms.sent (whatsapp.…, viber_service.…: the message's channel)"),
            ("Messages API delivered / read", "sms.delivered / sms.read"),
            ("Messages API rejected, error 1050, 1170, 1190, 1240, 1300", "sms.bounced (hard)"),
            ("Messages API rejected, error 1180, 1220, 1230, 1260, 1360", "sms.bounced (soft)"),
            ("Messages API rejected, error 1200 (barred by the person)", "sms.dropped"),
            ("Messages API rejected (other errors), undeliverable", "sms.failed"),
            ("Messages API inbound (message_type)", "sms.received (recipient: from, the sender)"),
            ("SMS API receipt accepted, buffered", "sms.sent"),
            ("SMS API receipt delivered", "sms.delivered"),
            ("SMS API receipt, err-code 3, 12, 13, 14", "sms.bounced (hard)"),
            ("SMS API receipt, err-code 2, 7, 8, 15; expired", "sms.bounced (soft)"),
            ("SMS API receipt, err-code 4 or 9 (barred or opted out by the person)", "sms.dropped"),
            ("SMS API receipt failed, rejected, undelivered, deleted (other codes)", "sms.bounced (undetermined)"),
            ("SMS API inbound (msisdn, text)", "sms.received (recipient: msisdn, the sender)"),
            ("inbound text that is an opt-out keyword", "sms.unsubscribed / sms.resubscribed"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let (p, json) = parameters(id, webhook.body)?;
        for field in STRING_FIELDS {
            if let Some(value) = p.get(*field)
                && !value.is_string()
            {
                return Err(WebhookError::malformed(id, format!("body field `{field}` is not a string")));
            }
        }
        let get = |name: &str| p.get(name).and_then(text);
        let raw = if json { raw_body(webhook) } else { Raw::from(Value::Object(p.clone()).to_string()) };
        let channel = get("channel")
            .map(|c| if c == "mms" { "sms".to_owned() } else { c })
            .and_then(|c| Channel::parse(&c))
            .unwrap_or(Channel::SMS);
        let (name, mut status, time, who, message_id, dedup);
        let mut data_reason = None;
        let mut bounce = None;
        let mut error_code = None;
        if let Some(uuid) = get("message_uuid") {
            message_id = Some(uuid.clone());
            time = get("timestamp").and_then(|t| Timestamp::parse_rfc3339(&t));
            if let Some(kind) = get("message_type") {
                let body = get("text");
                status = opt_out::by_keyword(body.as_deref().filter(|_| kind == "text")).unwrap_or(Status::Received);
                name = format!("inbound:{kind}");
                who = get("from");
                dedup = format!("inbound|{uuid}");
            } else {
                let state = get("status").unwrap_or_default();
                status = match state.as_str() {
                    "submitted" => Status::Sent,
                    "delivered" => Status::Delivered,
                    "read" => Status::Read,
                    "rejected" | "undeliverable" => Status::Failed,
                    _ => Status::Unknown,
                };
                let error = p.get("error");
                let code = error.and_then(|e| text(&e["title"]));
                data_reason = error.and_then(|e| text(&e["detail"]));
                if state == "rejected"
                    && let Some((mapped, kind)) = code.as_deref().and_then(|c| by_code(MESSAGES_ERRORS, c))
                {
                    status = mapped;
                    bounce = kind;
                }
                error_code = code;
                dedup = format!("status|{uuid}|{state}|{}", error_code.as_deref().unwrap_or_default());
                name = state;
                who = get("to");
            }
        } else if let (Some(message), Some(state)) = (get("messageId"), get("status")) {
            // An SMS API delivery receipt.
            let code = get("err-code").filter(|c| c != "0");
            status = match state.as_str() {
                "accepted" | "buffered" => Status::Sent,
                "delivered" => Status::Delivered,
                "expired" => Status::Bounced,
                "failed" | "rejected" | "undelivered" | "deleted" => Status::Bounced,
                _ => Status::Unknown,
            };
            if status == Status::Bounced {
                match code.as_deref().and_then(|c| by_code(SMS_ERRORS, c)) {
                    Some((mapped, kind)) => {
                        status = mapped;
                        bounce = kind;
                    }
                    None if state == "expired" => bounce = Some(BounceKind::Soft),
                    None => bounce = Some(BounceKind::Undetermined),
                }
            }
            dedup = format!("receipt|{message}|{state}|{}", code.as_deref().unwrap_or_default());
            error_code = code;
            message_id = Some(message);
            time = get("message-timestamp").and_then(|t| super::utc_time(&t));
            name = format!("receipt:{state}");
            who = get("msisdn");
        } else if let Some(message) = get("messageId").filter(|_| p.contains_key("msisdn")) {
            // An SMS API inbound message.
            status = opt_out::by_keyword(get("text").as_deref()).unwrap_or(Status::Received);
            dedup = format!("inbound-sms|{message}|{}", get("concat-part").unwrap_or_default());
            message_id = Some(message);
            time = get("message-timestamp").and_then(|t| super::utc_time(&t));
            name = "inbound-sms".to_owned();
            who = get("msisdn");
        } else {
            return Err(WebhookError::malformed(
                id,
                "body has neither `message_uuid` (Messages API) nor `messageId` (SMS API)",
            ));
        }
        let mut data = EventData::new(Some(channel.clone()), id.as_str(), &name);
        data.message_id = message_id;
        data.recipient = who.as_deref().map(recipient::international);
        data.reason = data_reason;
        if let Some(reference) = get("client_ref").or_else(|| get("client-ref")) {
            data.tags.insert("client_ref".into(), reference);
        }
        if let Some(code) = &error_code {
            data.details.insert("error_code".into(), Value::String(code.clone()));
        }
        data.bounce = bounce.map(|kind| Bounce {
            kind,
            code: error_code.clone(),
            subtype: None,
            diagnostic: data.reason.clone(),
            reason: None,
            provider_kind: None,
        });
        Ok(Normalized::events(vec![ctx.event(message_type(&channel, Some(status)), time, &dedup, data, &raw)]))
    }
}
