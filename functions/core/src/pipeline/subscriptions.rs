//! Changing a stored subscription safely: every writer (a delivery's bookkeeping, an operator
//! through the API or the console) changes it over the version it read.

use crate::ports::{StoreError, SubscriptionStore};
use crate::subscription::Subscription;

/// How often [`modify_subscription`] reads again after losing a race with another writer.
const MODIFY_ATTEMPTS: usize = 5;

/// Applies `change` to the subscription as stored and writes it over the version it read, reading
/// again and re-applying `change` when another writer got there first. `change` sees the current
/// subscription each time, so it changes only what it means to (a delivery's failure clock, an
/// operator's enable) and decides on fresh state; it returns `false` to write nothing. `None`
/// when the subscription does not exist (or was deleted meanwhile).
pub async fn modify_subscription<S: SubscriptionStore>(
    store: &S,
    workspace: &str,
    id: &str,
    mut change: impl FnMut(&mut Subscription) -> bool,
) -> Result<Option<Subscription>, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(mut subscription) = store.subscription(workspace, id).await? else {
            return Ok(None);
        };
        if !change(&mut subscription) {
            return Ok(Some(subscription));
        }
        if store.update_subscription(&subscription).await? {
            subscription.version += 1;
            return Ok(Some(subscription));
        }
    }
    Err(StoreError::contended(format!("subscription {id} kept changing while being written; try again")))
}

/// Changes a subscription's shared pace with `change`, written over the version read and redone
/// on the fresh one when another fan-out instance wrote in between. Answers what `change`
/// answered on the pace written (or on the pace read, when `change` left it as it was).
pub async fn modify_pace<S: crate::ports::PaceStore, R>(
    store: &S,
    workspace: &str,
    subscription: &str,
    mut change: impl FnMut(&mut crate::pacing::PaceState) -> R,
) -> Result<R, StoreError> {
    for round in 0..PACE_ATTEMPTS {
        let (read, version) = store.pace(workspace, subscription).await?;
        let mut state = read.clone();
        let answer = change(&mut state);
        if state == read || store.put_pace(workspace, subscription, &state, version).await? {
            return Ok(answer);
        }
        if round + 1 == PACE_ATTEMPTS {
            break;
        }
        // Another instance's turn landed first: step aside a moment, longer each time and
        // spread, so the contenders do not all read again together.
        let spread = 1.0 + crate::delivery::jitter().abs();
        tokio::time::sleep(std::time::Duration::from_millis(2u64 << round.min(5)).mul_f64(spread)).await;
    }
    Err(StoreError::contended(format!("the pace of subscription {subscription} kept changing while being written")))
}

/// Rounds of read and conditional write a pace change gets: many instances may take turns on one
/// subscription at once.
const PACE_ATTEMPTS: usize = 16;
