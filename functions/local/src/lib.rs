//! tidings on one machine: the pipeline's store and queues in one SQLite file.
//!
//! [`Sqlite`] implements both [`Store`] and [`Queue`] (and [`Sqlite::receive`] and friends, what
//! the SQS event source does for a Lambda). Each operation is one SQLite transaction, in WAL
//! mode, so a crash at any point leaves either all of an operation or none of it, and a restart
//! resumes where the file says.
//!
//! Calls run on the caller's thread under a mutex: operations take microseconds, and a dev
//! server does not need more. The queues follow SQS: a received message is invisible for its
//! visibility timeout, reappears unless deleted, and moves to its dead-letter queue when it has
//! been received more than `max_receives` times.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tidings_core::auth::{NonceCheck, ReplayClaim};
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{
    ApiKey, Claim, DeadLetterStatus, DeadLetters, DeliveryClaim, EventCursor, EventPage, EventQuery, MoveMethod,
    Outgoing, Queue, QueueName, QueuedEvent, Recorded, Store, StoreError,
};
use tidings_core::source::Source;
use tidings_core::state::{self, MessageState};
use tidings_core::subscription::Subscription;
use tidings_core::suppression::{self, Suppression};
use tidings_core::timestamp::Timestamp;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_by_workspace ON sources (workspace);
CREATE TABLE IF NOT EXISTS nonces (
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (provider, nonce)
);
CREATE TABLE IF NOT EXISTS events (
    workspace TEXT NOT NULL,
    id TEXT NOT NULL,
    message_id TEXT,
    recipient TEXT,
    type TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    raw TEXT NOT NULL,
    source TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX IF NOT EXISTS events_by_message ON events (workspace, message_id, time_ms);
CREATE INDEX IF NOT EXISTS events_by_recipient ON events (workspace, recipient, time_ms);
CREATE INDEX IF NOT EXISTS events_by_time ON events (workspace, time_ms);
CREATE TABLE IF NOT EXISTS message_states (
    workspace TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace, message_id, recipient)
);
CREATE TABLE IF NOT EXISTS suppressions (
    workspace TEXT NOT NULL,
    recipient TEXT NOT NULL,
    active INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace, recipient)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    workspace TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace TEXT NOT NULL,
    subscription TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_subscription ON attempts (workspace, subscription, seq);
DROP TABLE IF EXISTS delivered;
CREATE TABLE IF NOT EXISTS delivery_claims (
    workspace TEXT NOT NULL,
    subscription TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT,
    lease INTEGER,
    expires INTEGER NOT NULL,
    PRIMARY KEY (workspace, subscription, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_by_visibility ON queue_messages (queue, visible_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);
"#;

/// A message handed out by [`Sqlite::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message's id: the same each time it is received.
    pub id: String,
    /// Deletes or extends this receipt only: a message received again gets a new one.
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
}

/// A dead-lettered message and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub queue: String,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
}

/// The most rows one event listing reads (see [`Sqlite::event_page`]).
pub const SCAN_BUDGET: usize = 5_000;

/// The store and queues in one SQLite database. Cloning shares the connection.
///
/// Every call of the async ports ([`Store`], [`Queue`], [`DeadLetters`], [`Emailer`]) runs on
/// tokio's blocking pool ([`Sqlite::blocking`]), never on an async worker: a call may wait for
/// the connection while a listing holds it, then for SQLite's own locks, and the webhook
/// endpoints and `/api/health` must keep answering meanwhile. The synchronous methods
/// (`receive`, `delete_all`, …) are for callers already off the runtime.
///
/// [`Emailer`]: tidings_core::ports::Emailer
#[derive(Clone)]
pub struct Sqlite {
    connection: Arc<Mutex<Connection>>,
    max_receives: u32,
    scan_budget: usize,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn db_error(error: rusqlite::Error) -> StoreError {
    // A busy or locked database clears up; anything else (corruption, a full disk) will not
    // by retrying the same message.
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::retryable(format!("sqlite: {error}"))
        }
        _ => StoreError::permanent(format!("sqlite: {error}")),
    }
}

fn json_error(error: serde_json::Error) -> StoreError {
    StoreError::permanent(format!("stored JSON unreadable: {error}"))
}

/// WAL with `synchronous = NORMAL`: a commit is durable across a crash of the process (not of
/// the machine's power), and readers never block the writer. (A larger page cache and mmap
/// reads made no measurable difference to `tidings bench pipeline`; BENCHMARKS.md.)
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;";

