//! Sinch's callback signature, where Sinch signs (an account manager turns it on):
//! `x-sinch-webhook-signature` is base64 HMAC-SHA256 under the callback secret of the body, a
//! `.`, the `x-sinch-webhook-signature-nonce` header and a `.`, and the
//! `x-sinch-webhook-signature-timestamp` header (Unix seconds). Without a signature Sinch's
//! callbacks carry what the callback URL carries, basic auth: the source's secret is then a
//! shared secret, checked as for providers that sign nothing. Either way only a sender that
//! knows the secret gets through.
//!
//! Sinch retries for almost 23 hours and does not document whether a retry is signed anew, so
//! the default tolerance on the signed timestamp is a day; a replay inside it repeats an event
//! already stored under the same id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::{Authentication, SourceAuth, VerifyContext, base64_header, check_timestamp, header, hmac_matches, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
pub const ALGORITHM_HEADER: &str = "x-sinch-webhook-signature-algorithm";

/// How far the signed timestamp may be from now by default.
pub const TOLERANCE_SECONDS: u64 = 24 * 60 * 60;

/// The bytes Sinch MACs.
pub fn signed_content(body: &[u8], nonce: &str, timestamp: &str) -> Vec<u8> {
    let mut signed = Vec::with_capacity(body.len() + nonce.len() + timestamp.len() + 2);
    signed.extend_from_slice(body);
    signed.push(b'.');
    signed.extend_from_slice(nonce.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.as_bytes());
    signed
}

/// The signature Sinch sends.
pub fn sign(secret: &str, body: &[u8], nonce: &str, timestamp: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    BASE64.encode(hmac::sign(&key, &signed_content(body, nonce, timestamp)).as_ref())
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    if webhook.headers.get(SIGNATURE_HEADER).is_none() {
        return super::verify_shared_secret(provider, webhook, auth);
    }
    let keys = secrets(provider, Authentication::SinchHmac, auth)?;
    let signature = base64_header(provider, webhook, SIGNATURE_HEADER)?;
    let nonce = header(provider, webhook, NONCE_HEADER)?;
    let timestamp = header(provider, webhook, TIMESTAMP_HEADER)?;
    if let Some(algorithm) = webhook.headers.get(ALGORITHM_HEADER)
        && !algorithm.trim().eq_ignore_ascii_case("HmacSHA256")
    {
        return Err(WebhookError::unauthenticated(
            provider,
            format!("{ALGORITHM_HEADER} is {:?}; Sinch signs with HmacSHA256", algorithm.trim()),
        ));
    }
    check_timestamp(provider, TIMESTAMP_HEADER, timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    let signed = signed_content(webhook.body, nonce, timestamp);
    if hmac_matches(hmac::HMAC_SHA256, &keys, &signed, &signature) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("{SIGNATURE_HEADER} does not match the body (wrong callback secret or altered body)"),
        ))
    }
}
