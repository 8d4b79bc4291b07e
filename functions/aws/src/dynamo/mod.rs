//! [`Store`](tidings_core::ports::Store) on one DynamoDB table. The item layout and the access pattern behind each query
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
//! | counter | `WS#<ws>#AGG#<series>#<yyyy-mm-dd>` | `<hour>\|<dimensions>` | | |
//! | deliverability settings | `WS#<ws>#SETTINGS` | `DELIVERABILITY` | | |
//! | alarm | `WS#<ws>#ALARMS` | `<alarm key>` | | |
//! | watched workspace | `WATCH` | `<ws>` | | |
//!
//! Event bodies and raw records are stored deflated, which keeps a typical event item under
//! 1 KB (one write unit). Recording an event is three conditional writes, not a transaction
//! (which bills twice): the message state and the suppression entry with optimistic version
//! checks, then the event item on condition that its key is new (a duplicate fails it, which is
//! how duplicates are detected). See [`DynamoStore::try_effects`] for why that order is safe.
//! Hourly counters are kept per batch (`deliverability.rs`).
//!
//! The store is one file per concern: `items.rs` (keys, attributes, the event item), `events.rs`
//! (recording an event, the day index, listings), `store.rs` (the `Store` port), and this
//! module (the client, usage accounting, the reads and writes they share, the table itself).

mod deliverability;
mod events;
mod items;
mod privacy;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use tidings_core::ports::StoreError;
use tidings_core::source::Source;

use crate::classify;

pub use items::event_item;
use items::{json, s, text};

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
    /// The same units by the partition they land on: (`table`, `GSI1` or `GSI2`; partition
    /// key value). The partition model in BENCHMARKS.md is built from these.
    partitions: Mutex<BTreeMap<(&'static str, String), PartitionLoad>>,
}

/// Capacity units one partition key received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionLoad {
    pub write_units: u64,
    /// Read units × 2, as [`UsageSnapshot::read_half_units`].
    pub read_half_units: u64,
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

    /// A write of `units` to the table's partition `pk`.
    fn wrote(&self, operation: &'static str, pk: &str, units: u64) {
        self.request(operation);
        self.write(units);
        self.load("table", pk, units, 0);
    }

    /// A write of `item`: its units on its table partition and on each index partition it is in.
    fn wrote_item(&self, operation: &'static str, item: &Item) {
        self.request(operation);
        let base = item_units(item);
        let key = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str);
        self.load("table", key("PK"), base, 0);
        let mut units = base;
        for (index, attribute) in INDEX_KEYS {
            if item.contains_key(attribute) {
                self.load(index, key(attribute), base, 0);
                units += base;
            }
        }
        self.write(units);
    }

    /// A read of `units` from partition `pk` of `target` (`table`, `GSI1`, `GSI2`).
    fn read_from(&self, operation: &'static str, target: &'static str, pk: &str, units: u64, consistent: bool) {
        self.request(operation);
        self.read(units, consistent);
        self.load(target, pk, 0, if consistent { units * 2 } else { units });
    }

    fn load(&self, target: &'static str, pk: &str, write_units: u64, read_half_units: u64) {
        if let Ok(mut partitions) = self.partitions.lock() {
            let load = partitions.entry((target, pk.to_owned())).or_default();
            load.write_units += write_units;
            load.read_half_units += read_half_units;
        }
    }

    /// Every partition key written or read so far, with its units.
    pub fn partitions(&self) -> BTreeMap<(&'static str, String), PartitionLoad> {
        self.partitions.lock().map(|p| p.clone()).unwrap_or_default()
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
pub(super) fn write_units(item: &Item) -> u64 {
    let indexes = INDEX_KEYS.iter().filter(|(_, key)| item.contains_key(*key)).count() as u64;
    item_units(item) * (1 + indexes)
}

/// The write units of `item` on the table alone: 1 per started KB.
fn item_units(item: &Item) -> u64 {
    item_size(item).div_ceil(1024).max(1) as u64
}

/// Each index, and the attribute that holds its partition key.
const INDEX_KEYS: [(&str, &str); 2] = [("GSI1", "GSI1PK"), ("GSI2", "GSI2PK")];

fn read_units(bytes: usize) -> u64 {
    bytes.div_ceil(4096).max(1) as u64
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

    /// The capacity units each partition key of the table and its indexes has received from
    /// this store so far.
    pub fn partitions(&self) -> BTreeMap<(&'static str, String), PartitionLoad> {
        self.usage.partitions()
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
        let units = read_units(out.item.as_ref().map_or(0, item_size));
        self.usage.read_from("GetItem", "table", pk, units, consistent);
        Ok(out.item)
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.usage.wrote_item("PutItem", &item);
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
        self.usage.wrote_item("PutItem", &item);
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
            let items = page.items.unwrap_or_default();
            // Queries here are eventually consistent (the default; an index cannot be read otherwise).
            let partition = values.iter().find(|(name, _)| *name == ":pk").and_then(|(_, v)| v.as_s().ok());
            let target = match index {
                Some("GSI1") => "GSI1",
                Some("GSI2") => "GSI2",
                _ => "table",
            };
            let units = read_units(items.iter().map(item_size).sum());
            self.usage.read_from("Query", target, partition.map_or("", String::as_str), units, false);
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
            .map_err(|e| StoreError::refused(e.to_string()))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::refused(e.to_string()))
    };
    let index = |name: &str| -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(&format!("{name}PK"), KeyType::Hash)?)
            .key_schema(key(&format!("{name}SK"), KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::Include).non_key_attributes("d").build())
            .build()
            .map_err(|e| StoreError::refused(e.to_string()))
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
        .map_err(|e| StoreError::refused(e.to_string()))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", &e))?;
    Ok(())
}
