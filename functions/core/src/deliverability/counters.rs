//! Hourly counters of stored events, and the reports read from them.
//!
//! Every stored event (tidings' own operational events aside) is counted once, in the same step
//! that stores it, in two series:
//!
//! - [`Series::Domains`]: by hour × type × provider × sending domain × recipient domain ×
//!   mailbox provider × bounce kind × bounce reason: what `by=recipient_domain` and
//!   `by=sending_domain` read.
//! - [`Series::Sources`]: the same without the two domains and with the source: small (a
//!   workspace has few sources and providers), what `by=provider`, `by=mailbox_provider`, the
//!   thresholds and the silent-source watch read.
//!
//! Hours are those in which tidings received the events (not the providers' event times, which
//! may lie anywhere), so a window is always what arrived in it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{BounceKind, CanonicalEvent, Status};
use crate::invalid::Invalid;
use crate::timestamp::Timestamp;

/// Which counter series a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    Domains,
    Sources,
}

impl Series {
    pub const fn as_str(self) -> &'static str {
        match self {
            Series::Domains => "domains",
            Series::Sources => "sources",
        }
    }
}

/// One counter: an hour and the values of its dimensions. Absent values are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterKey {
    pub series: Series,
    /// The hour's start, Unix seconds (a multiple of 3,600).
    pub hour: i64,
    pub event_type: String,
    pub provider: String,
    /// Set in [`Series::Sources`] only.
    pub source: String,
    /// Set in [`Series::Domains`] only.
    pub sending_domain: String,
    /// Set in [`Series::Domains`] only.
    pub recipient_domain: String,
    pub mailbox_provider: String,
    pub bounce_kind: String,
    pub bounce_reason: String,
}

/// The separator of a key's text form: no dimension's value can hold it (domains, provider
/// ids, event types, source ids and mailbox provider names are all validated tokens).
const SEPARATOR: char = '|';

impl CounterKey {
    /// The key's dimensions after its series, as one string whose order is the hour's:
    /// `<hour:010>|type|provider|source|sending|recipient|mailbox|kind|reason`.
    pub fn text(&self) -> String {
        format!(
            "{:010}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.hour,
            self.event_type,
            self.provider,
            self.source,
            self.sending_domain,
            self.recipient_domain,
            self.mailbox_provider,
            self.bounce_kind,
            self.bounce_reason
        )
    }

    /// Reads [`CounterKey::text`] back.
    pub fn parse(series: Series, text: &str) -> Option<CounterKey> {
        let parts: Vec<&str> = text.split(SEPARATOR).collect();
        let [hour, event_type, provider, source, sending, recipient, mailbox, kind, reason] = parts.as_slice() else {
            return None;
        };
        Some(CounterKey {
            series,
            hour: hour.parse().ok()?,
            event_type: (*event_type).to_owned(),
            provider: (*provider).to_owned(),
            source: (*source).to_owned(),
            sending_domain: (*sending).to_owned(),
            recipient_domain: (*recipient).to_owned(),
            mailbox_provider: (*mailbox).to_owned(),
            bounce_kind: (*kind).to_owned(),
            bounce_reason: (*reason).to_owned(),
        })
    }

    /// The day (`yyyy-mm-dd`) of the key's hour: the partition it is kept in.
    pub fn day(&self) -> String {
        day_of(self.hour)
    }
}

/// `yyyy-mm-dd` of a Unix time in seconds.
pub fn day_of(seconds: i64) -> String {
    Timestamp::from_unix_seconds(seconds).map_or_else(|| "0000-00-00".to_owned(), |t| t.to_string()[..10].to_owned())
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: Timestamp) -> i64 {
    at.unix_seconds().div_euclid(3600) * 3600
}

