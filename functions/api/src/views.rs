//! What the admin API answers, as types: the handlers return these, and the OpenAPI document's
//! schemas are generated from them, so a field cannot be sent that the document does not name.

use schemars::JsonSchema;
use serde::Serialize;
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::CanonicalEvent;
use tidings_core::providers::ProviderId;
use tidings_core::source::Source;
use tidings_core::state::MessageState;
use tidings_core::subscription::{AnonymousId, Format, Subscription};
use tidings_core::suppression::Suppression;
use tidings_core::timestamp::Timestamp;

/// Every error: a status and one line saying what was wrong (naming the field, for a request
/// that is malformed).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
    /// For a field that validation refused: its name (`url`, `types`, `headers`, `secret`,
    /// `cursor`, …), for code that points at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The server is up.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    pub ok: bool,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventPage {
    pub events: Vec<CanonicalEvent>,
    /// Where the next page starts (pass it as `cursor`); `null` at the end. A page may hold
    /// fewer events than `limit`, even none, and still have a `next`: each page reads a bounded
    /// number of stored events.
    pub next: Option<String>,
}

/// One message: where it stands for each recipient, and its events, oldest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MessageHistory {
    pub message_id: String,
    pub states: Vec<MessageState>,
    pub timeline: Vec<CanonicalEvent>,
}

/// The workspace's active suppressions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
}

/// What lifting a suppression here and in SES did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SuppressionRemoved {
    pub recipient: String,
    /// Whether it was on this workspace's list.
    pub removed: bool,
    /// Whether it was on the SES account-level list.
    pub ses_removed: bool,
}

/// What the API shows of every source.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceFields {
    pub id: String,
    pub workspace: String,
    pub provider: ProviderId,
    pub description: String,
    /// Providers that sign the URL they post to (Twilio, Plivo): the exact public URL configured
    /// in the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Providers that publish through SNS (SES, AWS SMS): the topics this source accepts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_topics: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
    pub created_at: Timestamp,
    /// Where the provider posts: paste it into the provider's dashboard.
    pub url: String,
    /// WhatsApp: the verify token to enter beside the callback URL in Meta's dashboard (derived
    /// from the app secret, so it changes when the secret is rotated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

impl SourceFields {
    pub fn new(source: &Source, url: String) -> Self {
        SourceFields {
            id: source.id.clone(),
            workspace: source.workspace.clone(),
            provider: source.provider,
            description: source.description.clone(),
            public_url: source.public_url.clone(),
            allowed_topics: source.allowed_topics.clone(),
            signature_header: source.signature_header.clone(),
            tolerance_seconds: source.tolerance_seconds,
            created_at: source.created_at,
            url,
            verify_token: source.secrets.first().and_then(|secret| source.provider.provider().setup_token(secret)),
        }
    }
}

/// A source as listed: its secrets counted, never shown.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceView {
    #[serde(flatten)]
    pub source: SourceFields,
    /// How many secrets the source holds (`"1 configured"`).
    pub secrets: String,
}

/// A source just created, with its secrets: shown this once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedSource {
    #[serde(flatten)]
    pub source: SourceFields,
    /// The secrets or keys the source verifies with (empty for SES, which SNS signs).
    pub secrets: Vec<String>,
}

/// The workspace's sources.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceList {
    pub sources: Vec<SourceView>,
}

/// A subscription as the API shows it: secrets are counted and headers named, never shown,
/// except the one new signing secret in the answer to a creation or a rotation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub workspace: String,
    pub url: String,
    /// Type patterns (`email.*`, `*.bounced`, `*`).
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The content filter, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub format: Format,
    #[serde(skip_serializing_if = "is_no_one")]
    pub anonymous_id: AnonymousId,
    /// How many signing secrets are active (`"1 active"`, two during a rotation's grace).
    pub secrets: String,
    /// The names of the extra headers sent; their values are never shown.
    pub headers: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Bumped by every change.
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// Rate limit, in-flight cap and circuit settings, those that are set.
    #[serde(flatten)]
    pub pacing: tidings_core::pacing::Pacing,
    pub circuit: CircuitView,
    pub created_at: Timestamp,
    /// The new signing secret (`whsec_…`), in the answer to a creation or a rotation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl SubscriptionView {
    pub fn new(subscription: &Subscription, secret: Option<String>) -> Self {
        SubscriptionView {
            id: subscription.id.clone(),
            workspace: subscription.workspace.clone(),
            url: subscription.url.clone(),
            types: subscription.types.clone(),
            providers: subscription.providers.clone(),
            sources: subscription.sources.clone(),
            filter: subscription.filter.clone(),
            format: subscription.format,
            anonymous_id: subscription.anonymous_id,
            secrets: format!("{} active", subscription.active_secrets(Timestamp::now()).count()),
            headers: subscription.headers.iter().map(|(name, _)| name.clone()).collect(),
            description: subscription.description.clone(),
            enabled: subscription.enabled,
            version: subscription.version,
            disabled_reason: subscription.disabled_reason.clone(),
            failing_since: subscription.failing_since,
            pacing: subscription.pacing.clone(),
            circuit: CircuitView::new(&subscription.circuit, Timestamp::now()),
            created_at: subscription.created_at,
            secret,
        }
    }
}

/// A subscription's circuit breaker as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CircuitView {
    /// `closed` (deliveries go), `open` (deliveries wait for the next probe) or `probing` (one
    /// delivery is the probe; the others wait for its answer).
    pub state: &'static str,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
    /// Why it opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the next probe may go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<Timestamp>,
}

impl CircuitView {
    pub fn new(circuit: &tidings_core::pacing::Circuit, now: Timestamp) -> CircuitView {
        let open = circuit.open.as_ref();
        let state = match open {
            None => "closed",
            Some(open) if open.probing_until.is_some_and(|until| until > now) => "probing",
            Some(_) => "open",
        };
        CircuitView {
            state,
            consecutive_failures: circuit.consecutive_failures,
            opened_at: open.map(|o| o.since),
            reason: open.map(|o| o.reason.clone()),
            next_probe_at: open.map(|o| o.probe_at),
        }
    }
}

fn is_no_one(anonymous_id: &AnonymousId) -> bool {
    *anonymous_id == AnonymousId::None
}

/// The workspace's subscriptions.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionView>,
}

/// A subscription's latest delivery attempts, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AttemptList {
    pub attempts: Vec<AttemptRecord>,
}

/// What one replay call queued. A call reads a bounded stretch of history (2,000 events); when
/// more of the range remains, `next` says where the next call goes on (pass it as `cursor`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Replayed {
    /// Deliveries queued by this call.
    pub replayed: u64,
    /// `null` once the whole range is replayed.
    pub next: Option<String>,
}

/// The test event sent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TestSent {
    pub event_id: String,
}
