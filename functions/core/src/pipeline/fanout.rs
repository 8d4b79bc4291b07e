//! The fan-out: a delivery task in, a signed POST to the subscriber out, the attempt logged,
//! and the task retried on schedule, given up, or its subscription disabled.

use std::collections::HashMap;
use std::time::Duration;

use crate::delivery::{self, AttemptRecord, DeliveryTask, Next, Outcome};
use crate::destination::Destination;
use crate::event::{CanonicalEvent, EventData, EventType};
use crate::outbound::{self, Skipped};
use crate::pacing::{Gate, Turn};
use crate::ports::{
    Claim, DeliveryClaim, DeliveryStore, EventStore, Outgoing, PaceStore, PrivacyStore, Publication, Queue, QueueName,
    Sender, StoreError, SubscriptionStore,
};
use crate::privacy::{self, EraseKey};
use crate::providers::NormalizeContext;
use crate::subscription::Subscription;
use crate::timestamp::Timestamp;

use super::{OPERATIONAL_PROVIDER, event_message};

/// The longest delay SQS gives a message it is sent (`DelaySeconds`).
const MAX_DEFER_SECONDS: u32 = 900;

/// A deliveries-queue message as the fan-out takes it.
#[derive(Debug, Clone, Copy)]
pub struct QueuedTask<'a> {
    /// The queue's id for the message: the same each time it is received, another for a copy
    /// of its task. It holds the task's claim ([`Store::claim_delivery`]).
    pub id: &'a str,
    pub body: &'a str,
    /// How many times the message was received, this time included: the attempt number.
    pub receive_count: u32,
}

/// A deliveries-queue message as its task; one that is not one can never be delivered.
fn read_task(body: &str) -> Result<DeliveryTask, StoreError> {
    DeliveryTask::from_message(body)
        .map_err(|e| StoreError::malformed(format!("deliveries-queue message is not a delivery task: {e}")))
}

/// A delivery ready to be sent: its subscription, event, rendered body, claim key and attempt
/// number.
struct Ready {
    subscription: Subscription,
    event: CanonicalEvent,
    body: Vec<u8>,
    key: String,
    attempt: u32,
    /// When the attempt starts: later than the batch's time when it waited for its turn.
    now: Timestamp,
    /// It holds an in-flight slot of the subscription's pace, released after the answer.
    holding: bool,
    /// It is the probe of the subscription's open circuit.
    probe: bool,
}

/// The start of a subscriber's answer as the attempt log keeps it: at most 1 KiB, with the
/// event's recipient masked wherever the answer echoes it, so the log holds no address and an
/// erasure need not search it.
fn masked_detail(detail: &str, event: &CanonicalEvent) -> String {
    let detail: String = detail.chars().take(1024).collect();
    match event.data.recipient.as_deref() {
        Some(recipient) if !recipient.is_empty() => privacy::scrub(&detail, recipient, "[recipient]"),
        _ => detail,
    }
}

/// Delivers tasks from the deliveries queue: render, sign, send, log the attempt, and then
/// retry on schedule, give up, or disable the subscription.
pub struct Fanout<S, Q, D> {
    store: S,
    queue: Q,
    sender: D,
}

