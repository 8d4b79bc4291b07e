//! Replay: stored events delivered to a subscription again.

use crate::delivery::{self, DeliveryTask};
use crate::ports::{EventStore, Outgoing, Queue, QueueName, StoreError};
use crate::subscription::Subscription;
use crate::timestamp::Timestamp;

/// Re-delivers a workspace's stored events to one subscription: every event in
/// [`since`, `until`] that the subscription matches (and `type_pattern`, when given), as new
/// delivery tasks with the same `webhook-id`s. Returns how many were queued.
pub async fn replay<S: EventStore, Q: Queue>(
    store: &S,
    queue: &Q,
    subscription: &Subscription,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    type_pattern: Option<String>,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    let mut cursor = None;
    let replay = delivery::replay_id(Timestamp::now());
    loop {
        let query = crate::ports::EventQuery {
            workspace: subscription.workspace.clone(),
            type_pattern: type_pattern.clone(),
            since,
            until,
            limit: 500,
            cursor,
            ..Default::default()
        };
        let page = store.events(&query).await?;
        let tasks: Vec<Outgoing> = page
            .events
            .iter()
            // The source filter needs the source, which replay does not read back: type and
            // provider filters apply, a source filter does not narrow a replay.
            .filter(|e| subscription.matches(e, subscription.sources.first().map_or("", String::as_str)))
            .enumerate()
            .map(|(i, e)| {
                let task = DeliveryTask { replay: Some(replay.clone()), ..DeliveryTask::new(subscription, e) };
                let body = serde_json::to_string(&task).unwrap_or_default();
                Outgoing { id: i.to_string(), body, delay_seconds: 0 }
            })
            .collect();
        if !tasks.is_empty() {
            queue.send(QueueName::Deliveries, &tasks).await?;
            queued += tasks.len();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(queued),
        }
    }
}
