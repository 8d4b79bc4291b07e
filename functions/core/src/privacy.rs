//! Personal data: a workspace's retention and redaction settings, erasing a recipient, and the
//! keyed hash an erased recipient is known by afterwards.
//!
//! An erased recipient is written `erased_` and 32 hex digits: the first half of
//! HMAC-SHA256(workspace erase key, recipient). The key is random, made for the workspace on
//! its first erasure and never shown, so the hash cannot be reversed by trying addresses
//! without the store. The same recipient always gets the same hash in a workspace: their
//! suppression entry keeps working under it, and events that arrive for them later meet it.

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::event::CanonicalEvent;
use crate::invalid::Invalid;
use crate::timestamp::Timestamp;

/// The longest retention a workspace may set: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Events one erase call removes at most; past it the answer says `complete: false` and the
/// same call goes on from where it stopped (an erase is idempotent).
pub const ERASE_EVENTS_PER_CALL: usize = 1_000;

/// How a workspace treats personal data: how long it is kept, and what is not kept at all.
/// Applied as webhooks are received (redaction) and as events are stored (retention); what was
/// stored before a change keeps the retention it was stored with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// Days events, their message states and delivery attempts are kept, instead of the
    /// deployment's default (`TIDINGS_RETENTION_DAYS`): 1 to 3650.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Days the provider's own record of an event is kept: 0 keeps none (it is dropped as the
    /// webhook is received); at most the events' retention. Unset: as long as the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_retention_days: Option<u32>,
    /// Drop the IP address of opens and clicks, from the event and from the provider's record.
    #[serde(default)]
    pub redact_ip: bool,
    /// Drop the user agent of opens and clicks, from the event and from the provider's record.
    #[serde(default)]
    pub redact_user_agent: bool,
    /// Increases with every change; a change is written only over the version it read.
    #[serde(default)]
    pub version: u64,
}

impl PrivacySettings {
    /// Refuses values out of bounds, naming the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(days) = self.retention_days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(Invalid::new(
                "retention_days",
                format!("retention_days: {days} is not between 1 and {MAX_RETENTION_DAYS}"),
            ));
        }
        if let Some(days) = self.raw_retention_days {
            let most = self.retention_days.unwrap_or(MAX_RETENTION_DAYS);
            if days > most {
                return Err(Invalid::new(
                    "raw_retention_days",
                    format!("raw_retention_days: {days} is more than the events are kept ({most} days)"),
                ));
            }
        }
        Ok(())
    }

    /// Whether provider records are dropped as webhooks are received.
    pub fn drops_raw(&self) -> bool {
        self.raw_retention_days == Some(0)
    }

    /// When an event received at `received_at` and its provider record expire, given the
    /// deployment's default retention in days.
    pub fn expiry(&self, received_at: Timestamp, default_days: u64) -> Expiry {
        let days = self.retention_days.map_or(default_days, u64::from).max(1);
        let event = after_days(received_at, days);
        let raw = self.raw_retention_days.map_or(event, |raw| after_days(received_at, u64::from(raw).min(days)));
        Expiry { event, raw }
    }

    /// Removes what the settings say not to keep from an event as it is received: its IP
    /// address and user agent (from the event, and every copy of them from the provider's
    /// record), and the provider's record itself.
    pub fn redact(&self, event: &mut CanonicalEvent, raw: &mut String) {
        if self.redact_ip
            && let Some(ip) = event.data.ip.take()
        {
            *raw = scrub(raw, &ip, "");
        }
        if self.redact_user_agent
            && let Some(agent) = event.data.user_agent.take()
        {
            *raw = scrub(raw, &agent, "");
        }
        if self.drops_raw() {
            raw.clear();
        }
    }
}

fn after_days(start: Timestamp, days: u64) -> Timestamp {
    let seconds = i64::try_from(days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    Timestamp::from_unix_seconds(start.unix_seconds().saturating_add(seconds)).unwrap_or(start)
}

/// When a stored event and its provider record are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub event: Timestamp,
    /// At or before `event`.
    pub raw: Timestamp,
}

/// The record kept as long as the event.
impl From<Timestamp> for Expiry {
    fn from(at: Timestamp) -> Self {
        Expiry { event: at, raw: at }
    }
}

