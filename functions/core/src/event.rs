//! The canonical event: one CloudEvents 1.0 JSON object (structured mode) for one thing that
//! happened to one message for one recipient, whatever provider reported it.
//!
//! ```json
//! {"specversion":"1.0","id":"evt_…","source":"tidings/sendgrid","type":"email.bounced",
//!  "time":"2025-11-28T06:29:57Z","subject":"<provider message id>",
//!  "datacontenttype":"application/json","workspaceid":"ws_default",
//!  "data":{"channel":"email","provider":"sendgrid","provider_event_type":"bounce", …}}
//! ```
//!
//! The JSON Schema generated from these types is checked in at
//! `functions/core/schema/canonical-event.schema.json` (a test keeps it current).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use ring::digest;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::timestamp::Timestamp;

/// The `data.provider` (and source) of tidings' own operational events.
pub const OPERATIONAL_PROVIDER: &str = "tidings";

/// A canonical delivery event, serialised as a CloudEvents 1.0 structured-mode JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanonicalEvent {
    /// CloudEvents version: always `"1.0"`.
    pub specversion: SpecVersion,
    /// Deterministic id (`evt_` + 32 hex digits): a hash of workspace, provider, the provider's
    /// dedup key and the recipient. A provider's retry of the same webhook yields the same id,
    /// so it is stored once and delivered with the same `webhook-id`.
    pub id: EventId,
    /// `tidings/<provider>`.
    pub source: String,
    /// `<channel>.<status>` for message events (`email.bounced`, `sms.delivered`); platform
    /// events that are not about one message keep their own dotted name (`contact.created`).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the provider says the event happened (RFC 3339, UTC). Providers that send no event
    /// time (Twilio) get the time tidings received the webhook.
    pub time: Timestamp,
    /// The provider's message id, when the event is about a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Always `"application/json"`.
    pub datacontenttype: DataContentType,
    /// The workspace that owns the source the webhook arrived on. Never taken from the payload.
    pub workspaceid: String,
    /// The normalized event body.
    pub data: EventData,
}

/// The `data` member of a canonical event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventData {
    /// `email`, `sms`, `whatsapp`, … ; `null` for platform events that are not about a message.
    #[schemars(required, schema_with = "nullable::<Channel>")]
    pub channel: Option<Channel>,
    /// Provider id (`ses`, `sendgrid`, …).
    pub provider: String,
    /// The provider's own name for what happened (`bounce`, `Delivery`, `delivery.opened`), kept
    /// verbatim so nothing is lost when the canonical type is `unknown`.
    pub provider_event_type: String,
    /// The provider's id for this event, or `null` when the provider has none.
    #[schemars(required, schema_with = "nullable::<String>")]
    pub provider_event_id: Option<String>,
    /// The provider's id for the message this event is about.
    #[schemars(required, schema_with = "nullable::<String>")]
    pub message_id: Option<String>,
    /// Who the message was for: an email address (trimmed, lowercased) or a phone number in
    /// E.164 (`+15558675310`) where it can be determined.
    #[schemars(required, schema_with = "nullable::<String>")]
    pub recipient: Option<String>,
    /// Key/value metadata the sender attached to the message (SES message tags, SendGrid custom
    /// args, Postmark metadata, Mailgun user-variables, …). Non-string values are kept as their
    /// JSON text.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Plain labels the sender attached (Mailgun tags, Postmark `Tag`, SendGrid categories, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Bounce details, on `*.bounced` (and on deferrals and drops where the provider gives them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce: Option<Bounce>,
    /// The link that was clicked, on `*.clicked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// On `*.opened`: `true` when the provider says the open was made by a machine or a privacy
    /// proxy (Apple Mail Privacy Protection and the like), not by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_open: Option<bool>,
    /// On failures: whether the provider says the failure is worth retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// A human-readable reason the provider gave (drop reason, failure message, delay type…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On email events: the recipient's mailbox provider (`gmail`, `microsoft`, `yahoo`,
    /// `apple`, …, `other`), from the recipient's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_provider: Option<String>,
    /// On email events: the domain of the sender's address, where the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_domain: Option<String>,
    /// User agent of the client that opened or clicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// IP address of the client that opened or clicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `true` when the provider marks the event as a simulation or test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<bool>,
    /// Provider details that have no field of their own (SES `delayType`, a segment slug, the
    /// body of a platform event, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
    /// On deliveries (never stored): where this event's message stands for its recipient once
    /// the event is folded in, as `GET /api/messages/{id}` shows a message state (`status`,
    /// `progress`, `failure`, `events`, `opens`, `clicks`, first and last times, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Map<String, serde_json::Value>>,
    /// On deliveries, with `state`: the number of events folded into it, which grows with every
    /// event of the message and recipient. A consumer that keeps the state of the highest version
    /// it has seen ends at the true state whatever order deliveries arrive in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<u64>,
    /// When tidings received the webhook (RFC 3339, UTC).
    pub received_at: Timestamp,
}

