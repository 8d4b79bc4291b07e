//! The state of one message to one recipient, folded from its events.
//!
//! Providers deliver out of order (a `delivered` after its `opened`, Twilio's `sent` after its
//! `delivered`), so the state is a join-semilattice: folding the same set of events in any
//! order gives the same state, and a duplicate changes nothing (the store never folds an event
//! twice, because it writes the event and the state in one transaction).
//!
//! - **progress** only moves forward, by rank:
//!   `unknown < sent < deferred < delivered < opened|read < clicked|replied`
//!   (a soft or undetermined bounce ranks with `deferred`: the provider may still deliver).
//! - **failure** is sticky: the first terminal failure (hard bounce, drop, send failure,
//!   exhausted retries, complaint) by event time, then id. Later engagement does not clear it.
//! - **status** is the failure when there is one, else the progress.
//! - counters (`events`, `opens`, `clicks`, `privacy_opens`) are exact; first and last times are
//!   minimum and maximum.

use serde::{Deserialize, Serialize};

use crate::event::{BounceKind, CanonicalEvent, Channel, EventId, Status};
use crate::timestamp::Timestamp;

/// A message state's place: workspace, message id, recipient.
pub type StateKey = (String, String, String);

/// Folds each event into its message's state, in order, starting from the states stored
/// (`stored`, keyed by workspace, message id and recipient), and sets each event's `data.state` and
/// `data.state_version` to the state once it is folded in: what deliveries carry. Events about
/// no message, or no recipient, are left as they are.
pub fn attach_states(events: &mut [CanonicalEvent], stored: &mut std::collections::HashMap<StateKey, MessageState>) {
    for event in events.iter_mut() {
        let Some(state_key) = key(event).map(|(m, r)| (event.workspaceid.clone(), m.to_owned(), r.to_owned())) else {
            continue;
        };
        let folded = match stored.remove(&state_key) {
            Some(mut state) => {
                state.apply(event);
                Some(state)
            }
            None => MessageState::new(event),
        };
        if let Some(state) = folded {
            event.data.state_version = Some(state.events);
            event.data.state = match serde_json::to_value(&state) {
                Ok(serde_json::Value::Object(fields)) => Some(fields),
                _ => None,
            };
            stored.insert(state_key, state);
        }
    }
}

/// Where one message to one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageState {
    pub workspace: String,
    pub message_id: String,
    pub recipient: String,
    pub channel: Option<Channel>,
    pub provider: String,
    /// `failure` when set, else `progress`.
    pub status: Status,
    /// The furthest the message got.
    pub progress: Status,
    /// The first terminal failure, if any: kept even when engagement follows.
    pub failure: Option<Failure>,
    pub first_event_at: Timestamp,
    pub last_event_at: Timestamp,
    pub events: u64,
    pub opens: u64,
    pub privacy_opens: u64,
    pub clicks: u64,
    pub first_opened_at: Option<Timestamp>,
    pub first_clicked_at: Option<Timestamp>,
}

/// A terminal failure and the event that reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Failure {
    pub status: Status,
    pub at: Timestamp,
    pub event_id: EventId,
}

/// How far a status gets a message. `None`: the status says nothing about delivery progress
/// (subscription changes, received mail, unknown provider events).
pub fn rank(status: Status) -> Option<u8> {
    Some(match status {
        Status::Sent | Status::RetryScheduled => 1,
        Status::Deferred => 2,
        Status::Delivered => 3,
        Status::Opened | Status::Read => 4,
        Status::Clicked | Status::Replied => 5,
        _ => return None,
    })
}

/// Whether `event` ends the message's chances: a terminal failure.
fn terminal(event: &CanonicalEvent) -> bool {
    match event.event_type.status() {
        Some(Status::Bounced) => event.data.bounce.as_ref().is_some_and(|b| b.kind == BounceKind::Hard),
        Some(Status::Dropped | Status::Failed | Status::RetriesExhausted | Status::Complained) => true,
        _ => false,
    }
}

/// The progress a non-terminal status stands for (a soft bounce is a deferral).
fn progress_of(event: &CanonicalEvent) -> Option<Status> {
    match event.event_type.status()? {
        Status::Bounced if !terminal(event) => Some(Status::Deferred),
        status => rank(status).map(|_| status),
    }
}

/// The key a message state is kept under, when the event is about one message to one
/// recipient.
pub fn key(event: &CanonicalEvent) -> Option<(&str, &str)> {
    Some((event.data.message_id.as_deref()?, event.data.recipient.as_deref()?))
}

impl MessageState {
    /// The state after a message's first event.
    pub fn new(event: &CanonicalEvent) -> Option<MessageState> {
        let (message_id, recipient) = key(event)?;
        let mut state = MessageState {
            workspace: event.workspaceid.clone(),
            message_id: message_id.to_owned(),
            recipient: recipient.to_owned(),
            channel: event.data.channel.clone(),
            provider: event.data.provider.clone(),
            status: Status::Unknown,
            progress: Status::Unknown,
            failure: None,
            first_event_at: event.time,
            last_event_at: event.time,
            events: 0,
            opens: 0,
            privacy_opens: 0,
            clicks: 0,
            first_opened_at: None,
            first_clicked_at: None,
        };
        state.apply(event);
        Some(state)
    }

    /// Folds one more event in. The caller guarantees each event is applied once.
    pub fn apply(&mut self, event: &CanonicalEvent) {
        let at = event.time;
        self.events += 1;
        self.first_event_at = self.first_event_at.min(at);
        self.last_event_at = self.last_event_at.max(at);
        if let Some(progress) = progress_of(event) {
            let ahead = (rank(progress), progress) > (rank(self.progress), self.progress);
            if ahead {
                self.progress = progress;
            }
        }
        match event.event_type.status() {
            Some(Status::Opened) => {
                self.opens += 1;
                if event.data.privacy_open == Some(true) {
                    self.privacy_opens += 1;
                }
                self.first_opened_at = Some(self.first_opened_at.map_or(at, |t| t.min(at)));
            }
            Some(Status::Clicked) => {
                self.clicks += 1;
                self.first_clicked_at = Some(self.first_clicked_at.map_or(at, |t| t.min(at)));
            }
            _ => {}
        }
        if terminal(event) {
            let candidate =
                Failure { status: event.event_type.status().unwrap_or(Status::Failed), at, event_id: event.id.clone() };
            let earlier = match &self.failure {
                None => true,
                Some(current) => (candidate.at, &candidate.event_id) < (current.at, &current.event_id),
            };
            if earlier {
                self.failure = Some(candidate);
            }
        }
        self.status = self.failure.as_ref().map_or(self.progress, |f| f.status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_put_engagement_after_delivery() {
        assert!(rank(Status::Sent) < rank(Status::Delivered));
        assert!(rank(Status::Delivered) < rank(Status::Opened));
        assert!(rank(Status::Opened) < rank(Status::Clicked));
        assert_eq!(rank(Status::Unsubscribed), None);
    }
}
