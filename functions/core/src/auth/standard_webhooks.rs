//! Standard Webhooks (the scheme Svix, and so Resend, sign with), both directions: verifying
//! what providers send us, and signing what tidings delivers to subscribers.
//!
//! Signed content is `<id>.<timestamp>.<body>`; the key is the base64 after `whsec_`; the
//! signature header holds space-separated `v1,<base64 HMAC-SHA256>` entries, one per active
//! secret, and a request verifies when any entry matches any of our secrets.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::{Authentication, SourceAuth, VerifyContext, check_timestamp, header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

/// The spec's tolerance for `webhook-timestamp`; Svix re-signs every retry, so it loses nothing.
pub const TOLERANCE_SECONDS: u64 = 5 * 60;

/// Why a signing secret cannot sign or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("signing secret is not whsec_ followed by base64")]
    NotBase64,
    #[error("signing secret is empty")]
    Empty,
    #[error("subscription {0} has no active signing secret")]
    NoneActive(String),
}

/// The HMAC key of a `whsec_…` secret (a bare base64 secret is accepted too).
pub fn secret_key(secret: &str) -> Result<hmac::Key, SecretError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = BASE64.decode(encoded.trim()).map_err(|_| SecretError::NotBase64)?;
    if bytes.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// `v1,<base64 signature>` of `id.timestamp.body` under `key`.
pub fn sign(key: &hmac::Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", BASE64.encode(ctx.sign().as_ref()))
}

/// Checks a signature header (space-separated entries) against `keys`.
pub fn verify_signature(keys: &[hmac::Key], id: &str, timestamp: &str, body: &[u8], signature_header: &str) -> bool {
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    signature_header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|tag| keys.iter().any(|key| hmac::verify(key, &signed, &tag).is_ok()))
}

pub(crate) fn verify_webhook(
    provider: ProviderId,
    prefix: &str,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let scheme = Authentication::StandardWebhooks { header_prefix: "" };
    let secrets = secrets(provider, scheme, auth)?;
    let keys = secrets
        .iter()
        .map(|s| secret_key(s.expose()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| WebhookError::unauthenticated(provider, format!("source misconfigured: {why}")))?;
    let id_name = format!("{prefix}-id");
    let ts_name = format!("{prefix}-timestamp");
    let sig_name = format!("{prefix}-signature");
    let id = header(provider, webhook, &id_name)?;
    let timestamp = header(provider, webhook, &ts_name)?;
    let signature = header(provider, webhook, &sig_name)?;
    check_timestamp(provider, &ts_name, timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    if verify_signature(&keys, id, timestamp, webhook.body, signature) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("{sig_name} does not match (wrong signing secret or altered body)"),
        ))
    }
}
