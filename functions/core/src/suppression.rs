//! The suppression list: addresses a workspace must not send to, and why.
//!
//! Hard bounces, complaints, provider suppressions and unsubscribes add an entry; a
//! resubscribe lifts an entry that an unsubscribe made (never one made by a bounce or a
//! complaint). Entries are kept with the time of the event that last changed them, and a change
//! only applies when its event is newer, so an unsubscribe that arrives after a later
//! resubscribe does not bring the entry back. A lifted entry stays as a tombstone for that reason.

use serde::{Deserialize, Serialize};

use crate::event::{BounceKind, CanonicalEvent, EventId, Status};
use crate::timestamp::Timestamp;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    HardBounce,
    Complaint,
    ProviderSuppression,
    Unsubscribe,
}

/// One address on (or lifted from) a workspace's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub workspace: String,
    pub recipient: String,
    pub reason: Reason,
    /// `false` once lifted (a resubscribe, or removed by an operator).
    pub active: bool,
    /// The time of the event that last changed the entry.
    pub as_of: Timestamp,
    pub event_id: Option<EventId>,
    pub provider: Option<String>,
}

/// What an event does to the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(Reason),
    /// Lift an entry an unsubscribe made.
    Resubscribe,
}

/// The change `event` makes to its workspace's suppression list, if any.
pub fn change_for(event: &CanonicalEvent) -> Option<Change> {
    event.data.recipient.as_ref()?;
    match event.event_type.status()? {
        Status::Bounced if event.data.bounce.as_ref().is_some_and(|b| b.kind == BounceKind::Hard) => {
            Some(Change::Add(Reason::HardBounce))
        }
        Status::Complained => Some(Change::Add(Reason::Complaint)),
        Status::Suppressed => Some(Change::Add(Reason::ProviderSuppression)),
        Status::Unsubscribed => Some(Change::Add(Reason::Unsubscribe)),
        Status::Resubscribed => Some(Change::Resubscribe),
        _ => None,
    }
}

/// The entry after `event`'s change, given the current one. `None`: leave the entry as it is.
pub fn apply(current: Option<&Suppression>, event: &CanonicalEvent, change: &Change) -> Option<Suppression> {
    let recipient = event.data.recipient.clone()?;
    if let Some(entry) = current {
        if entry.as_of > event.time {
            return None;
        }
    }
    match change {
        Change::Add(reason) => {
            // An active bounce or complaint entry is not downgraded to an unsubscribe.
            let reason = match current {
                Some(entry) if entry.active && *reason == Reason::Unsubscribe => entry.reason,
                _ => *reason,
            };
            Some(Suppression {
                workspace: event.workspaceid.clone(),
                recipient,
                reason,
                active: true,
                as_of: event.time,
                event_id: Some(event.id.clone()),
                provider: Some(event.data.provider.clone()),
            })
        }
        Change::Resubscribe => match current {
            Some(entry) if entry.active && entry.reason == Reason::Unsubscribe => Some(Suppression {
                active: false,
                as_of: event.time,
                event_id: Some(event.id.clone()),
                ..entry.clone()
            }),
            _ => None,
        },
    }
}
