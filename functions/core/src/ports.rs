//! What the pipeline needs from the world, as traits. `functions/aws` implements them on
//! DynamoDB, SQS and HTTPS; `functions/local` on SQLite. One conformance suite runs against both.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{NonceCheck, ReplayClaim};
use crate::deliverability::{Alarm, CounterKey, Series, Settings};
use crate::delivery::AttemptRecord;
use crate::event::{CanonicalEvent, EventId};
pub use crate::privacy::Expiry;
use crate::source::Source;
use crate::state::MessageState;
use crate::subscription::Subscription;
use crate::suppression::Suppression;
use crate::timestamp::Timestamp;

/// What the events queue carries: one canonical event, the provider record it came from, and
/// the source it arrived on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub event: CanonicalEvent,
    pub raw: String,
    pub source: String,
}

/// A failure of a backing service or of the data it holds, by cause. The cause decides what a
/// queue consumer does with the message ([`Settlement::of`]): retryable failures go back to the
/// queue; permanent ones go to the dead-letter queue with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The service failed for now: throttling, a timeout, a 5xx, a lost connection. Retryable.
    #[error("{0} (retryable)")]
    Unavailable(String),
    /// A conditional write lost to a concurrent one, or a claim ran out: read again and retry.
    #[error("{0} (retryable)")]
    Contended(String),
    /// Data that cannot be read: a queue message, a stored item, a cursor or a pattern that is
    /// not what it must be. Handling it again gives the same answer.
    #[error("{0} (permanent)")]
    Malformed(String),
    /// A request that can never succeed as made: refused by the service (too large, not
    /// allowed, out of bounds).
    #[error("{0} (permanent)")]
    Refused(String),
    /// The deployment is missing something or has it wrong: a queue URL, a secret's place.
    #[error("{0} (permanent)")]
    Misconfigured(String),
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(message.into())
    }

    pub fn contended(message: impl Into<String>) -> Self {
        StoreError::Contended(message.into())
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        StoreError::Malformed(message.into())
    }

    pub fn refused(message: impl Into<String>) -> Self {
        StoreError::Refused(message.into())
    }

    pub fn misconfigured(message: impl Into<String>) -> Self {
        StoreError::Misconfigured(message.into())
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contended(_))
    }

    /// What went wrong, without the retryable/permanent label.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unavailable(message)
            | StoreError::Contended(message)
            | StoreError::Malformed(message)
            | StoreError::Refused(message)
            | StoreError::Misconfigured(message) => message,
        }
    }
}

/// Input a store was handed that validation refuses (a cursor, a pattern): it reads the same on
/// every try.
impl From<crate::invalid::Invalid> for StoreError {
    fn from(invalid: crate::invalid::Invalid) -> Self {
        StoreError::Malformed(invalid.reason)
    }
}

/// The result of recording an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time: stored, message state and suppressions updated.
    Stored,
    /// Already stored: nothing changed.
    Duplicate,
}

/// A query over a workspace's stored events. Results come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub workspace: String,
    pub message_id: Option<String>,
    pub recipient: Option<String>,
    /// A type pattern (`email.*`); matched after the key condition.
    pub type_pattern: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    /// Opaque continuation from a previous page.
    pub cursor: Option<String>,
}

/// Where the next page of events begins: the time (Unix milliseconds) and id of the last event
/// returned, written `<milliseconds>:<event id>` (a page's `next`). Both stores read it with
/// [`EventCursor::parse`], and the API parses it before asking a store, so a malformed cursor
/// is the caller's error (400), never the store's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    pub ms: i64,
    pub id: String,
}

impl EventCursor {
    /// The latest instant a cursor may name: the end of year 9999, as far as event times go.
    const MAX_MS: i64 = 253_402_300_799_999;

