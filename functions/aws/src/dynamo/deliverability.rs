//! Counters, deliverability settings, alarms and the list of watched workspaces.
//!
//! Counters are items per workspace, series, hour, provider, source and domains, each holding
//! the counts of its event types, bounce kinds and reasons (`d`), in a partition per workspace,
//! series and day (`WS#<ws>#AGG#<series>#<day>`), so a window of days is one query per day. A
//! batch adds to each item it touches once: a consistent read, then a put over the version
//! read, carrying the ids of the last [`COUNTED_IDS`] events counted into it (10 hex digits
//! each), so a retried batch counts none of them again.

use std::collections::{BTreeMap, HashMap};

use futures_util::future::try_join_all;
use tidings_core::deliverability::counters::{self, CounterKey, Series, day_of};
use tidings_core::deliverability::{Alarm, Settings};
use tidings_core::ports::{DeliverabilityStore, QueuedEvent, StoreError};
use tidings_core::timestamp::Timestamp;

use crate::classify;

use super::items::{json, listed_ids, n, number, s, text, to_json, version_condition};
use super::{DynamoStore, Item, MAX_ATTEMPTS};

/// How many of the events last counted into a counter it remembers. A retry of a batch comes a
/// visibility timeout later; only more events than this on one counter in that time could make
/// it count one twice.
pub(super) const COUNTED_IDS: usize = 64;
/// How long counters are kept: as long as events are by default.
const COUNTER_DAYS: i64 = 90;

/// A counter key as its item's sort key (`<hour>|<provider>|<source>|<sending>|<recipient>|
/// <mailbox>`) and its entry in the item's counts (`<type>|<kind>|<reason>`): a batch's events
/// of one provider and domain share one item whatever their types, so a batch writes few items.
fn split(key: &CounterKey) -> (String, String) {
    (
        format!(
            "{:010}|{}|{}|{}|{}|{}",
            key.hour, key.provider, key.source, key.sending_domain, key.recipient_domain, key.mailbox_provider
        ),
        format!("{}|{}|{}", key.event_type, key.bounce_kind, key.bounce_reason),
    )
}

/// [`split`] undone.
fn join(series: Series, coarse: &str, fine: &str) -> Option<CounterKey> {
    let c: Vec<&str> = coarse.split('|').collect();
    let f: Vec<&str> = fine.split('|').collect();
    let ([hour, provider, source, sending, recipient, mailbox], [event_type, kind, reason]) =
        (c.as_slice(), f.as_slice())
    else {
        return None;
    };
    CounterKey::parse(
        series,
        &[*hour, *event_type, *provider, *source, *sending, *recipient, *mailbox, *kind, *reason].join("|"),
    )
}

fn counter_pk(ws: &str, series: Series, day: &str) -> String {
    format!("WS#{ws}#AGG#{}#{day}", series.as_str())
}

/// An event's id as a counter remembers it: 10 hex digits (40 bits) of its hash. Among the 64
/// a counter keeps, two alike by chance is a one-in-ten-billion event.
fn counted_id(id: &str) -> String {
    let hex = id.strip_prefix("evt_").unwrap_or(id);
    hex.get(..10).unwrap_or(hex).to_owned()
}

impl DynamoStore {
    /// Adds the events to their counters: one read and one conditional write per counter item
    /// the batch touches.
    pub(super) async fn count(&self, events: &[&QueuedEvent]) -> Result<(), StoreError> {
        let mut items: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        for queued in events {
            let e = &queued.event;
            for key in counters::keys_for(e, &queued.source).into_iter().flatten() {
                let pk = counter_pk(&e.workspaceid, key.series, &key.day());
                let (coarse, fine) = split(&key);
                items.entry((pk, coarse)).or_default().push((fine, counted_id(e.id.as_str())));
            }
        }
        try_join_all(items.into_iter().map(|((pk, sk), adds)| self.add_to_counters(pk, sk, adds))).await?;
        Ok(())
    }

