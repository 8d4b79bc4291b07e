//! Vonage's signed webhooks. The Messages API sends `Authorization: Bearer <JWT>`, HS256 under
//! the account's signature secret, whose claims carry `payload_hash` (the hex SHA-256 of the
//! body) and `iat`: the JWT's own signature proves the sender, the hash binds the body to it.
//!
//! The older SMS API signs its delivery receipts and inbound messages only when Vonage support
//! turns signing on: then the parameters carry `timestamp`, `nonce` and `sig`, the hex HMAC
//! under the signature secret of every other parameter, sorted by name, written `&name=value`
//! with `&` and `=` in values replaced by `_`. tidings checks the HMAC methods (SHA-256, SHA-512,
//! SHA-1); the MD5 methods cannot be checked here and are refused with a reason saying so.
//! An SMS API webhook without `sig` must carry the secret as a shared secret (a `?token=` on the
//! URL configured in the dashboard).
//!
//! Only HS256 is accepted (a token naming another algorithm, `none` included, is refused before
//! anything else is read). Vonage does not document whether retries are signed anew, so the
//! default tolerance on `iat` spans a day of retries; a replay inside it repeats an event tidings
//! already stored under the same id, which is a no-op.

use ring::{digest, hmac};
use serde::Deserialize;

use super::{Authentication, SourceAuth, VerifyContext, constant_time_eq, secrets, strip_prefix_ignore_case};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError};

/// How far `iat` may be from now by default.
pub const TOLERANCE_SECONDS: u64 = 25 * 60 * 60;

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
    super::jwt::sign(secret, "HS256", hmac::HMAC_SHA256, claims)
}

/// The parameters of an SMS API webhook: the members of a flat JSON object (strings as they are,
/// other values as their JSON text) or the fields of a form. `None` for anything else.
pub fn sms_parameters(body: &[u8]) -> Option<Vec<(String, String)>> {
    if body.trim_ascii_start().first() == Some(&b'{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        return Some(
            object
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(text) => (k, text),
                    other => (k, other.to_string()),
                })
                .collect(),
        );
    }
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

/// The text the SMS API signs: every parameter but `sig`, sorted by name, as `&name=value`.
pub fn sms_signature_input(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort();
    sorted.iter().map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_"))).collect()
}

/// The SMS API's `sig` with the HMAC-SHA256 method.
pub fn sign_sms(secret: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, sms_signature_input(params).as_bytes()).as_ref())
}

/// Checks an SMS API webhook's `sig`.
fn verify_sms(
    provider: ProviderId,
    params: &[(String, String)],
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::VonageSignature, auth)?;
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let given = get("sig").unwrap_or_default().to_ascii_lowercase();
    let timestamp = get("timestamp")
        .ok_or_else(|| WebhookError::unauthenticated(provider, "a signed SMS webhook has no `timestamp` parameter"))?;
    super::check_timestamp(provider, "parameter `timestamp`", timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    let input = sms_signature_input(params);
    let methods = [hmac::HMAC_SHA256, hmac::HMAC_SHA512, hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY];
    let ok = keys.iter().any(|secret| {
        methods.iter().any(|method| {
            let key = hmac::Key::new(*method, secret.expose().as_bytes());
            constant_time_eq(hex::encode(hmac::sign(&key, input.as_bytes()).as_ref()).as_bytes(), given.as_bytes())
        })
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            "parameter `sig` does not match (wrong signature secret, or an MD5 signature method, which tidings cannot check: choose SHA-256 HMAC in the dashboard)",
        ))
    }
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let bearer = webhook.headers.get("authorization").and_then(|v| strip_prefix_ignore_case(v.trim(), "bearer "));
    let Some(token) = bearer.map(str::trim).filter(|t| t.matches('.').count() == 2) else {
        // Not the Messages API: an SMS API webhook, signed with `sig` or carrying the secret.
        if let Some(params) = sms_parameters(webhook.body).filter(|p| p.iter().any(|(k, _)| k == "sig")) {
            return verify_sms(provider, &params, auth, ctx);
        }
        return super::verify_shared_secret(provider, webhook, auth);
    };
    let keys = secrets(provider, Authentication::VonageSignature, auth)?;
    let refuse = |why: &str| WebhookError::unauthenticated(provider, why.to_owned());
    // Vonage signs webhooks with HS256 only.
    let claims: Claims = super::jwt::verified_claims(token, &[("HS256", hmac::HMAC_SHA256)], &keys)
        .map_err(|why| refuse(&format!("Authorization: {why}")))?;
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
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;

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
        assert!(check(&none, body).unwrap_err().to_string().contains("algorithm"));
        assert!(check("a.b", body).is_err());
    }

    #[test]
    fn sms_api_signatures_match_vonages_published_vectors() {
        // vonage-python-sdk v3 tests/test_signature.py: secret `secret`.
        let params: Vec<(String, String)> = [("a", "1"), ("b", "2"), ("timestamp", "1461605396")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(sms_signature_input(&params), "&a=1&b=2&timestamp=1461605396");
        assert_eq!(sign_sms("secret", &params), "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24");
        let ctx = VerifyContext { now: Timestamp::from_unix_seconds(1_461_605_396).unwrap(), certificates: &NoCerts };
        let auth = SourceAuth::with_secret("secret");
        let signed = |sig: &str| {
            let mut with = params.clone();
            with.push(("sig".into(), sig.into()));
            verify_sms(ProviderId::Vonage, &with, &auth, &ctx)
        };
        signed("A321E824B9B816BE7C3F28859A31749A098713D39F613C80D455BBAFFAE1CD24").unwrap();
        signed("3e19a4e6880fdc2c1426bfd0587c98b9532f0210").unwrap();
        signed("812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c63ed26ec9702168781b6edcf1633db8ff95af9341701004eec3fcf9550572ee8").unwrap();
        // md5hash cannot be checked, and says why.
        let md5 = signed("6af838ef94998832dbfc29020b564830").unwrap_err();
        assert!(md5.to_string().contains("MD5"), "{md5}");
        // & and = inside values are written as _.
        let tricky: Vec<(String, String)> = [("param1", "value&1"), ("param2", "value=2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(sms_signature_input(&tricky), "&param1=value_1&param2=value_2");
    }
}
