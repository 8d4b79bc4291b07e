//! The conformance suite: what every [`Store`] must do, written once and run against each
//! adapter family (SQLite here; DynamoDB on moto in the AWS adapter's tests), so local and AWS
//! behave the same. Each case uses its own workspace, so one store can run all of them.

pub mod lambda_events;
pub mod privacy;
pub mod queues;

use tidings_core::auth::{NonceCheck, ReplayClaim};
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use tidings_core::ports::{ApiKey, EventQuery, QueuedEvent, Recorded, Store};
use tidings_core::providers::{NormalizeContext, ProviderId};
use tidings_core::source::Source;
use tidings_core::subscription::{Format, SigningSecret, Subscription};
use tidings_core::suppression::Reason;
use tidings_core::timestamp::Timestamp;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_764_300_000 + seconds).unwrap()
}

/// `count` delivered events of `workspace`, each about its own message (`<prefix><i>`), one
/// second apart.
pub fn delivered_events(workspace: &str, count: usize, prefix: &str) -> Vec<QueuedEvent> {
    (0..count)
        .map(|i| {
            let message = format!("{prefix}{i}");
            event(workspace, Status::Delivered, &message, "a@example.com", i as i64, &message)
        })
        .collect()
}

/// A canonical event as a provider would produce it.
pub fn event(workspace: &str, status: Status, message: &str, recipient: &str, seconds: i64, key: &str) -> QueuedEvent {
    let mut data = EventData::new(Some(Channel::EMAIL), "sendgrid", status.as_str());
    data.message_id = Some(message.into());
    data.recipient = Some(recipient.into());
    if status == Status::Opened {
        data.privacy_open = Some(key.contains("privacy"));
    }
    let ctx = NormalizeContext { workspace, received_at: at(seconds) };
    let raw = tidings_core::providers::Raw::from(format!("{{\"key\":\"{key}\"}}"));
    let normalized = ctx.event(EventType::message(Channel::EMAIL, status), Some(at(seconds)), key, data, &raw);
    QueuedEvent { event: normalized.event, raw: raw.to_string(), source: "src_test".into() }
}

pub fn hard_bounce(workspace: &str, message: &str, recipient: &str, seconds: i64, key: &str) -> QueuedEvent {
    let mut queued = event(workspace, Status::Bounced, message, recipient, seconds, key);
    queued.event.data.bounce = Some(Bounce::of_kind(BounceKind::Hard));
    queued
}

pub(crate) fn expiry() -> tidings_core::ports::Expiry {
    at(90 * 86_400).into()
}

async fn record<S: Store>(store: &S, queued: &QueuedEvent) -> Recorded {
    store.record(queued, expiry()).await.unwrap()
}

/// An event is stored once; a redelivery is a duplicate that says whether fan-out finished.
pub async fn records_each_event_once<S: Store>(store: &S) {
    let ws = "ws_once";
    let e = event(ws, Status::Delivered, "m1", "a@example.com", 10, "k1");
    let message = e.event.data.message_id.as_deref();
    assert!(!store.has_event(ws, message, &e.event.id).await.unwrap(), "not stored yet");
    assert_eq!(record(store, &e).await, Recorded::Stored);
    assert!(store.has_event(ws, message, &e.event.id).await.unwrap(), "stored");
    assert!(!store.has_event("ws_other", message, &e.event.id).await.unwrap(), "another workspace's");
    assert_eq!(record(store, &e).await, Recorded::Duplicate);
    let page = store.events(&EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() }).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0], e.event);
    assert_eq!(
        store.raw(ws, e.event.data.message_id.as_deref(), &e.event.id).await.unwrap().as_deref(),
        Some(e.raw.as_str())
    );
    let states = store.message_states(ws, "m1").await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].events, 1, "a duplicate must not count twice");
}

/// A batch recorded together: each event once, an event already stored a duplicate, the same
/// message's events all folded into its state, a hard bounce's suppression in place.
pub async fn records_a_batch_each_event_once<S: Store>(store: &S) {
    let ws = "ws_batch";
    let earlier = event(ws, Status::Sent, "m1", "a@example.com", 1, "k1");
    assert_eq!(record(store, &earlier).await, Recorded::Stored);
    let batch = [
        earlier.clone(),
        event(ws, Status::Delivered, "m1", "a@example.com", 2, "k2"),
        event(ws, Status::Opened, "m1", "a@example.com", 3, "k3"),
        hard_bounce(ws, "m2", "b@example.com", 4, "k4"),
    ];
    let expires = expiry();
    let items: Vec<(&QueuedEvent, tidings_core::ports::Expiry)> = batch.iter().map(|e| (e, expires)).collect();
    let recorded: Vec<Recorded> = store.record_batch(&items).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(recorded, [Recorded::Duplicate, Recorded::Stored, Recorded::Stored, Recorded::Stored]);
    let again: Vec<Recorded> = store.record_batch(&items).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(again, [Recorded::Duplicate; 4], "the batch again: all duplicates");
    let page = store.events(&EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() }).await.unwrap();
    assert_eq!(page.events.len(), 4);
    let state = &store.message_states(ws, "m1").await.unwrap()[0];
    assert_eq!((state.events, state.status), (3, Status::Opened));
    let suppressed: Vec<String> = store.suppressions(ws).await.unwrap().into_iter().map(|s| s.recipient).collect();
    assert_eq!(suppressed, ["b@example.com"]);
    let entry = store.suppression(ws, "b@example.com").await.unwrap().expect("found by its recipient");
    assert_eq!((entry.recipient.as_str(), entry.active), ("b@example.com", true));
    assert_eq!(store.suppression(ws, "a@example.com").await.unwrap(), None);
    assert_eq!(store.suppression("ws_batch_other", "b@example.com").await.unwrap(), None);
}

