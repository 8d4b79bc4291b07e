//! The pipeline's two services, written against the ports so that the Lambda functions and
//! `tidings dev` run the same code: [`Ingest`] (a webhook in, canonical events on the queue)
//! [`Processor`] (a queued event in, stored exactly once, fanned out), and [`Fanout`] (a
//! delivery task in, a signed POST out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::sns::{self, CertUrl, CertificateCache, SnsCertificate};
use crate::auth::{NonceCheck, VerifyContext, reused_nonce};
use crate::delivery::{self, AttemptRecord, DeliveryTask, Next, Outcome};
use crate::event::{CanonicalEvent, EventData, EventType};
use crate::outbound::{self, Skipped};
use crate::ports::{
    Claim, DeliveryClaim, Fetcher, Outgoing, Queue, QueueName, QueuedEvent, Recorded, Sender, Store, StoreError,
};
use crate::providers::{NormalizeContext, NormalizedEvent, Notice, ProviderId};
use crate::source::Source;
use crate::subscription::Subscription;
use crate::timestamp::Timestamp;
use crate::webhook::{Headers, Transport, Webhook, WebhookError};

/// Largest body accepted: SendGrid batches reach ~768 KiB; anything past 4 MiB is refused
/// with 413 before it is read as JSON.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How long a warm ingest function trusts a source it looked up (so a rotated secret or a
/// removed source takes effect within this time).
pub const SOURCE_CACHE_TTL: Duration = Duration::from_secs(60);

/// One webhook request as the HTTP layer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    pub provider: ProviderId,
    pub source_id: &'a str,
    pub body: &'a [u8],
    pub headers: &'a Headers,
    pub query: Option<&'a str>,
    pub transport: Transport,
    pub received_at: Timestamp,
}

/// What to answer the provider, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestResponse {
    pub status: u16,
    /// `{"accepted": n, "notices": [...]}` or `{"error": "<provider>: <reason>"}`.
    pub body: Value,
    pub accepted: usize,
    /// The metric label for the outcome (`accepted`, `unauthenticated`, `malformed`, …).
    pub outcome: &'static str,
    /// The type of each event enqueued (`email.bounced`, …), for metrics.
    pub event_types: Vec<String>,
    /// How long putting the events on the queue took.
    pub enqueue_time: Option<Duration>,
}

/// The longest refusal reason answered and logged, in characters: reasons quote what the
/// request carried, and a request must not decide how much is written to the log.
const MAX_REASON_CHARS: usize = 300;

