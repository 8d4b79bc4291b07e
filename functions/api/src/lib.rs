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
use axum::routing::get;
use serde_json::{Value, json};
use tidings_core::ports::{DeadLetters, Queue, Store, StoreError};
use tidings_core::providers::ProviderId;
use tidings_core::timestamp::Timestamp;

mod console;
mod openapi;
mod routes;
pub mod views;

pub(crate) use routes::events::message_history;
pub(crate) use routes::subscriptions::{NewSubscription, new_subscription, send_test_event};

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
    let (api, document) = openapi::build(routes::operations::<S, Q>());
    let document = Arc::new(document);
    api.route("/api/openapi.json", get(move || async move { axum::Json(Value::clone(&document)) }))
        .merge(console::routes::<S, Q>())
        .layer(axum::middleware::from_fn_with_state(shared.clone(), audit::<S, Q>))
        .with_state(shared)
        .layer(axum::middleware::from_fn(access_log))
}

/// Who made a request: filled in by the extractor that checks its API key ([`Workspace`], the
/// console's session), read by [`audit`] once the request is answered.
#[derive(Clone, Default)]
pub(crate) struct Actor(Arc<std::sync::Mutex<Option<(String, String)>>>);

impl Actor {
    /// Notes the workspace and key id of an authenticated request, when it is being audited.
    pub(crate) fn note(parts: &Parts, workspace: &str, key: &str) {
        if let Some(actor) = parts.extensions.get::<Actor>()
            && let Ok(mut slot) = actor.0.lock()
        {
            *slot = Some((workspace.to_owned(), key.to_owned()));
        }
    }
}

/// Records every administrative action (any method but GET, HEAD and OPTIONS, and a recipient's
/// export, by an API key or a console session) in the workspace's audit log with its route, its target and the status it
/// was answered. Route parameters that are personal data (`{recipient}`) are left out. A failed
/// write of the log is logged and counted; the action itself has happened.
async fn audit<S: Store + 'static, Q: Queue + 'static>(
    State(shared): State<Arc<Shared<S, Q>>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    let method = request.method().clone();
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    // Reads are not recorded, except an export: handing out a recipient's data is an action.
    let export = route.as_deref().is_some_and(|r| r.ends_with("/export"));
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && !export {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let actor = Actor::default();
    request.extensions_mut().insert(actor.clone());
    let response = next.run(request).await;
    let who = actor.0.lock().ok().and_then(|mut slot| slot.take());
    let (Some((workspace, key)), Some(route)) = (who, route) else {
        return response;
    };
    let target: Vec<&str> = route
        .split('/')
        .zip(path.split('/'))
        .filter(|(template, _)| template.starts_with('{') && *template != "{recipient}")
        .map(|(_, value)| value)
        .collect();
    let entry = tidings_core::audit::AuditEntry::new(
        &workspace,
        &key,
        format!("{method} {route}"),
        (!target.is_empty()).then(|| target.join(" ")),
        response.status().as_u16(),
        Timestamp::now(),
    );
    if let Err(error) = shared.store.record_audit(&entry).await {
        tracing::error!(%error, action = %entry.action, "audit log write failed");
        tidings_core::metrics::record(&[], &[("AuditWriteFailed", tidings_core::metrics::Unit::Count, 1.0)]);
    }
    response
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

/// Why an admin request failed, by cause; each is answered with its status and
/// `{"error": "<one line>"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: the line names the field.
    #[error("{0}")]
    BadRequest(String),
    /// A field validation refused: answered with the line and, as `field`, the field's name.
    #[error("{0}")]
    Invalid(#[from] tidings_core::invalid::Invalid),
    /// A request body the JSON reader refused with its own status (413 over the size limit, 415
    /// without a JSON content type, 400 otherwise).
    #[error("body: {why}")]
    Body { status: StatusCode, why: String },
    #[error("missing or unknown API key (Authorization: Bearer <key>)")]
    Unauthorized,
    /// The key's workspace may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing of that id in the key's workspace.
    #[error("{0}")]
    NotFound(String),
    /// A sound request this deployment is not set up for.
    #[error("{0}")]
    Conflict(String),
    #[error("store error: {}", .0.message())]
    Store(StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Body { status, .. } => *status,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(error) => store_error_status(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            ApiError::Invalid(invalid) => json!({"error": self.to_string(), "field": invalid.field}),
            _ => json!({"error": self.to_string()}),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store error in admin API");
        ApiError::Store(error)
    }
}

/// 503 for a store failure worth retrying (throttling, timeouts), 500 for the rest.
pub(crate) fn store_error_status(error: &StoreError) -> StatusCode {
    if error.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// A JSON request body. Anything wrong with it (not JSON, a wrong type, a field the request
/// does not have, such as a misspelt `rate_limt`) is a 400 whose one line names it: an admin
/// write never silently ignores what it was told.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        // Every body this API takes is a JSON object: serde would also read a struct from an
        // array of its fields in order (`[null, null]`), which no client means.
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => {
                return Err(ApiError::Body { status: rejection.status(), why: rejection.body_text() });
            }
        };
        let mut rebuilt = axum::extract::Request::new(axum::body::Body::from(bytes.clone()));
        if let Some(content_type) = content_type {
            rebuilt.headers_mut().insert(header::CONTENT_TYPE, content_type);
        }
        match axum::Json::<T>::from_request(rebuilt, state).await {
            Ok(_) if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
                Err(ApiError::Body { status: StatusCode::BAD_REQUEST, why: "body: must be a JSON object".into() })
            }
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    other => other,
                };
                let why = rejection.body_text();
                let why =
                    why.strip_prefix("Failed to deserialize the JSON body into the target type: ").unwrap_or(&why);
                Err(ApiError::Body { status, why: why.to_owned() })
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
        let unauthorized = || ApiError::Unauthorized;
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(unauthorized)?;
        let found = shared.store.api_key(&api_key_hash(key)).await?.ok_or_else(unauthorized)?;
        Actor::note(parts, &found.workspace, &found.id);
        Ok(Workspace(found.workspace))
    }
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    parse_when(text).ok_or_else(|| bad_request(format!("{field}: {text:?} is neither RFC 3339 nor Unix seconds")))
}

/// A time as the API and the console take it: Unix seconds or RFC 3339.
pub(crate) fn parse_when(text: &str) -> Option<Timestamp> {
    Timestamp::from_unix_text(text).or_else(|| Timestamp::parse_rfc3339(text))
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