/// The two counters an event adds one to; none for tidings' own operational events.
pub fn keys_for(event: &CanonicalEvent, source: &str) -> Option<[CounterKey; 2]> {
    let data = &event.data;
    if data.provider == crate::event::OPERATIONAL_PROVIDER {
        return None;
    }
    let clean = |value: Option<&str>| value.filter(|v| !v.contains(SEPARATOR)).unwrap_or("").to_owned();
    let recipient_domain = match data.channel.as_ref() {
        Some(channel) if *channel == crate::event::Channel::EMAIL => {
            data.recipient.as_deref().and_then(super::mailbox::domain_of).unwrap_or_default()
        }
        _ => String::new(),
    };
    let bounce = data.bounce.as_ref();
    let domains = CounterKey {
        series: Series::Domains,
        hour: hour_of(data.received_at),
        event_type: event.event_type.to_string(),
        provider: clean(Some(&data.provider)),
        source: String::new(),
        sending_domain: clean(data.sending_domain.as_deref().filter(|d| super::mailbox::is_domain(d))),
        recipient_domain,
        mailbox_provider: clean(data.mailbox_provider.as_deref()),
        bounce_kind: bounce.map(|b| b.kind.as_str().to_owned()).unwrap_or_default(),
        bounce_reason: bounce.and_then(|b| b.reason).map(|r| r.as_str().to_owned()).unwrap_or_default(),
    };
    let sources = CounterKey {
        series: Series::Sources,
        source: clean(Some(source)),
        sending_domain: String::new(),
        recipient_domain: String::new(),
        ..domains.clone()
    };
    Some([domains, sources])
}

/// What a report groups counters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    MailboxProvider,
    RecipientDomain,
    Provider,
    SendingDomain,
    Source,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::MailboxProvider,
        Dimension::RecipientDomain,
        Dimension::Provider,
        Dimension::SendingDomain,
        Dimension::Source,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::MailboxProvider => "mailbox_provider",
            Dimension::RecipientDomain => "recipient_domain",
            Dimension::Provider => "provider",
            Dimension::SendingDomain => "sending_domain",
            Dimension::Source => "source",
        }
    }

    /// The series that holds this dimension.
    pub const fn series(self) -> Series {
        match self {
            Dimension::RecipientDomain | Dimension::SendingDomain => Series::Domains,
            Dimension::MailboxProvider | Dimension::Provider | Dimension::Source => Series::Sources,
        }
    }

    /// The value of this dimension in `key`.
    pub fn value_of(self, key: &CounterKey) -> &str {
        match self {
            Dimension::MailboxProvider => &key.mailbox_provider,
            Dimension::RecipientDomain => &key.recipient_domain,
            Dimension::Provider => &key.provider,
            Dimension::SendingDomain => &key.sending_domain,
            Dimension::Source => &key.source,
        }
    }
}

impl std::str::FromStr for Dimension {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| {
            Invalid::new(
                "by",
                format!(
                    "{s:?} is not a dimension (mailbox_provider, recipient_domain, provider, sending_domain or source)"
                ),
            )
        })
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of one group of counters, and the rates read from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    /// Messages handed to the provider (`*.sent`).
    pub sent: u64,
    pub delivered: u64,
    /// Bounces of every kind.
    pub bounced: u64,
    /// Bounces tidings judged hard (the address is bad).
    pub hard_bounced: u64,
    /// Bounces, deferrals, drops and failures by reason.
    pub by_reason: BTreeMap<String, u64>,
    pub complained: u64,
    pub deferred: u64,
    pub dropped: u64,
    pub failed: u64,
    pub opened: u64,
    pub clicked: u64,
    /// Messages that were attempted: `sent`, or `delivered + bounced + dropped` where the
    /// provider reports no sends (or reported fewer).
    pub attempted: u64,
    /// Hard bounces over messages attempted: what SES's bounce rate measures. `null` when
    /// nothing was attempted.
    pub bounce_rate: Option<f64>,
    /// Complaints over messages attempted: SES's complaint rate.
    pub complaint_rate: Option<f64>,
    /// Complaints over messages delivered: the spam rate Gmail and Yahoo hold bulk senders to.
    pub spam_rate: Option<f64>,
    /// Messages delivered over messages attempted.
    pub delivery_rate: Option<f64>,
}

impl Totals {
    /// Adds `count` events of `key`'s type and bounce.
    pub fn add(&mut self, key: &CounterKey, count: u64) {
        let status = key.event_type.split_once('.').and_then(|(_, status)| Status::parse(status));
        let field = match status {
            Some(Status::Sent) => &mut self.sent,
            Some(Status::Delivered) => &mut self.delivered,
            Some(Status::Bounced) => {
                if key.bounce_kind == BounceKind::Hard.as_str() {
                    self.hard_bounced = self.hard_bounced.saturating_add(count);
                }
                &mut self.bounced
            }
            Some(Status::Complained) => &mut self.complained,
            Some(Status::Deferred) => &mut self.deferred,
            Some(Status::Dropped) => &mut self.dropped,
            Some(Status::Failed) => &mut self.failed,
            Some(Status::Opened) => &mut self.opened,
            Some(Status::Clicked) => &mut self.clicked,
            _ => return,
        };
        *field = field.saturating_add(count);
        if !key.bounce_reason.is_empty() {
            let by_reason = self.by_reason.entry(key.bounce_reason.clone()).or_default();
            *by_reason = by_reason.saturating_add(count);
        }
    }

