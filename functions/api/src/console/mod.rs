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

mod chart;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{CanonicalEvent, Status};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{DeadLetterStatus, DeadLetters, EventQuery, MoveMethod, Queue, QueueName, Store, StoreError};
use tidings_core::providers::ProviderId;
use tidings_core::source::new_secret;
use tidings_core::subscription::{Format, Subscription};
use tidings_core::timestamp::Timestamp;

use crate::{
    NewSubscription, Shared, api_key_hash, base_url, message_history, parse_when, store_error_status, webhook_url,
};
use view::{Frame, csrf_field, encode, event_type_badge, message_link, page, status_badge, time};

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
        .route("/console", get(overview::<S, Q>))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_page).post(login::<S, Q>))
        .route("/console/logout", post(logout))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/console/assets/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/console/events", get(events::<S, Q>))
        .route("/console/messages/{id}", get(message::<S, Q>))
        .route("/console/subscriptions", get(subscriptions::<S, Q>).post(create_subscription::<S, Q>))
        .route("/console/subscriptions/{id}", get(subscription::<S, Q>))
        .route("/console/subscriptions/{id}/{action}", post(subscription_action::<S, Q>))
        .route("/console/suppressions", get(suppressions::<S, Q>))
        .route("/console/suppressions/remove", post(remove_suppression::<S, Q>))
        .route("/console/sources", get(sources::<S, Q>))
        .route("/console/queues", get(queues::<S, Q>))
        .route("/console/queues/{queue}/redrive", post(redrive::<S, Q>))
        .layer(axum::middleware::from_fn(guard))
}

/// Headers on every console answer, and the same-origin rule for every POST.
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == Method::POST
        && let Err(reason) = same_origin(request.headers())
    {
        return error_page(StatusCode::FORBIDDEN, &reason);
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
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(format!("console forms are only accepted from the console itself (Sec-Fetch-Site: {site})"));
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let host = text(header::HOST.as_str()).unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err("console forms are only accepted from the console itself (Origin differs from Host)".into());
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

/// A failed console request.
pub(crate) struct ConsoleError(StatusCode, String);

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        error_page(self.0, &self.1)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store error in the console");
        ConsoleError(store_error_status(&error), format!("store error: {}", error.message))
    }
}

