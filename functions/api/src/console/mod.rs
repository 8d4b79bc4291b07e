//! The console: server-rendered pages under `/console` of the admin API, for watching what
//! arrived, what it became and where it was delivered. It is served by the same router as the
//! JSON API, so it works the same in `tidings dev` and behind the HTTP API on AWS.
//!
//! - **Signing in.** A workspace API key, posted once from the sign-in form, is kept in an
//!   `HttpOnly`, `SameSite=Strict` cookie scoped to `/console` (`Secure` unless the API is served
//!   over plain `http://`, as `tidings dev` is), and checked against the store on every request
//!   as a bearer key is: revoking the key ends the session. The console needs no server-side
//!   session table and no signing secret of its own, which keeps it stateless across Lambda
//!   instances. The key is never written into a page.
//! - **Forms** carry a CSRF token, an HMAC of the session's key, compared in constant time; every
//!   POST must also come from the console's own origin (`Origin` and `Sec-Fetch-Site`, when the
//!   browser sends them).
//! - **Workspaces.** Every query is scoped to the session's workspace, as in the JSON API.
//!   Secrets (a subscription's signing secret) are shown once, on the page that creates or
//!   rotates them.
//! - **No script needed.** Pages are plain HTML and SVG; the one small script adds copy buttons.
//!   The event stream reloads itself with `<meta http-equiv="refresh">`.

mod admin;
mod audit;
mod chart;
mod deliverability;
mod events;
mod overview;
mod privacy;
mod subscriptions;
mod view;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::ports::{DeadLetters, Queue, Store, StoreError};

use crate::{Shared, api_key_hash, store_error_status};
use view::Frame;

const COOKIE: &str = "tidings_console";
/// How long a console session lasts (the cookie's `Max-Age`).
const SESSION_SECONDS: u32 = 12 * 3600;
const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/icon.svg");
/// The event stream reloads this often unless paused.
const REFRESH_SECONDS: u32 = 10;
/// The overview reads at most this many of the last day's events.
const OVERVIEW_EVENTS: usize = 5000;

type AppState<S, Q> = State<Arc<Shared<S, Q>>>;

/// The console's routes, merged into the admin API router.
pub(crate) fn routes<S: Store + 'static, Q: Queue + DeadLetters + 'static>() -> Router<Arc<Shared<S, Q>>> {
    Router::new()
        .route("/console", get(overview::overview::<S, Q>))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_page).post(login::<S, Q>))
        .route("/console/logout", post(logout))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/console/assets/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/console/events", get(events::events::<S, Q>))
        .route("/console/deliverability", get(deliverability::deliverability::<S, Q>))
        .route("/console/messages/{id}", get(events::message::<S, Q>))
        .route(
            "/console/subscriptions",
            get(subscriptions::subscriptions::<S, Q>).post(subscriptions::create_subscription::<S, Q>),
        )
        .route("/console/subscriptions/{id}", get(subscriptions::subscription::<S, Q>))
        .route("/console/subscriptions/{id}/{action}", post(subscriptions::subscription_action::<S, Q>))
        .route("/console/suppressions", get(admin::suppressions::<S, Q>))
        .route("/console/suppressions/remove", post(admin::remove_suppression::<S, Q>))
        .route("/console/sources", get(admin::sources::<S, Q>))
        .route("/console/queues", get(admin::queues::<S, Q>))
        .route("/console/audit", get(audit::audit::<S, Q>))
        .route("/console/privacy", get(privacy::privacy::<S, Q>))
        .route("/console/privacy/erase", post(privacy::erase::<S, Q>))
        .route("/console/queues/{queue}/redrive", post(admin::redrive::<S, Q>))
        .layer(axum::middleware::from_fn(guard))
}

/// Headers on every console answer, and the same-origin rule for every POST.
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == Method::POST
        && let Err(refused) = same_origin(request.headers())
    {
        return refused.into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A POST must come from a page of this console: a browser that says where a request comes from
/// must say it is this host (`Origin`) or this site (`Sec-Fetch-Site`).
fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ConsoleError::Forbidden(format!(
            "console forms are only accepted from the console itself (Sec-Fetch-Site: {site})"
        )));
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let host = text(header::HOST.as_str()).unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(ConsoleError::Forbidden(
                "console forms are only accepted from the console itself (Origin differs from Host)".into(),
            ));
        }
    }
    Ok(())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