impl<S: SubscriptionStore + DeliveryStore + EventStore + PrivacyStore + PaceStore, Q: Queue, D: Sender>
    Fanout<S, Q, D>
{
    pub fn new(store: S, queue: Q, sender: D) -> Self {
        Fanout { store, queue, sender }
    }

    /// Handles one deliveries-queue message, at `now`.
    /// Returns the delay after which the same message should be handed over again (the caller
    /// extends its visibility by that much instead of deleting it: SQS
    /// `ChangeMessageVisibility`, at most 12 hours), or `None` when the task is finished.
    pub async fn deliver(&self, message: &QueuedTask<'_>, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let task = read_task(message.body)?;
        let subscription = self.store.subscription(&task.workspace, &task.subscription).await?;
        let erase_key = self.store.erase_key(&task.workspace, false).await?;
        let (result, attempted) = self.attempt(task, subscription, erase_key.as_ref(), message, now).await;
        self.log(attempted.into_iter().collect()).await;
        result
    }

    /// [`Fanout::deliver`] for a batch of deliveries-queue messages (the fan-out function's SQS
    /// batch, `tidings dev`'s): each subscription is read once, the deliveries go out
    /// concurrently (one slow subscriber does not hold up the others, and the function is billed
    /// for one wait, not ten), and the attempts are logged together, one item per subscription.
    /// One result per message, in order.
    pub async fn deliver_batch(
        &self,
        messages: &[QueuedTask<'_>],
        now: Timestamp,
    ) -> Vec<Result<Option<Duration>, StoreError>> {
        let tasks: Vec<Result<(DeliveryTask, &QueuedTask<'_>), StoreError>> =
            messages.iter().map(|message| read_task(message.body).map(|task| (task, message))).collect();
        let mut keys: Vec<(String, String)> =
            tasks.iter().flatten().map(|(t, _)| (t.workspace.clone(), t.subscription.clone())).collect();
        keys.sort_unstable();
        keys.dedup();
        let subscriptions: HashMap<(String, String), Result<Option<Subscription>, StoreError>> =
            futures_util::future::join_all(keys.into_iter().map(|key| async move {
                let read = self.store.subscription(&key.0, &key.1).await;
                (key, read)
            }))
            .await
            .into_iter()
            .collect();
        // Each workspace's erase key, once per batch: tasks queued before a recipient's
        // erasure are dropped.
        let mut workspaces: Vec<&str> = subscriptions.keys().map(|(workspace, _)| workspace.as_str()).collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        let erase_keys: HashMap<&str, Result<Option<EraseKey>, StoreError>> = futures_util::future::join_all(
            workspaces
                .into_iter()
                .map(|workspace| async move { (workspace, self.store.erase_key(workspace, false).await) }),
        )
        .await
        .into_iter()
        .collect();
        let attempts = tasks.into_iter().map(|task| {
            let subscriptions = &subscriptions;
            let erase_keys = &erase_keys;
            async move {
                let (task, message) = match task {
                    Ok(task) => task,
                    Err(error) => return (Err(error), None),
                };
                let erase_key = match erase_keys.get(task.workspace.as_str()) {
                    Some(Ok(key)) => key.as_ref(),
                    Some(Err(error)) => return (Err(error.clone()), None),
                    None => None,
                };
                match subscriptions.get(&(task.workspace.clone(), task.subscription.clone())).cloned() {
                    Some(Ok(subscription)) => self.attempt(task, subscription, erase_key, message, now).await,
                    Some(Err(error)) => (Err(error), None),
                    None => (Err(StoreError::refused("subscription not read")), None),
                }
            }
        });
        let (results, attempted): (Vec<_>, Vec<_>) = futures_util::future::join_all(attempts).await.into_iter().unzip();
        self.log(attempted.into_iter().flatten().collect()).await;
        results
    }

    /// Writes attempts to the log. The log is a record for people: failing to write it is
    /// reported, and changes nothing about the deliveries (a failed one is retried on its
    /// schedule anyway; a made one must not be sent again).
    async fn log(&self, attempts: Vec<AttemptRecord>) {
        if attempts.is_empty() {
            return;
        }
        if let Err(error) = self.store.record_attempts(&attempts).await {
            tracing::warn!(%error, attempts = attempts.len(), "delivery attempts not logged");
            crate::metrics::record(&[], &[("AttemptsNotLogged", crate::metrics::Unit::Count, attempts.len() as f64)]);
        }
    }

    /// One task to its subscription (`None`: deleted since): what the queue should do with it,
    /// and the attempt to log, if one was made.
    async fn attempt(
        &self,
        mut task: DeliveryTask,
        subscription: Option<Subscription>,
        erase_key: Option<&EraseKey>,
        message: &QueuedTask<'_>,
        now: Timestamp,
    ) -> (Result<Option<Duration>, StoreError>, Option<AttemptRecord>) {
        let mut logged = None;
        let result = self.attempt_logging(&mut task, subscription, erase_key, message, now, &mut logged).await;
        (result, logged)
    }

    /// [`Fanout::attempt`], with the attempt left in `logged` as soon as it is made, so it is
    /// logged whatever happens after (a failed subscription update, an announcement). Three
    /// stages: [`prepare`](Self::prepare) (claim the task, find the event, render the body),
    /// [`send`](Self::send) (sign and post), [`settle`](Self::settle) (mark, log, schedule the
    /// retry or give up, keep the subscription's failure clock).
    async fn attempt_logging(
        &self,
        task: &mut DeliveryTask,
        subscription: Option<Subscription>,
        erase_key: Option<&EraseKey>,
        message: &QueuedTask<'_>,
        now: Timestamp,
        logged: &mut Option<AttemptRecord>,
    ) -> Result<Option<Duration>, StoreError> {
        let Some(mut ready) = self.prepare(task, subscription, erase_key, message, now, logged).await? else {
            return Ok(None);
        };
        let sent = self.send(&mut ready).await;
        if ready.holding {
            self.release_turn(task, message.id).await;
        }
        let response = sent?;
        let now = ready.now;
        self.settle(task, ready, response, now, logged).await
    }

    /// Takes the delivery's turn under its subscription's rate limit and in-flight cap, shared
    /// with every other fan-out instance through the store.
    async fn take_turn(
        &self,
        task: &DeliveryTask,
        subscription: &Subscription,
        holder: &str,
        now: Timestamp,
    ) -> Result<Turn, StoreError> {
        super::modify_pace(&self.store, &task.workspace, &task.subscription, |pace| {
            pace.take(&subscription.pacing, holder, now)
        })
        .await
    }

    /// Frees the delivery's in-flight slot. A slot not freed (the store failing now) lapses by
    /// itself ([`crate::pacing::SLOT_LEASE`]).
    async fn release_turn(&self, task: &DeliveryTask, holder: &str) {
        let released =
            super::modify_pace(&self.store, &task.workspace, &task.subscription, |pace| pace.release(holder)).await;
        if let Err(error) = released {
            tracing::warn!(subscription = %task.subscription, %error, "in-flight slot not released; it lapses by itself");
        }
    }

    /// Puts the task back on the deliveries queue to be handed over after `wait` (at most SQS's
    /// 15 minutes; a longer wait is waited in turns), as a new message carrying the attempts made
    /// so far: waiting for a turn is not an attempt, and must not count towards the queue's
    /// receive limit. The message in hand is then finished.
    async fn defer(
        &self,
        task: &DeliveryTask,
        message: &QueuedTask<'_>,
        wait: Duration,
        why: &'static str,
    ) -> Result<Option<Ready>, StoreError> {
        let mut copy = task.clone();
        copy.attempts = copy.attempts.saturating_add(message.receive_count.saturating_sub(1));
        copy.holder = Some(task.holder(message.id).to_owned());
        let body = serde_json::to_string(&copy)
            .map_err(|e| StoreError::malformed(format!("delivery task not serializable: {e}")))?;
        let delay_seconds =
            u32::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u32::MAX).clamp(1, MAX_DEFER_SECONDS);
        self.queue.send(QueueName::Deliveries, &[Outgoing { id: "0".into(), body, delay_seconds }]).await?;
        tracing::info!(subscription = %task.subscription, event = %task.event_id, delay_seconds, why, "delivery deferred");
        crate::metrics::record(&[("Outcome", "deferred")], &[("Deliveries", crate::metrics::Unit::Count, 1.0)]);
        Ok(None)
    }

    /// Everything before the request: the subscription still wants it, this copy of the task
    /// holds its claim, the event is at hand and renders for the subscription's format. `None`
    /// when the task is finished without a request (each case is logged or counted).
    async fn prepare(
        &self,
        task: &mut DeliveryTask,
        subscription: Option<Subscription>,
        erase_key: Option<&EraseKey>,
        message: &QueuedTask<'_>,
        now: Timestamp,
        logged: &mut Option<AttemptRecord>,
    ) -> Result<Option<Ready>, StoreError> {
        let attempt = task.attempts.saturating_add(message.receive_count.max(1));
        let Some(subscription) = subscription else {
            tracing::warn!(subscription = %task.subscription, "delivery for a deleted subscription dropped");
            return Ok(None);
        };
        if !subscription.enabled {
            return Ok(None);
        }
        // An open circuit: the task waits for the probe's verdict, unless it becomes the probe.
        let probe = match subscription.circuit.gate(now) {
            Gate::Closed => false,
            Gate::Wait(wait) => return self.defer(task, message, wait, "circuit open").await,
            Gate::Probe => {
                let mut won = false;
                super::modify_subscription(&self.store, &task.workspace, &task.subscription, |s| {
                    won = s.circuit.claim_probe(now);
                    won
                })
                .await?;
                if !won {
                    return self
                        .defer(task, message, crate::pacing::PROBE_LEASE, "circuit open, probe under way")
                        .await;
                }
                true
            }
        };
        // The subscription's pace: a turn now, a turn soon (waited for here), or later.
        let mut now = now;
        let pacing = &subscription.pacing;
        let holding = pacing.max_in_flight.is_some();
        if pacing.rate_limit.is_some() || holding {
            match self.take_turn(task, &subscription, message.id, now).await? {
                Turn::Go(wait) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                        now = now.plus(wait);
                    }
                }
                Turn::Later(wait) => return self.defer(task, message, wait, "rate limit or in-flight cap").await,
            }
        }
        let prepared = self.claimed(task, subscription, erase_key, message, now, logged, attempt).await;
        let prepared = prepared.map(|ready| ready.map(|ready| Ready { holding, probe, ..ready }));
        if holding && !matches!(prepared, Ok(Some(_))) {
            self.release_turn(task, message.id).await;
        }
        prepared
    }

    /// [`Fanout::prepare`] once the delivery may go: its claim, its event, its body.
    #[allow(clippy::too_many_arguments)]
    async fn claimed(
        &self,
        task: &mut DeliveryTask,
        subscription: Subscription,
        erase_key: Option<&EraseKey>,
        message: &QueuedTask<'_>,
        now: Timestamp,
        logged: &mut Option<AttemptRecord>,
        attempt: u32,
    ) -> Result<Option<Ready>, StoreError> {
        let key = task.key();
        let lease_until =
            Timestamp::from_unix_seconds(now.unix_seconds() + delivery::CLAIM_LEASE.as_secs() as i64).unwrap_or(now);
        let claim = DeliveryClaim {
            workspace: &task.workspace,
            subscription: &task.subscription,
            key: &key,
            holder: task.holder(message.id),
            lease_until,
        };
        match self.store.claim_delivery(&claim, now).await? {
            Claim::Taken => {}
            found @ (Claim::Delivered | Claim::Held) => {
                let why = if found == Claim::Delivered {
                    "already delivered: another copy of the task was acknowledged"
                } else {
                    "another copy of the task is delivering it"
                };
                tracing::info!(subscription = %task.subscription, event = %task.event_id, "{why}");
                crate::metrics::record(
                    &[("Outcome", "duplicate")],
                    &[("Deliveries", crate::metrics::Unit::Count, 1.0)],
                );
                return Ok(None);
            }
        }
        let event = match task.event.take() {
            // Carried by the task; it must be the one the task names, of the task's workspace.
            Some(event) if event.id == task.event_id && event.workspaceid == task.workspace => event,
            Some(_) => {
                return Err(StoreError::refused(format!(
                    "delivery task for {} carries another event or workspace",
                    task.event_id
                )));
            }
            None => match self.store.event(&task.workspace, task.message_id.as_deref(), &task.event_id).await? {
                Some(event) => event,
                None => {
                    tracing::warn!(event = %task.event_id, "delivery for an expired event dropped");
                    return Ok(None);
                }
            },
        };
        if self.erased_before(&event, erase_key).await? {
            tracing::info!(subscription = %task.subscription, event = %task.event_id, "delivery of an erased recipient's event dropped");
            crate::metrics::record(&[("Outcome", "erased")], &[("Deliveries", crate::metrics::Unit::Count, 1.0)]);
            return Ok(None);
        }
        let body = match outbound::body(&event, &subscription) {
            Ok(body) => body,
            Err(Skipped(reason)) => {
                // Handled without a request: marked as delivered, so a copy of the task is not
                // attempted again, and logged so the operator sees why nothing was sent.
                if let Err(error) = self.store.mark_delivered(&task.workspace, &task.subscription, &key, now).await {
                    tracing::warn!(subscription = %task.subscription, event = %task.event_id, %error, "skipped, but not marked so");
                }
                *logged = Some(AttemptRecord {
                    workspace: task.workspace.clone(),
                    subscription: task.subscription.clone(),
                    event_id: task.event_id.to_string(),
                    attempt,
                    at: now,
                    outcome: "skipped".into(),
                    status: None,
                    latency_ms: 0,
                    detail: reason.into(),
                    next_attempt_at: None,
                });
                tracing::info!(subscription = %task.subscription, event = %task.event_id, reason, "delivery skipped");
                crate::metrics::record(&[("Outcome", "skipped")], &[("Deliveries", crate::metrics::Unit::Count, 1.0)]);
                return Ok(None);
            }
        };
        Ok(Some(Ready { subscription, event, body, key, attempt, now, holding: false, probe: false }))
    }

    /// Whether `event` is about a recipient erased after it was received (its delivery task was
    /// queued before the erasure). Events received later carry the recipient's hash already.
    async fn erased_before(&self, event: &CanonicalEvent, erase_key: Option<&EraseKey>) -> Result<bool, StoreError> {
        let erased = super::privacy::erasure_of(&self.store, erase_key, event).await?;
        Ok(erased.is_some_and(|(_, at)| event.data.received_at <= at))
    }

    /// The request: signed (Standard Webhooks) with every active secret, the subscription's own
    /// headers added, posted; or, to an EventBridge bus or SQS queue, put there (a queue's
    /// message carries the same signature headers as attributes). The body goes with it.
    async fn send(&self, ready: &mut Ready) -> Result<delivery::Response, StoreError> {
        let Ready { subscription, event, body, key, now, .. } = ready;
        let mut headers = outbound::signed_headers(subscription, event, body, *now)
            .map_err(|e| StoreError::refused(e.to_string()))?;
        match Destination::parse(&subscription.url) {
            Ok(Destination::Aws(target)) => {
                let publication = Publication { event, body, headers: &headers, key };
                Ok(self.sender.publish(&target, &publication).await)
            }
            // An unreadable stored url (none should be: it was checked when the subscription was
            // made) is posted to as before, and the sender refuses it with its reason.
            _ => {
                headers.extend(subscription.headers.iter().cloned());
                Ok(self.sender.post(&subscription.url, &headers, std::mem::take(body)).await)
            }
        }
    }

    /// Everything after the answer: a 2xx is marked delivered first; the attempt is logged and
    /// counted; then the task is done, comes back after its delay, is given up on (announced),
    /// or its subscription is disabled (announced), with the subscription's failure clock kept
    /// over the version stored.
    async fn settle(
        &self,
        task: &DeliveryTask,
        ready: Ready,
        response: delivery::Response,
        now: Timestamp,
        logged: &mut Option<AttemptRecord>,
    ) -> Result<Option<Duration>, StoreError> {
        let Ready { subscription, key, attempt, event, probe, .. } = ready;
        let next = delivery::next(attempt, &response.outcome, delivery::jitter());
        let next_attempt_at = match next {
            Next::Retry(delay) => Timestamp::from_unix_seconds(now.unix_seconds() + delay.as_secs() as i64),
            _ => None,
        };
        let (outcome, status) = match &response.outcome {
            Outcome::Delivered { code } => ("delivered", Some(*code)),
            Outcome::Status { code, .. } => ("status", Some(*code)),
            Outcome::Timeout => ("timeout", None),
            Outcome::Unreachable => ("unreachable", None),
        };
        // After a 2xx nothing below sends this task back to the queue: a retry would deliver it
        // again. The mark goes first, and is the one write given a second round of attempts (its
        // loss is what sends an event twice); if the store still fails, the task is acknowledged.
        let delivered = matches!(response.outcome, Outcome::Delivered { .. });
        if delivered {
            let mark = || self.store.mark_delivered(&task.workspace, &task.subscription, &key, now);
            if let Err(error) = match mark().await {
                Err(error) if error.is_retryable() => mark().await,
                done => done,
            } {
                tracing::warn!(subscription = %task.subscription, event = %task.event_id, %error, "delivered, but not marked so: another copy of this task would be sent again");
            }
        }
        *logged = Some(AttemptRecord {
            workspace: task.workspace.clone(),
            subscription: task.subscription.clone(),
            event_id: task.event_id.to_string(),
            attempt,
            at: now,
            outcome: outcome.into(),
            status,
            latency_ms: response.latency.as_millis() as u64,
            detail: masked_detail(&response.detail, &event),
            next_attempt_at,
        });
        tracing::info!(subscription = %task.subscription, event = %task.event_id, attempt, outcome, status, latency_ms = response.latency.as_millis() as u64, "delivery attempt");
        let metric_outcome = match (&response.outcome, status) {
            (Outcome::Status { .. }, Some(code)) if code < 500 => "http_4xx",
            (Outcome::Status { .. }, Some(_)) => "http_5xx",
            _ => outcome,
        };
        crate::metrics::record(
            &[("Outcome", metric_outcome)],
            &[
                ("Deliveries", crate::metrics::Unit::Count, 1.0),
                ("DeliveryLatency", crate::metrics::Unit::Milliseconds, response.latency.as_secs_f64() * 1000.0),
                ("DeliveryAttempt", crate::metrics::Unit::None, f64::from(attempt)),
            ],
        );
        // The failure-rate window, where the subscription asks for one: counted in its pace.
        let rate_opens = if subscription.pacing.circuit_failure_rate.is_some() {
            let counted = super::modify_pace(&self.store, &task.workspace, &task.subscription, |pace| {
                pace.count(&subscription.pacing, !delivered, now)
            })
            .await;
            counted.unwrap_or_else(|error| {
                tracing::warn!(subscription = %task.subscription, %error, "attempt not counted in the failure-rate window");
                false
            })
        } else {
            false
        };
        // The delivery's bookkeeping on the subscription (its failure clock, its circuit, a
        // disable) is made on the subscription as stored, over the version read
        // (`modify_subscription`): an operator's disable, enable or rotation made while the
        // attempt was in flight stays.
        match next {
            Next::Done => {
                let healthy = subscription.failing_since.is_none() && subscription.circuit.is_default();
                if healthy && !probe {
                    return Ok(None);
                }
                let mut closed = false;
                let current = super::modify_subscription(&self.store, &task.workspace, &task.subscription, |s| {
                    closed = s.circuit.open.is_some();
                    let changed = s.failing_since.is_some() || !s.circuit.is_default();
                    s.failing_since = None;
                    s.circuit = Default::default();
                    changed
                })
                .await;
                match current {
                    Ok(Some(current)) if closed => {
                        let reason = "a delivery succeeded";
                        tracing::info!(subscription = %current.id, "circuit closed");
                        self.announce("subscription.circuit_closed", &current, task, attempt, reason, now).await?;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(subscription = %task.subscription, %error, "delivered, but the subscription stays marked failing until its next delivery");
                    }
                }
                Ok(None)
            }
            Next::Retry(_) | Next::Exhausted => {
                let reason = "deliveries failed for 5 days";
                let (mut disabled, mut opened) = (false, None::<String>);
                let current = super::modify_subscription(&self.store, &task.workspace, &task.subscription, |s| {
                    (disabled, opened) = (false, None);
                    if !s.enabled {
                        return false;
                    }
                    let since = *s.failing_since.get_or_insert(now);
                    if delivery::should_disable(since.unix_seconds(), now.unix_seconds()) {
                        s.disable(reason);
                        disabled = true;
                    }
                    s.circuit.consecutive_failures = s.circuit.consecutive_failures.saturating_add(1);
                    if s.circuit.open.is_some() {
                        if probe {
                            s.circuit.probe_failed(now);
                        }
                    } else if s.circuit.consecutive_failures >= s.pacing.failures_to_open() || rate_opens {
                        let why = if rate_opens {
                            format!(
                                "{}% or more of the attempts in {} s failed",
                                s.pacing.circuit_failure_rate.unwrap_or(100),
                                s.pacing.window_seconds()
                            )
                        } else {
                            format!("{} consecutive failed attempts", s.circuit.consecutive_failures)
                        };
                        s.circuit.open(why.clone(), now);
                        opened = Some(why);
                    }
                    true
                })
                .await?;
                if let (Some(current), Some(why)) = (&current, &opened) {
                    tracing::warn!(subscription = %current.id, reason = %why, "circuit opened");
                    self.announce("subscription.circuit_opened", current, task, attempt, why, now).await?;
                }
                if let (Some(current), true) = (&current, disabled) {
                    tracing::warn!(subscription = %current.id, reason, "subscription disabled");
                    self.announce("subscription.disabled", current, task, attempt, reason, now).await?;
                    return Ok(None);
                }
                match next {
                    Next::Retry(delay) => match current {
                        Some(current) if current.enabled => Ok(Some(delay.min(delivery::MAX_VISIBILITY))),
                        // Disabled (or deleted) meanwhile: nothing more is attempted.
                        _ => Ok(None),
                    },
                    _ => {
                        tracing::warn!(subscription = %task.subscription, event = %task.event_id, "delivery retries exhausted");
                        let last = status.map(|s| s.to_string()).unwrap_or_default();
                        let reason = format!("{attempt} attempts failed; the last: {outcome} {last}");
                        self.announce("delivery.exhausted", &subscription, task, attempt, &reason, now).await?;
                        Ok(None)
                    }
                }
            }
            Next::Disable => {
                let reason = "the subscriber answered 410 Gone";
                let mut disabled = false;
                let current = super::modify_subscription(&self.store, &task.workspace, &task.subscription, |s| {
                    disabled = s.enabled;
                    if disabled {
                        s.disable(reason);
                    }
                    disabled
                })
                .await?;
                if let Some(current) = current.filter(|_| disabled) {
                    tracing::warn!(subscription = %current.id, reason, "subscription disabled");
                    self.announce("subscription.disabled", &current, task, attempt, reason, now).await?;
                }
                Ok(None)
            }
        }
    }

    /// Puts an operational event (`subscription.disabled`, `delivery.exhausted`) on the events
    /// queue, where it is stored and delivered like any event to subscriptions that ask for it.
    /// Its id derives from the subscription and the delivery that caused it, so a redelivered
    /// task announces it once.
    async fn announce(
        &self,
        kind: &str,
        subscription: &Subscription,
        task: &DeliveryTask,
        attempt: u32,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let event_type =
            EventType::platform(kind).ok_or_else(|| StoreError::malformed(format!("{kind} is not an event type")))?;
        let mut data = EventData::new(None, OPERATIONAL_PROVIDER, kind);
        data.reason = Some(reason.to_owned());
        data.details.insert("subscription".into(), serde_json::json!(subscription.id));
        data.details.insert("url".into(), serde_json::json!(subscription.url));
        data.details.insert("event_id".into(), serde_json::json!(task.event_id));
        let ctx = NormalizeContext { workspace: &subscription.workspace, received_at: now };
        let key = format!("{kind}|{}|{}|{attempt}", subscription.id, task.event_id);
        let event = ctx.event(event_type, Some(now), &key, data, &crate::providers::Raw::Borrowed("{}"));
        self.queue.send(QueueName::Events, &[event_message(0, &event, OPERATIONAL_PROVIDER)?]).await
    }
}
