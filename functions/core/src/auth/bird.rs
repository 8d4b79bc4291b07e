//! Bird's (MessageBird's) webhook signatures, two generations:
//!
//! - Channels and Notifications API: `messagebird-signature` is base64 HMAC-SHA256 under the
//!   subscription's signing key of the `messagebird-request-timestamp` header, a newline, the URL
//!   Bird called, a newline, and the raw SHA-256 of the body.
//! - The older MessageBird API: `MessageBird-Signature-JWT`, a JWT (HS256, HS384 or HS512 under
//!   the signing key) whose claims bind the URL (`url_hash`) and the body (`payload_hash`, absent
//!   exactly when the body is empty), valid from `nbf` to `exp`.
//!
//! Both sign the URL, so the source holds its public URL, as for Twilio; the request's query
//! string is taken as sent. Bird retries for eight hours and does not document whether a retry
//! is signed anew, so the Channels timestamp may be up to nine hours old by default; a replay
//! inside that window repeats an event already stored under its id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac};
use serde::Deserialize;

use super::{
    Authentication, SourceAuth, VerifyContext, base64_header, check_timestamp, constant_time_eq, header, hmac_matches,
    secrets,
};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "messagebird-signature";
pub const TIMESTAMP_HEADER: &str = "messagebird-request-timestamp";
pub const JWT_HEADER: &str = "MessageBird-Signature-JWT";

/// How far the Channels API timestamp may be from now by default.
pub const TOLERANCE_SECONDS: u64 = 9 * 60 * 60;

/// Leeway on a JWT's `nbf` and `exp`, for clocks a little apart.
const JWT_LEEWAY_SECONDS: i64 = 5;

/// The bytes Bird's Channels API MACs.
pub fn signed_content(timestamp: &str, url: &str, body: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(timestamp.len() + url.len() + 34);
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'\n');
    signed.extend_from_slice(url.as_bytes());
    signed.push(b'\n');
    signed.extend_from_slice(digest::digest(&digest::SHA256, body).as_ref());
    signed
}

/// The Channels API signature.
pub fn sign(key: &str, timestamp: &str, url: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    BASE64.encode(hmac::sign(&key, &signed_content(timestamp, url, body)).as_ref())
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::BirdHmac, auth)?;
    let public_url = auth.public_url.as_deref().ok_or_else(|| {
        WebhookError::unauthenticated(
            provider,
            "the source has no public URL configured (Bird signs the exact URL it posts to)",
        )
    })?;
    let url = super::twilio::called_url(public_url, webhook.query);
    if let Some(token) = webhook.headers.get(JWT_HEADER) {
        return verify_jwt(provider, token.trim(), &url, webhook.body, &keys, ctx.now);
    }
    let signature = base64_header(provider, webhook, SIGNATURE_HEADER)?;
    let timestamp = header(provider, webhook, TIMESTAMP_HEADER)?;
    check_timestamp(provider, TIMESTAMP_HEADER, timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    let signed = signed_content(timestamp, &url, webhook.body);
    if hmac_matches(hmac::HMAC_SHA256, &keys, &signed, &signature) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!(
                "{SIGNATURE_HEADER} does not match (wrong signing key, or the configured public URL differs from the one Bird called)"
            ),
        ))
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    url_hash: Option<String>,
    #[serde(default)]
    payload_hash: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Checks a `MessageBird-Signature-JWT` for `url` and `body` at `now`.
pub fn verify_jwt(
    provider: ProviderId,
    token: &str,
    url: &str,
    body: &[u8],
    keys: &[&super::Secret],
    now: Timestamp,
) -> Result<(), WebhookError> {
    let refuse = |why: &str| WebhookError::unauthenticated(provider, format!("{JWT_HEADER}: {why}"));
    let algorithms = [("HS256", hmac::HMAC_SHA256), ("HS384", hmac::HMAC_SHA384), ("HS512", hmac::HMAC_SHA512)];
    let claims: Claims = super::jwt::verified_claims(token, &algorithms, keys).map_err(refuse)?;
    if claims.iss.as_deref() != Some("MessageBird") {
        return Err(refuse("the issuer is not MessageBird"));
    }
    let now = now.unix_seconds();
    match (claims.nbf, claims.exp) {
        (Some(nbf), Some(exp)) if nbf - JWT_LEEWAY_SECONDS <= now && now <= exp + JWT_LEEWAY_SECONDS => {}
        (Some(nbf), Some(_)) if nbf - JWT_LEEWAY_SECONDS > now => return Err(refuse("not valid yet (nbf)")),
        (Some(_), Some(_)) => return Err(refuse("expired (exp)")),
        _ => return Err(refuse("has no nbf and exp")),
    }
    let url_hash = claims.url_hash.ok_or_else(|| refuse("has no url_hash"))?;
    if !constant_time_eq(url_hash.to_ascii_lowercase().as_bytes(), sha256_hex(url.as_bytes()).as_bytes()) {
        return Err(refuse("url_hash does not match the configured public URL"));
    }
    match (claims.payload_hash, body.is_empty()) {
        (None, true) => Ok(()),
        (Some(hash), false) if constant_time_eq(hash.to_ascii_lowercase().as_bytes(), sha256_hex(body).as_bytes()) => {
            Ok(())
        }
        (Some(_), false) => Err(refuse("payload_hash does not match the body")),
        (Some(_), true) => Err(refuse("payload_hash is set but the body is empty")),
        (None, false) => Err(refuse("payload_hash is missing, so the body is not covered")),
    }
}