/// `text` cut to `max` characters (with `…` where it was cut).
fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..end])),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Whether `id` can be a source id (`src_` and 21 characters when tidings makes one; ids given
/// through the store directly keep to the same alphabet): anything else is answered 404 before
/// any lookup, so it costs neither a store read nor a cache entry.
fn plausible_source_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How many source lookups ingest keeps (found or not); beyond it, expired entries go first,
/// then arbitrary ones.
pub const SOURCE_CACHE_ENTRIES: usize = 1024;

impl IngestResponse {
    fn error(status: u16, outcome: &'static str, line: String) -> Self {
        IngestResponse {
            status,
            body: json!({ "error": bounded(&line, MAX_REASON_CHARS) }),
            accepted: 0,
            outcome,
            event_types: Vec::new(),
            enqueue_time: None,
        }
    }

    fn rejected(error: &WebhookError) -> Self {
        IngestResponse::error(error.status(), error.kind.as_str(), error.to_string())
    }
}

/// The ingest metrics of one webhook (see [`crate::metrics`]).
fn record_ingest_metrics(provider: &str, response: &IngestResponse) {
    use crate::metrics::{Unit, record};
    if response.status >= 300 {
        record(&[("Provider", provider), ("Reason", response.outcome)], &[("Rejected", Unit::Count, 1.0)]);
        if response.outcome == crate::webhook::Rejection::Unauthenticated.as_str() {
            record(&[("Provider", provider)], &[("SignatureFailures", Unit::Count, 1.0)]);
        }
        return;
    }
    let mut by_type: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for event_type in &response.event_types {
        *by_type.entry(event_type).or_default() += 1;
    }
    let unknown = response.event_types.iter().filter(|t| t.ends_with(".unknown")).count();
    let mut values = vec![("WebhooksAccepted", Unit::Count, 1.0), ("UnknownTypes", Unit::Count, unknown as f64)];
    if let Some(elapsed) = response.enqueue_time {
        values.push(("EnqueueLatency", Unit::Milliseconds, elapsed.as_secs_f64() * 1000.0));
    }
    record(&[("Provider", provider)], &values);
    for (event_type, count) in by_type {
        record(&[("Provider", provider), ("Type", event_type)], &[("Events", Unit::Count, count as f64)]);
    }
}

/// Verifies, normalizes and enqueues webhooks.
pub struct Ingest<S, Q, F> {
    store: S,
    queue: Q,
    fetcher: F,
    certificates: CertificateCache,
    sources: Mutex<HashMap<String, (Instant, Option<Source>)>>,
    max_body_bytes: usize,
    confirm_subscriptions: bool,
}

impl<S: Store, Q: Queue, F: Fetcher> Ingest<S, Q, F> {
    pub fn new(store: S, queue: Q, fetcher: F) -> Self {
        Ingest {
            store,
            queue,
            fetcher,
            certificates: CertificateCache::new(),
            sources: Mutex::new(HashMap::new()),
            max_body_bytes: MAX_BODY_BYTES,
            confirm_subscriptions: true,
        }
    }

    /// Log SNS subscription confirmations instead of visiting their SubscribeURL (`tidings dev`
    /// on a laptop: SNS cannot reach it, and a human can click the printed URL).
    pub fn without_subscription_confirmation(mut self) -> Self {
        self.confirm_subscriptions = false;
        self
    }

    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one webhook. Answers 2xx only once every event is on the queue.
    pub async fn handle(&self, request: IngestRequest<'_>) -> IngestResponse {
        let response = self.handle_inner(request).await;
        let provider = request.provider.as_str();
        record_ingest_metrics(provider, &response);
        let source = bounded(request.source_id, 64);
        if response.status < 300 {
            tracing::info!(provider, source = %source, events = response.accepted, "webhook accepted");
        } else {
            let reason = response.body["error"].as_str().unwrap_or_default();
            tracing::warn!(
                provider,
                source = %source,
                status = response.status,
                outcome = response.outcome,
                reason,
                "webhook refused"
            );
        }
        response
    }

    async fn handle_inner(&self, request: IngestRequest<'_>) -> IngestResponse {
        let provider = request.provider;
        if request.body.len() > self.max_body_bytes {
            let line = format!(
                "{provider}: body of {} bytes is over the {}-byte limit",
                request.body.len(),
                self.max_body_bytes
            );
            return IngestResponse::error(413, "too_large", line);
        }
        if !plausible_source_id(request.source_id) {
            let id = bounded(request.source_id, 64);
            return IngestResponse::error(404, "unknown_source", format!("{provider}: no source {id}"));
        }
        let source = match self.source(request.source_id).await {
            Ok(Some(source)) if source.provider == provider => source,
            // A source of another provider answers as if it did not exist: URLs are not a way
            // to learn which sources exist.
            Ok(_) => {
                return IngestResponse::error(
                    404,
                    "unknown_source",
                    format!("{provider}: no source {}", request.source_id),
                );
            }
            Err(error) => {
                return IngestResponse::error(
                    503,
                    "store_unavailable",
                    format!("{provider}: sources unavailable: {error}"),
                );
            }
        };
        let webhook = Webhook {
            body: request.body,
            headers: request.headers,
            query: request.query,
            transport: request.transport,
        };
        if provider == ProviderId::Ses
            && request.transport == Transport::Http
            && let Some(Ok(url)) = sns::signing_cert_url(request.body, &source.allowed_topics)
            && let Err(error) = self.ensure_certificate(&url).await
        {
            return IngestResponse::error(503, "certificate_unavailable", format!("{provider}: {error}"));
        }
        let implementation = provider.provider();
        let verified = match implementation.verify(
            &webhook,
            &source.auth(),
            &VerifyContext { now: request.received_at, certificates: &self.certificates },
        ) {
            Ok(verified) => verified,
            Err(error) => return IngestResponse::rejected(&error),
        };
        if let Some(claim) = &verified.replay_claim {
            match self.store.claim_nonce(claim).await {
                Ok(NonceCheck::Reused) => return IngestResponse::rejected(&reused_nonce(provider)),
                Ok(_) => {}
                Err(error) => {
                    return IngestResponse::error(
                        503,
                        "store_unavailable",
                        format!("{provider}: nonce store unavailable: {error}"),
                    );
                }
            }
        }
        let ctx = NormalizeContext { workspace: &source.workspace, received_at: request.received_at };
        let normalized = match implementation.normalize(&webhook, &ctx) {
            Ok(normalized) => normalized,
            Err(error) => return IngestResponse::rejected(&error),
        };
        let mut notices = Vec::new();
        for notice in &normalized.notices {
            if let Notice::SnsSubscriptionConfirmation { subscribe_url, .. } = notice {
                if self.confirm_subscriptions {
                    if let Err(error) = self.confirm_subscription(subscribe_url).await {
                        return IngestResponse::error(503, "confirmation_failed", format!("{provider}: {error}"));
                    }
                } else {
                    // The operator confirms by hand: the URL goes to the log they are reading.
                    tracing::warn!(provider = provider.as_str(), source = %source.id, %subscribe_url, "SNS subscription not confirmed automatically: visit subscribe_url to confirm it");
                    notices.push(format!("not confirmed automatically: visit {subscribe_url} to confirm"));
                }
            }
            tracing::info!(provider = provider.as_str(), source = %source.id, notice = %notice, "notice");
            notices.push(notice.to_string());
        }
        let accepted = normalized.events.len();
        let event_types: Vec<String> = normalized.events.iter().map(|e| e.event.event_type.to_string()).collect();
        let started = Instant::now();
        // Messages are built and sent a chunk at a time, so a large batch is not held twice
        // over (events and messages) while it is queued. A failure part way leaves the earlier
        // chunks queued; the provider's retry sends them again and the processor stores each
        // event once.
        let mut events = normalized.events.into_iter().enumerate();
        loop {
            let messages = next_messages(&mut events, &source.id);
            if messages.is_empty() {
                break;
            }
            if let Err(error) = self.queue.send(QueueName::Events, &messages).await {
                if provider == ProviderId::Brevo {
                    // Brevo drops a webhook answered with 5xx instead of retrying it.
                    tracing::error!(provider = "brevo", source = %source.id, events = accepted, "queue unavailable: Brevo discards webhooks answered 5xx, these events are lost unless Brevo is asked to resend");
                }
                let status = if error.retryable { 503 } else { 500 };
                return IngestResponse::error(
                    status,
                    "queue_unavailable",
                    format!("{provider}: events queue unavailable: {error}"),
                );
            }
        }
        IngestResponse {
            status: 200,
            body: json!({ "accepted": accepted, "notices": notices }),
            accepted,
            outcome: "accepted",
            enqueue_time: (accepted > 0).then(|| started.elapsed()),
            event_types,
        }
    }

    async fn source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        if let Ok(cache) = self.sources.lock()
            && let Some((at, source)) = cache.get(id)
            && at.elapsed() < SOURCE_CACHE_TTL
        {
            return Ok(source.clone());
        }
        let source = self.store.source(id).await?;
        if let Ok(mut cache) = self.sources.lock() {
            if cache.len() >= SOURCE_CACHE_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < SOURCE_CACHE_TTL);
            }
            while cache.len() >= SOURCE_CACHE_ENTRIES {
                let Some(evicted) = cache.keys().next().cloned() else { break };
                cache.remove(&evicted);
            }
            cache.insert(id.to_owned(), (Instant::now(), source.clone()));
        }
        Ok(source)
    }

    /// How many source lookups are cached (bounded by [`SOURCE_CACHE_ENTRIES`]).
    pub fn cached_sources(&self) -> usize {
        self.sources.lock().map_or(0, |cache| cache.len())
    }

    async fn ensure_certificate(&self, url: &CertUrl) -> Result<(), String> {
        if self.certificates.contains(url) {
            return Ok(());
        }
        let pem = self
            .fetcher
            .get(url.as_str())
            .await
            .map_err(|e| format!("cannot fetch SNS certificate {}: {e}", url.as_str()))?;
        let certificate =
            SnsCertificate::from_pem(&pem).map_err(|e| format!("SNS certificate {}: {e}", url.as_str()))?;
        self.certificates.insert(url.clone(), certificate);
        Ok(())
    }

    /// Confirms an SNS subscription by visiting its SubscribeURL, which must be an SNS endpoint
    /// (it came in a verified message from an allow-listed topic, and is checked again here so
    /// nothing else can be made to fetch an arbitrary URL).
    async fn confirm_subscription(&self, url: &str) -> Result<(), String> {
        sns::check_sns_endpoint(url)?;
        self.fetcher.get(url).await.map(|_| ()).map_err(|e| format!("cannot confirm SNS subscription: {e}"))
    }
}

