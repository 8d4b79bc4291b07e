//! The admin API: one axum router, served by the `api` Lambda and by `tidings dev`.
//!
//! Every request but `/api/health` carries `Authorization: Bearer <api key>`. A key belongs to
//! one workspace, and every query is scoped to it: no route takes a workspace from the caller,
//! so one workspace's key can never read or change another's data. Keys are stored as SHA-256
//! hashes. Secrets of sources are returned once, when the source is created.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{DeadLetters, EventQuery, MoveMethod, Queue, QueueName, Store, StoreError};
use tidings_core::providers::ProviderId;
use tidings_core::source::{Source, new_id, new_secret};
use tidings_core::state::MessageState;
use tidings_core::subscription::{AnonymousId, Format, SigningSecret, Subscription};
use tidings_core::timestamp::Timestamp;

mod console;
mod openapi;
pub mod views;

use openapi::Operation;
use schemars::JsonSchema;

/// Hex SHA-256 of an API key: what the store keeps and looks keys up by.
pub fn api_key_hash(key: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref())
}

/// Takes an address off the SES account-level suppression list; `Ok(false)` if it was not on it.
pub type SesRemover =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>> + Send + Sync>;

/// Lifting suppressions in SES too (`DELETE /api/suppressions/{recipient}?ses=true`), for the
/// workspaces whose hard bounces and complaints are mirrored there.
#[derive(Clone)]
pub struct SesSuppressions {
    /// As `TIDINGS_SES_SUPPRESSION_SYNC`: workspace ids, or `*`.
    pub workspaces: Vec<String>,
    pub remove: SesRemover,
}

/// How the API is set up.
#[derive(Clone, Default)]
pub struct Settings {
    /// Base URL webhooks are posted to (a custom domain on AWS, `http://127.0.0.1:8787` in
    /// dev); empty: `https://` and the host each request came to.
    pub public_base_url: String,
    /// Workspaces whose API keys may act on the deployment as a whole (the dead-letter queues
    /// every workspace shares): `TIDINGS_OPERATOR_WORKSPACES` on AWS, the dev workspace locally.
    pub operator_workspaces: Vec<String>,
    /// Set when suppressions are mirrored to SES.
    pub ses_suppressions: Option<SesSuppressions>,
    /// Whether a source may name its secret in SSM Parameter Store (`ssm:/…`): only where the
    /// ingest functions can read it (on AWS), not in `tidings dev`.
    pub secret_references: bool,
}

impl Settings {
    /// Whether `workspace`'s keys may act on the deployment as a whole (the dead-letter queues).
    pub fn is_operator(&self, workspace: &str) -> bool {
        self.operator_workspaces.iter().any(|w| w == workspace)
    }
}

pub(crate) struct Shared<S, Q> {
    store: S,
    queue: Q,
    settings: Settings,
}

type AppState<S, Q> = State<Arc<Shared<S, Q>>>;

/// The admin API over `store`; `queue` takes the delivery tasks a replay makes.
pub fn router<S: Store + 'static, Q: Queue + DeadLetters + 'static>(store: S, queue: Q, settings: Settings) -> Router {
    let shared = Arc::new(Shared { store, queue, settings });
    let (api, document) = openapi::build(operations::<S, Q>());
    let document = Arc::new(document);
    api.route("/api/openapi.json", get(move || async move { axum::Json(Value::clone(&document)) }))
        .merge(console::routes::<S, Q>())
        .with_state(shared)
        .layer(axum::middleware::from_fn(access_log))
}

/// The queues' names, as paths take them.
const QUEUE_NAMES: [&str; 3] = [QueueName::ALL[0].as_str(), QueueName::ALL[1].as_str(), QueueName::ALL[2].as_str()];

