//! [`Store`] on one DynamoDB table. The item layout and the access pattern behind each query
//! are written down in `infra/TABLE.md`; in short:
//!
//! | item | PK | SK | GSI1 (PK / SK) | GSI2 (PK / SK) |
//! |---|---|---|---|---|
//! | event | `WS#<ws>#MSG#<message>` (or `WS#<ws>#EVT#<id>` without a message) | `EVT#<id>` | `WS#<ws>#RCPT#<recipient>` / `<ms>#<id>` | `WS#<ws>#DAY#<yyyy-mm-dd>` / `<ms>#<id>` |
//! | message state | `WS#<ws>#MSG#<message>` | `STATE#<recipient>` | | |
//! | suppression | `WS#<ws>#SUPP` | `<recipient>` | | |
//! | source | `SRC#<id>` | `SRC` | `WS#<ws>#SOURCES` / `<id>` | |
//! | nonce | `NONCE#<provider>#<nonce>` | `NONCE` | | |
//! | API key | `KEY#<sha256>` | `KEY` | | |
//! | subscription | `WS#<ws>#SUBS` | `<id>` | | |
//! | delivery attempt | `WS#<ws>#SUB#<id>#ATT` | `<ms>#<event>#<attempt>` | | |
//! | delivered mark | `WS#<ws>#SUB#<id>#DLV#<event>[#<replay>]` | `DLV` | | |
//!
//! Event bodies and raw records are stored deflated, which keeps a typical event item under
//! 1 KB (one write unit). Recording an event is three conditional writes, not a transaction
//! (which bills twice): the message state and the suppression entry with optimistic version
//! checks, then the event item on condition that its key is new (a duplicate fails it, which is
//! how duplicates are detected). See [`DynamoStore::try_record`] for why that order is safe.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use tidings_core::auth::{NonceCheck, ReplayClaim};
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{
    ApiKey, Claim, DeliveryClaim, EventPage, EventQuery, QueuedEvent, Recorded, Store, StoreError,
};
use tidings_core::source::Source;
use tidings_core::state::{self, MessageState};
use tidings_core::subscription::Subscription;
use tidings_core::suppression::{self, Suppression};
use tidings_core::timestamp::Timestamp;

use crate::classify;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// How many times recording an event is retried when another writer changed the same message state
/// or suppression entry in between (optimistic concurrency).
const MAX_ATTEMPTS: usize = 8;
/// How many of the events last applied to a message state it remembers (`ev`), so that a
/// retry after a crash between the state write and the event write does not count an event
/// twice. A retry comes one visibility timeout later; only a burst of more events than this on
/// one message and recipient within that window could make it count one twice.
const APPLIED_IDS: usize = 32;
/// How many day partitions a workspace-wide listing reads at once, at most. The first read is
/// of the newest day alone (an active workspace's page is usually there); each later round
/// doubles up to this.
const MAX_DAYS_AT_ONCE: usize = 8;
/// The most items one filtered event listing reads (see `event_page`).
pub const READ_BUDGET: usize = 2_000;
/// How many (workspace, day) pairs a store remembers having marked before it forgets them all.
const MARKED_DAYS_CACHE: usize = 10_000;

#[derive(Clone)]
pub struct DynamoStore {
    client: crate::LazyClient<Client>,
    table: String,
    usage: Arc<Usage>,
    /// Resolves `ssm:` secret references when a source is loaded (ingest functions only).
    secrets: Option<crate::secrets::SsmSecrets>,
    /// (workspace, day) pairs this store has added to the workspace's day index (see
    /// [`DynamoStore::mark_day`]), so a warm processor writes each pair once.
    marked_days: Arc<Mutex<HashSet<(String, String)>>>,
    read_budget: usize,
}

/// What this store has asked of DynamoDB: requests by operation, and the capacity units they
/// cost as DynamoDB bills them (computed from the real item sizes: writes 1 unit per KB, plus
/// one write per index the item is in, refused conditional writes included; strongly consistent
/// reads 1 unit per 4 KB, eventually consistent reads half that). The cost model in
/// BENCHMARKS.md is built from these.
#[derive(Debug, Default)]
pub struct Usage {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    write_units: AtomicU64,
    read_half_units: AtomicU64,
}

/// A copy of [`Usage`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageSnapshot {
    pub requests: BTreeMap<&'static str, u64>,
    pub write_units: u64,
    /// Read units × 2 (an eventually consistent read of up to 4 KB is half a unit).
    pub read_half_units: u64,
}

