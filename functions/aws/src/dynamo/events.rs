//! Recording an event (three conditional writes), the day index, and event listings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use tidings_core::event::CanonicalEvent;
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{EventPage, EventQuery, Expiry, QueuedEvent, Recorded, StoreError};
use tidings_core::state::{self, MessageState};
use tidings_core::suppression::{self, Suppression};
use tidings_core::timestamp::Timestamp;

use crate::classify;

use super::items::{
    applied_id, day, days_pk, decode_event, event_items, json, listed_ids, message_pk, n, number, parse_cursor,
    position, s, text, time_key, to_json, version_condition,
};
use super::{APPLIED_IDS, DynamoStore, Item, MARKED_DAYS_CACHE, MAX_ATTEMPTS, MAX_DAYS_AT_ONCE};

pub(super) enum Attempt {
    /// The message state and suppression change are in place.
    Applied,
    /// Another writer changed the state or suppression in between: read again and retry.
    Conflict,
}

impl DynamoStore {
    /// Adds `day` to the workspace's day index (`WS#<ws>#DAYS`), the days that hold its events,
    /// before the first event of that day is stored, so a workspace-wide listing reads only
    /// those day partitions instead of walking back through empty ones. Idempotent (a set
    /// `ADD`); a store writes each pair once and remembers it, so this is one small write per
    /// workspace per day per warm function instance.
    pub(super) async fn mark_day(&self, ws: &str, day: String) -> Result<(), StoreError> {
        let key = (ws.to_owned(), day);
        if self.marked_days.lock().is_ok_and(|marked| marked.contains(&key)) {
            return Ok(());
        }
        self.client()
            .await
            .update_item()
            .table_name(&self.table)
            .key("PK", s(days_pk(ws)))
            .key("SK", s("DAYS"))
            .update_expression("ADD days :day")
            .expression_attribute_values(":day", AttributeValue::Ss(vec![key.1.clone()]))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        self.usage.wrote("UpdateItem", &days_pk(ws), 1);
        self.mark_watched(ws, &key.1).await?;
        if let Ok(mut marked) = self.marked_days.lock() {
            if marked.len() >= MARKED_DAYS_CACHE {
                marked.clear();
            }
            marked.insert(key);
        }
        Ok(())
    }

    /// The days that hold a workspace's events, newest first.
    pub(super) async fn days(&self, ws: &str) -> Result<Vec<String>, StoreError> {
        let mut days = match self.get(&days_pk(ws), "DAYS").await?.and_then(|mut item| item.remove("days")) {
            Some(AttributeValue::Ss(days)) => days,
            _ => Vec::new(),
        };
        days.sort_unstable_by(|a, b| b.cmp(a));
        Ok(days)
    }

    /// One attempt at recording an event's effects: plain conditional writes, in an order that makes
    /// a retry after a crash between them safe, instead of a transaction (which DynamoDB bills
    /// at twice the write units).
    ///
    /// 1. The message state, with an optimistic version check. The state item keeps the ids of
    ///    the last [`APPLIED_IDS`] events applied to it (`ev`), so an event the previous attempt
    ///    applied before it crashed is not counted twice.
    /// 2. The suppression entry, with a version check; applying the same event again yields
    ///    the same entry (the newest event wins).
    /// 3. The hourly counters, per batch ([`DynamoStore::record_all`]).
    /// 4. The event item ([`DynamoStore::put_event`]), on condition that its key is new: the
    ///    last write, so an event is only ever seen as stored (and a retry as a duplicate) once
    ///    its effects are in place.
    ///
    /// This is steps 1 and 2.
    /// A reader may see a state that counts an event a few milliseconds before the event item
    /// itself appears; nothing is lost or doubled.
    pub(super) async fn try_effects(&self, queued: &QueuedEvent, expires_at: Expiry) -> Result<Attempt, StoreError> {
        let e = &queued.event;
        let ws = e.workspaceid.as_str();
        // No read of the event first: the processor reads it before it enqueues deliveries and
        // calls this only for an event it did not find, so providers' retries (SendGrid's ~3 per
        // event) stop there for one read unit. A duplicate that gets here (two copies processed
        // at once) is still caught: the state lists it, and the event's write is refused.
        self.mark_day(ws, day(e.time.unix_millis())).await?;

        if let Some((message_id, recipient)) = state::key(e) {
            let pk = message_pk(ws, message_id);
            let sk = format!("STATE#{recipient}");
            let current = self.get(&pk, &sk).await?;
            let version = current.as_ref().and_then(|i| number(i, "v")).unwrap_or(0);
            // Kept as long as the latest of its events.
            let current_ttl = current.as_ref().and_then(|i| number(i, "ttl"));
            let mut applied = listed_ids(current.as_ref(), "ev");
            let short_id = applied_id(e.id.as_str());
            if !applied.contains(&short_id) {
                let next = match current {
                    Some(item) => {
                        let mut state: MessageState = json(text(&item, "d")?)?;
                        state.apply(e);
                        Some(state)
                    }
                    None => MessageState::new(e),
                };
                if let Some(state) = next {
                    applied.push(short_id);
                    let keep = applied.len().saturating_sub(APPLIED_IDS);
                    let item: Item = HashMap::from([
                        ("PK".to_owned(), s(pk)),
                        ("SK".to_owned(), s(sk)),
                        ("d".to_owned(), s(to_json(&state)?)),
                        ("ev".to_owned(), s(applied[keep..].join(" "))),
                        ("v".to_owned(), n(version + 1)),
                        ("ttl".to_owned(), n(expires_at.event.unix_seconds().max(current_ttl.unwrap_or(0)))),
                    ]);
                    let (condition, values) = version_condition(version);
                    if !self.put_if(item, condition, values).await? {
                        return Ok(Attempt::Conflict);
                    }
                }
            }
        }

        if let (Some(change), Some(recipient)) = (suppression::change_for(e), e.data.recipient.as_deref()) {
            let pk = format!("WS#{ws}#SUPP");
            let current = self.get(&pk, recipient).await?;
            let version = current.as_ref().and_then(|i| number(i, "v")).unwrap_or(0);
            let entry: Option<Suppression> = current.as_ref().map(|i| text(i, "d").and_then(json)).transpose()?;
            if let Some(next) =
                suppression::apply(entry.as_ref(), e, &change).filter(|next| Some(next) != entry.as_ref())
            {
                let item: Item = HashMap::from([
                    ("PK".to_owned(), s(pk)),
                    ("SK".to_owned(), s(recipient)),
                    ("active".to_owned(), AttributeValue::Bool(next.active)),
                    ("d".to_owned(), s(to_json(&next)?)),
                    ("v".to_owned(), n(version + 1)),
                ]);
                let (condition, values) = version_condition(version);
                if !self.put_if(item, condition, values).await? {
                    return Ok(Attempt::Conflict);
                }
            }
        }

        Ok(Attempt::Applied)
    }