/// Every route of the API, each with its documentation: the router and the OpenAPI document
/// are both built from this list ([`openapi`]).
fn operations<S: Store + 'static, Q: Queue + DeadLetters + 'static>() -> Vec<Operation<Arc<Shared<S, Q>>>> {
    use axum::http::Method;
    use axum::routing::post;
    let subscription = ("id", "The subscription's id (`sub_…`).");
    vec![
        Operation::new(Method::GET, "/api/health", "health", "Whether the server is up", get(health))
            .public()
            .answers::<views::Health>(200, "Up."),
        Operation::new(Method::GET, "/api/events", "listEvents", "List events, newest first", get(events::<S, Q>))
            .query::<EventsParams>()
            .answers::<views::EventPage>(200, "A page of events.")
            .link("message", "getMessage", "id", "$response.body#/events/0/data/message_id")
            .link("raw", "getRawEvent", "id", "$response.body#/events/0/id")
            .errors(&[400]),
        Operation::new(
            Method::GET,
            "/api/events/{id}/raw",
            "getRawEvent",
            "The provider's own record an event was made from",
            get(raw::<S, Q>),
        )
        .path_param("id", "The event's id (`evt_` and 32 hex digits).")
        .query::<RawParams>()
        .answers_any_json(200, "The provider's record, as received (form posts as a JSON object).")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/messages/{id}",
            "getMessage",
            "A message's state per recipient and its timeline",
            get(message::<S, Q>),
        )
        .path_param("id", "The provider's message id.")
        .answers::<views::MessageHistory>(200, "The message.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/suppressions",
            "listSuppressions",
            "The workspace's suppressed recipients",
            get(suppressions::<S, Q>),
        )
        .answers::<views::SuppressionList>(200, "Every active suppression."),
        Operation::new(
            Method::DELETE,
            "/api/suppressions/{recipient}",
            "removeSuppression",
            "Lift a suppression (and, with `ses=true`, in SES)",
            delete(remove_suppression::<S, Q>),
        )
        .path_param("recipient", "The suppressed address or number.")
        .query::<RemoveSuppressionParams>()
        .answers_empty(204, "Lifted.")
        .answers::<views::SuppressionRemoved>(200, "With `ses=true`: what was lifted where.")
        .errors(&[400, 404, 409]),
        Operation::new(Method::GET, "/api/sources", "listSources", "The workspace's sources", get(sources::<S, Q>))
            .answers::<views::SourceList>(200, "Every source, secrets counted, not shown."),
        Operation::new(
            Method::POST,
            "/api/sources",
            "createSource",
            "Add a source: where one provider account posts",
            post(create_source::<S, Q>),
        )
        .body::<NewSource>()
        .answers::<views::CreatedSource>(201, "Created; its secrets are shown this once.")
        .link("delete", "deleteSource", "id", "$response.body#/id")
        .errors(&[400, 413, 415]),
        Operation::new(
            Method::DELETE,
            "/api/sources/{id}",
            "deleteSource",
            "Remove a source",
            delete(delete_source::<S, Q>),
        )
        .path_param("id", "The source's id (`src_…`).")
        .answers_empty(204, "Removed.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/subscriptions",
            "listSubscriptions",
            "The workspace's subscriptions",
            get(subscriptions::<S, Q>),
        )
        .answers::<views::SubscriptionList>(200, "Every subscription, secrets counted, not shown."),
        Operation::new(
            Method::POST,
            "/api/subscriptions",
            "createSubscription",
            "Subscribe an endpoint to events",
            post(create_subscription::<S, Q>),
        )
        .body::<NewSubscription>()
        .answers::<views::SubscriptionView>(201, "Created; its signing secret is shown this once.")
        .link("attempts", "listAttempts", "id", "$response.body#/id")
        .link("enable", "enableSubscription", "id", "$response.body#/id")
        .link("disable", "disableSubscription", "id", "$response.body#/id")
        .link("rotate", "rotateSubscriptionSecret", "id", "$response.body#/id")
        .link("replay", "replaySubscription", "id", "$response.body#/id")
        .link("test", "testSubscription", "id", "$response.body#/id")
        .errors(&[400, 413, 415]),
        Operation::new(
            Method::GET,
            "/api/subscriptions/{id}/attempts",
            "listAttempts",
            "A subscription's latest delivery attempts",
            get(attempts::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<AttemptParams>()
        .answers::<views::AttemptList>(200, "Newest first.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/enable",
            "enableSubscription",
            "Enable a subscription",
            post(enable::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::SubscriptionView>(200, "Enabled.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/disable",
            "disableSubscription",
            "Disable a subscription (nothing is delivered until it is enabled)",
            post(disable::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::SubscriptionView>(200, "Disabled.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/rotate",
            "rotateSubscriptionSecret",
            "Give a subscription a new signing secret; the old ones sign on for a grace period",
            post(rotate::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<RotateParams>()
        .answers::<views::SubscriptionView>(200, "Rotated; the new secret is shown this once.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/replay",
            "replaySubscription",
            "Deliver stored events to a subscription again",
            post(replay::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<ReplayParams>()
        .answers::<views::Replayed>(200, "Queued for delivery.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/test",
            "testSubscription",
            "Send a `subscription.test` event to a subscription",
            post(test::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::TestSent>(200, "Stored and queued for delivery.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/queues/{queue}/dead-letters",
            "getDeadLetters",
            "What waits on a queue's dead-letter queue (operator keys only)",
            get(dead_letters::<S, Q>),
        )
        .path_param_of("queue", "The queue whose dead-letter queue is meant.", &QUEUE_NAMES)
        .answers::<tidings_core::ports::DeadLetterStatus>(200, "The dead-letter queue.")
        .errors(&[400, 403, 404]),
        Operation::new(
            Method::POST,
            "/api/queues/{queue}/redrive",
            "redriveDeadLetters",
            "Move a queue's dead letters back onto it (operator keys only)",
            post(redrive_dead_letters::<S, Q>),
        )
        .path_param_of("queue", "The queue whose dead-letter queue is meant.", &QUEUE_NAMES)
        .query::<RedriveParams>()
        .answers::<tidings_core::ports::DeadLetterStatus>(200, "How far the move got (SQS moves asynchronously).")
        .errors(&[400, 403, 404]),
    ]
}

async fn health() -> axum::Json<views::Health> {
    axum::Json(views::Health { ok: true })
}

/// One log line per admin request: method, route (its template, so no ids or query), status
/// and time taken. Headers are never logged: they carry the API key.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(method = %method, route, status, ms, "admin request");
    response
}

/// An API error: a status and one line.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store error in admin API");
        ApiError(store_error_status(&error), format!("store error: {}", error.message))
    }
}

/// 503 for a store failure worth retrying (throttling, timeouts), 500 for the rest.
pub(crate) fn store_error_status(error: &StoreError) -> StatusCode {
    if error.retryable { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// A JSON request body. Anything wrong with it (not JSON, a wrong type, a field the request
/// does not have, such as a misspelt `rate_limt`) is a 400 whose one line names it: an admin
/// write never silently ignores what it was told.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    other => other,
                };
                let why = rejection.body_text();
                let why =
                    why.strip_prefix("Failed to deserialize the JSON body into the target type: ").unwrap_or(&why);
                Err(ApiError(status, format!("body: {why}")))
            }
        }
    }
}

/// A query string. A value of the wrong type or a parameter the operation does not take (a
/// misspelt `limt`) is a 400 naming it, like a body's.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => {
                let why = rejection.body_text();
                let why = why.strip_prefix("Failed to deserialize query string: ").unwrap_or(&why);
                Err(bad_request(format!("query: {why}")))
            }
        }
    }
}

/// The path's `{…}` segments. One that is not valid percent-encoded UTF-8 is a 400 in the API's
/// error shape.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(bad_request(format!("path: {}", rejection.body_text()))),
        }
    }
}

