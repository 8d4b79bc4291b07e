//! Twilio Messaging status callbacks: form-encoded parameters, signed with `X-Twilio-Signature`.
//! Callbacks carry no event time and arrive out of order (a `sent` after its `delivered`); the
//! message state lattice copes with the order, and the event time is when tidings received it.
//! Query parameters on the callback URL (`?userId=42`) are how senders correlate a message with
//! their own records, so they become tags (`token`, a tidings credential, and Twilio's
//! `bodySHA256` excepted). A JSON body (Twilio signs those by a hash in the URL) is read as the
//! same parameters: each member of one flat object.
//!
//! Inbound messages (`received`) are about the person who sent them, so their recipient is
//! `From`. One that opts out or back in becomes `unsubscribed` or `resubscribed` on its channel,
//! which updates the workspace's suppression list for that number: Twilio says so in
//! `OptOutType` (`STOP`, `START`, `HELP`; sent with Advanced Opt-Out, custom keywords
//! included), and without it a body that is one of Twilio's default keywords, whole, in any
//! case, counts as Twilio itself counts it.

use std::collections::BTreeMap;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Raw, Setup, lookup, message_type, opt_out};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::webhook::{Webhook, WebhookError};

pub struct Twilio;

const STATUSES: &[(&str, Status)] = &[
    ("queued", Status::Sent),
    ("accepted", Status::Sent),
    ("scheduled", Status::Sent),
    ("sending", Status::Sent),
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("undelivered", Status::Bounced),
    ("failed", Status::Failed),
    ("read", Status::Read),
    ("canceled", Status::Dropped),
    ("received", Status::Received),
];

/// Whether an inbound message opts its sender out (`Unsubscribed`) or back in
/// (`Resubscribed`): Twilio's `OptOutType` when it sent one, else the keyword rule.
fn opt_change(opt_out_type: Option<&str>, body: Option<&str>) -> Option<Status> {
    match opt_out_type {
        Some(kind) if kind.eq_ignore_ascii_case("STOP") => Some(Status::Unsubscribed),
        Some(kind) if kind.eq_ignore_ascii_case("START") => Some(Status::Resubscribed),
        Some(_) => None,
        None => opt_out::by_keyword(body),
    }
}

/// Error codes on `undelivered` that mean the number itself is bad (a hard bounce); other
/// carrier rejections may pass on a later attempt.
const PERMANENT_ERRORS: &[&str] = &["21211", "21214", "21610", "21614", "30005", "30006"];

