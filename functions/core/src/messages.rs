//! What the events queue carries, written from borrowed parts: a normalized event becomes a
//! queue message ([`QueuedEvent`](crate::ports::QueuedEvent) as JSON) without its raw record being copied.

use crate::ports::{Outgoing, StoreError};
use crate::providers::NormalizedEvent;

/// How many of a webhook's events ingest turns into queue messages and sends at a time: ten
/// SQS batches, few enough that a 6 MB request's messages are never all alive at once, many
/// enough that `tidings dev` commits a 1,000-event batch in ten transactions, not a thousand.
pub const ENQUEUE_CHUNK: usize = 100;

/// The queue messages of the next [`ENQUEUE_CHUNK`] of a webhook's (numbered) events, each
/// event dropped once it is written.
pub fn next_messages<'a>(
    events: &mut impl Iterator<Item = (usize, NormalizedEvent<'a>)>,
    source: &str,
) -> Result<Vec<Outgoing>, StoreError> {
    events.take(ENQUEUE_CHUNK).map(|(index, event)| event_message(index, &event, source)).collect()
}

/// The events-queue message of the `index`th event of a webhook from `source`: the event, its
/// raw provider record and the source ([`QueuedEvent`](crate::ports::QueuedEvent)).
pub fn event_message(index: usize, event: &NormalizedEvent<'_>, source: &str) -> Result<Outgoing, StoreError> {
    let queued = QueuedEventRef { event: &event.event, raw: &event.raw, source };
    let body = serde_json::to_string(&queued)
        .map_err(|e| StoreError::malformed(format!("event {} cannot be written as JSON: {e}", event.event.id)))?;
    Ok(Outgoing { id: index.to_string(), body, delay_seconds: 0 })
}

/// [`QueuedEvent`](crate::ports::QueuedEvent) as written, from borrowed parts: the raw record is not copied to be queued.
#[derive(serde::Serialize)]
struct QueuedEventRef<'a> {
    event: &'a crate::event::CanonicalEvent,
    raw: &'a str,
    source: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, EventData, EventType, Status};
    use crate::ports::QueuedEvent;
    use crate::providers::{NormalizeContext, Raw};
    use crate::timestamp::Timestamp;

    #[test]
    fn an_event_message_reads_back_as_the_queued_event_with_its_raw_record() {
        let ctx =
            NormalizeContext { workspace: "ws_1", received_at: Timestamp::from_unix_seconds(1_764_000_000).unwrap() };
        let body = r#"[{"event":"bounce","email":"a@example.com","reason":"550 \"no\""}]"#;
        let record = &body[1..body.len() - 1];
        let data = EventData::new(Some(Channel::EMAIL), "sendgrid", "bounce");
        let event =
            ctx.event(EventType::message(Channel::EMAIL, Status::Bounced), None, "key", data, &Raw::Borrowed(record));
        let message = event_message(7, &event, "src_1").unwrap();
        assert_eq!(message.id, "7");
        let queued: QueuedEvent = serde_json::from_str(&message.body).unwrap();
        assert_eq!(queued, QueuedEvent { event: event.event, raw: record.to_owned(), source: "src_1".into() });
    }
}
