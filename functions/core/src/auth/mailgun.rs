//! Mailgun: `signature.signature` = hex HMAC-SHA256(signing key, `timestamp ‖ token`), all inside
//! the JSON body. The signature does not cover `event-data`, so a captured token could carry a
//! forged body: tokens are single-use ([`ReplayClaim`]) and the timestamp must be recent.

use ring::{digest, hmac};
use serde::Deserialize;

use super::{Authentication, ReplayClaim, SourceAuth, Verified, VerifyContext, check_timestamp, secrets};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

/// Mailgun retries for 8 hours and does not document re-signing retries; the default tolerance
/// covers that span so a late retry is not lost. A source can narrow it.
pub const TOLERANCE_SECONDS: u64 = 9 * 60 * 60;

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    signature: Signature<'a>,
}

#[derive(Deserialize)]
struct Signature<'a> {
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    timestamp: String,
    token: &'a str,
    signature: &'a str,
}

/// hex HMAC-SHA256(key, timestamp ‖ token): what Mailgun puts in `signature.signature`.
pub fn sign(key: &str, timestamp: &str, token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(token.as_bytes());
    hex::encode(ctx.sign().as_ref())
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<Verified, WebhookError> {
    let keys = secrets(provider, Authentication::MailgunHmac, auth)?;
    let body: Body<'_> = parse_json(provider, &"body", webhook.body)
        .map_err(|e| WebhookError::unauthenticated(provider, format!("no usable signature object: {}", e.reason())))?;
    let sig = body.signature;
    let tolerance = auth.tolerance(TOLERANCE_SECONDS);
    let signed_at = check_timestamp(provider, "signature.timestamp", &sig.timestamp, ctx.now, tolerance)?;
    let tag = hex::decode(sig.signature.to_ascii_lowercase())
        .map_err(|_| WebhookError::unauthenticated(provider, "signature.signature is not hex"))?;
    let mut signed = Vec::with_capacity(sig.timestamp.len() + sig.token.len());
    signed.extend_from_slice(sig.timestamp.as_bytes());
    signed.extend_from_slice(sig.token.as_bytes());
    let ok = keys.iter().any(|key| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes());
        hmac::verify(&key, &signed, &tag).is_ok()
    });
    if !ok {
        return Err(WebhookError::unauthenticated(
            provider,
            "signature.signature does not match (wrong signing key or altered token)",
        ));
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest::digest(&digest::SHA256, webhook.body).as_ref());
    let remember_until = i64::try_from(tolerance)
        .ok()
        .and_then(|t| signed_at.unix_seconds().checked_add(t))
        .and_then(Timestamp::from_unix_seconds)
        .unwrap_or(ctx.now);
    Ok(Verified {
        replay_claim: Some(ReplayClaim { provider, nonce: sig.token.to_owned(), fingerprint, remember_until }),
    })
}
