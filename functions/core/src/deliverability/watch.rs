//! What the watch decides from a workspace's counters: thresholds crossed and recovered, sources
//! gone silent and resumed. Pure: the service that reads the stores and announces the changes
//! is `pipeline::Watch`.
//!
//! - **Thresholds.** Over the last `window_hours` hours (the current hour included), the bounce
//!   and complaint rates of each provider and the spam rate of each mailbox provider (`other`
//!   aside) are compared with the workspace's thresholds once the window holds `min_volume`
//!   messages. A rate at or above its threshold crosses it; a rate measured under it, or a
//!   window with no messages at all, recovers.
//! - **Silent sources.** A source is steady when events arrived in at least
//!   [`STEADY_HOURS`] distinct hours of the last [`LOOKBACK_HOURS`]. A steady source is silent
//!   once nothing has arrived on it for longer than both `silent_after_hours` and the longest
//!   gap it has shown in that time; it resumes with the next event.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use super::counters::{CounterKey, Dimension, Totals, hour_of};
use super::{Alarm, Settings};
use crate::timestamp::Timestamp;

/// How far back the silent-source watch looks: 7 days.
pub const LOOKBACK_HOURS: i64 = 168;
/// The fewest hours with traffic in the lookback for a source to count as steady.
pub const STEADY_HOURS: usize = 24;

/// A change of one alarm, to announce as one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The alarm as it is to be stored (its `version` is the one read).
    pub alarm: Alarm,
    /// The event type announcing it.
    pub event_type: &'static str,
    /// The CloudWatch metric that counts changes of this kind.
    pub metric: &'static str,
    /// One line for people.
    pub summary: String,
}

/// The kinds of change: (event type, CloudWatch metric counting them).
const CROSSED: (&str, &str) = ("deliverability.threshold_crossed", "ThresholdsCrossed");
const RECOVERED: (&str, &str) = ("deliverability.recovered", "ThresholdsRecovered");
const SILENT: (&str, &str) = ("source.silent", "SourcesSilent");
const RESUMED: (&str, &str) = ("source.resumed", "SourcesResumed");

/// A rate the watch holds to a threshold.
struct Metric {
    name: &'static str,
    dimension: Dimension,
    threshold: fn(&Settings) -> f64,
    rate: fn(&Totals) -> Option<f64>,
    volume: fn(&Totals) -> u64,
    label: &'static str,
    /// The CloudWatch metric of the rate.
    cloudwatch: &'static str,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "bounce_rate",
        dimension: Dimension::Provider,
        threshold: |s| s.bounce_rate,
        rate: |t| t.bounce_rate,
        volume: |t| t.attempted,
        label: "bounce rate",
        cloudwatch: "BounceRate",
    },
    Metric {
        name: "complaint_rate",
        dimension: Dimension::Provider,
        threshold: |s| s.complaint_rate,
        rate: |t| t.complaint_rate,
        volume: |t| t.attempted,
        label: "complaint rate",
        cloudwatch: "ComplaintRate",
    },
    Metric {
        name: "spam_rate",
        dimension: Dimension::MailboxProvider,
        threshold: |s| s.spam_rate,
        rate: |t| t.spam_rate,
        volume: |t| t.delivered,
        label: "spam rate",
        cloudwatch: "SpamRate",
    },
];

/// A rate the watch measured, for CloudWatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The metric's name (`BounceRate`).
    pub metric: &'static str,
    /// The dimension's CloudWatch name (`Provider`, `MailboxProvider`) and the value measured.
    pub dimension: &'static str,
    pub value: String,
    pub rate: f64,
}

/// The rates the watch measured.
pub type Measured = Vec<Measure>;

