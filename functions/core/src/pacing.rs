//! Pacing and failure control of a subscription's deliveries: a rate limit and a cap on
//! deliveries in flight, shared by every fan-out instance, and a circuit breaker.
//!
//! - **Rate.** A generic cell rate algorithm over the subscription's shared [`PaceState`]: each
//!   delivery reserves the next start time, `1 / rate` after the previous one. A delivery whose
//!   turn comes within [`MAX_WAIT`] waits for it in process; a later one goes back to the queue
//!   with a delay and takes a turn when it returns. Starts are spaced evenly, so no one-second
//!   window holds more than `rate + 1` of them (the one: a timer firing a moment late can bring
//!   two starts closer than `1 / rate`).
//! - **In flight.** Each delivery holds a slot from its turn until its answer; a slot whose
//!   holder never released it (a crashed instance) lapses after [`SLOT_LEASE`].
//! - **Circuit.** After `circuit_failures` consecutive failed attempts (default 5), or, when
//!   configured, `circuit_failure_rate` percent of at least [`MIN_RATE_ATTEMPTS`] attempts
//!   within `circuit_window_seconds`, the circuit opens: deliveries wait (back on the queue, no
//!   attempt made or counted) until a single probe, after [`FIRST_PROBE_AFTER`] and then twice
//!   as long after each failed probe (at most [`MAX_PROBE_AFTER`]), succeeds and closes it. The
//!   five-day disable and the 410 rule apply to the probes as to any attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::timestamp::Timestamp;

/// The highest rate limit, in deliveries per second: a subscription's pace is one stored item,
/// written once per delivery (twice with an in-flight cap), and DynamoDB gives one item at most
/// 1,000 writes per second. A subscriber that takes more needs no limit.
pub const MAX_RATE: u32 = 500;
/// The most deliveries a subscription may allow in flight: each holds a place in the pace item
/// (about 60 bytes), and a write is billed by the item's size (a unit per KB).
pub const MAX_IN_FLIGHT: u32 = 100;
/// Consecutive failed attempts that open a circuit unless the subscription says otherwise.
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 5;
/// The most consecutive failures a subscription may ask for before its circuit opens.
pub const MAX_CIRCUIT_FAILURES: u32 = 1_000;
/// A failure rate opens the circuit only over at least this many attempts in its window.
pub const MIN_RATE_ATTEMPTS: u32 = 10;
/// The failure-rate window unless the subscription says otherwise, and its bounds.
pub const DEFAULT_WINDOW_SECONDS: u32 = 300;
pub const MIN_WINDOW_SECONDS: u32 = 10;
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
/// The longest a delivery waits in process for its turn; a later turn is waited for on the
/// queue.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// How long an in-flight slot is held at most: the longest attempt, and some.
pub const SLOT_LEASE: Duration = Duration::from_secs(60);
/// The first probe of an open circuit comes this long after it opened.
pub const FIRST_PROBE_AFTER: Duration = Duration::from_secs(30);
/// The longest wait between probes.
pub const MAX_PROBE_AFTER: Duration = Duration::from_secs(3_600);
/// How long one delivery may be the probe before another may try.
pub const PROBE_LEASE: Duration = Duration::from_secs(60);

/// What a subscription asks of its deliveries' pace and when its circuit opens. All optional:
/// a subscription that sets none is delivered as fast as its subscriber answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pacing {
    /// Deliveries started per second at most, across every fan-out instance (1 to 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Deliveries awaiting their answer at most, across every fan-out instance (1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Consecutive failed attempts that open the circuit (1 to 1000; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_failures: Option<u32>,
    /// Also open the circuit when this percentage of the attempts within
    /// `circuit_window_seconds` failed (1 to 100; at least 10 attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_failure_rate: Option<u32>,
    /// The failure-rate window, in seconds (10 to 86400; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_window_seconds: Option<u32>,
}

impl Pacing {
    pub fn is_default(&self) -> bool {
        *self == Pacing::default()
    }

