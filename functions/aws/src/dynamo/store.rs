//! The [`Store`] port on DynamoDB.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use tidings_core::auth::{NonceCheck, ReplayClaim};
use tidings_core::delivery::AttemptRecord;
use tidings_core::event::{CanonicalEvent, EventId};
use tidings_core::ports::{
    ApiKey, Claim, DeliveryClaim, DeliveryStore, EventPage, EventQuery, EventStore, Expiry, KeyStore, NonceStore,
    QueuedEvent, Recorded, SourceStore, StoreError, SubscriptionStore,
};
use tidings_core::source::Source;
use tidings_core::state::MessageState;
use tidings_core::subscription::Subscription;
use tidings_core::suppression::Suppression;
use tidings_core::timestamp::Timestamp;

use crate::classify;

use super::items::{
    attempts_pk, deflate, delivered_pk, event_parts, event_pk, event_sk, inflate, json, message_pk, n, number, raw_sk,
    s, text, to_json,
};
use super::{DynamoStore, Item};

impl SourceStore for DynamoStore {
    async fn put_source(&self, source: &Source) -> Result<(), StoreError> {
        // As stored: replacing a source must not depend on reading its secrets.
        if let Some(existing) = self.stored_source(&source.id).await?
            && existing.workspace != source.workspace
        {
            return Err(StoreError::refused(format!("source {} belongs to another workspace", source.id)));
        }
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("SRC#{}", source.id))),
            ("SK".to_owned(), s("SRC")),
            ("GSI1PK".to_owned(), s(format!("WS#{}#SOURCES", source.workspace))),
            ("GSI1SK".to_owned(), s(&source.id)),
            ("d".to_owned(), s(to_json(source)?)),
        ]))
        .await
    }

    async fn source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        match (self.stored_source(id).await?, &self.secrets) {
            (Some(mut source), Some(secrets)) => {
                secrets.resolve(&mut source).await?;
                Ok(Some(source))
            }
            (source, _) => Ok(source),
        }
    }

    async fn sources(&self, workspace: &str) -> Result<Vec<Source>, StoreError> {
        let items = self
            .query_all(
                Some("GSI1"),
                "GSI1PK = :pk",
                vec![(":pk", s(format!("WS#{workspace}#SOURCES")))],
                true,
                |i| json(text(i, "d")?).map(Some),
                usize::MAX,
            )
            .await?;
        Ok(items)
    }

    async fn delete_source(&self, workspace: &str, id: &str) -> Result<bool, StoreError> {
        self.usage.wrote("DeleteItem", &format!("SRC#{id}"), 1);
        let result = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(format!("SRC#{id}")))
            .key("SK", s("SRC"))
            .condition_expression("GSI1PK = :ws")
            .expression_attribute_values(":ws", s(format!("WS#{workspace}#SOURCES")))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify("DeleteItem", &e)),
        }
    }
}

impl NonceStore for DynamoStore {
    async fn claim_nonce(&self, claim: &ReplayClaim) -> Result<NonceCheck, StoreError> {
        let pk = format!("NONCE#{}#{}", claim.provider, claim.nonce);
        let now = Timestamp::now().unix_seconds();
        // A nonce past its window may still be in the table (TTL deletion lags): overwrite it.
        // A small item: one write unit, refused or not.
        self.usage.wrote("PutItem", &pk, 1);
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("PK", s(&pk))
            .item("SK", s("NONCE"))
            .item("fp", AttributeValue::B(Blob::new(claim.fingerprint.to_vec())))
            .item("ttl", n(claim.remember_until.unix_seconds()))
            .condition_expression("attribute_not_exists(PK) OR #ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(NonceCheck::Fresh),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let existing = self.get(&pk, "NONCE").await?;
                let same = matches!(existing.as_ref().and_then(|i| i.get("fp")), Some(AttributeValue::B(b)) if b.as_ref() == claim.fingerprint);
                Ok(if same { NonceCheck::SameRequest } else { NonceCheck::Reused })
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }
}

impl EventStore for DynamoStore {
    async fn record(&self, queued: &QueuedEvent, expires_at: Expiry) -> Result<Recorded, StoreError> {
        let mut results = self.record_all(&[(queued, expires_at)]).await;
        results.pop().unwrap_or_else(|| Err(StoreError::refused("no result for the event")))
    }

    async fn record_batch(&self, events: &[(&QueuedEvent, Expiry)]) -> Vec<Result<Recorded, StoreError>> {
        self.record_all(events).await
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        self.event_page(query).await
    }