fn html_response(markup: Markup) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// A page that went wrong: its status and one line.
fn error_page(status: StatusCode, message: &str) -> Response {
    let markup = html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { (view::head_common(&status.as_u16().to_string())) }
            body { main #main {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p.error role="alert" { (message) }
                p { a href="/console" { "Back to the console" } }
            } }
        }
    };
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// Why a console request failed, by cause; each is shown as an error page with its status and
/// one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// A form or query the page cannot take: the line names the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(#[from] tidings_core::invalid::Invalid),
    /// The session's workspace may not do this, or the form's CSRF token is not this session's.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("store error: {}", .0.message())]
    Store(StoreError),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadRequest(_) | ConsoleError::Invalid(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Store(error) => store_error_status(error),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        error_page(self.status(), &self.to_string())
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store error in the console");
        ConsoleError::Store(error)
    }
}

fn bad_request(message: impl Into<String>) -> ConsoleError {
    ConsoleError::BadRequest(message.into())
}

fn not_found(message: impl Into<String>) -> ConsoleError {
    ConsoleError::NotFound(message.into())
}

type Page = Result<Response, ConsoleError>;

/// The window a page was asked for (`?window=`), among `(name, title, span)`; the first by
/// default, a 400 naming the choices otherwise.
fn pick_window<T: Copy>(
    windows: &[(&'static str, &'static str, T)],
    asked: Option<&str>,
) -> Result<(&'static str, &'static str, T), ConsoleError> {
    match asked {
        None => windows.first().copied().ok_or_else(|| bad_request("window: none to choose from")),
        Some(name) => windows.iter().find(|(n, _, _)| *n == name).copied().ok_or_else(|| {
            let names: Vec<&str> = windows.iter().map(|(n, _, _)| *n).collect();
            bad_request(format!("window: {name:?} is not one of {}", names.join(", ")))
        }),
    }
}

/// A signed-in console request: the workspace of the cookie's API key, and the CSRF token its
/// forms must carry.
pub(crate) struct Session {
    workspace: String,
    csrf: String,
}

impl Session {
    fn frame<'a>(&'a self, title: &'a str, section: &'a str) -> Frame<'a> {
        Frame { title, section, workspace: &self.workspace, csrf: &self.csrf, refresh: None }
    }

    /// Refuses a form without this session's CSRF token.
    fn check(&self, token: &str) -> Result<(), ConsoleError> {
        if tidings_core::auth::constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again".into(),
            ))
        }
    }
}

/// The CSRF token of a session: an HMAC of its key, so it needs no storage and changes with it.
fn csrf_token(key: &str) -> String {
    let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    hex::encode(ring::hmac::sign(&mac, b"tidings console csrf v1").as_ref())
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

impl<S: Store + 'static, Q: Queue + 'static> FromRequestParts<Arc<Shared<S, Q>>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared<S, Q>>) -> Result<Self, Self::Rejection> {
        let Some(key) = cookie_value(&parts.headers, COOKIE) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        match shared.store.api_key(&api_key_hash(key)).await {
            Ok(Some(found)) => {
                crate::Actor::note(parts, &found.workspace, &found.id);
                Ok(Session { workspace: found.workspace, csrf: csrf_token(key) })
            }
            // A revoked key, or a cookie from another deployment: sign in again.
            Ok(None) => Err((clear_cookie(), Redirect::to("/console/login")).into_response()),
            Err(error) => Err(ConsoleError::from(error).into_response()),
        }
    }
}

fn session_cookie(shared_insecure: bool, key: &str) -> [(header::HeaderName, String); 1] {
    let secure = if shared_insecure { "" } else { "; Secure" };
    [(
        header::SET_COOKIE,
        format!("{COOKIE}={key}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{secure}"),
    )]
}

fn clear_cookie() -> [(header::HeaderName, String); 1] {
    [(header::SET_COOKIE, format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"))]
}

async fn login_page() -> Response {
    html_response(view::sign_in(None))
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login<S: Store, Q: Queue>(State(shared): AppState<S, Q>, Form(form): Form<LoginForm>) -> Page {
    let key = form.key.trim();
    // The cookie carries the key verbatim: refuse anything that could break out of it.
    let plausible =
        !key.is_empty() && key.len() <= 256 && key.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    let found = if plausible { shared.store.api_key(&api_key_hash(key)).await? } else { None };
    let Some(found) = found else {
        tracing::info!("console sign-in refused: unknown API key");
        let page = html_response(view::sign_in(Some("That API key is not known here.")));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    tracing::info!(workspace = found.workspace, "console sign-in");
    let insecure = shared.settings.public_base_url.starts_with("http://");
    Ok((session_cookie(insecure, key), Redirect::to("/console")).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(session: Session, Form(form): Form<CsrfForm>) -> Page {
    session.check(&form.csrf)?;
    Ok((clear_cookie(), Redirect::to("/console/login")).into_response())
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
