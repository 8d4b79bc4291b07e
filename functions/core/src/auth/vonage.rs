//! Vonage's signed webhooks (Messages API): `Authorization: Bearer <JWT>`, HS256 under the
//! account's signature secret, whose claims carry `payload_hash` (the hex SHA-256 of the body)
//! and `iat`. The JWT's own signature proves the sender; the hash binds the body to it.
//!
//! Only HS256 is accepted (a token naming another algorithm, `none` included, is refused before
//! anything else is read). Vonage does not document whether retries are signed anew, so the
//! default tolerance on `iat` spans a day of retries; a replay inside it repeats an event tidings
//! already stored under the same id, which is a no-op.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use ring::{digest, hmac};
use serde::Deserialize;

use super::{Authentication, SourceAuth, VerifyContext, constant_time_eq, header, secrets, strip_prefix_ignore_case};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError};

/// How far `iat` may be from now by default.
pub const TOLERANCE_SECONDS: u64 = 25 * 60 * 60;

/// The longest token read: Vonage's are a few hundred bytes.
const MAX_TOKEN: usize = 4096;

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    payload_hash: Option<String>,
}

/// The hex SHA-256 of a body, as `payload_hash` carries it.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, body).as_ref())
}

/// An HS256 JWT with `claims` under `secret` (for signing test requests).
pub fn sign(secret: &str, claims: &serde_json::Value) -> String {
    let head = BASE64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = BASE64URL.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", BASE64URL.encode(tag.as_ref()))
}

/// Base64url as JWTs write it; padding tolerated.
fn decode(part: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(part.trim_end_matches('=')).ok()
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::VonageJwt, auth)?;
    let refuse = |why: &str| WebhookError::unauthenticated(provider, why.to_owned());
    let value = header(provider, webhook, "Authorization")?;
    let token =
        strip_prefix_ignore_case(value, "bearer ").ok_or_else(|| refuse("Authorization is not a Bearer token"))?;
    let token = token.trim();
    if token.len() > MAX_TOKEN {
        return Err(refuse("the Authorization token is too long to be a Vonage JWT"));
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse("the Authorization token is not a JWT (three dot-separated parts)"));
    };
    let jwt_header: JwtHeader = decode(head)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| refuse("the JWT header is not base64url JSON"))?;
    if jwt_header.alg != "HS256" {
        return Err(refuse("the JWT is not signed with HS256 (the only algorithm Vonage signs webhooks with)"));
    }
    let signature = decode(signature).ok_or_else(|| refuse("the JWT signature is not base64url"))?;
    let signing_input = &token[..head.len() + 1 + body.len()];
    let signed = keys.iter().any(|key| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes());
        hmac::verify(&key, signing_input.as_bytes(), &signature).is_ok()
    });
    if !signed {
        return Err(refuse("the JWT's signature does not verify (wrong signature secret)"));
    }
    let claims: Claims = decode(body)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| refuse("the JWT claims are not base64url JSON"))?;
    let iat = claims.iat.ok_or_else(|| refuse("the JWT has no `iat` claim"))?;
    let issued = Timestamp::from_unix_seconds(iat).ok_or_else(|| refuse("the JWT's `iat` is not a time"))?;
    let tolerance = auth.tolerance(TOLERANCE_SECONDS);
    let skew = ctx.now.seconds_until(issued).unsigned_abs();
    if skew > tolerance {
        return Err(WebhookError::unauthenticated(
            provider,
            format!(
                "the JWT's `iat` is {skew} s from now, outside the {tolerance} s tolerance (replayed or clock skew)"
            ),
        ));
    }
    let expected = payload_hash(webhook.body);
    match claims.payload_hash {
        Some(given) if constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(refuse("the JWT's `payload_hash` does not match the body (altered body)")),
        None => Err(refuse("the JWT has no `payload_hash` claim, so it does not cover the body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CertificateStore;
    use crate::auth::sns::{CertUrl, SnsCertificate, SnsError};
    use crate::webhook::Headers;

    struct NoCerts;
    impl CertificateStore for NoCerts {
        fn certificate(&self, url: &CertUrl) -> Result<std::sync::Arc<SnsCertificate>, SnsError> {
            Err(SnsError::NotFetched(url.as_str().to_owned()))
        }
    }

    fn check(token: &str, body: &[u8]) -> Result<(), WebhookError> {
        let headers: Headers = [("Authorization", format!("Bearer {token}"))].into_iter().collect();
        let ctx = VerifyContext { now: Timestamp::from_unix_seconds(1_700_000_000).unwrap(), certificates: &NoCerts };
        verify(
            ProviderId::Twilio,
            &Webhook::http(body, &headers),
            &SourceAuth::with_secret("signature-secret-0123"),
            &ctx,
        )
    }

    #[test]
    fn a_token_must_be_hs256_under_the_secret_and_cover_this_body() {
        let body = br#"{"message_uuid":"m1","status":"delivered"}"#;
        let claims = serde_json::json!({"iat": 1_700_000_000, "payload_hash": payload_hash(body), "iss": "Vonage"});
        assert!(check(&sign("signature-secret-0123", &claims), body).is_ok());
        assert!(check(&sign("another-secret-000000", &claims), body).unwrap_err().to_string().contains("signature"));
        assert!(
            check(&sign("signature-secret-0123", &claims), b"{}").unwrap_err().to_string().contains("payload_hash")
        );
        let old = serde_json::json!({"iat": 1_600_000_000, "payload_hash": payload_hash(body)});
        assert!(check(&sign("signature-secret-0123", &old), body).unwrap_err().to_string().contains("tolerance"));
        // An unsigned token naming `none` is refused whatever it claims.
        let none = format!("{}.{}.", BASE64URL.encode(br#"{"alg":"none"}"#), BASE64URL.encode(claims.to_string()));
        assert!(check(&none, body).unwrap_err().to_string().contains("HS256"));
        assert!(check("a.b", body).is_err());
    }
}