/// The workspace the request's API key belongs to.
pub struct Workspace(pub String);

impl<S: Store + 'static, Q: Queue + 'static> FromRequestParts<Arc<Shared<S, Q>>> for Workspace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared<S, Q>>) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError(StatusCode::UNAUTHORIZED, "missing or unknown API key (Authorization: Bearer <key>)".into());
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(unauthorized)?;
        let found = shared.store.api_key(&api_key_hash(key)).await?;
        found.map(|k| Workspace(k.workspace)).ok_or_else(unauthorized)
    }
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    parse_when(text).ok_or_else(|| bad_request(format!("{field}: {text:?} is neither RFC 3339 nor Unix seconds")))
}

/// A time as the API and the console take it: Unix seconds or RFC 3339.
pub(crate) fn parse_when(text: &str) -> Option<Timestamp> {
    Timestamp::from_unix_text(text).or_else(|| Timestamp::parse_rfc3339(text))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EventsParams {
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

async fn events<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    Params(p): Params<EventsParams>,
) -> Result<axum::Json<views::EventPage>, ApiError> {
    if let Some(pattern) = &p.r#type {
        TypePattern::parse(pattern).map_err(bad_request)?;
    }
    if let Some(cursor) = &p.cursor {
        tidings_core::ports::EventCursor::parse(cursor).map_err(bad_request)?;
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
struct RawParams {
    /// The event's message id (events are kept with their message).
    message: Option<String>,
}

async fn raw<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<RawParams>,
) -> Result<Response, ApiError> {
    let id: EventId = serde_json::from_value(Value::String(id)).map_err(|_| bad_request("not an event id"))?;
    match shared.store.raw(&workspace, p.message.as_deref(), &id).await? {
        Some(raw) => Ok(([(header::CONTENT_TYPE, "application/json")], raw).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no event {id}"))),
    }
}

async fn message<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::MessageHistory>, ApiError> {
    let Some((states, timeline)) = message_history(&shared.store, &workspace, &id).await? else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no message {id}")));
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

async fn suppressions<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<views::SuppressionList>, ApiError> {
    Ok(axum::Json(views::SuppressionList { suppressions: shared.store.suppressions(&workspace).await? }))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RemoveSuppressionParams {
    /// Also take the address off the SES account-level suppression list (for a workspace that
    /// mirrors its suppressions there).
    #[serde(default)]
    ses: bool,
}

/// Lifts a suppression. With `?ses=true` the address also comes off the SES account-level list,
/// for a workspace that mirrors suppressions there; that list is the whole SES account's, so
/// it is asked for explicitly, never implied.
async fn remove_suppression<S: Store, Q: Queue>(
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
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "ses=true: workspace {workspace} does not mirror suppressions to SES (TIDINGS_SES_SUPPRESSION_SYNC)"
                ),
            ));
        }
    };
    let removed = shared.store.remove_suppression(&workspace, &recipient).await?;
    let Some(ses) = ses else {
        return if removed {
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(ApiError(StatusCode::NOT_FOUND, format!("{recipient} is not suppressed")))
        };
    };
    let ses_removed = (ses.remove)(recipient.clone()).await?;
    if !removed && !ses_removed {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("{recipient} is suppressed neither here nor in SES")));
    }
    Ok(axum::Json(views::SuppressionRemoved { recipient, removed, ses_removed }).into_response())
}