/// The message state follows the lattice whatever order events arrive in.
pub async fn message_state_never_moves_backwards<S: Store>(store: &S) {
    let ws = "ws_state";
    let r = "b@example.com";
    for e in [
        event(ws, Status::Opened, "m2", r, 300, "open-1"),
        event(ws, Status::Delivered, "m2", r, 20, "delivered"),
        event(ws, Status::Sent, "m2", r, 10, "sent"),
        event(ws, Status::Opened, "m2", r, 400, "open-2-privacy"),
        event(ws, Status::Clicked, "m2", r, 500, "click-1"),
        event(ws, Status::Opened, "m2", r, 300, "open-1"),
    ] {
        record(store, &e).await;
    }
    let state = &store.message_states(ws, "m2").await.unwrap()[0];
    assert_eq!(state.status, Status::Clicked);
    assert_eq!((state.events, state.opens, state.privacy_opens, state.clicks), (5, 2, 1, 1));
    assert_eq!(state.first_event_at, at(10));
    assert_eq!(state.last_event_at, at(500));
    assert_eq!(state.first_opened_at, Some(at(300)));

    // A complaint is terminal: later engagement does not clear it.
    record(store, &event(ws, Status::Complained, "m2", r, 600, "complaint")).await;
    record(store, &event(ws, Status::Clicked, "m2", r, 700, "click-2")).await;
    let state = &store.message_states(ws, "m2").await.unwrap()[0];
    assert_eq!(state.status, Status::Complained);
    assert_eq!(state.progress, Status::Clicked);
    assert_eq!(state.clicks, 2);
}

/// Suppressions: added by hard bounces, complaints and unsubscribes; lifted only by a newer
/// resubscribe of an unsubscribe, or by hand.
pub async fn suppressions_follow_the_newest_event<S: Store>(store: &S) {
    let ws = "ws_supp";
    record(store, &hard_bounce(ws, "m3", "gone@example.com", 10, "hb")).await;
    record(store, &event(ws, Status::Bounced, "m3", "soft@example.com", 10, "soft")).await;
    record(store, &event(ws, Status::Complained, "m3", "angry@example.com", 10, "c")).await;
    record(store, &event(ws, Status::Resubscribed, "m3", "angry@example.com", 20, "re-angry")).await;
    // Unsubscribe at 30, resubscribe at 40, delivered in the wrong order.
    record(store, &event(ws, Status::Resubscribed, "m3", "fickle@example.com", 40, "re")).await;
    record(store, &event(ws, Status::Unsubscribed, "m3", "fickle@example.com", 30, "un")).await;
    record(store, &event(ws, Status::Unsubscribed, "m3", "leaver@example.com", 30, "un2")).await;
    record(store, &event(ws, Status::Resubscribed, "m3", "leaver@example.com", 40, "re2")).await;
    record(store, &event(ws, Status::Unsubscribed, "m3", "quiet@example.com", 50, "un3")).await;

    let list = store.suppressions(ws).await.unwrap();
    let entries: Vec<(&str, Reason)> = list.iter().map(|s| (s.recipient.as_str(), s.reason)).collect();
    assert_eq!(
        entries,
        [
            ("angry@example.com", Reason::Complaint),
            ("gone@example.com", Reason::HardBounce),
            ("quiet@example.com", Reason::Unsubscribe)
        ],
        "soft bounces never suppress; resubscribes lift only unsubscribes, and only newer ones"
    );
    assert!(store.remove_suppression(ws, "quiet@example.com").await.unwrap());
    assert!(!store.remove_suppression(ws, "quiet@example.com").await.unwrap());
    assert!(
        !store.remove_suppression("ws_other", "gone@example.com").await.unwrap(),
        "another workspace cannot lift it"
    );
    assert_eq!(store.suppressions(ws).await.unwrap().len(), 2);
}

/// Queries: a message's timeline, a recipient's events, type patterns, time ranges, pages.
pub async fn queries_answer_the_questions_users_ask<S: Store>(store: &S) {
    let ws = "ws_query";
    for i in 0..25 {
        let status = if i % 5 == 0 { Status::Opened } else { Status::Delivered };
        record(
            store,
            &event(ws, status, &format!("m{}", i % 3), &format!("r{}@example.com", i % 2), i, &format!("q{i}")),
        )
        .await;
    }
    record(store, &event("ws_other", Status::Delivered, "m0", "r0@example.com", 5, "other")).await;

    let query = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery { workspace: ws.into(), limit: 100, ..EventQuery::default() };
        f(&mut q);
        q
    };
    let all = store.events(&query(|_| {})).await.unwrap();
    assert_eq!(all.events.len(), 25, "another workspace's event must not appear");
    assert!(all.events.windows(2).all(|w| w[0].time >= w[1].time), "newest first");

    let timeline = store.events(&query(|q| q.message_id = Some("m1".into()))).await.unwrap();
    assert_eq!(timeline.events.len(), 8);
    assert!(timeline.events.iter().all(|e| e.data.message_id.as_deref() == Some("m1")));

    let recipient = store.events(&query(|q| q.recipient = Some("r1@example.com".into()))).await.unwrap();
    assert_eq!(recipient.events.len(), 12);

    let opens = store.events(&query(|q| q.type_pattern = Some("*.opened".into()))).await.unwrap();
    assert_eq!(opens.events.len(), 5);

    let window = store.events(&query(|q| (q.since, q.until) = (Some(at(10)), Some(at(14))))).await.unwrap();
    assert_eq!(window.events.len(), 5);

    // Pages of 7 walk all 25 events exactly once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .events(&EventQuery { workspace: ws.into(), limit: 7, cursor: cursor.clone(), ..EventQuery::default() })
            .await
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (25, 25));
}

/// Sources are found by id, listed per workspace, and removable only by their workspace.
pub async fn sources_belong_to_their_workspace<S: Store>(store: &S) {
    let source = Source {
        id: "src_conformance".into(),
        workspace: "ws_src".into(),
        provider: ProviderId::Postmark,
        description: "test".into(),
        secrets: vec!["s3cret".into()],
        public_url: None,
        allowed_topics: vec![],
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: at(0),
    };
    store.put_source(&source).await.unwrap();
    assert_eq!(store.source("src_conformance").await.unwrap(), Some(source.clone()));
    assert_eq!(store.sources("ws_src").await.unwrap(), vec![source.clone()]);
    assert!(store.sources("ws_intruder").await.unwrap().is_empty());
    assert!(!store.delete_source("ws_intruder", "src_conformance").await.unwrap());
    assert!(store.delete_source("ws_src", "src_conformance").await.unwrap());
    assert_eq!(store.source("src_conformance").await.unwrap(), None);
}

