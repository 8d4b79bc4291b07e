//! Delivery rules: when to try again, and when to give up on a subscriber.
//!
//! The retry schedule is Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first
//! attempt fails, each ±20% jittered so failing subscribers are not retried in lockstep. A 429
//! or a timeout waits at least 60 s; a `Retry-After` is honoured between the scheduled delay and
//! twice it. A 410 disables the subscription at once, as does failing for 5 days.

use std::time::Duration;

/// Delays after attempt 1, 2, … fails.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// A subscription failing for this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 86_400);

/// Longest a single delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a claim on a delivery keeps copies of its task away (the store's `claim_delivery`):
/// far longer than an attempt
/// plus the write that marks it made, so a copy never sends while the holder may still be
/// sending. The holder's own message is not kept waiting by it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(300);

/// How long a store keeps a delivery's claim or mark before expiring it: longer than any copy of
/// its task can live in the deliveries queue (SQS keeps a message at most 14 days), so no copy
/// ever finds its delivery forgotten.
pub const CLAIM_RETENTION_SECONDS: i64 = 14 * 86_400;

/// How long a store keeps a delivery attempt: 90 days. Attempts name their event by id and mask
/// the recipient in the subscriber's answer, so they hold no personal data of their own.
pub const ATTEMPT_RETENTION_SECONDS: i64 = 90 * 86_400;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, with the status code.
    Delivered { code: u16 },
    /// Any other status (3xx included: redirects are not followed).
    Status { code: u16, retry_after: Option<Duration> },
    /// No answer within [`ATTEMPT_TIMEOUT`].
    Timeout,
    /// Could not connect or the connection broke (or the address was refused).
    Unreachable,
}

/// What sending one delivery returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub outcome: Outcome,
    pub latency: Duration,
    /// The start of the answer's body (at most 1 KiB), or why there was no answer.
    pub detail: String,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Try again after this delay.
    Retry(Duration),
    /// Stop: no more attempts for this event.
    Exhausted,
    /// Stop and disable the subscription (410 Gone).
    Disable,
}

/// What follows attempt number `attempt` (1-based) ending in `outcome`. `jitter` is a number
/// in [-1, 1] scaling the ±20% spread (random in production, fixed in tests).
pub fn next(attempt: u32, outcome: &Outcome, jitter: f64) -> Next {
    let retry_after = match outcome {
        Outcome::Delivered { .. } => return Next::Done,
        Outcome::Status { code: 410, .. } => return Next::Disable,
        Outcome::Status { retry_after, .. } => *retry_after,
        _ => None,
    };
    let Some(base) = SCHEDULE.get(attempt.saturating_sub(1) as usize) else { return Next::Exhausted };
    let jitter = jitter.clamp(-1.0, 1.0) * 0.2;
    let mut delay = base.mul_f64(1.0 + jitter);
    let slow_down = matches!(outcome, Outcome::Timeout | Outcome::Status { code: 429, .. });
    if slow_down {
        delay = delay.max(Duration::from_secs(60));
    }
    if let Some(asked) = retry_after {
        delay = asked.clamp(delay, delay * 2);
    }
    Next::Retry(delay)
}

/// Whether a subscription failing since `since` should be disabled at `now` (both Unix seconds).
pub fn should_disable(failing_since: i64, now: i64) -> bool {
    now.saturating_sub(failing_since) >= DISABLE_AFTER.as_secs() as i64
}