/// A workspace's erase key (see the module's documentation), and when it last erased someone.
#[derive(Clone, PartialEq, Eq)]
pub struct EraseKey {
    secret: [u8; 32],
    /// The latest erasure in the workspace: a consumer that read the key before an erasure sees
    /// it changed after.
    pub last_erasure: Option<Timestamp>,
}

/// Never printed: the key would reverse every hash.
impl std::fmt::Debug for EraseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EraseKey").field("last_erasure", &self.last_erasure).finish_non_exhaustive()
    }
}

/// The prefix of an erased recipient's hash.
pub const ERASED_PREFIX: &str = "erased_";

impl EraseKey {
    /// A new random key.
    pub fn generate() -> Result<EraseKey, ring::error::Unspecified> {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)?;
        Ok(EraseKey { secret, last_erasure: None })
    }

    /// The key a store kept (64 hex digits).
    pub fn from_hex(hex_secret: &str, last_erasure: Option<Timestamp>) -> Option<EraseKey> {
        let bytes = hex::decode(hex_secret).ok()?;
        Some(EraseKey { secret: bytes.try_into().ok()?, last_erasure })
    }

    /// The key as a store keeps it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.secret)
    }

    /// The hash `recipient` (in the form events keep it) is known by once erased.
    pub fn hash(&self, recipient: &str) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.secret), recipient.as_bytes());
        format!("{ERASED_PREFIX}{}", hex::encode(&tag.as_ref()[..16]))
    }
}