    /// Fills in `attempted` and the rates from the counts.
    pub fn finish(&mut self) {
        let outcomes = self.delivered.saturating_add(self.bounced).saturating_add(self.dropped);
        self.attempted = self.sent.max(outcomes);
        let rate = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        self.bounce_rate = rate(self.hard_bounced, self.attempted);
        self.complaint_rate = rate(self.complained, self.attempted);
        self.spam_rate = rate(self.complained, self.delivered);
        self.delivery_rate = rate(self.delivered, self.attempted);
    }
}

/// One value of a report's dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Row {
    /// The dimension's value; empty where the events do not say (a provider that reports no
    /// sending domain).
    pub value: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Counts and rates over a window, by one dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub by: Dimension,
    pub since: Timestamp,
    pub until: Timestamp,
    /// The busiest values first (by messages attempted), at most [`MAX_ROWS`].
    pub rows: Vec<Row>,
    /// Values left out beyond [`MAX_ROWS`]; their counts are in `total`.
    pub rows_left_out: usize,
    /// Every counter of the window together.
    pub total: Totals,
}

/// The most values a report lists.
pub const MAX_ROWS: usize = 200;

/// Groups `counters` (of `by`'s series) by `by`'s value.
pub fn report(by: Dimension, since: Timestamp, until: Timestamp, counters: &[(CounterKey, u64)]) -> Report {
    let mut groups: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    // Mailbox providers and domains are email's: other channels' events stay out of those
    // reports (and their totals).
    let email_only = !matches!(by, Dimension::Provider | Dimension::Source);
    for (key, count) in counters
        .iter()
        .filter(|(key, _)| key.series == by.series() && (!email_only || key.event_type.starts_with("email.")))
    {
        groups.entry(by.value_of(key)).or_default().add(key, *count);
        total.add(key, *count);
    }
    total.finish();
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(value, mut totals)| {
            totals.finish();
            Row { value: value.to_owned(), totals }
        })
        .collect();
    rows.sort_by(|a, b| b.totals.attempted.cmp(&a.totals.attempted).then_with(|| a.value.cmp(&b.value)));
    let rows_left_out = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);
    Report { by, since, until, rows, rows_left_out, total }
}

/// A sources-series key of provider `ses`, source `src_1` and mailbox provider `gmail`, for tests.
#[cfg(test)]
pub(crate) fn test_key(hour: i64, event_type: &str, kind: &str, reason: &str) -> CounterKey {
    CounterKey {
        series: Series::Sources,
        hour,
        event_type: event_type.into(),
        provider: "ses".into(),
        source: "src_1".into(),
        sending_domain: String::new(),
        recipient_domain: String::new(),
        mailbox_provider: "gmail".into(),
        bounce_kind: kind.into(),
        bounce_reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(event_type: &str, kind: &str, reason: &str) -> CounterKey {
        test_key(3600, event_type, kind, reason)
    }

    #[test]
    fn keys_read_back_from_their_text() {
        let k = key("email.bounced", "hard", "mailbox_unknown");
        assert_eq!(CounterKey::parse(Series::Sources, &k.text()), Some(k));
        assert_eq!(CounterKey::parse(Series::Sources, "1|2"), None);
    }

    #[test]
    fn rates_count_hard_bounces_and_complaints_over_attempts() {
        let counters = vec![
            (key("email.sent", "", ""), 1000),
            (key("email.delivered", "", ""), 900),
            (key("email.bounced", "hard", "mailbox_unknown"), 60),
            (key("email.bounced", "soft", "mailbox_full"), 40),
            (key("email.complained", "", ""), 3),
        ];
        let t0 = Timestamp::from_unix_seconds(0).unwrap();
        let report = report(Dimension::MailboxProvider, t0, t0, &counters);
        let row = &report.rows[0];
        assert_eq!(row.value, "gmail");
        assert_eq!(row.totals.attempted, 1000);
        assert_eq!(row.totals.bounce_rate, Some(0.06));
        assert_eq!(row.totals.complaint_rate, Some(0.003));
        assert_eq!(row.totals.spam_rate, Some(3.0 / 900.0));
        assert_eq!(row.totals.by_reason["mailbox_full"], 40);
        assert_eq!(report.total, row.totals);
    }
}
