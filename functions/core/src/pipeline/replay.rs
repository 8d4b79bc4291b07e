//! Replay: stored events delivered to a subscription again, a bounded stretch per call.

use crate::delivery::{self, DeliveryTask};
use crate::invalid::Invalid;
use crate::ports::{EventCursor, EventQuery, EventStore, Outgoing, Queue, QueueName, StoreError};
use crate::subscription::Subscription;
use crate::timestamp::Timestamp;

/// Events one replay call reads at most (four listing pages): a replay of a long history is
/// several calls, each answered promptly, never one request that reads the whole history.
pub const REPLAY_EVENTS_PER_CALL: usize = 2_000;

const PAGE: usize = 500;

/// What a replay covers: events in [`since`, `until`] that the subscription matches and, when
/// given, `type_pattern`.
#[derive(Debug, Clone, Default)]
pub struct ReplayRange {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub type_pattern: Option<String>,
}

/// Where a replay goes on: its id (on every task it queues, so its deliveries are new ones and a
/// copy of one of its tasks is still sent once) and the position in the listing it reached.
/// Written `<replay id>:<event cursor>`; clients pass it back as they got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPosition {
    pub replay: String,
    pub cursor: EventCursor,
}

impl ReplayPosition {
    pub fn parse(text: &str) -> Result<ReplayPosition, Invalid> {
        let malformed = || {
            Invalid::new("cursor", format!("cursor {text:?} is not a replay's `next` as an earlier call answered it"))
        };
        let (replay, cursor) = text.split_once(':').ok_or_else(malformed)?;
        let well_formed = replay.len() <= 40
            && replay
                .strip_prefix("rp")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(malformed());
        }
        let cursor = EventCursor::parse(cursor).map_err(|_| malformed())?;
        Ok(ReplayPosition { replay: replay.to_owned(), cursor })
    }
}

impl std::fmt::Display for ReplayPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.replay, self.cursor)
    }
}

/// What one replay call did: how many deliveries it queued, and where the next call goes on
/// (`None`: the range is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayProgress {
    pub queued: usize,
    pub next: Option<ReplayPosition>,
}

/// Re-delivers a workspace's stored events in `range` to one subscription, as new delivery
/// tasks with the same `webhook-id`s, reading at most [`REPLAY_EVENTS_PER_CALL`] events: a new
/// replay when `from` is `None`, else the one `from` names, from where it stopped.
pub async fn replay<S: EventStore, Q: Queue>(
    store: &S,
    queue: &Q,
    subscription: &Subscription,
    range: &ReplayRange,
    from: Option<ReplayPosition>,
) -> Result<ReplayProgress, StoreError> {
    let (replay, mut cursor) = match from {
        Some(position) => (position.replay, Some(position.cursor.to_string())),
        None => (delivery::replay_id(Timestamp::now()), None),
    };
    let mut queued = 0;
    for _ in 0..REPLAY_EVENTS_PER_CALL / PAGE {
        let query = EventQuery {
            workspace: subscription.workspace.clone(),
            type_pattern: range.type_pattern.clone(),
            since: range.since,
            until: range.until,
            limit: PAGE,
            cursor,
            ..Default::default()
        };
        let page = store.events(&query).await?;
        let mut tasks = Vec::new();
        // The source filter needs the source, which replay does not read back: type and
        // provider filters apply, a source filter does not narrow a replay.
        let source = subscription.sources.first().map_or("", String::as_str);
        for event in page.events.iter().filter(|e| subscription.matches(e, source)) {
            let task = DeliveryTask { replay: Some(replay.clone()), ..DeliveryTask::new(subscription, event) };
            let body = serde_json::to_string(&task)
                .map_err(|e| StoreError::malformed(format!("delivery task not serializable: {e}")))?;
            tasks.push(Outgoing { id: tasks.len().to_string(), body, delay_seconds: 0 });
        }
        if !tasks.is_empty() {
            queue.send(QueueName::Deliveries, &tasks).await?;
            queued += tasks.len();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(ReplayProgress { queued, next: None }),
        }
    }
    let next = match cursor.as_deref().map(EventCursor::parse) {
        Some(Ok(cursor)) => Some(ReplayPosition { replay, cursor }),
        Some(Err(why)) => return Err(StoreError::malformed(format!("the store gave a malformed cursor: {why}"))),
        None => None,
    };
    Ok(ReplayProgress { queued, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_position_reads_back_as_written_and_refuses_anything_else() {
        let position = ReplayPosition {
            replay: "rp1764000000000deadbeef".into(),
            cursor: EventCursor { ms: 1_764_000_000_000, id: format!("evt_{}", "a".repeat(32)) },
        };
        assert_eq!(ReplayPosition::parse(&position.to_string()), Ok(position));
        for bad in ["", ":", "rp:1:evt_x", "xx12:1764000000000:evt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "rp12:abc"] {
            assert!(ReplayPosition::parse(bad).is_err(), "{bad:?}");
        }
    }
}
