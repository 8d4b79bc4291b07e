//! The audit page: the workspace's administrative actions, newest first.

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;
use tidings_core::audit::{Outcome, is_entry_id};
use tidings_core::ports::{Queue, Store};

use super::view::{page, time};
use super::{AppState, Page, Session, bad_request, html_response};

/// Entries per page.
const PAGE: usize = 100;

#[derive(Deserialize, Default)]
pub(super) struct Params {
    before: Option<String>,
}

pub(super) async fn audit<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Query(p): Query<Params>,
) -> Page {
    if let Some(before) = p.before.as_deref().filter(|b| !is_entry_id(b)) {
        return Err(bad_request(format!("before: {before:?} is not an entry id")));
    }
    let log = shared.store.audit(&session.workspace, PAGE, p.before.as_deref()).await?;
    let body = html! {
        h1 { "Audit log" }
        p.muted { "Every change made with this workspace's API keys, through the API or this console: sources, subscriptions, suppressions, settings, redrives, exports and erasures. Secrets and recipients are never recorded." }
        @if log.entries.is_empty() {
            p.muted { "Nothing yet." }
        } @else {
            table {
                thead { tr { th { "time" } th { "outcome" } th { "key" } th { "action" } th { "target" } } }
                tbody {
                    @for entry in &log.entries {
                        tr {
                            td { (time(entry.at)) }
                            td {
                                @match entry.outcome {
                                    Outcome::Succeeded => span.badge.good { "succeeded" },
                                    Outcome::Refused => span.badge.warn { "refused " (entry.status) },
                                    Outcome::Failed => span.badge.bad { "failed " (entry.status) },
                                }
                            }
                            td { code { (entry.key) } }
                            td { code { (entry.action) } }
                            td { @if let Some(target) = &entry.target { code { (target) } } }
                        }
                    }
                }
            }
            @if let Some(next) = &log.next {
                p { a href=(format!("/console/audit?before={next}")) { "Older entries" } }
            }
        }
    };
    Ok(html_response(page(&session.frame("Audit log", "/console/audit"), body)))
}
