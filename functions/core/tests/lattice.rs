//! Message state and suppressions must not depend on the order events arrive in: providers
//! deliver out of order, and SQS does not keep order either.

use proptest::prelude::*;
use tidings_core::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use tidings_core::providers::NormalizeContext;
use tidings_core::state::MessageState;
use tidings_core::suppression::{self, Suppression};
use tidings_core::{CanonicalEvent, Timestamp};

const STATUSES: [Status; 12] = [
    Status::Sent,
    Status::Delivered,
    Status::Deferred,
    Status::Bounced,
    Status::Dropped,
    Status::Failed,
    Status::Opened,
    Status::Clicked,
    Status::Complained,
    Status::Unsubscribed,
    Status::Resubscribed,
    Status::Read,
];

fn event(status: Status, seconds: i64, hard: bool, index: usize) -> CanonicalEvent {
    let mut data = EventData::new(Some(Channel::EMAIL), "sendgrid", status.as_str());
    data.message_id = Some("m".into());
    data.recipient = Some("r@example.com".into());
    if status == Status::Bounced {
        data.bounce = Some(Bounce::of_kind(if hard { BounceKind::Hard } else { BounceKind::Soft }));
    }
    let received = Timestamp::from_unix_seconds(1_764_300_000).unwrap();
    let ctx = NormalizeContext { workspace: "ws", received_at: received };
    let time = Timestamp::from_unix_seconds(1_764_300_000 + seconds).unwrap();
    ctx.event(
        EventType::message(Channel::EMAIL, status),
        Some(time),
        &format!("k{index}"),
        data,
        &tidings_core::providers::Raw::Borrowed("{}"),
    )
    .event
}

fn events() -> impl Strategy<Value = Vec<CanonicalEvent>> {
    prop::collection::vec((0..STATUSES.len(), 0i64..50, any::<bool>()), 1..12).prop_map(|specs| {
        specs.into_iter().enumerate().map(|(i, (s, t, hard))| event(STATUSES[s], t, hard, i)).collect()
    })
}

fn fold_state(events: &[CanonicalEvent]) -> MessageState {
    let mut state = MessageState::new(&events[0]).unwrap();
    for e in &events[1..] {
        state.apply(e);
    }
    state
}

fn fold_suppression(events: &[CanonicalEvent]) -> Option<(bool, suppression::Reason)> {
    let mut entry: Option<Suppression> = None;
    for e in events {
        if let Some(change) = suppression::change_for(e)
            && let Some(next) = suppression::apply(entry.as_ref(), e, &change)
        {
            entry = Some(next);
        }
    }
    // A never-active tombstone and no entry mean the same: not suppressed.
    entry.filter(|e| e.active).map(|e| (e.active, e.reason))
}

proptest! {
    #[test]
    fn message_state_is_the_same_in_any_order(events in events(), seed in any::<u64>()) {
        let mut shuffled = events.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(fold_state(&events), fold_state(&shuffled));
        prop_assert_eq!(fold_suppression(&events), fold_suppression(&shuffled));
    }
}

#[test]
fn a_bounce_after_an_unsubscribe_cannot_be_lifted_by_a_resubscribe() {
    let seq = [
        event(Status::Unsubscribed, 1, false, 0),
        event(Status::Bounced, 2, true, 1),
        event(Status::Resubscribed, 3, false, 2),
    ];
    assert_eq!(fold_suppression(&seq), Some((true, suppression::Reason::HardBounce)));
}

#[test]
fn terminal_failures_stick_and_counts_stay_exact() {
    let seq = [
        event(Status::Delivered, 1, false, 0),
        event(Status::Bounced, 2, true, 1),
        event(Status::Opened, 3, false, 2),
        event(Status::Opened, 4, false, 3),
    ];
    let state = fold_state(&seq);
    assert_eq!(state.status, Status::Bounced);
    assert_eq!(state.progress, Status::Opened);
    assert_eq!(state.opens, 2);
    // A soft bounce is a deferral, not a failure.
    let soft = fold_state(&[event(Status::Sent, 1, false, 0), event(Status::Bounced, 2, false, 1)]);
    assert_eq!((soft.status, soft.failure), (Status::Deferred, None));
}
