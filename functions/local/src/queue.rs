//! The queues on SQLite, as SQS behaves: receive with a visibility timeout, delete by receipt,
//! change visibility, dead letters with their reason and the move back; and the outbox that
//! stands in for SES locally.

use rusqlite::{TransactionBehavior, params};
use tidings_core::ports::{
    Consumer, DeadLetterStatus, DeadLetters, MoveMethod, Outgoing, Queue, QueueName, Received, Settlement, StoreError,
};

use crate::{DeadLetter, Sqlite, db_error, json_error, now_ms, receipt_id};

impl Sqlite {
    /// Up to `max` visible messages of `queue`, each hidden for `visibility_seconds`. Messages
    /// received more than `max_receives` times go to the dead-letter queue instead.
    pub fn receive(&self, queue: QueueName, max: usize, visibility_seconds: u32) -> Result<Vec<Received>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let now = now_ms();
        let rows: Vec<(i64, String, u32)> = {
            let mut select = tx
                .prepare_cached("SELECT id, body, receive_count FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3")
                .map_err(db_error)?;
            select
                .query_map(params![queue.as_str(), now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, body, count) in rows {
            let count = count + 1;
            if count > self.max_receives {
                tx.execute(
                    "INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![queue.as_str(), body, format!("received {} times without being processed", count - 1), count - 1, now],
                )
                .map_err(db_error)?;
                tx.execute("DELETE FROM queue_messages WHERE id = ?1", params![id]).map_err(db_error)?;
                continue;
            }
            let receipt = format!("{id}:{count}");
            tx.execute(
                "UPDATE queue_messages SET receive_count = ?2, visible_at = ?3, receipt = ?4 WHERE id = ?1",
                params![id, count, now + i64::from(visibility_seconds) * 1000, receipt],
            )
            .map_err(db_error)?;
            out.push(Received { id: id.to_string(), receipt, body, receive_count: count });
        }
        tx.commit().map_err(db_error)?;
        Ok(out)
    }

    /// Deletes a received message; `false` when the receipt is stale (it was received again).
    pub fn delete(&self, queue: QueueName, receipt: &str) -> Result<bool, StoreError> {
        Ok(self.delete_all(queue, &[receipt])? > 0)
    }

    /// Deletes received messages in one transaction (SQS `DeleteMessageBatch`); how many were
    /// still current (stale receipts are skipped).
    pub fn delete_all(&self, queue: QueueName, receipts: &[&str]) -> Result<usize, StoreError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(db_error)?;
        let mut deleted = 0;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM queue_messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3")
                .map_err(db_error)?;
            for receipt in receipts {
                if let Some(id) = receipt_id(receipt) {
                    deleted += delete.execute(params![id, queue.as_str(), receipt]).map_err(db_error)?;
                }
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(deleted)
    }

    /// Hides a received message for `seconds` from now (SQS ChangeMessageVisibility).
    pub fn change_visibility(&self, queue: QueueName, receipt: &str, seconds: u32) -> Result<bool, StoreError> {
        let Some(id) = receipt_id(receipt) else { return Ok(false) };
        let changed = self
            .db()
            .execute(
                "UPDATE queue_messages SET visible_at = ?4 WHERE id = ?1 AND queue = ?2 AND receipt = ?3",
                params![id, queue.as_str(), receipt, now_ms() + i64::from(seconds) * 1000],
            )
            .map_err(db_error)?;
        Ok(changed > 0)
    }

    /// Puts a message on `queue`'s dead-letter queue with the reason it could not be processed.
    pub fn dead_letter(
        &self,
        queue: QueueName,
        body: &str,
        reason: &str,
        receive_count: u32,
    ) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![queue.as_str(), body, reason, receive_count, now_ms()],
            )
            .map_err(db_error)?;
        Ok(())
    }

    pub fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, StoreError> {
        let db = self.db();
        let mut select = db
            .prepare_cached(
                "SELECT id, queue, body, reason, receive_count FROM dead_letters WHERE queue = ?1 ORDER BY id",
            )
            .map_err(db_error)?;
        select
            .query_map(params![queue.as_str()], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    queue: r.get(1)?,
                    body: r.get(2)?,
                    reason: r.get(3)?,
                    receive_count: r.get(4)?,
                })
            })
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    /// How many messages wait on `queue`'s dead-letter queue.
    pub fn dead_letter_count(&self, queue: QueueName) -> Result<u64, StoreError> {
        let count: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM dead_letters WHERE queue = ?1", params![queue.as_str()], |r| r.get(0))
            .map_err(db_error)?;
        Ok(count.try_into().unwrap_or(0))
    }

    /// Moves every dead letter of `queue` back onto it; returns how many moved.
    pub fn redrive(&self, queue: QueueName) -> Result<usize, StoreError> {
        let mut db = self.db();
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let moved = tx
            .execute(
                "INSERT INTO queue_messages (queue, body, visible_at) SELECT queue, body, ?2 FROM dead_letters WHERE queue = ?1 ORDER BY id",
                params![queue.as_str(), now_ms()],
            )
            .map_err(db_error)?;
        tx.execute("DELETE FROM dead_letters WHERE queue = ?1", params![queue.as_str()]).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(moved)
    }

    /// Messages on `queue`, visible or in flight.
    pub fn depth(&self, queue: QueueName) -> Result<usize, StoreError> {
        let count: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM queue_messages WHERE queue = ?1", params![queue.as_str()], |r| r.get(0))
            .map_err(db_error)?;
        Ok(count as usize)
    }

    /// The messages on `queue` (id and body), due, delayed or in flight, oldest first; read
    /// without receiving them.
    pub fn peek(&self, queue: QueueName) -> Result<Vec<(String, String)>, StoreError> {
        self.db()
            .prepare_cached("SELECT id, body FROM queue_messages WHERE queue = ?1 ORDER BY id")
            .and_then(|mut select| {
                select
                    .query_map(params![queue.as_str()], |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?)))?
                    .collect()
            })
            .map_err(db_error)
    }

    /// Deletes what is past its retention: events, provider records kept for less, message
    /// states, attempts, nonces, counters, delivery claims and idle subscriptions' paces.
    pub fn expire(&self) -> Result<usize, StoreError> {
        let now = now_ms() / 1000;
        let db = self.db();
        let events = db.execute("DELETE FROM events WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("UPDATE events SET raw = '', raw_expires = NULL WHERE raw_expires < ?1", params![now])
            .map_err(db_error)?;
        db.execute("DELETE FROM message_states WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("DELETE FROM attempts WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("DELETE FROM nonces WHERE expires < ?1", params![now]).map_err(db_error)?;
        // Counters are kept as long as events are by default: 90 days.
        let oldest_hour = now
            .saturating_sub(i64::try_from(tidings_core::pipeline::DEFAULT_RETENTION_DAYS * 86_400).unwrap_or(i64::MAX));
        db.execute("DELETE FROM counters WHERE hour < ?1", params![oldest_hour]).map_err(db_error)?;
        db.execute("DELETE FROM delivery_claims WHERE expires < ?1", params![now]).map_err(db_error)?;
        db.execute("DELETE FROM pace WHERE until < ?1", params![now]).map_err(db_error)?;
        Ok(events)
    }
}

/// Locally, resends go to the outbox table instead of SES (`tidings outbox` lists them).
impl tidings_core::ports::Emailer for Sqlite {
    async fn send_email(&self, request: &serde_json::Value) -> Result<String, tidings_core::retryable::SendError> {
        let request = request.to_string();
        let stored = self
            .blocking(move |s| {
                let db = s.db();
                db.execute("INSERT INTO outbox (request, sent_at) VALUES (?1, ?2)", params![request, now_ms()])
                    .map_err(db_error)?;
                Ok(db.last_insert_rowid())
            })
            .await;
        match stored {
            Ok(id) => Ok(format!("local-{id}")),
            Err(error) => Err(tidings_core::retryable::SendError {
                name: Some("OutboxUnavailable".into()),
                message: Some(error.message().to_owned()),
                ..Default::default()
            }),
        }
    }
}
impl Sqlite {
    /// The resends written to the local outbox, oldest first: (id, request).
    pub fn outbox(&self) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
        let db = self.db();
        let mut select = db.prepare_cached("SELECT id, request FROM outbox ORDER BY id").map_err(db_error)?;
        let rows: Vec<(i64, String)> = select
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        rows.into_iter().map(|(id, text)| serde_json::from_str(&text).map(|v| (id, v)).map_err(json_error)).collect()
    }
}