/// Whether `recipient` is already an erased recipient's hash.
pub fn is_hash(recipient: &str) -> bool {
    recipient
        .strip_prefix(ERASED_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What one erase call removed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Erased {
    /// The hash the recipient is known by from now on (their suppression entry's key, and the
    /// recipient of events that arrive for them later).
    pub hash: String,
    /// Stored events deleted.
    pub events: u64,
    /// Provider records deleted with them (kept apart from their events when they expire
    /// sooner).
    pub raw_records: u64,
    /// Message states deleted (one per message and recipient).
    pub message_states: u64,
    /// Suppression entries rewritten under the hash (0 or 1).
    pub suppressions: u64,
    /// Messages removed from the local queues, their dead letters and the resend outbox
    /// (`tidings dev`); on AWS, queued copies are dropped as they are received instead.
    pub queued: u64,
    /// Whether everything is gone; `false` when the call stopped at its limit of events: call
    /// again to go on.
    pub complete: bool,
}

/// The spellings of `recipient` a stored text may hold it in: as is, lowercased, JSON-escaped
/// (`\u0040` for `@`, `\/`), URL-encoded (`%40`, `%2B`) and, for a phone number, without its `+`.
/// Compared without regard to case.
pub fn forms(recipient: &str) -> Vec<String> {
    let lower = recipient.to_lowercase();
    let mut forms = vec![lower.clone()];
    let mut push = |form: String| {
        if !form.is_empty() && !forms.contains(&form) {
            forms.push(form);
        }
    };
    push(lower.replace('@', "\\u0040"));
    push(lower.replace('/', "\\/"));
    let encoded: String = form_urlencoded::byte_serialize(lower.as_bytes()).collect();
    push(encoded.to_lowercase());
    push(encoded.replace("%40", "%2540").to_lowercase());
    if let Some(digits) = lower.strip_prefix('+')
        && digits.len() >= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        push(digits.to_owned());
    }
    // Longest first, so a form that contains another is replaced whole.
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms
}

/// `text` with every form of `value` ([`forms`]) replaced by `replacement`, ignoring case.
pub fn scrub(text: &str, value: &str, replacement: &str) -> String {
    if value.trim().is_empty() {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    for form in forms(value) {
        out = replace_ignoring_case(&out, &form, replacement);
    }
    out
}

/// Whether `text` holds `value` in any of its [`forms`], ignoring case.
pub fn mentions(text: &str, value: &str) -> bool {
    let lower = text.to_lowercase();
    forms(value).iter().any(|form| lower.contains(form.as_str()))
}

fn replace_ignoring_case(text: &str, lower_needle: &str, replacement: &str) -> String {
    // Lowercasing may change byte lengths outside ASCII; the needles that matter (addresses,
    // numbers, IPs) are matched on ASCII case only, so positions line up.
    let haystack = text.to_ascii_lowercase();
    let needle = lower_needle.to_ascii_lowercase();
    if needle.is_empty() || !haystack.contains(&needle) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in haystack.match_indices(&needle) {
        if at < rest {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(replacement);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// An event of an erased recipient made anonymous: every form of the recipient in the event
/// replaced by their hash, and the provider's record dropped. `None` when the event cannot be
/// read back after the replacement (it is then not kept).
pub fn pseudonymize(event: &CanonicalEvent, recipient: &str, hash: &str) -> Option<CanonicalEvent> {
    let text = serde_json::to_string(event).ok()?;
    let mut anonymous: CanonicalEvent = serde_json::from_str(&scrub(&text, recipient, hash)).ok()?;
    anonymous.data.recipient = Some(hash.to_owned());
    Some(anonymous)
}

/// A recipient's suppression entry as it is kept once they are erased: under their hash. When
/// an entry under the hash exists already (events that came after an earlier erasure), the
/// newer of the two stands.
pub fn hashed_suppression(
    entry: &crate::suppression::Suppression,
    existing: Option<&crate::suppression::Suppression>,
    hash: &str,
) -> crate::suppression::Suppression {
    let mut hashed = entry.clone();
    hashed.recipient = hash.to_owned();
    match existing {
        Some(existing) if (existing.as_of, existing.event_id.as_ref()) >= (hashed.as_of, hashed.event_id.as_ref()) => {
            existing.clone()
        }
        _ => hashed,
    }
}

/// When a queued message (an events-queue message or a delivery task, both carrying their
/// event) about `recipient` was received; `None` when it is not about them.
pub fn queued_about(body: &str, recipient: &str) -> Option<Timestamp> {
    let value = serde_json::from_str::<serde_json::Value>(body).ok()?;
    if value.pointer("/event/data/recipient").and_then(|r| r.as_str()) != Some(recipient) {
        return None;
    }
    let received = value.pointer("/event/data/received_at").and_then(|r| r.as_str());
    Some(received.and_then(Timestamp::parse_rfc3339).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_per_key_and_differs_between_keys() {
        let key = EraseKey::generate().unwrap();
        let again = EraseKey::from_hex(&key.to_hex(), None).unwrap();
        assert_eq!(key.hash("jane@example.com"), again.hash("jane@example.com"));
        assert!(is_hash(&key.hash("jane@example.com")));
        assert_ne!(key.hash("jane@example.com"), key.hash("john@example.com"));
        assert_ne!(key.hash("jane@example.com"), EraseKey::generate().unwrap().hash("jane@example.com"));
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn scrub_finds_every_spelling() {
        let text = r#"{"a":"Jane@Example.com","b":"jane\u0040example.com","c":"to=jane%40example.com","d":"x"}"#;
        let out = scrub(text, "jane@example.com", "H");
        assert_eq!(out, r#"{"a":"H","b":"H","c":"to=H","d":"x"}"#);
        assert!(!mentions(&out, "jane@example.com"));
        let phone = scrub("from=%2B14155550100&wa_id=14155550100&to=+14155550100", "+14155550100", "H");
        assert_eq!(phone, "from=H&wa_id=H&to=H");
    }

    #[test]
    fn settings_are_bounded_and_name_the_field() {
        let too_long = PrivacySettings { retention_days: Some(4000), ..Default::default() };
        assert_eq!(too_long.validate().unwrap_err().field, "retention_days");
        let raw_longer =
            PrivacySettings { retention_days: Some(30), raw_retention_days: Some(31), ..Default::default() };
        assert_eq!(raw_longer.validate().unwrap_err().field, "raw_retention_days");
        let fine = PrivacySettings { retention_days: Some(30), raw_retention_days: Some(7), ..Default::default() };
        fine.validate().unwrap();
        let received = Timestamp::from_unix_seconds(1_000_000).unwrap();
        let expiry = fine.expiry(received, 90);
        assert_eq!(expiry.event.unix_seconds(), 1_000_000 + 30 * 86_400);
        assert_eq!(expiry.raw.unix_seconds(), 1_000_000 + 7 * 86_400);
        assert_eq!(PrivacySettings::default().expiry(received, 90).raw.unix_seconds(), 1_000_000 + 90 * 86_400);
    }
}
