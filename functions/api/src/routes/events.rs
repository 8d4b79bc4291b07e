//! Events, their raw provider records, and message timelines.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{EventQuery, Queue, Store, StoreError};
use tidings_core::state::MessageState;

use schemars::JsonSchema;

use crate::views;
use crate::{ApiError, AppState, Params, PathParams, Workspace, bad_request, parse_time};

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsParams {
    /// Only this message's events.
    message: Option<String>,
    /// Only events of this recipient (an address or a number).
    recipient: Option<String>,
    /// Only events of this type pattern (`email.bounced`, `email.*`, `*.failed`).
    #[schemars(regex(pattern = tidings_core::pattern::TYPE_PATTERN_REGEX))]
    r#type: Option<String>,
    /// Events at or after this time (RFC 3339 or Unix seconds).
    since: Option<String>,
    /// Events at or before this time (RFC 3339 or Unix seconds).
    until: Option<String>,
    /// At most this many events (1 to 1000, default 100).
    limit: Option<usize>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

pub(crate) async fn events<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    Params(p): Params<EventsParams>,
) -> Result<axum::Json<views::EventPage>, ApiError> {
    if let Some(pattern) = &p.r#type {
        TypePattern::parse(pattern).map_err(|e| e.in_field("type"))?;
    }
    if let Some(cursor) = &p.cursor {
        tidings_core::ports::EventCursor::parse(cursor)?;
    }
    let query = EventQuery {
        workspace,
        message_id: p.message,
        recipient: p.recipient.map(|r| tidings_core::recipient::any(&r)),
        type_pattern: p.r#type,
        since: p.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        until: p.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
        cursor: p.cursor,
    };
    let page = shared.store.events(&query).await?;
    Ok(axum::Json(views::EventPage { events: page.events, next: page.next }))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParams {
    /// The event's message id (events are kept with their message).
    message: Option<String>,
}

pub(crate) async fn raw<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<RawParams>,
) -> Result<Response, ApiError> {
    let id: EventId = serde_json::from_value(Value::String(id)).map_err(|_| bad_request("not an event id"))?;
    match shared.store.raw(&workspace, p.message.as_deref(), &id).await? {
        Some(raw) if raw.is_empty() => Err(ApiError::NotFound(format!(
            "the provider's record of {id} is not kept (the workspace's privacy settings, or its recipient was erased)"
        ))),
        Some(raw) => Ok(([(header::CONTENT_TYPE, "application/json")], raw).into_response()),
        None => Err(ApiError::NotFound(format!("no event {id}"))),
    }
}

pub(crate) async fn message<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::MessageHistory>, ApiError> {
    let Some((states, timeline)) = message_history(&shared.store, &workspace, &id).await? else {
        return Err(ApiError::NotFound(format!("no message {id}")));
    };
    Ok(axum::Json(views::MessageHistory { message_id: id, states, timeline }))
}

/// A message's states (one per recipient) and its events, oldest first; `None` when the
/// workspace has neither.
pub(crate) async fn message_history<S: Store>(
    store: &S,
    workspace: &str,
    id: &str,
) -> Result<Option<(Vec<MessageState>, Vec<CanonicalEvent>)>, StoreError> {
    let states = store.message_states(workspace, id).await?;
    let query =
        EventQuery { workspace: workspace.into(), message_id: Some(id.into()), limit: 1000, ..EventQuery::default() };
    let mut timeline = store.events(&query).await?.events;
    timeline.reverse();
    Ok((!states.is_empty() || !timeline.is_empty()).then_some((states, timeline)))
}