/// Locally both methods move every dead letter back at once, in one transaction.
impl DeadLetters for Sqlite {
    async fn dead_letter_status(&self, queue: QueueName) -> Result<DeadLetterStatus, StoreError> {
        let waiting = self.blocking(move |s| s.dead_letter_count(queue)).await?;
        Ok(DeadLetterStatus { queue: queue.as_str().into(), waiting, ..DeadLetterStatus::default() })
    }

    async fn redrive_dead_letters(&self, queue: QueueName, _: MoveMethod) -> Result<DeadLetterStatus, StoreError> {
        let (moved, waiting) =
            self.blocking(move |s| Ok((s.redrive(queue)? as u64, s.dead_letter_count(queue)?))).await?;
        Ok(DeadLetterStatus {
            queue: queue.as_str().into(),
            waiting,
            status: Some("COMPLETED".into()),
            moved,
            to_move: Some(moved),
            failure: None,
        })
    }
}

impl Queue for Sqlite {
    async fn send(&self, queue: QueueName, messages: &[Outgoing]) -> Result<(), StoreError> {
        let messages: Vec<(String, u32)> = messages.iter().map(|m| (m.body.clone(), m.delay_seconds)).collect();
        self.blocking(move |s| {
            let mut db = s.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
            let now = now_ms();
            for (body, delay_seconds) in messages {
                tx.execute(
                    "INSERT INTO queue_messages (queue, body, visible_at) VALUES (?1, ?2, ?3)",
                    params![queue.as_str(), body, now + i64::from(delay_seconds) * 1000],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)
        })
        .await
    }
}

/// The consumer port on SQLite: what `tidings dev`'s worker receives and settles through.
impl Consumer for Sqlite {
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility_seconds: u32,
    ) -> Result<Vec<Received>, StoreError> {
        self.blocking(move |s| s.receive(queue, max, visibility_seconds)).await
    }

