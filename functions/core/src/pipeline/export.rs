//! Everything a workspace holds about one recipient, as one document: what an access request
//! (GDPR article 15 and the like) is answered with.

use std::collections::{BTreeSet, HashSet};

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::delivery::AttemptRecord;
use crate::event::CanonicalEvent;
use crate::ports::{DeliveryStore, EventQuery, EventStore, StoreError, SubscriptionStore};
use crate::state::MessageState;
use crate::suppression::Suppression;
use crate::timestamp::Timestamp;

/// The most events one export holds; past it the export says it is not complete.
pub const MAX_EXPORT_EVENTS: usize = 10_000;
/// How many of each subscription's latest attempts are searched for the recipient's events.
pub const ATTEMPTS_PER_SUBSCRIPTION: usize = 1_000;

/// One stored event with the provider's record it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportedEvent {
    pub event: CanonicalEvent,
    /// The provider's record, as received (JSON text, or a form as a JSON object's text).
    pub raw: Option<String>,
}

/// Everything held about a recipient in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecipientExport {
    pub workspace: String,
    /// The recipient as tidings keeps it (an address lowercased, a number in E.164).
    pub recipient: String,
    pub exported_at: Timestamp,
    /// Newest first, each with its provider record.
    pub events: Vec<ExportedEvent>,
    /// The state of each message the recipient was sent.
    pub message_states: Vec<MessageState>,
    /// The recipient's suppression entry (a lifted one included), if any.
    pub suppression: Option<Suppression>,
    /// Delivery attempts of the recipient's events to the workspace's subscriptions, among the
    /// latest [`ATTEMPTS_PER_SUBSCRIPTION`] of each.
    pub attempts: Vec<AttemptRecord>,
    /// `false` when the recipient has more than [`MAX_EXPORT_EVENTS`] events: the export then
    /// holds the newest of them.
    pub complete: bool,
}

/// Collects the export of `recipient` (already in the form events keep it).
pub async fn export_recipient<S: EventStore + SubscriptionStore + DeliveryStore>(
    store: &S,
    workspace: &str,
    recipient: &str,
    now: Timestamp,
) -> Result<RecipientExport, StoreError> {
    let mut events: Vec<CanonicalEvent> = Vec::new();
    let mut cursor = None;
    let mut complete = true;
    loop {
        let query = EventQuery {
            workspace: workspace.to_owned(),
            recipient: Some(recipient.to_owned()),
            limit: 1000,
            cursor,
            ..EventQuery::default()
        };
        let page = store.events(&query).await?;
        events.extend(page.events);
        if events.len() >= MAX_EXPORT_EVENTS {
            complete = page.next.is_none() && events.len() == MAX_EXPORT_EVENTS;
            events.truncate(MAX_EXPORT_EVENTS);
            break;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    let mut exported = Vec::with_capacity(events.len());
    for chunk in events.chunks(16) {
        let raws =
            try_join_all(chunk.iter().map(|e| store.raw(workspace, e.data.message_id.as_deref(), &e.id))).await?;
        exported.extend(chunk.iter().cloned().zip(raws).map(|(event, raw)| ExportedEvent { event, raw }));
    }

    let messages: BTreeSet<&str> = events.iter().filter_map(|e| e.data.message_id.as_deref()).collect();
    let mut message_states = Vec::new();
    for message in messages {
        message_states
            .extend(store.message_states(workspace, message).await?.into_iter().filter(|s| s.recipient == recipient));
    }

    let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let mut attempts = Vec::new();
    for subscription in store.subscriptions(workspace).await? {
        attempts.extend(
            store
                .attempts(workspace, &subscription.id, ATTEMPTS_PER_SUBSCRIPTION)
                .await?
                .into_iter()
                .filter(|a| ids.contains(a.event_id.as_str())),
        );
    }

    Ok(RecipientExport {
        workspace: workspace.to_owned(),
        recipient: recipient.to_owned(),
        exported_at: now,
        events: exported,
        message_states,
        suppression: store.suppression(workspace, recipient).await?,
        attempts,
        complete,
    })
}