    async fn event(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<CanonicalEvent>, StoreError> {
        let item = self.get(&event_pk(workspace, message_id, event.as_str()), &event_sk(event.as_str())).await?;
        item.map(|i| json(&event_parts(&i)?.0)).transpose()
    }

    async fn has_event(&self, workspace: &str, message_id: Option<&str>, event: &EventId) -> Result<bool, StoreError> {
        // Eventually consistent (half a read unit for an item under 4 KB) and not decoded.
        let item =
            self.get_with(&event_pk(workspace, message_id, event.as_str()), &event_sk(event.as_str()), false).await?;
        Ok(item.is_some())
    }

    async fn raw(
        &self,
        workspace: &str,
        message_id: Option<&str>,
        event: &EventId,
    ) -> Result<Option<String>, StoreError> {
        let pk = event_pk(workspace, message_id, event.as_str());
        let Some(item) = self.get(&pk, &event_sk(event.as_str())).await? else { return Ok(None) };
        let (_, _, raw) = event_parts(&item)?;
        if !raw.is_empty() {
            return Ok(Some(raw));
        }
        // Kept apart when it expires before its event; TTL deletes lag, so its time is checked.
        let Some(apart) = self.get(&pk, &raw_sk(event.as_str())).await? else { return Ok(Some(raw)) };
        if number(&apart, "ttl").is_some_and(|ttl| ttl < Timestamp::now().unix_seconds()) {
            return Ok(Some(String::new()));
        }
        inflate(&apart, "z").map(Some)
    }

    async fn message_states(&self, workspace: &str, message_id: &str) -> Result<Vec<MessageState>, StoreError> {
        let items = self
            .query_all(
                None,
                "PK = :pk AND begins_with(SK, :state)",
                vec![(":pk", s(message_pk(workspace, message_id))), (":state", s("STATE#"))],
                true,
                |i| json(text(i, "d")?).map(Some),
                usize::MAX,
            )
            .await?;
        Ok(items)
    }

    async fn suppressions(&self, workspace: &str) -> Result<Vec<Suppression>, StoreError> {
        let active = |item: &Item| match item.get("active") {
            Some(AttributeValue::Bool(true)) => json(text(item, "d")?).map(Some),
            _ => Ok(None),
        };
        self.query_all(None, "PK = :pk", vec![(":pk", s(format!("WS#{workspace}#SUPP")))], true, active, usize::MAX)
            .await
    }

    async fn suppression(&self, workspace: &str, recipient: &str) -> Result<Option<Suppression>, StoreError> {
        let item = self.get(&format!("WS#{workspace}#SUPP"), recipient).await?;
        item.map(|item| json(text(&item, "d")?)).transpose()
    }

    async fn remove_suppression(&self, workspace: &str, recipient: &str) -> Result<bool, StoreError> {
        let pk = format!("WS#{workspace}#SUPP");
        let Some(item) = self.get(&pk, recipient).await? else { return Ok(false) };
        let mut entry: Suppression = json(text(&item, "d")?)?;
        if !entry.active {
            return Ok(false);
        }
        entry.active = false;
        entry.as_of = Timestamp::now().max(entry.as_of);
        let version = number(&item, "v").unwrap_or(0);
        self.usage.wrote("PutItem", &pk, super::write_units(&item));
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .item("PK", s(pk))
            .item("SK", s(recipient))
            .item("active", AttributeValue::Bool(false))
            .item("d", s(to_json(&entry)?))
            .item("v", n(version + 1))
            .condition_expression("v = :v")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::contended("suppression changed while being removed; try again"))
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }
}

impl SubscriptionStore for DynamoStore {
    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let version = i64::try_from(subscription.version).map_err(|_| StoreError::refused("version out of range"))?;
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("WS#{}#SUBS", subscription.workspace))),
            ("SK".to_owned(), s(&subscription.id)),
            ("d".to_owned(), s(to_json(subscription)?)),
            ("v".to_owned(), n(version)),
        ]))
        .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<bool, StoreError> {
        let mut next = subscription.clone();
        next.version += 1;
        let version = i64::try_from(subscription.version).map_err(|_| StoreError::refused("version out of range"))?;
        let item = HashMap::from([
            ("PK".to_owned(), s(format!("WS#{}#SUBS", subscription.workspace))),
            ("SK".to_owned(), s(&subscription.id)),
            ("d".to_owned(), s(to_json(&next)?)),
            ("v".to_owned(), n(version + 1)),
        ]);
        // An item written before versions has no `v`: it is version 0.
        let condition = if version == 0 {
            "attribute_exists(PK) AND (attribute_not_exists(v) OR v = :v)"
        } else {
            "attribute_exists(PK) AND v = :v"
        };
        self.put_if(item, condition, vec![(":v", n(version))]).await
    }

    async fn subscription(&self, workspace: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        self.get(&format!("WS#{workspace}#SUBS"), id).await?.map(|item| json(text(&item, "d")?)).transpose()
    }

    async fn subscriptions(&self, workspace: &str) -> Result<Vec<Subscription>, StoreError> {
        let pk = s(format!("WS#{workspace}#SUBS"));
        self.query_all(None, "PK = :pk", vec![(":pk", pk)], true, |i| json(text(i, "d")?).map(Some), usize::MAX).await
    }
}

