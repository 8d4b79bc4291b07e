//! tidings on one machine: the pipeline's store and queues in one SQLite file.
//!
//! [`Sqlite`] implements both [`Store`] and [`Queue`] (and [`Sqlite::receive`] and friends, what
//! the SQS event source does for a Lambda). Each operation is one SQLite transaction, in WAL
//! mode, so a crash at any point leaves either all of an operation or none of it, and a restart
//! resumes where the file says.
//!
//! One connection, behind a mutex; the async ports' calls run on tokio's blocking pool
//! ([`Sqlite::blocking`]), never on an async worker. The queues follow SQS: a received message is invisible for its
//! visibility timeout, reappears unless deleted, and moves to its dead-letter queue when it has
//! been received more than `max_receives` times.

//! The store's side is in `store.rs`, the queues' (with their dead letters and the resend
//! outbox) in `queue.rs`.

mod privacy;
mod queue;
mod store;
pub mod worker;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tidings_core::ports::StoreError;

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
-- Hourly counters of stored events (tidings_core::deliverability::counters), kept in the
-- transaction that stores each event.
CREATE TABLE IF NOT EXISTS counters (
    workspace TEXT NOT NULL,
    series TEXT NOT NULL,
    hour INTEGER NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (workspace, series, hour, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_hour ON counters (hour);
CREATE TABLE IF NOT EXISTS deliverability_settings (
    workspace TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    workspace TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace, key)
);
CREATE TABLE IF NOT EXISTS privacy_settings (
    workspace TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
-- A workspace's erase key (hex) and its latest erasure (Unix milliseconds); erased recipients by
-- their keyed hash, with the time of the erasure.
CREATE TABLE IF NOT EXISTS erase_keys (
    workspace TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    last_erasure INTEGER
);
CREATE TABLE IF NOT EXISTS erasures (
    workspace TEXT NOT NULL,
    hash TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (workspace, hash)
) WITHOUT ROWID;
-- Each paced subscription's shared pace (tidings_core::pacing::PaceState), written over the
-- version read; `until` (Unix seconds) is when the sweep may forget it.
CREATE TABLE IF NOT EXISTS pace (
    workspace TEXT NOT NULL,
    subscription TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (workspace, subscription)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    workspace TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace, id)
) WITHOUT ROWID;
-- The resend queue was once named "redrive", a word tidings now keeps for moving dead letters
-- back; databases from then have their messages renamed.
UPDATE queue_messages SET queue = 'resend' WHERE queue = 'redrive';
UPDATE dead_letters SET queue = 'resend' WHERE queue = 'redrive';
"#;

/// A message handed out by [`Sqlite::receive`] (the consumer port's type).
pub use tidings_core::ports::Received;

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
            StoreError::contended(format!("sqlite: {error}"))
        }
        _ => StoreError::refused(format!("sqlite: {error}")),
    }
}

fn json_error(error: serde_json::Error) -> StoreError {
    StoreError::malformed(format!("stored JSON unreadable: {error}"))
}

/// WAL with `synchronous = NORMAL`: a commit is durable across a crash of the process (not of
/// the machine's power), and readers never block the writer. (A larger page cache and mmap
/// reads made no measurable difference to `tidings bench pipeline`; BENCHMARKS.md.)
///
/// `secure_delete` overwrites what is deleted with zeros, so an erased recipient is gone from
/// the file's bytes once the WAL is checkpointed (which an erasure does), not only from its
/// rows.
const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;";

/// Columns added since the table was first created: added to a database that lacks them.
const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    // When the provider record expires, when sooner than its event (NULL: with the event).
    ("events", "raw_expires", "INTEGER"),
    ("message_states", "expires", "INTEGER"),
    ("attempts", "expires", "INTEGER"),
];

/// Indexes on added columns, made after them.
const LATER_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS message_states_by_recipient ON message_states (workspace, recipient);
CREATE INDEX IF NOT EXISTS events_by_raw_expiry ON events (raw_expires) WHERE raw_expires IS NOT NULL;
";

fn add_missing_columns(connection: &Connection) -> Result<(), StoreError> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present: bool = connection
            .query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                rusqlite::params![column],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db_error)?
            > 0;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind};")).map_err(db_error)?;
        }
    }
    connection.execute_batch(LATER_INDEXES).map_err(db_error)
}

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
        add_missing_columns(&connection)?;
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
            .map_err(|e| StoreError::unavailable(format!("sqlite call did not finish: {e}")))?
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        match self.connection.lock() {
            Ok(guard) => guard,
            // A panic while holding the lock cannot leave SQLite half-written (transactions roll
            // back on drop), so the connection is still good.
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::ports::QueueName;

    #[test]
    fn a_database_from_before_the_resend_queue_was_named_keeps_its_messages() {
        let dir = std::env::temp_dir().join(format!("tidings-rename-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(SCHEMA).unwrap();
            old.execute_batch(
                "INSERT INTO queue_messages (queue, body, visible_at) VALUES ('redrive', 'task', 0);
                 INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at)
                 VALUES ('redrive', 'poison', 'why', 5, 0);",
            )
            .unwrap();
        }
        let db = Sqlite::open(&path).unwrap();
        let received = db.receive(QueueName::Resend, 10, 30).unwrap();
        assert_eq!(received.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["task"]);
        assert_eq!(db.dead_letters(QueueName::Resend).unwrap()[0].reason, "why");
        std::fs::remove_dir_all(&dir).ok();
    }
}
