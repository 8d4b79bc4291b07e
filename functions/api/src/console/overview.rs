//! The overview page: events per type over time, bounce and complaint rates per provider.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;
use tidings_core::event::{CanonicalEvent, Status};
use tidings_core::ports::{EventQuery, Queue, Store, StoreError};
use tidings_core::timestamp::Timestamp;

use super::view::page;
use super::{AppState, Page, Session, html_response, plural};
use super::{OVERVIEW_EVENTS, chart};

/// Up to `cap` of the workspace's events matching `query`, following pages.
pub(super) async fn collect_events<S: Store>(
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
pub(super) struct OverviewParams {
    window: Option<String>,
}

pub(super) async fn overview<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(p): Query<OverviewParams>,
) -> Page {
    let (window, title, seconds) = super::pick_window(&WINDOWS, p.window.as_deref())?;
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