impl DeliveryStore for DynamoStore {
    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
        // One item per subscription: a fan-out batch's ten attempts cost one write of ~1 KB
        // (deflated), not ten. Sorted by its newest attempt, newest first.
        let mut groups: BTreeMap<(&str, &str), Vec<&AttemptRecord>> = BTreeMap::new();
        for attempt in attempts {
            groups.entry((attempt.workspace.as_str(), attempt.subscription.as_str())).or_default().push(attempt);
        }
        try_join_all(groups.into_iter().map(|((workspace, subscription), mut group)| {
            group.sort_by_key(|a| std::cmp::Reverse((a.at, a.attempt)));
            let newest = group[0];
            let sk = format!("{:013}#{}#{:03}", newest.at.unix_millis().max(0), newest.event_id, newest.attempt);
            let item = to_json(&group).map(|json| {
                HashMap::from([
                    ("PK".to_owned(), s(attempts_pk(workspace, subscription))),
                    ("SK".to_owned(), s(sk)),
                    ("z".to_owned(), deflate(&json)),
                    ("ttl".to_owned(), n(newest.at.unix_seconds() + tidings_core::delivery::ATTEMPT_RETENTION_SECONDS)),
                ])
            });
            async move { self.put(item?).await }
        }))
        .await?;
        Ok(())
    }

    async fn attempts(
        &self,
        workspace: &str,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let pk = s(attempts_pk(workspace, subscription));
        // An item holds the attempts of one write (`z`, newest first), or one attempt (`d`,
        // as items written before attempts were grouped).
        let groups: Vec<Vec<AttemptRecord>> = self
            .query_all(
                None,
                "PK = :pk",
                vec![(":pk", pk)],
                false,
                |i| match i.contains_key("z") {
                    true => json(&inflate(i, "z")?).map(Some),
                    false => json(text(i, "d")?).map(|one| Some(vec![one])),
                },
                limit.max(1),
            )
            .await?;
        let mut log: Vec<AttemptRecord> = groups.into_iter().flatten().collect();
        log.truncate(limit);
        Ok(log)
    }

    async fn claim_delivery(&self, claim: &DeliveryClaim<'_>, now: Timestamp) -> Result<Claim, StoreError> {
        // One item per delivery (not one partition per subscription, which a busy subscriber
        // would make hot), kept 14 days: longer than any copy of its task can live in SQS. A claim
        // has a holder and a lease; the mark that replaces it after a 2xx has neither.
        let pk = delivered_pk(claim.workspace, claim.subscription, claim.key);
        let item = HashMap::from([
            ("PK".to_owned(), s(pk.as_str())),
            ("SK".to_owned(), s("DLV")),
            ("holder".to_owned(), s(claim.holder)),
            ("lease".to_owned(), n(claim.lease_until.unix_seconds())),
            ("ttl".to_owned(), n(now.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS)),
        ]);
        let condition = "attribute_not_exists(PK) OR holder = :holder OR lease < :now";
        let values = vec![(":holder", s(claim.holder)), (":now", n(now.unix_seconds()))];
        if self.put_if(item, condition, values).await? {
            return Ok(Claim::Taken);
        }
        // Which of the two it is, read consistently (the rare path: a copy of a task).
        match self.get_with(&pk, "DLV", true).await? {
            Some(item) if item.contains_key("lease") => Ok(Claim::Held),
            Some(_) => Ok(Claim::Delivered),
            None => Err(StoreError::contended("the delivery's claim expired while it was being read")),
        }
    }

    async fn mark_delivered(
        &self,
        workspace: &str,
        subscription: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.put(HashMap::from([
            ("PK".to_owned(), s(delivered_pk(workspace, subscription, key))),
            ("SK".to_owned(), s("DLV")),
            ("at".to_owned(), n(at.unix_seconds())),
            ("ttl".to_owned(), n(at.unix_seconds() + tidings_core::delivery::CLAIM_RETENTION_SECONDS)),
        ]))
        .await
    }
}

impl KeyStore for DynamoStore {
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.put(HashMap::from([
            ("PK".to_owned(), s(format!("KEY#{}", key.hash))),
            ("SK".to_owned(), s("KEY")),
            ("d".to_owned(), s(to_json(key)?)),
        ]))
        .await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.get(&format!("KEY#{hash}"), "KEY").await?.map(|item| json(text(&item, "d")?)).transpose()
    }
}
