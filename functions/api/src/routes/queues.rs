//! Dead-letter queues (operator workspaces only).

use axum::extract::State;
use serde::Deserialize;
use tidings_core::ports::{DeadLetters, MoveMethod, Queue, QueueName, Store};

use schemars::JsonSchema;

use crate::{ApiError, AppState, Params, PathParams, Shared, Workspace};

/// The queue named in the path, for an operator's key only: dead-letter queues hold every
/// workspace's messages.
pub(crate) fn operator_queue<S, Q>(shared: &Shared<S, Q>, workspace: &str, queue: &str) -> Result<QueueName, ApiError> {
    if !shared.settings.is_operator(workspace) {
        return Err(ApiError::Forbidden(format!(
            "queues are shared by every workspace: only an operator workspace's key may act on them, and {workspace} is not one (TIDINGS_OPERATOR_WORKSPACES)"
        )));
    }
    queue.parse().map_err(|e: tidings_core::invalid::Invalid| ApiError::NotFound(e.reason))
}

pub(crate) async fn dead_letters<S: Store, Q: Queue + DeadLetters>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(queue): PathParams<String>,
) -> Result<axum::Json<tidings_core::ports::DeadLetterStatus>, ApiError> {
    let queue = operator_queue(&shared, &workspace, &queue)?;
    Ok(axum::Json(shared.queue.dead_letter_status(queue).await?))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveParams {
    /// `native` (the default: SQS moves them, asynchronously) or `manual` (tidings receives,
    /// resends and deletes each).
    method: Option<MoveMethod>,
}

/// Moves a queue's dead letters back to it: the answer says how far the move got (SQS moves
/// asynchronously; follow it with `GET /api/queues/{queue}/dead-letters`).
pub(crate) async fn redrive_dead_letters<S: Store, Q: Queue + DeadLetters>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(queue): PathParams<String>,
    Params(p): Params<RedriveParams>,
) -> Result<axum::Json<tidings_core::ports::DeadLetterStatus>, ApiError> {
    let queue = operator_queue(&shared, &workspace, &queue)?;
    let status = shared.queue.redrive_dead_letters(queue, p.method.unwrap_or_default()).await?;
    tracing::info!(queue = queue.as_str(), workspace, moved = status.moved, "dead letters redriven");
    Ok(axum::Json(status))
}