    /// The last write of recording an event: its item, on condition that its key is new.
    /// A provider record kept for less than its event goes first, as an item of its own (the
    /// same again for a duplicate: harmless).
    pub(super) async fn put_event(&self, queued: &QueuedEvent, expires_at: Expiry) -> Result<Recorded, StoreError> {
        let (event, raw) = event_items(queued, expires_at)?;
        if let Some(raw) = raw {
            self.put(raw).await?;
        }
        if self.put_if(event, "attribute_not_exists(PK)", vec![]).await? {
            return Ok(Recorded::Stored);
        }
        // Already stored (by another instance, or earlier): a duplicate.
        Ok(Recorded::Duplicate)
    }

    /// Records a batch: each event's message state and suppression change, then the batch's
    /// counters (one write per counter the batch touches, not one per event), then the event
    /// items. The counters come before the event items so that an event seen as stored has
    /// been counted; each counter remembers the last [`COUNTED_IDS`](super::deliverability::COUNTED_IDS) events it counted, so a
    /// retry after a crash between the two counts none twice.
    pub(super) async fn record_all(&self, events: &[(&QueuedEvent, Expiry)]) -> Vec<Result<Recorded, StoreError>> {
        let mut results: Vec<Option<Result<Recorded, StoreError>>> = vec![None; events.len()];
        for (i, (queued, expires_at)) in events.iter().enumerate() {
            let mut outcome = Err(StoreError::contended(format!(
                "event {}: message state kept changing under concurrent writers",
                queued.event.id
            )));
            for _ in 0..MAX_ATTEMPTS {
                match self.try_effects(queued, *expires_at).await {
                    Ok(Attempt::Conflict) => continue,
                    Ok(Attempt::Applied) => {
                        outcome = Ok(());
                        break;
                    }
                    Err(error) => {
                        outcome = Err(error);
                        break;
                    }
                }
            }
            if let Err(error) = outcome {
                results[i] = Some(Err(error));
            }
        }
        let ready: Vec<usize> = (0..events.len()).filter(|i| results[*i].is_none()).collect();
        let counted: Vec<&QueuedEvent> = ready.iter().map(|i| events[*i].0).collect();
        if let Err(error) = self.count(&counted).await {
            for i in &ready {
                results[*i] = Some(Err(error.clone()));
            }
        }
        for (i, (queued, expires_at)) in events.iter().enumerate() {
            if results[i].is_none() {
                results[i] = Some(self.put_event(queued, *expires_at).await);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(StoreError::refused("event left unrecorded")))).collect()
    }