/// The message a receipt (`<id>:<receive count>`) belongs to: deletes and visibility changes
/// find it by primary key, not by scanning the queue for the receipt.
fn receipt_id(receipt: &str) -> Option<i64> {
    receipt.split_once(':')?.0.parse().ok()
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        Sqlite::init(Connection::open(path).map_err(db_error)?)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Sqlite, StoreError> {
        Sqlite::init(Connection::open_in_memory().map_err(db_error)?)
    }

    fn init(connection: Connection) -> Result<Sqlite, StoreError> {
        connection.execute_batch(PRAGMAS).map_err(db_error)?;
        connection.execute_batch(SCHEMA).map_err(db_error)?;
        Ok(Sqlite { connection: Arc::new(Mutex::new(connection)), max_receives: 5, scan_budget: SCAN_BUDGET })
    }

    /// Receives after which a message moves to its dead-letter queue (SQS `maxReceiveCount`).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }

    /// Reads at most `rows` rows per event listing instead of [`SCAN_BUDGET`] (tests use a
    /// small budget to see paging by budget without storing thousands of events).
    pub fn with_scan_budget(mut self, rows: usize) -> Self {
        self.scan_budget = rows.max(1);
        self
    }

    /// Runs `work` on tokio's blocking pool with this store (see [`Sqlite`]). A panic inside it
    /// is a retryable store error for the one call, not a crashed server.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Sqlite) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::retryable(format!("sqlite call did not finish: {e}")))?
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        match self.connection.lock() {
            Ok(guard) => guard,
            // A panic while holding the lock cannot leave SQLite half-written (transactions roll
            // back on drop), so the connection is still good.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// One page of [`Store::events`]: at most `limit` events, reading at most the store's scan
    /// budget of rows ([`SCAN_BUDGET`] unless [`Sqlite::with_scan_budget`] set another). A type filter that matches little could otherwise read a
    /// workspace's whole history in one request: when the budget runs out, the page holds what
    /// matched so far and `next` continues after the last row read.
    fn event_page(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let pattern =
            query.type_pattern.as_deref().map(TypePattern::parse).transpose().map_err(StoreError::permanent)?;
        let limit = query.limit.clamp(1, 1000);
        // The cursor is the (time, id) of the last event returned; pages continue strictly
        // before it in (time desc, id desc) order.
        let (mut before_ms, mut before_id) = match query.cursor.as_deref() {
            Some(text) => {
                let cursor = EventCursor::parse(text).map_err(StoreError::permanent)?;
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

    /// Up to `max` visible messages of `queue`, each hidden for `visibility_seconds`. Messages
    /// received more than `max_receives` times go to the dead-letter queue instead.
    pub fn receive(&self, queue: QueueName, max: usize, visibility_seconds: u32) -> Result<Vec<Received>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let now = now_ms();
        let rows: Vec<(i64, String, u32)> = {
            let mut select = tx
                .prepare_cached("SELECT id, body, receive_count FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3")
                .map_err(db_error)?;
            select
                .query_map(params![queue.as_str(), now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, body, count) in rows {
            let count = count + 1;
            if count > self.max_receives {
                tx.execute(
                    "INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![queue.as_str(), body, format!("received {} times without being processed", count - 1), count - 1, now],
                )
                .map_err(db_error)?;
                tx.execute("DELETE FROM queue_messages WHERE id = ?1", params![id]).map_err(db_error)?;
                continue;
            }
            let receipt = format!("{id}:{count}");
            tx.execute(
                "UPDATE queue_messages SET receive_count = ?2, visible_at = ?3, receipt = ?4 WHERE id = ?1",
                params![id, count, now + i64::from(visibility_seconds) * 1000, receipt],
            )
            .map_err(db_error)?;
            out.push(Received { id: id.to_string(), receipt, body, receive_count: count });
        }
        tx.commit().map_err(db_error)?;
        Ok(out)
    }

    /// Deletes a received message; `false` when the receipt is stale (it was received again).
    pub fn delete(&self, queue: QueueName, receipt: &str) -> Result<bool, StoreError> {
        Ok(self.delete_all(queue, &[receipt])? > 0)
    }

    /// Deletes received messages in one transaction (SQS `DeleteMessageBatch`); how many were
    /// still current (stale receipts are skipped).
    pub fn delete_all(&self, queue: QueueName, receipts: &[&str]) -> Result<usize, StoreError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(db_error)?;
        let mut deleted = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM queue_messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3")
                .map_err(db_error)?;
            for receipt in receipts {
                if let Some(id) = receipt_id(receipt) {
                    deleted += delete.execute(params![id, queue.as_str(), receipt]).map_err(db_error)?;
                }
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(deleted)
    }

    /// Hides a received message for `seconds` from now (SQS ChangeMessageVisibility).
    pub fn change_visibility(&self, queue: QueueName, receipt: &str, seconds: u32) -> Result<bool, StoreError> {
        let Some(id) = receipt_id(receipt) else { return Ok(false) };
        let changed = self
            .db()
            .execute(
                "UPDATE queue_messages SET visible_at = ?4 WHERE id = ?1 AND queue = ?2 AND receipt = ?3",
                params![id, queue.as_str(), receipt, now_ms() + i64::from(seconds) * 1000],
            )
            .map_err(db_error)?;
        Ok(changed > 0)
    }

    /// Puts a message on `queue`'s dead-letter queue with the reason it could not be processed.
    pub fn dead_letter(
        &self,
        queue: QueueName,
        body: &str,
        reason: &str,
        receive_count: u32,
    ) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![queue.as_str(), body, reason, receive_count, now_ms()],
            )
            .map_err(db_error)?;
        Ok(())
    }

    pub fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, StoreError> {
        let db = self.db();
        let mut select = db
            .prepare_cached(
                "SELECT id, queue, body, reason, receive_count FROM dead_letters WHERE queue = ?1 ORDER BY id",
            )
            .map_err(db_error)?;
        select
            .query_map(params![queue.as_str()], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    queue: r.get(1)?,
                    body: r.get(2)?,
                    reason: r.get(3)?,
                    receive_count: r.get(4)?,
                })
            })
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    /// How many messages wait on `queue`'s dead-letter queue.
    pub fn dead_letter_count(&self, queue: QueueName) -> Result<u64, StoreError> {
        let count: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM dead_letters WHERE queue = ?1", params![queue.as_str()], |r| r.get(0))
            .map_err(db_error)?;
        Ok(count.try_into().unwrap_or(0))
    }

    /// Moves every dead letter of `queue` back onto it; returns how many moved.
    pub fn redrive(&self, queue: QueueName) -> Result<usize, StoreError> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let moved = tx
            .execute(
                "INSERT INTO queue_messages (queue, body, visible_at) SELECT queue, body, ?2 FROM dead_letters WHERE queue = ?1 ORDER BY id",
                params![queue.as_str(), now_ms()],
            )
            .map_err(db_error)?;
        tx.execute("DELETE FROM dead_letters WHERE queue = ?1", params![queue.as_str()]).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(moved)
    }

    /// Messages on `queue`, visible or in flight.
    pub fn depth(&self, queue: QueueName) -> Result<usize, StoreError> {
        let count: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM queue_messages WHERE queue = ?1", params![queue.as_str()], |r| r.get(0))
            .map_err(db_error)?;
        Ok(count as usize)
    }

    /// The messages on `queue` (id and body), due, delayed or in flight, oldest first; read
    /// without receiving them.
    pub fn peek(&self, queue: QueueName) -> Result<Vec<(String, String)>, StoreError> {
        self.db()
            .prepare_cached("SELECT id, body FROM queue_messages WHERE queue = ?1 ORDER BY id")
            .and_then(|mut select| {
                select
                    .query_map(params![queue.as_str()], |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?)))?
                    .collect()
            })
            .map_err(db_error)
    }

    /// Deletes events and nonces past their retention.
    pub fn expire(&self) -> Result<usize, StoreError> {
        let now = now_ms() / 1000;
        let db = self.db();
        let events = db.execute("DELETE FROM events WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("DELETE FROM nonces WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("DELETE FROM delivery_claims WHERE expires < ?1", params![now]).map_err(db_error)?;
        Ok(events)
    }
}

