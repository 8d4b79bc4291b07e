//! Keys, attribute values and the event item: how the store's values are laid out.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use tidings_core::event::CanonicalEvent;
use tidings_core::ports::{Expiry, QueuedEvent, StoreError};
use tidings_core::timestamp::Timestamp;

use super::Item;

/// The partition of a subscription's attempt log.
pub(super) fn attempts_pk(workspace: &str, subscription: &str) -> String {
    format!("WS#{workspace}#SUB#{subscription}#ATT")
}

/// The key of a delivery's delivered mark (one partition per delivery: no hot key).
pub(super) fn delivered_pk(workspace: &str, subscription: &str, key: &str) -> String {
    format!("WS#{workspace}#SUB#{subscription}#DLV#{key}")
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn deflate(text: &str) -> AttributeValue {
    AttributeValue::B(Blob::new(miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 9)))
}

pub(super) fn inflate(item: &Item, name: &str) -> Result<String, StoreError> {
    let bytes = match item.get(name) {
        Some(AttributeValue::B(blob)) => blob.as_ref(),
        _ => return Err(StoreError::malformed(format!("item has no `{name}` attribute"))),
    };
    // Bodies are small; a limit keeps a corrupt item from inflating without bound.
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(bytes, 16 * 1024 * 1024)
        .map_err(|e| StoreError::malformed(format!("`{name}` is not deflate data: {e:?}")))?;
    String::from_utf8(raw).map_err(|_| StoreError::malformed(format!("`{name}` is not UTF-8")))
}

pub(super) fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::malformed(format!("item has no `{name}` string"))),
    }
}

pub(super) fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

pub(super) fn json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::malformed(format!("stored JSON unreadable: {e}")))
}

pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::malformed(format!("cannot encode: {e}")))
}

/// The sort key of an event in a time-ordered index: zero-padded milliseconds, then the id
/// without its `evt_` prefix (keys are billed by the byte).
pub(super) fn time_key(ms: i64, id: &str) -> String {
    format!("{:013}#{}", ms.max(0), id.strip_prefix("evt_").unwrap_or(id))
}

/// An event's sort key in its partition.
pub(super) fn event_sk(id: &str) -> String {
    format!("EVT#{}", id.strip_prefix("evt_").unwrap_or(id))
}

pub(super) fn message_pk(workspace: &str, message_id: &str) -> String {
    format!("WS#{workspace}#MSG#{message_id}")
}

pub(super) fn event_pk(workspace: &str, message_id: Option<&str>, id: &str) -> String {
    match message_id {
        Some(message) => message_pk(workspace, message),
        None => format!("WS#{workspace}#EVT#{id}"),
    }
}

/// An event's id as a message state remembers it: 16 hex digits of its hash (ids are
/// `evt_<32 hex>`), unique enough within one message.
pub(super) fn applied_id(id: &str) -> String {
    let hex = id.strip_prefix("evt_").unwrap_or(id);
    hex.get(..16).unwrap_or(hex).to_owned()
}

/// The event ids an item lists as applied or counted (`ev` of a message state, `g` of a
/// counter): space-separated short ids.
pub(super) fn listed_ids(item: Option<&Item>, name: &str) -> Vec<String> {
    item.and_then(|i| i.get(name))
        .and_then(|v| v.as_s().ok())
        .map(|ids| ids.split(' ').filter(|id| !id.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(super) fn days_pk(ws: &str) -> String {
    format!("WS#{ws}#DAYS")
}

pub(super) fn day(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).map(|t| t.to_string()[..10].to_owned()).unwrap_or_else(|| "1970-01-01".into())
}

/// The item an event is stored as. The canonical event, its source and the raw provider record
/// go in one deflate stream (`d`): they repeat each other's strings (ids, addresses, tags), so
/// together they compress far better than apart, and writes are billed per KB.
pub fn event_item(queued: &QueuedEvent, expires_at: Timestamp) -> Result<Item, StoreError> {
    event_items(queued, expires_at.into()).map(|(event, _)| event)
}

/// The sort key of a provider record kept apart from its event (in the event's partition), from
/// the event's id with or without its `evt_`.
pub(super) fn raw_sk(id: &str) -> String {
    format!("RAW#{}", id.strip_prefix("evt_").unwrap_or(id))
}

/// The items an event is stored as: the event's, and, when the provider record expires before
/// the event, the record's own item (`RAW#<event id>`, `z` the deflated record, its own `ttl`);
/// the event's `d` then holds an empty record.
pub(super) fn event_items(queued: &QueuedEvent, expires_at: Expiry) -> Result<(Item, Option<Item>), StoreError> {
    let e = &queued.event;
    let ws = e.workspaceid.as_str();
    let id = e.id.as_str();
    let ms = e.time.unix_millis();
    let pk = event_pk(ws, e.data.message_id.as_deref(), id);
    let apart = expires_at.raw < expires_at.event && !queued.raw.is_empty();
    let raw_item = apart.then(|| {
        HashMap::from([
            ("PK".to_owned(), s(pk.clone())),
            ("SK".to_owned(), s(raw_sk(id))),
            ("z".to_owned(), deflate(&queued.raw)),
            ("ttl".to_owned(), n(expires_at.raw.unix_seconds())),
        ])
    });
    let raw = if apart { "" } else { queued.raw.as_str() };
    // Compact JSON never contains a raw newline, and source ids have none: `\n` separates.
    let blob = format!("{}\n{}\n{}", to_json(e)?, queued.source, raw);
    let mut item: Item = HashMap::from([
        ("PK".to_owned(), s(pk)),
        ("SK".to_owned(), s(event_sk(id))),
        ("GSI2PK".to_owned(), s(format!("WS#{ws}#DAY#{}", day(ms)))),
        ("GSI2SK".to_owned(), s(time_key(ms, id))),
        ("d".to_owned(), deflate(&blob)),
        ("ttl".to_owned(), n(expires_at.event.unix_seconds())),
    ]);
    if let Some(recipient) = &e.data.recipient {
        item.insert("GSI1PK".into(), s(format!("WS#{ws}#RCPT#{recipient}")));
        item.insert("GSI1SK".into(), s(time_key(ms, id)));
    }
    Ok((item, raw_item))
}

/// The three parts of an event item's `d`: canonical event JSON, source id, raw record.
pub(super) fn event_parts(item: &Item) -> Result<(String, String, String), StoreError> {
    let blob = inflate(item, "d")?;
    let mut parts = blob.splitn(3, '\n');
    let (Some(event), Some(source), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::malformed("event item `d` is not event, source and raw record"));
    };
    Ok((event.to_owned(), source.to_owned(), raw.to_owned()))
}

pub(super) fn decode_event(
    item: &Item,
    wanted: &impl Fn(&CanonicalEvent) -> bool,
) -> Result<Option<CanonicalEvent>, StoreError> {
    let event: CanonicalEvent = json(&event_parts(item)?.0)?;
    Ok(wanted(&event).then_some(event))
}

/// The (time, event id) of an index sort key written by `time_key`.
pub(super) fn position(sort_key: &str) -> Option<(i64, String)> {
    let (ms, hex) = sort_key.split_once('#')?;
    Some((ms.parse().ok()?, format!("evt_{hex}")))
}

pub(super) fn parse_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let cursor = tidings_core::ports::EventCursor::parse(cursor).map_err(StoreError::from)?;
    Ok((cursor.ms, cursor.id))
}

pub(super) fn version_condition(version: i64) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    if version == 0 { ("attribute_not_exists(PK)", vec![]) } else { ("v = :v", vec![(":v", n(version))]) }
}