    async fn settle(&self, queue: QueueName, batch: &[(Received, Settlement)]) -> Vec<String> {
        let owned = batch.to_vec();
        match self.blocking(move |s| Ok(s.settle_batch(queue, &owned))).await {
            Ok(back) => back,
            // Nothing was settled: every message comes back after its visibility timeout.
            Err(_) => batch.iter().map(|(message, _)| message.id.clone()).collect(),
        }
    }
}

impl Sqlite {
    /// [`Consumer::settle`] in one call: delays and retries hide their message until then,
    /// dead letters are written with their reason, and the handled ones are deleted together.
    fn settle_batch(&self, queue: QueueName, batch: &[(Received, Settlement)]) -> Vec<String> {
        let seconds = |delay: &std::time::Duration| u32::try_from(delay.as_secs()).unwrap_or(u32::MAX);
        let mut back = Vec::new();
        let mut done = Vec::new();
        for (message, settlement) in batch {
            match settlement {
                Settlement::Done => done.push(message.receipt.as_str()),
                Settlement::Later(delay) | Settlement::Retry { backoff: delay } => {
                    // A receipt gone stale (received again meanwhile) changes nothing.
                    let _ = self.change_visibility(queue, &message.receipt, seconds(delay));
                    back.push(message.id.clone());
                }
                Settlement::DeadLetter(reason) => {
                    match self.dead_letter(queue, &message.body, reason, message.receive_count) {
                        Ok(()) => done.push(message.receipt.as_str()),
                        Err(_) => back.push(message.id.clone()),
                    }
                }
            }
        }
        // Not deleted, they come back after the visibility timeout and are handled again, as on
        // SQS.
        let _ = self.delete_all(queue, &done);
        back
    }
}
