//! Telnyx's webhook signature (API v2): Ed25519 over the `telnyx-timestamp` header's text, a
//! `|`, and the raw body; the signature in base64 in `telnyx-signature-ed25519`; the public key
//! as the Mission Control portal shows it (base64 of the 32-byte key). Telnyx's own libraries
//! refuse a timestamp more than five minutes from now, and so does tidings by default.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, UnparsedPublicKey};

use super::{Authentication, SourceAuth, VerifyContext, base64_header, check_timestamp, header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// How far the signed timestamp may be from now by default.
pub const TOLERANCE_SECONDS: u64 = 300;

/// The 32 bytes of a base64 Ed25519 public key, or why the text is not one.
pub fn public_key(key: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64.decode(key.trim()).map_err(|_| "is not base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("holds {} bytes; an Ed25519 public key holds 32", bytes.len()))
}

/// The bytes Telnyx signs.
pub fn signed_content(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    signed
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::TelnyxEd25519, auth)?;
    let keys = keys.iter().map(|k| public_key(k.expose())).collect::<Result<Vec<_>, _>>().map_err(|why| {
        WebhookError::unauthenticated(provider, format!("source misconfigured: the public key {why}"))
    })?;
    let signature = base64_header(provider, webhook, SIGNATURE_HEADER)?;
    let timestamp = header(provider, webhook, TIMESTAMP_HEADER)?;
    check_timestamp(provider, TIMESTAMP_HEADER, timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    let signed = signed_content(timestamp, webhook.body);
    if keys.iter().any(|key| UnparsedPublicKey::new(&ED25519, key).verify(&signed, &signature).is_ok()) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("{SIGNATURE_HEADER} does not verify (wrong public key, altered body or timestamp)"),
        ))
    }
}
