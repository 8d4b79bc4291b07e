//! Erasing a recipient, and finding a suppression entry whether or not its recipient was erased.

use crate::ports::{EventStore, PrivacyStore, StoreError};
use crate::privacy::{ERASE_EVENTS_PER_CALL, Erased};
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
