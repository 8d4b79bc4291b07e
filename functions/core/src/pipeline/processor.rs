//! The processor: a queued event in, stored exactly once with its message state and
//! suppression change, and a delivery task queued for each subscription it matches.

use std::collections::HashMap;
use std::time::Duration;

use crate::delivery::{self, DeliveryTask};
use crate::event::CanonicalEvent;
use crate::ports::{
    DeliverabilityStore, EventStore, Expiry, Outgoing, PrivacyStore, Queue, QueueName, QueuedEvent, Recorded,
    StoreError, SubscriptionStore,
};
use crate::privacy::{self, EraseKey, PrivacySettings};
use crate::subscription::Subscription;

use super::OPERATIONAL_PROVIDER;
use super::privacy::{erase_again_if_erased, erasure_of};

/// How a queued event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Stored,
    Duplicate,
    /// About a recipient erased after the event was received: neither stored nor delivered.
    Erased,
}

/// What the processor reads about a workspace once per batch.
struct WorkspaceContext {
    deliverability: crate::deliverability::Settings,
    privacy: PrivacySettings,
    erase_key: Option<EraseKey>,
}

/// A deliveries queue that takes nothing: a processor without fan-out.
pub struct NoFanout;

impl Queue for NoFanout {
    async fn send(&self, _: QueueName, _: &[Outgoing]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Stores queued events exactly once, then puts one delivery task per matching subscription on
/// the deliveries queue.
pub struct Processor<S, Q = NoFanout> {
    store: S,
    deliveries: Option<Q>,
    retention: Duration,
}

/// Default retention of stored events.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;

impl<S: EventStore + SubscriptionStore + DeliverabilityStore + PrivacyStore> Processor<S, NoFanout> {
    pub fn new(store: S, retention_days: u64) -> Self {
        Processor { store, deliveries: None, retention: Duration::from_secs(retention_days.max(1) * 86_400) }
    }
}

impl<S: EventStore + SubscriptionStore + DeliverabilityStore + PrivacyStore, Q: Queue> Processor<S, Q> {
    pub fn with_fanout(store: S, deliveries: Q, retention_days: u64) -> Self {
        Processor {
            store,
            deliveries: Some(deliveries),
            retention: Duration::from_secs(retention_days.max(1) * 86_400),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Records one events-queue message; see [`Processor::process_batch`].
    pub async fn process(&self, body: &str) -> Result<Processed, StoreError> {
        let mut results = self.process_batch(&[body]).await;
        results.pop().unwrap_or_else(|| Err(StoreError::refused("no result for the message")))
    }

    /// Records a batch of events-queue messages (what one Lambda invocation or one receive of
    /// `tidings dev` gets); one result per message, in order. A malformed message is a
    /// permanent error (it goes to the dead-letter queue with the reason); store errors keep
    /// their classification.
    ///
    /// With fan-out, the delivery tasks of the batch's new events (tasks carry their event) are
    /// enqueued, together, *before* those events are stored, and an event already stored is
    /// skipped: every stored event has had its deliveries enqueued, with no second write to say
    /// so. A crash in between, or two copies of one event processed at once, enqueue its
    /// deliveries twice: a subscriber may then see a `webhook-id` twice, which Standard
    /// Webhooks receivers deduplicate. An event the store then refuses for good goes to the
    /// dead-letter queue with its reason, already delivered.
    pub async fn process_batch(&self, bodies: &[&str]) -> Vec<Result<Processed, StoreError>> {
        let mut results: Vec<Option<Result<Processed, StoreError>>> = vec![None; bodies.len()];
        let mut new: Vec<(usize, QueuedEvent)> = Vec::with_capacity(bodies.len());
        let mut workspaces: HashMap<String, WorkspaceContext> = HashMap::new();
        for (i, body) in bodies.iter().enumerate() {
            let mut queued = match serde_json::from_str::<QueuedEvent>(body) {
                Ok(queued) => queued,
                Err(e) => {
                    results[i] =
                        Some(Err(StoreError::malformed(format!("events-queue message is not a queued event: {e}"))));
                    continue;
                }
            };
            // The same event twice in one batch (a provider's quick retry): one copy is enough;
            // if storing it fails, its own message comes back.
            if new.iter().any(|(_, other)| other.event.id == queued.event.id) {
                results[i] = Some(Ok(self.processed(&queued.event, Recorded::Duplicate)));
                continue;
            }
            let workspace = queued.event.workspaceid.clone();
            if !workspaces.contains_key(&workspace) {
                match Box::pin(self.context(&workspace)).await {
                    Ok(context) => {
                        workspaces.insert(workspace.clone(), context);
                    }
                    Err(error) => {
                        results[i] = Some(Err(error));
                        continue;
                    }
                }
            }
            // A stored event stops here, with or without fan-out: a provider's retry is neither
            // delivered nor counted again (DynamoDB's counters remember only their latest events).
            // If its recipient has been erased since, it is erased again (a batch whose check
            // after storing failed comes back this way).
            let e = &queued.event;
            match self.store.has_event(&e.workspaceid, e.data.message_id.as_deref(), &e.id).await {
                Ok(true) => {
                    let erased_again = match workspaces.get(&workspace) {
                        Some(context) => {
                            Box::pin(erase_again_if_erased(&self.store, context.erase_key.as_ref(), e)).await
                        }
                        None => Ok(()),
                    };
                    results[i] = Some(erased_again.map(|()| self.processed(e, Recorded::Duplicate)));
                    continue;
                }
                Ok(false) => {}
                Err(error) => {
                    results[i] = Some(Err(error));
                    continue;
                }
            }
            let Some(context) = workspaces.get(&workspace) else { continue };
            context.deliverability.map_mailbox_provider(&mut queued.event.data);
            match Box::pin(self.unless_erased(context, queued)).await {
                Ok(Some(kept)) => new.push((i, kept)),
                Ok(None) => results[i] = Some(Ok(Processed::Erased)),
                Err(error) => results[i] = Some(Err(error)),
            }
        }
        if let Some(deliveries) = &self.deliveries {
            let all: Vec<&QueuedEvent> = new.iter().map(|(_, queued)| queued).collect();
            if let Err(error) = self.fan_out(deliveries, &all).await {
                // A permanent refusal (a task SQS will never take) must not dead-letter the
                // whole batch: fan out one event at a time, so only the events it concerns fail.
                let alone = !error.is_retryable() && new.len() > 1;
                let mut kept = Vec::with_capacity(new.len());
                for (i, queued) in new {
                    let result = if alone { self.fan_out(deliveries, &[&queued]).await } else { Err(error.clone()) };
                    match result {
                        Ok(()) => kept.push((i, queued)),
                        Err(error) => results[i] = Some(Err(error)),
                    }
                }
                new = kept;
            }
        }
        let default_days = self.retention.as_secs() / 86_400;
        let no_settings = PrivacySettings::default();
        let batch: Vec<(&QueuedEvent, Expiry)> = new
            .iter()
            .map(|(_, queued)| {
                let privacy = workspaces.get(&queued.event.workspaceid).map_or(&no_settings, |c| &c.privacy);
                (queued, privacy.expiry(queued.event.data.received_at, default_days))
            })
            .collect();
        let recorded = self.store.record_batch(&batch).await;
        let mut stored: Vec<&QueuedEvent> = Vec::new();
        for ((i, queued), result) in new.iter().zip(recorded) {
            if matches!(result, Ok(Recorded::Stored)) {
                stored.push(queued);
            }
            results[*i] = Some(result.map(|r| self.processed(&queued.event, r)));
        }
        // Boxed, as are the other privacy steps: they are rare, and their futures would otherwise
        // enlarge every batch's on the stack.
        if let Err(error) = Box::pin(self.erase_again(&workspaces, &stored)).await {
            // The events are stored; their messages come back, and as duplicates are checked
            // against the erasures again.
            for (i, queued) in &new {
                if stored.iter().any(|s| s.event.id == queued.event.id) {
                    results[*i] = Some(Err(error.clone()));
                }
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(StoreError::refused("message left unprocessed")))).collect()
    }

    /// The workspace's settings and erase key, read once per batch.
    async fn context(&self, workspace: &str) -> Result<WorkspaceContext, StoreError> {
        let read = self.store.workspace_settings(workspace).await?;
        Ok(WorkspaceContext {
            deliverability: read.deliverability.unwrap_or_default(),
            privacy: read.privacy.unwrap_or_default(),
            erase_key: read.erase_key,
        })
    }

    /// An event about an erased recipient: dropped when it was received before the erasure
    /// (it was on its way when the recipient asked), kept under the recipient's hash, without
    /// its provider record, when it came after (a provider still reporting on an old message).
    async fn unless_erased(
        &self,
        context: &WorkspaceContext,
        mut queued: QueuedEvent,
    ) -> Result<Option<QueuedEvent>, StoreError> {
        let Some((hash, erased_at)) = erasure_of(&self.store, context.erase_key.as_ref(), &queued.event).await? else {
            return Ok(Some(queued));
        };
        if queued.event.data.received_at <= erased_at {
            tracing::info!(event = %queued.event.id, "event of an erased recipient dropped");
            crate::metrics::record(&[], &[("ErasedDropped", crate::metrics::Unit::Count, 1.0)]);
            return Ok(None);
        }
        let recipient = queued.event.data.recipient.clone().unwrap_or_default();
        let Some(anonymous) = privacy::pseudonymize(&queued.event, &recipient, &hash) else {
            return Ok(None);
        };
        queued.event = anonymous;
        queued.raw.clear();
        Ok(Some(queued))
    }

    /// Erases again the recipients of just-stored events whose erasure happened while the
    /// batch was on its way (the erase call may have looked before these events were written):
    /// the workspace's erase key is read again, and only when it names a newer erasure than the
    /// batch began with are the recipients looked up.
    async fn erase_again(
        &self,
        workspaces: &HashMap<String, WorkspaceContext>,
        stored: &[&QueuedEvent],
    ) -> Result<(), StoreError> {
        for (workspace, context) in workspaces {
            let mine: Vec<&&QueuedEvent> = stored.iter().filter(|q| &q.event.workspaceid == workspace).collect();
            if mine.is_empty() {
                continue;
            }
            let Some(key) = self.store.erase_key(workspace, false).await? else { continue };
            if key.last_erasure == context.erase_key.as_ref().and_then(|k| k.last_erasure) {
                continue;
            }
            let mut seen: Vec<&str> = Vec::new();
            for queued in mine {
                let Some(recipient) = queued.event.data.recipient.as_deref() else { continue };
                if !seen.contains(&recipient) {
                    seen.push(recipient);
                    erase_again_if_erased(&self.store, Some(&key), &queued.event).await?;
                }
            }
        }
        Ok(())
    }

    fn processed(&self, e: &CanonicalEvent, recorded: Recorded) -> Processed {
        tracing::info!(event = %e.id, r#type = %e.event_type, provider = %e.data.provider, outcome = ?recorded, "event processed");
        let metric = if matches!(recorded, Recorded::Stored) { "Stored" } else { "Duplicates" };
        crate::metrics::record(&[], &[(metric, crate::metrics::Unit::Count, 1.0)]);
        match recorded {
            Recorded::Stored => Processed::Stored,
            Recorded::Duplicate => Processed::Duplicate,
        }
    }

    /// Enqueues the resends and delivery tasks of these events: subscriptions read once per
    /// workspace, the stored states of the messages that have deliveries once per message, tasks
    /// sent in as few batches as the queue takes. Each task's event carries its message's state
    /// once the event is folded in (`data.state`, `data.state_version`).
    async fn fan_out(&self, deliveries: &Q, events: &[&QueuedEvent]) -> Result<(), StoreError> {
        let mut subscriptions: HashMap<&str, Vec<Subscription>> = HashMap::new();
        let mut resends: Vec<Outgoing> = Vec::new();
        for queued in events {
            let event = &queued.event;
            // A retryable SES send failure: schedule its resend (the resender claims each attempt
            // once, so scheduling again after a crash is harmless).
            if let Some((task, attempt)) = crate::resend::task_for(event, &queued.source) {
                let delay = crate::resend::backoff(attempt + 1, delivery::jitter()).as_secs() as u32;
                let body = serde_json::to_string(&task)
                    .map_err(|e| StoreError::malformed(format!("resend task cannot be written as JSON: {e}")))?;
                resends.push(Outgoing { id: resends.len().to_string(), body, delay_seconds: delay });
            }
            let workspace = event.workspaceid.as_str();
            if !subscriptions.contains_key(workspace) {
                subscriptions.insert(workspace, self.store.subscriptions(workspace).await?);
            }
        }
        // The events that go anywhere, and to which subscriptions.
        let mut delivered: Vec<(CanonicalEvent, Vec<&Subscription>)> = Vec::new();
        for queued in events {
            let event = &queued.event;
            let to: Vec<&Subscription> = subscriptions
                .get(event.workspaceid.as_str())
                .into_iter()
                .flatten()
                .filter(|s| s.enabled && s.matches(event, &queued.source) && !about_itself(event, s))
                .collect();
            if !to.is_empty() {
                delivered.push((event.clone(), to));
            }
        }
        let mut stored = HashMap::new();
        let mut read: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
        for (event, _) in &delivered {
            let Some((message_id, _)) = crate::state::key(event) else { continue };
            if read.insert((event.workspaceid.clone(), message_id.to_owned())) {
                for state in self.store.message_states(&event.workspaceid, message_id).await? {
                    stored.insert((state.workspace.clone(), state.message_id.clone(), state.recipient.clone()), state);
                }
            }
        }
        let mut carried: Vec<CanonicalEvent> = delivered.iter().map(|(event, _)| event.clone()).collect();
        crate::state::attach_states(&mut carried, &mut stored);
        let mut tasks: Vec<Outgoing> = Vec::new();
        for (event, (_, to)) in carried.iter().zip(&delivered) {
            for s in to {
                let body = serde_json::to_string(&DeliveryTask::new(s, event))
                    .map_err(|e| StoreError::malformed(format!("delivery task cannot be written as JSON: {e}")))?;
                tasks.push(Outgoing { id: tasks.len().to_string(), body, delay_seconds: 0 });
            }
        }
        if !resends.is_empty() {
            deliveries.send(QueueName::Resend, &resends).await?;
        }
        if !tasks.is_empty() {
            deliveries.send(QueueName::Deliveries, &tasks).await?;
        }
        Ok(())
    }
}

/// An operational event about `subscription` is never delivered to it: a subscriber failing on
/// `delivery.*` would otherwise feed on its own failures.
fn about_itself(event: &CanonicalEvent, subscription: &Subscription) -> bool {
    event.data.provider == OPERATIONAL_PROVIDER
        && event.data.details.get("subscription").and_then(|v| v.as_str()) == Some(subscription.id.as_str())
}
