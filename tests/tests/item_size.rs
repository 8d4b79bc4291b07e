//! What an event costs to store: the size of its DynamoDB item, which DynamoDB bills per
//! started KB on every write (the item and each index it is in).

use tidings_core::ports::QueuedEvent;
use tidings_core::providers::NormalizeContext;
use tidings_core::{Headers, ProviderId, Timestamp, Transport, Webhook};

/// Item sizes of every sample event, with the provider.
fn sizes() -> Vec<(usize, ProviderId)> {
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let now = Timestamp::now();
    let expires = Timestamp::from_unix_seconds(now.unix_seconds() + 90 * 86_400).unwrap();
    let mut out = Vec::new();
    for provider in ProviderId::ALL {
        for entry in std::fs::read_dir(events.join(provider.as_str())).unwrap() {
            let path = entry.unwrap().path();
            if !matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "form")) {
                continue;
            }
            let body = std::fs::read(&path).unwrap();
            let headers = Headers::new();
            let webhook = Webhook { body: &body, headers: &headers, query: None, transport: Transport::Queue };
            // Realistic id lengths: a workspace id and a source id as tidings makes them.
            let ctx = NormalizeContext { workspace: "ws_3f6c1a2b7d8e4f90abcd", received_at: now };
            let Ok(normalized) = provider.provider().normalize(&webhook, &ctx) else { continue };
            for event in normalized.events {
                let queued = QueuedEvent {
                    event: event.event,
                    raw: event.raw.to_string(),
                    source: "src_abcdefghijklmnopqrst".into(),
                };
                out.push((
                    tidings_aws::dynamo::item_size(&tidings_aws::dynamo::event_item(&queued, expires).unwrap()),
                    provider,
                ));
            }
        }
    }
    out
}

#[test]
fn a_typical_event_item_fits_one_write_unit() {
    let mut sizes = sizes();
    assert!(sizes.len() > 150);
    sizes.sort();
    let median = sizes[sizes.len() / 2].0;
    assert!(median <= 1024, "median event item {median} bytes");
    // Records that carry much of the message (SES's `mail`, Mailgun's headers) take two units;
    // none may take more.
    for (size, provider) in &sizes {
        assert!(*size <= 2048, "{provider} event item of {size} bytes: more than two write units");
    }
}
