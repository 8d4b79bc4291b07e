//! [`PrivacyStore`] on SQLite: privacy settings, the erase key, and erasing a recipient in one
//! transaction, then checkpointing the WAL so the erased bytes leave it too.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tidings_core::ports::{PrivacyStore, StoreError};
use tidings_core::privacy::{self, EraseKey, Erased, PrivacySettings};
use tidings_core::suppression::Suppression;
use tidings_core::timestamp::Timestamp;

use crate::store::{Versioned, settings_row, versioned_write};
use crate::{Sqlite, db_error, json_error};

fn suppression_row(tx: &Connection, workspace: &str, recipient: &str) -> Result<Option<Suppression>, StoreError> {
    let body: Option<String> = tx
        .query_row(
            "SELECT body FROM suppressions WHERE workspace = ?1 AND recipient = ?2",
            params![workspace, recipient],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_error)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_error)).transpose()
}

/// Removes `recipient` from the rows of one queue-like table (`queue_messages`,
/// `dead_letters`): messages about them received by `erased_at` are deleted (those received
/// after are the processor's to keep under the hash); messages that only mention them (another
/// recipient's provider record naming them) keep going with the mention replaced by `hash`.
fn erase_from_queue_table(
    tx: &Connection,
    table: &str,
    recipient: &str,
    hash: &str,
    erased_at: Timestamp,
) -> Result<u64, StoreError> {
    let mut touched = 0;
    let mut rows: Vec<(i64, String, String)> = Vec::new();
    {
        let mut select = tx
            .prepare(&format!("SELECT id, queue, body FROM {table} WHERE instr(lower(body), ?1) > 0"))
            .map_err(db_error)?;
        for form in privacy::forms(recipient) {
            let found = select
                .query_map(params![form], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_error)?
                .collect::<Result<Vec<(i64, String, String)>, _>>()
                .map_err(db_error)?;
            for row in found {
                if !rows.iter().any(|(id, ..)| *id == row.0) {
                    rows.push(row);
                }
            }
        }
    }
    for (id, queue, body) in rows {
        // Events and tasks are theirs when their event's recipient is.
        match privacy::queued_about(&body, recipient) {
            Some(received) if received > erased_at => continue,
            Some(_) => {
                tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id]).map_err(db_error)?;
            }
            // A resend carries a copy of the mail to them.
            None if queue == "resend" => {
                tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id]).map_err(db_error)?;
            }
            None => {
                tx.execute(
                    &format!("UPDATE {table} SET body = ?2 WHERE id = ?1"),
                    params![id, privacy::scrub(&body, recipient, hash)],
                )
                .map_err(db_error)?;
            }
        }
        touched += 1;
    }
    Ok(touched)
}

impl Sqlite {
    fn erase_now(
        &self,
        workspace: &str,
        recipient: &str,
        hash: &str,
        now: Timestamp,
        max_events: usize,
    ) -> Result<Erased, StoreError> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let at = now.unix_millis();
        // Noted first (in the same transaction here; on DynamoDB it must come first), so that
        // consumers holding the recipient's events drop them.
        tx.execute(
            "INSERT INTO erasures (workspace, hash, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (workspace, hash) DO UPDATE SET at = max(at, excluded.at)",
            params![workspace, hash, at],
        )
        .map_err(db_error)?;
        tx.execute(
            "UPDATE erase_keys SET last_erasure = max(coalesce(last_erasure, 0), ?2) WHERE workspace = ?1",
            params![workspace, at],
        )
        .map_err(db_error)?;
        let mut erased = Erased { hash: hash.to_owned(), ..Erased::default() };
        let found: Vec<(String, bool)> = {
            let mut select = tx
                .prepare_cached(
                    "SELECT id, raw != '' FROM events WHERE workspace = ?1 AND recipient = ?2 ORDER BY time_ms LIMIT ?3",
                )
                .map_err(db_error)?;
            select
                .query_map(params![workspace, recipient, max_events as i64 + 1], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?
        };
        let complete = found.len() <= max_events;
        for (id, had_raw) in found.iter().take(max_events) {
            tx.execute("DELETE FROM events WHERE workspace = ?1 AND id = ?2", params![workspace, id])
                .map_err(db_error)?;
            erased.events += 1;
            erased.raw_records += u64::from(*had_raw);
        }
        if complete {
            erased.message_states = tx
                .execute(
                    "DELETE FROM message_states WHERE workspace = ?1 AND recipient = ?2",
                    params![workspace, recipient],
                )
                .map_err(db_error)? as u64;
            if let Some(entry) = suppression_row(&tx, workspace, recipient)? {
                let existing = suppression_row(&tx, workspace, hash)?;
                let kept = privacy::hashed_suppression(&entry, existing.as_ref(), hash);
                tx.execute(
                    "DELETE FROM suppressions WHERE workspace = ?1 AND recipient = ?2",
                    params![workspace, recipient],
                )
                .map_err(db_error)?;
                tx.execute(
                    "INSERT OR REPLACE INTO suppressions (workspace, recipient, active, body) VALUES (?1, ?2, ?3, ?4)",
                    params![workspace, hash, kept.active, serde_json::to_string(&kept).map_err(json_error)?],
                )
                .map_err(db_error)?;
                erased.suppressions = 1;
            }
            erased.queued += erase_from_queue_table(&tx, "queue_messages", recipient, hash, now)?;
            erased.queued += erase_from_queue_table(&tx, "dead_letters", recipient, hash, now)?;
            // The local stand-in for SES: each row is a copy of a mail sent to the address.
            let mut outbox = 0;
            for form in privacy::forms(recipient) {
                outbox += tx
                    .execute("DELETE FROM outbox WHERE instr(lower(request), ?1) > 0", params![form])
                    .map_err(db_error)? as u64;
            }
            erased.queued += outbox;
        }
        erased.complete = complete;
        tx.commit().map_err(db_error)?;
        // The deleted rows' old pages live on in the WAL until it is copied back and truncated.
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db_error)?;
        Ok(erased)
    }
}

