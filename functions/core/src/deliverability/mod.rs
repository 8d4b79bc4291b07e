//! Deliverability: why mail bounces ([`reason`]), where ([`mailbox`], [`counters`]), and when a
//! sender must act ([`Settings`], the [`watch`]).

pub mod counters;
pub mod mailbox;
pub mod reason;
pub mod watch;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use counters::{CounterKey, Dimension, Report, Series, Totals};
pub use reason::{BounceReason, Classified, Reply, classify};

use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::invalid::Invalid;
use crate::timestamp::Timestamp;

/// Fills in what tidings reads from an email event itself: the recipient's mailbox provider,
/// and on bounces, deferrals, drops and failures the reason and tidings' kind. Events of other
/// channels are left as they are.
pub fn enrich(data: &mut EventData, event_type: &EventType) {
    if data.channel.as_ref() != Some(&Channel::EMAIL) {
        return;
    }
    if let Some(domain) = data.recipient.as_deref().and_then(mailbox::domain_of) {
        data.mailbox_provider = Some(mailbox::mailbox_provider(&domain, &BTreeMap::new()).to_owned());
    }
    if let Some(sending) = data.sending_domain.take() {
        data.sending_domain = mailbox::domain_of(&format!("@{sending}"));
    }
    let status = event_type.status();
    if !matches!(status, Some(Status::Bounced | Status::Deferred | Status::Dropped | Status::Failed)) {
        return;
    }
    let deferred = status == Some(Status::Deferred);
    let fallback = if deferred { BounceKind::Soft } else { BounceKind::Undetermined };
    let text = data.bounce.as_ref().and_then(|b| b.diagnostic.clone()).or_else(|| data.reason.clone());
    let bounce = data.bounce.get_or_insert_with(|| Bounce::of_kind(fallback));
    let reply = Reply {
        text: text.as_deref(),
        code: bounce.code.as_deref(),
        hint: bounce.subtype.as_deref(),
        provider: Some(&data.provider),
    };
    let mut classified = classify(&reply, bounce.kind);
    // A deferral is temporary by definition: the provider is still trying.
    if deferred {
        classified.kind = BounceKind::Soft;
    }
    bounce.reason = Some(classified.reason);
    if classified.kind != bounce.kind {
        bounce.provider_kind = Some(bounce.kind);
        bounce.kind = classified.kind;
    }
}

/// A workspace's deliverability settings: thresholds, the operator's domain mapping and the
/// silent-source watch. Every field has the default a workspace without settings gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Hard bounces over messages attempted, per provider account. SES reviews an account at
    /// 5% and may pause it at 10%.
    #[serde(default = "defaults::bounce_rate")]
    pub bounce_rate: f64,
    /// Complaints over messages attempted, per provider account. SES reviews at 0.1% and may
    /// pause at 0.5%.
    #[serde(default = "defaults::complaint_rate")]
    pub complaint_rate: f64,
    /// Complaints over messages delivered, per mailbox provider. Gmail and Yahoo require bulk
    /// senders to stay under 0.3%.
    #[serde(default = "defaults::spam_rate")]
    pub spam_rate: f64,
    /// The fewest messages in the window (attempted; delivered for the spam rate) for which a
    /// rate is judged at all.
    #[serde(default = "defaults::min_volume")]
    pub min_volume: u64,
    /// The rolling window rates are taken over, in hours.
    #[serde(default = "defaults::window_hours")]
    pub window_hours: u32,
    /// The shortest quiet period, in hours, after which a source with steady traffic is
    /// reported silent (longer when its usual gaps are longer).
    #[serde(default = "defaults::silent_after_hours")]
    pub silent_after_hours: u32,
    /// Recipient domains the operator maps to a mailbox provider (`example.com` → `microsoft`
    /// for a company on Microsoft 365), applied as events are stored.
    #[serde(default)]
    pub mailbox_domains: BTreeMap<String, String>,
    /// Increases with every change; a change is written only over the version it read.
    #[serde(default)]
    pub version: u64,
}