fn bad_request(message: impl Into<String>) -> ConsoleError {
    ConsoleError(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> ConsoleError {
    ConsoleError(StatusCode::NOT_FOUND, message.into())
}

type Page = Result<Response, ConsoleError>;

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
            Err(ConsoleError(
                StatusCode::FORBIDDEN,
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
            Ok(Some(found)) => Ok(Session { workspace: found.workspace, csrf: csrf_token(key) }),
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

/// Up to `cap` of the workspace's events matching `query`, following pages.
async fn collect_events<S: Store>(
    store: &S,
    mut query: EventQuery,
    cap: usize,
    keep: impl Fn(&CanonicalEvent) -> bool,
) -> Result<(Vec<CanonicalEvent>, Option<String>), StoreError> {
    let mut found = Vec::new();
    // Filters the store cannot apply (the provider) are applied here, a few pages at most.
    for _ in 0..8 {
        query.limit = (cap - found.len()).clamp(1, 1000);
        let page = store.events(&query).await?;
        found.extend(page.events.into_iter().filter(|e| keep(e)));
        if found.len() >= cap || page.next.is_none() {
            return Ok((found, page.next));
        }
        query.cursor = page.next;
    }
    let next = query.cursor.take();
    Ok((found, next))
}

/// The overview's time windows: (query value, title, seconds; `None` for the latest events
/// whatever their age).
const WINDOWS: [(&str, &str, Option<i64>); 4] = [
    ("24h", "the last 24 hours", Some(86_400)),
    ("7d", "the last 7 days", Some(7 * 86_400)),
    ("30d", "the last 30 days", Some(30 * 86_400)),
    ("all", "the latest events", None),
];

/// Columns in the events-over-time chart.
const COLUMNS: i64 = 24;

#[derive(Deserialize, Default)]
struct OverviewParams {
    window: Option<String>,
}

async fn overview<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(p): Query<OverviewParams>,
) -> Page {
    let (window, title, seconds) = match p.window.as_deref() {
        None => WINDOWS[0],
        Some(name) => *WINDOWS
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| bad_request(format!("window: {name:?} is not one of 24h, 7d, 30d, all")))?,
    };
    let now = Timestamp::now();
    let since = seconds.and_then(|s| Timestamp::from_unix_seconds(now.unix_seconds() - s));
    let query = EventQuery { workspace: session.workspace.clone(), since, ..EventQuery::default() };
    let (events, more) = collect_events(&shared.store, query, OVERVIEW_EVENTS, |_| true).await?;

    // Events per type over the window in 24 columns, the six commonest types apart and the
    // rest together. The latest events span from the oldest one listed to now.
    let end = now.unix_seconds().max(events.iter().map(|e| e.time.unix_seconds()).max().unwrap_or(0)) + 1;
    let start = match since {
        Some(since) => since.unix_seconds(),
        None => events.iter().map(|e| e.time.unix_seconds()).min().unwrap_or(end - 86_400),
    };
    let width = ((end - start) / COLUMNS).max(1);
    let buckets: Vec<String> = (0..COLUMNS).map(|i| bucket_label(start + i * width, end - start)).collect();
    let mut per_type: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &events {
        let column = (event.time.unix_seconds() - start) / width;
        let Ok(column) = usize::try_from(column.min(COLUMNS - 1)) else { continue };
        if let Some(count) =
            per_type.entry(event.event_type.to_string()).or_insert_with(|| vec![0; COLUMNS as usize]).get_mut(column)
        {
            *count += 1;
        }
    }
    let mut series: Vec<(String, Vec<u64>)> = per_type.into_iter().collect();
    series.sort_by_key(|(name, counts)| (std::cmp::Reverse(counts.iter().sum::<u64>()), name.clone()));
    if series.len() > 7 {
        let rest = series.split_off(6);
        let mut other = vec![0; COLUMNS as usize];
        for (_, counts) in &rest {
            for (total, count) in other.iter_mut().zip(counts) {
                *total += count;
            }
        }
        series.push((format!("{} other types", rest.len()), other));
    }

    // Bounce and complaint rates per provider: the share of messages seen that bounced or drew
    // a complaint.
    /// Messages seen, bounced and complained about.
    type Messages<'a> = (HashSet<&'a str>, HashSet<&'a str>, HashSet<&'a str>);
    let mut per_provider: BTreeMap<&str, Messages<'_>> = BTreeMap::new();
    for event in &events {
        let Some(message) = event.data.message_id.as_deref() else { continue };
        let entry = per_provider.entry(event.data.provider.as_str()).or_default();
        entry.0.insert(message);
        match event.event_type.status() {
            Some(Status::Bounced) => {
                entry.1.insert(message);
            }
            Some(Status::Complained) => {
                entry.2.insert(message);
            }
            _ => {}
        }
    }
    let rate = |part: usize, whole: usize| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
    let rows: Vec<chart::Row> = per_provider
        .iter()
        .map(|(provider, (messages, bounced, complained))| {
            let (b, c) = (rate(bounced.len(), messages.len()), rate(complained.len(), messages.len()));
            chart::Row {
                label: format!("{provider} ({})", plural(messages.len(), "message")),
                bars: vec![(b, format!("{:.1}%", b * 100.0)), (c, format!("{:.2}%", c * 100.0))],
            }
        })
        .collect();
    let max_rate = rows.iter().flat_map(|r| r.bars.iter().map(|(v, _)| *v)).fold(0.0, f64::max);

    let messages: HashSet<&str> = events.iter().filter_map(|e| e.data.message_id.as_deref()).collect();
    let bounced = events.iter().filter(|e| e.event_type.status() == Some(Status::Bounced)).count();
    let complained = events.iter().filter(|e| e.event_type.status() == Some(Status::Complained)).count();
    let body = html! {
        h1 { "Overview: " (title) }
        nav.windows aria-label="Time window" {
            @for (name, label, _) in WINDOWS {
                a href=(format!("/console?window={name}")) aria-current=[(name == window).then_some("page")] { (label) }
                " "
            }
        }
        @if more.is_some() { p.muted { "Figures from the latest " (events.len()) " events of the window." } }
        div.grid {
            div.tile { strong { (events.len()) } "events" }
            div.tile { strong { (messages.len()) } "messages" }
            div.tile { strong { (bounced) } "bounces" }
            div.tile { strong { (complained) } "complaints" }
        }
        h2 { "Events per type over time (UTC)" }
        @if events.is_empty() {
            p.muted { "No events in " (title) ". Paste a source's webhook URL into its provider (" a href="/console/sources" { "Sources" } "), or run " code { "tidings replay events/" } "." }
        } @else {
            (chart::stacked_columns(&chart::Stacked { label: "Events per type over time", buckets: &buckets, series: &series }))
        }
        h2 { "Bounce and complaint rates per provider" }
        @if rows.is_empty() {
            p.muted { "No messages in " (title) "." }
        } @else {
            (chart::bars("Share of messages that bounced or drew a complaint", &["bounce rate", "complaint rate"], &rows, max_rate))
        }
    };
    Ok(html_response(page(&session.frame("Overview", "/console"), body)))
}

/// A column's label: its time of day over two days or less, else its date (UTC).
fn bucket_label(at: i64, span: i64) -> String {
    let text = Timestamp::from_unix_seconds(at).map(|t| t.to_string()).unwrap_or_default();
    let range = if span <= 2 * 86_400 { 11..16 } else { 0..10 };
    text.get(range).unwrap_or("").to_owned()
}

#[derive(Deserialize, Default)]
struct EventFilters {
    provider: Option<String>,
    r#type: Option<String>,
    recipient: Option<String>,
    message: Option<String>,
    cursor: Option<String>,
    /// `off` pauses the reload.
    refresh: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

async fn events<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(f): Query<EventFilters>,
) -> Page {
    let provider = non_empty(&f.provider).map(|p| p.parse::<ProviderId>().map_err(bad_request)).transpose()?;
    let pattern = non_empty(&f.r#type);
    if let Some(pattern) = pattern {
        TypePattern::parse(pattern).map_err(|e| bad_request(format!("type: {e}")))?;
    }
    if let Some(cursor) = non_empty(&f.cursor) {
        tidings_core::ports::EventCursor::parse(cursor).map_err(bad_request)?;
    }
    let query = EventQuery {
        workspace: session.workspace.clone(),
        message_id: non_empty(&f.message).map(str::to_owned),
        recipient: non_empty(&f.recipient).map(tidings_core::recipient::any),
        type_pattern: pattern.map(str::to_owned),
        cursor: non_empty(&f.cursor).map(str::to_owned),
        ..EventQuery::default()
    };
    let (events, next) =
        collect_events(&shared.store, query, 100, |e| provider.is_none_or(|p| e.data.provider == p.as_str())).await?;
    let paused = f.refresh.as_deref() == Some("off") || f.cursor.is_some();
    let filters = |cursor: Option<&str>, refresh: Option<&str>| {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (name, value) in
            [("provider", &f.provider), ("type", &f.r#type), ("recipient", &f.recipient), ("message", &f.message)]
        {
            if let Some(value) = non_empty(value) {
                pairs.append_pair(name, value);
            }
        }
        if let Some(cursor) = cursor {
            pairs.append_pair("cursor", cursor);
        }
        if let Some(refresh) = refresh {
            pairs.append_pair("refresh", refresh);
        }
        format!("/console/events?{}", pairs.finish())
    };
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/console/events" role="search" {
            label { "Provider"
                select name="provider" {
                    option value="" { "any" }
                    @for p in ProviderId::ALL {
                        option value=(p.as_str()) selected[provider == Some(p)] { (p.as_str()) }
                    }
                }
            }
            label { "Type pattern" input name="type" value=[pattern] placeholder="email.* or *.bounced"; }
            label { "Recipient" input name="recipient" value=[non_empty(&f.recipient)] placeholder="someone@example.com"; }
            label { "Message id" input name="message" value=[non_empty(&f.message)]; }
            button.primary type="submit" { "Filter" }
            a href="/console/events" { "Clear" }
        }
        p.muted {
            @if paused {
                "Not reloading. " a href=(filters(None, None)) { "Follow new events" }
            } @else {
                "Newest first; this page reloads every " (REFRESH_SECONDS) " seconds. " a href=(filters(None, Some("off"))) { "Pause" }
            }
        }
        @if events.is_empty() {
            p { "No events match." }
        } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Time" } th { "Type" } th { "Provider" } th { "Recipient" } th { "Message" } th { "Detail" } } }
                tbody {
                    @for event in &events {
                        tr {
                            td data-label="Time" { (time(event.time)) }
                            td data-label="Type" { (event_type_badge(event)) }
                            td data-label="Provider" { (event.data.provider) }
                            td data-label="Recipient" { (event.data.recipient.as_deref().unwrap_or("—")) }
                            td data-label="Message" { (message_link(event.data.message_id.as_deref())) }
                            td data-label="Detail" { (event_detail(event)) }
                        }
                    }
                }
            } }
        }
        @if let Some(next) = &next {
            p { a href=(filters(Some(next), Some("off"))) rel="next" { "Older events →" } }
        }
    };
    let mut frame = session.frame("Events", "/console/events");
    frame.refresh = (!paused).then_some(REFRESH_SECONDS);
    Ok(html_response(page(&frame, body)))
}

