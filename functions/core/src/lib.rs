//! tidings core: the domain, with no AWS and no I/O.
//!
//! - [`event`]: the canonical event (CloudEvents 1.0) and its taxonomy.
//! - [`providers`]: one module per provider, each reading its dialect into canonical events.
//! - [`auth`]: every authenticity scheme the providers use.
//! - [`webhook`]: the inbound request and the one-line errors it is refused with.
//! - [`pipeline`]: ingest and processing, written against the [`ports`] the adapters implement;
//!   [`state`] (the message state lattice) and [`suppression`] are the rules they apply.
//! - [`deliverability`]: why mail bounces, where, and when a sender must act.

pub mod audit;
pub mod auth;
pub mod deliverability;
pub mod delivery;
pub mod destination;
pub mod event;
pub mod filter;
pub mod invalid;
pub mod messages;
pub mod metrics;
pub mod outbound;
pub mod pacing;
pub mod pattern;
pub mod pipeline;
pub mod ports;
pub mod privacy;
pub mod provider_id;
pub mod providers;
pub mod recipient;
pub mod resend;
pub mod retryable;
pub mod schema;
pub mod serde_util;
pub mod source;
pub mod ssrf;
pub mod state;
pub mod subscription;
pub mod suppression;
pub mod timestamp;
pub mod webhook;

pub use event::{Bounce, BounceKind, CanonicalEvent, Channel, EventData, EventId, EventType, Status};
pub use provider_id::ProviderId;
pub use providers::{NormalizeContext, Normalized, NormalizedEvent, Notice, Provider};
pub use timestamp::Timestamp;
pub use webhook::{Headers, Rejection, Transport, Webhook, WebhookError};