    pub fn parse(text: &str) -> Result<EventCursor, crate::invalid::Invalid> {
        let malformed = || {
            crate::invalid::Invalid::new(
                "cursor",
                format!("cursor {text:?} is not <milliseconds>:<event id> as a page's `next` gives it"),
            )
        };
        let (ms, id) = text.split_once(':').ok_or_else(malformed)?;
        let ms = ms.parse::<i64>().ok().filter(|ms| (0..=Self::MAX_MS).contains(ms)).ok_or_else(malformed)?;
        let hex = id.strip_prefix("evt_").ok_or_else(malformed)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(malformed());
        }
        Ok(EventCursor { ms, id: id.to_owned() })
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ms, self.id)
    }
}

/// One page of events, and where the next begins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    pub events: Vec<CanonicalEvent>,
    pub next: Option<String>,
}

/// An API key, kept as the SHA-256 of its secret; scoped to one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub workspace: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    pub created_at: Timestamp,
}

/// A claim on one delivery: see [`Store::claim_delivery`].
#[derive(Debug, Clone, Copy)]
pub struct DeliveryClaim<'a> {
    pub workspace: &'a str,
    pub subscription: &'a str,
    pub key: &'a str,
    pub holder: &'a str,
    pub lease_until: crate::timestamp::Timestamp,
}

/// What a claim on a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The claimant holds the delivery until its lease ends, and sends it.
    Taken,
    /// The subscriber already answered it 2xx.
    Delivered,
    /// Another message (a copy of the task) holds it: that one sends it, and stays on the queue
    /// until it has (or is retried, holding it still).
    Held,
}

/// Durable state, in one trait per aggregate so each service's bounds say what it touches
/// (ingest: sources and nonces; the processor: events and subscriptions; the fan-out:
/// subscriptions, deliveries and events). A store implements them all, and is then a [`Store`],
/// the whole, which the admin API takes. The conformance suite (`tests/src/lib.rs`) holds every
/// adapter to the same behaviour.
pub trait Store:
    SourceStore
    + NonceStore
    + EventStore
    + SubscriptionStore
    + DeliveryStore
    + KeyStore
    + DeliverabilityStore
    + AuditStore
    + PrivacyStore
    + PaceStore
{
}

impl<T> Store for T where
    T: SourceStore
        + NonceStore
        + EventStore
        + SubscriptionStore
        + DeliveryStore
        + KeyStore
        + DeliverabilityStore
        + AuditStore
        + PrivacyStore
        + PaceStore
{
}