/// The schema of a member that is always present and may be `null` (an `Option` written as
/// `null` when it is `None`). `#[schemars(required)]` alone keeps the inner type's schema, which
/// a validator then holds against every `null` tidings sends.
fn nullable<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<Option<T>>()
}

impl EventData {
    /// An empty body for `provider`'s event `provider_event_type`; providers fill in the rest.
    pub fn new(channel: Option<Channel>, provider: &str, provider_event_type: &str) -> Self {
        EventData {
            channel,
            provider: provider.to_owned(),
            provider_event_type: provider_event_type.to_owned(),
            provider_event_id: None,
            message_id: None,
            recipient: None,
            tags: BTreeMap::new(),
            labels: Vec::new(),
            bounce: None,
            url: None,
            privacy_open: None,
            retryable: None,
            reason: None,
            mailbox_provider: None,
            sending_domain: None,
            user_agent: None,
            ip: None,
            test: None,
            details: BTreeMap::new(),
            state: None,
            state_version: None,
            received_at: Timestamp::UNIX_EPOCH,
        }
    }
}

/// Bounce details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bounce {
    /// `hard` (the address is bad: stop sending), `soft` (temporary or message-specific), or
    /// `undetermined`.
    pub kind: BounceKind,
    /// The SMTP or provider bounce code (`550`, `5.1.1`, a SparkPost bounce class…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The provider's finer classification (`General`, `Suppressed`, `Mailbox Full`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The remote server's diagnostic text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// Why it failed, on email events (`mailbox_unknown`, `reputation_block`, …): read by tidings
    /// from the diagnostic text, the enhanced status code and the provider's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<BounceReason>,
    /// The provider's own kind, where tidings' judgement in `kind` differs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_kind: Option<BounceKind>,
}

impl Bounce {
    pub fn of_kind(kind: BounceKind) -> Self {
        Bounce { kind, code: None, subtype: None, diagnostic: None, reason: None, provider_kind: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BounceKind {
    Hard,
    Soft,
    Undetermined,
}

impl BounceKind {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Undetermined => "undetermined",
        }
    }
}

/// Why a message bounced, was deferred, dropped or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BounceReason {
    /// The address does not exist at the recipient's domain.
    MailboxUnknown,
    /// The mailbox exists but is disabled, suspended or inactive.
    MailboxDisabled,
    /// The mailbox is over its quota.
    MailboxFull,
    /// The recipient's domain does not exist or accepts no mail.
    DomainUnknown,
    /// The message is larger than the receiving server takes.
    MessageTooLarge,
    /// The message's content was refused: spam, a virus, a link or attachment.
    ContentRejected,
    /// The sending IP or domain is blocklisted or has a poor reputation.
    ReputationBlock,
    /// SPF, DKIM, DMARC or reverse DNS did not pass.
    AuthenticationFailed,
    /// Refused by a rule of the receiving side that is not about content or reputation:
    /// relaying denied, the recipient takes mail from some senders only, the provider's own
    /// suppression list.
    PolicyRejected,
    /// Too many messages, connections or recipients at once.
    RateLimited,
    /// A transient failure with no more specific cause: timeouts, greylisting, a busy server.
    TemporaryFailure,
    /// None of the above could be told.
    Other,
}

impl BounceReason {
    pub const ALL: [BounceReason; 12] = [
        BounceReason::MailboxUnknown,
        BounceReason::MailboxDisabled,
        BounceReason::MailboxFull,
        BounceReason::DomainUnknown,
        BounceReason::MessageTooLarge,
        BounceReason::ContentRejected,
        BounceReason::ReputationBlock,
        BounceReason::AuthenticationFailed,
        BounceReason::PolicyRejected,
        BounceReason::RateLimited,
        BounceReason::TemporaryFailure,
        BounceReason::Other,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            BounceReason::MailboxUnknown => "mailbox_unknown",
            BounceReason::MailboxDisabled => "mailbox_disabled",
            BounceReason::MailboxFull => "mailbox_full",
            BounceReason::DomainUnknown => "domain_unknown",
            BounceReason::MessageTooLarge => "message_too_large",
            BounceReason::ContentRejected => "content_rejected",
            BounceReason::ReputationBlock => "reputation_block",
            BounceReason::AuthenticationFailed => "authentication_failed",
            BounceReason::PolicyRejected => "policy_rejected",
            BounceReason::RateLimited => "rate_limited",
            BounceReason::TemporaryFailure => "temporary_failure",
            BounceReason::Other => "other",
        }
    }

    /// Whether the reason is about the address itself (so a permanent refusal means: stop
    /// sending to it), rather than about this message, the sender or the moment.
    pub const fn is_about_the_address(self) -> bool {
        matches!(self, BounceReason::MailboxUnknown | BounceReason::MailboxDisabled | BounceReason::DomainUnknown)
    }
}

