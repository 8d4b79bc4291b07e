//! Subscriptions: the list, creating one, one subscription's page with its attempts, and
//! its actions (enable, disable, rotate, test, replay).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::delivery::AttemptRecord;
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{Queue, Store};
use tidings_core::source::new_secret;
use tidings_core::subscription::{Format, Subscription};
use tidings_core::timestamp::Timestamp;

use super::chart;
use super::view::{csrf_field, encode, page, time};
use super::{
    AppState, ConsoleError, Page, Session, bad_request, html_response, non_empty, not_found, plural, truncate,
};
use crate::{NewSubscription, Shared, parse_when};

/// Success rate and median latency over a subscription's latest attempts.
pub(super) struct Health {
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
    let circuit = crate::views::CircuitView::new(&subscription.circuit, Timestamp::now());
    html! {
        @if subscription.enabled {
            @if circuit.state != "closed" {
                span.badge.bad { "circuit " (circuit.state) }
                @if let Some(at) = circuit.next_probe_at { " " span.muted { "next probe " (time(at)) } }
            }
            @else if let Some(since) = subscription.failing_since { span.badge.warn { "failing since " (time(since)) } }
            @else { span.badge.good { "enabled" } }
        } @else {
            span.badge.bad { "disabled" }
            @if let Some(reason) = &subscription.disabled_reason { " " span.muted { (reason) } }
        }
    }
}

pub(super) async fn subscriptions<S: Store, Q: Queue>(State(shared): AppState<S, Q>, session: Session) -> Page {
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
            label { "Endpoint URL, or EventBridge bus / SQS queue ARN" input name="url" required placeholder="https://example.com/webhooks/tidings" size="40"; }
            label { "Event types, comma-separated" input name="types" required value="*" placeholder="email.bounced, *.complained"; }
            label { "Format"
                select name="format" {
                    option value="cloudevents" { "CloudEvents (the canonical event)" }
                    option value="dittofeed" { "Dittofeed track call" }
                }
            }
            label { "Filter (optional)" input name="filter" placeholder="data.bounce.kind == \"hard\"" size="40"; }
            label { "Rate limit per second (optional)" input type="number" name="rate_limit" min="1" max="500"; }
            label { "Max in flight (optional)" input type="number" name="max_in_flight" min="1" max="100"; }
            label { "Circuit opens after failures in a row" input type="number" name="circuit_failures" min="1" max="1000" placeholder="5"; }
            label { "or after this % of attempts failed (optional)" input type="number" name="circuit_failure_rate" min="1" max="100"; }
            label { "within seconds" input type="number" name="circuit_window_seconds" min="10" max="86400" placeholder="300"; }
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
pub(super) struct NewSubscriptionForm {
    #[serde(default)]
    csrf: String,
    url: String,
    types: String,
    #[serde(default)]
    format: Option<String>,
    /// `Name: value`, sent with every delivery (a Dittofeed write key); never shown again.
    #[serde(default)]
    header: String,
    /// A content filter ([`tidings_core::filter`]).
    #[serde(default)]
    filter: String,
    /// Numbers, or empty for none.
    #[serde(default)]
    rate_limit: String,
    #[serde(default)]
    max_in_flight: String,
    #[serde(default)]
    circuit_failures: String,
    #[serde(default)]
    circuit_failure_rate: String,
    #[serde(default)]
    circuit_window_seconds: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn create_subscription<S: Store, Q: Queue>(
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
        filter: Some(form.filter),
        format,
        anonymous_id: Default::default(),
        headers: if header.is_empty() { Vec::new() } else { vec![header.to_owned()] },
        description: form.description.trim().to_owned(),
        rate_limit: optional_number("rate_limit", &form.rate_limit)?,
        max_in_flight: optional_number("max_in_flight", &form.max_in_flight)?,
        circuit_failures: optional_number("circuit_failures", &form.circuit_failures)?,
        circuit_failure_rate: optional_number("circuit_failure_rate", &form.circuit_failure_rate)?,
        circuit_window_seconds: optional_number("circuit_window_seconds", &form.circuit_window_seconds)?,
    };
    let (subscription, secret) = crate::new_subscription(session.workspace.clone(), new)?;
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

/// A form's optional whole number: empty is none; anything else must read as one.
fn optional_number(field: &str, text: &str) -> Result<Option<u32>, ConsoleError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| bad_request(format!("{field}: {text:?} is not a whole number")))
}