/// Where providers post: the configured public URL, or else `https://` and the host this request
/// came to (on AWS, the HTTP API's own domain, which the template cannot pass in without a
/// dependency cycle).
pub(crate) fn base_url(settings: &Settings, headers: &axum::http::HeaderMap) -> String {
    if !settings.public_base_url.is_empty() {
        return settings.public_base_url.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("https://{host}")
}

/// Where a source's provider posts: `<base>/webhooks/<provider>/<source id>`.
pub(crate) fn webhook_url(base: &str, provider: ProviderId, id: &str) -> String {
    format!("{}/webhooks/{provider}/{id}", base.trim_end_matches('/'))
}

async fn sources<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<views::SourceList>, ApiError> {
    let sources = shared.store.sources(&workspace).await?;
    let base = base_url(&shared.settings, &headers);
    let sources = sources
        .iter()
        .map(|s| {
            let url = webhook_url(&base, s.provider, &s.id);
            views::SourceView {
                source: views::SourceFields::new(s, url),
                secrets: format!("{} configured", s.secrets.len()),
            }
        })
        .collect();
    Ok(axum::Json(views::SourceList { sources }))
}

/// A new source: one provider account posting to tidings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewSource {
    /// The provider (`postmark`, `ses`, `twilio`, …).
    #[schemars(with = "ProviderId")]
    provider: String,
    #[serde(default)]
    description: String,
    /// The provider's secret or key; generated when the provider lets you choose (shared
    /// secrets, Active Reach, Standard Webhooks). On AWS, `ssm:/<parameter name>` names a
    /// SecureString parameter holding it.
    secret: Option<String>,
    /// Twilio: the exact URL configured in Twilio, when a proxy stands in front of tidings.
    public_url: Option<String>,
    /// SES: the SNS topic ARNs to accept (required).
    #[serde(default)]
    allowed_topics: Vec<String>,
    /// Active Reach: the header the signature is sent in, when renamed.
    signature_header: Option<String>,
    /// The signed timestamp's tolerance, in seconds (at most 172800, two days).
    #[schemars(range(min = 1, max = tidings_core::auth::MAX_TOLERANCE_SECONDS))]
    tolerance_seconds: Option<u64>,
}