mod defaults {
    pub fn bounce_rate() -> f64 {
        0.05
    }
    pub fn complaint_rate() -> f64 {
        0.001
    }
    pub fn spam_rate() -> f64 {
        0.003
    }
    pub fn min_volume() -> u64 {
        1000
    }
    pub fn window_hours() -> u32 {
        24
    }
    pub fn silent_after_hours() -> u32 {
        6
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bounce_rate: defaults::bounce_rate(),
            complaint_rate: defaults::complaint_rate(),
            spam_rate: defaults::spam_rate(),
            min_volume: defaults::min_volume(),
            window_hours: defaults::window_hours(),
            silent_after_hours: defaults::silent_after_hours(),
            mailbox_domains: BTreeMap::new(),
            version: 0,
        }
    }
}

/// The most domains an operator may map.
pub const MAX_MAPPED_DOMAINS: usize = 1000;
/// The longest window or quiet period, in hours: 30 days.
pub const MAX_HOURS: u32 = 720;

impl Settings {
    /// Checks every field against its bounds; the error names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, rate) in
            [("bounce_rate", self.bounce_rate), ("complaint_rate", self.complaint_rate), ("spam_rate", self.spam_rate)]
        {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
                return Err(Invalid::new(
                    field,
                    format!("{field} must be a fraction in (0, 1], such as 0.05 for 5%; got {rate}"),
                ));
            }
        }
        if !(1..=10_000_000).contains(&self.min_volume) {
            return Err(Invalid::new("min_volume", "min_volume must be between 1 and 10000000 messages"));
        }
        for (field, hours) in [("window_hours", self.window_hours), ("silent_after_hours", self.silent_after_hours)] {
            if !(1..=MAX_HOURS).contains(&hours) {
                return Err(Invalid::new(
                    field,
                    format!("{field} must be between 1 and {MAX_HOURS} hours; got {hours}"),
                ));
            }
        }
        if self.version >= i64::MAX as u64 {
            return Err(Invalid::new("version", "version: not one this workspace's settings have had"));
        }
        if self.mailbox_domains.len() > MAX_MAPPED_DOMAINS {
            return Err(Invalid::new(
                "mailbox_domains",
                format!(
                    "mailbox_domains maps at most {MAX_MAPPED_DOMAINS} domains; got {}",
                    self.mailbox_domains.len()
                ),
            ));
        }
        for (domain, provider) in &self.mailbox_domains {
            if !mailbox::is_domain(domain) || domain.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(Invalid::new(
                    "mailbox_domains",
                    format!("mailbox_domains: {domain:?} is not a lowercase domain name"),
                ));
            }
            if !mailbox::is_provider_name(provider) {
                return Err(Invalid::new(
                    "mailbox_domains",
                    format!(
                        "mailbox_domains: {provider:?} (for {domain}) is not a mailbox provider name: 1 to 32 of a-z, 0-9 and _"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Applies the operator's mapping to an email event's mailbox provider.
    pub fn map_mailbox_provider(&self, data: &mut EventData) {
        if self.mailbox_domains.is_empty() || data.channel.as_ref() != Some(&Channel::EMAIL) {
            return;
        }
        if let Some(domain) = data.recipient.as_deref().and_then(mailbox::domain_of)
            && let Some(provider) = self.mailbox_domains.get(&domain)
        {
            data.mailbox_provider = Some(provider.clone());
        }
    }
}

/// Whether a watched condition holds, and since when: one per workspace and key
/// (`bounce_rate|provider|ses`, `silent|source|src_…`). Its events are announced once per
/// change, by the writer whose conditional write of the change succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alarm {
    pub workspace: String,
    pub key: String,
    /// Whether the condition holds (a threshold crossed, a source silent).
    pub active: bool,
    /// When it last changed.
    pub since: Timestamp,
    /// How many times it has changed: part of the id of the event announcing each change.
    pub changes: u64,
    /// What was measured when it last changed (`rate`, `threshold`, `quiet_hours`, …).
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
    /// The stored version this alarm was read at (0: never stored).
    #[serde(default)]
    pub version: u64,
}
