//! Erasure, run on each store: a recipient who appears in many real provider records (SendGrid,
//! SparkPost, Mailgun, Postmark, SES) is erased, and every store-level question about them
//! then finds nothing, while other recipients keep everything. Each store's own test then looks
//! at the bytes ([`assert_nowhere`]).

use std::path::PathBuf;

use tidings_core::event::CanonicalEvent;
use tidings_core::pipeline::{Processed, Processor, erase_recipient, suppression_of};
use tidings_core::ports::{EventQuery, QueuedEvent, Store};
use tidings_core::privacy::{self, Erased};
use tidings_core::providers::{NormalizeContext, ProviderId};
use tidings_core::timestamp::Timestamp;
use tidings_core::webhook::{Headers, Transport, Webhook};

/// The recipient erased: as SendGrid, Mailgun and SparkPost's samples spell them (SparkPost and
/// Postmark with capitals).
pub const ERASED: &str = "jane.doe@example.com";
/// A recipient who stays.
pub const KEPT: &str = "angry@example.com";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Real sample webhooks, normalized as ingest would (signatures are not the point here), with
/// SES's bounce, Mailgun's failure and Postmark's hard bounce readdressed to the erased
/// recipient in capitals, so their records hold the address in another case.
pub fn corpus(workspace: &str, received_at: Timestamp) -> Vec<QueuedEvent> {
    // (provider, sample, an address to replace and its replacement)
    type Sample<'a> = (ProviderId, &'a str, Option<(&'a str, &'a str)>);
    let files: [Sample<'_>; 7] = [
        (ProviderId::Sendgrid, "sendgrid/batch-every-type.json", None),
        (ProviderId::Sparkpost, "sparkpost/batch-every-type.json", None),
        (ProviderId::Mailgun, "mailgun/opened.json", None),
        (ProviderId::Mailgun, "mailgun/failed-permanent.json", Some(("nobody@example.com", "Jane.Doe@example.com"))),
        (ProviderId::Postmark, "postmark/delivery.json", None),
        (ProviderId::Postmark, "postmark/bounce-hard.json", Some(("nobody@example.com", "JANE.DOE@EXAMPLE.COM"))),
        (ProviderId::Ses, "ses/bounce-permanent.json", Some(("nobody@example.com", "Jane.Doe@Example.com"))),
    ];
    let mut out = Vec::new();
    for (provider, file, readdress) in files {
        let mut body = std::fs::read_to_string(events_dir().join(file)).unwrap();
        if let Some((from, to)) = readdress {
            body = body.replace(from, to);
        }
        let headers = Headers::new();
        let webhook = Webhook { body: body.as_bytes(), headers: &headers, query: None, transport: Transport::Http };
        let ctx = NormalizeContext { workspace, received_at };
        let normalized = provider.provider().normalize(&webhook, &ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        for event in normalized.events {
            // SparkPost's sample gives one event a `raw_rcpt_to` of the erased recipient and a
            // `rcpt_to` of another: a record about someone else that names them, which erasure
            // does not look into (the README says so).
            let recipient = event.event.data.recipient.as_deref();
            if recipient != Some(ERASED) && privacy::mentions(&event.raw, ERASED) {
                continue;
            }
            out.push(QueuedEvent { event: event.event, raw: event.raw.to_string(), source: format!("src_{provider}") });
        }
    }
    out
}

fn bodies(events: &[QueuedEvent]) -> Vec<String> {
    events.iter().map(|e| serde_json::to_string(e).unwrap()).collect()
}

fn about(events: &[CanonicalEvent], recipient: &str) -> usize {
    events.iter().filter(|e| e.data.recipient.as_deref() == Some(recipient)).count()
}

async fn all_events<S: Store>(store: &S, workspace: &str) -> Vec<CanonicalEvent> {
    let query = EventQuery { workspace: workspace.into(), limit: 1000, ..EventQuery::default() };
    store.events(&query).await.unwrap().events
}

