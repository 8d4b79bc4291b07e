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