/// One line on what happened: the bounce, the click, or the provider's own word.
fn event_detail(event: &CanonicalEvent) -> Markup {
    let data = &event.data;
    html! {
        @if let Some(bounce) = &data.bounce {
            (serde_name(bounce.kind))
            @if let Some(code) = &bounce.code { " " span.mono { (code) } }
            @if let Some(text) = &bounce.diagnostic { " " span.muted { (truncate(text, 120)) } }
        } @else if let Some(url) = &data.url {
            span.mono { (truncate(url, 120)) }
        } @else if let Some(reason) = &data.reason {
            (truncate(reason, 120))
        } @else {
            span.muted { (data.provider_event_type) }
        }
    }
}

/// The name an enum has in JSON (`hard`, `hard_bounce`).
fn serde_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
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

/// The delivery lattice, in order of progress: step `i` is rank `i + 1` of `state::rank`.
const LATTICE: [Status; 5] = [Status::Sent, Status::Deferred, Status::Delivered, Status::Opened, Status::Clicked];

/// Where `status` stands on the lattice, as the message state ranks it (read counts as opened,
/// a reply as a click, a scheduled retry as sent).
fn lattice_step(status: Status) -> Option<usize> {
    tidings_core::state::rank(status).map(|rank| usize::from(rank) - 1)
}