/// Nonces: first use fresh, the same request again a retry, another body a replay.
pub async fn nonces_are_single_use<S: Store>(store: &S) {
    let claim = ReplayClaim {
        provider: ProviderId::Mailgun,
        nonce: "tok-conformance".into(),
        fingerprint: [7; 32],
        remember_until: Timestamp::now(),
    };
    let later = ReplayClaim {
        remember_until: Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 3600).unwrap(),
        ..claim
    };
    assert_eq!(store.claim_nonce(&later).await.unwrap(), NonceCheck::Fresh);
    assert_eq!(store.claim_nonce(&later).await.unwrap(), NonceCheck::SameRequest);
    let forged = ReplayClaim { fingerprint: [8; 32], ..later.clone() };
    assert_eq!(store.claim_nonce(&forged).await.unwrap(), NonceCheck::Reused);
}

/// API keys are found by hash and carry their workspace.
pub async fn api_keys_are_found_by_hash<S: Store>(store: &S) {
    let key = ApiKey { id: "key_1".into(), workspace: "ws_keys".into(), hash: "ab".repeat(32), created_at: at(0) };
    store.put_api_key(&key).await.unwrap();
    assert_eq!(store.api_key(&key.hash).await.unwrap(), Some(key));
    assert_eq!(store.api_key(&"cd".repeat(32)).await.unwrap(), None);
}

/// An enabled subscription of `workspace` delivering events of `types` to `url`, signed with a
/// test secret.
pub fn subscription_to(workspace: &str, id: &str, url: &str, types: &[&str]) -> Subscription {
    let now = Timestamp::now();
    Subscription {
        id: id.into(),
        workspace: workspace.into(),
        url: url.into(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        providers: vec![],
        sources: vec![],
        filter: None,
        format: Format::Cloudevents,
        anonymous_id: Default::default(),
        secrets: vec![SigningSecret { secret: "whsec_dGVzdA==".into(), created_at: now, expires_at: None }],
        headers: vec![],
        description: String::new(),
        enabled: true,
        version: 0,
        disabled_reason: None,
        failing_since: None,
        pacing: Default::default(),
        circuit: Default::default(),
        created_at: now,
    }
}

fn subscription(workspace: &str, id: &str) -> Subscription {
    Subscription {
        secrets: vec![SigningSecret { secret: "whsec_dGVzdA==".into(), created_at: at(0), expires_at: None }],
        headers: vec![("Authorization".into(), "Basic d3JpdGU6a2V5".into())],
        description: "test".into(),
        created_at: at(0),
        ..subscription_to(workspace, id, "https://hooks.example.com/tidings", &["email.*"])
    }
}

/// Subscriptions are kept per workspace; updates replace them.
pub async fn subscriptions_belong_to_their_workspace<S: Store>(store: &S) {
    let mut sub = subscription("ws_subs", "sub_a");
    store.put_subscription(&sub).await.unwrap();
    store.put_subscription(&subscription("ws_subs", "sub_b")).await.unwrap();
    store.put_subscription(&subscription("ws_subs_other", "sub_c")).await.unwrap();
    assert_eq!(store.subscription("ws_subs", "sub_a").await.unwrap(), Some(sub.clone()));
    assert_eq!(store.subscription("ws_subs_other", "sub_a").await.unwrap(), None, "not visible from another workspace");
    let ids: Vec<String> = store.subscriptions("ws_subs").await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["sub_a", "sub_b"]);
    sub.enabled = false;
    sub.disabled_reason = Some("410 Gone".into());
    store.put_subscription(&sub).await.unwrap();
    assert_eq!(
        store.subscription("ws_subs", "sub_a").await.unwrap().unwrap().disabled_reason.as_deref(),
        Some("410 Gone")
    );
}

