//! Shared by the integration tests: the sample corpus in `events/` and the secrets it is signed
//! with in tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::auth::sns::CertificateCache;
use tidings_core::auth::{Authentication, ReplayGuard, SourceAuth, VerifyContext};
use tidings_core::{Headers, NormalizeContext, Normalized, ProviderId, Timestamp, Transport, Webhook, WebhookError};

/// The instant every sample is signed and received at: 2025-11-28T06:30:00Z.
pub const SAMPLE_TIME: i64 = 1_764_311_400;
pub const TWILIO_URL: &str = "https://tidings.example.com/webhooks/twilio/src_sample";

pub fn sample_time() -> Timestamp {
    Timestamp::from_unix_seconds(SAMPLE_TIME).unwrap()
}

pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// One sample payload with its headers.
pub struct Sample {
    pub provider: ProviderId,
    pub name: String,
    pub path: PathBuf,
    pub body: Vec<u8>,
    pub headers: Headers,
}

/// Every sample under `events/<provider>/` (not `expected/`), in a stable order.
pub fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for provider in ProviderId::ALL {
        let dir = events_dir().join(provider.as_str());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "form")))
            .collect();
        files.sort();
        for path in files {
            let body = std::fs::read(&path).unwrap();
            let headers_path = path.with_extension("headers");
            let headers = if headers_path.is_file() {
                Headers::parse_lines(&std::fs::read_to_string(&headers_path).unwrap()).unwrap()
            } else {
                Headers::new()
            };
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push(Sample { provider, name, path, body, headers });
        }
    }
    out
}

/// The key pairs of the providers that sign with a private key, generated once per test run:
/// provider → (private key the samples are signed with, public key the source verifies with).
pub fn key_pairs() -> &'static std::collections::HashMap<ProviderId, (String, String)> {
    static PAIRS: OnceLock<std::collections::HashMap<ProviderId, (String, String)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        ProviderId::ALL
            .into_iter()
            .filter_map(|p| Some((p, signer::generate_key_pair(p.provider().authentication())?.unwrap())))
            .collect()
    })
}

/// The per-provider secret the samples are signed with in tests.
pub fn signing_secret(provider: ProviderId) -> String {
    if let Some((private, _)) = key_pairs().get(&provider) {
        return private.clone();
    }
    match provider {
        ProviderId::Resend => "whsec_c2FtcGxlLXNpZ25pbmctc2VjcmV0".into(),
        other => format!("sample-secret-{other}"),
    }
}

/// What a source verifies the samples with: the public key where there is a key pair.
pub fn source_auth(provider: ProviderId) -> SourceAuth {
    let secret = match key_pairs().get(&provider) {
        Some((_, public)) => public.clone(),
        None => signing_secret(provider),
    };
    let mut auth = SourceAuth::with_secret(secret);
    auth.public_url = Some(TWILIO_URL.into());
    auth
}

/// Signs, verifies and normalizes a sample the way the pipeline will. SES samples are unsigned
/// SNS envelopes and bare records, so they are taken as queue records.
pub fn run_sample(sample: &Sample) -> Result<Normalized<'static>, WebhookError> {
    let now = sample_time();
    let mut headers = sample.headers.clone();
    let (body, transport) = if sample.provider.provider().authentication() == Authentication::SnsSignature {
        (sample.body.clone(), Transport::Queue)
    } else {
        let secret = signing_secret(sample.provider);
        let key = SigningKey { secret: &secret, public_url: Some(TWILIO_URL) };
        (signer::sign(sample.provider, &sample.body, &mut headers, &key, now).unwrap(), Transport::Http)
    };
    let query = None;
    let webhook = Webhook { body: &body, headers: &headers, query, transport };
    let provider = sample.provider.provider();
    let certificates = CertificateCache::new();
    let verified = provider.verify(
        &webhook,
        &source_auth(sample.provider),
        &VerifyContext { now, certificates: &certificates },
    )?;
    if let Some(claim) = verified.replay_claim {
        ReplayGuard::new().claim(&claim, now)?;
    }
    provider
        .normalize(&webhook, &NormalizeContext { workspace: "ws_default", received_at: now })
        .map(Normalized::into_static)
}