/// The changes due in a workspace at `now`, from the counters of its sources series over the
/// last [`LOOKBACK_HOURS`] (or `window_hours`, if longer), its alarms as stored, and the ids and
/// providers of its sources.
pub fn evaluate(
    workspace: &str,
    settings: &Settings,
    counters: &[(CounterKey, u64)],
    alarms: &[Alarm],
    sources: &[(String, String)],
    now: Timestamp,
) -> (Vec<Change>, Measured) {
    let alarms: HashMap<&str, &Alarm> = alarms.iter().map(|a| (a.key.as_str(), a)).collect();
    let mut changes = Vec::new();
    let mut measured = Vec::new();
    let current_hour = hour_of(now);
    let window_start = current_hour - (i64::from(settings.window_hours) - 1) * 3600;

    for metric in METRICS {
        let mut groups: BTreeMap<&str, Totals> = BTreeMap::new();
        for (key, count) in counters.iter().filter(|(k, _)| k.hour >= window_start && k.hour <= current_hour) {
            groups.entry(metric.dimension.value_of(key)).or_default().add(key, *count);
        }
        // Values with an active alarm and no traffic left in the window are judged too.
        let prefix = format!("{}|{}|", metric.name, metric.dimension);
        for alarm in alarms.values().filter(|a| a.active && a.key.starts_with(&prefix)) {
            groups.entry(&alarm.key[prefix.len()..]).or_default();
        }
        for (value, mut totals) in groups {
            if value.is_empty() || (metric.dimension == Dimension::MailboxProvider && value == "other") {
                continue;
            }
            totals.finish();
            let threshold = (metric.threshold)(settings);
            let volume = (metric.volume)(&totals);
            let rate = (metric.rate)(&totals);
            if let Some(rate) = rate {
                let dimension = if metric.dimension == Dimension::Provider { "Provider" } else { "MailboxProvider" };
                measured.push(Measure { metric: metric.cloudwatch, dimension, value: value.to_owned(), rate });
            }
            let key = format!("{prefix}{value}");
            let was_active = alarms.get(key.as_str()).is_some_and(|a| a.active);
            let now_active = match rate {
                Some(rate) if volume >= settings.min_volume => rate >= threshold,
                // Nothing attempted in the window: nothing is wrong any more.
                _ if volume == 0 => false,
                // Too few messages to judge: as it was.
                _ => was_active,
            };
            if now_active == was_active {
                continue;
            }
            let rate = rate.unwrap_or(0.0);
            let details = BTreeMap::from([
                ("metric".to_owned(), json!(metric.name)),
                ("dimension".to_owned(), json!(metric.dimension.as_str())),
                ("value".to_owned(), json!(value)),
                ("window".to_owned(), json!(format!("{}h", settings.window_hours))),
                ("window_hours".to_owned(), json!(settings.window_hours)),
                ("rate".to_owned(), json!(rate)),
                ("threshold".to_owned(), json!(threshold)),
                ("volume".to_owned(), json!(volume)),
            ]);
            let (kind, side) = if now_active { (CROSSED, "at or above") } else { (RECOVERED, "back under") };
            let summary = format!(
                "{} of {} {value} is {:.3}% over {} h ({volume} messages): {side} the threshold of {:.3}%",
                metric.label,
                metric.dimension,
                rate * 100.0,
                settings.window_hours,
                threshold * 100.0
            );
            changes.push(change(
                workspace,
                &key,
                alarms.get(key.as_str()).copied(),
                now_active,
                details,
                now,
                kind,
                summary,
            ));
        }
    }

    let mut hours_by_source: HashMap<&str, BTreeSet<i64>> = HashMap::new();
    let lookback_start = current_hour - (LOOKBACK_HOURS - 1) * 3600;
    for (key, _) in counters.iter().filter(|(k, n)| *n > 0 && k.hour >= lookback_start && k.hour <= current_hour) {
        hours_by_source.entry(key.source.as_str()).or_default().insert(key.hour);
    }
    for (source, provider) in sources {
        let key = format!("silent|source|{source}");
        let alarm = alarms.get(key.as_str()).copied();
        let hours = hours_by_source.get(source.as_str());
        let Some(last) = hours.and_then(|h| h.last().copied()) else {
            continue;
        };
        let was_silent = alarm.is_some_and(|a| a.active);
        if was_silent {
            // Traffic in the hour the silence was declared, or after it, is new: the source had
            // been quiet for hours when it was declared.
            let declared = alarm.map_or(i64::MAX, |a| hour_of(a.since));
            if last >= declared {
                let details =
                    BTreeMap::from([("source".to_owned(), json!(source)), ("provider".to_owned(), json!(provider))]);
                let summary = format!("source {source} ({provider}) is receiving events again");
                changes.push(change(workspace, &key, alarm, false, details, now, RESUMED, summary));
            }
            continue;
        }
        let Some(hours) = hours.filter(|h| h.len() >= STEADY_HOURS) else { continue };
        let longest_gap = hours.iter().zip(hours.iter().skip(1)).map(|(a, b)| (b - a) / 3600).max().unwrap_or(0);
        // Quiet since the end of the last hour with traffic.
        let quiet_seconds = now.unix_seconds() - (last + 3600);
        let allowed_hours = i64::from(settings.silent_after_hours).max(longest_gap);
        if quiet_seconds > allowed_hours * 3600 {
            let quiet_hours = quiet_seconds / 3600;
            let details = BTreeMap::from([
                ("source".to_owned(), json!(source)),
                ("provider".to_owned(), json!(provider)),
                ("quiet_hours".to_owned(), json!(quiet_hours)),
                ("allowed_hours".to_owned(), json!(allowed_hours)),
                ("last_seen".to_owned(), json!(Timestamp::from_unix_seconds(last + 3600))),
            ]);
            let summary = format!(
                "source {source} ({provider}) has received nothing for {quiet_hours} h, longer than its usual gap of \
                 {allowed_hours} h: check the provider's webhook settings and the source's secret"
            );
            changes.push(change(workspace, &key, alarm, true, details, now, SILENT, summary));
        }
    }
    (changes, measured)
}

