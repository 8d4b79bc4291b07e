//! The suppression list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tidings_core::ports::{Queue, Store};

use schemars::JsonSchema;

use crate::views;
use crate::{ApiError, AppState, Params, PathParams, Workspace};

pub(crate) async fn suppressions<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<views::SuppressionList>, ApiError> {
    Ok(axum::Json(views::SuppressionList { suppressions: shared.store.suppressions(&workspace).await? }))
}

/// Whether a recipient is suppressed: their active entry, found under the address, or under the
/// hash of an erased recipient (the entry then names the hash). 404 when they are not (never
/// were, or lifted), which is what a sender checking before it sends needs to know.
pub(crate) async fn suppression<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(text): PathParams<String>,
) -> Result<axum::Json<tidings_core::suppression::Suppression>, ApiError> {
    let recipient = super::recipients::recipient(&text)?;
    tidings_core::pipeline::suppression_of(&shared.store, &workspace, &recipient)
        .await?
        .filter(|entry| entry.active)
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound("recipient: not suppressed".into()))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveSuppressionParams {
    /// Also take the address off the SES account-level suppression list (for a workspace that
    /// mirrors its suppressions there).
    #[serde(default)]
    ses: bool,
}

/// Lifts a suppression. With `?ses=true` the address also comes off the SES account-level list,
/// for a workspace that mirrors suppressions there; that list is the whole SES account's, so
/// it is asked for explicitly, never implied.
pub(crate) async fn remove_suppression<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(recipient): PathParams<String>,
    Params(p): Params<RemoveSuppressionParams>,
) -> Result<Response, ApiError> {
    let recipient = tidings_core::recipient::any(&recipient);
    let ses = match (&shared.settings.ses_suppressions, p.ses) {
        (_, false) => None,
        (Some(ses), true) if ses.workspaces.iter().any(|w| w == "*" || *w == workspace) => Some(ses),
        // The request is sound; this deployment is not set up for it.
        (_, true) => {
            return Err(ApiError::Conflict(format!(
                "ses=true: workspace {workspace} does not mirror suppressions to SES (TIDINGS_SES_SUPPRESSION_SYNC)"
            )));
        }
    };
    let removed = shared.store.remove_suppression(&workspace, &recipient).await?;
    let Some(ses) = ses else {
        return if removed {
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(ApiError::NotFound(format!("{recipient} is not suppressed")))
        };
    };
    let ses_removed = (ses.remove)(recipient.clone()).await?;
    if !removed && !ses_removed {
        return Err(ApiError::NotFound(format!("{recipient} is suppressed neither here nor in SES")));
    }
    Ok(axum::Json(views::SuppressionRemoved { recipient, removed, ses_removed }).into_response())
}