/// Stores one event with its message state and suppression change, within the caller's
/// transaction (or savepoint).
fn record_in(tx: &Connection, queued: &QueuedEvent, expires_at: Timestamp) -> Result<Recorded, StoreError> {
    let event = &queued.event;
    let workspace = event.workspaceid.as_str();
    let body = serde_json::to_string(event).map_err(json_error)?;
    let inserted = tx
        .execute(
            "INSERT INTO events (workspace, id, message_id, recipient, type, time_ms, body, raw, source, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (workspace, id) DO NOTHING",
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
                expires_at.unix_seconds()
            ],
        )
        .map_err(db_error)?;
    if inserted == 0 {
        return Ok(Recorded::Duplicate);
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
            tx.execute(
                "INSERT OR REPLACE INTO message_states (workspace, message_id, recipient, body) VALUES (?1, ?2, ?3, ?4)",
                params![workspace, message_id, recipient, serde_json::to_string(&state).map_err(json_error)?],
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
    fn record_all(&self, events: &[(QueuedEvent, Timestamp)]) -> Vec<Result<Recorded, StoreError>> {
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

impl Store for Sqlite {
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

    async fn record(&self, queued: &QueuedEvent, expires_at: Timestamp) -> Result<Recorded, StoreError> {
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

    async fn record_batch(&self, events: &[(&QueuedEvent, Timestamp)]) -> Vec<Result<Recorded, StoreError>> {
        let owned: Vec<(QueuedEvent, Timestamp)> = events.iter().map(|(q, t)| ((*q).clone(), *t)).collect();
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
                .query_row("SELECT raw FROM events WHERE workspace = ?1 AND id = ?2", params![workspace, id], |r| {
                    r.get(0)
                })
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

    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        let rows = attempts
            .iter()
            .map(|a| Ok((a.workspace.clone(), a.subscription.clone(), serde_json::to_string(a).map_err(json_error)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction().map_err(db_error)?;
            for (workspace, subscription, body) in rows {
                tx.execute(
                    "INSERT INTO attempts (workspace, subscription, body) VALUES (?1, ?2, ?3)",
                    params![workspace, subscription, body],
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

/// Locally, resends go to the outbox table instead of SES (`tidings outbox` lists them).
impl tidings_core::ports::Emailer for Sqlite {
    async fn send_email(&self, request: &serde_json::Value) -> Result<String, tidings_core::retryable::SendError> {
        let request = request.to_string();
        let stored = self
            .blocking(move |s| {
                let db = s.db();
                db.execute("INSERT INTO outbox (request, sent_at) VALUES (?1, ?2)", params![request, now_ms()])
                    .map_err(db_error)?;
                Ok(db.last_insert_rowid())
            })
            .await;
        match stored {
            Ok(id) => Ok(format!("local-{id}")),
            Err(error) => Err(tidings_core::retryable::SendError {
                name: Some("OutboxUnavailable".into()),
                message: Some(error.message),
                ..Default::default()
            }),
        }
    }
}
impl Sqlite {
    /// The resends written to the local outbox, oldest first: (id, request).
    pub fn outbox(&self) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
        let db = self.db();
        let mut select = db.prepare_cached("SELECT id, request FROM outbox ORDER BY id").map_err(db_error)?;
        let rows: Vec<(i64, String)> = select
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        rows.into_iter().map(|(id, text)| serde_json::from_str(&text).map(|v| (id, v)).map_err(json_error)).collect()
    }
}

/// Locally both methods move every dead letter back at once, in one transaction.
impl DeadLetters for Sqlite {
    async fn dead_letter_status(&self, queue: QueueName) -> Result<DeadLetterStatus, StoreError> {
        let waiting = self.blocking(move |s| s.dead_letter_count(queue)).await?;
        Ok(DeadLetterStatus { queue: queue.as_str().into(), waiting, ..DeadLetterStatus::default() })
    }

    async fn redrive_dead_letters(&self, queue: QueueName, _: MoveMethod) -> Result<DeadLetterStatus, StoreError> {
        let (moved, waiting) =
            self.blocking(move |s| Ok((s.redrive(queue)? as u64, s.dead_letter_count(queue)?))).await?;
        Ok(DeadLetterStatus {
            queue: queue.as_str().into(),
            waiting,
            status: Some("COMPLETED".into()),
            moved,
            to_move: Some(moved),
            failure: None,
        })
    }
}

impl Queue for Sqlite {
    async fn send(&self, queue: QueueName, messages: &[Outgoing]) -> Result<(), StoreError> {
        let messages: Vec<(String, u32)> = messages.iter().map(|m| (m.body.clone(), m.delay_seconds)).collect();
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let now = now_ms();
            for (body, delay_seconds) in messages {
                tx.execute(
                    "INSERT INTO queue_messages (queue, body, visible_at) VALUES (?1, ?2, ?3)",
                    params![queue.as_str(), body, now + i64::from(delay_seconds) * 1000],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }
}