impl PrivacyStore for Sqlite {
    async fn privacy_settings(&self, workspace: &str) -> Result<Option<PrivacySettings>, StoreError> {
        let workspace = workspace.to_owned();
        let read = self.blocking(move |s| settings_row(&s.db(), Versioned::Privacy, &workspace)).await?;
        Ok(read.map(|(version, settings)| PrivacySettings { version, ..settings }))
    }

    async fn put_privacy_settings(&self, workspace: &str, settings: &PrivacySettings) -> Result<bool, StoreError> {
        let workspace = workspace.to_owned();
        let read = i64::try_from(settings.version).map_err(|_| StoreError::refused("settings version out of range"))?;
        let body = serde_json::to_string(&PrivacySettings { version: 0, ..settings.clone() }).map_err(json_error)?;
        self.blocking(move |s| versioned_write(&s.db(), Versioned::Privacy, &workspace, read, &body)).await
    }

    async fn erase_key(&self, workspace: &str, create: bool) -> Result<Option<EraseKey>, StoreError> {
        let workspace = workspace.to_owned();
        let made = if create {
            Some(EraseKey::generate().map_err(|_| StoreError::unavailable("no randomness for an erase key"))?)
        } else {
            None
        };
        self.blocking(move |s| {
            let db = s.db();
            if let Some(made) = made {
                db.execute(
                    "INSERT INTO erase_keys (workspace, secret) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![workspace, made.to_hex()],
                )
                .map_err(db_error)?;
            }
            let row: Option<(String, Option<i64>)> = db
                .query_row(
                    "SELECT secret, last_erasure FROM erase_keys WHERE workspace = ?1",
                    params![workspace],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_error)?;
            row.map(|(secret, last)| {
                EraseKey::from_hex(&secret, last.and_then(Timestamp::from_unix_millis))
                    .ok_or_else(|| StoreError::malformed("stored erase key is not 64 hex digits"))
            })
            .transpose()
        })
        .await
    }

    async fn erasure(&self, workspace: &str, hash: &str) -> Result<Option<Timestamp>, StoreError> {
        let (workspace, hash) = (workspace.to_owned(), hash.to_owned());
        self.blocking(move |s| {
            let at: Option<i64> = s
                .db()
                .query_row(
                    "SELECT at FROM erasures WHERE workspace = ?1 AND hash = ?2",
                    params![workspace, hash],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_error)?;
            Ok(at.and_then(Timestamp::from_unix_millis))
        })
        .await
    }

    async fn erase_recipient(
        &self,
        workspace: &str,
        recipient: &str,
        hash: &str,
        now: Timestamp,
        max_events: usize,
    ) -> Result<Erased, StoreError> {
        let (workspace, recipient, hash) = (workspace.to_owned(), recipient.to_owned(), hash.to_owned());
        self.blocking(move |s| s.erase_now(&workspace, &recipient, &hash, now, max_events.max(1))).await
    }
}
