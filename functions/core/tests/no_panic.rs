//! No input makes a provider panic: arbitrary bytes, byte-level mutations of every sample, and
//! structural mutations that put the wrong JSON type in known fields. Whatever comes out is
//! either a one-line error or events that round-trip through the canonical model.

mod common;

use proptest::prelude::*;
use serde_json::Value;
use tidings_core::auth::sns::CertificateCache;
use tidings_core::auth::{SourceAuth, VerifyContext};
use tidings_core::{CanonicalEvent, Headers, NormalizeContext, ProviderId, Transport, Webhook};

fn check(provider: ProviderId, body: &[u8], headers: &Headers, transport: Transport) {
    let p = provider.provider();
    let webhook = Webhook { body, headers, query: Some("token=x&userId=1"), transport };
    let certificates = CertificateCache::new();
    let ctx = VerifyContext { now: common::sample_time(), certificates: &certificates };
    if let Err(error) = p.verify(&webhook, &common::source_auth(provider), &ctx) {
        assert!(!error.to_string().contains('\n'));
    }
    match p.normalize(&webhook, &NormalizeContext { workspace: "ws", received_at: common::sample_time() }) {
        Ok(normalized) => {
            for event in normalized.events {
                let json = serde_json::to_string(&event.event).unwrap();
                let back: CanonicalEvent = serde_json::from_str(&json).unwrap();
                assert_eq!(back, event.event);
            }
        }
        Err(error) => {
            let line = error.to_string();
            assert!(line.starts_with(&format!("{provider}: ")), "{line}");
            assert!(!line.contains('\n') && line.len() < 400, "{line}");
            assert!(matches!(error.status(), 400 | 401 | 403));
        }
    }
}

fn providers() -> impl Strategy<Value = ProviderId> {
    prop::sample::select(ProviderId::ALL.to_vec())
}

fn samples() -> &'static [common::Sample] {
    static SAMPLES: std::sync::OnceLock<Vec<common::Sample>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(common::samples)
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the `pick`-th node (in document order) of `value` with `replacement`.
fn replace_node(value: &mut Value, pick: &mut usize, replacement: &Value) -> bool {
    if *pick == 0 {
        *value = replacement.clone();
        return true;
    }
    *pick -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|v| replace_node(v, pick, replacement)),
        Value::Object(map) => map.values_mut().any(|v| replace_node(v, pick, replacement)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(provider in providers(), body in prop::collection::vec(any::<u8>(), 0..512), queue in any::<bool>()) {
        let transport = if queue { Transport::Queue } else { Transport::Http };
        check(provider, &body, &Headers::new(), transport);
    }

    #[test]
    fn byte_mutations_of_real_samples(index in any::<prop::sample::Index>(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)) {
        let sample = index.get(samples());
        let mut body = sample.body.clone();
        for (at, byte, op) in edits {
            if body.is_empty() { break; }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => { body.remove(i); }
                _ => body.insert(i, byte),
            }
        }
        check(sample.provider, &body, &sample.headers, Transport::Queue);
        check(sample.provider, &body, &sample.headers, Transport::Http);
    }

    #[test]
    fn truncated_samples(index in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let sample = index.get(samples());
        let body = &sample.body[..cut.index(sample.body.len() + 1).min(sample.body.len())];
        check(sample.provider, body, &sample.headers, Transport::Queue);
    }

    #[test]
    fn wrong_types_in_known_fields(index in any::<prop::sample::Index>(), node in any::<usize>(), replacement in any_json()) {
        let sample = index.get(samples());
        // Twilio posts forms, not JSON; and an SES envelope's Message is JSON inside a string.
        let Ok(mut value) = serde_json::from_slice::<Value>(&sample.body) else { return Ok(()) };
        let mut pick = node % 64;
        replace_node(&mut value, &mut pick, &replacement);
        let body = serde_json::to_vec(&value).unwrap();
        check(sample.provider, &body, &sample.headers, Transport::Queue);
    }

    #[test]
    fn arbitrary_headers(provider in providers(), headers in prop::collection::vec(("[A-Za-z-]{1,40}", ".{0,80}"), 0..6)) {
        let headers: Headers = headers.into_iter().collect();
        let sample = samples().iter().find(|s| s.provider == provider).unwrap();
        check(provider, &sample.body, &headers, Transport::Http);
    }

    /// What an admin writes as a subscription's destination and filter: refused with a reason
    /// naming the field, or read, never a panic; ARN-shaped text included.
    #[test]
    fn subscription_destinations_and_filters(
        text in ".{0,200}",
        parts in prop::collection::vec("[a-z0-9./:_-]{0,24}", 0..7),
    ) {
        for url in [text.clone(), format!("arn:{}", parts.join(":"))] {
            match tidings_core::destination::Destination::parse(&url) {
                Ok(tidings_core::destination::Destination::Aws(target)) => {
                    prop_assert!(target.arn == url && !target.name.is_empty());
                    let id = tidings_core::destination::fifo_id(&url);
                    prop_assert!(!id.is_empty() && id.len() <= 128);
                }
                Ok(_) => {}
                Err(refused) => prop_assert_eq!(refused.field, "url"),
            }
        }
        if let Err(refused) = tidings_core::filter::Filter::parse(&text) {
            prop_assert_eq!(refused.field, "filter");
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for provider in ProviderId::ALL {
        check(provider, deep.as_bytes(), &Headers::new(), Transport::Queue);
    }
}

#[test]
fn an_address_that_is_not_one_is_kept_not_fatal() {
    // Scraped copies of CM.com's documentation hold "[email protected]" where an address was:
    // the event is still read, with the text as it came.
    let delivered = samples().iter().find(|s| s.provider == ProviderId::Cmcom && s.name == "delivered").unwrap();
    let text = String::from_utf8(delivered.body.clone()).unwrap().replace("jane.doe@example.com", "[email protected]");
    let sample = common::Sample {
        provider: delivered.provider,
        name: delivered.name.clone(),
        path: delivered.path.clone(),
        body: text.into_bytes(),
        headers: delivered.headers.clone(),
    };
    let out = common::run_sample(&sample).unwrap();
    assert_eq!(out.events[0].event.data.recipient.as_deref(), Some("[email protected]"));
    let _ = SourceAuth::default();
}
