//! The privacy page: the workspace's retention and redaction settings, and erasing a recipient
//! (typed twice, as a confirmation).

use axum::Form;
use axum::extract::State;
use maud::html;
use serde::Deserialize;
use tidings_core::Timestamp;
use tidings_core::ports::{Queue, Store};
use tidings_core::privacy::Erased;

use super::view::{csrf_field, page};
use super::{AppState, Page, Session, bad_request, html_response};

/// Calls one erase from the console makes at most (each removes up to 1,000 events).
const MAX_ERASE_CALLS: usize = 50;

pub(super) async fn privacy<S: Store, Q: Queue>(State(shared): AppState<S, Q>, session: Session) -> Page {
    render(&shared.store, &session, None).await
}

async fn render<S: Store>(store: &S, session: &Session, done: Option<(&Erased, bool)>) -> Page {
    let settings = store.privacy_settings(&session.workspace).await?.unwrap_or_default();
    let days = |d: Option<u32>, default: &str| d.map_or_else(|| default.to_owned(), |d| format!("{d} days"));
    let body = html! {
        h1 { "Privacy" }
        @if let Some((erased, complete)) = done {
            div.notice role="status" {
                p {
                    @if complete { "Erased. " } @else { "Partly erased: more remains; erase again to go on. " }
                    (erased.events) " events, " (erased.raw_records) " provider records, "
                    (erased.message_states) " message states, " (erased.queued) " queued copies removed; "
                    (erased.suppressions) " suppression entry kept under " code { (erased.hash) } "."
                }
            }
        }
        h2 { "Settings" }
        dl {
            dt { "Retention" } dd { (days(settings.retention_days, "the deployment's default")) }
            dt { "Provider records" } dd { (days(settings.raw_retention_days, "as long as their events")) }
            dt { "IP addresses" } dd { (if settings.redact_ip { "dropped as webhooks arrive" } else { "kept" }) }
            dt { "User agents" } dd { (if settings.redact_user_agent { "dropped as webhooks arrive" } else { "kept" }) }
        }
        p.muted { "Change them with " code { "tidings privacy" } " or " code { "PUT /api/privacy/settings" } "." }
        h2 { "Erase a recipient" }
        p.muted {
            "Removes the recipient's events, provider records, message states and queued copies from this workspace. "
            "Their suppression entry stays, under a keyed hash, so they remain suppressed without their address being kept. "
            "This cannot be undone."
        }
        form method="post" action="/console/privacy/erase" {
            (csrf_field(&session.csrf))
            label { "Address or phone number" input type="text" name="recipient" required autocomplete="off"; }
            label { "Type it again to confirm" input type="text" name="confirm" required autocomplete="off"; }
            button.danger type="submit" { "Erase" }
        }
    };
    Ok(html_response(page(&session.frame("Privacy", "/console/privacy"), body)))
}

#[derive(Deserialize)]
pub(super) struct EraseForm {
    #[serde(default)]
    csrf: String,
    recipient: String,
    confirm: String,
}

pub(super) async fn erase<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    session: Session,
    Form(form): Form<EraseForm>,
) -> Page {
    session.check(&form.csrf)?;
    let recipient = tidings_core::recipient::any(&form.recipient);
    if recipient.is_empty() || recipient.len() > 320 {
        return Err(bad_request("recipient: give an email address (at most 320 characters) or a phone number"));
    }
    if tidings_core::recipient::any(&form.confirm) != recipient {
        return Err(bad_request("confirm: not the same recipient; nothing was erased"));
    }
    let mut total = Erased::default();
    let mut complete = false;
    for _ in 0..MAX_ERASE_CALLS {
        let erased =
            tidings_core::pipeline::erase_recipient(&shared.store, &session.workspace, &recipient, Timestamp::now())
                .await?;
        total.events += erased.events;
        total.raw_records += erased.raw_records;
        total.message_states += erased.message_states;
        total.suppressions += erased.suppressions;
        total.queued += erased.queued;
        total.hash = erased.hash;
        if erased.complete {
            complete = true;
            break;
        }
    }
    render(&shared.store, &session, Some((&total, complete))).await
}