impl UsageSnapshot {
    pub fn read_units(&self) -> f64 {
        self.read_half_units as f64 / 2.0
    }
}

impl Usage {
    fn request(&self, operation: &'static str) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(operation).or_default() += 1;
        }
    }

    fn write(&self, units: u64) {
        self.write_units.fetch_add(units, Ordering::Relaxed);
    }

    fn read(&self, units: u64, consistent: bool) {
        let half_units = if consistent { units * 2 } else { units };
        self.read_half_units.fetch_add(half_units, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            requests: self.requests.lock().map(|r| r.clone()).unwrap_or_default(),
            write_units: self.write_units.load(Ordering::Relaxed),
            read_half_units: self.read_half_units.load(Ordering::Relaxed),
        }
    }
}

/// An item's size as DynamoDB counts it: every attribute's name plus its value (strings and
/// binaries by length; numbers about one byte per two digits plus one; booleans one byte).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::N(number) => number.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        _ => 0,
    }
}

/// Write units of one item write: 1 per started KB, and the same again for each index the
/// item appears in (projected size; the projections here are keys plus `d` and `t`).
fn write_units(item: &Item) -> u64 {
    let base = item_size(item).div_ceil(1024).max(1) as u64;
    let indexes = ["GSI1PK", "GSI2PK"].iter().filter(|k| item.contains_key(**k)).count() as u64;
    base * (1 + indexes)
}

fn read_units(bytes: usize) -> u64 {
    bytes.div_ceil(4096).max(1) as u64
}

/// The partition of a subscription's attempt log.
fn attempts_pk(workspace: &str, subscription: &str) -> String {
    format!("WS#{workspace}#SUB#{subscription}#ATT")
}

/// The key of a delivery's delivered mark (one partition per delivery: no hot key).
fn delivered_pk(workspace: &str, subscription: &str, key: &str) -> String {
    format!("WS#{workspace}#SUB#{subscription}#DLV#{key}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn deflate(text: &str) -> AttributeValue {
    AttributeValue::B(Blob::new(miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 9)))
}

fn inflate(item: &Item, name: &str) -> Result<String, StoreError> {
    let bytes = match item.get(name) {
        Some(AttributeValue::B(blob)) => blob.as_ref(),
        _ => return Err(StoreError::permanent(format!("item has no `{name}` attribute"))),
    };
    // Bodies are small; a limit keeps a corrupt item from inflating without bound.
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(bytes, 16 * 1024 * 1024)
        .map_err(|e| StoreError::permanent(format!("`{name}` is not deflate data: {e:?}")))?;
    String::from_utf8(raw).map_err(|_| StoreError::permanent(format!("`{name}` is not UTF-8")))
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::permanent(format!("item has no `{name}` string"))),
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::permanent(format!("stored JSON unreadable: {e}")))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::permanent(format!("cannot encode: {e}")))
}

/// The sort key of an event in a time-ordered index: zero-padded milliseconds, then the id
/// without its `evt_` prefix (keys are billed by the byte).
fn time_key(ms: i64, id: &str) -> String {
    format!("{:013}#{}", ms.max(0), id.strip_prefix("evt_").unwrap_or(id))
}

/// An event's sort key in its partition.
fn event_sk(id: &str) -> String {
    format!("EVT#{}", id.strip_prefix("evt_").unwrap_or(id))
}

fn message_pk(workspace: &str, message_id: &str) -> String {
    format!("WS#{workspace}#MSG#{message_id}")
}

fn event_pk(workspace: &str, message_id: Option<&str>, id: &str) -> String {
    match message_id {
        Some(message) => message_pk(workspace, message),
        None => format!("WS#{workspace}#EVT#{id}"),
    }
}

/// An event's id as a message state remembers it: 16 hex digits of its hash (ids are
/// `evt_<32 hex>`), unique enough within one message.
fn applied_id(id: &str) -> String {
    let hex = id.strip_prefix("evt_").unwrap_or(id);
    hex.get(..16).unwrap_or(hex).to_owned()
}

fn days_pk(ws: &str) -> String {
    format!("WS#{ws}#DAYS")
}

fn day(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).map(|t| t.to_string()[..10].to_owned()).unwrap_or_else(|| "1970-01-01".into())
}

