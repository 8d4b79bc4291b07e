//! The deliverability page: rates by mailbox provider and recipient domain with the
//! workspace's thresholds drawn, bounces by reason, and the watch's latest alarms and events.

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;
use tidings_core::deliverability::{Dimension, Report};
use tidings_core::ports::{EventQuery, Queue, Store};
use tidings_core::timestamp::Timestamp;

use super::view::{page, time};
use super::{AppState, Page, Session, chart, html_response};
use crate::routes::deliverability::read_report;

/// The page's windows: (query value, title, seconds).
const WINDOWS: [(&str, &str, i64); 3] = [
    ("24h", "the last 24 hours", 86_400),
    ("7d", "the last 7 days", 7 * 86_400),
    ("30d", "the last 30 days", 30 * 86_400),
];

/// Recipient domains shown, the busiest first.
const DOMAINS_SHOWN: usize = 15;

#[derive(Deserialize, Default)]
pub(super) struct Params {
    window: Option<String>,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

/// Bounce, complaint and spam rates per row of `report`, the thresholds drawn.
fn rates_chart(
    label: &str,
    report: &Report,
    rows: usize,
    settings: &tidings_core::deliverability::Settings,
) -> maud::Markup {
    let rows: Vec<chart::Row> = report
        .rows
        .iter()
        .take(rows)
        .map(|row| chart::Row {
            label: format!(
                "{} ({})",
                if row.value.is_empty() { "(none)" } else { row.value.as_str() },
                super::plural(usize::try_from(row.totals.attempted).unwrap_or(usize::MAX), "message")
            ),
            bars: vec![
                (row.totals.bounce_rate.unwrap_or(0.0), percent(row.totals.bounce_rate)),
                (row.totals.complaint_rate.unwrap_or(0.0), percent(row.totals.complaint_rate)),
                (row.totals.spam_rate.unwrap_or(0.0), percent(row.totals.spam_rate)),
            ],
        })
        .collect();
    let limits = vec![
        (0, settings.bounce_rate, percent(Some(settings.bounce_rate))),
        (1, settings.complaint_rate, percent(Some(settings.complaint_rate))),
        (2, settings.spam_rate, percent(Some(settings.spam_rate))),
    ];
    let max = rows
        .iter()
        .flat_map(|r| r.bars.iter().map(|(v, _)| *v))
        .chain(limits.iter().map(|(_, v, _)| *v))
        .fold(0.0, f64::max)
        * 1.1;
    chart::bars_with_limits(label, &["bounce rate", "complaint rate", "spam rate"], &rows, max, &limits)
}

pub(super) async fn deliverability<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(p): Query<Params>,
) -> Page {
    let (window, title, seconds) = super::pick_window(&WINDOWS, p.window.as_deref())?;
    let ws = session.workspace.as_str();
    let now = Timestamp::now();
    let since = Timestamp::from_unix_seconds(now.unix_seconds() - seconds).unwrap_or(now);
    let by_mailbox = read_report(&shared.store, ws, Dimension::MailboxProvider, since, now).await?;
    let by_domain = read_report(&shared.store, ws, Dimension::RecipientDomain, since, now).await?;
    let settings = shared.store.deliverability_settings(ws).await?.unwrap_or_default();
    let mut alarms = shared.store.alarms(ws).await?;
    alarms.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| b.since.cmp(&a.since)));
    let recent = |pattern: &str| EventQuery {
        workspace: ws.to_owned(),
        type_pattern: Some(pattern.to_owned()),
        limit: 10,
        ..EventQuery::default()
    };
    let mut watch_events = shared.store.events(&recent("deliverability.*")).await?.events;
    watch_events.extend(shared.store.events(&recent("source.*")).await?.events);
    watch_events.sort_by_key(|e| std::cmp::Reverse(e.time));
    watch_events.truncate(10);

    let total = &by_mailbox.total;
    let mut reasons: Vec<(&String, &u64)> = total.by_reason.iter().collect();
    reasons.sort_by_key(|(reason, n)| (std::cmp::Reverse(**n), (*reason).clone()));
    let reason_total: u64 = reasons.iter().map(|(_, n)| **n).sum();
    let reason_rows: Vec<chart::Row> = reasons
        .iter()
        .map(|(reason, n)| chart::Row {
            label: (*reason).clone(),
            bars: vec![(**n as f64, format!("{n} ({:.0}%)", **n as f64 * 100.0 / reason_total.max(1) as f64))],
        })
        .collect();
    let reason_max = reasons.first().map_or(1.0, |(_, n)| **n as f64);

    let body = html! {
        h1 { "Deliverability: " (title) }
        nav.windows aria-label="Time window" {
            @for (name, label, _) in WINDOWS {
                a href=(format!("/console/deliverability?window={name}")) aria-current=[(name == window).then_some("page")] { (label) }
                " "
            }
        }
        div.grid {
            div.tile { strong { (total.attempted) } "messages" }
            div.tile { strong { (percent(total.delivery_rate)) } "delivered" }
            div.tile { strong { (percent(total.bounce_rate)) } "hard bounces" }
            div.tile { strong { (percent(total.complaint_rate)) } "complaints" }
        }
        h2 { "Alarms" }
        @if alarms.is_empty() {
            p.muted { "No threshold crossed and no source gone silent. Thresholds: bounce rate " (percent(Some(settings.bounce_rate)))
                ", complaint rate " (percent(Some(settings.complaint_rate))) ", spam rate " (percent(Some(settings.spam_rate)))
                " over " (settings.window_hours) " h, from " (settings.min_volume) " messages." }
        } @else {
            table {
                thead { tr { th { "state" } th { "since" } th { "what" } } }
                tbody {
                    @for alarm in alarms.iter().take(20) {
                        tr {
                            td { @if alarm.active { span.badge.bad { "active" } } @else { span.badge { "clear" } } }
                            td { (time(alarm.since)) }
                            td { code { (alarm.key) } }
                        }
                    }
                }
            }
        }
        h2 { "Rates by mailbox provider" }
        @if by_mailbox.rows.is_empty() {
            p.muted { "No email events in " (title) "." }
        } @else {
            (rates_chart("Bounce, complaint and spam rates by mailbox provider", &by_mailbox, 12, &settings))
        }
        h2 { "Rates by recipient domain (busiest " (DOMAINS_SHOWN) ")" }
        @if by_domain.rows.is_empty() {
            p.muted { "No email events in " (title) "." }
        } @else {
            (rates_chart("Bounce, complaint and spam rates by recipient domain", &by_domain, DOMAINS_SHOWN, &settings))
        }
        h2 { "Bounces, deferrals, drops and failures by reason" }
        @if reason_rows.is_empty() {
            p.muted { "Nothing bounced in " (title) "." }
        } @else {
            (chart::bars("Failures by reason", &["events"], &reason_rows, reason_max))
        }
        h2 { "Latest watch events" }
        @if watch_events.is_empty() {
            p.muted { "None yet: the watch announces thresholds crossed and recovered, and sources gone silent and resumed." }
        } @else {
            table {
                thead { tr { th { "time" } th { "type" } th { "what" } } }
                tbody {
                    @for event in &watch_events {
                        tr {
                            td { (time(event.time)) }
                            td { code { (event.event_type.to_string()) } }
                            td { (event.data.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(page(&session.frame("Deliverability", "/console/deliverability"), body)))
}