async fn create_source<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    headers: axum::http::HeaderMap,
    JsonBody(new): JsonBody<NewSource>,
) -> Result<Response, ApiError> {
    use tidings_core::auth::Authentication;
    let provider: ProviderId = new.provider.parse().map_err(bad_request)?;
    let scheme = provider.provider().authentication();
    if new.secret.as_deref().is_some_and(|s| s.starts_with("ssm:")) && !shared.settings.secret_references {
        return Err(bad_request(
            "secret: ssm: references are read by the ingest functions on AWS; this server cannot resolve them, so give the secret itself",
        ));
    }
    if let Some(name) = new.secret.as_deref().and_then(|s| s.strip_prefix("ssm:"))
        && !(name.starts_with('/') && name.len() > 1 && !name.contains(char::is_whitespace))
    {
        return Err(bad_request(format!(
            "secret: an SSM reference is ssm:/<path>/<name> (a full parameter name), not ssm:{name}"
        )));
    }
    if let Some(seconds) = new.tolerance_seconds {
        tidings_core::auth::check_tolerance(seconds).map_err(bad_request)?;
    }
    if let Some(secret) = new.secret.as_deref().filter(|s| !s.starts_with("ssm:")) {
        scheme.check_secret(secret).map_err(|why| bad_request(format!("secret: {why}")))?;
    }
    let secrets = match (new.secret, scheme) {
        (Some(secret), _) => vec![secret],
        (None, Authentication::SnsSignature) => vec![],
        (None, Authentication::SharedSecret | Authentication::HmacSha256Hex { .. }) => vec![new_secret(false)],
        (None, other) => {
            return Err(bad_request(format!("{provider} sources need `secret`: the {}", other.secret_name())));
        }
    };
    if provider == ProviderId::Ses && new.allowed_topics.is_empty() {
        return Err(bad_request("ses sources need `allowed_topics`: the SNS topic ARNs to accept"));
    }
    let id = new_id("src");
    let base = base_url(&shared.settings, &headers);
    // Twilio signs the exact URL it posts to. Unless told otherwise (a proxy in front), that is
    // this source's own webhook URL, which only exists once the id does.
    let public_url = match (provider, new.public_url) {
        (ProviderId::Twilio, None) => Some(webhook_url(&base, provider, &id)),
        (_, given) => given,
    };
    let source = Source {
        id,
        workspace,
        provider,
        description: new.description,
        secrets: secrets.clone(),
        public_url,
        allowed_topics: new.allowed_topics,
        signature_header: new.signature_header,
        tolerance_seconds: new.tolerance_seconds,
        dev_signing_key: None,
        created_at: Timestamp::now(),
    };
    shared.store.put_source(&source).await?;
    // The secrets are shown once: the API never returns them again.
    let url = webhook_url(&base, source.provider, &source.id);
    Ok((
        StatusCode::CREATED,
        axum::Json(views::CreatedSource { source: views::SourceFields::new(&source, url), secrets }),
    )
        .into_response())
}

async fn delete_source<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    if shared.store.delete_source(&workspace, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(StatusCode::NOT_FOUND, format!("no source {id}")))
    }
}

async fn subscriptions<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<views::SubscriptionList>, ApiError> {
    let subscriptions = shared.store.subscriptions(&workspace).await?;
    let subscriptions = subscriptions.iter().map(|s| views::SubscriptionView::new(s, None)).collect();
    Ok(axum::Json(views::SubscriptionList { subscriptions }))
}

/// What a subscription is created from, by the API (JSON) or the console (a form).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubscription {
    /// Where events are posted: `https://` (loopback and private addresses are refused on AWS).
    pub(crate) url: String,
    /// Type patterns (`email.*`, `*.bounced`, `*`); an event matching any is delivered.
    #[schemars(length(min = 1), inner(regex(pattern = tidings_core::pattern::TYPE_PATTERN_REGEX)))]
    pub(crate) types: Vec<String>,
    /// Only events from these providers (empty: all).
    #[serde(default)]
    pub(crate) providers: Vec<String>,
    /// Only events from these sources (empty: all).
    #[serde(default)]
    pub(crate) sources: Vec<String>,
    /// The body sent: `cloudevents` (the default) or `dittofeed`.
    #[serde(default)]
    pub(crate) format: Format,
    /// Dittofeed format: `"recipient"` sends events without a `userId` tag with the recipient
    /// as `anonymousId`; `"none"` (the default) skips them.
    #[serde(default)]
    pub(crate) anonymous_id: AnonymousId,
    /// `["Name: value", …]`.
    #[serde(default)]
    pub(crate) headers: Vec<String>,
    #[serde(default)]
    pub(crate) description: String,
}