impl fmt::Display for BounceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BounceReason {
    type Err = crate::invalid::Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BounceReason::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            crate::invalid::Invalid::new("reason", format!("{s:?} is not a bounce reason (mailbox_unknown, …, other)"))
        })
    }
}

/// What happened to a message. Combined with a channel it makes the event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted or handed off by the provider.
    Sent,
    /// Accepted by the recipient's server or handset.
    Delivered,
    /// Temporarily delayed; the provider is still trying.
    Deferred,
    /// Rejected by the recipient's side; see `data.bounce.kind`.
    Bounced,
    /// The provider refused to attempt delivery (suppressed, rejected, invalid).
    Dropped,
    /// The address was put on a suppression list.
    Suppressed,
    /// A send error that is not a bounce.
    Failed,
    Opened,
    Clicked,
    Complained,
    Unsubscribed,
    Resubscribed,
    Received,
    Replied,
    Read,
    /// A provider event tidings has no mapping for; `data.provider_event_type` says which.
    Unknown,
    /// A retryable send failure that tidings will retry (SES resend).
    RetryScheduled,
    /// A send that failed retryably on every attempt.
    RetriesExhausted,
}

impl Status {
    pub const ALL: [Status; 18] = [
        Status::Sent,
        Status::Delivered,
        Status::Deferred,
        Status::Bounced,
        Status::Dropped,
        Status::Suppressed,
        Status::Failed,
        Status::Opened,
        Status::Clicked,
        Status::Complained,
        Status::Unsubscribed,
        Status::Resubscribed,
        Status::Received,
        Status::Replied,
        Status::Read,
        Status::Unknown,
        Status::RetryScheduled,
        Status::RetriesExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
            Status::Dropped => "dropped",
            Status::Suppressed => "suppressed",
            Status::Failed => "failed",
            Status::Opened => "opened",
            Status::Clicked => "clicked",
            Status::Complained => "complained",
            Status::Unsubscribed => "unsubscribed",
            Status::Resubscribed => "resubscribed",
            Status::Received => "received",
            Status::Replied => "replied",
            Status::Read => "read",
            Status::Unknown => "unknown",
            Status::RetryScheduled => "retry_scheduled",
            Status::RetriesExhausted => "retries_exhausted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message channel: a lowercase token (`email`, `sms`, `whatsapp`, `rcs`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Cow<'static, str>);

impl Channel {
    pub const EMAIL: Channel = Channel(Cow::Borrowed("email"));
    pub const SMS: Channel = Channel(Cow::Borrowed("sms"));
    pub const WHATSAPP: Channel = Channel(Cow::Borrowed("whatsapp"));

    /// A channel from a provider's own word for it; `None` when the word cannot be one
    /// segment of a dotted event type.
    pub fn parse(s: &str) -> Option<Channel> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "email" | "e-mail" | "mail" => Some(Channel::EMAIL),
            "sms" | "text" => Some(Channel::SMS),
            "whatsapp" => Some(Channel::WHATSAPP),
            _ if is_type_segment(&lower) => Some(Channel(Cow::Owned(lower))),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        Channel::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid channel {s:?}")))
    }
}

impl JsonSchema for Channel {
    fn schema_name() -> Cow<'static, str> {
        "Channel".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SEGMENT_PATTERN,
            "examples": ["email", "sms", "whatsapp"]
        })
    }
}

const SEGMENT_PATTERN: &str = "^[a-z0-9_-]{1,32}$";