#[allow(clippy::too_many_arguments)]
fn change(
    workspace: &str,
    key: &str,
    previous: Option<&Alarm>,
    active: bool,
    details: BTreeMap<String, serde_json::Value>,
    now: Timestamp,
    (event_type, metric): (&'static str, &'static str),
    summary: String,
) -> Change {
    let alarm = Alarm {
        workspace: workspace.to_owned(),
        key: key.to_owned(),
        active,
        since: now,
        changes: previous.map_or(0, |a| a.changes).saturating_add(1),
        details,
        version: previous.map_or(0, |a| a.version),
    };
    Change { alarm, event_type, metric, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hour: i64, event_type: &str, kind: &str) -> CounterKey {
        crate::deliverability::counters::test_key(hour, event_type, kind, "")
    }

    const HOUR: i64 = 1_764_000_000 / 3600 * 3600;

    #[test]
    fn a_rate_crosses_once_volume_allows_and_recovers_under_the_threshold() {
        let now = Timestamp::from_unix_seconds(HOUR + 600).unwrap();
        let settings = Settings::default();
        let few = vec![(key(HOUR, "email.sent", ""), 10), (key(HOUR, "email.bounced", "hard"), 5)];
        let (changes, _) = evaluate("ws", &settings, &few, &[], &[], now);
        assert!(changes.is_empty(), "ten messages do not raise an alarm");

        let many = vec![(key(HOUR, "email.sent", ""), 2000), (key(HOUR, "email.bounced", "hard"), 120)];
        let (changes, measured) = evaluate("ws", &settings, &many, &[], &[], now);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].event_type, "deliverability.threshold_crossed");
        assert_eq!(changes[0].alarm.key, "bounce_rate|provider|ses");
        assert!(measured.iter().any(|m| m.metric == "BounceRate" && m.value == "ses" && (m.rate - 0.06).abs() < 1e-9));

        let stored = Alarm { version: 1, ..changes[0].alarm.clone() };
        let (again, _) = evaluate("ws", &settings, &many, std::slice::from_ref(&stored), &[], now);
        assert!(again.is_empty(), "a crossing is announced once");

        let better = vec![(key(HOUR, "email.sent", ""), 4000), (key(HOUR, "email.bounced", "hard"), 120)];
        let (changes, _) = evaluate("ws", &settings, &better, &[stored], &[], now);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].event_type, "deliverability.recovered");
        assert_eq!(changes[0].alarm.changes, 2);
        assert_eq!(changes[0].alarm.version, 1);
    }

    #[test]
    fn a_steady_source_goes_silent_after_its_usual_gap_and_resumes() {
        let steady: Vec<(CounterKey, u64)> =
            (0..48).map(|h| (key(HOUR - (60 - h) * 3600, "email.delivered", ""), 5)).collect();
        let last = HOUR - 13 * 3600;
        let sources = vec![("src_1".to_owned(), "ses".to_owned())];
        let settings = Settings::default();
        // Quiet for 5 hours: not yet.
        let early = Timestamp::from_unix_seconds(last + 3600 + 5 * 3600).unwrap();
        assert!(
            evaluate("ws", &settings, &steady, &[], &sources, early).0.iter().all(|c| c.event_type != "source.silent")
        );
        // Quiet for 7 hours: silent.
        let late = Timestamp::from_unix_seconds(last + 3600 + 7 * 3600).unwrap();
        let (changes, _) = evaluate("ws", &settings, &steady, &[], &sources, late);
        let silent = changes.iter().find(|c| c.event_type == "source.silent").expect("silent");
        let stored = Alarm { version: 1, ..silent.alarm.clone() };
        assert!(evaluate("ws", &settings, &steady, std::slice::from_ref(&stored), &sources, late).0.is_empty());
        let mut back = steady.clone();
        back.push((key(hour_of(late), "email.delivered", ""), 1));
        let (changes, _) = evaluate("ws", &settings, &back, &[stored], &sources, late);
        assert_eq!(changes.iter().map(|c| c.event_type).collect::<Vec<_>>(), vec!["source.resumed"]);
    }

    #[test]
    fn a_source_with_occasional_traffic_is_not_watched() {
        let sparse: Vec<(CounterKey, u64)> =
            (0..5).map(|d| (key(HOUR - d * 86_400, "email.delivered", ""), 5)).collect();
        let sources = vec![("src_1".to_owned(), "ses".to_owned())];
        let later = Timestamp::from_unix_seconds(HOUR + 20 * 3600).unwrap();
        assert!(evaluate("ws", &Settings::default(), &sparse, &[], &sources, later).0.is_empty());
    }
}