/// A new, enabled subscription of `workspace` and its first signing secret (shown once), or why
/// the request cannot be one.
pub(crate) fn new_subscription(workspace: String, new: NewSubscription) -> Result<(Subscription, String), String> {
    let mut headers = Vec::new();
    for line in &new.headers {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header {line:?} is not 'Name: value'"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    tidings_core::subscription::validate(&new.url, &new.types, &headers)?;
    if new.anonymous_id != AnonymousId::None && new.format != Format::Dittofeed {
        return Err("anonymous_id: only the dittofeed format sends events as a user".into());
    }
    let now = Timestamp::now();
    let secret = new_secret(true);
    let subscription = Subscription {
        id: new_id("sub"),
        workspace,
        url: new.url,
        types: new.types,
        providers: new.providers,
        sources: new.sources,
        format: new.format,
        anonymous_id: new.anonymous_id,
        secrets: vec![SigningSecret { secret: secret.clone(), created_at: now, expires_at: None }],
        headers,
        description: new.description,
        enabled: true,
        version: 0,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
    };
    Ok((subscription, secret))
}

async fn create_subscription<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    JsonBody(new): JsonBody<NewSubscription>,
) -> Result<Response, ApiError> {
    let (subscription, secret) = new_subscription(workspace, new).map_err(bad_request)?;
    shared.store.put_subscription(&subscription).await?;
    // The secret is shown once: verify deliveries with it (Standard Webhooks).
    Ok((StatusCode::CREATED, axum::Json(views::SubscriptionView::new(&subscription, Some(secret)))).into_response())
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AttemptParams {
    /// At most this many attempts (1 to 1000, default 50).
    limit: Option<usize>,
}

async fn attempts<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<AttemptParams>,
) -> Result<axum::Json<views::AttemptList>, ApiError> {
    if shared.store.subscription(&workspace, &id).await?.is_none() {
        return Err(no_subscription(&id));
    }
    let attempts = shared.store.attempts(&workspace, &id, p.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(axum::Json(views::AttemptList { attempts }))
}

fn no_subscription(id: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no subscription {id}"))
}

/// Changes a subscription with `change`, made over the version read and redone on the fresh
/// one if another writer (a delivery's bookkeeping, another operator) wrote in between: none
/// undoes another.
async fn change_subscription<S: Store, Q: Queue>(
    shared: &Shared<S, Q>,
    workspace: &str,
    id: &str,
    secret: Option<String>,
    change: impl FnMut(&mut Subscription) -> bool,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    let changed = tidings_core::subscription::modify(&shared.store, workspace, id, change).await?;
    let subscription = changed.ok_or_else(|| no_subscription(id))?;
    Ok(axum::Json(views::SubscriptionView::new(&subscription, secret)))
}

async fn enable<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    change_subscription(&shared, &workspace, &id, None, |s| {
        s.enable();
        true
    })
    .await
}

async fn disable<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    change_subscription(&shared, &workspace, &id, None, |s| {
        s.disable("disabled by an operator");
        true
    })
    .await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RotateParams {
    /// How long the old secrets keep signing, in seconds (0 to 604800, default 86400).
    #[schemars(range(min = 0, max = 604_800))]
    grace_seconds: Option<i64>,
}

async fn rotate<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<RotateParams>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    let grace = p.grace_seconds.unwrap_or(86_400);
    if !(0..=7 * 86_400).contains(&grace) {
        return Err(bad_request(format!("grace_seconds must be between 0 and 604800 (7 days), not {grace}")));
    }
    let (secret, now) = (new_secret(true), Timestamp::now());
    let new = secret.clone();
    change_subscription(&shared, &workspace, &id, Some(secret), move |s| {
        s.rotate(new.clone(), now, grace);
        true
    })
    .await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplayParams {
    /// Events at or after this time (RFC 3339 or Unix seconds).
    since: Option<String>,
    /// Events at or before this time.
    until: Option<String>,
    /// Only events of this type pattern.
    #[schemars(regex(pattern = tidings_core::pattern::TYPE_PATTERN_REGEX))]
    r#type: Option<String>,
}