    /// Adds one to the count of each `(fine key, event)` of `adds` in the item `pk`/`sk`,
    /// skipping events the item lists as counted.
    async fn add_to_counters(&self, pk: String, sk: String, adds: Vec<(String, String)>) -> Result<(), StoreError> {
        let hour: i64 = sk.split('|').next().and_then(|h| h.parse().ok()).unwrap_or(0);
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(&pk, &sk).await?;
            let version = current.as_ref().and_then(|i| number(i, "v")).unwrap_or(0);
            let mut counts: BTreeMap<String, u64> =
                current.as_ref().map(|i| text(i, "d").and_then(json)).transpose()?.unwrap_or_default();
            let mut counted = listed_ids(current.as_ref(), "g");
            let mut added = false;
            for (fine, id) in &adds {
                if !counted.contains(id) {
                    counted.push(id.clone());
                    let count = counts.entry(fine.clone()).or_default();
                    *count = count.saturating_add(1);
                    added = true;
                }
            }
            if !added {
                return Ok(());
            }
            let keep = counted.len().saturating_sub(COUNTED_IDS);
            let item: Item = HashMap::from([
                ("PK".to_owned(), s(&pk)),
                ("SK".to_owned(), s(&sk)),
                ("d".to_owned(), s(to_json(&counts)?)),
                ("g".to_owned(), s(counted[keep..].join(" "))),
                ("v".to_owned(), n(version + 1)),
                ("ttl".to_owned(), n(hour.saturating_add(COUNTER_DAYS * 86_400))),
            ]);
            let (condition, values) = version_condition(version);
            if self.put_if(item, condition, values).await? {
                return Ok(());
            }
        }
        Err(StoreError::contended(format!("counter {sk} kept changing under concurrent writers")))
    }

    /// Notes that `ws` has events on `day`, so the watch looks at it: one small write per
    /// workspace per day per warm function instance (called with the day index's mark).
    pub(super) async fn mark_watched(&self, ws: &str, day: &str) -> Result<(), StoreError> {
        self.client()
            .await
            .update_item()
            .table_name(&self.table)
            .key("PK", s("WATCH"))
            .key("SK", s(ws))
            .update_expression("SET #day = :day")
            .condition_expression("attribute_not_exists(#day) OR #day < :day")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", s(day))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                    Ok(())
                } else {
                    Err(classify("UpdateItem", &e))
                }
            })?;
        self.usage.wrote("UpdateItem", "WATCH", 1);
        Ok(())
    }

    /// Writes the versioned item `pk`/`sk` holding `body`, over the version read.
    pub(super) async fn put_versioned(
        &self,
        pk: String,
        sk: &str,
        read: u64,
        body: String,
    ) -> Result<bool, StoreError> {
        self.put_versioned_until(pk, sk, read, body, None).await
    }

    /// [`DynamoStore::put_versioned`], the item expiring at `ttl` (epoch seconds) when given.
    pub(super) async fn put_versioned_until(
        &self,
        pk: String,
        sk: &str,
        read: u64,
        body: String,
        ttl: Option<i64>,
    ) -> Result<bool, StoreError> {
        let read = i64::try_from(read)
            .ok()
            .filter(|v| *v < i64::MAX)
            .ok_or_else(|| StoreError::refused("version out of range"))?;
        let mut item: Item = HashMap::from([
            ("PK".to_owned(), s(pk)),
            ("SK".to_owned(), s(sk)),
            ("d".to_owned(), s(body)),
            ("v".to_owned(), n(read + 1)),
        ]);
        if let Some(ttl) = ttl {
            item.insert("ttl".to_owned(), n(ttl));
        }
        let (condition, values) = version_condition(read);
        self.put_if(item, condition, values).await
    }
}

impl DeliverabilityStore for DynamoStore {
    async fn counters(
        &self,
        workspace: &str,
        series: Series,
        since_hour: i64,
        until_hour: i64,
    ) -> Result<Vec<(CounterKey, u64)>, StoreError> {
        let mut days = Vec::new();
        let mut day_start = since_hour.div_euclid(86_400) * 86_400;
        while day_start <= until_hour && days.len() < 400 {
            days.push(day_of(day_start));
            day_start += 86_400;
        }
        let lo = format!("{since_hour:010}");
        let hi = format!("{until_hour:010}|~");
        let pages: Vec<Vec<Vec<(CounterKey, u64)>>> = try_join_all(days.iter().map(|day| {
            self.query_all(
                None,
                "PK = :pk AND SK BETWEEN :lo AND :hi",
                vec![(":pk", s(counter_pk(workspace, series, day))), (":lo", s(&lo)), (":hi", s(&hi))],
                true,
                |item| {
                    let coarse = text(item, "SK")?;
                    let counts: BTreeMap<String, u64> = json(text(item, "d")?)?;
                    let keys: Result<Vec<(CounterKey, u64)>, StoreError> = counts
                        .into_iter()
                        .map(|(fine, n)| {
                            join(series, coarse, &fine).map(|key| (key, n)).ok_or_else(|| {
                                StoreError::malformed(format!("counter {coarse:?} {fine:?} is not one tidings writes"))
                            })
                        })
                        .collect();
                    Ok(Some(keys?))
                },
                usize::MAX,
            )
        }))
        .await?;
        Ok(pages.into_iter().flatten().flatten().collect())
    }