/// A change to a subscription is written only over the version it was made on: a writer that
/// read before another's change (a delivery's bookkeeping read before an operator's disable)
/// loses, and `pipeline::modify_subscription` redoes its change on the fresh subscription, so neither
/// change is undone.
pub async fn subscription_changes_never_undo_one_another<S: Store>(store: &S) {
    let created = subscription("ws_versions", "sub_v");
    store.put_subscription(&created).await.unwrap();
    let delivery_read = store.subscription("ws_versions", "sub_v").await.unwrap().unwrap();
    let mut operator = store.subscription("ws_versions", "sub_v").await.unwrap().unwrap();
    operator.disable("disabled by an operator");
    assert!(store.update_subscription(&operator).await.unwrap(), "the first writer wins");
    let mut stale = delivery_read.clone();
    stale.failing_since = Some(at(100));
    assert!(!store.update_subscription(&stale).await.unwrap(), "a write over a stale read is refused");
    let stored = store.subscription("ws_versions", "sub_v").await.unwrap().unwrap();
    assert!(!stored.enabled, "the operator's disable stands");
    assert_eq!(stored.version, 1);

    // Redone on the fresh subscription, the delivery's change keeps the operator's.
    let changed = tidings_core::pipeline::modify_subscription(store, "ws_versions", "sub_v", |s| {
        s.failing_since.get_or_insert(at(100));
        true
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((changed.enabled, changed.failing_since, changed.version), (false, Some(at(100)), 2));
    assert_eq!(store.subscription("ws_versions", "sub_v").await.unwrap(), Some(changed.clone()));

    // A rotation and a concurrent enable both stand.
    let before_rotation = store.subscription("ws_versions", "sub_v").await.unwrap().unwrap();
    let mut rotated = before_rotation.clone();
    rotated.rotate("whsec_bmV3LXNlY3JldC1mb3ItdGhlLXRlc3Q=".into(), at(200), 3600);
    assert!(store.update_subscription(&rotated).await.unwrap());
    let enabled = tidings_core::pipeline::modify_subscription(store, "ws_versions", "sub_v", |s| {
        s.enable();
        true
    })
    .await
    .unwrap()
    .unwrap();
    assert!(enabled.enabled);
    assert!(
        enabled.secrets.iter().any(|s| s.secret == "whsec_bmV3LXNlY3JldC1mb3ItdGhlLXRlc3Q="),
        "the new secret is kept"
    );
    // Nothing to update, or a subscription that is gone.
    assert!(!store.update_subscription(&subscription("ws_versions", "sub_missing")).await.unwrap());
    assert_eq!(
        tidings_core::pipeline::modify_subscription(store, "ws_versions", "sub_missing", |_| true).await.unwrap(),
        None
    );
}

/// The attempt log returns a subscription's attempts newest first, whether they were written
/// one at a time or together (a fan-out batch: several subscriptions' attempts in one call).
pub async fn attempts_are_logged_newest_first<S: Store>(store: &S) {
    let attempt = |subscription: &str, event: u32, number: u32, seconds: i64, outcome: &str| AttemptRecord {
        workspace: "ws_att".into(),
        subscription: subscription.into(),
        event_id: format!("evt_{event:032}"),
        attempt: number,
        at: at(seconds),
        outcome: outcome.into(),
        status: (outcome == "status").then_some(500),
        latency_ms: 12,
        detail: String::new(),
        next_attempt_at: None,
    };
    for (i, outcome) in ["status", "timeout", "delivered"].iter().enumerate() {
        store.record_attempts(&[attempt("sub_a", 1, i as u32 + 1, i as i64 * 60, outcome)]).await.unwrap();
    }
    let log = store.attempts("ws_att", "sub_a", 10).await.unwrap();
    assert_eq!(log.iter().map(|a| a.attempt).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(store.attempts("ws_att", "sub_a", 1).await.unwrap().len(), 1);
    assert!(store.attempts("ws_other", "sub_a", 10).await.unwrap().is_empty());

    // A batch: events 2, 3 and 4 to sub_b and event 2 to sub_c, all at one moment.
    let batch = [
        attempt("sub_b", 2, 1, 600, "delivered"),
        attempt("sub_c", 2, 1, 600, "status"),
        attempt("sub_b", 3, 1, 600, "delivered"),
        attempt("sub_b", 4, 2, 600, "timeout"),
    ];
    store.record_attempts(&batch).await.unwrap();
    store.record_attempts(&[attempt("sub_b", 5, 1, 900, "delivered")]).await.unwrap();
    let log = store.attempts("ws_att", "sub_b", 10).await.unwrap();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(log[0].event_id, format!("evt_{:032}", 5), "the newest first");
    let mut events: Vec<&str> = log[1..].iter().map(|a| a.event_id.as_str()).collect();
    events.sort_unstable();
    assert_eq!(events, [format!("evt_{:032}", 2), format!("evt_{:032}", 3), format!("evt_{:032}", 4)]);
    assert_eq!(store.attempts("ws_att", "sub_b", 2).await.unwrap().len(), 2, "a limit inside a batch");
    let other = store.attempts("ws_att", "sub_c", 10).await.unwrap();
    assert_eq!((other.len(), other[0].outcome.as_str()), (1, "status"), "each subscription its own");
    assert_eq!(store.attempts("ws_att", "sub_a", 10).await.unwrap().len(), 3, "the earlier log unchanged");
}

/// A delivery is claimed by one queue message at a time: a copy of its task finds it held until
/// the lease ends, the holder itself (received again, or retrying its claim) takes it again, and
/// once it is marked made every claim finds it delivered. Claims of other subscriptions,
/// workspaces and replays are their own.
pub async fn deliveries_are_claimed_once_and_marked<S: Store>(store: &S) {
    use tidings_core::ports::{Claim, DeliveryClaim};
    let key = "evt_00000000000000000000000000000002";
    let claim = |workspace, subscription, key, holder, lease_end| DeliveryClaim {
        workspace,
        subscription,
        key,
        holder,
        lease_until: at(lease_end),
    };
    let first = claim("ws_dlv", "sub_a", key, "msg-1", 300);
    assert_eq!(store.claim_delivery(&first, at(0)).await.unwrap(), Claim::Taken);
    assert_eq!(store.claim_delivery(&first, at(1)).await.unwrap(), Claim::Taken, "its holder again");
    let copy = claim("ws_dlv", "sub_a", key, "msg-2", 310);
    assert_eq!(store.claim_delivery(&copy, at(10)).await.unwrap(), Claim::Held, "a copy, within the lease");
    assert_eq!(store.claim_delivery(&copy, at(301)).await.unwrap(), Claim::Taken, "a copy, after the lease");
    assert_eq!(store.claim_delivery(&first, at(302)).await.unwrap(), Claim::Held, "the first, now the copy holds it");
    let replay = format!("{key}#rp1");
    for other in [
        claim("ws_dlv", "sub_b", key, "msg-3", 300),
        claim("ws_other", "sub_a", key, "msg-4", 300),
        claim("ws_dlv", "sub_a", &replay, "msg-5", 300),
    ] {
        assert_eq!(store.claim_delivery(&other, at(20)).await.unwrap(), Claim::Taken, "{other:?}");
    }

    store.mark_delivered("ws_dlv", "sub_a", key, at(303)).await.unwrap();
    store.mark_delivered("ws_dlv", "sub_a", key, at(360)).await.unwrap();
    for (holder, now) in [("msg-2", 304), ("msg-1", 305), ("msg-9", 10_000)] {
        let late = claim("ws_dlv", "sub_a", key, holder, now + 300);
        assert_eq!(store.claim_delivery(&late, at(now)).await.unwrap(), Claim::Delivered, "{holder} at {now}");
    }
    let other = claim("ws_dlv", "sub_b", key, "msg-6", 400);
    assert_eq!(store.claim_delivery(&other, at(30)).await.unwrap(), Claim::Held, "sub_b still held by msg-3");
}

/// Runs every case against `store`.
/// A listing whose type filter matches little reads at most the store's budget of items per
/// page, whatever the history holds: each page returns what it found with a cursor, and the
/// cursors walk the history to its end, every matching event exactly once, newest first.
/// `budget` is the store's (a small one, so the case stores few events).
pub async fn filtered_listings_do_bounded_work_per_page<S: Store>(store: &S, budget: usize) {
    let ws = "ws_budget";
    let total = budget * 2 + budget / 2 + 1;
    let mut opened = Vec::new();
    for i in 0..total {
        // Every fifth event is an open, spread over several days.
        let status = if i % 5 == 0 { Status::Opened } else { Status::Delivered };
        let e = event(ws, status, &format!("m{i}"), "a@example.com", i as i64 * 3_600, &format!("b{i}"));
        record(store, &e).await;
        if status == Status::Opened {
            opened.push(e.event);
        }
    }
    opened.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
    for (pattern, expected) in [("zzz.nomatch", Vec::new()), ("email.opened", opened)] {
        let mut found = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let query = EventQuery {
                workspace: ws.into(),
                type_pattern: Some(pattern.into()),
                limit: 1000,
                cursor: cursor.take(),
                ..EventQuery::default()
            };
            let page = store.events(&query).await.unwrap();
            pages += 1;
            assert!(pages <= total / budget + 3, "{pattern}: paging must end");
            found.extend(page.events);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(pages >= 3, "{pattern}: {total} events under a budget of {budget} take several pages, took {pages}");
        assert_eq!(found, expected, "{pattern}: each matching event once, newest first");
    }
}

pub async fn run_all<S: Store>(store: &S) {
    records_each_event_once(store).await;
    records_a_batch_each_event_once(store).await;
    message_state_never_moves_backwards(store).await;
    suppressions_follow_the_newest_event(store).await;
    queries_answer_the_questions_users_ask(store).await;
    sources_belong_to_their_workspace(store).await;
    nonces_are_single_use(store).await;
    api_keys_are_found_by_hash(store).await;
    subscriptions_belong_to_their_workspace(store).await;
    subscription_changes_never_undo_one_another(store).await;
    attempts_are_logged_newest_first(store).await;
    deliveries_are_claimed_once_and_marked(store).await;
    counts_each_stored_event_once(store).await;
    deliverability_settings_change_over_the_version_read(store).await;
    audit_entries_page_newest_first(store).await;
    privacy_settings_change_over_the_version_read(store).await;
    provider_records_kept_for_less_are_gone_before_their_events(store).await;
    erase_keys_are_made_once_and_erasures_remembered(store).await;
    paces_are_written_over_the_version_read(store).await;
}

/// A subscription's pace is shared by every fan-out instance: a write over a stale version is
/// refused, so two instances never hand out the same turn, and concurrent turns all land.
pub async fn paces_are_written_over_the_version_read<S: Store>(store: &S) {
    use tidings_core::pacing::{PaceState, Pacing, Turn};
    let (ws, sub) = ("ws_pace", "sub_pace");
    assert_eq!(store.pace(ws, sub).await.unwrap(), (PaceState::default(), 0));
    let mut first = PaceState::default();
    first.in_flight.insert("a".into(), 1);
    assert!(store.put_pace(ws, sub, &first, 0).await.unwrap());
    assert!(!store.put_pace(ws, sub, &first, 0).await.unwrap(), "a second first write is refused");
    assert_eq!(store.pace(ws, sub).await.unwrap(), (first.clone(), 1));
    assert!(!store.put_pace(ws, sub, &PaceState::default(), 5).await.unwrap(), "a stale version is refused");
    assert_eq!(store.pace("ws_other", sub).await.unwrap().1, 0, "paces belong to their workspace");
    // Twelve turns taken at once at 10 per second: each a different start, 100 ms apart.
    let pacing = Pacing { rate_limit: Some(10), ..Pacing::default() };
    let now = Timestamp::now();
    let turns = futures_util::future::join_all((0..12).map(|i| {
        let pacing = pacing.clone();
        async move {
            tidings_core::pipeline::modify_pace(store, ws, "sub_turns", |pace| {
                pace.take(&pacing, &format!("d{i}"), now)
            })
            .await
            .unwrap()
        }
    }))
    .await;
    let mut waits: Vec<u128> = turns
        .iter()
        .map(|turn| match turn {
            Turn::Go(wait) => wait.as_millis(),
            Turn::Later(_) => panic!("within five seconds"),
        })
        .collect();
    waits.sort_unstable();
    assert_eq!(waits, (0..12).map(|i| i * 100).collect::<Vec<u128>>());
}

pub async fn privacy_settings_change_over_the_version_read<S: Store>(store: &S) {
    use tidings_core::privacy::PrivacySettings;
    let ws = "ws_privacy";
    assert_eq!(store.privacy_settings(ws).await.unwrap(), None);
    let wanted = PrivacySettings { retention_days: Some(30), redact_ip: true, ..PrivacySettings::default() };
    assert!(store.put_privacy_settings(ws, &wanted).await.unwrap());
    let read = store.privacy_settings(ws).await.unwrap().unwrap();
    assert_eq!(read, PrivacySettings { version: 1, ..wanted.clone() });
    assert!(!store.put_privacy_settings(ws, &wanted).await.unwrap(), "over version 0 again: refused");
    let changed = PrivacySettings { raw_retention_days: Some(7), ..read.clone() };
    assert!(store.put_privacy_settings(ws, &changed).await.unwrap());
    assert!(!store.put_privacy_settings(ws, &changed).await.unwrap(), "over the version it replaced: refused");
    assert_eq!(store.privacy_settings(ws).await.unwrap().unwrap().raw_retention_days, Some(7));
    assert_eq!(store.privacy_settings("ws_privacy_other").await.unwrap(), None);
    // Read with the rest of the workspace's settings, as the processor does.
    let thresholds = tidings_core::deliverability::Settings { min_volume: 7, ..Default::default() };
    assert!(store.put_deliverability_settings(ws, &thresholds).await.unwrap());
    let together = store.workspace_settings(ws).await.unwrap();
    assert_eq!(together.privacy.map(|p| (p.raw_retention_days, p.version)), Some((Some(7), 2)));
    assert_eq!(together.deliverability.map(|d| (d.min_volume, d.version)), Some((7, 1)));
    assert!(together.erase_key.is_none());
}

/// A provider record whose retention ended before its event's is gone (an empty record) while
/// the event stays; one kept as long as its event is there.
pub async fn provider_records_kept_for_less_are_gone_before_their_events<S: Store>(store: &S) {
    use tidings_core::ports::Expiry;
    let ws = "ws_raw_retention";
    let now = Timestamp::now().unix_seconds();
    let later = Timestamp::from_unix_seconds(now + 86_400).unwrap();
    let past = Timestamp::from_unix_seconds(now - 60).unwrap();
    let gone = event(ws, Status::Delivered, "m1", "a@example.com", 1, "k-gone");
    let kept = event(ws, Status::Delivered, "m2", "a@example.com", 2, "k-kept");
    let short = Timestamp::from_unix_seconds(now + 3_600).unwrap();
    let apart = event(ws, Status::Delivered, "m3", "a@example.com", 3, "k-apart");
    store.record(&gone, Expiry { event: later, raw: past }).await.unwrap();
    store.record(&kept, later.into()).await.unwrap();
    store.record(&apart, Expiry { event: later, raw: short }).await.unwrap();
    let raw = |q: &QueuedEvent| {
        let q = q.clone();
        async move { store.raw(ws, q.event.data.message_id.as_deref(), &q.event.id).await.unwrap() }
    };
    assert_eq!(raw(&gone).await.as_deref(), Some(""), "the record's retention ended");
    assert_eq!(raw(&kept).await.as_deref(), Some(kept.raw.as_str()));
    assert_eq!(raw(&apart).await.as_deref(), Some(apart.raw.as_str()), "kept apart, still within its retention");
    let page = store.events(&EventQuery { workspace: ws.into(), limit: 10, ..EventQuery::default() }).await.unwrap();
    assert_eq!(page.events.len(), 3, "the events stay");
}

/// A workspace's erase key is made once, by whoever asks first, and an erasure is remembered by
/// hash (and moves the key's latest erasure forward).
pub async fn erase_keys_are_made_once_and_erasures_remembered<S: Store>(store: &S) {
    let ws = "ws_erase_key";
    assert!(store.erase_key(ws, false).await.unwrap().is_none(), "none until asked for");
    let (a, b) = futures_util::join!(store.erase_key(ws, true), store.erase_key(ws, true));
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.hash("x@example.com"), b.hash("x@example.com"), "one key, whoever made it");
    assert_eq!(a.last_erasure, None);
    let hash = a.hash("x@example.com");
    assert_eq!(store.erasure(ws, &hash).await.unwrap(), None);
    let when = at(500);
    let erased = store.erase_recipient(ws, "x@example.com", &hash, when, 10).await.unwrap();
    assert_eq!((erased.events, erased.complete), (0, true));
    assert_eq!(store.erasure(ws, &hash).await.unwrap(), Some(when));
    assert_eq!(store.erase_key(ws, false).await.unwrap().unwrap().last_erasure, Some(when));
    let together = store.workspace_settings(ws).await.unwrap().erase_key.unwrap();
    assert_eq!((together.hash("x@example.com"), together.last_erasure), (hash.clone(), Some(when)));
    assert_eq!(store.erasure("ws_erase_key_other", &hash).await.unwrap(), None);
}

/// An email event to `recipient` received at `received` (Unix seconds), through the same
/// enrichment as a provider's (mailbox provider, bounce reason).
fn mail_event(workspace: &str, status: Status, recipient: &str, received: i64, key: &str) -> QueuedEvent {
    let mut data = EventData::new(Some(Channel::EMAIL), "ses", status.as_str());
    data.message_id = Some(format!("m-{key}"));
    data.recipient = Some(recipient.into());
    data.sending_domain = Some("news@mail.example.com".into());
    if status == Status::Bounced {
        let mut bounce = Bounce::of_kind(BounceKind::Hard);
        bounce.diagnostic = Some("smtp; 550 5.1.1 user unknown".into());
        data.bounce = Some(bounce);
    }
    let when = Timestamp::from_unix_seconds(received).unwrap();
    let ctx = NormalizeContext { workspace, received_at: when };
    let raw = tidings_core::providers::Raw::from(format!("{{\"key\":\"{key}\"}}"));
    let normalized = ctx.event(EventType::message(Channel::EMAIL, status), Some(when), key, data, &raw);
    QueuedEvent { event: normalized.event, raw: raw.to_string(), source: "src_ses".into() }
}

/// Every stored event is counted once, in both series, however often it is recorded; reports
/// group the counters by any dimension.
pub async fn counts_each_stored_event_once<S: Store>(store: &S) {
    use tidings_core::deliverability::counters::{self, Dimension, Series, hour_of};
    let ws = "ws_counts";
    let now = Timestamp::now().unix_seconds();
    let batch = [
        mail_event(ws, Status::Sent, "a@gmail.com", now, "c1"),
        mail_event(ws, Status::Delivered, "a@gmail.com", now, "c2"),
        mail_event(ws, Status::Bounced, "b@hotmail.co.uk", now, "c3"),
        mail_event(ws, Status::Delivered, "c@example.org", now, "c4"),
    ];
    let expires = expiry();
    let items: Vec<(&QueuedEvent, tidings_core::ports::Expiry)> = batch.iter().map(|e| (e, expires)).collect();
    for _ in 0..2 {
        for result in store.record_batch(&items).await {
            result.unwrap();
        }
    }
    store.record(&batch[0], expires).await.unwrap();
    let hour = hour_of(Timestamp::from_unix_seconds(now).unwrap());
    let sources = store.counters(ws, Series::Sources, hour, hour).await.unwrap();
    assert_eq!(sources.iter().map(|(_, n)| n).sum::<u64>(), 4, "each event counted once: {sources:?}");
    assert!(sources.iter().all(|(k, _)| k.source == "src_ses" && k.recipient_domain.is_empty()));
    let domains = store.counters(ws, Series::Domains, hour, hour).await.unwrap();
    assert_eq!(domains.iter().map(|(_, n)| n).sum::<u64>(), 4);
    let bounce = domains.iter().find(|(k, _)| k.event_type == "email.bounced").expect("the bounce is counted");
    assert_eq!(
        (bounce.0.recipient_domain.as_str(), bounce.0.mailbox_provider.as_str(), bounce.0.sending_domain.as_str()),
        ("hotmail.co.uk", "microsoft", "mail.example.com")
    );
    assert_eq!((bounce.0.bounce_kind.as_str(), bounce.0.bounce_reason.as_str()), ("hard", "mailbox_unknown"));
    assert!(store.counters(ws, Series::Sources, hour + 3600, hour + 7200).await.unwrap().is_empty(), "another hour");
    assert!(store.counters("ws_counts_other", Series::Sources, hour, hour).await.unwrap().is_empty());
    let at = Timestamp::from_unix_seconds(now).unwrap();
    let report = counters::report(Dimension::MailboxProvider, at, at, &sources);
    let values: Vec<&str> = report.rows.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(report.total.attempted, 3, "one sent, plus the delivery and bounce of the messages not reported sent");
    assert!(values.contains(&"gmail") && values.contains(&"microsoft") && values.contains(&"other"), "{values:?}");
    assert!(store.watched_workspaces().await.unwrap().iter().any(|w| w == ws), "a workspace with events is watched");
}

/// Settings and alarms change only over the version that was read.
pub async fn deliverability_settings_change_over_the_version_read<S: Store>(store: &S) {
    use tidings_core::deliverability::{Alarm, Settings};
    let ws = "ws_settings";
    assert_eq!(store.deliverability_settings(ws).await.unwrap(), None);
    let mut settings = Settings { bounce_rate: 0.02, ..Settings::default() };
    settings.mailbox_domains.insert("example.com".into(), "microsoft".into());
    assert!(store.put_deliverability_settings(ws, &settings).await.unwrap());
    assert!(!store.put_deliverability_settings(ws, &settings).await.unwrap(), "version 0 is gone");
    let read = store.deliverability_settings(ws).await.unwrap().unwrap();
    assert_eq!(read, Settings { version: 1, ..settings.clone() });
    assert!(store.put_deliverability_settings(ws, &Settings { spam_rate: 0.001, ..read.clone() }).await.unwrap());
    assert!(!store.put_deliverability_settings(ws, &read).await.unwrap(), "a stale write is refused");
    assert_eq!(store.deliverability_settings(ws).await.unwrap().unwrap().version, 2);

    let alarm = Alarm {
        workspace: ws.into(),
        key: "bounce_rate|provider|ses".into(),
        active: true,
        since: at(0),
        changes: 1,
        details: Default::default(),
        version: 0,
    };
    assert!(store.put_alarm(&alarm).await.unwrap());
    assert!(!store.put_alarm(&alarm).await.unwrap(), "a second writer of the same change loses");
    let stored = store.alarms(ws).await.unwrap();
    assert_eq!(stored, vec![Alarm { version: 1, ..alarm.clone() }]);
    assert!(store.alarms("ws_settings_other").await.unwrap().is_empty());
}

/// A replayed stream that crosses the bounce-rate threshold and recovers announces each change
/// once, however many watches run, and replaying the stream again changes nothing.
pub async fn thresholds_cross_and_recover_once<S, Q>(store: &S, queue: &Q)
where
    S: Store + Clone,
    Q: tidings_core::ports::Queue + tidings_core::ports::Consumer + Clone,
{
    use tidings_core::deliverability::Settings;
    use tidings_core::pipeline::{Processor, Watch};
    let ws = "ws_thresholds";
    let settings = Settings { min_volume: 100, ..Settings::default() };
    assert!(store.put_deliverability_settings(ws, &settings).await.unwrap());
    let now = Timestamp::now().unix_seconds();
    let processor = Processor::new(store.clone(), 90);
    let stream = |from: usize, to: usize, bounce_every: usize| -> Vec<String> {
        (from..to)
            .flat_map(|i| {
                let to = format!("r{i}@gmail.com");
                let key = format!("t{i}");
                let mut events = vec![mail_event(ws, Status::Sent, &to, now, &format!("{key}-sent"))];
                let last = if bounce_every > 0 && i % bounce_every == 0 { Status::Bounced } else { Status::Delivered };
                events.push(mail_event(ws, last, &to, now, &format!("{key}-{last}")));
                events
            })
            .map(|e| serde_json::to_string(&e).unwrap())
            .collect()
    };
    let process = |bodies: Vec<String>| {
        let processor = &processor;
        async move {
            for chunk in bodies.chunks(25) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for result in processor.process_batch(&refs).await {
                    result.unwrap();
                }
            }
        }
    };
    let watch = Watch::new(store.clone(), queue.clone());
    let when = Timestamp::from_unix_seconds(now + 60).unwrap();
    let announced = || drain_events(&processor, queue);
    let stored = |pattern: &'static str| async move {
        let query = EventQuery {
            workspace: ws.into(),
            type_pattern: Some(pattern.into()),
            limit: 100,
            ..EventQuery::default()
        };
        store.events(&query).await.unwrap().events
    };

    // 50 messages, 10 bounced: 20%, but under the minimum volume.
    let first = stream(0, 50, 5);
    process(first.clone()).await;
    watch.workspace(ws, when).await.unwrap();
    assert_eq!(announced().await.len(), 0, "fifty messages do not raise an alarm");

    // 150 more, 6 bounced: 16 of 200 (8%) over the 5% threshold.
    let second = stream(50, 200, 25);
    process(second.clone()).await;
    let (a, b) = futures_util::join!(watch.workspace(ws, when), watch.workspace(ws, when));
    a.unwrap();
    b.unwrap();
    watch.workspace(ws, when).await.unwrap();
    // Two watches at once may both announce the change: the same event id, stored once.
    assert!((1..=2).contains(&announced().await.len()));
    let crossed = stored("deliverability.*").await;
    assert_eq!(crossed.len(), 1, "one event for the crossing: {crossed:?}");
    assert_eq!(crossed[0].event_type.to_string(), "deliverability.threshold_crossed");
    assert_eq!(crossed[0].data.details["value"], "ses");
    assert_eq!(crossed[0].data.details["rate"], 0.08);
    let alarms = store.alarms(ws).await.unwrap();
    assert_eq!(alarms.len(), 1);
    assert!(alarms[0].active && alarms[0].changes == 1, "{alarms:?}");

    // The same stream replayed: duplicates, counted nowhere, nothing announced.
    process(first.into_iter().chain(second).collect()).await;
    watch.workspace(ws, when).await.unwrap();
    assert_eq!(announced().await.len(), 0, "a replay changes no rate");

    // 200 clean messages: 16 of 400 (4%), back under.
    process(stream(200, 400, 0)).await;
    let (a, b) = futures_util::join!(watch.workspace(ws, when), watch.workspace(ws, when));
    a.unwrap();
    b.unwrap();
    assert!(!announced().await.is_empty());
    let alarms = store.alarms(ws).await.unwrap();
    assert!(!alarms[0].active && alarms[0].changes == 2, "{alarms:?}");
    watch.workspace(ws, when).await.unwrap();
    assert_eq!(announced().await.len(), 0, "recovered once");
    let recovered = stored("deliverability.recovered").await;
    assert_eq!(recovered.len(), 1, "one event for the recovery: {recovered:?}");
    assert_eq!(stored("deliverability.threshold_crossed").await.len(), 1);
}

