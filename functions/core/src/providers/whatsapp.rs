//! Meta's WhatsApp Cloud API webhooks: `{"object": "whatsapp_business_account", "entry": [{"id",
//! "changes": [{"field", "value"}]}]}`, signed with `X-Hub-Signature-256` (`sha256=` and the hex
//! HMAC-SHA256 of the body under the app secret).
//!
//! A `messages` change carries `statuses[]` (the life of messages the business sent: `sent`,
//! `delivered`, `read`, `failed` with `errors[]`) and `messages[]` (what people sent the
//! business). Meta batches: one request can hold several entries, changes and statuses, each
//! becoming its own event. A `user_preferences` change says a person stopped or resumed
//! marketing messages: `whatsapp.unsubscribed` / `whatsapp.resubscribed` for that number (so does
//! the older `system` message of type `user_preference_changed`, and, as with SMS, an inbound
//! text that is one opt-out keyword). Changes of other fields (template status, account
//! updates, …) are kept as `whatsapp.unknown`.
//!
//! Before it posts, Meta checks the callback URL with a GET carrying `hub.mode=subscribe`,
//! `hub.verify_token` and `hub.challenge`, and expects the challenge echoed back when the token
//! is the one entered beside the URL. tidings derives that token from the app secret
//! ([`verify_token`]), so there is nothing more to store: `tidings sources add` shows it.
//!
//! WhatsApp ids (`wa_id`, `recipient_id`, `from`) are phone numbers without the `+`; they are
//! written in E.164. Failed messages are read by their error code: Meta's documented meaning
//! decides whether the number cannot take WhatsApp messages (a hard bounce), the message was
//! held back for now (soft), the person chose not to receive it (dropped), or sending failed.

use std::borrow::Cow;

use base64::Engine as _;
use ring::hmac;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, NormalizedEvent, Provider, ProviderId, Raw, Setup, lookup, message_type, opt_out,
};
use crate::auth::{self, Authentication, SourceAuth};
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Whatsapp;

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const STATUSES: &[(&str, Status)] =
    &[("sent", Status::Sent), ("delivered", Status::Delivered), ("read", Status::Read), ("failed", Status::Failed)];

/// What a failed status's error code means, from Meta's Cloud API error-code reference. Codes
/// not listed are send failures (`whatsapp.failed`): a template, media, parameter, payment or
/// rate problem of the business, not of the number.
const ERROR_CODES: &[(&str, Status, Option<BounceKind>)] = &[
    // Message undeliverable: the number is not on WhatsApp (or cannot take this message).
    ("131026", Status::Bounced, Some(BounceKind::Hard)),
    // Held back "to maintain healthy ecosystem engagement": may pass later.
    ("131049", Status::Bounced, Some(BounceKind::Soft)),
    // The person stopped marketing messages from this business.
    ("131050", Status::Dropped, None),
    // The number is part of an experiment that withholds marketing messages.
    ("130472", Status::Dropped, None),
];

/// The longest `hub.challenge` echoed back: Meta sends a number of about ten digits.
const MAX_CHALLENGE: usize = 128;

/// The verify token to enter beside the callback URL in Meta's dashboard, derived from the app
/// secret: 32 hex characters of HMAC-SHA256(app secret, a fixed label).
pub fn verify_token(app_secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, app_secret.as_bytes());
    let tag = hmac::sign(&key, b"tidings whatsapp verify token");
    hex::encode(&tag.as_ref()[..16])
}