/// The longest SQS keeps a received message invisible (`ChangeMessageVisibility`): 12 hours,
/// which holds the schedule's longest wait (10 h + 20%).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// One delivery attempt, as the attempt log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    pub workspace: String,
    pub subscription: String,
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub at: crate::timestamp::Timestamp,
    /// `delivered`, `status`, `timeout` or `unreachable`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The start of the answer, or why there was none (at most 1 KiB).
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<crate::timestamp::Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Outcome {
        Outcome::Status { code, retry_after: None }
    }

    #[test]
    fn schedule_follows_the_svix_steps_with_bounded_jitter() {
        assert_eq!(next(1, &status(500), 0.0), Next::Retry(Duration::from_secs(5)));
        assert_eq!(next(2, &status(500), 0.0), Next::Retry(Duration::from_secs(300)));
        assert_eq!(next(7, &Outcome::Unreachable, 0.0), Next::Retry(Duration::from_secs(36_000)));
        assert_eq!(next(8, &status(500), 0.0), Next::Exhausted);
        assert_eq!(next(3, &status(500), 1.0), Next::Retry(Duration::from_secs(2160)), "+20%");
        assert_eq!(next(3, &status(500), -1.0), Next::Retry(Duration::from_secs(1440)), "-20%");
        assert_eq!(next(1, &Outcome::Delivered { code: 204 }, 0.0), Next::Done);
        assert_eq!(next(1, &status(302), 0.0), Next::Retry(Duration::from_secs(5)), "a redirect is a failure");
    }

    #[test]
    fn rate_limits_and_timeouts_wait_at_least_a_minute_and_retry_after_is_bounded() {
        assert_eq!(next(1, &status(429), 0.0), Next::Retry(Duration::from_secs(60)));
        assert_eq!(next(1, &Outcome::Timeout, 0.0), Next::Retry(Duration::from_secs(60)));
        let asked = |secs| Outcome::Status { code: 429, retry_after: Some(Duration::from_secs(secs)) };
        assert_eq!(next(1, &asked(90), 0.0), Next::Retry(Duration::from_secs(90)));
        assert_eq!(next(1, &asked(10), 0.0), Next::Retry(Duration::from_secs(60)), "never sooner than scheduled");
        assert_eq!(next(1, &asked(86_400), 0.0), Next::Retry(Duration::from_secs(120)), "never later than twice");
    }

    #[test]
    fn gone_disables_and_five_days_of_failure_disables() {
        assert_eq!(next(1, &status(410), 0.0), Next::Disable);
        assert!(!should_disable(0, 5 * 86_400 - 1));
        assert!(should_disable(0, 5 * 86_400));
    }
}

/// What the deliveries queue carries: one event for one subscription. A retry is the same
/// message handed over again after its visibility was extended to the retry's delay, so the
/// attempt number is the message's receive count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryTask {
    pub workspace: String,
    pub subscription: String,
    pub event_id: crate::event::EventId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The event itself, so fan-out need not read it back (and can deliver it before the
    /// processor's write of it lands). Tasks without it read the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<crate::event::CanonicalEvent>,
    /// Set on the tasks of one replay (the same for all of them): a replay sends again what
    /// was delivered before, once more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// Attempts made under earlier queue messages of this task: a task that waits for its turn
    /// (a rate limit, an open circuit) goes back to the queue as a new message, whose receive
    /// count starts again. The attempt number is this plus the receive count.
    #[serde(default, skip_serializing_if = "crate::serde_util::is_zero")]
    pub attempts: u32,
    /// The queue message that holds the delivery's claim, when it is not this one: a task put
    /// back to wait keeps its claim under the message that took it, so its new message is not
    /// taken for a copy of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

impl DeliveryTask {
    /// The task of delivering `event` to `subscription`, carrying the event.
    pub fn new(subscription: &crate::subscription::Subscription, event: &crate::event::CanonicalEvent) -> Self {
        DeliveryTask {
            workspace: subscription.workspace.clone(),
            subscription: subscription.id.clone(),
            event_id: event.id.clone(),
            message_id: event.data.message_id.clone(),
            event: Some(event.clone()),
            replay: None,
            attempts: 0,
            holder: None,
        }
    }

    /// A deliveries-queue message read as its task.
    pub fn from_message(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// Who holds the delivery's claim when `message_id` is the queue message in hand.
    pub fn holder<'a>(&'a self, message_id: &'a str) -> &'a str {
        self.holder.as_deref().unwrap_or(message_id)
    }

    /// What makes this delivery one: the event, and the replay it belongs to, if any. Two
    /// copies of a task share it; a replay of a delivered event does not.
    pub fn key(&self) -> String {
        match &self.replay {
            Some(replay) => format!("{}#{replay}", self.event_id),
            None => self.event_id.to_string(),
        }
    }
}

/// A new replay's id: the time and 32 random bits.
pub fn replay_id(now: crate::timestamp::Timestamp) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    format!("rp{}{:08x}", now.unix_millis(), u32::from_be_bytes(bytes))
}

/// A random number in [-1, 1] for retry jitter.
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    f64::from(u32::from_be_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}