impl DynamoStore {
    pub fn new(client: impl Into<crate::LazyClient<Client>>, table: impl Into<String>) -> Self {
        DynamoStore {
            client: client.into(),
            table: table.into(),
            usage: Arc::new(Usage::default()),
            secrets: None,
            marked_days: Arc::default(),
            read_budget: READ_BUDGET,
        }
    }

    /// Reads at most `items` items per filtered event listing instead of [`READ_BUDGET`]
    /// (tests use a small budget to see paging by budget without storing thousands of events).
    pub fn with_read_budget(mut self, items: usize) -> Self {
        self.read_budget = items.max(1);
        self
    }

    /// The SDK client, built on first use ([`crate::LazyClient`]).
    async fn client(&self) -> &Client {
        self.client.get().await
    }

    /// Adds `day` to the workspace's day index (`WS#<ws>#DAYS`), the days that hold its events,
    /// before the first event of that day is stored, so a workspace-wide listing reads only
    /// those day partitions instead of walking back through empty ones. Idempotent (a set
    /// `ADD`); a store writes each pair once and remembers it, so this is one small write per
    /// workspace per day per warm function instance.
    async fn mark_day(&self, ws: &str, day: String) -> Result<(), StoreError> {
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
        self.usage.request("UpdateItem");
        self.usage.write(1);
        if let Ok(mut marked) = self.marked_days.lock() {
            if marked.len() >= MARKED_DAYS_CACHE {
                marked.clear();
            }
            marked.insert(key);
        }
        Ok(())
    }

    /// The days that hold a workspace's events, newest first.
    async fn days(&self, ws: &str) -> Result<Vec<String>, StoreError> {
        let mut days = match self.get(&days_pk(ws), "DAYS").await?.and_then(|mut item| item.remove("days")) {
            Some(AttributeValue::Ss(days)) => days,
            _ => Vec::new(),
        };
        days.sort_unstable_by(|a, b| b.cmp(a));
        Ok(days)
    }