/// How many of a webhook's events ingest turns into queue messages and sends at a time: ten
/// SQS batches, few enough that a 6 MB request's messages are never all alive at once, many
/// enough that `tidings dev` commits a 1,000-event batch in ten transactions, not a thousand.
pub const ENQUEUE_CHUNK: usize = 100;

/// The queue messages of the next [`ENQUEUE_CHUNK`] of a webhook's (numbered) events, each
/// event dropped once it is written.
pub fn next_messages<'a>(
    events: &mut impl Iterator<Item = (usize, NormalizedEvent<'a>)>,
    source: &str,
) -> Vec<Outgoing> {
    events.take(ENQUEUE_CHUNK).map(|(index, event)| event_message(index, &event, source)).collect()
}

/// The events-queue message of the `index`th event of a webhook from `source`: the event, its
/// raw provider record and the source ([`QueuedEvent`]).
pub fn event_message(index: usize, event: &NormalizedEvent<'_>, source: &str) -> Outgoing {
    let queued = QueuedEventRef { event: &event.event, raw: &event.raw, source };
    // Strings and numbers only: it always serializes.
    Outgoing { id: index.to_string(), body: serde_json::to_string(&queued).unwrap_or_default(), delay_seconds: 0 }
}

/// [`QueuedEvent`] as written, from borrowed parts: the raw record is not copied to be queued.
#[derive(serde::Serialize)]
struct QueuedEventRef<'a> {
    event: &'a crate::event::CanonicalEvent,
    raw: &'a str,
    source: &'a str,
}

