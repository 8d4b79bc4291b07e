//! Plivo's request signature, version 3: `X-Plivo-Signature-V3` is base64 HMAC-SHA256 under the
//! auth token of `<signed URL>.<nonce>`, the nonce in `X-Plivo-Signature-V3-Nonce`. For a POST
//! the signed URL is the URL Plivo called without its query, then `?`, the URL's own query
//! parameters sorted as `k=v` joined with `&`, a `.` when there are both, and the form
//! parameters sorted by name, each written as name then value with nothing between. With
//! several auth tokens active the header lists several signatures, comma-separated; any one
//! passes. `X-Plivo-Signature-Ma-V3` is the same under the main account's token.
//!
//! As with Twilio, the URL is the source's configured public URL (scheme, host and port as Plivo
//! sees them) with the request's query string. Plivo signs no timestamp: a replayed request is a
//! repeat of an event already stored under the same id.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::{Authentication, SourceAuth, header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Plivo-Signature-V3";
pub const MAIN_ACCOUNT_SIGNATURE_HEADER: &str = "X-Plivo-Signature-Ma-V3";
pub const NONCE_HEADER: &str = "X-Plivo-Signature-V3-Nonce";

/// Parameters grouped by name, in name order, each name's values in order.
fn grouped(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in pairs {
        map.entry(name).or_default().push(value);
    }
    for values in map.values_mut() {
        values.sort_unstable();
    }
    map
}

/// The text Plivo signs for a POST to `url` (query included) with form `params`, before the nonce.
pub fn signed_url(url: &str, params: &[(String, String)]) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let query = grouped(form_urlencoded::parse(query.as_bytes()).into_owned());
    let form = grouped(params.iter().cloned());
    let query_text: Vec<String> =
        query.iter().flat_map(|(name, values)| values.iter().map(move |v| format!("{name}={v}"))).collect();
    let query_text = query_text.join("&");
    let mut signed = base.to_owned();
    if !query_text.is_empty() || !form.is_empty() {
        signed.push('?');
        signed.push_str(&query_text);
    }
    if !query_text.is_empty() && !form.is_empty() {
        signed.push('.');
    }
    for (name, values) in &form {
        for value in values {
            signed.push_str(name);
            signed.push_str(value);
        }
    }
    signed
}

/// The signature Plivo sends for a POST of `params` to `url` with `nonce`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)], nonce: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, auth_token.as_bytes());
    let message = format!("{}.{nonce}", signed_url(url, params));
    BASE64.encode(hmac::sign(&key, message.as_bytes()).as_ref())
}

pub(crate) fn verify(provider: ProviderId, webhook: &Webhook<'_>, auth: &SourceAuth) -> Result<(), WebhookError> {
    let tokens = secrets(provider, Authentication::PlivoV3, auth)?;
    let public_url = auth.public_url.as_deref().ok_or_else(|| {
        WebhookError::unauthenticated(
            provider,
            "the source has no public URL configured (Plivo signs the exact URL it posts to)",
        )
    })?;
    let nonce = header(provider, webhook, NONCE_HEADER)?;
    let mut given: Vec<Vec<u8>> = Vec::new();
    for name in [SIGNATURE_HEADER, MAIN_ACCOUNT_SIGNATURE_HEADER] {
        if let Some(value) = webhook.headers.get(name) {
            given.extend(value.split(',').filter_map(|s| BASE64.decode(s.trim()).ok()));
        }
    }
    if given.is_empty() {
        return Err(WebhookError::unauthenticated(provider, format!("missing header {SIGNATURE_HEADER}")));
    }
    if std::str::from_utf8(webhook.body).is_err() {
        return Err(WebhookError::malformed(provider, "body is not UTF-8 form data"));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(webhook.body).into_owned().collect();
    let url = super::twilio::called_url(public_url, webhook.query);
    let message = format!("{}.{nonce}", signed_url(&url, &params));
    let ok = tokens.iter().any(|token| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, token.expose().as_bytes());
        given.iter().any(|signature| hmac::verify(&key, message.as_bytes(), signature).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!(
                "{SIGNATURE_HEADER} does not match (wrong auth token, or the configured public URL differs from the one Plivo called)"
            ),
        ))
    }
}
