//! The audit log: every administrative action on a workspace (what, when, with which API key,
//! and how it ended), kept by the store and listed newest first. An entry never holds a secret:
//! the key is named by its id, and path parameters that are personal data (a recipient) are
//! left out.

use serde::{Deserialize, Serialize};

use crate::timestamp::Timestamp;

/// One administrative action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Unique within the workspace; entries sort by it as by time.
    pub id: String,
    pub workspace: String,
    pub at: Timestamp,
    /// The id of the API key that acted (`key_…`), or `cli` for a command run against the store
    /// directly.
    pub key: String,
    /// What was done: the method and route (`POST /api/subscriptions/{id}/rotate`), or the
    /// command (`tidings keys create`).
    pub action: String,
    /// What it was done to: the route's parameters (`sub_…`), where they are not personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The HTTP status answered (0 for a command).
    pub status: u16,
    /// `succeeded`, `refused` (4xx: nothing changed) or `failed` (5xx).
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Refused,
    Failed,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Succeeded,
            400..=499 => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

impl AuditEntry {
    /// An entry at `at`, its id made of the time, a sequence number and a random part, so that
    /// ids sort by time and never collide.
    pub fn new(workspace: &str, key: &str, action: String, target: Option<String>, status: u16, at: Timestamp) -> Self {
        // Entries of one process in one millisecond keep their order by a sequence number; the
        // random part keeps those of concurrent instances apart.
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000;
        let random = crate::source::new_id("a");
        let id = format!("{:013}-{sequence:06}{}", at.unix_millis().max(0), random.trim_start_matches("a_"));
        AuditEntry {
            id,
            workspace: workspace.to_owned(),
            at,
            key: key.to_owned(),
            action,
            target,
            status,
            outcome: Outcome::of_status(status),
        }
    }
}

/// A page of the audit log, newest first; `next` continues it (an entry id: the page after
/// holds the entries before it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<String>,
}

/// Whether `text` can be an entry id (`<13 digits>-<letters and digits>`): what a cursor must be.
pub fn is_entry_id(text: &str) -> bool {
    let Some((ms, suffix)) = text.split_once('-') else { return false };
    ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && (1..=32).contains(&suffix.len())
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sort_by_time_and_ids_are_checked() {
        let early = AuditEntry::new(
            "ws",
            "key_1",
            "POST /api/sources".into(),
            None,
            201,
            Timestamp::from_unix_seconds(10).unwrap(),
        );
        let late = AuditEntry::new(
            "ws",
            "key_1",
            "POST /api/sources".into(),
            None,
            400,
            Timestamp::from_unix_seconds(11).unwrap(),
        );
        assert!(early.id < late.id);
        assert!(is_entry_id(&early.id), "{}", early.id);
        assert_eq!((early.outcome, late.outcome), (Outcome::Succeeded, Outcome::Refused));
        for bad in ["", "123-abc", "0000000000010-", "0000000000010-a b", "x000000000010-abc"] {
            assert!(!is_entry_id(bad), "{bad:?}");
        }
    }
}
