//! Recipients' personal data: export, erasure, and the workspace's privacy settings.

use axum::extract::State;
use tidings_core::Timestamp;
use tidings_core::pipeline::{RecipientExport, export_recipient};
use tidings_core::ports::{Queue, Store};
use tidings_core::privacy::{Erased, PrivacySettings};

use crate::{ApiError, AppState, JsonBody, PathParams, Workspace, bad_request};

/// The recipient named in a path, in the form events keep it; refused when it is empty or too
/// long to be an address or a number.
pub(crate) fn recipient(text: &str) -> Result<String, ApiError> {
    let recipient = tidings_core::recipient::any(text);
    if recipient.is_empty() || recipient.len() > 320 {
        return Err(bad_request("recipient: give an email address (at most 320 characters) or a phone number"));
    }
    Ok(recipient)
}

/// The export is an administrative action: the audit layer records it (without the recipient).
pub(crate) async fn export<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(text): PathParams<String>,
) -> Result<axum::Json<RecipientExport>, ApiError> {
    let recipient = recipient(&text)?;
    Ok(axum::Json(export_recipient(&shared.store, &workspace, &recipient, Timestamp::now()).await?))
}

/// Erases the recipient: their events with the provider records, message states and local
/// queue copies; their suppression entry stays, under their hash. Recorded in the audit log
/// without the recipient. Idempotent; `complete: false` means call again.
pub(crate) async fn erase<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(text): PathParams<String>,
) -> Result<axum::Json<Erased>, ApiError> {
    let recipient = recipient(&text)?;
    if tidings_core::privacy::is_hash(&recipient) {
        return Err(bad_request("recipient: this is an erased recipient's hash; give the address or number"));
    }
    Ok(axum::Json(
        tidings_core::pipeline::erase_recipient(&shared.store, &workspace, &recipient, Timestamp::now()).await?,
    ))
}

pub(crate) async fn privacy_settings<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<PrivacySettings>, ApiError> {
    Ok(axum::Json(shared.store.privacy_settings(&workspace).await?.unwrap_or_default()))
}

/// Replaces the workspace's privacy settings over the version read (409 when they changed
/// since). Fields left out take their defaults.
pub(crate) async fn put_privacy_settings<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    JsonBody(settings): JsonBody<PrivacySettings>,
) -> Result<axum::Json<PrivacySettings>, ApiError> {
    settings.validate()?;
    if !shared.store.put_privacy_settings(&workspace, &settings).await? {
        return Err(ApiError::Conflict(format!(
            "version: the settings changed since version {} was read; read them again and reapply the change",
            settings.version
        )));
    }
    Ok(axum::Json(PrivacySettings { version: settings.version.saturating_add(1), ..settings }))
}