    /// Checks the numbers against their bounds; the reason names the field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let within = |field: &'static str, value: Option<u32>, low: u32, high: u32| match value {
            Some(v) if !(low..=high).contains(&v) => {
                Err(Invalid::new(field, format!("{field} must be between {low} and {high}, not {v}")))
            }
            _ => Ok(()),
        };
        within("rate_limit", self.rate_limit, 1, MAX_RATE)?;
        within("max_in_flight", self.max_in_flight, 1, MAX_IN_FLIGHT)?;
        within("circuit_failures", self.circuit_failures, 1, MAX_CIRCUIT_FAILURES)?;
        within("circuit_failure_rate", self.circuit_failure_rate, 1, 100)?;
        within("circuit_window_seconds", self.circuit_window_seconds, MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS)?;
        if self.circuit_window_seconds.is_some() && self.circuit_failure_rate.is_none() {
            return Err(Invalid::new(
                "circuit_window_seconds",
                "circuit_window_seconds applies to circuit_failure_rate, which is not set",
            ));
        }
        Ok(())
    }

    /// Whether deliveries go through the shared pace (a rate, a cap, or a failure rate to
    /// count); the others cost no store access for it.
    pub fn is_shared(&self) -> bool {
        self.rate_limit.is_some() || self.max_in_flight.is_some() || self.circuit_failure_rate.is_some()
    }

    pub fn failures_to_open(&self) -> u32 {
        self.circuit_failures.unwrap_or(DEFAULT_CIRCUIT_FAILURES)
    }

    /// The failure-rate window, in seconds.
    pub fn window_seconds(&self) -> u32 {
        self.circuit_window_seconds.unwrap_or(DEFAULT_WINDOW_SECONDS)
    }

    fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_seconds()))
    }
}

/// A subscription's circuit as stored on it: the run of failures, and whether it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Circuit {
    /// Failed attempts since the last success.
    #[serde(default, skip_serializing_if = "crate::serde_util::is_zero")]
    pub consecutive_failures: u32,
    /// Set while the circuit is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenCircuit>,
}

/// An open circuit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenCircuit {
    pub since: Timestamp,
    /// Why it opened, in words.
    pub reason: String,
    /// When the next probe may go.
    pub probe_at: Timestamp,
    /// The wait before the next probe after this one fails, in seconds.
    pub backoff_seconds: u64,
    /// Set while a delivery is the probe, until when it may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probing_until: Option<Timestamp>,
}

impl Circuit {
    pub fn is_default(&self) -> bool {
        *self == Circuit::default()
    }

    /// Opens the circuit at `now`, the first probe after [`FIRST_PROBE_AFTER`].
    pub fn open(&mut self, reason: String, now: Timestamp) {
        let backoff = FIRST_PROBE_AFTER.as_secs();
        self.open = Some(OpenCircuit {
            since: now,
            reason,
            probe_at: now.plus_seconds(backoff),
            backoff_seconds: backoff,
            probing_until: None,
        });
    }

    /// A failed probe: the next one after twice the wait, at most [`MAX_PROBE_AFTER`].
    pub fn probe_failed(&mut self, now: Timestamp) {
        if let Some(open) = &mut self.open {
            let backoff = open.backoff_seconds.saturating_mul(2).clamp(1, MAX_PROBE_AFTER.as_secs());
            open.probe_at = now.plus_seconds(open.backoff_seconds);
            open.backoff_seconds = backoff;
            open.probing_until = None;
        }
    }

    /// What a delivery finds at `now`: go ahead, be the probe (the caller then claims it), or
    /// wait this long.
    pub fn gate(&self, now: Timestamp) -> Gate {
        let Some(open) = &self.open else { return Gate::Closed };
        if now < open.probe_at {
            return Gate::Wait(duration_between(now, open.probe_at));
        }
        match open.probing_until {
            Some(until) if now < until => Gate::Wait(duration_between(now, until)),
            _ => Gate::Probe,
        }
    }

    /// Claims the probe for a delivery at `now`; false if another has it or the circuit closed.
    pub fn claim_probe(&mut self, now: Timestamp) -> bool {
        if self.gate(now) != Gate::Probe {
            return false;
        }
        if let Some(open) = &mut self.open {
            open.probing_until = Some(now.plus_seconds(PROBE_LEASE.as_secs()));
        }
        true
    }
}

fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    let ms = to.unix_millis().saturating_sub(from.unix_millis()).max(0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// What an open or closed circuit lets a delivery do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// The probe may go: the first to claim it sends.
    Probe,
    Wait(Duration),
}