/// How a queued event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Stored,
    Duplicate,
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

impl<S: Store> Processor<S, NoFanout> {
    pub fn new(store: S, retention_days: u64) -> Self {
        Processor { store, deliveries: None, retention: Duration::from_secs(retention_days.max(1) * 86_400) }
    }
}

impl<S: Store, Q: Queue> Processor<S, Q> {
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
        results.pop().unwrap_or_else(|| Err(StoreError::permanent("no result for the message")))
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
        for (i, body) in bodies.iter().enumerate() {
            let queued = match serde_json::from_str::<QueuedEvent>(body) {
                Ok(queued) => queued,
                Err(e) => {
                    results[i] =
                        Some(Err(StoreError::permanent(format!("events-queue message is not a queued event: {e}"))));
                    continue;
                }
            };
            // The same event twice in one batch (a provider's quick retry): one copy is enough;
            // if storing it fails, its own message comes back.
            if new.iter().any(|(_, other)| other.event.id == queued.event.id) {
                results[i] = Some(Ok(self.processed(&queued.event, Recorded::Duplicate)));
                continue;
            }
            if self.deliveries.is_some() {
                let e = &queued.event;
                match self.store.has_event(&e.workspaceid, e.data.message_id.as_deref(), &e.id).await {
                    Ok(true) => {
                        results[i] = Some(Ok(self.processed(e, Recorded::Duplicate)));
                        continue;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        results[i] = Some(Err(error));
                        continue;
                    }
                }
            }
            new.push((i, queued));
        }
        if let Some(deliveries) = &self.deliveries {
            let all: Vec<&QueuedEvent> = new.iter().map(|(_, queued)| queued).collect();
            if let Err(error) = self.fan_out(deliveries, &all).await {
                // A permanent refusal (a task SQS will never take) must not dead-letter the
                // whole batch: fan out one event at a time, so only the events it concerns fail.
                let alone = !error.retryable && new.len() > 1;
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
        let batch: Vec<(&QueuedEvent, Timestamp)> =
            new.iter().map(|(_, queued)| (queued, retention_end(&queued.event, self.retention))).collect();
        let recorded = self.store.record_batch(&batch).await;
        for ((i, queued), result) in new.iter().zip(recorded) {
            results[*i] = Some(result.map(|r| self.processed(&queued.event, r)));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::permanent("message left unprocessed"))))
            .collect()
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
    /// workspace, tasks sent in as few batches as the queue takes.
    async fn fan_out(&self, deliveries: &Q, events: &[&QueuedEvent]) -> Result<(), StoreError> {
        let mut subscriptions: HashMap<&str, Vec<Subscription>> = HashMap::new();
        let mut resends: Vec<Outgoing> = Vec::new();
        let mut tasks: Vec<Outgoing> = Vec::new();
        for queued in events {
            let event = &queued.event;
            // A retryable SES send failure: schedule its resend (the redrive claims each attempt
            // once, so scheduling again after a crash is harmless).
            if let Some((task, attempt)) = crate::redrive::task_for(event, &queued.source) {
                let delay = crate::redrive::backoff(attempt + 1, delivery::jitter()).as_secs() as u32;
                let body = serde_json::to_string(&task).unwrap_or_default();
                resends.push(Outgoing { id: resends.len().to_string(), body, delay_seconds: delay });
            }
            let workspace = event.workspaceid.as_str();
            if !subscriptions.contains_key(workspace) {
                subscriptions.insert(workspace, self.store.subscriptions(workspace).await?);
            }
            for s in subscriptions.get(workspace).into_iter().flatten() {
                if s.enabled && s.matches(event, &queued.source) && !about_itself(event, s) {
                    let body = serde_json::to_string(&DeliveryTask::new(s, event)).unwrap_or_default();
                    tasks.push(Outgoing { id: tasks.len().to_string(), body, delay_seconds: 0 });
                }
            }
        }
        if !resends.is_empty() {
            deliveries.send(QueueName::Redrive, &resends).await?;
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

/// The `data.provider` (and source) of tidings' own operational events.
pub const OPERATIONAL_PROVIDER: &str = "tidings";

fn retention_end(event: &CanonicalEvent, retention: Duration) -> Timestamp {
    let start = event.data.received_at.unix_seconds();
    Timestamp::from_unix_seconds(start.saturating_add(retention.as_secs() as i64)).unwrap_or(event.data.received_at)
}

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

/// Delivers tasks from the deliveries queue: render, sign, send, log the attempt, and then
/// retry on schedule, give up, or disable the subscription.
pub struct Fanout<S, Q, D> {
    store: S,
    queue: Q,
    sender: D,
}

impl<S: Store, Q: Queue, D: Sender> Fanout<S, Q, D> {
    pub fn new(store: S, queue: Q, sender: D) -> Self {
        Fanout { store, queue, sender }
    }

    /// Handles one deliveries-queue message, at `now`.
    /// Returns the delay after which the same message should be handed over again (the caller
    /// extends its visibility by that much instead of deleting it: SQS
    /// `ChangeMessageVisibility`, at most 12 hours), or `None` when the task is finished.
    pub async fn deliver(&self, message: &QueuedTask<'_>, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let task = DeliveryTask::from_message(message.body)?;
        let subscription = self.store.subscription(&task.workspace, &task.subscription).await?;
        let (result, attempted) = self.attempt(task, subscription, message, now).await;
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
        let tasks: Vec<Result<(DeliveryTask, &QueuedTask<'_>), StoreError>> = messages
            .iter()
            .map(|message| DeliveryTask::from_message(message.body).map(|task| (task, message)))
            .collect();
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
        let attempts = tasks.into_iter().map(|task| {
            let subscriptions = &subscriptions;
            async move {
                let (task, message) = match task {
                    Ok(task) => task,
                    Err(error) => return (Err(error), None),
                };
                match subscriptions.get(&(task.workspace.clone(), task.subscription.clone())).cloned() {
                    Some(Ok(subscription)) => self.attempt(task, subscription, message, now).await,
                    Some(Err(error)) => (Err(error), None),
                    None => (Err(StoreError::permanent("subscription not read")), None),
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
        message: &QueuedTask<'_>,
        now: Timestamp,
    ) -> (Result<Option<Duration>, StoreError>, Option<AttemptRecord>) {
        let mut logged = None;
        let result = self.attempt_logging(&mut task, subscription, message, now, &mut logged).await;
        (result, logged)
    }

    /// [`Fanout::attempt`], with the attempt left in `logged` as soon as it is made, so it is
    /// logged whatever happens after (a failed subscription update, an announcement).
    async fn attempt_logging(
        &self,
        task: &mut DeliveryTask,
        subscription: Option<Subscription>,
        message: &QueuedTask<'_>,
        now: Timestamp,
        logged: &mut Option<AttemptRecord>,
    ) -> Result<Option<Duration>, StoreError> {
        let attempt = message.receive_count.max(1);
        let Some(subscription) = subscription else {
            tracing::warn!(subscription = %task.subscription, "delivery for a deleted subscription dropped");
            return Ok(None);
        };
        if !subscription.enabled {
            return Ok(None);
        }
        let key = task.key();
        let lease_until =
            Timestamp::from_unix_seconds(now.unix_seconds() + delivery::CLAIM_LEASE.as_secs() as i64).unwrap_or(now);
        let claim = DeliveryClaim {
            workspace: &task.workspace,
            subscription: &task.subscription,
            key: &key,
            holder: message.id,
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
                return Err(StoreError::permanent(format!(
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
        let mut headers = outbound::signed_headers(&subscription, &event, &body, now).map_err(StoreError::permanent)?;
        headers.extend(subscription.headers.iter().cloned());
        let response = self.sender.post(&subscription.url, &headers, body).await;
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
                Err(error) if error.retryable => mark().await,
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
            detail: response.detail.chars().take(1024).collect(),
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
        // The delivery's bookkeeping on the subscription (its failure clock, a disable) is made
        // on the subscription as stored, over the version read (`subscription::modify`): an
        // operator's disable, enable or rotation made while the attempt was in flight stays.
        match next {
            Next::Done => {
                if subscription.failing_since.is_some()
                    && let Err(error) =
                        crate::subscription::modify(&self.store, &task.workspace, &task.subscription, |s| {
                            s.failing_since.take().is_some()
                        })
                        .await
                {
                    tracing::warn!(subscription = %task.subscription, %error, "delivered, but the subscription stays marked failing until its next delivery");
                }
                Ok(None)
            }
            Next::Retry(delay) => {
                let reason = "deliveries failed for 5 days";
                let mut disabled = false;
                let current = crate::subscription::modify(&self.store, &task.workspace, &task.subscription, |s| {
                    disabled = false;
                    if !s.enabled {
                        return false;
                    }
                    let clock_started = s.failing_since.is_none();
                    let since = *s.failing_since.get_or_insert(now);
                    if delivery::should_disable(since.unix_seconds(), now.unix_seconds()) {
                        s.disable(reason);
                        disabled = true;
                    }
                    clock_started || disabled
                })
                .await?;
                match current {
                    Some(current) if disabled => {
                        tracing::warn!(subscription = %current.id, reason, "subscription disabled");
                        self.announce("subscription.disabled", &current, task, attempt, reason, now).await?;
                        Ok(None)
                    }
                    Some(current) if current.enabled => Ok(Some(delay.min(delivery::MAX_VISIBILITY))),
                    // Disabled (or deleted) meanwhile: nothing more is attempted.
                    _ => Ok(None),
                }
            }
            Next::Exhausted => {
                tracing::warn!(subscription = %task.subscription, event = %task.event_id, "delivery retries exhausted");
                let last = status.map(|s| s.to_string()).unwrap_or_default();
                let reason = format!("{attempt} attempts failed; the last: {outcome} {last}");
                self.announce("delivery.exhausted", &subscription, task, attempt, &reason, now).await?;
                Ok(None)
            }
            Next::Disable => {
                let reason = "the subscriber answered 410 Gone";
                let mut disabled = false;
                let current = crate::subscription::modify(&self.store, &task.workspace, &task.subscription, |s| {
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
            EventType::platform(kind).ok_or_else(|| StoreError::permanent(format!("{kind} is not an event type")))?;
        let mut data = EventData::new(None, OPERATIONAL_PROVIDER, kind);
        data.reason = Some(reason.to_owned());
        data.details.insert("subscription".into(), serde_json::json!(subscription.id));
        data.details.insert("url".into(), serde_json::json!(subscription.url));
        data.details.insert("event_id".into(), serde_json::json!(task.event_id));
        let ctx = NormalizeContext { workspace: &subscription.workspace, received_at: now };
        let key = format!("{kind}|{}|{}|{attempt}", subscription.id, task.event_id);
        let event = ctx.event(event_type, Some(now), &key, data, &crate::providers::Raw::Borrowed("{}"));
        self.queue.send(QueueName::Events, &[event_message(0, &event, OPERATIONAL_PROVIDER)]).await
    }
}

/// Re-delivers a workspace's stored events to one subscription: every event in
/// [`since`, `until`] that the subscription matches (and `type_pattern`, when given), as new
/// delivery tasks with the same `webhook-id`s. Returns how many were queued.
pub async fn replay<S: Store, Q: Queue>(
    store: &S,
    queue: &Q,
    subscription: &Subscription,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    type_pattern: Option<String>,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    let mut cursor = None;
    let replay = delivery::replay_id(Timestamp::now());
    loop {
        let query = crate::ports::EventQuery {
            workspace: subscription.workspace.clone(),
            type_pattern: type_pattern.clone(),
            since,
            until,
            limit: 500,
            cursor,
            ..Default::default()
        };
        let page = store.events(&query).await?;
        let tasks: Vec<Outgoing> = page
            .events
            .iter()
            // The source filter needs the source, which replay does not read back: type and
            // provider filters apply, a source filter does not narrow a replay.
            .filter(|e| subscription.matches(e, subscription.sources.first().map_or("", String::as_str)))
            .enumerate()
            .map(|(i, e)| {
                let task = DeliveryTask { replay: Some(replay.clone()), ..DeliveryTask::new(subscription, e) };
                let body = serde_json::to_string(&task).unwrap_or_default();
                Outgoing { id: i.to_string(), body, delay_seconds: 0 }
            })
            .collect();
        if !tasks.is_empty() {
            queue.send(QueueName::Deliveries, &tasks).await?;
            queued += tasks.len();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(queued),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Channel, EventData, EventType, Status};
    use crate::providers::Raw;

    #[test]
    fn an_event_message_reads_back_as_the_queued_event_with_its_raw_record() {
        let ctx =
            NormalizeContext { workspace: "ws_1", received_at: Timestamp::from_unix_seconds(1_764_000_000).unwrap() };
        let body = r#"[{"event":"bounce","email":"a@example.com","reason":"550 \"no\""}]"#;
        let record = &body[1..body.len() - 1];
        let data = EventData::new(Some(Channel::EMAIL), "sendgrid", "bounce");
        let event =
            ctx.event(EventType::message(Channel::EMAIL, Status::Bounced), None, "key", data, &Raw::Borrowed(record));
        let message = event_message(7, &event, "src_1");
        assert_eq!(message.id, "7");
        let queued: QueuedEvent = serde_json::from_str(&message.body).unwrap();
        assert_eq!(queued, QueuedEvent { event: event.event, raw: record.to_owned(), source: "src_1".into() });
    }
}
