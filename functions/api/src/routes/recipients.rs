//! Recipients' personal data: export (and, in time, erasure).

use axum::extract::State;
use tidings_core::Timestamp;
use tidings_core::pipeline::{RecipientExport, export_recipient};
use tidings_core::ports::{Queue, Store};

use crate::{ApiError, AppState, PathParams, Workspace, bad_request};

/// The recipient named in a path, in the form events keep it; refused when it is empty or too
/// long to be an address or a number.
fn recipient(text: &str) -> Result<String, ApiError> {
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
