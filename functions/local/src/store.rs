//! [`Store`] on SQLite: sources, events with their message states and suppressions, nonces,
//! subscriptions, delivery claims, attempts and API keys, each call one transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tidings_core::auth::{NonceCheck, ReplayClaim};
use tidings_core::deliverability::{Alarm, CounterKey, Series, Settings, counters};
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{
    ApiKey, AuditStore, Claim, DeliverabilityStore, DeliveryClaim, DeliveryStore, EventCursor, EventPage, EventQuery,
    EventStore, Expiry, KeyStore, NonceStore, QueuedEvent, Recorded, SourceStore, StoreError, SubscriptionStore,
};
use tidings_core::source::Source;
use tidings_core::state::{self, MessageState};
use tidings_core::subscription::Subscription;
use tidings_core::suppression::{self, Suppression};
use tidings_core::timestamp::Timestamp;

use crate::{Sqlite, db_error, json_error, now_ms};

impl Sqlite {
    /// One page of [`Store::events`]: at most `limit` events, reading at most the store's scan
    /// budget of rows ([`SCAN_BUDGET`] unless [`Sqlite::with_scan_budget`] set another). A type filter that matches little could otherwise read a
    /// workspace's whole history in one request: when the budget runs out, the page holds what
    /// matched so far and `next` continues after the last row read.
    fn event_page(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let pattern = query.type_pattern.as_deref().map(TypePattern::parse).transpose().map_err(StoreError::from)?;
        let limit = query.limit.clamp(1, 1000);
        // The cursor is the (time, id) of the last event returned; pages continue strictly
        // before it in (time desc, id desc) order.
        let (mut before_ms, mut before_id) = match query.cursor.as_deref() {
            Some(text) => {
                let cursor = EventCursor::parse(text).map_err(StoreError::from)?;
                (cursor.ms, cursor.id)
            }
            None => (i64::MAX, String::new()),
        };
        let since = query.since.map_or(i64::MIN, |t| t.unix_millis());
        let until = query.until.map_or(i64::MAX, |t| t.unix_millis());
        let db = self.db();
        let mut select = db
            .prepare_cached(
                "SELECT type, body, time_ms, id FROM events
                 WHERE workspace = ?1 AND (?2 IS NULL OR message_id = ?2) AND (?3 IS NULL OR recipient = ?3)
                   AND time_ms >= ?4 AND time_ms <= ?5
                   AND (time_ms < ?6 OR (time_ms = ?6 AND (?7 = '' OR id < ?7)))
                 ORDER BY time_ms DESC, id DESC LIMIT ?8",
            )
            .map_err(db_error)?;
        let mut events = Vec::new();
        let mut scanned = 0;
        loop {
            let batch = (limit * 2).min(self.scan_budget - scanned);
            let rows: Vec<(String, String, i64, String)> = select
                .query_map(
                    params![
                        query.workspace,
                        query.message_id,
                        query.recipient,
                        since,
                        until,
                        before_ms,
                        before_id,
                        batch as i64
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            let exhausted = rows.len() < batch;
            scanned += rows.len();
            for (event_type, body, ms, id) in rows {
                before_ms = ms;
                before_id = id;
                // The type column is matched first: only events on the page are parsed.
                if pattern.as_ref().is_none_or(|p| p.matches(&event_type)) {
                    events.push(serde_json::from_str::<CanonicalEvent>(&body).map_err(json_error)?);
                    if events.len() == limit {
                        return Ok(EventPage {
                            events,
                            next: Some(EventCursor { ms: before_ms, id: before_id }.to_string()),
                        });
                    }
                }
            }
            if exhausted {
                return Ok(EventPage { events, next: None });
            }
            if scanned >= self.scan_budget {
                return Ok(EventPage { events, next: Some(EventCursor { ms: before_ms, id: before_id }.to_string()) });
            }
        }
    }
}

/// Stores one event with its message state and suppression change, within the caller's
/// transaction (or savepoint).
fn record_in(tx: &Connection, queued: &QueuedEvent, expires_at: Expiry) -> Result<Recorded, StoreError> {
    let event = &queued.event;
    let workspace = event.workspaceid.as_str();
    let body = serde_json::to_string(event).map_err(json_error)?;
    let inserted = tx
        .execute(
            "INSERT INTO events (workspace, id, message_id, recipient, type, time_ms, body, raw, source, expires, raw_expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (workspace, id) DO NOTHING",
            params![
                workspace,
                event.id.as_str(),
                event.data.message_id,
                event.data.recipient,
                event.event_type.to_string(),
                event.time.unix_millis(),
                body,
                queued.raw,
                queued.source,
                expires_at.event.unix_seconds(),
                (expires_at.raw < expires_at.event).then(|| expires_at.raw.unix_seconds())
            ],
        )
        .map_err(db_error)?;
    if inserted == 0 {
        return Ok(Recorded::Duplicate);
    }
    for key in counters::keys_for(event, &queued.source).into_iter().flatten() {
        tx.prepare_cached(
            "INSERT INTO counters (workspace, series, hour, key, n) VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (workspace, series, hour, key) DO UPDATE SET n = n + 1",
        )
        .and_then(|mut insert| insert.execute(params![workspace, key.series.as_str(), key.hour, key.text()]))
        .map_err(db_error)?;
    }
    if let Some((message_id, recipient)) = state::key(event) {
        let current: Option<MessageState> = load(
            tx.query_row(
                "SELECT body FROM message_states WHERE workspace = ?1 AND message_id = ?2 AND recipient = ?3",
                params![workspace, message_id, recipient],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?,
        )?;
        let next = match current {
            Some(mut state) => {
                state.apply(event);
                Some(state)
            }
            None => MessageState::new(event),
        };
        if let Some(state) = next {
            // Kept as long as the latest of its events.
            tx.execute(
                "INSERT INTO message_states (workspace, message_id, recipient, body, expires) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (workspace, message_id, recipient)
                 DO UPDATE SET body = excluded.body, expires = max(coalesce(expires, 0), excluded.expires)",
                params![
                    workspace,
                    message_id,
                    recipient,
                    serde_json::to_string(&state).map_err(json_error)?,
                    expires_at.event.unix_seconds()
                ],
            )
            .map_err(db_error)?;
        }
    }
    if let (Some(change), Some(recipient)) = (suppression::change_for(event), event.data.recipient.as_deref()) {
        let current: Option<Suppression> = load(
            tx.query_row(
                "SELECT body FROM suppressions WHERE workspace = ?1 AND recipient = ?2",
                params![workspace, recipient],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?,
        )?;
        if let Some(entry) = suppression::apply(current.as_ref(), event, &change) {
            tx.execute(
                "INSERT OR REPLACE INTO suppressions (workspace, recipient, active, body) VALUES (?1, ?2, ?3, ?4)",
                params![workspace, recipient, entry.active, serde_json::to_string(&entry).map_err(json_error)?],
            )
            .map_err(db_error)?;
        }
    }
    Ok(Recorded::Stored)
}

impl Sqlite {
    /// The JSON body one row holds, read as `T`.
    fn one<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        let body: Option<String> = self.db().query_row(sql, params, |r| r.get(0)).optional().map_err(db_error)?;
        load(body)
    }

    /// The JSON bodies of every row, read as `T`.
    fn all<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        let db = self.db();
        let mut select = db.prepare_cached(sql).map_err(db_error)?;
        let bodies: Vec<String> =
            select.query_map(params, |r| r.get(0)).map_err(db_error)?.collect::<Result<_, _>>().map_err(db_error)?;
        bodies.iter().map(|b| serde_json::from_str(b).map_err(json_error)).collect()
    }
}

fn load<T: serde::de::DeserializeOwned>(body: Option<String>) -> Result<Option<T>, StoreError> {
    body.map(|b| serde_json::from_str(&b).map_err(json_error)).transpose()
}

impl Sqlite {
    /// Stores a batch in one commit (each commit is a WAL write and sync, what dominated the
    /// pipeline's profile), a savepoint per event so one failing does not undo the others. A
    /// failure of the transaction itself is every event's.
    fn record_all(&self, events: &[(QueuedEvent, Expiry)]) -> Vec<Result<Recorded, StoreError>> {
        let every = |error: rusqlite::Error| {
            let error = db_error(error);
            events.iter().map(|_| Err(error.clone())).collect::<Vec<_>>()
        };
        let mut db = self.db();
        let mut tx = match db.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(error) => return every(error),
        };
        let mut results = Vec::with_capacity(events.len());
        for (queued, expires_at) in events {
            let result = tx.savepoint().map_err(db_error).and_then(|savepoint| {
                let recorded = record_in(&savepoint, queued, *expires_at)?;
                savepoint.commit().map_err(db_error)?;
                Ok(recorded)
            });
            results.push(result);
        }
        match tx.commit() {
            Ok(()) => results,
            Err(error) => every(error),
        }
    }
}

impl SourceStore for Sqlite {
    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        let (id, workspace) = (source.id.clone(), source.workspace.clone());
        let body = serde_json::to_string(source).map_err(json_error)?;
        self.blocking(move |s| {
            s.db()
                .execute(
                    "INSERT INTO sources (id, workspace, body) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET body = excluded.body WHERE workspace = excluded.workspace",
                    params![id, workspace, body],
                )
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |s| s.one("SELECT body FROM sources WHERE id = ?1", params![id])).await
    }