/// Stores the corpus through the processor, erases [`ERASED`], and checks what the store
/// answers afterwards. Returns the erase's report.
pub async fn erases_a_recipient_everywhere<S: Store + Clone>(store: &S, workspace: &str) -> Erased {
    let received = Timestamp::now();
    let stored_first = corpus(workspace, received);
    let processor = Processor::new(store.clone(), 30);
    let first_bodies = bodies(&stored_first);
    let refs: Vec<&str> = first_bodies.iter().map(String::as_str).collect();
    // The first half with their provider records inline; the rest kept apart (on DynamoDB, an
    // item of their own), as a workspace keeping records for less than its events has them.
    let (inline, apart) = refs.split_at(refs.len() / 2);
    for result in processor.process_batch(inline).await {
        assert_eq!(result.unwrap(), Processed::Stored);
    }
    let shorter = privacy::PrivacySettings { raw_retention_days: Some(10), ..Default::default() };
    assert!(store.put_privacy_settings(workspace, &shorter).await.unwrap());
    for result in processor.process_batch(apart).await {
        assert_eq!(result.unwrap(), Processed::Stored);
    }
    let before = all_events(store, workspace).await;
    let theirs = about(&before, ERASED);
    let kept = before.len() - theirs;
    assert!(theirs >= 10, "the corpus has {theirs} events of the erased recipient");
    assert!(about(&before, KEPT) >= 1, "and some of a recipient who stays");
    let providers: std::collections::BTreeSet<&str> = before
        .iter()
        .filter(|e| e.data.recipient.as_deref() == Some(ERASED))
        .map(|e| e.data.provider.as_str())
        .collect();
    assert_eq!(providers.len(), 5, "{providers:?}");
    assert!(store.suppression(workspace, ERASED).await.unwrap().is_some_and(|s| s.active), "hard-bounced: suppressed");
    let messages: Vec<String> = before
        .iter()
        .filter(|e| e.data.recipient.as_deref() == Some(ERASED))
        .filter_map(|e| e.data.message_id.clone())
        .collect();

    let erased = erase_recipient(store, workspace, ERASED, Timestamp::now()).await.unwrap();
    assert_eq!(erased.events, theirs as u64, "{erased:?}");
    assert_eq!(erased.raw_records, erased.events, "every event had its record: {erased:?}");
    assert!(erased.message_states >= 1, "{erased:?}");
    assert_eq!(erased.suppressions, 1);
    assert!(erased.complete);
    assert!(privacy::is_hash(&erased.hash));

    let after = all_events(store, workspace).await;
    assert_eq!(about(&after, ERASED), 0);
    assert_eq!(after.len(), kept, "other recipients' events are untouched");
    let by_recipient =
        EventQuery { workspace: workspace.into(), recipient: Some(ERASED.into()), limit: 100, ..EventQuery::default() };
    assert!(store.events(&by_recipient).await.unwrap().events.is_empty());
    for message in &messages {
        let states = store.message_states(workspace, message).await.unwrap();
        assert!(states.iter().all(|s| s.recipient != ERASED), "{message}: {states:?}");
    }
    // Still suppressed, by hash only.
    assert!(store.suppression(workspace, ERASED).await.unwrap().is_none());
    let entry = suppression_of(store, workspace, ERASED).await.unwrap().expect("still suppressed");
    assert!(entry.active);
    assert_eq!(entry.recipient, erased.hash);
    assert!(suppression_of(store, workspace, "someone.else@example.com").await.unwrap().is_none());

    // Again: nothing more to remove, the same hash.
    let again = erase_recipient(store, workspace, ERASED, Timestamp::now()).await.unwrap();
    assert_eq!((again.events, again.message_states, again.suppressions), (0, 0, 0), "{again:?}");
    assert_eq!(again.hash, erased.hash);

    // Events still on the queue from before the erasure are dropped; those the provider
    // sends afterwards are kept under the hash, without the provider's record.
    let in_flight: Vec<QueuedEvent> =
        stored_first.iter().filter(|e| e.event.data.recipient.as_deref() == Some(ERASED)).take(3).cloned().collect();
    let in_flight_bodies = bodies(&in_flight);
    let refs: Vec<&str> = in_flight_bodies.iter().map(String::as_str).collect();
    for result in processor.process_batch(&refs).await {
        assert_eq!(result.unwrap(), Processed::Erased);
    }
    let later_at = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 5).unwrap();
    let later: Vec<QueuedEvent> = corpus(workspace, later_at)
        .into_iter()
        .filter(|e| e.event.data.recipient.as_deref() == Some(ERASED) && e.event.data.provider == "mailgun")
        .collect();
    let later_bodies = bodies(&later);
    let refs: Vec<&str> = later_bodies.iter().map(String::as_str).collect();
    for result in processor.process_batch(&refs).await {
        assert_eq!(result.unwrap(), Processed::Stored);
    }
    let stored = all_events(store, workspace).await;
    assert_eq!(about(&stored, ERASED), 0);
    let pseudonymous: Vec<&CanonicalEvent> =
        stored.iter().filter(|e| e.data.recipient.as_deref() == Some(erased.hash.as_str())).collect();
    assert_eq!(pseudonymous.len(), later.len());
    for event in pseudonymous {
        assert!(!privacy::mentions(&serde_json::to_string(event).unwrap(), ERASED));
        let raw = store.raw(workspace, event.data.message_id.as_deref(), &event.id).await.unwrap();
        assert_eq!(raw.as_deref(), Some(""), "the provider's record of a later event is not kept");
    }

    // An erasure that overtook a processor: the event was checked before the erasure and
    // written after it. When its message comes back (as one whose batch failed after storing
    // does), the processor erases it.
    let overtaken = crate::event(workspace, tidings_core::Status::Delivered, "m-late", "late@example.com", 1, "k-late");
    erase_recipient(store, workspace, "late@example.com", Timestamp::now()).await.unwrap();
    store.record(&overtaken, crate::expiry()).await.unwrap();
    let by_late = EventQuery { recipient: Some("late@example.com".into()), ..by_recipient.clone() };
    assert_eq!(store.events(&by_late).await.unwrap().events.len(), 1, "written after the erasure");
    let body = serde_json::to_string(&overtaken).unwrap();
    assert_eq!(processor.process(&body).await.unwrap(), Processed::Duplicate);
    assert!(store.events(&by_late).await.unwrap().events.is_empty(), "erased when it came back");
    erased
}

/// Fails naming where `text` still holds `recipient` in any form (any case, JSON-escaped,
/// URL-encoded).
pub fn assert_nowhere(text: &str, recipient: &str, what: &str) {
    let lower = text.to_lowercase();
    for form in privacy::forms(recipient) {
        if let Some(at) = lower.find(&form) {
            let start = at.saturating_sub(80);
            let end = (at + form.len() + 80).min(lower.len());
            let context = String::from_utf8_lossy(&lower.as_bytes()[start..end]).into_owned();
            panic!("{what} still holds {form:?}: …{context}…");
        }
    }
}