/// The callback's parameters: form fields, or the members of a JSON object (strings as they
/// are, other values as their JSON text, `null` as absent).
fn parameters(body: &[u8]) -> Result<BTreeMap<String, String>, &'static str> {
    if body.trim_ascii_start().first() == Some(&b'{') {
        let object: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|_| "body starts like JSON but is not one JSON object")?;
        return Ok(object
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some((name, text)),
                other => Some((name, other.to_string())),
            })
            .collect());
    }
    if std::str::from_utf8(body).is_err() {
        return Err("body is not UTF-8 form data");
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

impl Provider for Twilio {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add twilio --secret <auth token>` (Console → Account → API keys & tokens); `--public-url <URL>` when a proxy or custom domain stands in front",
            paste_url: "as `StatusCallback` on each message you send, or on the Messaging Service's *Delivery Status Callback*; use the printed URL (Twilio signs the URL it calls); add your own query parameters (`?userId=42&journeyId=j1`): they are signed with it and become the event's tags",
            test_event: "send an SMS with that callback",
        }
    }

    fn example(&self) -> &'static str {
        "undelivered.form"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Twilio
    }

    fn authentication(&self) -> Authentication {
        Authentication::TwilioHmacSha1
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("queued, accepted, scheduled, sending, sent", "sms.sent"),
            ("delivered", "sms.delivered"),
            ("undelivered", "sms.bounced (hard for unreachable/invalid numbers, else soft; ErrorCode kept)"),
            ("failed", "sms.failed"),
            ("read", "sms.read"),
            ("canceled", "sms.dropped"),
            ("received", "sms.received (recipient: From, the sender)"),
            (
                "received with OptOutType STOP, or a body of STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE or OPTOUT",
                "sms.unsubscribed (suppresses From)",
            ),
            ("received with OptOutType START, or a body of START, YES or UNSTOP", "sms.resubscribed"),
            ("(From or To starting whatsapp:)", "the same statuses on channel whatsapp"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let params = parameters(webhook.body).map_err(|why| WebhookError::malformed(id, why))?;
        let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let status_name = get("MessageStatus").or_else(|| get("SmsStatus")).ok_or_else(|| {
            WebhookError::malformed(id, "form field `MessageStatus` is missing (is this a Messaging status callback?)")
        })?;
        let sid = get("MessageSid")
            .or_else(|| get("SmsSid"))
            .ok_or_else(|| WebhookError::malformed(id, "form field `MessageSid` is missing"))?;
        // Twilio signs the concatenation of names and values, so the same signature also covers
        // the parameters split differently (`To=+1555&X=1` as `To=+1555X&=1`…): what a status
        // callback always carries is required, and its error code must be one.
        for field in ["AccountSid", "From", "To"] {
            if get(field).is_none() {
                return Err(WebhookError::malformed(
                    id,
                    format!("form field `{field}` is missing (every Twilio status callback has it)"),
                ));
            }
        }
        if let Some(code) = params.get("ErrorCode").map(String::as_str).filter(|c| !c.is_empty())
            && !code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(WebhookError::malformed(
                id,
                format!("form field `ErrorCode` {code:?} is not a Twilio error code (digits)"),
            ));
        }
        let whatsapp = [get("From"), get("To")]
            .into_iter()
            .flatten()
            .any(|v| crate::auth::strip_prefix_ignore_case(v, "whatsapp:").is_some());
        let channel = if whatsapp { Channel::WHATSAPP } else { Channel::SMS };
        let mut status = lookup(STATUSES, status_name);
        let inbound = status == Some(Status::Received);
        if inbound && let Some(change) = opt_change(get("OptOutType"), get("Body")) {
            status = Some(change);
        }
        let error_code = get("ErrorCode");
        let mut data = EventData::new(Some(channel.clone()), id.as_str(), status_name);
        data.message_id = Some(sid.to_owned());
        data.recipient = if inbound { get("From") } else { get("To") }.map(recipient::phone);
        data.reason = get("ErrorMessage").map(str::to_owned);
        if let Some(query) = webhook.query {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                if k != "token" && k != crate::auth::twilio::BODY_HASH_PARAMETER {
                    data.tags.insert(k.into_owned(), v.into_owned());
                }
            }
        }
        let counterpart = if inbound { ("To", "to") } else { ("From", "from") };
        for (field, key) in [
            ("AccountSid", "account_sid"),
            ("MessagingServiceSid", "messaging_service_sid"),
            counterpart,
            ("OptOutType", "opt_out_type"),
        ] {
            if let Some(v) = get(field) {
                data.details.insert(key.into(), v.into());
            }
        }
        match status {
            Some(Status::Bounced) => {
                let kind = match error_code {
                    Some(code) if PERMANENT_ERRORS.contains(&code) => BounceKind::Hard,
                    Some(_) => BounceKind::Soft,
                    None => BounceKind::Undetermined,
                };
                data.bounce = Some(Bounce {
                    kind,
                    code: error_code.map(str::to_owned),
                    subtype: None,
                    diagnostic: data.reason.clone(),
                    reason: None,
                    provider_kind: None,
                });
            }
            Some(Status::Failed) => {
                if let Some(code) = error_code {
                    data.details.insert("error_code".into(), code.into());
                }
            }
            _ => {}
        }
        let dedup = format!("{sid}|{status_name}|{}", error_code.unwrap_or_default());
        // The parameters as a JSON object (a map of strings: writing it cannot fail).
        let object = params.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
        let raw = Raw::from(serde_json::Value::Object(object).to_string());
        Ok(Normalized::events(vec![ctx.event(message_type(&channel, status), None, &dedup, data, &raw)]))
    }
}
