//! Suppressions, sources and dead-letter queues.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use tidings_core::ports::{DeadLetterStatus, DeadLetters, MoveMethod, Queue, QueueName, Store, StoreError};

use super::CsrfForm;
use super::subscriptions::notice_text;
use super::view::{csrf_field, page, time};
use super::{AppState, ConsoleError, Page, Session, html_response, non_empty, not_found};
use crate::{base_url, webhook_url};

#[derive(Deserialize, Default)]
pub(super) struct SuppressionSearch {
    q: Option<String>,
    done: Option<String>,
}

pub(super) async fn suppressions<S: Store, Q: Queue>(
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
                            td data-label="Reason" { (s.reason.as_str()) }
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
pub(super) struct RemoveForm {
    #[serde(default)]
    csrf: String,
    recipient: String,
}

pub(super) async fn remove_suppression<S: Store, Q: Queue>(
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

pub(super) async fn sources<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    headers: HeaderMap,
) -> Page {
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
        QueueName::Resend => "SES resends that could not be made",
    }
}

pub(super) async fn queues<S: Store, Q: Queue + DeadLetters>(State(shared): AppState<S, Q>, session: Session) -> Page {
    let operator = shared.settings.is_operator(&session.workspace);
    let statuses = if operator { dead_letter_statuses(&shared.queue).await? } else { Vec::new() };
    let body = dead_letter_body(&session, operator, &statuses, None);
    Ok(html_response(page(&session.frame("Dead letters", "/console/queues"), body)))
}

/// What waits on every dead-letter queue.
pub(super) async fn dead_letter_statuses<Q: DeadLetters>(
    queue: &Q,
) -> Result<Vec<(QueueName, DeadLetterStatus)>, StoreError> {
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

pub(super) async fn redrive<S: Store, Q: Queue + DeadLetters>(
    State(shared): AppState<S, Q>,
    session: Session,
    Path(queue): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check(&form.csrf)?;
    if !shared.settings.is_operator(&session.workspace) {
        return Err(ConsoleError::Forbidden(format!(
            "only an operator workspace may redrive dead letters, and {} is not one",
            session.workspace
        )));
    }
    let queue: QueueName = queue.parse().map_err(|e: tidings_core::invalid::Invalid| not_found(e.reason))?;
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