    pub(super) async fn event_page(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let ws = query.workspace.as_str();
        let pattern = query.type_pattern.as_deref().map(TypePattern::parse).transpose().map_err(StoreError::from)?;
        let limit = query.limit.clamp(1, 1000);
        let since = query.since.map_or(0, |t| t.unix_millis());
        let until = query.until.map_or(i64::MAX / 2, |t| t.unix_millis());
        let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
        // Newest-first position below which results continue.
        let below = |ms: i64, id: &str| cursor.as_ref().is_none_or(|(cms, cid)| (ms, id) < (*cms, cid.as_str()));
        let wanted = |event: &CanonicalEvent| {
            let ms = event.time.unix_millis();
            ms >= since
                && ms <= until
                && below(ms, event.id.as_str())
                && query.recipient.as_deref().is_none_or(|r| event.data.recipient.as_deref() == Some(r))
                && pattern.as_ref().is_none_or(|p| p.matches(&event.event_type.to_string()))
        };

        // A type filter can match little of what the keys select: then at most READ_BUDGET
        // items are read, and the page ends where reading stopped (`next` continues from there).
        let budget = AtomicUsize::new(self.read_budget);
        let limited = pattern.is_some().then_some(&budget);
        let last_read: std::sync::Mutex<Option<(i64, String)>> = std::sync::Mutex::new(None);
        let read = |item: &Item, sort_key: &str| -> Result<Option<CanonicalEvent>, StoreError> {
            if limited.is_some()
                && let Some(position) = item.get(sort_key).and_then(|v| v.as_s().ok()).and_then(|k| position(k))
            {
                *last_read.lock().unwrap_or_else(|e| e.into_inner()) = Some(position);
            }
            decode_event(item, &wanted)
        };
        let mut events: Vec<CanonicalEvent> = Vec::new();
        if let Some(message_id) = &query.message_id {
            // A message's timeline is one partition; it is small, so read it whole and order it.
            events = self
                .query_all(
                    None,
                    "PK = :pk AND begins_with(SK, :evt)",
                    vec![(":pk", s(message_pk(ws, message_id))), (":evt", s("EVT#"))],
                    true,
                    |item| decode_event(item, &wanted),
                    usize::MAX,
                )
                .await?;
            events.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
            events.truncate(limit + 1);
        } else {
            let hi = cursor.as_ref().map_or(until, |(ms, _)| (*ms).min(until));
            let lo_key = time_key(since, "");
            let hi_key = format!("{:013}#~", hi.max(0));
            if let Some(recipient) = &query.recipient {
                events = self
                    .query_budgeted(
                        Some("GSI1"),
                        "GSI1PK = :pk AND GSI1SK BETWEEN :lo AND :hi",
                        vec![(":pk", s(format!("WS#{ws}#RCPT#{recipient}"))), (":lo", s(lo_key)), (":hi", s(hi_key))],
                        false,
                        |item| read(item, "GSI1SK"),
                        limit + 1,
                        limited,
                    )
                    .await?;
            } else {
                // The workspace's events, from the day partitions its day index lists inside
                // [since, until], newest day first, a few days at a time.
                // No `until` (nor cursor) means no upper bound: days sort as text, and "9999"
                // after every `yyyy-mm-dd`.
                let first = day(since);
                let last = if Timestamp::from_unix_millis(hi).is_some() { day(hi) } else { "9999".to_owned() };
                let days: Vec<String> =
                    self.days(ws).await?.into_iter().filter(|d| *d >= first && *d <= last).collect();
                let mut rest = days.as_slice();
                let mut at_once = 1;
                while events.len() <= limit && !rest.is_empty() && budget.load(Ordering::Relaxed) > 0 {
                    let (now, later) = rest.split_at(at_once.min(rest.len()));
                    let need = limit + 1 - events.len();
                    let pages = try_join_all(now.iter().map(|d| {
                        self.query_budgeted(
                            Some("GSI2"),
                            "GSI2PK = :pk AND GSI2SK BETWEEN :lo AND :hi",
                            vec![
                                (":pk", s(format!("WS#{ws}#DAY#{d}"))),
                                (":lo", s(lo_key.clone())),
                                (":hi", s(hi_key.clone())),
                            ],
                            false,
                            |item| read(item, "GSI2SK"),
                            need,
                            limited,
                        )
                    }))
                    .await?;
                    // Days newest first, each newest first: the concatenation is in order.
                    events.extend(pages.into_iter().flatten());
                    rest = later;
                    // Under a read budget, one day at a time: where reading stopped is then one
                    // position, before which nothing was read.
                    if limited.is_none() {
                        at_once = (at_once * 2).min(MAX_DAYS_AT_ONCE);
                    }
                }
            }
        }
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| {
                tidings_core::ports::EventCursor { ms: e.time.unix_millis(), id: e.id.to_string() }.to_string()
            })
        } else if budget.load(Ordering::Relaxed) == 0 {
            // The budget ran out first: continue after the last item read.
            last_read
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .map(|(ms, id)| tidings_core::ports::EventCursor { ms, id }.to_string())
        } else {
            None
        };
        Ok(EventPage { events, next })
    }
}
