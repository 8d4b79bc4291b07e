//! Ingest: a webhook in, verified and normalized, canonical events on the events queue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::sns::{self, CertUrl, CertificateCache, SnsCertificate, SnsError};
use crate::auth::{NonceCheck, VerifyContext, reused_nonce};
use crate::ports::{Fetcher, NonceStore, PrivacyStore, Queue, QueueName, SourceStore, StoreError};
use crate::privacy::PrivacySettings;
use crate::providers::{NormalizeContext, NormalizedEvent, Notice, ProviderId, Raw};
use crate::source::Source;
use crate::timestamp::Timestamp;
use crate::webhook::{Headers, Transport, Webhook, WebhookError};

use super::next_messages;

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

/// The answer to a provider's GET to a webhook URL: a status and plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub status: u16,
    pub text: String,
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

/// An event as the workspace's privacy settings let it be queued: without the IP address or
/// user agent they drop, or the provider's record. The record is copied only when something is
/// taken out of it.
fn redact(settings: &PrivacySettings, event: &mut NormalizedEvent<'_>) {
    let data = &event.event.data;
    let touches = (settings.redact_ip && data.ip.is_some())
        || (settings.redact_user_agent && data.user_agent.is_some())
        || settings.drops_raw();
    if touches {
        let mut raw = event.raw.as_str().to_owned();
        settings.redact(&mut event.event, &mut raw);
        event.raw = Raw::from(raw);
    }
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
    /// Each workspace's privacy settings, kept as long as sources are.
    privacy: Mutex<HashMap<String, (Instant, PrivacySettings)>>,
    max_body_bytes: usize,
    confirm_subscriptions: bool,
}

impl<S: SourceStore + NonceStore + PrivacyStore, Q: Queue, F: Fetcher> Ingest<S, Q, F> {
    pub fn new(store: S, queue: Q, fetcher: F) -> Self {
        Ingest {
            store,
            queue,
            fetcher,
            certificates: CertificateCache::new(),
            sources: Mutex::new(HashMap::new()),
            privacy: Mutex::new(HashMap::new()),
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
        if request.transport == Transport::Http
            && let Some(Ok(url)) = provider.provider().certificate_to_fetch(request.body, &source.allowed_topics)
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
        let privacy = match self.privacy(&source.workspace).await {
            Ok(privacy) => privacy,
            Err(error) => {
                return IngestResponse::error(
                    503,
                    "store_unavailable",
                    format!("{provider}: privacy settings unavailable: {error}"),
                );
            }
        };
        let ctx = NormalizeContext { workspace: &source.workspace, received_at: request.received_at };
        let mut normalized = match implementation.normalize(&webhook, &ctx) {
            Ok(normalized) => normalized,
            Err(error) => return IngestResponse::rejected(&error),
        };
        for event in &mut normalized.events {
            redact(&privacy, event);
        }
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
            let sent = match next_messages(&mut events, &source.id) {
                Ok(messages) if messages.is_empty() => break,
                Ok(messages) => self.queue.send(QueueName::Events, &messages).await,
                Err(error) => Err(error),
            };
            if let Err(error) = sent {
                if let Some(lost) = provider.provider().lost_on_server_error() {
                    tracing::error!(provider = provider.as_str(), source = %source.id, events = accepted, "queue unavailable: {lost}");
                }
                let status = if error.is_retryable() { 503 } else { 500 };
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

    /// Answers a provider's GET to a webhook URL (Meta's verification request) with plain text:
    /// what the provider asked to have echoed, or a one-line reason. Nothing is enqueued.
    pub async fn handshake(&self, provider: ProviderId, source_id: &str, query: Option<&str>) -> HandshakeResponse {
        let refuse = |status: u16, line: String| HandshakeResponse {
            status,
            text: bounded(&line, MAX_REASON_CHARS).into_owned(),
        };
        let implementation = provider.provider();
        let response = if !implementation.answers_get() {
            refuse(405, format!("{provider}: the webhook URL takes POST requests only"))
        } else if !plausible_source_id(source_id) {
            refuse(404, format!("{provider}: no source {}", bounded(source_id, 64)))
        } else {
            match self.source(source_id).await {
                Ok(Some(source)) if source.provider == provider => {
                    match implementation.handshake(query, &source.auth()) {
                        Ok(text) => HandshakeResponse { status: 200, text },
                        Err(error) => refuse(error.status(), error.to_string()),
                    }
                }
                Ok(_) => refuse(404, format!("{provider}: no source {source_id}")),
                Err(error) => refuse(503, format!("{provider}: sources unavailable: {error}")),
            }
        };
        let source = bounded(source_id, 64);
        if response.status < 300 {
            tracing::info!(provider = provider.as_str(), source = %source, "webhook URL verification answered");
        } else {
            crate::metrics::record(
                &[("Provider", provider.as_str()), ("Reason", "handshake_refused")],
                &[("Rejected", crate::metrics::Unit::Count, 1.0)],
            );
            tracing::warn!(provider = provider.as_str(), source = %source, status = response.status, reason = %response.text, "webhook URL verification refused");
        }
        response
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

    /// The workspace's privacy settings (the defaults where it has none), cached like sources:
    /// a change applies to webhooks within [`SOURCE_CACHE_TTL`].
    async fn privacy(&self, workspace: &str) -> Result<PrivacySettings, StoreError> {
        if let Ok(cache) = self.privacy.lock()
            && let Some((at, settings)) = cache.get(workspace)
            && at.elapsed() < SOURCE_CACHE_TTL
        {
            return Ok(settings.clone());
        }
        let settings = self.store.privacy_settings(workspace).await?.unwrap_or_default();
        if let Ok(mut cache) = self.privacy.lock() {
            if cache.len() >= SOURCE_CACHE_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < SOURCE_CACHE_TTL);
            }
            if cache.len() < SOURCE_CACHE_ENTRIES {
                cache.insert(workspace.to_owned(), (Instant::now(), settings.clone()));
            }
        }
        Ok(settings)
    }

    /// How many source lookups are cached (bounded by [`SOURCE_CACHE_ENTRIES`]).
    pub fn cached_sources(&self) -> usize {
        self.sources.lock().map_or(0, |cache| cache.len())
    }

    async fn ensure_certificate(&self, url: &CertUrl) -> Result<(), SnsError> {
        if self.certificates.contains(url) {
            return Ok(());
        }
        let pem = self
            .fetcher
            .get(url.as_str())
            .await
            .map_err(|error| SnsError::Fetch { url: url.as_str().to_owned(), error })?;
        let certificate = SnsCertificate::from_pem(&pem)
            .map_err(|error| SnsError::Certificate { url: url.as_str().to_owned(), error: Box::new(error) })?;
        self.certificates.insert(url.clone(), certificate);
        Ok(())
    }

    /// Confirms an SNS subscription by visiting its SubscribeURL, which must be an SNS endpoint
    /// (it came in a verified message from an allow-listed topic, and is checked again here so
    /// nothing else can be made to fetch an arbitrary URL).
    async fn confirm_subscription(&self, url: &str) -> Result<(), SnsError> {
        sns::check_sns_endpoint(url)?;
        self.fetcher.get(url).await.map(|_| ()).map_err(SnsError::Confirmation)
    }
}