    async fn sources(&self, workspace: &str) -> Result<Vec<Source>, StoreError> {
        let workspace = workspace.to_owned();
        self.blocking(move |s| s.all("SELECT body FROM sources WHERE workspace = ?1 ORDER BY id", params![workspace]))
            .await
    }

    async fn delete_source(&self, workspace: &str, id: &str) -> Result<bool, StoreError> {
        let (workspace, id) = (workspace.to_owned(), id.to_owned());
        self.blocking(move |s| {
            let changed = s
                .db()
                .execute("DELETE FROM sources WHERE workspace = ?1 AND id = ?2", params![workspace, id])
                .map_err(db_error)?;
            Ok(changed > 0)
        })
        .await
    }
}

impl NonceStore for Sqlite {
    async fn claim_nonce(&self, claim: &ReplayClaim) -> Result<NonceCheck, StoreError> {
        let claim = claim.clone();
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let provider = claim.provider.as_str();
            let seen: Option<(Vec<u8>, i64)> = tx
                .query_row(
                    "SELECT fingerprint, expires FROM nonces WHERE provider = ?1 AND nonce = ?2",
                    params![provider, claim.nonce],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_error)?;
            let now = now_ms() / 1000;
            let check = match seen {
                Some((fingerprint, expires)) if expires >= now => {
                    if fingerprint == claim.fingerprint {
                        NonceCheck::SameRequest
                    } else {
                        NonceCheck::Reused
                    }
                }
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO nonces (provider, nonce, fingerprint, expires) VALUES (?1, ?2, ?3, ?4)",
                        params![provider, claim.nonce, claim.fingerprint.to_vec(), claim.remember_until.unix_seconds()],
                    )
                    .map_err(db_error)?;
                    NonceCheck::Fresh
                }
            };
            tx.commit().map_err(db_error)?;
            Ok(check)
        })
        .await
    }
}

