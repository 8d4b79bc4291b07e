//! Plivo message status callbacks and incoming messages: form-encoded, one message per request,
//! signed with `X-Plivo-Signature-V3` over the URL Plivo called, the sorted parameters and a
//! nonce (see [`crate::auth::plivo`]).
//!
//! A status callback names its message (`MessageUUID`), its `Status` and, for `failed` and
//! `undelivered`, Plivo's `ErrorCode`, read by its documented meaning: a number that cannot take
//! messages is a hard bounce, a handset that is off or unreachable a soft one, and 200 a recipient
//! who texted STOP (dropped). An incoming message has no `Status`: it is `received`, about its
//! sender (`From`), and `MessageIntent` (`optout`, `optin`) or, where Plivo sends none (short
//! codes, WhatsApp), an opt-out keyword as the whole text makes it an opt-out or opt-in.
//!
//! Plivo writes numbers in international format without the `+`, and times as
//! `2025-11-28 06:00:04.917520` without a zone, read as UTC.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, lookup, message_type, opt_out};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::webhook::{Webhook, WebhookError};

pub struct Plivo;

const STATUSES: &[(&str, Status)] = &[
    ("queued", Status::Sent),
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("undelivered", Status::Bounced),
    ("failed", Status::Failed),
    ("read", Status::Read),
];

/// `ErrorCode`s by Plivo's documented meaning; unlisted codes on an undelivered message are
/// undetermined bounces, and on a failed one send failures.
const ERROR_CODES: &[(&str, Status, Option<BounceKind>)] = &[
    // Invalid destination number, destination permanently unavailable, prohibited by carrier.
    ("50", Status::Bounced, Some(BounceKind::Hard)),
    ("70", Status::Bounced, Some(BounceKind::Hard)),
    ("100", Status::Bounced, Some(BounceKind::Hard)),
    // Network error, destination temporarily unavailable, no route, carrier spam filter.
    ("20", Status::Bounced, Some(BounceKind::Soft)),
    ("80", Status::Bounced, Some(BounceKind::Soft)),
    ("90", Status::Bounced, Some(BounceKind::Soft)),
    ("30", Status::Bounced, Some(BounceKind::Soft)),
    // The recipient texted STOP to this sender.
    ("200", Status::Dropped, None),
];

/// The form's parameters; a name given twice is refused (a signature over sorted parameters
/// cannot tell which one was meant).
fn parameters(id: ProviderId, body: &[u8]) -> Result<BTreeMap<String, String>, WebhookError> {
    if std::str::from_utf8(body).is_err() {
        return Err(WebhookError::malformed(id, "body is not UTF-8 form data"));
    }
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if params.insert(name.clone().into_owned(), value.into_owned()).is_some() {
            return Err(WebhookError::malformed(id, format!("form field `{name}` is given twice")));
        }
    }
    Ok(params)
}

/// Whether `text` is a UUID as Plivo writes message ids (`5f9cbe1c-cc1e-11f0-8f2a-0242ac110003`).
fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