/// Sources: where each provider account posts, with its secrets.
pub trait SourceStore: Send + Sync {
    fn put_source(&self, source: &Source) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn source(&self, id: &str) -> impl Future<Output = Result<Option<Source>, StoreError>> + Send;
    fn sources(&self, workspace: &str) -> impl Future<Output = Result<Vec<Source>, StoreError>> + Send;
    /// Removes a source of `workspace`; `false` when there was none.
    fn delete_source(&self, workspace: &str, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Single-use values of signature schemes that have them (Mailgun's token).
pub trait NonceStore: Send + Sync {
    /// Remembers a single-use nonce until its expiry; says whether it was seen.
    fn claim_nonce(&self, claim: &ReplayClaim) -> impl Future<Output = Result<NonceCheck, StoreError>> + Send;
}

/// Events, stored once each, and what they derive: message states and the suppression list.
pub trait EventStore: Send + Sync {
    /// Stores the event once, in one atomic step with its message state and suppression change.
    /// `expires_at` is when retention ends (the store deletes the event after), and when the
    /// provider record's ends, which may be sooner.
    fn record(
        &self,
        event: &QueuedEvent,
        expires_at: Expiry,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
    /// [`EventStore::record`] for each event of a batch, one result per event, in order; each event
    /// stands alone (one failing leaves the others stored). A store may group the writes (SQLite
    /// commits a batch once); by default they are made one after another.
    fn record_batch(
        &self,
        events: &[(&QueuedEvent, Expiry)],
    ) -> impl Future<Output = Vec<Result<Recorded, StoreError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(events.len());
            for (event, expires_at) in events {
                results.push(self.record(event, *expires_at).await);
            }
            results
        }
    }

    fn events(&self, query: &EventQuery) -> impl Future<Output = Result<EventPage, StoreError>> + Send;
    /// One stored event. `message_id` is the event's message, when it has one.
    fn event(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> impl Future<Output = Result<Option<CanonicalEvent>, StoreError>> + Send;
    /// Whether an event is stored: what the processor asks of each queued event before fanning
    /// it out, so a provider's retry stops there. The answer may come from a read a moment
    /// stale (DynamoDB's eventually consistent read, half the price): a copy that slips past it
    /// is the case of two copies processed at once, which recording the event and the
    /// delivery's claim already make harmless.
    fn has_event(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move { Ok(self.event(workspace, message_id, event).await?.is_some()) }
    }

    /// The provider record an event came from. `message_id` is the event's message, when it has
    /// one (stores may keep events in their message's partition).
    fn raw(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn message_states(
        &self,
        workspace: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<Vec<MessageState>, StoreError>> + Send;
    /// Active suppressions of a workspace.
    fn suppressions(&self, workspace: &str) -> impl Future<Output = Result<Vec<Suppression>, StoreError>> + Send;
    /// The suppression entry of one recipient, active or not (a lifted entry stays as a
    /// tombstone), when there is one.
    fn suppression(
        &self,
        workspace: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<Option<Suppression>, StoreError>> + Send;
    /// Lifts a suppression by hand; `false` when the address was not suppressed.
    fn remove_suppression(
        &self,
        workspace: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Subscriptions, each change made over the version read.
pub trait SubscriptionStore: Send + Sync {
    /// Creates a subscription (within its workspace), or replaces it whatever it holds: for a
    /// new subscription. Changes to one go through [`SubscriptionStore::update_subscription`].
    fn put_subscription(&self, subscription: &Subscription) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes `subscription` with its version one past `subscription.version`, only if the
    /// stored one still has `subscription.version` (a subscription stored before versions
    /// existed has version 0). `false` when another writer got there first (or it is gone):
    /// read it again and redo the change (as `pipeline::modify_subscription` does).
    fn update_subscription(&self, subscription: &Subscription)
    -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn subscription(
        &self,
        workspace: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;
    fn subscriptions(&self, workspace: &str) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;
}

/// Deliveries to subscribers: claims, marks and the attempt log.
pub trait DeliveryStore: Send + Sync {
    /// Claims the delivery `key` ([`DeliveryTask::key`](crate::delivery::DeliveryTask::key)) to
    /// `subscription` for `holder`, the deliveries-queue message carrying the task (the same id
    /// each time that message is received; another for a copy of the task), until `lease_until`.
    /// [`Claim::Taken`] when no one holds it, its lease ran out at `now`, or `holder` holds it
    /// already (the message received again after a failure or a crash, or the store's own retry
    /// of a claim whose answer was lost). Made before each attempt, so two copies of a task on
    /// the queue, even handled at the same moment, send the delivery once.
    fn claim_delivery(
        &self,
        claim: &DeliveryClaim<'_>,
        now: crate::timestamp::Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Notes that the delivery `key` was answered 2xx by `subscription` at `at`: from then on
    /// every claim on it finds [`Claim::Delivered`].
    fn mark_delivered(
        &self,
        workspace: &str,
        subscription: &str,
        key: &str,
        at: crate::timestamp::Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends attempts (of one subscription or several) to their subscriptions' attempt logs.
    /// DynamoDB keeps the attempts of one call on one subscription as one item.
    fn record_attempts(&self, attempts: &[AttemptRecord]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A subscription's most recent attempts, newest first.
    fn attempts(
        &self,
        workspace: &str,
        subscription: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, StoreError>> + Send;
}

/// Deliverability: the hourly counters [`EventStore::record`] keeps with each stored event (in
/// the same step, so each event is counted once), the workspace's settings, and the alarms the
/// watch raises and clears.
pub trait DeliverabilityStore: Send + Sync {
    /// The counters of `series` whose hours lie in `[since_hour, until_hour]` (Unix seconds of
    /// hour starts), each with its count.
    fn counters(
        &self,
        workspace: &str,
        series: Series,
        since_hour: i64,
        until_hour: i64,
    ) -> impl Future<Output = Result<Vec<(CounterKey, u64)>, StoreError>> + Send;
    /// The workspace's settings, when it has any.
    fn deliverability_settings(
        &self,
        workspace: &str,
    ) -> impl Future<Output = Result<Option<Settings>, StoreError>> + Send;
    /// Writes `settings` with its version one past `settings.version`, only if the stored
    /// version is still `settings.version` (0: none stored). `false` when another writer got
    /// there first.
    fn put_deliverability_settings(
        &self,
        workspace: &str,
        settings: &Settings,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The workspace's alarms.
    fn alarms(&self, workspace: &str) -> impl Future<Output = Result<Vec<Alarm>, StoreError>> + Send;
    /// Writes `alarm` with its version one past `alarm.version`, only if the stored version is
    /// still `alarm.version` (0: none stored). `false` when another writer got there first.
    fn put_alarm(&self, alarm: &Alarm) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The workspaces that have had events counted in the last 31 days: those the watch looks at.
    fn watched_workspaces(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// A workspace's settings as [`PrivacyStore::workspace_settings`] reads them.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceSettings {
    pub deliverability: Option<Settings>,
    pub privacy: Option<crate::privacy::PrivacySettings>,
    pub erase_key: Option<crate::privacy::EraseKey>,
}

/// Personal data: the workspace's privacy settings, its erase key, and erasing a recipient
/// ([`crate::privacy`]).
pub trait PrivacyStore: Send + Sync {
    /// The workspace's privacy settings, when it has any.
    fn privacy_settings(
        &self,
        workspace: &str,
    ) -> impl Future<Output = Result<Option<crate::privacy::PrivacySettings>, StoreError>> + Send;
    /// Writes `settings` with its version one past `settings.version`, only if the stored
    /// version is still `settings.version` (0: none stored). `false` when another writer got
    /// there first.
    fn put_privacy_settings(
        &self,
        workspace: &str,
        settings: &crate::privacy::PrivacySettings,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The workspace's erase key: made (once, whoever asks first) when `create` is set; `None`
    /// when it has none and `create` is not set (nobody was ever erased there).
    fn erase_key(
        &self,
        workspace: &str,
        create: bool,
    ) -> impl Future<Output = Result<Option<crate::privacy::EraseKey>, StoreError>> + Send;
    /// What the processor reads about a workspace once per batch: its deliverability and
    /// privacy settings and its erase key. Stores that keep them together read them at once
    /// (DynamoDB: one query of their partition).
    fn workspace_settings(&self, workspace: &str) -> impl Future<Output = Result<WorkspaceSettings, StoreError>> + Send
    where
        Self: DeliverabilityStore,
    {
        async move {
            let (deliverability, privacy, erase_key) = futures_util::future::try_join3(
                self.deliverability_settings(workspace),
                self.privacy_settings(workspace),
                self.erase_key(workspace, false),
            )
            .await?;
            Ok(WorkspaceSettings { deliverability, privacy, erase_key })
        }
    }
    /// When the recipient known by `hash` was erased, if they were.
    fn erasure(
        &self,
        workspace: &str,
        hash: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;
    /// Erases `recipient` (the form events keep it in) from the workspace: first notes the
    /// erasure under `hash` at `now` (and as the key's latest), so that consumers drop what is
    /// still queued; then deletes their events with the provider records, their message
    /// states, and local queue copies, and rewrites their suppression entry under `hash`. At
    /// most `max_events` events per call; idempotent.
    fn erase_recipient(
        &self,
        workspace: &str,
        recipient: &str,
        hash: &str,
        now: Timestamp,
        max_events: usize,
    ) -> impl Future<Output = Result<crate::privacy::Erased, StoreError>> + Send;
}

/// The audit log of administrative actions ([`AuditEntry`](crate::audit::AuditEntry)).
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    fn record_audit(&self, entry: &crate::audit::AuditEntry) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The workspace's entries, newest first: at most `limit` (1 to 1,000), before the entry id
    /// `before` when given.
    fn audit(
        &self,
        workspace: &str,
        limit: usize,
        before: Option<&str>,
    ) -> impl Future<Output = Result<crate::audit::AuditPage, StoreError>> + Send;
}

/// API keys, kept as hashes.
pub trait KeyStore: Send + Sync {
    fn put_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn api_key(&self, hash: &str) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;
}

/// The queues of the pipeline. Each has a dead-letter queue; moving what waits there back to
/// its queue is a redrive ([`DeadLetters::redrive_dead_letters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueName {
    /// Canonical events on their way to being stored (ingest → processor).
    Events,
    /// Delivery tasks, one per event and subscription (processor → fan-out).
    Deliveries,
    /// SES sends that failed retryably, each waiting for its resend (processor → resender).
    Resend,
}

impl QueueName {
    pub const ALL: [QueueName; 3] = [QueueName::Events, QueueName::Deliveries, QueueName::Resend];

    pub const fn as_str(self) -> &'static str {
        match self {
            QueueName::Events => "events",
            QueueName::Deliveries => "deliveries",
            QueueName::Resend => "resend",
        }
    }
}

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Unique within one batch.
    pub id: String,
    pub body: String,
    pub delay_seconds: u32,
}

/// A subscription's pace ([`crate::pacing::PaceState`]), shared by every fan-out instance:
/// read with its version, written only over the version read.
pub trait PaceStore: Send + Sync {
    /// The pace and its version (0 when none is stored).
    fn pace(
        &self,
        workspace: &str,
        subscription: &str,
    ) -> impl Future<Output = Result<(crate::pacing::PaceState, u64), StoreError>> + Send;
    /// Writes `state` if the stored version is still `read` (0: none stored); false when another
    /// writer was first. A pace not written for a day is forgotten.
    fn put_pace(
        &self,
        workspace: &str,
        subscription: &str,
        state: &crate::pacing::PaceState,
        read: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Sending to the pipeline's queues.
pub trait Queue: Send + Sync {
    /// Enqueues every message or fails: entries a batch call refuses are retried, and an error
    /// means some message may not be on the queue (the caller answers 503 so it is sent again).
    fn send(&self, queue: QueueName, messages: &[Outgoing]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl std::str::FromStr for QueueName {
    type Err = crate::invalid::Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "events" => Ok(QueueName::Events),
            "deliveries" => Ok(QueueName::Deliveries),
            "resend" => Ok(QueueName::Resend),
            other => Err(crate::invalid::Invalid::new(
                "queue",
                format!("no queue named {other:?} (events, deliveries or resend)"),
            )),
        }
    }
}

/// A message as a queue hands it to its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message's id: the same each time it is received.
    pub id: String,
    /// Settles this receipt only: a message received again gets a new one.
    pub receipt: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// What becomes of a received message once it was handled. Every consumer (the Lambda
/// functions on SQS, `tidings dev`'s worker on SQLite) settles by the one policy of
/// [`Settlement::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Handled: the message is deleted.
    Done,
    /// To be handled again after this delay (a delivery's retry): the same message, hidden
    /// until then.
    Later(Duration),
    /// Failed for now (throttling, a timeout): handed over again after `backoff`, or after the
    /// queue's own visibility timeout where that governs (SQS under Lambda).
    Retry { backoff: Duration },
    /// Can never be handled: to the dead-letter queue, with the reason.
    DeadLetter(String),
}

impl Settlement {
    /// The batch policy: a handler's result for a message received `receive_count` times. A
    /// retryable failure backs off exponentially with the receive count (2, 4, … 256 s).
    pub fn of(result: &Result<Option<Duration>, StoreError>, receive_count: u32) -> Settlement {
        match result {
            Ok(None) => Settlement::Done,
            Ok(Some(delay)) => Settlement::Later(*delay),
            Err(error) if error.is_retryable() => {
                Settlement::Retry { backoff: Duration::from_secs(2u64.saturating_pow(receive_count.min(8))) }
            }
            Err(error) => Settlement::DeadLetter(error.message().to_owned()),
        }
    }
}

/// The consuming side of a queue: receive a batch, and settle each message of it.
pub trait Consumer: Send + Sync {
    /// Up to `max` visible messages of `queue`, each hidden for `visibility_seconds`.
    fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_seconds: u32,
    ) -> impl Future<Output = Result<Vec<Received>, StoreError>> + Send;
    /// Settles each message of a batch from `queue`, one settlement each. Answers the ids of
    /// the messages that stay on the queue to come back (what a Lambda function reports as its
    /// batch item failures): a delay, a retry, or a dead-letter write that itself failed.
    fn settle(&self, queue: QueueName, batch: &[(Received, Settlement)]) -> impl Future<Output = Vec<String>> + Send;
}

/// How dead-lettered messages go back to their queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoveMethod {
    /// The queue service moves them (SQS `StartMessageMoveTask`, asynchronous).
    #[default]
    Native,
    /// tidings receives, resends and deletes them itself, at least once each (for queues or
    /// credentials that cannot start a move task).
    Manual,
}

/// Where moving a dead-letter queue's messages back to their queue stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadLetterStatus {
    pub queue: String,
    /// Messages on the dead-letter queue now (approximate on SQS).
    pub waiting: u64,
    /// The latest move: `RUNNING`, `COMPLETED`, `CANCELLING`, `CANCELLED` or `FAILED`; none if
    /// there has not been one.
    pub status: Option<String>,
    /// Messages the latest move has put back.
    pub moved: u64,
    /// Messages the latest move set out to put back, when known.
    pub to_move: Option<u64>,
    pub failure: Option<String>,
}

/// Dead-letter queues: what is on them, and moving it back (`tidings redrive <queue>`).
pub trait DeadLetters: Send + Sync {
    fn dead_letter_status(&self, queue: QueueName)
    -> impl Future<Output = Result<DeadLetterStatus, StoreError>> + Send;
    fn redrive_dead_letters(
        &self,
        queue: QueueName,
        method: MoveMethod,
    ) -> impl Future<Output = Result<DeadLetterStatus, StoreError>> + Send;
}

/// HTTPS GETs verification needs: SNS signing certificates, and confirming SNS subscriptions.
pub trait Fetcher: Send + Sync {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, FetchError>> + Send;
}

/// Why a [`Fetcher`] GET gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request did not complete: no connection, a timeout, a TLS failure.
    #[error("{0}")]
    Transport(String),
    /// The server answered, but not with success.
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    /// The answer was larger than anything it should be.
    #[error("{url} answered with {bytes} bytes, more than expected")]
    TooLarge { url: String, bytes: usize },
}

/// Sends one delivery (an SSRF-guarded HTTP POST in production).
pub trait Sender: Send + Sync {
    fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = crate::delivery::Response> + Send;
    /// Puts a delivery on an EventBridge bus or SQS queue; the outcome reads as an HTTPS
    /// attempt's would (a 2xx, the status the service answered, a timeout, unreachable), so
    /// retries, the attempt log and the circuit treat every destination alike.
    fn publish(
        &self,
        target: &crate::destination::AwsTarget,
        publication: &Publication<'_>,
    ) -> impl Future<Output = crate::delivery::Response> + Send;
}

/// A delivery to an AWS destination.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub event: &'a crate::event::CanonicalEvent,
    /// What an HTTPS subscriber would be sent: the canonical event as JSON.
    pub body: &'a [u8],
    /// The Standard Webhooks headers an HTTPS delivery would carry (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`, `content-type`): an SQS message carries them
    /// as attributes.
    pub headers: &'a [(String, String)],
    /// What makes the delivery one (event, and replay): a FIFO queue's deduplication id.
    pub key: &'a str,
}

/// [`Sender::publish`] as an object, so a sender can hold whichever AWS publisher its process
/// has (the fan-out function's, `tidings dev`'s from the environment, a test's on moto).
pub trait Publisher: Send + Sync {
    fn publish<'a>(
        &'a self,
        target: &'a crate::destination::AwsTarget,
        publication: &'a Publication<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = crate::delivery::Response> + Send + 'a>>;
}

/// Sends an email again: the SESv2 `SendEmail` request a send-failure report carried.
pub trait Emailer: Send + Sync {
    /// The new message id, or the error as the SDK reports it (classified like any send error).
    fn send_email(
        &self,
        request: &serde_json::Value,
    ) -> impl Future<Output = Result<String, crate::retryable::SendError>> + Send;
}