impl EventStore for Sqlite {
    async fn record(&self, queued: &QueuedEvent, expires_at: Expiry) -> Result<Recorded, StoreError> {
        let queued = queued.clone();
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let recorded = record_in(&tx, &queued, expires_at)?;
            tx.commit().map_err(db_error)?;
            Ok(recorded)
        })
        .await
    }

    async fn record_batch(&self, events: &[(&QueuedEvent, Expiry)]) -> Vec<Result<Recorded, StoreError>> {
        let owned: Vec<(QueuedEvent, Expiry)> = events.iter().map(|(q, t)| ((*q).clone(), *t)).collect();
        let count = events.len();
        match self.blocking(move |s| Ok(s.record_all(&owned))).await {
            Ok(results) => results,
            Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
        }
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let query = query.clone();
        self.blocking(move |s| s.event_page(&query)).await
    }

    async fn event(
        &self,
        workspace: &str,
        _message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<CanonicalEvent>, StoreError> {
        let (workspace, id) = (workspace.to_owned(), event.as_str().to_owned());
        self.blocking(move |s| {
            s.one("SELECT body FROM events WHERE workspace = ?1 AND id = ?2", params![workspace, id])
        })
        .await
    }

    async fn raw(
        &self,
        workspace: &str,
        _message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<String>, StoreError> {
        let (workspace, id) = (workspace.to_owned(), event.as_str().to_owned());
        self.blocking(move |s| {
            s.db()
                // A record whose own retention ended reads as not kept, until the sweep clears it.
                .query_row(
                    "SELECT CASE WHEN raw_expires < ?3 THEN '' ELSE raw END FROM events WHERE workspace = ?1 AND id = ?2",
                    params![workspace, id, now_ms() / 1000],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)
        })
        .await
    }

    async fn message_states(&self, workspace: &str, message_id: &str) -> Result<Vec<MessageState>, StoreError> {
        let (workspace, message_id) = (workspace.to_owned(), message_id.to_owned());
        self.blocking(move |s| {
            s.all(
                "SELECT body FROM message_states WHERE workspace = ?1 AND message_id = ?2 ORDER BY recipient",
                params![workspace, message_id],
            )
        })
        .await
    }

    async fn suppressions(&self, workspace: &str) -> Result<Vec<Suppression>, StoreError> {
        let workspace = workspace.to_owned();
        self.blocking(move |s| {
            s.all(
                "SELECT body FROM suppressions WHERE workspace = ?1 AND active = 1 ORDER BY recipient",
                params![workspace],
            )
        })
        .await
    }

    async fn suppression(&self, workspace: &str, recipient: &str) -> Result<Option<Suppression>, StoreError> {
        let (workspace, recipient) = (workspace.to_owned(), recipient.to_owned());
        self.blocking(move |s| {
            s.one(
                "SELECT body FROM suppressions WHERE workspace = ?1 AND recipient = ?2",
                params![workspace, recipient],
            )
        })
        .await
    }

    async fn remove_suppression(&self, workspace: &str, recipient: &str) -> Result<bool, StoreError> {
        let (workspace, recipient) = (workspace.to_owned(), recipient.to_owned());
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let current: Option<Suppression> = load(
                tx.query_row(
                    "SELECT body FROM suppressions WHERE workspace = ?1 AND recipient = ?2 AND active = 1",
                    params![workspace, recipient],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)?,
            )?;
            let Some(mut entry) = current else { return Ok(false) };
            entry.active = false;
            entry.as_of = Timestamp::now().max(entry.as_of);
            tx.execute(
                "UPDATE suppressions SET active = 0, body = ?3 WHERE workspace = ?1 AND recipient = ?2",
                params![workspace, recipient, serde_json::to_string(&entry).map_err(json_error)?],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(true)
        })
        .await
    }
}