async fn message<S: Store, Q: Queue>(State(shared): AppState<S, Q>, session: Session, Path(id): Path<String>) -> Page {
    let Some((states, timeline)) = message_history(&shared.store, &session.workspace, &id).await? else {
        return Err(not_found(format!("no message {id} in workspace {}", session.workspace)));
    };
    // One read per event, all at once rather than one after another.
    let raws = futures_util::future::try_join_all(
        timeline.iter().map(|event| shared.store.raw(&session.workspace, Some(&id), &event.id)),
    )
    .await?;
    let raws: Vec<Option<String>> = raws.into_iter().map(|raw| raw.as_deref().map(pretty)).collect();
    let body = html! {
        h1 { "Message " code { (id) } }
        @for state in &states {
            section aria-label=(format!("State for {}", state.recipient)) {
                h2 { (state.recipient) " " (status_badge(state.status)) }
                @let reached = lattice_step(state.progress);
                ol.lattice aria-label="Delivery progress" {
                    @for (rank, step) in LATTICE.iter().enumerate() {
                        @let class = if reached.is_some_and(|r| rank <= r) { "reached" } else { "" };
                        li class=(class) aria-current=[(reached == Some(rank)).then_some("step")] { (step.as_str()) }
                    }
                    @if let Some(failure) = &state.failure {
                        li.failed { (failure.status.as_str()) " at " (time(failure.at)) }
                    }
                }
                p.muted {
                    (state.provider) " · " (state.events) " events · " (state.opens) " opens · " (state.clicks) " clicks · first "
                    (time(state.first_event_at)) ", last " (time(state.last_event_at))
                }
            }
        }
        h2 { "Timeline" }
        ol {
            @for (event, raw) in timeline.iter().zip(&raws) {
                li {
                    (time(event.time)) " " (event_type_badge(event))
                    @if let Some(recipient) = &event.data.recipient { " " span.mono { (recipient) } }
                    " " (event_detail(event))
                    details {
                        summary { "Canonical event " code { (event.id.to_string()) } }
                        pre { (serde_json::to_string_pretty(event).unwrap_or_default()) }
                    }
                    details {
                        summary { "Provider record (" (event.data.provider) ": " (event.data.provider_event_type) ")" }
                        @match raw {
                            Some(raw) => pre { (raw) },
                            None => p.muted { "Not kept." },
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(page(&session.frame("Message", "/console/events"), body)))
}

fn pretty(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// Success rate and median latency over a subscription's latest attempts.
struct Health {
    attempts: usize,
    delivered: usize,
    median_ms: u64,
}

/// How many attempts a subscription's page and charts weigh: its latest.
const RECENT_ATTEMPTS: usize = 100;

fn health(attempts: &[AttemptRecord]) -> Health {
    let delivered = attempts.iter().filter(|a| a.outcome == "delivered").count();
    let mut latencies: Vec<u64> = attempts.iter().map(|a| a.latency_ms).collect();
    latencies.sort_unstable();
    let median_ms = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    Health { attempts: attempts.len(), delivered, median_ms }
}

fn subscription_state(subscription: &Subscription) -> Markup {
    html! {
        @if subscription.enabled {
            @if let Some(since) = subscription.failing_since { span.badge.warn { "failing since " (time(since)) } }
            @else { span.badge.good { "enabled" } }
        } @else {
            span.badge.bad { "disabled" }
            @if let Some(reason) = &subscription.disabled_reason { " " span.muted { (reason) } }
        }
    }
}

async fn subscriptions<S: Store, Q: Queue>(State(shared): AppState<S, Q>, session: Session) -> Page {
    let subscriptions = shared.store.subscriptions(&session.workspace).await?;
    let mut rows = Vec::new();
    let mut latency_rows = Vec::new();
    for subscription in &subscriptions {
        let health = health(&shared.store.attempts(&session.workspace, &subscription.id, RECENT_ATTEMPTS).await?);
        if health.attempts == 0 {
            continue;
        }
        let share = health.delivered as f64 / health.attempts as f64;
        rows.push(chart::Row {
            label: short(&subscription.id, &subscription.url),
            bars: vec![(share, format!("{:.0}% of {} attempts", share * 100.0, health.attempts))],
        });
        latency_rows.push(chart::Row {
            label: short(&subscription.id, &subscription.url),
            bars: vec![(health.median_ms as f64, format!("{} ms", health.median_ms))],
        });
    }
    let max_latency = latency_rows.iter().map(|r| r.bars[0].0).fold(0.0, f64::max);
    let body = html! {
        h1 { "Subscriptions" }
        @if subscriptions.is_empty() {
            p { "No subscriptions yet: add one below to have events posted to your endpoint, signed (Standard Webhooks)." }
        } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Subscription" } th { "Endpoint" } th { "Types" } th { "State" } th { "Created" } } }
                tbody {
                    @for s in &subscriptions {
                        tr {
                            td data-label="Subscription" { a.mono href=(format!("/console/subscriptions/{}", encode(&s.id))) { (s.id) } @if !s.description.is_empty() { br; span.muted { (s.description) } } }
                            td data-label="Endpoint" { span.mono { (s.url) } }
                            td data-label="Types" { (s.types.join(", ")) }
                            td data-label="State" { (subscription_state(s)) }
                            td data-label="Created" { (time(s.created_at)) }
                        }
                    }
                }
            } }
        }
        @if !rows.is_empty() {
            h2 { "Delivery success (latest 100 attempts)" }
            (chart::bars("Share of attempts delivered", &["delivered"], &rows, 1.0))
            h2 { "Median attempt latency" }
            (chart::bars("Median latency of the latest 100 attempts", &["median latency"], &latency_rows, max_latency))
        }
        h2 #new { "New subscription" }
        form.inline-form method="post" action="/console/subscriptions" {
            (csrf_field(&session.csrf))
            label { "Endpoint URL" input type="url" name="url" required placeholder="https://example.com/webhooks/tidings" size="40"; }
            label { "Event types, comma-separated" input name="types" required value="*" placeholder="email.bounced, *.complained"; }
            label { "Format"
                select name="format" {
                    option value="cloudevents" { "CloudEvents (the canonical event)" }
                    option value="dittofeed" { "Dittofeed track call" }
                }
            }
            label { "Extra header (optional)" input name="header" placeholder="Authorization: Basic …" autocomplete="off"; }
            label { "Description" input name="description"; }
            button.primary type="submit" { "Create" }
        }
    };
    Ok(html_response(page(&session.frame("Subscriptions", "/console/subscriptions"), body)))
}

/// A chart label for a subscription: its host, else its id.
fn short(id: &str, url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| format!("{h} ({})", truncate(id, 10))))
        .unwrap_or_else(|| id.to_owned())
}

#[derive(Deserialize)]
struct NewSubscriptionForm {
    #[serde(default)]
    csrf: String,
    url: String,
    types: String,
    #[serde(default)]
    format: Option<String>,
    /// `Name: value`, sent with every delivery (a Dittofeed write key); never shown again.
    #[serde(default)]
    header: String,
    #[serde(default)]
    description: String,
}

async fn create_subscription<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Form(form): Form<NewSubscriptionForm>,
) -> Page {
    session.check(&form.csrf)?;
    let format: Format = match form.format.as_deref().filter(|f| !f.is_empty()) {
        Some(name) => serde_json::from_value(serde_json::json!(name))
            .map_err(|_| bad_request(format!("format: unknown format {name:?}")))?,
        None => Format::default(),
    };
    let header = form.header.trim();
    let new = NewSubscription {
        url: form.url.trim().to_owned(),
        types: form.types.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        providers: Vec::new(),
        sources: Vec::new(),
        format,
        anonymous_id: Default::default(),
        headers: if header.is_empty() { Vec::new() } else { vec![header.to_owned()] },
        description: form.description.trim().to_owned(),
    };
    let (subscription, secret) = crate::new_subscription(session.workspace.clone(), new).map_err(bad_request)?;
    shared.store.put_subscription(&subscription).await?;
    tracing::info!(
        workspace = session.workspace,
        subscription = subscription.id,
        "subscription created in the console"
    );
    let page =
        subscription_page(&shared, &session, subscription, Banner::Secret("Subscription created.", secret)).await?;
    Ok((StatusCode::CREATED, page).into_response())
}

