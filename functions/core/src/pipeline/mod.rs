//! The pipeline's services, written against the ports so that the Lambda functions and
//! `tidings dev` run the same code, one file each: [`Ingest`] (a webhook in, canonical events on
//! the queue), [`Processor`] (a queued event in, stored exactly once, fanned out), [`Fanout`] (a
//! delivery task in, a signed POST out), [`replay`], [`modify_subscription`], how every
//! writer changes a stored subscription, and the [`Watch`] over deliverability and sources.

mod export;
mod fanout;
mod ingest;
mod privacy;
mod processor;
mod replay;
mod subscriptions;
mod watch;

pub use export::{ATTEMPTS_PER_SUBSCRIPTION, ExportedEvent, MAX_EXPORT_EVENTS, RecipientExport, export_recipient};
pub use fanout::{Fanout, QueuedTask};
pub use ingest::{
    HandshakeResponse, Ingest, IngestRequest, IngestResponse, MAX_BODY_BYTES, SOURCE_CACHE_ENTRIES, SOURCE_CACHE_TTL,
};
pub use privacy::{erase_recipient, suppression_of};
pub use processor::{DEFAULT_RETENTION_DAYS, NoFanout, Processed, Processor};
pub use replay::{REPLAY_EVENTS_PER_CALL, ReplayPosition, ReplayProgress, ReplayRange, replay};
pub use subscriptions::{modify_pace, modify_subscription};
pub use watch::{Watch, WatchRun};

pub use crate::messages::{ENQUEUE_CHUNK, event_message, next_messages};

pub use crate::event::OPERATIONAL_PROVIDER;
