//! Sources: where webhooks come in. A source belongs to one workspace, reads one provider's
//! dialect, and holds what verifies that provider's requests. Its id is the last segment of
//! the ingest URL, `/webhooks/<provider>/<source id>`.

use serde::{Deserialize, Serialize};

use crate::auth::{Secret, SourceAuth};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `src_` + 20 lowercase base32 characters.
    pub id: String,
    pub workspace: String,
    pub provider: ProviderId,
    pub description: String,
    /// Secrets or keys (any one verifies a request; several during rotation). Never returned by
    /// the API after creation.
    pub secrets: Vec<String>,
    /// Providers that sign the URL they post to (Twilio, Plivo): the exact public URL configured
    /// in the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Providers that publish through SNS (SES, AWS SMS): the topics this source accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_topics: Vec<String>,
    /// Providers that let you rename their signature header (Active Reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_header: Option<String>,
    /// Overrides the scheme's timestamp tolerance, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
    /// Development sources keep what `tidings replay` needs to sign samples (SendGrid's private
    /// key). Never set on production sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_signing_key: Option<String>,
    pub created_at: Timestamp,
}

impl Source {
    pub fn auth(&self) -> SourceAuth {
        SourceAuth {
            secrets: self.secrets.iter().map(Secret::new).collect(),
            public_url: self.public_url.clone(),
            allowed_topics: self.allowed_topics.clone(),
            signature_header: self.signature_header.clone(),
            tolerance_seconds: self.tolerance_seconds,
        }
    }

    /// The secret `tidings replay` signs with: the dev signing key when there is one, else the
    /// first secret.
    pub fn signing_secret(&self) -> Option<&str> {
        self.dev_signing_key.as_deref().or(self.secrets.first().map(String::as_str))
    }
}

/// A new random id with `prefix` (`src`, `ws`, `key`…): 100 bits from the system RNG.
pub fn new_id(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 13];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(prefix.len() + 21);
    out.push_str(prefix);
    out.push('_');
    let mut bits: u32 = 0;
    let mut acc: u32 = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 && out.len() < prefix.len() + 21 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

/// A new random secret: 32 bytes, base64 (for shared secrets and HMAC keys) or, for Standard
/// Webhooks sources, `whsec_` + base64.
pub fn new_secret(standard_webhooks: bool) -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    if standard_webhooks {
        format!("whsec_{encoded}")
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