    /// A source as stored, `ssm:` references unresolved.
    async fn stored_source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        self.get(&format!("SRC#{id}"), "SRC").await?.map(|item| json(text(&item, "d")?)).transpose()
    }

    /// Loads sources with their `ssm:` secret references resolved (what ingest needs to verify).
    pub fn with_secrets(mut self, secrets: crate::secrets::SsmSecrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// What this store (and its clones) has used so far.
    pub fn usage(&self) -> UsageSnapshot {
        self.usage.snapshot()
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get_with(pk, sk, true).await
    }

    async fn get_with(&self, pk: &str, sk: &str, consistent: bool) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        self.usage.request("GetItem");
        self.usage.read(read_units(out.item.as_ref().map_or(0, item_size)), consistent);
        Ok(out.item)
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.usage.request("PutItem");
        self.usage.write(write_units(&item));
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }

    /// A conditional `PutItem`: `false` when the condition failed (DynamoDB bills that as a
    /// write too).
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        self.usage.request("PutItem");
        self.usage.write(write_units(&item));
        let mut put =
            self.client().await.put_item().table_name(&self.table).set_item(Some(item)).condition_expression(condition);
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) => Err(classify("PutItem", &error)),
        }
    }

    /// One query's results, following pages: each item is mapped (`None` skips it) until
    /// `want` values are collected or the query ends.
    async fn query_all<T>(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
        map: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
        want: usize,
    ) -> Result<Vec<T>, StoreError> {
        self.query_budgeted(index, key_condition, values, forward, map, want, None).await
    }

    /// [`Self::query_all`], also stopping once `budget` items have been read (each item read
    /// takes one from it, whether `map` keeps it or not).
    #[allow(clippy::too_many_arguments)]
    async fn query_budgeted<T>(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, AttributeValue)>,
        forward: bool,
        mut map: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
        want: usize,
        budget: Option<&AtomicUsize>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client()
                .await
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .scan_index_forward(forward)
                .set_index_name(index.map(str::to_owned))
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                request = request.expression_attribute_values(*name, value.clone());
            }
            let page = request.send().await.map_err(|e| classify("Query", &e))?;
            self.usage.request("Query");
            let items = page.items.unwrap_or_default();
            // Queries here are eventually consistent (the default; an index cannot be read otherwise).
            self.usage.read(read_units(items.iter().map(item_size).sum()), false);
            for item in items {
                if let Some(budget) = budget {
                    if budget.load(Ordering::Relaxed) == 0 {
                        return Ok(out);
                    }
                    budget.fetch_sub(1, Ordering::Relaxed);
                }
                if let Some(value) = map(&item)? {
                    out.push(value);
                    if out.len() >= want {
                        return Ok(out);
                    }
                }
            }
            if budget.is_some_and(|b| b.load(Ordering::Relaxed) == 0) {
                return Ok(out);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }

    /// One attempt at recording an event: three plain conditional writes, in an order that makes
    /// a retry after a crash between them safe, instead of a transaction (which DynamoDB bills
    /// at twice the write units).
    ///
    /// 1. The message state, with an optimistic version check. The state item keeps the ids of
    ///    the last [`APPLIED_IDS`] events applied to it (`ev`), so an event the previous attempt
    ///    applied before it crashed is not counted twice.
    /// 2. The suppression entry, with a version check; applying the same event again yields
    ///    the same entry (the newest event wins).
    /// 3. The event item, on condition that its key is new: the last write, so an event is only
    ///    ever seen as stored (and a retry as a duplicate) once its effects are in place.
    ///
    /// A reader may see a state that counts an event a few milliseconds before the event item
    /// itself appears; nothing is lost or doubled.
    async fn try_record(&self, queued: &QueuedEvent, expires_at: Timestamp) -> Result<Attempt, StoreError> {
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
            let mut applied: Vec<String> = current
                .as_ref()
                .and_then(|i| i.get("ev"))
                .and_then(|v| v.as_s().ok())
                .map(|ids| ids.split(' ').filter(|id| !id.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
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
                        ("ttl".to_owned(), n(expires_at.unix_seconds())),
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

        if self.put_if(event_item(queued, expires_at)?, "attribute_not_exists(PK)", vec![]).await? {
            return Ok(Attempt::Done(Recorded::Stored));
        }
        // Already stored (by another instance, or earlier): a duplicate.
        Ok(Attempt::Done(Recorded::Duplicate))
    }

    async fn event_page(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let ws = query.workspace.as_str();
        let pattern =
            query.type_pattern.as_deref().map(TypePattern::parse).transpose().map_err(StoreError::permanent)?;
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

/// The item an event is stored as. The canonical event, its source and the raw provider record
/// go in one deflate stream (`d`): they repeat each other's strings (ids, addresses, tags), so
/// together they compress far better than apart, and writes are billed per KB.
pub fn event_item(queued: &QueuedEvent, expires_at: Timestamp) -> Result<Item, StoreError> {
    let e = &queued.event;
    let ws = e.workspaceid.as_str();
    let id = e.id.as_str();
    let ms = e.time.unix_millis();
    // Compact JSON never contains a raw newline, and source ids have none: `\n` separates.
    let blob = format!("{}\n{}\n{}", to_json(e)?, queued.source, queued.raw);
    let mut item: Item = HashMap::from([
        ("PK".to_owned(), s(event_pk(ws, e.data.message_id.as_deref(), id))),
        ("SK".to_owned(), s(event_sk(id))),
        ("GSI2PK".to_owned(), s(format!("WS#{ws}#DAY#{}", day(ms)))),
        ("GSI2SK".to_owned(), s(time_key(ms, id))),
        ("d".to_owned(), deflate(&blob)),
        ("ttl".to_owned(), n(expires_at.unix_seconds())),
    ]);
    if let Some(recipient) = &e.data.recipient {
        item.insert("GSI1PK".into(), s(format!("WS#{ws}#RCPT#{recipient}")));
        item.insert("GSI1SK".into(), s(time_key(ms, id)));
    }
    Ok(item)
}

/// The three parts of an event item's `d`: canonical event JSON, source id, raw record.
fn event_parts(item: &Item) -> Result<(String, String, String), StoreError> {
    let blob = inflate(item, "d")?;
    let mut parts = blob.splitn(3, '\n');
    let (Some(event), Some(source), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::permanent("event item `d` is not event, source and raw record"));
    };
    Ok((event.to_owned(), source.to_owned(), raw.to_owned()))
}

fn decode_event(item: &Item, wanted: &impl Fn(&CanonicalEvent) -> bool) -> Result<Option<CanonicalEvent>, StoreError> {
    let event: CanonicalEvent = json(&event_parts(item)?.0)?;
    Ok(wanted(&event).then_some(event))
}

/// The (time, event id) of an index sort key written by `time_key`.
fn position(sort_key: &str) -> Option<(i64, String)> {
    let (ms, hex) = sort_key.split_once('#')?;
    Some((ms.parse().ok()?, format!("evt_{hex}")))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let cursor = tidings_core::ports::EventCursor::parse(cursor).map_err(StoreError::permanent)?;
    Ok((cursor.ms, cursor.id))
}

fn version_condition(version: i64) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    if version == 0 { ("attribute_not_exists(PK)", vec![]) } else { ("v = :v", vec![(":v", n(version))]) }
}

enum Attempt {
    Done(Recorded),
    /// Another writer changed the state or suppression in between: read again and retry.
    Conflict,
}

impl Store for DynamoStore {
    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        // As stored: replacing a source must not depend on reading its secrets.
        if let Some(existing) = self.stored_source(&source.id).await?
            && existing.workspace != source.workspace
        {
            return Err(StoreError::permanent(format!("source {} belongs to another workspace", source.id)));
        }
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("SRC#{}", source.id))),
            ("SK".to_owned(), s("SRC")),
            ("GSI1PK".to_owned(), s(format!("WS#{}#SOURCES", source.workspace))),
            ("GSI1SK".to_owned(), s(&source.id)),
            ("d".to_owned(), s(to_json(source)?)),
        ]))
        .await
    }

    async fn source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        match (self.stored_source(id).await?, &self.secrets) {
            (Some(mut source), Some(secrets)) => {
                secrets.resolve(&mut source).await?;
                Ok(Some(source))
            }
            (source, _) => Ok(source),
        }
    }

    async fn sources(&self, workspace: &str) -> Result<Vec<Source>, StoreError> {
        let items = self
            .query_all(
                Some("GSI1"),
                "GSI1PK = :pk",
                vec![(":pk", s(format!("WS#{workspace}#SOURCES")))],
                true,
                |i| json(text(i, "d")?).map(Some),
                usize::MAX,
            )
            .await?;
        Ok(items)
    }

    async fn delete_source(&self, workspace: &str, id: &str) -> Result<bool, StoreError> {
        let result = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(format!("SRC#{id}")))
            .key("SK", s("SRC"))
            .condition_expression("GSI1PK = :ws")
            .expression_attribute_values(":ws", s(format!("WS#{workspace}#SOURCES")))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify("DeleteItem", &e)),
        }
    }

    async fn claim_nonce(&self, claim: &ReplayClaim) -> Result<NonceCheck, StoreError> {
        let pk = format!("NONCE#{}#{}", claim.provider, claim.nonce);
        let now = Timestamp::now().unix_seconds();
        // A nonce past its window may still be in the table (TTL deletion lags): overwrite it.
        // A small item: one write unit, refused or not.
        self.usage.request("PutItem");
        self.usage.write(1);
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("PK", s(&pk))
            .item("SK", s("NONCE"))
            .item("fp", AttributeValue::B(Blob::new(claim.fingerprint.to_vec())))
            .item("ttl", n(claim.remember_until.unix_seconds()))
            .condition_expression("attribute_not_exists(PK) OR #ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(NonceCheck::Fresh),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let existing = self.get(&pk, "NONCE").await?;
                let same = matches!(existing.as_ref().and_then(|i| i.get("fp")), Some(AttributeValue::B(b)) if b.as_ref() == claim.fingerprint);
                Ok(if same { NonceCheck::SameRequest } else { NonceCheck::Reused })
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn record(&self, queued: &QueuedEvent, expires_at: Timestamp) -> Result<Recorded, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            if let Attempt::Done(recorded) = self.try_record(queued, expires_at).await? {
                return Ok(recorded);
            }
        }
        Err(StoreError::retryable(format!(
            "event {}: message state kept changing under concurrent writers",
            queued.event.id
        )))
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        self.event_page(query).await
    }

    async fn event(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<CanonicalEvent>, StoreError> {
        let item = self.get(&event_pk(workspace, message_id, event.as_str()), &event_sk(event.as_str())).await?;
        item.map(|i| json(&event_parts(&i)?.0)).transpose()
    }

    async fn has_event(&self, workspace: &str, message_id: Option<&str>, event: &EventId) -> Result<bool, StoreError> {
        // Eventually consistent (half a read unit for an item under 4 KB) and not decoded.
        let item =
            self.get_with(&event_pk(workspace, message_id, event.as_str()), &event_sk(event.as_str()), false).await?;
        Ok(item.is_some())
    }

    async fn raw(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<String>, StoreError> {
        let item = self.get(&event_pk(workspace, message_id, event.as_str()), &event_sk(event.as_str())).await?;
        item.map(|i| event_parts(&i).map(|(_, _, raw)| raw)).transpose()
    }

    async fn message_states(&self, workspace: &str, message_id: &str) -> Result<Vec<MessageState>, StoreError> {
        let items = self
            .query_all(
                None,
                "PK = :pk AND begins_with(SK, :state)",
                vec![(":pk", s(message_pk(workspace, message_id))), (":state", s("STATE#"))],
                true,
                |i| json(text(i, "d")?).map(Some),
                usize::MAX,
            )
            .await?;
        Ok(items)
    }

    async fn suppressions(&self, workspace: &str) -> Result<Vec<Suppression>, StoreError> {
        let active = |item: &Item| match item.get("active") {
            Some(AttributeValue::Bool(true)) => json(text(item, "d")?).map(Some),
            _ => Ok(None),
        };
        self.query_all(None, "PK = :pk", vec![(":pk", s(format!("WS#{workspace}#SUPP")))], true, active, usize::MAX)
            .await
    }

    async fn remove_suppression(&self, workspace: &str, recipient: &str) -> Result<bool, StoreError> {
        let pk = format!("WS#{workspace}#SUPP");
        let Some(item) = self.get(&pk, recipient).await? else { return Ok(false) };
        let mut entry: Suppression = json(text(&item, "d")?)?;
        if !entry.active {
            return Ok(false);
        }
        entry.active = false;
        entry.as_of = Timestamp::now().max(entry.as_of);
        let version = number(&item, "v").unwrap_or(0);
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("PK", s(pk))
            .item("SK", s(recipient))
            .item("active", AttributeValue::Bool(false))
            .item("d", s(to_json(&entry)?))
            .item("v", n(version + 1))
            .condition_expression("v = :v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::retryable("suppression changed while being removed; try again"))
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let version = i64::try_from(subscription.version).map_err(|_| StoreError::permanent("version out of range"))?;
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("WS#{}#SUBS", subscription.workspace))),
            ("SK".to_owned(), s(&subscription.id)),
            ("d".to_owned(), s(to_json(subscription)?)),
            ("v".to_owned(), n(version)),
        ]))
        .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<bool, StoreError> {
        let mut next = subscription.clone();
        next.version += 1;
        let version = i64::try_from(subscription.version).map_err(|_| StoreError::permanent("version out of range"))?;
        let item = HashMap::from([
            ("PK".to_owned(), s(format!("WS#{}#SUBS", subscription.workspace))),
            ("SK".to_owned(), s(&subscription.id)),
            ("d".to_owned(), s(to_json(&next)?)),
            ("v".to_owned(), n(version + 1)),
        ]);
        // An item written before versions has no `v`: it is version 0.
        let condition = if version == 0 {
            "attribute_exists(PK) AND (attribute_not_exists(v) OR v = :v)"
        } else {
            "attribute_exists(PK) AND v = :v"
        };
        self.put_if(item, condition, vec![(":v", n(version))]).await
    }

    async fn subscription(&self, workspace: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        self.get(&format!("WS#{workspace}#SUBS"), id).await?.map(|item| json(text(&item, "d")?)).transpose()
    }

    async fn subscriptions(&self, workspace: &str) -> Result<Vec<Subscription>, StoreError> {
        let pk = s(format!("WS#{workspace}#SUBS"));
        self.query_all(None, "PK = :pk", vec![(":pk", pk)], true, |i| json(text(i, "d")?).map(Some), usize::MAX).await
    }

    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        // One item per subscription: a fan-out batch's ten attempts cost one write of ~1 KB
        // (deflated), not ten. Sorted by its newest attempt, newest first.
        let mut groups: BTreeMap<(&str, &str), Vec<&AttemptRecord>> = BTreeMap::new();
        for attempt in attempts {
            groups.entry((attempt.workspace.as_str(), attempt.subscription.as_str())).or_default().push(attempt);
        }
        try_join_all(groups.into_iter().map(|((workspace, subscription), mut group)| {
            group.sort_by_key(|a| std::cmp::Reverse((a.at, a.attempt)));
            let newest = group[0];
            let sk = format!("{:013}#{}#{:03}", newest.at.unix_millis().max(0), newest.event_id, newest.attempt);
            let item = to_json(&group).map(|json| {
                HashMap::from([
                    ("PK".to_owned(), s(attempts_pk(workspace, subscription))),
                    ("SK".to_owned(), s(sk)),
                    ("z".to_owned(), deflate(&json)),
                    ("ttl".to_owned(), n(newest.at.unix_seconds() + 90 * 86_400)),
                ])
            });
            async move { self.put(item?).await }
        }))
        .await?;
        Ok(())
    }

    async fn attempts(
        &self,
        workspace: &str,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let pk = s(attempts_pk(workspace, subscription));
        // An item holds the attempts of one write (`z`, newest first), or one attempt (`d`,
        // as items written before attempts were grouped).
        let groups: Vec<Vec<AttemptRecord>> = self
            .query_all(
                None,
                "PK = :pk",
                vec![(":pk", pk)],
                false,
                |i| match i.contains_key("z") {
                    true => json(&inflate(i, "z")?).map(Some),
                    false => json(text(i, "d")?).map(|one| Some(vec![one])),
                },
                limit.max(1),
            )
            .await?;
        let mut log: Vec<AttemptRecord> = groups.into_iter().flatten().collect();
        log.truncate(limit);
        Ok(log)
    }

    async fn claim_delivery(&self, claim: &DeliveryClaim<'_>, now: Timestamp) -> Result<Claim, StoreError> {
        // One item per delivery (not one partition per subscription, which a busy subscriber
        // would make hot), kept 14 days: longer than any copy of its task can live in SQS. A claim
        // has a holder and a lease; the mark that replaces it after a 2xx has neither.
        let pk = delivered_pk(claim.workspace, claim.subscription, claim.key);
        let item = HashMap::from([
            ("PK".to_owned(), s(pk.as_str())),
            ("SK".to_owned(), s("DLV")),
            ("holder".to_owned(), s(claim.holder)),
            ("lease".to_owned(), n(claim.lease_until.unix_seconds())),
            ("ttl".to_owned(), n(now.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS)),
        ]);
        let condition = "attribute_not_exists(PK) OR holder = :holder OR lease < :now";
        let values = vec![(":holder", s(claim.holder)), (":now", n(now.unix_seconds()))];
        if self.put_if(item, condition, values).await? {
            return Ok(Claim::Taken);
        }
        // Which of the two it is, read consistently (the rare path: a copy of a task).
        match self.get_with(&pk, "DLV", true).await? {
            Some(item) if item.contains_key("lease") => Ok(Claim::Held),
            Some(_) => Ok(Claim::Delivered),
            None => Err(StoreError::retryable("the delivery's claim expired while it was being read")),
        }
    }

    async fn mark_delivered(
        &self,
        workspace: &str,
        subscription: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.put(HashMap::from([
            ("PK".to_owned(), s(delivered_pk(workspace, subscription, key))),
            ("SK".to_owned(), s("DLV")),
            ("at".to_owned(), n(at.unix_seconds())),
            ("ttl".to_owned(), n(at.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS)),
        ]))
        .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("KEY#{}", key.hash))),
            ("SK".to_owned(), s("KEY")),
            ("d".to_owned(), s(to_json(key)?)),
        ]))
        .await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.get(&format!("KEY#{hash}"), "KEY").await?.map(|item| json(text(&item, "d")?)).transpose()
    }
}

/// Creates the table as `template.yaml` declares it (on-demand, the two GSIs, TTL on `ttl`):
/// for tests on moto and for running against a hand-made table.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType, TimeToLiveSpecification,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::permanent(e.to_string()))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::permanent(e.to_string()))
    };
    let index = |name: &str| -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(&format!("{name}PK"), KeyType::Hash)?)
            .key_schema(key(&format!("{name}SK"), KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("d").build())
            .build()
            .map_err(|e| StoreError::permanent(e.to_string()))
    };
    let mut request = client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for name in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
        request = request.attribute_definitions(attribute(name)?);
    }
    request
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?)
        .global_secondary_indexes(index("GSI1")?)
        .global_secondary_indexes(index("GSI2")?)
        .send()
        .await
        .map_err(|e| classify("CreateTable", &e))?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("ttl")
        .enabled(true)
        .build()
        .map_err(|e| StoreError::permanent(e.to_string()))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", &e))?;
    Ok(())
}