/// One segment of a dotted event type: 1 to 32 of `[a-z0-9_-]`. No dots, no wildcards, so
/// subscription patterns (`email.*`, `*.bounced`) stay unambiguous.
fn is_type_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The CloudEvents `type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `<channel>.<status>`: something that happened to one message.
    Message { channel: Channel, status: Status },
    /// A platform event that is not about one message (`contact.created`, `segment.entered`),
    /// or an operational event of tidings itself (`subscription.disabled`).
    Platform(String),
}

impl EventType {
    pub fn message(channel: Channel, status: Status) -> Self {
        EventType::Message { channel, status }
    }

    /// A platform event type from dotted segments; `None` unless every segment is a valid
    /// lowercase token and there are at least two.
    pub fn platform(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let mut segments = 0;
        for segment in lower.split('.') {
            if !is_type_segment(segment) {
                return None;
            }
            segments += 1;
        }
        (segments >= 2).then_some(EventType::Platform(lower))
    }

    pub fn status(&self) -> Option<Status> {
        match self {
            EventType::Message { status, .. } => Some(*status),
            EventType::Platform(_) => None,
        }
    }

    /// Parses the text form. A known status after the first dot makes a message event;
    /// anything else that is well-formed is a platform event.
    pub fn parse(s: &str) -> Option<EventType> {
        if let Some((channel, status)) = s.split_once('.')
            && is_type_segment(channel)
            && let Some(status) = Status::parse(status)
        {
            let channel = Channel(Cow::Owned(channel.to_owned()));
            return Some(EventType::Message { channel, status });
        }
        EventType::platform(s).filter(|t| matches!(t, EventType::Platform(p) if p == s))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventType::Message { channel, status } => write!(f, "{channel}.{status}"),
            EventType::Platform(name) => f.write_str(name),
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        EventType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid event type {s:?}")))
    }
}

impl JsonSchema for EventType {
    fn schema_name() -> Cow<'static, str> {
        "EventType".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9_-]{1,32}(\\.[a-z0-9_-]{1,32})+$",
            "examples": ["email.delivered", "email.bounced", "sms.failed", "contact.created"]
        })
    }
}

/// A deterministic event id: `evt_` followed by 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// The id of the event `dedup_key` from `provider` for `recipient` in `workspace`: the first
    /// 128 bits of SHA-256 over the length-prefixed parts, so no two different tuples can be
    /// made to collide by moving a separator.
    pub fn derive(workspace: &str, provider: &str, dedup_key: &str, recipient: Option<&str>) -> EventId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tidings.event.v1");
        for part in [workspace, provider, dedup_key, recipient.unwrap_or("")] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let digest = ctx.finish();
        let mut id = String::with_capacity(36);
        id.push_str("evt_");
        id.push_str(&hex::encode(&digest.as_ref()[..16]));
        EventId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for EventId {
    fn schema_name() -> Cow<'static, str> {
        "EventId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^evt_[0-9a-f]{32}$"})
    }
}

/// The CloudEvents `specversion`: only `"1.0"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SpecVersion {
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
}

/// The CloudEvents `datacontenttype`: only `"application/json"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DataContentType {
    #[default]
    #[serde(rename = "application/json")]
    Json,
}

#[cfg(test)]
mod tests {

    #[test]
    fn names_shown_are_the_json_names() {
        for kind in [BounceKind::Hard, BounceKind::Soft, BounceKind::Undetermined] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        use crate::suppression::Reason;
        for reason in [Reason::HardBounce, Reason::Complaint, Reason::ProviderSuppression, Reason::Unsubscribe] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    use super::*;

    #[test]
    fn event_ids_are_stable_and_separate_their_inputs() {
        let a = EventId::derive("ws", "sendgrid", "abc", Some("a@example.com"));
        assert_eq!(a, EventId::derive("ws", "sendgrid", "abc", Some("a@example.com")));
        assert_ne!(a, EventId::derive("ws", "sendgrid", "abc", Some("b@example.com")));
        assert_ne!(a, EventId::derive("ws2", "sendgrid", "abc", Some("a@example.com")));
        // Moving a boundary between parts must change the id.
        assert_ne!(EventId::derive("ab", "c", "k", None), EventId::derive("a", "bc", "k", None));
        assert!(a.as_str().starts_with("evt_") && a.as_str().len() == 36);
    }

    #[test]
    fn event_types_round_trip_through_text() {
        for text in ["email.bounced", "sms.delivered", "whatsapp.read", "contact.created", "email.retry_scheduled"] {
            let parsed = EventType::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(EventType::parse("email.bounced").unwrap().status(), Some(Status::Bounced));
        assert_eq!(EventType::parse("contact.created").unwrap().status(), None);
        for bad in ["", "email", "email.", "Email.Bounced", "email.*", "a..b", "e mail.sent"] {
            assert!(EventType::parse(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn channels_refuse_words_that_would_break_type_patterns() {
        assert_eq!(Channel::parse("WhatsApp"), Some(Channel::WHATSAPP));
        assert_eq!(Channel::parse("rcs").unwrap().as_str(), "rcs");
        assert_eq!(Channel::parse("e.mail"), None);
        assert_eq!(Channel::parse("*"), None);
        assert_eq!(Channel::parse(""), None);
    }
}
