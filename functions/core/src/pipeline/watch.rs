//! The watch: on a schedule (EventBridge Scheduler on AWS, a timer in `tidings dev`), each
//! workspace's rates are held to its thresholds and its sources' traffic to their usual gaps
//! ([`deliverability::watch`](crate::deliverability::watch)). Each change is announced as one
//! operational event on the events queue, stored and delivered like any other.
//!
//! Once per change, however many watches run at once or however often one is retried: the
//! event's id derives from the alarm and its change count, so copies are stored once; the alarm
//! is then written over the version that was read, so only one writer moves it on.

use crate::deliverability::watch::{Change, LOOKBACK_HOURS, evaluate};
use crate::deliverability::{Series, counters::hour_of};
use crate::event::{EventData, EventType};
use crate::metrics::{self, Unit};
use crate::ports::{DeliverabilityStore, Queue, QueueName, SourceStore, StoreError};
use crate::providers::{NormalizeContext, Raw};
use crate::timestamp::Timestamp;

use super::{OPERATIONAL_PROVIDER, event_message};

/// What one run of the watch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchRun {
    pub workspaces: usize,
    /// The events announced, by type.
    pub announced: Vec<(String, String)>,
    /// Workspaces whose watch failed, with the error (the others went on).
    pub failed: Vec<(String, String)>,
}

pub struct Watch<S, Q> {
    store: S,
    queue: Q,
}

impl<S: DeliverabilityStore + SourceStore, Q: Queue> Watch<S, Q> {
    pub fn new(store: S, queue: Q) -> Self {
        Watch { store, queue }
    }

    /// Watches every workspace with recent events. A workspace that fails is reported and the
    /// next one watched; the run fails only when the workspaces cannot be listed.
    pub async fn run(&self, now: Timestamp) -> Result<WatchRun, StoreError> {
        let workspaces = self.store.watched_workspaces().await?;
        let mut run = WatchRun { workspaces: workspaces.len(), ..WatchRun::default() };
        for workspace in workspaces {
            match self.workspace(&workspace, now).await {
                Ok(changes) => {
                    run.announced.extend(changes.into_iter().map(|c| (c.event_type.to_owned(), c.alarm.key)))
                }
                Err(error) => {
                    tracing::error!(workspace, %error, "deliverability watch failed");
                    run.failed.push((workspace, error.to_string()));
                }
            }
        }
        Ok(run)
    }

    /// Watches one workspace; answers the changes it announced.
    pub async fn workspace(&self, workspace: &str, now: Timestamp) -> Result<Vec<Change>, StoreError> {
        let settings = self.store.deliverability_settings(workspace).await?.unwrap_or_default();
        let hours = LOOKBACK_HOURS.max(i64::from(settings.window_hours));
        let current = hour_of(now);
        let counters = self.store.counters(workspace, Series::Sources, current - (hours - 1) * 3600, current).await?;
        let alarms = self.store.alarms(workspace).await?;
        let sources: Vec<(String, String)> =
            self.store.sources(workspace).await?.into_iter().map(|s| (s.id, s.provider.to_string())).collect();
        let (changes, measured) = evaluate(workspace, &settings, &counters, &alarms, &sources, now);
        for m in &measured {
            metrics::record(&[("Workspace", workspace), (m.dimension, &m.value)], &[(m.metric, Unit::None, m.rate)]);
        }
        let mut announced = Vec::with_capacity(changes.len());
        for change in changes {
            self.announce(&change, now).await?;
            if self.store.put_alarm(&change.alarm).await? {
                // Per workspace, and with no dimension for the template's alarms.
                metrics::record(&[("Workspace", workspace)], &[(change.metric, Unit::Count, 1.0)]);
                metrics::record(&[], &[(change.metric, Unit::Count, 1.0)]);
                tracing::warn!(workspace, event = change.event_type, summary = %change.summary, "deliverability watch");
                announced.push(change);
            }
        }
        Ok(announced)
    }

    /// Puts the event announcing `change` on the events queue.
    async fn announce(&self, change: &Change, now: Timestamp) -> Result<(), StoreError> {
        let kind = change.event_type;
        let event_type =
            EventType::platform(kind).ok_or_else(|| StoreError::malformed(format!("{kind} is not an event type")))?;
        let mut data = EventData::new(None, OPERATIONAL_PROVIDER, kind);
        data.reason = Some(change.summary.clone());
        data.details = change.alarm.details.clone();
        let ctx = NormalizeContext { workspace: &change.alarm.workspace, received_at: now };
        let key = format!("{kind}|{}|{}", change.alarm.key, change.alarm.changes);
        let event = ctx.event(event_type, Some(now), &key, data, &Raw::Borrowed("{}"));
        self.queue.send(QueueName::Events, &[event_message(0, &event, OPERATIONAL_PROVIDER)?]).await
    }
}
