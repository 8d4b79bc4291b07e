//! The audit log of administrative actions.

use axum::extract::State;
use serde::Deserialize;
use tidings_core::audit::{AuditPage, is_entry_id};
use tidings_core::ports::{Queue, Store};

use schemars::JsonSchema;

use crate::{ApiError, AppState, Params, Workspace, bad_request};

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// At most this many entries (1 to 1000, default 100).
    limit: Option<usize>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

pub(crate) async fn audit<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    Params(p): Params<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad_request(format!("limit: {limit} is not between 1 and 1000")));
    }
    if let Some(cursor) = p.cursor.as_deref().filter(|c| !is_entry_id(c)) {
        return Err(bad_request(format!("cursor: {cursor:?} is not a page's `next`")));
    }
    Ok(axum::Json(shared.store.audit(&workspace, limit, p.cursor.as_deref()).await?))
}
