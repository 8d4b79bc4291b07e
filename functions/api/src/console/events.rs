//! The event stream with its filters, and one message's timeline.

use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::event::{CanonicalEvent, Status};
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{EventQuery, Queue, Store};
use tidings_core::providers::ProviderId;

use super::REFRESH_SECONDS;
use super::overview::collect_events;
use super::view::{event_type_badge, message_link, page, status_badge, time};
use super::{AppState, Page, Session, bad_request, html_response, non_empty, not_found, truncate};
use crate::message_history;

#[derive(Deserialize, Default)]
pub(super) struct EventFilters {
    provider: Option<String>,
    r#type: Option<String>,
    recipient: Option<String>,
    message: Option<String>,
    cursor: Option<String>,
    /// `off` pauses the reload.
    refresh: Option<String>,
}

pub(super) async fn events<S: Store, Q: Queue>(
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
        tidings_core::ports::EventCursor::parse(cursor)?;
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
            (bounce.kind.as_str())
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

/// The delivery lattice, in order of progress: step `i` is rank `i + 1` of `state::rank`.
const LATTICE: [Status; 5] = [Status::Sent, Status::Deferred, Status::Delivered, Status::Opened, Status::Clicked];

/// Where `status` stands on the lattice, as the message state ranks it (read counts as opened,
/// a reply as a click, a scheduled retry as sent).
fn lattice_step(status: Status) -> Option<usize> {
    tidings_core::state::rank(status).map(|rank| usize::from(rank) - 1)
}

pub(super) async fn message<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let Some((states, timeline)) = message_history(&shared.store, &session.workspace, &id).await? else {
        return Err(not_found(format!("no message {id} in workspace {}", session.workspace)));
    };
    // One read per event, all at once rather than one after another.
    let raws = futures_util::future::try_join_all(
        timeline.iter().map(|event| shared.store.raw(&session.workspace, Some(&id), &event.id)),
    )
    .await?;
    // An empty record was not kept (the workspace's privacy settings, an erasure).
    let raws: Vec<Option<String>> =
        raws.into_iter().map(|raw| raw.as_deref().filter(|r| !r.is_empty()).map(pretty)).collect();
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
                        pre { (serde_json::to_string_pretty(event).unwrap_or_else(|e| format!("the event cannot be shown as JSON: {e}"))) }
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
