//! Erasing a recipient, and finding a suppression entry whether or not its recipient was erased.

use crate::event::CanonicalEvent;
use crate::ports::{EventStore, PrivacyStore, StoreError};
use crate::privacy::{ERASE_EVENTS_PER_CALL, EraseKey, Erased, is_hash};
use crate::suppression::Suppression;
use crate::timestamp::Timestamp;

/// Erases `recipient` (in the form events keep it: [`crate::recipient::any`]) from `workspace`,
/// at most [`ERASE_EVENTS_PER_CALL`] events per call (`complete: false` says to call again). The
/// workspace's erase key is made on its first erasure.
pub async fn erase_recipient<S: PrivacyStore>(
    store: &S,
    workspace: &str,
    recipient: &str,
    now: Timestamp,
) -> Result<Erased, StoreError> {
    let key = store
        .erase_key(workspace, true)
        .await?
        .ok_or_else(|| StoreError::unavailable("the workspace's erase key was made but cannot be read yet"))?;
    let hash = key.hash(recipient);
    let erased = store.erase_recipient(workspace, recipient, &hash, now, ERASE_EVENTS_PER_CALL).await?;
    tracing::info!(hash = %erased.hash, events = erased.events, complete = erased.complete, "recipient erased");
    crate::metrics::record(&[], &[("RecipientsErased", crate::metrics::Unit::Count, 1.0)]);
    Ok(erased)
}

/// The suppression entry of `recipient`: under the address, or, once they were erased, under
/// their hash (the entry then names the hash, never the address).
pub async fn suppression_of<S: EventStore + PrivacyStore>(
    store: &S,
    workspace: &str,
    recipient: &str,
) -> Result<Option<Suppression>, StoreError> {
    if let Some(entry) = store.suppression(workspace, recipient).await? {
        return Ok(Some(entry));
    }
    match store.erase_key(workspace, false).await? {
        Some(key) if key.last_erasure.is_some() => store.suppression(workspace, &key.hash(recipient)).await,
        _ => Ok(None),
    }
}

/// The erasure of `event`'s recipient, looked up by their hash under the workspace's erase
/// `key`: the hash and when. `None` without a key that names an erasure, for an event about no
/// recipient, or one already under a hash. What the processor and the fan-out ask of an event.
pub(crate) async fn erasure_of<S: PrivacyStore>(
    store: &S,
    key: Option<&EraseKey>,
    event: &CanonicalEvent,
) -> Result<Option<(String, Timestamp)>, StoreError> {
    let (Some(key), Some(recipient)) = (key, event.data.recipient.as_deref()) else { return Ok(None) };
    if key.last_erasure.is_none() || is_hash(recipient) {
        return Ok(None);
    }
    let hash = key.hash(recipient);
    Ok(store.erasure(&event.workspaceid, &hash).await?.map(|at| (hash, at)))
}

/// Erases `event`'s recipient again, as of their erasure, when they were erased: a stored event
/// an erasure overtook. Idempotent: nothing is left to remove otherwise.
pub(crate) async fn erase_again_if_erased<S: PrivacyStore>(
    store: &S,
    key: Option<&EraseKey>,
    event: &CanonicalEvent,
) -> Result<(), StoreError> {
    if let (Some((hash, at)), Some(recipient)) = (erasure_of(store, key, event).await?, event.data.recipient.as_deref())
    {
        store.erase_recipient(&event.workspaceid, recipient, &hash, at, ERASE_EVENTS_PER_CALL).await?;
    }
    Ok(())
}
