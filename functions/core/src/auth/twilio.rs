//! Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1(auth token, URL ‖ each POST parameter's name
//! and value, sorted by name). The URL is the exact one configured in Twilio, so the source
//! stores it; rebuilding it from the request gets host case, port or query wrong behind a proxy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::{Authentication, SourceAuth, header, secrets};
use crate::providers::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The bytes Twilio MACs: the URL, then each parameter's name and value, sorted by name.
fn signed_content(url: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut signed = Vec::with_capacity(url.len() + 64 * sorted.len());
    signed.extend_from_slice(url.as_bytes());
    for (name, value) in sorted {
        signed.extend_from_slice(name.as_bytes());
        signed.extend_from_slice(value.as_bytes());
    }
    signed
}

/// The signature Twilio computes for `url` and form `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    BASE64.encode(hmac::sign(&key, &signed_content(url, params)).as_ref())
}

pub(crate) fn verify(provider: ProviderId, webhook: &Webhook<'_>, auth: &SourceAuth) -> Result<(), WebhookError> {
    let tokens = secrets(provider, Authentication::TwilioHmacSha1, auth)?;
    let url = auth.public_url.as_deref().ok_or_else(|| {
        WebhookError::unauthenticated(
            provider,
            "the source has no public URL configured (Twilio signs the exact URL it posts to)",
        )
    })?;
    let given = header(provider, webhook, SIGNATURE_HEADER)?;
    let given = BASE64
        .decode(given)
        .map_err(|_| WebhookError::unauthenticated(provider, format!("{SIGNATURE_HEADER} is not base64")))?;
    let params: Vec<(String, String)> = form_urlencoded::parse(webhook.body).into_owned().collect();
    let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let signed = signed_content(url, &params);
    let ok = tokens.iter().any(|token| {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.expose().as_bytes());
        hmac::verify(&key, &signed, &given).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!(
                "{SIGNATURE_HEADER} does not match (wrong auth token, or the configured public URL differs from Twilio's)"
            ),
        ))
    }
}