/// A subscription's pace, shared by every fan-out instance through the store (written over the
/// version read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaceState {
    /// When the next delivery may start without exceeding the rate, Unix microseconds.
    #[serde(default)]
    pub next_us: i64,
    /// Deliveries in flight: holder → until when its slot is held (Unix milliseconds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub in_flight: BTreeMap<String, i64>,
    /// The failure-rate window: its start (Unix milliseconds), attempts and failures in it.
    #[serde(default)]
    pub window_start_ms: i64,
    #[serde(default)]
    pub window_attempts: u32,
    #[serde(default)]
    pub window_failures: u32,
}

/// A delivery's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Start after this long (zero: now); the slot is held.
    Go(Duration),
    /// Not within [`MAX_WAIT`]: come back after this long. Nothing is held.
    Later(Duration),
}

impl PaceState {
    /// Takes a turn for `holder` at `now` under `pacing`.
    pub fn take(&mut self, pacing: &Pacing, holder: &str, now: Timestamp) -> Turn {
        let now_ms = now.unix_millis();
        self.in_flight.retain(|_, until| *until > now_ms);
        if let Some(cap) = pacing.max_in_flight
            && self.in_flight.len() >= cap as usize
        {
            // The earliest a slot lapses; a release usually comes sooner, so look again within
            // a second.
            let lapse = self.in_flight.values().min().copied().unwrap_or(now_ms);
            let wait = lapse.saturating_sub(now_ms).clamp(100, 1_000);
            return Turn::Later(Duration::from_millis(u64::try_from(wait).unwrap_or(1_000)));
        }
        let now_us = now_ms.saturating_mul(1_000);
        let start_us = match pacing.rate_limit {
            Some(rate) => {
                let start = self.next_us.max(now_us);
                let wait_us = start - now_us;
                if wait_us > MAX_WAIT.as_micros() as i64 {
                    return Turn::Later(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)) - MAX_WAIT / 2);
                }
                self.next_us = start + 1_000_000 / i64::from(rate.max(1));
                start
            }
            None => now_us,
        };
        let wait = Duration::from_micros(u64::try_from(start_us - now_us).unwrap_or(0));
        if pacing.max_in_flight.is_some() {
            let until = now_ms + wait.as_millis() as i64 + SLOT_LEASE.as_millis() as i64;
            self.in_flight.insert(holder.to_owned(), until);
        }
        Turn::Go(wait)
    }

    /// Frees `holder`'s slot; false if it held none.
    pub fn release(&mut self, holder: &str) -> bool {
        self.in_flight.remove(holder).is_some()
    }

    /// Counts an attempt in the failure-rate window; true when the rate now opens the circuit.
    pub fn count(&mut self, pacing: &Pacing, failed: bool, now: Timestamp) -> bool {
        let Some(rate) = pacing.circuit_failure_rate else { return false };
        let now_ms = now.unix_millis();
        if now_ms.saturating_sub(self.window_start_ms) >= pacing.window().as_millis() as i64 {
            self.window_start_ms = now_ms;
            self.window_attempts = 0;
            self.window_failures = 0;
        }
        self.window_attempts = self.window_attempts.saturating_add(1);
        self.window_failures = self.window_failures.saturating_add(u32::from(failed));
        failed
            && self.window_attempts >= MIN_RATE_ATTEMPTS
            && u64::from(self.window_failures) * 100 >= u64::from(rate) * u64::from(self.window_attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn bounds_are_checked_and_named() {
        assert!(Pacing::default().validate().is_ok());
        let refused = Pacing { rate_limit: Some(0), ..Pacing::default() }.validate().unwrap_err();
        assert_eq!(refused.field, "rate_limit");
        let refused = Pacing { max_in_flight: Some(101), ..Pacing::default() }.validate().unwrap_err();
        assert!(refused.reason.contains("between 1 and 100,"), "{}", refused.reason);
        let refused = Pacing { circuit_window_seconds: Some(60), ..Pacing::default() }.validate().unwrap_err();
        assert_eq!(refused.field, "circuit_window_seconds");
        assert!(Pacing { circuit_failure_rate: Some(101), ..Pacing::default() }.validate().is_err());
    }

    #[test]
    fn starts_are_spaced_by_the_rate_and_far_turns_wait_on_the_queue() {
        let pacing = Pacing { rate_limit: Some(10), ..Pacing::default() };
        let mut state = PaceState::default();
        let turns: Vec<Turn> = (0..51).map(|i| state.take(&pacing, &format!("d{i}"), at_ms(0))).collect();
        assert_eq!(turns[0], Turn::Go(Duration::ZERO));
        assert_eq!(turns[1], Turn::Go(Duration::from_millis(100)));
        assert_eq!(turns[50], Turn::Go(Duration::from_secs(5)));
        // The 52nd would start 5.1 s from now: it goes back to the queue, holding nothing.
        let before = state.clone();
        assert!(matches!(state.take(&pacing, "late", at_ms(0)), Turn::Later(d) if d >= Duration::from_secs(2)));
        assert_eq!(state, before);
        // An idle subscription does not bank turns for a burst later.
        let mut idle = PaceState::default();
        idle.take(&pacing, "a", at_ms(0));
        assert_eq!(idle.take(&pacing, "b", at_ms(60_000)), Turn::Go(Duration::ZERO));
        assert_eq!(idle.take(&pacing, "c", at_ms(60_000)), Turn::Go(Duration::from_millis(100)));
    }

    #[test]
    fn in_flight_slots_are_held_until_released_or_lapsed() {
        let pacing = Pacing { max_in_flight: Some(2), ..Pacing::default() };
        let mut state = PaceState::default();
        assert_eq!(state.take(&pacing, "a", at_ms(0)), Turn::Go(Duration::ZERO));
        assert_eq!(state.take(&pacing, "b", at_ms(0)), Turn::Go(Duration::ZERO));
        assert!(matches!(state.take(&pacing, "c", at_ms(0)), Turn::Later(_)));
        assert!(state.release("a"));
        assert!(!state.release("a"));
        assert_eq!(state.take(&pacing, "c", at_ms(0)), Turn::Go(Duration::ZERO));
        // b never releases (its instance died): its slot lapses.
        let later = at_ms(SLOT_LEASE.as_millis() as i64 + 1);
        state.release("c");
        assert_eq!(state.take(&pacing, "d", later), Turn::Go(Duration::ZERO));
        assert_eq!(state.take(&pacing, "e", later), Turn::Go(Duration::ZERO));
    }

    #[test]
    fn a_failure_rate_opens_only_over_enough_attempts_in_the_window() {
        let pacing = Pacing { circuit_failure_rate: Some(50), circuit_window_seconds: Some(60), ..Pacing::default() };
        let mut state = PaceState::default();
        for i in 0..4 {
            assert!(!state.count(&pacing, false, at_ms(i)));
        }
        for i in 4..9 {
            assert!(!state.count(&pacing, true, at_ms(i)), "9 attempts are too few");
        }
        assert!(state.count(&pacing, true, at_ms(9)), "6 of 10 failed");
        // A new window starts from nothing.
        assert!(!state.count(&pacing, true, at_ms(61_000)));
        assert_eq!((state.window_attempts, state.window_failures), (1, 1));
    }

    #[test]
    fn an_open_circuit_lets_one_probe_through_and_backs_off() {
        let mut circuit = Circuit::default();
        assert_eq!(circuit.gate(at_ms(0)), Gate::Closed);
        circuit.open("5 consecutive failed attempts".into(), at_ms(0));
        assert_eq!(circuit.gate(at_ms(0)), Gate::Wait(FIRST_PROBE_AFTER));
        let probe_time = at_ms(30_000);
        assert_eq!(circuit.gate(probe_time), Gate::Probe);
        assert!(circuit.claim_probe(probe_time));
        assert!(!circuit.claim_probe(probe_time), "one probe at a time");
        assert_eq!(circuit.gate(probe_time), Gate::Wait(PROBE_LEASE));
        circuit.probe_failed(at_ms(31_000));
        assert_eq!(circuit.gate(at_ms(31_000)), Gate::Wait(Duration::from_secs(30)));
        assert_eq!(circuit.open.as_ref().unwrap().backoff_seconds, 60);
        for _ in 0..20 {
            circuit.probe_failed(at_ms(31_000));
        }
        assert_eq!(circuit.open.as_ref().unwrap().backoff_seconds, MAX_PROBE_AFTER.as_secs());
        // A probe that never reported back: another may try once its lease is over.
        let mut stuck = Circuit::default();
        stuck.open("x".into(), at_ms(0));
        assert!(stuck.claim_probe(probe_time));
        assert!(stuck.claim_probe(at_ms(30_000 + PROBE_LEASE.as_millis() as i64)));
    }
}