    async fn deliverability_settings(&self, workspace: &str) -> Result<Option<Settings>, StoreError> {
        let Some(item) = self.get(&format!("WS#{workspace}#SETTINGS"), "DELIVERABILITY").await? else {
            return Ok(None);
        };
        let mut settings: Settings = json(text(&item, "d")?)?;
        settings.version = u64::try_from(number(&item, "v").unwrap_or(0)).unwrap_or(0);
        Ok(Some(settings))
    }

    async fn put_deliverability_settings(&self, workspace: &str, settings: &Settings) -> Result<bool, StoreError> {
        let body = to_json(&Settings { version: 0, ..settings.clone() })?;
        self.put_versioned(format!("WS#{workspace}#SETTINGS"), "DELIVERABILITY", settings.version, body).await
    }

    async fn alarms(&self, workspace: &str) -> Result<Vec<Alarm>, StoreError> {
        self.query_all(
            None,
            "PK = :pk",
            vec![(":pk", s(format!("WS#{workspace}#ALARMS")))],
            true,
            |item| {
                let mut alarm: Alarm = json(text(item, "d")?)?;
                alarm.version = u64::try_from(number(item, "v").unwrap_or(0)).unwrap_or(0);
                Ok(Some(alarm))
            },
            usize::MAX,
        )
        .await
    }

    async fn put_alarm(&self, alarm: &Alarm) -> Result<bool, StoreError> {
        let body = to_json(&Alarm { version: 0, ..alarm.clone() })?;
        self.put_versioned(format!("WS#{}#ALARMS", alarm.workspace), &alarm.key, alarm.version, body).await
    }

    async fn watched_workspaces(&self) -> Result<Vec<String>, StoreError> {
        let since = day_of(Timestamp::now().unix_seconds() - 31 * 86_400);
        self.query_all(
            None,
            "PK = :pk",
            vec![(":pk", s("WATCH"))],
            true,
            |item| {
                let recent = item.get("day").and_then(|v| v.as_s().ok()).is_some_and(|d| *d >= since);
                recent.then(|| text(item, "SK").map(str::to_owned)).transpose()
            },
            usize::MAX,
        )
        .await
    }
}

impl tidings_core::ports::AuditStore for DynamoStore {
    async fn record_audit(&self, entry: &tidings_core::audit::AuditEntry) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            ("PK".to_owned(), s(format!("WS#{}#AUDIT", entry.workspace))),
            ("SK".to_owned(), s(&entry.id)),
            ("d".to_owned(), s(to_json(entry)?)),
            ("ttl".to_owned(), n(entry.at.unix_seconds().saturating_add(AUDIT_DAYS * 86_400))),
        ]);
        self.put(item).await
    }

    async fn audit(
        &self,
        workspace: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<tidings_core::audit::AuditPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut entries: Vec<tidings_core::audit::AuditEntry> = self
            .query_all(
                None,
                "PK = :pk AND SK < :before",
                vec![(":pk", s(format!("WS#{workspace}#AUDIT"))), (":before", s(before.unwrap_or("~")))],
                false,
                |item| Ok(Some(json(text(item, "d")?)?)),
                limit + 1,
            )
            .await?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(tidings_core::audit::AuditPage { entries, next })
    }
}

/// How long audit entries are kept: a year and a bit, past most compliance look-backs.
const AUDIT_DAYS: i64 = 400;

/// How long a pace nobody wrote is kept before DynamoDB's TTL removes it.
const PACE_KEPT_SECONDS: i64 = 86_400;

/// A subscription's pace has a partition of its own: a busy subscription's turns are taken
/// there, away from its workspace's other items.
fn pace_pk(workspace: &str, subscription: &str) -> String {
    format!("WS#{workspace}#PACE#{subscription}")
}

impl tidings_core::ports::PaceStore for DynamoStore {
    async fn pace(
        &self,
        workspace: &str,
        subscription: &str,
    ) -> Result<(tidings_core::pacing::PaceState, u64), StoreError> {
        // Consistent: a turn taken over a stale read would be refused by the write anyway.
        let Some(item) = self.get_with(&pace_pk(workspace, subscription), "PACE", true).await? else {
            return Ok(Default::default());
        };
        let version = u64::try_from(number(&item, "v").unwrap_or(0)).unwrap_or(0);
        Ok((json(text(&item, "d")?)?, version))
    }

    async fn put_pace(
        &self,
        workspace: &str,
        subscription: &str,
        state: &tidings_core::pacing::PaceState,
        read: u64,
    ) -> Result<bool, StoreError> {
        let ttl = Timestamp::now().unix_seconds() + PACE_KEPT_SECONDS;
        self.put_versioned_until(pace_pk(workspace, subscription), "PACE", read, to_json(state)?, Some(ttl)).await
    }
}