impl Provider for Plivo {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add plivo --secret <auth token>` (Console → Overview → Auth Token); `--public-url <URL>` when a proxy or custom domain stands in front",
            paste_url: "as `url` on each message you send (status callbacks), and as the *Message URL* of the Plivo application on your number (incoming messages); use the printed URL (Plivo signs the URL it calls)",
            test_event: "send a message with that `url`",
        }
    }

    fn example(&self) -> &'static str {
        "undelivered-invalid-number.form"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Plivo
    }

    fn authentication(&self) -> Authentication {
        Authentication::PlivoV3
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("queued, sent", "sms.sent"),
            ("delivered", "sms.delivered"),
            ("undelivered, ErrorCode 50, 70 or 100", "sms.bounced (hard)"),
            ("undelivered, ErrorCode 20, 30, 80 or 90", "sms.bounced (soft)"),
            ("undelivered, other ErrorCode", "sms.bounced (undetermined)"),
            ("failed or undelivered, ErrorCode 200 (recipient opted out)", "sms.dropped"),
            ("failed", "sms.failed"),
            ("read (WhatsApp)", "whatsapp.read"),
            ("incoming message (no Status)", "sms.received (recipient: From, the sender)"),
            (
                "incoming message, MessageIntent optout / optin, or an opt-out keyword",
                "sms.unsubscribed / sms.resubscribed",
            ),
            ("(Type whatsapp)", "the same on channel whatsapp"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let params = parameters(id, webhook.body)?;
        let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let uuid =
            get("MessageUUID").ok_or_else(|| WebhookError::malformed(id, "form field `MessageUUID` is missing"))?;
        // Plivo signs the parameters' names and values run together, so the same signature
        // also covers them split differently: what every callback carries is required, in the
        // shape Plivo writes it.
        if !is_uuid(uuid) {
            return Err(WebhookError::malformed(id, format!("form field `MessageUUID` {uuid:?} is not a UUID")));
        }
        for field in ["From", "To", "Type"] {
            if get(field).is_none() {
                return Err(WebhookError::malformed(
                    id,
                    format!("form field `{field}` is missing (every Plivo message callback has it)"),
                ));
            }
        }
        let channel = match get("Type") {
            Some(kind) if kind.eq_ignore_ascii_case("whatsapp") => Channel::WHATSAPP,
            _ => Channel::SMS,
        };
        let status_name = get("Status");
        let inbound = status_name.is_none();
        let error_code = get("ErrorCode").filter(|c| *c != "000");
        if let Some(code) = error_code
            && !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(WebhookError::malformed(
                id,
                format!("form field `ErrorCode` {code:?} is not a Plivo error code (digits)"),
            ));
        }
        let name = status_name.unwrap_or("incoming");
        let mut data = EventData::new(Some(channel.clone()), id.as_str(), name);
        data.message_id = Some(uuid.to_owned());
        let mut status;
        let time;
        if inbound {
            let text = get("Text").or_else(|| get("Body"));
            status = match get("MessageIntent") {
                Some(intent) if intent.eq_ignore_ascii_case("optout") => Status::Unsubscribed,
                Some(intent) if intent.eq_ignore_ascii_case("optin") => Status::Resubscribed,
                Some(_) => Status::Received,
                None => opt_out::by_keyword(text).unwrap_or(Status::Received),
            };
            data.recipient = get("From").map(recipient::international);
            if let Some(ours) = get("To") {
                data.details.insert("to".into(), Value::String(ours.to_owned()));
            }
            time = None;
        } else {
            status = lookup(STATUSES, name).unwrap_or(Status::Unknown);
            data.recipient = get("To").map(recipient::international);
            if let Some(from) = get("From") {
                data.details.insert("from".into(), Value::String(from.to_owned()));
            }
            let when = match name {
                "queued" => get("QueuedTime"),
                "sent" => get("SentTime"),
                _ => get("DeliveryReportTime"),
            };
            time = when.or_else(|| get("MessageTime")).and_then(super::utc_time);
        }
        for (field, key) in [
            ("MessageIntent", "message_intent"),
            ("ConversationOrigin", "conversation_origin"),
            ("PowerpackUUID", "powerpack_uuid"),
        ] {
            if let Some(value) = get(field) {
                data.details.insert(key.into(), Value::String(value.to_owned()));
            }
        }
        if let Some(code) = error_code {
            data.details.insert("error_code".into(), Value::String(code.to_owned()));
            let meaning = ERROR_CODES.iter().find(|(k, _, _)| *k == code);
            match (status, meaning) {
                (Status::Bounced | Status::Failed, Some((_, Status::Dropped, _))) => status = Status::Dropped,
                (Status::Bounced, Some((_, mapped, kind))) => {
                    status = *mapped;
                    data.bounce = kind.map(|kind| Bounce {
                        kind,
                        code: Some(code.to_owned()),
                        subtype: None,
                        diagnostic: None,
                        reason: None,
                        provider_kind: None,
                    });
                }
                (Status::Bounced, None) => {
                    data.bounce = Some(Bounce {
                        kind: BounceKind::Undetermined,
                        code: Some(code.to_owned()),
                        subtype: None,
                        diagnostic: None,
                        reason: None,
                        provider_kind: None,
                    });
                }
                _ => {}
            }
        }
        let dedup = format!("{uuid}|{name}|{}", error_code.unwrap_or_default());
        // The parameters as a JSON object (a map of strings: writing it cannot fail).
        let object = params.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        let raw = Raw::from(Value::Object(object).to_string());
        Ok(Normalized::events(vec![ctx.event(message_type(&channel, Some(status)), time, &dedup, data, &raw)]))
    }
}
