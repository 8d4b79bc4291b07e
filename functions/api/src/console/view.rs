//! The console's page frame and the small pieces every page uses.

use maud::{DOCTYPE, Markup, html};
use tidings_core::event::{CanonicalEvent, Status};
use tidings_core::timestamp::Timestamp;

/// The console's sections, in navigation order: (path, title).
pub const SECTIONS: [(&str, &str); 9] = [
    ("/console", "Overview"),
    ("/console/events", "Events"),
    ("/console/deliverability", "Deliverability"),
    ("/console/subscriptions", "Subscriptions"),
    ("/console/suppressions", "Suppressions"),
    ("/console/sources", "Sources"),
    ("/console/queues", "Dead letters"),
    ("/console/audit", "Audit"),
    ("/console/privacy", "Privacy"),
];

/// What every signed-in page needs to draw its frame.
pub struct Frame<'a> {
    pub title: &'a str,
    /// The section's path, marked as the current page in the navigation.
    pub section: &'a str,
    pub workspace: &'a str,
    pub csrf: &'a str,
    /// Seconds between reloads (`<meta http-equiv="refresh">`: works without script).
    pub refresh: Option<u32>,
}

/// A signed-in page.
pub fn page(frame: &Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head_common(frame.title))
                @if let Some(seconds) = frame.refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "tidings" }
                    nav aria-label="Console" {
                        ul {
                            @for (path, title) in SECTIONS {
                                li { a href=(path) aria-current=[(path == frame.section).then_some("page")] { (title) } }
                            }
                        }
                    }
                    span.who { "workspace " code { (frame.workspace) } }
                    form method="post" action="/console/logout" {
                        (csrf_field(frame.csrf))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The sign-in page (and where an expired or unknown session lands).
pub fn sign_in(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head_common("Sign in")) }
            body {
                main #main {
                    h1 { "tidings console" }
                    p { "Sign in with a workspace API key. The console shows that workspace's data only." }
                    @if let Some(error) = error { p.error role="alert" { (error) } }
                    form.inline-form method="post" action="/console/login" {
                        label { "API key" input type="password" name="key" autocomplete="current-password" required autofocus; }
                        button.primary type="submit" { "Sign in" }
                    }
                    p.muted { "tidings dev prints its key at start-up and keeps it in .tidings/dev.json." }
                }
            }
        }
    }
}

/// What every page's `<head>` holds: encoding, viewport, title, stylesheet and icon.
pub fn head_common(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · tidings" }
        link rel="stylesheet" href="/console/assets/console.css";
        link rel="icon" type="image/svg+xml" href="/console/assets/icon.svg";
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A time as people read it, in UTC, inside a machine-readable `<time>`.
pub fn time(at: Timestamp) -> Markup {
    let text = at.to_string();
    let shown = text.get(..19).unwrap_or(&text).replace('T', " ");
    html! { time datetime=(text) { (shown) } }
}

/// How a status reads at a glance: good, bad, waiting or neutral.
pub fn status_class(status: Status) -> &'static str {
    match status {
        Status::Delivered | Status::Opened | Status::Clicked | Status::Read | Status::Replied => "badge good",
        Status::Bounced
        | Status::Dropped
        | Status::Failed
        | Status::Complained
        | Status::Suppressed
        | Status::RetriesExhausted => "badge bad",
        Status::Deferred | Status::RetryScheduled | Status::Unsubscribed => "badge warn",
        _ => "badge",
    }
}

pub fn status_badge(status: Status) -> Markup {
    html! { span class=(status_class(status)) { (status.as_str()) } }
}

pub fn event_type_badge(event: &CanonicalEvent) -> Markup {
    let class = event.event_type.status().map_or("badge", status_class);
    html! { span class=(class) { (event.event_type.to_string()) } }
}

/// A message link, or a dash.
pub fn message_link(message: Option<&str>) -> Markup {
    match message {
        Some(id) => html! { a.mono href=(format!("/console/messages/{}", encode(id))) { (id) } },
        None => html! { span.muted { "—" } },
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(value: &str) -> String {
    url_escape(value)
}

fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
