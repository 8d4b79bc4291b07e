//! The HMAC-signed JSON Web Tokens providers put on their webhooks (Vonage, MessageBird): a
//! token read, its algorithm checked against the ones the provider signs with (never `none`), its
//! signature verified under the source's keys, and its claims handed back for the provider's own
//! checks.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use ring::hmac;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Secret, hmac_matches};

/// The longest token read: providers' are a few hundred bytes.
const MAX_TOKEN: usize = 4096;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Base64url as JWTs write it; padding tolerated.
fn decode(part: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(part.trim_end_matches('=')).ok()
}

/// The claims of `token` when it is signed under one of `keys` with one of `algorithms`
/// (`("HS256", HMAC_SHA256)`, …); otherwise why not, as a phrase.
pub(crate) fn verified_claims<C: DeserializeOwned>(
    token: &str,
    algorithms: &[(&str, hmac::Algorithm)],
    keys: &[&Secret],
) -> Result<C, &'static str> {
    if token.len() > MAX_TOKEN {
        return Err("the token is too long to be a JWT");
    }
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWT (three dot-separated parts)");
    };
    let header: Header =
        decode(head).and_then(|b| serde_json::from_slice(&b).ok()).ok_or("the JWT header is not base64url JSON")?;
    let (_, algorithm) = algorithms
        .iter()
        .find(|(name, _)| *name == header.alg)
        .ok_or("the JWT is signed with an algorithm the provider does not sign webhooks with")?;
    let signature = decode(signature).ok_or("the JWT signature is not base64url")?;
    let signing_input = &token[..head.len() + 1 + payload.len()];
    if !hmac_matches(*algorithm, keys, signing_input.as_bytes(), &signature) {
        return Err("the JWT's signature does not verify (wrong secret)");
    }
    decode(payload).and_then(|b| serde_json::from_slice(&b).ok()).ok_or("the JWT claims are not base64url JSON")
}

/// An HMAC JWT with `claims` (for signing test requests).
pub fn sign(secret: &str, alg: &str, algorithm: hmac::Algorithm, claims: &serde_json::Value) -> String {
    let head = BASE64URL.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
    let body = BASE64URL.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let tag = hmac::sign(&hmac::Key::new(algorithm, secret.as_bytes()), signing_input.as_bytes());
    format!("{signing_input}.{}", BASE64URL.encode(tag.as_ref()))
}