impl SubscriptionStore for Sqlite {
    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let (workspace, id) = (subscription.workspace.clone(), subscription.id.clone());
        let body = serde_json::to_string(subscription).map_err(json_error)?;
        self.blocking(move |s| {
            s.db()
                .execute(
                    "INSERT OR REPLACE INTO subscriptions (workspace, id, body) VALUES (?1, ?2, ?3)",
                    params![workspace, id, body],
                )
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<bool, StoreError> {
        let mut next = subscription.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(json_error)?;
        let (workspace, id, version) = (next.workspace, next.id, subscription.version as i64);
        self.blocking(move |s| {
            let changed = s
                .db()
                .execute(
                    "UPDATE subscriptions SET body = ?3
                     WHERE workspace = ?1 AND id = ?2 AND COALESCE(json_extract(body, '$.version'), 0) = ?4",
                    params![workspace, id, body, version],
                )
                .map_err(db_error)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn subscription(&self, workspace: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        let (workspace, id) = (workspace.to_owned(), id.to_owned());
        self.blocking(move |s| {
            s.one("SELECT body FROM subscriptions WHERE workspace = ?1 AND id = ?2", params![workspace, id])
        })
        .await
    }

    async fn subscriptions(&self, workspace: &str) -> Result<Vec<Subscription>, StoreError> {
        let workspace = workspace.to_owned();
        self.blocking(move |s| {
            s.all("SELECT body FROM subscriptions WHERE workspace = ?1 ORDER BY id", params![workspace])
        })
        .await
    }
}

impl DeliveryStore for Sqlite {
    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        let rows = attempts
            .iter()
            .map(|a| {
                let expires = a.at.unix_seconds().saturating_add(tidings_core::delivery::ATTEMPT_RETENTION_SECONDS);
                Ok((
                    a.workspace.clone(),
                    a.subscription.clone(),
                    serde_json::to_string(a).map_err(json_error)?,
                    expires,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction().map_err(db_error)?;
            for (workspace, subscription, body, expires) in rows {
                tx.execute(
                    "INSERT INTO attempts (workspace, subscription, body, expires) VALUES (?1, ?2, ?3, ?4)",
                    params![workspace, subscription, body, expires],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn claim_delivery(&self, claim: &DeliveryClaim<'_>, now: Timestamp) -> Result<Claim, StoreError> {
        let (workspace, subscription, key, holder) =
            (claim.workspace.to_owned(), claim.subscription.to_owned(), claim.key.to_owned(), claim.holder.to_owned());
        let lease_until = claim.lease_until;
        // A row per delivery, kept 14 days as on DynamoDB: longer than any copy of the task lives
        // on the queue. A claim has a holder and a lease; the mark after a 2xx has neither.
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let found: Option<(Option<String>, Option<i64>)> = tx
                .query_row(
                    "SELECT holder, lease FROM delivery_claims WHERE workspace = ?1 AND subscription = ?2 AND key = ?3",
                    params![workspace, subscription, key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(db_error)?;
            let taken = match found {
                None => true,
                Some((None, _)) => return Ok(Claim::Delivered),
                Some((Some(current), lease)) => current == holder || lease.unwrap_or(0) < now.unix_seconds(),
            };
            if !taken {
                return Ok(Claim::Held);
            }
            tx.execute(
                "INSERT OR REPLACE INTO delivery_claims (workspace, subscription, key, holder, lease, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    workspace,
                    subscription,
                    key,
                    holder,
                    lease_until.unix_seconds(),
                    now.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS
                ],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(Claim::Taken)
        })
        .await
    }

    async fn mark_delivered(
        &self,
        workspace: &str,
        subscription: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (workspace, subscription, key) = (workspace.to_owned(), subscription.to_owned(), key.to_owned());
        self.blocking(move |s| {
            s.db()
                .prepare_cached(
                    "INSERT OR REPLACE INTO delivery_claims (workspace, subscription, key, holder, lease, expires) VALUES (?1, ?2, ?3, NULL, NULL, ?4)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        workspace,
                        subscription,
                        key,
                        at.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS
                    ])
                })
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn attempts(
        &self,
        workspace: &str,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let (workspace, subscription) = (workspace.to_owned(), subscription.to_owned());
        self.blocking(move |s| {
            s.all(
                "SELECT body FROM attempts WHERE workspace = ?1 AND subscription = ?2 ORDER BY seq DESC LIMIT ?3",
                params![workspace, subscription, limit as i64],
            )
        })
        .await
    }
}

impl KeyStore for Sqlite {
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let hash = key.hash.clone();
        let body = serde_json::to_string(key).map_err(json_error)?;
        self.blocking(move |s| {
            s.db()
                .execute("INSERT OR REPLACE INTO api_keys (hash, body) VALUES (?1, ?2)", params![hash, body])
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash.to_owned();
        self.blocking(move |s| s.one("SELECT body FROM api_keys WHERE hash = ?1", params![hash])).await
    }
}

impl DeliverabilityStore for Sqlite {
    async fn counters(
        &self,
        workspace: &str,
        series: Series,
        since_hour: i64,
        until_hour: i64,
    ) -> Result<Vec<(CounterKey, u64)>, StoreError> {
        let workspace = workspace.to_owned();
        self.blocking(move |s| {
            let db = s.db();
            let mut select = db
                .prepare_cached(
                    "SELECT key, n FROM counters WHERE workspace = ?1 AND series = ?2 AND hour BETWEEN ?3 AND ?4",
                )
                .map_err(db_error)?;
            let rows = select
                .query_map(params![workspace, series.as_str(), since_hour, until_hour], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(db_error)?;
            let mut counters = Vec::new();
            for row in rows {
                let (key, n) = row.map_err(db_error)?;
                let key = CounterKey::parse(series, &key)
                    .ok_or_else(|| StoreError::malformed(format!("counter key {key:?} is not one tidings writes")))?;
                counters.push((key, u64::try_from(n).unwrap_or(0)));
            }
            Ok(counters)
        })
        .await
    }

    async fn deliverability_settings(&self, workspace: &str) -> Result<Option<Settings>, StoreError> {
        let workspace = workspace.to_owned();
        let read = self.blocking(move |s| settings_row(&s.db(), Versioned::Settings, &workspace)).await?;
        Ok(read.map(|(version, settings)| Settings { version, ..settings }))
    }

    async fn put_deliverability_settings(&self, workspace: &str, settings: &Settings) -> Result<bool, StoreError> {
        let workspace = workspace.to_owned();
        let read = i64::try_from(settings.version).map_err(|_| StoreError::refused("settings version out of range"))?;
        let body = serde_json::to_string(&Settings { version: 0, ..settings.clone() }).map_err(json_error)?;
        self.blocking(move |s| versioned_write(&s.db(), Versioned::Settings, &workspace, read, &body)).await
    }

    async fn alarms(&self, workspace: &str) -> Result<Vec<Alarm>, StoreError> {
        let workspace = workspace.to_owned();
        self.blocking(move |s| {
            let db = s.db();
            let mut select =
                db.prepare_cached("SELECT version, body FROM alarms WHERE workspace = ?1").map_err(db_error)?;
            let rows = select
                .query_map(params![workspace], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_error)?;
            let mut alarms = Vec::new();
            for row in rows {
                let (version, body) = row.map_err(db_error)?;
                let mut alarm: Alarm = serde_json::from_str(&body).map_err(json_error)?;
                alarm.version = u64::try_from(version).unwrap_or(0);
                alarms.push(alarm);
            }
            Ok(alarms)
        })
        .await
    }

    async fn put_alarm(&self, alarm: &Alarm) -> Result<bool, StoreError> {
        let workspace = alarm.workspace.clone();
        let key = alarm.key.clone();
        let read = i64::try_from(alarm.version).map_err(|_| StoreError::refused("alarm version out of range"))?;
        let body = serde_json::to_string(&Alarm { version: 0, ..alarm.clone() }).map_err(json_error)?;
        self.blocking(move |s| versioned_write(&s.db(), Versioned::Alarm(&key), &workspace, read, &body)).await
    }

    async fn watched_workspaces(&self) -> Result<Vec<String>, StoreError> {
        let since = now_ms() / 1000 - 31 * 86_400;
        self.blocking(move |s| {
            let db = s.db();
            let mut select = db
                .prepare_cached("SELECT DISTINCT workspace FROM counters WHERE hour >= ?1 ORDER BY workspace")
                .map_err(db_error)?;
            let rows = select.query_map(params![since], |r| r.get::<_, String>(0)).map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
        .await
    }
}

/// A row written over the version read: a workspace's deliverability or privacy settings, or
/// one of its alarms.
pub(crate) enum Versioned<'a> {
    Settings,
    Privacy,
    Alarm(&'a str),
}

impl Versioned<'_> {
    /// The table of a workspace's settings row.
    fn settings_table(&self) -> &'static str {
        match self {
            Versioned::Privacy => "privacy_settings",
            _ => "deliverability_settings",
        }
    }
}

/// A workspace's settings row (`Versioned::Settings` or `Versioned::Privacy`): its version and
/// its body read as `T`.
pub(crate) fn settings_row<T: serde::de::DeserializeOwned>(
    db: &Connection,
    row: Versioned<'_>,
    workspace: &str,
) -> Result<Option<(u64, T)>, StoreError> {
    let found: Option<(i64, String)> = db
        .query_row(
            &format!("SELECT version, body FROM {} WHERE workspace = ?1", row.settings_table()),
            params![workspace],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_error)?;
    found
        .map(|(version, body)| {
            Ok((u64::try_from(version).unwrap_or(0), serde_json::from_str(&body).map_err(json_error)?))
        })
        .transpose()
}

/// Writes the versioned row of `workspace` at version `read + 1`, only if the stored version is
/// `read` (0: no row).
pub(crate) fn versioned_write(
    db: &Connection,
    row: Versioned<'_>,
    workspace: &str,
    read: i64,
    body: &str,
) -> Result<bool, StoreError> {
    let changed = match row {
        Versioned::Alarm(key) if read == 0 => db.execute(
            "INSERT INTO alarms (workspace, key, version, body) VALUES (?1, ?2, 1, ?3) ON CONFLICT DO NOTHING",
            params![workspace, key, body],
        ),
        Versioned::Alarm(key) => db.execute(
            "UPDATE alarms SET version = version + 1, body = ?4 WHERE workspace = ?1 AND key = ?2 AND version = ?3",
            params![workspace, key, read, body],
        ),
        settings if read == 0 => db.execute(
            &format!(
                "INSERT INTO {} (workspace, version, body) VALUES (?1, 1, ?2) ON CONFLICT DO NOTHING",
                settings.settings_table()
            ),
            params![workspace, body],
        ),
        settings => db.execute(
            &format!(
                "UPDATE {} SET version = version + 1, body = ?3 WHERE workspace = ?1 AND version = ?2",
                settings.settings_table()
            ),
            params![workspace, read, body],
        ),
    }
    .map_err(db_error)?;
    Ok(changed == 1)
}

/// How long a pace nobody wrote is kept (Unix seconds).
const PACE_KEPT_SECONDS: i64 = 86_400;

impl tidings_core::ports::PaceStore for Sqlite {
    async fn pace(
        &self,
        workspace: &str,
        subscription: &str,
    ) -> Result<(tidings_core::pacing::PaceState, u64), StoreError> {
        let (workspace, subscription) = (workspace.to_owned(), subscription.to_owned());
        self.blocking(move |s| {
            let found: Option<(i64, String)> = s
                .db()
                .query_row(
                    "SELECT version, body FROM pace WHERE workspace = ?1 AND subscription = ?2",
                    params![workspace, subscription],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_error)?;
            match found {
                Some((version, body)) => {
                    Ok((serde_json::from_str(&body).map_err(json_error)?, u64::try_from(version).unwrap_or(0)))
                }
                None => Ok(Default::default()),
            }
        })
        .await
    }

    async fn put_pace(
        &self,
        workspace: &str,
        subscription: &str,
        state: &tidings_core::pacing::PaceState,
        read: u64,
    ) -> Result<bool, StoreError> {
        let (workspace, subscription) = (workspace.to_owned(), subscription.to_owned());
        let body = serde_json::to_string(state).map_err(json_error)?;
        let read = i64::try_from(read).map_err(|_| StoreError::refused("version out of range"))?;
        let until = now_ms() / 1000 + PACE_KEPT_SECONDS;
        self.blocking(move |s| {
            let db = s.db();
            let changed = if read == 0 {
                db.execute(
                    "INSERT INTO pace (workspace, subscription, version, body, until) VALUES (?1, ?2, 1, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![workspace, subscription, body, until],
                )
            } else {
                db.execute(
                    "UPDATE pace SET version = version + 1, body = ?4, until = ?5
                     WHERE workspace = ?1 AND subscription = ?2 AND version = ?3",
                    params![workspace, subscription, read, body, until],
                )
            }
            .map_err(db_error)?;
            Ok(changed == 1)
        })
        .await
    }
}

impl AuditStore for Sqlite {
    async fn record_audit(&self, entry: &tidings_core::audit::AuditEntry) -> Result<(), StoreError> {
        let (workspace, id) = (entry.workspace.clone(), entry.id.clone());
        let body = serde_json::to_string(entry).map_err(json_error)?;
        self.blocking(move |s| {
            s.db()
                .execute(
                    "INSERT OR REPLACE INTO audit (workspace, id, body) VALUES (?1, ?2, ?3)",
                    params![workspace, id, body],
                )
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn audit(
        &self,
        workspace: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<tidings_core::audit::AuditPage, StoreError> {
        let workspace = workspace.to_owned();
        // Past every id: ids begin with 13 digits.
        let before = before.unwrap_or("~").to_owned();
        let limit = limit.clamp(1, 1000);
        let mut entries: Vec<tidings_core::audit::AuditEntry> = self
            .blocking(move |s| {
                s.all(
                    "SELECT body FROM audit WHERE workspace = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                    params![workspace, before, limit as i64 + 1],
                )
            })
            .await?;
        let next = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            entries.last().map(|e| e.id.clone())
        });
        Ok(tidings_core::audit::AuditPage { entries, next: next.flatten() })
    }
}
