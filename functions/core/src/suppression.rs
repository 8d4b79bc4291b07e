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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    HardBounce,
    Complaint,
    ProviderSuppression,
    Unsubscribe,
}

impl Reason {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HardBounce => "hard_bounce",
            Reason::Complaint => "complaint",
            Reason::ProviderSuppression => "provider_suppression",
            Reason::Unsubscribe => "unsubscribe",
        }
    }
}

/// One address on (or lifted from) a workspace's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
///
/// Bounces, complaints and provider suppressions always suppress, whatever order events arrive
/// in. Unsubscribes and resubscribes are ordered by event time: a resubscribe leaves a tombstone
/// (an inactive entry) so that an older unsubscribe arriving late does not suppress again.
pub fn apply(current: Option<&Suppression>, event: &CanonicalEvent, change: &Change) -> Option<Suppression> {
    let recipient = event.data.recipient.clone()?;
    // Ordered by event time, ties broken by event id, so the outcome never depends on arrival.
    let newer = current.is_none_or(|entry| (event.time, Some(&event.id)) > (entry.as_of, entry.event_id.as_ref()));
    let entry = |reason: Reason, active: bool| Suppression {
        workspace: event.workspaceid.clone(),
        recipient: recipient.clone(),
        reason,
        active,
        as_of: event.time,
        event_id: Some(event.id.clone()),
        provider: Some(event.data.provider.clone()),
    };
    match (change, current) {
        // Already suppressed: a newer unsubscribe only moves the entry's time forward (so an
        // older resubscribe cannot lift it); over any other reason it adds nothing.
        (Change::Add(Reason::Unsubscribe), Some(current)) if current.active => {
            (current.reason == Reason::Unsubscribe && newer).then(|| entry(Reason::Unsubscribe, true))
        }
        (Change::Add(Reason::Unsubscribe), _) if !newer => None,
        (Change::Add(Reason::Unsubscribe), _) => Some(entry(Reason::Unsubscribe, true)),
        // Among bounces, complaints and provider suppressions the earliest (by event time, then
        // id) names the reason, whatever order they arrive in. Any of them replaces an
        // unsubscribe, so that a resubscribe can no longer lift the entry.
        (Change::Add(_), Some(current))
            if current.active
                && current.reason != Reason::Unsubscribe
                && (current.as_of, current.event_id.as_ref()) <= (event.time, Some(&event.id)) =>
        {
            None
        }
        (Change::Add(reason), _) => Some(entry(*reason, true)),
        (Change::Resubscribe, None) => Some(entry(Reason::Unsubscribe, false)),
        (Change::Resubscribe, Some(current)) if newer && (!current.active || current.reason == Reason::Unsubscribe) => {
            Some(entry(current.reason, false))
        }
        (Change::Resubscribe, Some(_)) => None,
    }
}