async fn replay<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<ReplayParams>,
) -> Result<axum::Json<views::Replayed>, ApiError> {
    if let Some(pattern) = &p.r#type {
        TypePattern::parse(pattern).map_err(bad_request)?;
    }
    let since = p.since.as_deref().map(|t| parse_time("since", t)).transpose()?;
    let until = p.until.as_deref().map(|t| parse_time("until", t)).transpose()?;
    let subscription = shared.store.subscription(&workspace, &id).await?.ok_or_else(|| no_subscription(&id))?;
    let queued =
        tidings_core::pipeline::replay(&shared.store, &shared.queue, &subscription, since, until, p.r#type).await?;
    Ok(axum::Json(views::Replayed { replayed: queued as u64 }))
}

async fn test<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::TestSent>, ApiError> {
    let subscription = shared.store.subscription(&workspace, &id).await?.ok_or_else(|| no_subscription(&id))?;
    let event_id = send_test_event(&shared.store, &shared.queue, &subscription, Timestamp::now()).await?;
    Ok(axum::Json(views::TestSent { event_id }))
}

/// The queue named in the path, for an operator's key only: dead-letter queues hold every
/// workspace's messages.
fn operator_queue<S, Q>(shared: &Shared<S, Q>, workspace: &str, queue: &str) -> Result<QueueName, ApiError> {
    if !shared.settings.is_operator(workspace) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "queues are shared by every workspace: only an operator workspace's key may act on them, and {workspace} is not one (TIDINGS_OPERATOR_WORKSPACES)"
            ),
        ));
    }
    queue.parse().map_err(|e: String| ApiError(StatusCode::NOT_FOUND, e))
}

async fn dead_letters<S: Store, Q: Queue + DeadLetters>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(queue): PathParams<String>,
) -> Result<axum::Json<tidings_core::ports::DeadLetterStatus>, ApiError> {
    let queue = operator_queue(&shared, &workspace, &queue)?;
    Ok(axum::Json(shared.queue.dead_letter_status(queue).await?))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RedriveParams {
    /// `native` (the default: SQS moves them, asynchronously) or `manual` (tidings receives,
    /// resends and deletes each).
    method: Option<MoveMethod>,
}

/// Moves a queue's dead letters back to it: the answer says how far the move got (SQS moves
/// asynchronously; follow it with `GET /api/queues/{queue}/dead-letters`).
async fn redrive_dead_letters<S: Store, Q: Queue + DeadLetters>(
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

/// Stores a `subscription.test` event and queues it for `subscription` alone (it is delivered
/// whatever the subscription's type patterns, through the same signing and retry path).
pub(crate) async fn send_test_event<S: Store, Q: Queue>(
    store: &S,
    queue: &Q,
    subscription: &Subscription,
    now: Timestamp,
) -> Result<String, StoreError> {
    use tidings_core::delivery::DeliveryTask;
    use tidings_core::event::{EventData, EventType};
    use tidings_core::ports::{Outgoing, QueueName, QueuedEvent};
    use tidings_core::providers::NormalizeContext;
    let event_type = EventType::platform(tidings_core::outbound::TEST_EVENT_TYPE)
        .ok_or_else(|| StoreError::permanent("bad event type"))?;
    let mut data =
        EventData::new(None, tidings_core::pipeline::OPERATIONAL_PROVIDER, tidings_core::outbound::TEST_EVENT_TYPE);
    data.reason = Some("a test event, sent from the admin API or the console".into());
    data.details.insert("subscription".into(), json!(subscription.id));
    let ctx = NormalizeContext { workspace: &subscription.workspace, received_at: now };
    let key = format!("subscription.test|{}|{}", subscription.id, now.unix_millis());
    let event = ctx.event(event_type, Some(now), &key, data, &tidings_core::providers::Raw::Borrowed("{}")).event;
    let expires = Timestamp::from_unix_seconds(now.unix_seconds() + 7 * 86_400).unwrap_or(now);
    let queued = QueuedEvent {
        event: event.clone(),
        raw: "{}".into(),
        source: tidings_core::pipeline::OPERATIONAL_PROVIDER.into(),
    };
    store.record(&queued, expires).await?;
    let task = DeliveryTask::new(subscription, &event);
    let body = serde_json::to_string(&task).map_err(|e| StoreError::permanent(e.to_string()))?;
    queue.send(QueueName::Deliveries, &[Outgoing { id: "0".into(), body, delay_seconds: 0 }]).await?;
    Ok(event.id.to_string())
}