/// Drains the events queue through the processor (as the pipeline does), so what the watch
/// announced is stored, once each; answers the types of the messages drained, in order.
async fn drain_events<S, Q>(processor: &tidings_core::pipeline::Processor<S>, queue: &Q) -> Vec<String>
where
    S: Store,
    Q: tidings_core::ports::Consumer,
{
    use tidings_core::ports::{QueueName, Settlement};
    let mut types = Vec::new();
    loop {
        let batch = queue.receive(QueueName::Events, 10, 30).await.unwrap();
        if batch.is_empty() {
            return types;
        }
        let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
        for body in &bodies {
            let queued: QueuedEvent = serde_json::from_str(body).unwrap();
            types.push(queued.event.event_type.to_string());
        }
        for result in processor.process_batch(&bodies).await {
            result.unwrap();
        }
        let settled: Vec<_> = batch.into_iter().map(|m| (m, Settlement::Done)).collect();
        assert!(queue.settle(QueueName::Events, &settled).await.is_empty());
    }
}

/// A source with steady traffic that goes quiet is announced silent once, and resumed once
/// when its events come back.
pub async fn silent_sources_are_announced_once_each_way<S, Q>(store: &S, queue: &Q)
where
    S: Store + Clone,
    Q: tidings_core::ports::Queue + tidings_core::ports::Consumer + Clone,
{
    use tidings_core::pipeline::{Processor, Watch};
    let ws = "ws_silent";
    let source = Source {
        id: "src_ses".into(),
        workspace: ws.into(),
        provider: ProviderId::Ses,
        description: "steady".into(),
        secrets: vec![],
        public_url: None,
        allowed_topics: vec!["arn:aws:sns:us-east-1:123456789012:ses-events".into()],
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: at(0),
    };
    store.put_source(&source).await.unwrap();
    let processor = Processor::new(store.clone(), 90);
    let watch = Watch::new(store.clone(), queue.clone());
    let hour = tidings_core::deliverability::counters::hour_of(Timestamp::now());
    // Traffic in each of 30 hours, the last one 20 hours ago.
    let bodies: Vec<String> = (20..50)
        .map(|h| mail_event(ws, Status::Delivered, "a@gmail.com", hour - h * 3600 + 60, &format!("s{h}")))
        .map(|e| serde_json::to_string(&e).unwrap())
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    for result in processor.process_batch(&refs).await {
        result.unwrap();
    }
    let announce = || drain_events(&processor, queue);
    let now = Timestamp::now();
    watch.workspace(ws, now).await.unwrap();
    watch.workspace(ws, now).await.unwrap();
    assert_eq!(announce().await, ["source.silent"], "quiet for 19 hours after steady traffic");
    let query =
        EventQuery { workspace: ws.into(), type_pattern: Some("source.*".into()), limit: 10, ..EventQuery::default() };
    let silent = store.events(&query).await.unwrap().events;
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].data.details["source"], "src_ses");

    let back =
        serde_json::to_string(&mail_event(ws, Status::Delivered, "b@gmail.com", now.unix_seconds(), "back")).unwrap();
    processor.process_batch(&[back.as_str()]).await.pop().unwrap().unwrap();
    watch.workspace(ws, now).await.unwrap();
    watch.workspace(ws, now).await.unwrap();
    assert_eq!(announce().await, ["source.resumed"], "its next event resumes it, once");
    assert_eq!(store.events(&query).await.unwrap().events.len(), 2);
}

/// The audit log keeps each entry in its workspace, newest first, in pages.
pub async fn audit_entries_page_newest_first<S: Store>(store: &S) {
    use tidings_core::audit::AuditEntry;
    let ws = "ws_audit";
    let mut ids = Vec::new();
    for i in 0..5 {
        let entry = AuditEntry::new(ws, "key_a", format!("POST /api/sources #{i}"), None, 201, at(i));
        store.record_audit(&entry).await.unwrap();
        ids.push(entry.id);
    }
    store
        .record_audit(&AuditEntry::new("ws_audit_other", "key_b", "POST /api/sources".into(), None, 201, at(9)))
        .await
        .unwrap();
    let first = store.audit(ws, 3, None).await.unwrap();
    let newest: Vec<&str> = first.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(newest, [ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]);
    let rest = store.audit(ws, 3, first.next.as_deref()).await.unwrap();
    assert_eq!(rest.entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(rest.next, None);
    assert!(first.entries.iter().chain(&rest.entries).all(|e| e.workspace == ws && e.key == "key_a"));
}