impl Provider for Whatsapp {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add whatsapp --secret <app secret>` (Meta app dashboard → App settings → Basic → App secret); it prints the `verify_token`",
            paste_url: "App dashboard → WhatsApp → Configuration → Webhook: *Callback URL* and *Verify token* as printed, then subscribe to the `messages` field (and `user_preferences` for marketing opt-outs)",
            test_event: "*Test* beside the `messages` field, or send a message",
        }
    }

    fn example(&self) -> &'static str {
        "failed-undeliverable.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Whatsapp
    }

    fn authentication(&self) -> Authentication {
        Authentication::HmacSha256Hex { default_header: SIGNATURE_HEADER }
    }

    fn answers_get(&self) -> bool {
        true
    }

    fn handshake(&self, query: Option<&str>, auth: &SourceAuth) -> Result<String, WebhookError> {
        let id = self.id();
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "hub.mode" => mode = Some(value.into_owned()),
                "hub.verify_token" => token = Some(value.into_owned()),
                "hub.challenge" => challenge = Some(value.into_owned()),
                _ => {}
            }
        }
        if mode.as_deref() != Some("subscribe") {
            return Err(WebhookError::malformed(id, "query parameter `hub.mode` must be subscribe"));
        }
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or_else(|| WebhookError::malformed(id, "query parameter `hub.challenge` is missing"))?;
        if challenge.len() > MAX_CHALLENGE
            || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(WebhookError::malformed(
                id,
                format!("query parameter `hub.challenge` must be up to {MAX_CHALLENGE} letters, digits, - or _"),
            ));
        }
        let token =
            token.ok_or_else(|| WebhookError::unauthenticated(id, "query parameter `hub.verify_token` is missing"))?;
        let secrets = auth::secrets(id, self.authentication(), auth)?;
        let matches =
            secrets.iter().any(|s| auth::constant_time_eq(token.as_bytes(), verify_token(s.expose()).as_bytes()));
        if !matches {
            return Err(WebhookError::unauthenticated(
                id,
                "`hub.verify_token` is not this source's verify token (see `tidings sources list`)",
            ));
        }
        Ok(challenge)
    }

    fn setup_token(&self, secret: &str) -> Option<String> {
        Some(verify_token(secret))
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("statuses[] sent", "whatsapp.sent"),
            ("statuses[] delivered", "whatsapp.delivered"),
            ("statuses[] read", "whatsapp.read"),
            ("statuses[] failed, error 131026 (undeliverable)", "whatsapp.bounced (hard)"),
            ("statuses[] failed, error 131049 (held for ecosystem engagement)", "whatsapp.bounced (soft)"),
            ("statuses[] failed, error 131050 or 130472 (marketing opted out or withheld)", "whatsapp.dropped"),
            ("statuses[] failed, any other error", "whatsapp.failed"),
            ("messages[]", "whatsapp.received (recipient: from, the sender)"),
            ("user_preferences stop / resume", "whatsapp.unsubscribed / whatsapp.resubscribed"),
            (
                "messages[] of type system, user_preference_changed stop / resume",
                "whatsapp.unsubscribed / whatsapp.resubscribed",
            ),
            (
                "messages[] of type text whose body is an opt-out keyword",
                "whatsapp.unsubscribed / whatsapp.resubscribed",
            ),
            ("any other status, or a change of another field", "whatsapp.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let body: Body<'a> = parse_json(id, &"body", webhook.body)?;
        if let Some(object) = &body.object
            && object != "whatsapp_business_account"
        {
            return Err(WebhookError::malformed(
                id,
                format!("body field `object` is {object:?}, not whatsapp_business_account"),
            ));
        }
        let mut events = Vec::new();
        for (e, entry) in body.entry.iter().enumerate() {
            for (c, change) in entry.changes.iter().enumerate() {
                let at = format!("entry[{e}].changes[{c}].value");
                if change.field == "user_preferences" {
                    let value: Preferences<'a> = parse_json(id, &at, change.value.get().as_bytes())?;
                    for (p, raw) in value.user_preferences.iter().enumerate() {
                        let preference: Preference =
                            parse_json(id, &format_args!("{at}.user_preferences[{p}]"), raw.get().as_bytes())?;
                        events.push(preference_event(ctx, preference, value.metadata.as_ref(), raw));
                    }
                    continue;
                }
                if change.field != "messages" {
                    events.push(other_change(ctx, entry.id.as_deref(), &change.field, change.value)?);
                    continue;
                }
                let value: ChangeValue<'a> = parse_json(id, &at, change.value.get().as_bytes())?;
                let business = value.metadata.as_ref();
                for (s, raw) in value.statuses.iter().enumerate() {
                    let status: StatusRecord<'_> =
                        parse_json(id, &format_args!("{at}.statuses[{s}]"), raw.get().as_bytes())?;
                    events.push(status_event(ctx, status, business, raw));
                }
                for (m, raw) in value.messages.iter().enumerate() {
                    let message: Inbound<'_> =
                        parse_json(id, &format_args!("{at}.messages[{m}]"), raw.get().as_bytes())?;
                    events.push(inbound_event(ctx, message, business, raw));
                }
                if value.statuses.is_empty() && value.messages.is_empty() {
                    events.push(other_change(ctx, entry.id.as_deref(), &change.field, change.value)?);
                }
            }
        }
        Ok(Normalized::events(events))
    }
}

/// A WhatsApp id (digits, no `+`) as an E.164 number.
fn wa_number(wa_id: &str) -> String {
    recipient::international(wa_id)
}

fn business_details(data: &mut EventData, business: Option<&Metadata>) {
    if let Some(m) = business {
        if let Some(number) = &m.phone_number_id {
            data.details.insert("phone_number_id".into(), Value::String(number.clone()));
        }
        if let Some(number) = &m.display_phone_number {
            data.details.insert("display_phone_number".into(), Value::String(number.clone()));
        }
    }
}

fn status_event<'a>(
    ctx: &NormalizeContext<'_>,
    s: StatusRecord<'_>,
    business: Option<&Metadata>,
    raw: &'a RawValue,
) -> NormalizedEvent<'a> {
    let id = ProviderId::Whatsapp;
    let name = s.status.as_ref();
    let mut status = lookup(STATUSES, name);
    let mut data = EventData::new(Some(Channel::WHATSAPP), id.as_str(), name);
    data.message_id = s.id.as_deref().map(str::to_owned);
    data.recipient = s.recipient_id.as_deref().map(wa_number);
    business_details(&mut data, business);
    if let Some(opaque) = &s.biz_opaque_callback_data {
        data.tags.insert("biz_opaque_callback_data".into(), opaque.to_string());
    }
    if let Some(conversation) = &s.conversation {
        if let Some(cid) = &conversation.id {
            data.details.insert("conversation_id".into(), Value::String(cid.clone()));
        }
        if let Some(kind) = conversation.origin.as_ref().and_then(|o| o.kind.as_ref()) {
            data.details.insert("conversation_origin".into(), Value::String(kind.clone()));
        }
    }
    if let Some(category) = s.pricing.as_ref().and_then(|p| p.category.as_ref()) {
        data.details.insert("pricing_category".into(), Value::String(category.clone()));
    }
    let error = s.errors.first();
    let code = error.and_then(|e| e.code.clone());
    if status == Some(Status::Failed)
        && let Some(error) = error
    {
        let detail = error.error_data.as_ref().and_then(|d| d.details.as_deref());
        data.reason = super::first_present([error.title.as_deref(), error.message.as_deref()]).map(str::to_owned);
        let meaning = code.as_deref().and_then(|c| ERROR_CODES.iter().find(|(k, _, _)| *k == c));
        if let Some((_, mapped, kind)) = meaning {
            status = Some(*mapped);
            data.bounce = kind.map(|kind| Bounce {
                kind,
                code: code.clone(),
                subtype: error.title.as_deref().map(str::to_owned),
                diagnostic: detail.or(error.message.as_deref()).map(str::to_owned),
                reason: None,
                provider_kind: None,
            });
        }
        if let Some(code) = &code {
            data.details.insert("error_code".into(), Value::String(code.clone()));
        }
        if let Some(detail) = detail {
            data.details.insert("error_details".into(), Value::String(detail.to_owned()));
        }
    }
    let time = s.timestamp.as_deref().and_then(Timestamp::from_unix_text);
    let dedup = format!(
        "status|{}|{name}|{}",
        data.message_id.as_deref().unwrap_or_default(),
        code.as_deref().unwrap_or_default()
    );
    ctx.event(message_type(&Channel::WHATSAPP, status), time, &dedup, data, &Raw::Borrowed(raw.get()))
}

fn inbound_event<'a>(
    ctx: &NormalizeContext<'_>,
    m: Inbound<'_>,
    business: Option<&Metadata>,
    raw: &'a RawValue,
) -> NormalizedEvent<'a> {
    let id = ProviderId::Whatsapp;
    let kind = m.kind.as_deref().unwrap_or("message");
    let text = m.text.as_ref().and_then(|t| t.body.as_deref());
    let preference = m.system.as_ref().filter(|s| s.kind.as_deref() == Some("user_preference_changed"));
    let status = match preference.and_then(|s| s.marketing.as_deref()) {
        Some("stop") => Status::Unsubscribed,
        Some("resume") => Status::Resubscribed,
        _ => opt_out::by_keyword(text.filter(|_| kind == "text")).unwrap_or(Status::Received),
    };
    let mut data = EventData::new(Some(Channel::WHATSAPP), id.as_str(), &format!("message:{kind}"));
    data.message_id = m.id.as_deref().map(str::to_owned);
    data.recipient = m.from.as_deref().map(wa_number);
    business_details(&mut data, business);
    data.details.insert("message_type".into(), Value::String(kind.to_owned()));
    let time = m.timestamp.as_deref().and_then(Timestamp::from_unix_text);
    let dedup = format!("message|{}", data.message_id.as_deref().unwrap_or_default());
    ctx.event(message_type(&Channel::WHATSAPP, Some(status)), time, &dedup, data, &Raw::Borrowed(raw.get()))
}

/// A person stopping (`stop`) or resuming (`resume`) a category of messages.
fn preference_event<'a>(
    ctx: &NormalizeContext<'_>,
    p: Preference,
    business: Option<&Metadata>,
    raw: &'a RawValue,
) -> NormalizedEvent<'a> {
    let id = ProviderId::Whatsapp;
    let value = p.value.as_deref().unwrap_or_default();
    let status = match value {
        "stop" => Some(Status::Unsubscribed),
        "resume" => Some(Status::Resubscribed),
        _ => None,
    };
    let mut data = EventData::new(Some(Channel::WHATSAPP), id.as_str(), &format!("user_preferences:{value}"));
    data.recipient = p.wa_id.as_deref().map(wa_number);
    data.reason = p.detail.clone();
    business_details(&mut data, business);
    if let Some(category) = &p.category {
        data.details.insert("category".into(), Value::String(category.clone()));
    }
    let time = p.timestamp.as_deref().and_then(Timestamp::from_unix_text);
    let dedup = format!(
        "preference|{}|{value}|{}|{}",
        p.wa_id.as_deref().unwrap_or_default(),
        p.category.as_deref().unwrap_or_default(),
        p.timestamp.as_deref().unwrap_or_default()
    );
    ctx.event(message_type(&Channel::WHATSAPP, status), time, &dedup, data, &Raw::Borrowed(raw.get()))
}

/// A change tidings has no mapping for, kept whole as `whatsapp.unknown`.
fn other_change<'a>(
    ctx: &NormalizeContext<'_>,
    account: Option<&str>,
    field: &str,
    value: &'a RawValue,
) -> Result<NormalizedEvent<'a>, WebhookError> {
    let id = ProviderId::Whatsapp;
    let mut data = EventData::new(Some(Channel::WHATSAPP), id.as_str(), field);
    if let Some(account) = account {
        data.details.insert("business_account_id".into(), Value::String(account.to_owned()));
    }
    // No id of its own: the change's content identifies it.
    let digest = ring::digest::digest(&ring::digest::SHA256, value.get().as_bytes());
    let dedup = format!(
        "change|{}|{field}|{}",
        account.unwrap_or_default(),
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    Ok(ctx.event(message_type(&Channel::WHATSAPP, None), None, &dedup, data, &Raw::Borrowed(value.get())))
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    object: Option<String>,
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default, borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    field: String,
    #[serde(borrow)]
    value: &'a RawValue,
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, borrow)]
    statuses: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Preferences<'a> {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, borrow)]
    user_preferences: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Preference {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    wa_id: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct StatusRecord<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    timestamp: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    recipient_id: Option<String>,
    #[serde(default, borrow)]
    biz_opaque_callback_data: Option<Cow<'a, str>>,
    #[serde(default)]
    conversation: Option<Conversation>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    errors: Vec<ErrorRecord>,
}

#[derive(Deserialize)]
struct Conversation {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    origin: Option<Origin>,
}

#[derive(Deserialize)]
struct Origin {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Pricing {
    #[serde(default)]
    category: Option<String>,
}

#[derive(Deserialize)]
struct ErrorRecord {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    timestamp: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    system: Option<System>,
}

#[derive(Deserialize)]
struct System {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    marketing: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    body: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> SourceAuth {
        SourceAuth::with_secret("0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn the_verification_request_echoes_the_challenge_for_the_right_token_only() {
        let token = verify_token("0123456789abcdef0123456789abcdef");
        let query = format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444");
        assert_eq!(Whatsapp.handshake(Some(&query), &auth()).unwrap(), "1158201444");
        let wrong = "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444";
        assert_eq!(Whatsapp.handshake(Some(wrong), &auth()).unwrap_err().status(), 401);
        let script = format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=%3Cscript%3E");
        assert_eq!(Whatsapp.handshake(Some(&script), &auth()).unwrap_err().status(), 400);
        let other_mode = format!("hub.mode=unsubscribe&hub.verify_token={token}&hub.challenge=1");
        assert!(Whatsapp.handshake(Some(&other_mode), &auth()).is_err());
        assert!(Whatsapp.handshake(None, &auth()).is_err());
    }

    #[test]
    fn whatsapp_ids_are_written_in_e164() {
        assert_eq!(wa_number("16505551234"), "+16505551234");
        assert_eq!(wa_number("+1 650 555 1234"), "+16505551234");
    }
}