pub(super) async fn subscription<S: Store, Q: Queue>(
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
pub(super) struct Notice {
    done: Option<String>,
}

pub(super) fn notice_text(code: &str) -> Option<&'static str> {
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
    /// A replay that read its bounded stretch and has more of its range to go: the outcome, and
    /// a button that goes on with the same range from `next`.
    Continue {
        text: String,
        form: ActionForm,
        next: String,
    },
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
        @if let Banner::Continue { text, form, next } = &banner {
            form.notice.inline-form role="status" method="post" action=(action("replay")) {
                (text) " More of the range remains. "
                (csrf_field(&session.csrf))
                @for (name, value) in [("since", &form.since), ("until", &form.until), ("type", &form.r#type)] {
                    @if let Some(value) = value { input type="hidden" name=(name) value=(value); }
                }
                input type="hidden" name="cursor" value=(next);
                button type="submit" { "Continue the replay" }
            }
        }
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
            @if let Some(filter) = &subscription.filter { dt { "Filter" } dd { code { (filter) } } }
            @if !subscription.providers.is_empty() { dt { "Providers" } dd { (subscription.providers.join(", ")) } }
            dt { "State" } dd { (subscription_state(&subscription)) }
            dt { "Circuit" } dd {
                @let circuit = crate::views::CircuitView::new(&subscription.circuit, Timestamp::now());
                (circuit.state)
                @if let Some(reason) = &circuit.reason { ": " (reason) }
                @if let Some(at) = circuit.opened_at { ", opened " (time(at)) }
                @if let Some(at) = circuit.next_probe_at { "; next probe " (time(at)) }
                @if circuit.consecutive_failures > 0 { " (" (plural(circuit.consecutive_failures as usize, "failed attempt")) " in a row)" }
                " · opens after " (subscription.pacing.failures_to_open()) " failures in a row"
                @if let Some(rate) = subscription.pacing.circuit_failure_rate {
                    " or " (rate) "% failed in " (subscription.pacing.window_seconds()) " s"
                }
            }
            dt { "Pace" } dd {
                @match subscription.pacing.rate_limit { Some(rate) => { (rate) " per second" } None => { "no rate limit" } }
                ", "
                @match subscription.pacing.max_in_flight { Some(cap) => { "at most " (cap) " in flight" } None => { "no in-flight cap" } }
            }
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

#[derive(Deserialize, Clone)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    since: Option<String>,
    until: Option<String>,
    r#type: Option<String>,
    /// Replay: where an earlier call of the same replay stopped.
    cursor: Option<String>,
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

pub(super) async fn subscription_action<S: Store, Q: Queue>(
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
    use tidings_core::pipeline::modify_subscription as modify;
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
            let from = non_empty(&form.cursor).map(tidings_core::pipeline::ReplayPosition::parse).transpose()?;
            let range = tidings_core::pipeline::ReplayRange { since, until, type_pattern: pattern };
            let progress =
                tidings_core::pipeline::replay(&shared.store, &shared.queue, &subscription, &range, from).await?;
            let text = format!("Replay queued {}.", plural(progress.queued, "event"));
            let banner = match progress.next {
                None => Banner::Notice(text),
                Some(next) => Banner::Continue { text, form: form.clone(), next: next.to_string() },
            };
            subscription_page(&shared, &session, subscription, banner).await
        }
        other => Err(not_found(format!("no action {other:?}: enable, disable, test, rotate or replay"))),
    }
}
