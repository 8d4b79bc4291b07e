//! [`PrivacyStore`] on DynamoDB: privacy settings and the erase key beside the workspace's other
//! settings, erased recipients by hash, and erasing a recipient item by item.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures_util::future::try_join_all;
use tidings_core::ports::{PrivacyStore, StoreError, WorkspaceSettings};
use tidings_core::privacy::{self, EraseKey, Erased, PrivacySettings};
use tidings_core::suppression::Suppression;
use tidings_core::timestamp::Timestamp;

use crate::classify;

use super::items::{event_parts, json, message_pk, n, number, raw_sk, s, text, to_json};
use super::{DynamoStore, Item};

fn settings_pk(workspace: &str) -> String {
    format!("WS#{workspace}#SETTINGS")
}

fn erasures_pk(workspace: &str) -> String {
    format!("WS#{workspace}#ERASED")
}

fn erase_key_of(item: &Item) -> Result<EraseKey, StoreError> {
    let last = number(item, "last").and_then(Timestamp::from_unix_millis);
    EraseKey::from_hex(text(item, "k")?, last)
        .ok_or_else(|| StoreError::malformed("stored erase key is not 64 hex digits"))
}

/// How many deletes run at once.
const CONCURRENT_DELETES: usize = 16;

impl DynamoStore {
    /// Deletes one item; whether it was there.
    async fn delete(&self, pk: String, sk: String) -> Result<bool, StoreError> {
        self.usage.wrote("DeleteItem", &pk, 1);
        let out = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("DeleteItem", &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Deletes items a few at a time; how many were there.
    async fn delete_all(&self, keys: Vec<(String, String)>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in keys.chunks(CONCURRENT_DELETES) {
            let found = try_join_all(chunk.iter().map(|(pk, sk)| self.delete(pk.clone(), sk.clone()))).await?;
            deleted += found.into_iter().filter(|d| *d).count() as u64;
        }
        Ok(deleted)
    }

    /// The suppression entry under `sk`, with its version.
    async fn suppression_item(&self, workspace: &str, sk: &str) -> Result<Option<(Suppression, i64)>, StoreError> {
        let Some(item) = self.get(&format!("WS#{workspace}#SUPP"), sk).await? else { return Ok(None) };
        Ok(Some((json(text(&item, "d")?)?, number(&item, "v").unwrap_or(0))))
    }

    /// Moves the recipient's suppression entry under their hash: the hashed entry is written
    /// (over the version read) before the plain one is deleted, so the recipient is never
    /// unsuppressed in between.
    async fn hash_suppression(&self, workspace: &str, recipient: &str, hash: &str) -> Result<u64, StoreError> {
        let Some((entry, _)) = self.suppression_item(workspace, recipient).await? else { return Ok(0) };
        let existing = self.suppression_item(workspace, hash).await?;
        let kept = privacy::hashed_suppression(&entry, existing.as_ref().map(|(e, _)| e), hash);
        let version = existing.as_ref().map_or(0, |(_, v)| *v);
        let item: Item = HashMap::from([
            ("PK".to_owned(), s(format!("WS#{workspace}#SUPP"))),
            ("SK".to_owned(), s(hash)),
            ("active".to_owned(), AttributeValue::Bool(kept.active)),
            ("d".to_owned(), s(to_json(&kept)?)),
            ("v".to_owned(), n(version + 1)),
        ]);
        let (condition, values) = super::items::version_condition(version);
        if !self.put_if(item, condition, values).await? {
            return Err(StoreError::contended("suppression changed while being erased; try again"));
        }
        self.delete(format!("WS#{workspace}#SUPP"), recipient.to_owned()).await?;
        Ok(1)
    }
}

impl PrivacyStore for DynamoStore {
    async fn privacy_settings(&self, workspace: &str) -> Result<Option<PrivacySettings>, StoreError> {
        let Some(item) = self.get_with(&settings_pk(workspace), "PRIVACY", false).await? else { return Ok(None) };
        let mut settings: PrivacySettings = json(text(&item, "d")?)?;
        settings.version = u64::try_from(number(&item, "v").unwrap_or(0)).unwrap_or(0);
        Ok(Some(settings))
    }

    async fn put_privacy_settings(&self, workspace: &str, settings: &PrivacySettings) -> Result<bool, StoreError> {
        let body = to_json(&PrivacySettings { version: 0, ..settings.clone() })?;
        self.put_versioned(settings_pk(workspace), "PRIVACY", settings.version, body).await
    }

    async fn erase_key(&self, workspace: &str, create: bool) -> Result<Option<EraseKey>, StoreError> {
        let pk = settings_pk(workspace);
        if create {
            let made = EraseKey::generate().map_err(|_| StoreError::unavailable("no randomness for an erase key"))?;
            let item: Item = HashMap::from([
                ("PK".to_owned(), s(pk.clone())),
                ("SK".to_owned(), s("ERASE_KEY")),
                ("k".to_owned(), s(made.to_hex())),
            ]);
            // The first key made stands: every later erasure and lookup hashes with it.
            self.put_if(item, "attribute_not_exists(PK)", vec![]).await?;
        }
        // Consistent right after making it (the erasure hashes with it); otherwise half the
        // price, a moment stale at most.
        let Some(item) = self.get_with(&pk, "ERASE_KEY", create).await? else { return Ok(None) };
        erase_key_of(&item).map(Some)
    }

    async fn workspace_settings(&self, workspace: &str) -> Result<WorkspaceSettings, StoreError> {
        let mut read = WorkspaceSettings::default();
        let items: Vec<Item> = self
            .query_all(None, "PK = :pk", vec![(":pk", s(settings_pk(workspace)))], true, |i| Ok(Some(i.clone())), 16)
            .await?;
        for item in &items {
            let version = u64::try_from(number(item, "v").unwrap_or(0)).unwrap_or(0);
            match text(item, "SK")? {
                "DELIVERABILITY" => {
                    let mut settings: tidings_core::deliverability::Settings = json(text(item, "d")?)?;
                    settings.version = version;
                    read.deliverability = Some(settings);
                }
                "PRIVACY" => {
                    let mut settings: PrivacySettings = json(text(item, "d")?)?;
                    settings.version = version;
                    read.privacy = Some(settings);
                }
                "ERASE_KEY" => read.erase_key = Some(erase_key_of(item)?),
                _ => {}
            }
        }
        Ok(read)
    }

    async fn erasure(&self, workspace: &str, hash: &str) -> Result<Option<Timestamp>, StoreError> {
        // Eventually consistent: half the price, per event of a workspace that has erased someone.
        let item = self.get_with(&erasures_pk(workspace), hash, false).await?;
        Ok(item.and_then(|i| number(&i, "erased_ms")).and_then(Timestamp::from_unix_millis))
    }

    async fn erase_recipient(
        &self,
        workspace: &str,
        recipient: &str,
        hash: &str,
        now: Timestamp,
        max_events: usize,
    ) -> Result<Erased, StoreError> {
        let at = now.unix_millis();
        // 1. The erasure is noted, and the key's latest erasure moved forward, before anything
        //    is deleted: a processor or fan-out that reads the key after this drops or re-erases
        //    what it holds of the recipient.
        let noted: Item = HashMap::from([
            ("PK".to_owned(), s(erasures_pk(workspace))),
            ("SK".to_owned(), s(hash)),
            ("erased_ms".to_owned(), n(at)),
        ]);
        // Refused: a later erasure is noted already, and stands.
        self.put_if(noted, "attribute_not_exists(PK) OR erased_ms < :at", vec![(":at", n(at))]).await?;
        let updated = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key("PK", s(settings_pk(workspace)))
            .key("SK", s("ERASE_KEY"))
            .update_expression("SET #last = :at")
            .condition_expression("attribute_exists(PK) AND (attribute_not_exists(#last) OR #last < :at)")
            .expression_attribute_names("#last", "last")
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        self.usage.wrote("UpdateItem", &settings_pk(workspace), 1);
        if let Err(e) = updated
            && !e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception())
        {
            return Err(classify("UpdateItem", &e));
        }

        // 2. Their events, through the recipient index: each item with its record kept apart,
        //    and the message states of their messages.
        let index_pk = s(format!("WS#{workspace}#RCPT#{recipient}"));
        let found: Vec<(String, String, bool)> = self
            .query_all(
                Some("GSI1"),
                "GSI1PK = :pk",
                vec![(":pk", index_pk)],
                true,
                |item| {
                    let (pk, sk) = (text(item, "PK")?.to_owned(), text(item, "SK")?.to_owned());
                    let raw_inline = event_parts(item).map(|(_, _, raw)| !raw.is_empty()).unwrap_or(false);
                    Ok(Some((pk, sk, raw_inline)))
                },
                max_events.max(1) + 1,
            )
            .await?;
        let complete = found.len() <= max_events.max(1);
        let page = &found[..found.len().min(max_events.max(1))];
        let mut erased = Erased { hash: hash.to_owned(), complete, ..Erased::default() };
        let mut messages: BTreeSet<String> = BTreeSet::new();
        let mut apart: Vec<(String, String)> = Vec::new();
        let mut inline = 0;
        for (pk, sk, raw_inline) in page {
            if let Some(message) = pk.strip_prefix(&format!("WS#{workspace}#MSG#")) {
                messages.insert(message.to_owned());
            }
            let id = sk.trim_start_matches("EVT#");
            if *raw_inline {
                inline += 1;
            } else {
                apart.push((pk.clone(), raw_sk(id)));
            }
        }
        // Records kept apart go first: none is left behind by an event already gone (a
        // second call finds the event again, not its record).
        erased.raw_records = self.delete_all(apart).await?;
        erased.events = self.delete_all(page.iter().map(|(pk, sk, _)| (pk.clone(), sk.clone())).collect()).await?;
        erased.raw_records += inline.min(erased.events);
        erased.message_states = self
            .delete_all(messages.iter().map(|m| (message_pk(workspace, m), format!("STATE#{recipient}"))).collect())
            .await?;

        // 3. Their suppression entry, under the hash.
        if complete {
            erased.suppressions = self.hash_suppression(workspace, recipient, hash).await?;
        }
        Ok(erased)
    }
}
