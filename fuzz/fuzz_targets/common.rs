//! One fuzz input exercised the way the pipeline would: verified (against a secret that will
//! not match, which must still never panic) and normalized, over HTTP and from a queue.

use tidings_core::auth::sns::CertificateCache;
use tidings_core::auth::{SourceAuth, VerifyContext};
use tidings_core::{Headers, NormalizeContext, ProviderId, Timestamp, Transport, Webhook};

pub fn exercise(provider: ProviderId, data: &[u8]) {
    let Some(now) = Timestamp::from_unix_seconds(1_764_311_400) else { return };
    let certificates = CertificateCache::new();
    let mut auth = SourceAuth::with_secret("whsec_ZnV6eg==");
    auth.public_url = Some("https://tidings.example.com/webhooks/twilio/src".into());
    auth.allowed_topics = vec!["arn:aws:sns:eu-west-1:111122223333:ses-events".into()];
    // Let the first line of the input be headers, so the fuzzer reaches signature parsing.
    let (header_text, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).unwrap_or(""), &data[i + 1..]),
        None => ("", data),
    };
    let headers: Headers = header_text
        .split('|')
        .filter_map(|pair| pair.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let p = provider.provider();
    for transport in [Transport::Http, Transport::Queue] {
        let webhook = Webhook { body, headers: &headers, query: Some("token=fuzz"), transport };
        let _ = p.verify(&webhook, &auth, &VerifyContext { now, certificates: &certificates });
        if let Ok(normalized) = p.normalize(&webhook, &NormalizeContext { workspace: "ws_fuzz", received_at: now }) {
            for event in normalized.events {
                // Every event produced must serialize.
                if serde_json::to_vec(&event.event).is_err() {
                    panic!("{provider}: an event failed to serialize");
                }
            }
        }
    }
}