async fn subscription<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Page {
    let Some(subscription) = shared.store.subscription(&session.workspace, &id).await? else {
        return Err(not_found(format!("no subscription {id} in workspace {}", session.workspace)));
    };
    let banner = n.done.as_deref().and_then(notice_text).map_or(Banner::None, |text| Banner::Notice(text.into()));
    subscription_page(&shared, &session, subscription, banner).await
}

/// `?done=` codes a redirect after a form carries (fixed texts: a link cannot make the page say
/// anything else).
#[derive(Deserialize, Default)]
struct Notice {
    done: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "enabled" => "Enabled: deliveries resume with the next event.",
        "disabled" => "Disabled: no deliveries until it is enabled again.",
        "test" => "A subscription.test event is on its way; its attempt appears below in a moment.",
        "removed" => "Removed from the suppression list.",
        _ => return None,
    })
}

/// What a subscription page says above its details.
enum Banner {
    None,
    /// The outcome of an action.
    Notice(String),
    /// A new signing secret, shown this once, and why there is one.
    Secret(&'static str, String),
}

async fn subscription_page<S: Store, Q: Queue>(
    shared: &Shared<S, Q>,
    session: &Session,
    subscription: Subscription,
    banner: Banner,
) -> Page {
    let attempts = shared.store.attempts(&session.workspace, &subscription.id, RECENT_ATTEMPTS).await?;
    let health = health(&attempts);
    let action = |name: &str| format!("/console/subscriptions/{}/{name}", encode(&subscription.id));
    let body = html! {
        h1 { "Subscription " code { (subscription.id) } }
        @if let Banner::Notice(text) = &banner { p.notice role="status" { (text) } }
        @if let Banner::Secret(what, secret) = &banner {
            div.secret role="status" {
                p { strong { (what) } " Its signing secret is shown this once: keep it where your endpoint verifies deliveries (Standard Webhooks)." }
                div.copy {
                    input #secret readonly value=(secret) aria-label="Signing secret";
                    button type="button" data-copy="secret" hidden { "Copy" }
                }
            }
        }
        dl {
            dt { "Endpoint" } dd.mono { (subscription.url) }
            dt { "Event types" } dd { (subscription.types.join(", ")) }
            @if !subscription.providers.is_empty() { dt { "Providers" } dd { (subscription.providers.join(", ")) } }
            dt { "State" } dd { (subscription_state(&subscription)) }
            dt { "Signing secrets" } dd { (subscription.active_secrets(Timestamp::now()).count()) " active (never shown again after creation or rotation)" }
            @if !subscription.headers.is_empty() { dt { "Extra headers" } dd { (subscription.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")) " (values hidden)" } }
            dt { "Latest attempts" } dd {
                @if health.attempts == 0 { "none yet" }
                @else { (health.delivered) " of " (health.attempts) " delivered; median " (health.median_ms) " ms" }
            }
        }
        h2 { "Actions" }
        div.inline-form {
            @if subscription.enabled {
                form.inline method="post" action=(action("disable")) { (csrf_field(&session.csrf)) button.danger type="submit" { "Disable" } }
            } @else {
                form.inline method="post" action=(action("enable")) { (csrf_field(&session.csrf)) button type="submit" { "Enable" } }
            }
            form.inline method="post" action=(action("test")) { (csrf_field(&session.csrf)) button type="submit" { "Send test event" } }
            form.inline method="post" action=(action("rotate")) { (csrf_field(&session.csrf)) button type="submit" { "Rotate secret" } }
        }
        form.inline-form method="post" action=(action("replay")) {
            (csrf_field(&session.csrf))
            label { "Replay events since (UTC)" input type="datetime-local" name="since" required; }
            label { "until (UTC, optional)" input type="datetime-local" name="until"; }
            label { "of types" input name="type" placeholder="all the subscription's types"; }
            button type="submit" { "Replay" }
        }
        h2 { "Delivery attempts" }
        @if attempts.is_empty() {
            p.muted { "No attempts yet." }
        } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Time" } th { "Event" } th.num { "Attempt" } th { "Outcome" } th.num { "Latency" } th { "Response" } th { "Next attempt" } } }
                tbody {
                    @for a in &attempts {
                        tr {
                            td data-label="Time" { (time(a.at)) }
                            td data-label="Event" { code { (a.event_id) } }
                            td.num data-label="Attempt" { (a.attempt) }
                            td data-label="Outcome" {
                                @let class = if a.outcome == "delivered" { "badge good" } else { "badge bad" };
                                span class=(class) { (a.outcome) @if let Some(status) = a.status { " " (status) } }
                            }
                            td.num data-label="Latency" { (a.latency_ms) " ms" }
                            td data-label="Response" { span.mono { (truncate(&a.detail, 200)) } }
                            td data-label="Next attempt" { @match a.next_attempt_at { Some(at) => (time(at)), None => span.muted { "—" } } }
                        }
                    }
                }
            } }
        }
    };
    Ok(html_response(page(&session.frame("Subscription", "/console/subscriptions"), body)))
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    since: Option<String>,
    until: Option<String>,
    r#type: Option<String>,
}

/// A time from a form: `datetime-local` (read as UTC), RFC 3339 or Unix seconds.
fn form_time(field: &str, value: &Option<String>) -> Result<Option<Timestamp>, ConsoleError> {
    let Some(text) = non_empty(value) else { return Ok(None) };
    // `datetime-local` sends `2026-11-23T19:00` (or with seconds), without a zone.
    let local = match text.len() {
        16 if text.contains('T') => format!("{text}:00Z"),
        19 if text.contains('T') => format!("{text}Z"),
        _ => text.to_owned(),
    };
    parse_when(&local).map(Some).ok_or_else(|| bad_request(format!("{field}: {text:?} is not a date and time")))
}

async fn subscription_action<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Page {
    session.check(&form.csrf)?;
    let missing = || not_found(format!("no subscription {id} in workspace {}", session.workspace));
    let Some(subscription) = shared.store.subscription(&session.workspace, &id).await? else {
        return Err(missing());
    };
    // Made over the version read, and redone on a fresh read if another writer came between.
    use tidings_core::subscription::modify;
    let (store, workspace) = (&shared.store, session.workspace.as_str());
    let back =
        |done: &str| Redirect::to(&format!("/console/subscriptions/{}?done={done}", encode(&id))).into_response();
    let now = Timestamp::now();
    match action.as_str() {
        "enable" => {
            modify(store, workspace, &id, |s| {
                s.enable();
                true
            })
            .await?
            .ok_or_else(missing)?;
            Ok(back("enabled"))
        }
        "disable" => {
            modify(store, workspace, &id, |s| {
                s.disable("disabled in the console");
                true
            })
            .await?
            .ok_or_else(missing)?;
            Ok(back("disabled"))
        }
        "test" => {
            crate::send_test_event(&shared.store, &shared.queue, &subscription, now).await?;
            Ok(back("test"))
        }
        "rotate" => {
            let secret = new_secret(true);
            let subscription = modify(store, workspace, &id, |s| {
                s.rotate(secret.clone(), now, 86_400);
                true
            })
            .await?
            .ok_or_else(missing)?;
            tracing::info!(
                workspace = session.workspace,
                subscription = id,
                "subscription secret rotated in the console"
            );
            let banner = Banner::Secret("Secret rotated; the old one keeps signing for a day.", secret);
            subscription_page(&shared, &session, subscription, banner).await
        }
        "replay" => {
            let since = form_time("since", &form.since)?;
            let until = form_time("until", &form.until)?;
            let pattern = non_empty(&form.r#type).map(str::to_owned);
            if let Some(pattern) = &pattern {
                TypePattern::parse(pattern).map_err(|e| bad_request(format!("type: {e}")))?;
            }
            let queued =
                tidings_core::pipeline::replay(&shared.store, &shared.queue, &subscription, since, until, pattern)
                    .await?;
            let banner = Banner::Notice(format!("Replay queued {}.", plural(queued, "event")));
            subscription_page(&shared, &session, subscription, banner).await
        }
        other => Err(not_found(format!("no action {other:?}: enable, disable, test, rotate or replay"))),
    }
}

#[derive(Deserialize, Default)]
struct SuppressionSearch {
    q: Option<String>,
    done: Option<String>,
}

async fn suppressions<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(p): Query<SuppressionSearch>,
) -> Page {
    let all = shared.store.suppressions(&session.workspace).await?;
    let needle = non_empty(&p.q).map(str::to_lowercase);
    let shown: Vec<_> = all.iter().filter(|s| needle.as_deref().is_none_or(|n| s.recipient.contains(n))).collect();
    let notice = p.done.as_deref().and_then(notice_text);
    let body = html! {
        h1 { "Suppressions" }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        p.muted { "Addresses that hard-bounced, complained or unsubscribed. Lift one only when you know the address works again." }
        form.filters method="get" action="/console/suppressions" role="search" {
            label { "Recipient contains" input type="search" name="q" value=[non_empty(&p.q)]; }
            button.primary type="submit" { "Search" }
        }
        p { (shown.len()) " of " (all.len()) " suppressed" }
        @if !shown.is_empty() {
            div.table-wrap { table.stack {
                thead { tr { th { "Recipient" } th { "Reason" } th { "Provider" } th { "Since" } th { span.skip { "Action" } } } }
                tbody {
                    @for s in &shown {
                        tr {
                            td data-label="Recipient" { (s.recipient) }
                            td data-label="Reason" { (serde_name(s.reason)) }
                            td data-label="Provider" { (s.provider.as_deref().unwrap_or("—")) }
                            td data-label="Since" { (time(s.as_of)) }
                            td {
                                form.inline method="post" action="/console/suppressions/remove" {
                                    (csrf_field(&session.csrf))
                                    input type="hidden" name="recipient" value=(s.recipient);
                                    button.danger type="submit" aria-label=(format!("Remove {}", s.recipient)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(html_response(page(&session.frame("Suppressions", "/console/suppressions"), body)))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf: String,
    recipient: String,
}

async fn remove_suppression<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Form(form): Form<RemoveForm>,
) -> Page {
    session.check(&form.csrf)?;
    let recipient = tidings_core::recipient::any(&form.recipient);
    if !shared.store.remove_suppression(&session.workspace, &recipient).await? {
        return Err(not_found(format!("{recipient} is not suppressed")));
    }
    tracing::info!(workspace = session.workspace, "suppression removed in the console");
    Ok(Redirect::to("/console/suppressions?done=removed").into_response())
}

async fn sources<S: Store, Q: Queue>(State(shared): AppState<S, Q>, session: Session, headers: HeaderMap) -> Page {
    let mut sources = shared.store.sources(&session.workspace).await?;
    sources
        .sort_by(|a, b| (a.provider.as_str(), &a.created_at, &a.id).cmp(&(b.provider.as_str(), &b.created_at, &b.id)));
    let base = base_url(&shared.settings, &headers);
    let body = html! {
        h1 { "Sources" }
        p.muted { "Paste each URL into its provider's webhook settings. Secrets are shown only when a source is created (" code { "tidings sources add" } ")." }
        @if sources.is_empty() { p { "No sources yet." } }
        div.table-wrap { table.stack {
            thead { tr { th { "Provider" } th { "Source" } th { "Webhook URL" } th { "Created" } } }
            tbody {
                @for (i, s) in sources.iter().enumerate() {
                    @let url = webhook_url(&base, s.provider, &s.id);
                    @let field = format!("url-{i}");
                    tr {
                        td data-label="Provider" { (s.provider.as_str()) }
                        td data-label="Source" { code { (s.id) } @if !s.description.is_empty() { br; span.muted { (s.description) } } }
                        td data-label="Webhook URL" {
                            div.copy {
                                input id=(field) readonly value=(url) aria-label=(format!("{} webhook URL", s.provider.as_str()));
                                button type="button" data-copy=(field) hidden { "Copy" }
                            }
                        }
                        td data-label="Created" { (time(s.created_at)) }
                    }
                }
            }
        } }
    };
    Ok(html_response(page(&session.frame("Sources", "/console/sources"), body)))
}

fn queue_purpose(queue: QueueName) -> &'static str {
    match queue {
        QueueName::Events => "canonical events the processor could not store",
        QueueName::Deliveries => "deliveries that failed every attempt or could not be made",
        QueueName::Redrive => "SES resends that could not be made",
    }
}

async fn queues<S: Store, Q: Queue + DeadLetters>(State(shared): AppState<S, Q>, session: Session) -> Page {
    let operator = shared.settings.is_operator(&session.workspace);
    let statuses = if operator { dead_letter_statuses(&shared.queue).await? } else { Vec::new() };
    let body = dead_letter_body(&session, operator, &statuses, None);
    Ok(html_response(page(&session.frame("Dead letters", "/console/queues"), body)))
}

/// What waits on every dead-letter queue.
async fn dead_letter_statuses<Q: DeadLetters>(queue: &Q) -> Result<Vec<(QueueName, DeadLetterStatus)>, StoreError> {
    let mut statuses = Vec::with_capacity(QueueName::ALL.len());
    for name in QueueName::ALL {
        statuses.push((name, queue.dead_letter_status(name).await?));
    }
    Ok(statuses)
}

fn dead_letter_body(
    session: &Session,
    operator: bool,
    statuses: &[(QueueName, DeadLetterStatus)],
    notice: Option<String>,
) -> Markup {
    html! {
        h1 { "Dead-letter queues" }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        @if !operator {
            p { "The dead-letter queues are shared by every workspace, so only an operator workspace's key may see or redrive them, and "
                code { (session.workspace) } " is not one (" code { "TIDINGS_OPERATOR_WORKSPACES" } ")." }
        } @else {
            p.muted { "Messages that could not be handled wait here with their reason. Redrive moves them back to their queue once the cause is fixed." }
            div.table-wrap { table.stack {
                thead { tr { th { "Queue" } th { "Holds" } th.num { "Waiting" } th { "Latest redrive" } th { span.skip { "Action" } } } }
                tbody {
                    @for (queue, status) in statuses {
                        tr {
                            td data-label="Queue" { code { (queue.as_str()) } }
                            td data-label="Holds" { (queue_purpose(*queue)) }
                            td.num data-label="Waiting" { (status.waiting) }
                            td data-label="Latest redrive" {
                                @match &status.status {
                                    Some(state) => { (state) " · " (status.moved) " moved" @if let Some(failure) = &status.failure { " · " (failure) } },
                                    None => span.muted { "none" },
                                }
                            }
                            td {
                                form.inline method="post" action=(format!("/console/queues/{}/redrive", queue.as_str())) {
                                    (csrf_field(&session.csrf))
                                    button type="submit" disabled[status.waiting == 0] aria-label=(format!("Redrive {}", queue.as_str())) { "Redrive" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

async fn redrive<S: Store, Q: Queue + DeadLetters>(
    State(shared): AppState<S, Q>,
    session: Session,
    Path(queue): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check(&form.csrf)?;
    if !shared.settings.is_operator(&session.workspace) {
        return Err(ConsoleError(
            StatusCode::FORBIDDEN,
            format!("only an operator workspace may redrive dead letters, and {} is not one", session.workspace),
        ));
    }
    let queue: QueueName = queue.parse().map_err(not_found)?;
    let moved = shared.queue.redrive_dead_letters(queue, MoveMethod::Native).await?;
    tracing::info!(
        queue = queue.as_str(),
        workspace = session.workspace,
        moved = moved.moved,
        "dead letters redriven from the console"
    );
    let statuses = dead_letter_statuses(&shared.queue).await?;
    let notice = format!(
        "Redrive of {}: {} ({} moved).",
        queue.as_str(),
        moved.status.as_deref().unwrap_or("started"),
        moved.moved
    );
    let body = dead_letter_body(&session, true, &statuses, Some(notice));
    Ok(html_response(page(&session.frame("Dead letters", "/console/queues"), body)))
}
