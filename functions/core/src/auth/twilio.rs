//! Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1(auth token, URL ‖ each POST parameter's name
//! and value, sorted by name). The URL is the one Twilio called, query string included: senders
//! put their own context in the status-callback URL (`?userId=42&journeyId=j1`) and Twilio signs
//! it as it is. The source stores the public URL (scheme, host case and port as Twilio sees them,
//! which a proxy would hide from the request); the query is taken from the request as sent.
//!
//! A body that is not form data (JSON) is not part of the signed parameters: Twilio adds a
//! `bodySHA256` parameter (the body's SHA-256 in hex) to the URL it signs, so the body is bound
//! by that hash. Like Twilio's own validators, the URL is accepted with or without the scheme's
//! default port.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac};

use super::{Authentication, SourceAuth, constant_time_eq, header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The URL parameter in which Twilio sends the SHA-256 of a JSON body.
pub const BODY_HASH_PARAMETER: &str = "bodySHA256";

/// The bytes Twilio MACs: the URL, then each parameter's name and value, sorted by name and
/// then value (a parameter repeated with the same value counts once, as in Twilio's helpers).
fn signed_content(url: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = params.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
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

/// The lowercase hex SHA-256 of `body`, as Twilio writes it in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, body).as_ref())
}

/// The URL Twilio called: the configured public URL without any query of its own, then the
/// request's query string exactly as sent.
pub fn called_url(public_url: &str, query: Option<&str>) -> String {
    let base = public_url.split_once('?').map_or(public_url, |(base, _)| base);
    match query {
        Some(query) if !query.is_empty() => format!("{base}?{query}"),
        _ => base.to_owned(),
    }
}

/// `url` as given, and with its port written the other way: the scheme's default port added
/// when none is written, or the written port removed. Twilio's helpers accept either form.
fn port_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else { return variants };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    // A bracketed IPv6 host's colons are not a port separator.
    let port_start = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
    let other = match port_start {
        Some(i) => format!("{scheme}://{}{tail}", &authority[..i]),
        None => format!("{scheme}://{authority}:{default_port}{tail}"),
    };
    variants.push(other);
    variants
}

/// The header Mailchimp Transactional (Mandrill) signs its webhooks in, the same way.
pub const MANDRILL_SIGNATURE_HEADER: &str = "X-Mandrill-Signature";

/// Checks `signature_header` as Twilio computes it; Mandrill signs its webhooks the same way
/// (the URL as configured, then the sorted form parameters), in its own header.
pub(crate) fn verify(
    provider: ProviderId,
    scheme: Authentication,
    signature_header: &str,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
) -> Result<(), WebhookError> {
    let tokens = secrets(provider, scheme, auth)?;
    let public_url = auth.public_url.as_deref().ok_or_else(|| {
        WebhookError::unauthenticated(
            provider,
            format!("the source has no public URL configured ({provider} signs the exact URL it posts to)"),
        )
    })?;
    let given = header(provider, webhook, signature_header)?;
    let given = BASE64
        .decode(given)
        .map_err(|_| WebhookError::unauthenticated(provider, format!("{signature_header} is not base64")))?;
    let url = called_url(public_url, webhook.query);
    let body_hash = webhook
        .query
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == BODY_HASH_PARAMETER))
        .map(|(_, value)| value.into_owned());
    let form: Vec<(String, String)> = match &body_hash {
        // The body is bound by its hash in the signed URL, and is not a signed parameter.
        Some(hash) => {
            if !constant_time_eq(body_sha256(webhook.body).as_bytes(), hash.to_ascii_lowercase().as_bytes()) {
                return Err(WebhookError::unauthenticated(
                    provider,
                    format!("the body's SHA-256 does not match the URL's {BODY_HASH_PARAMETER} parameter"),
                ));
            }
            Vec::new()
        }
        None => form_urlencoded::parse(webhook.body).into_owned().collect(),
    };
    let params: Vec<(&str, &str)> = form.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let candidates: Vec<Vec<u8>> = port_variants(&url).iter().map(|u| signed_content(u, &params)).collect();
    let ok = tokens.iter().any(|token| {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.expose().as_bytes());
        candidates.iter().any(|signed| hmac::verify(&key, signed, &given).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!(
                "{signature_header} does not match (wrong {}, or the configured public URL differs from the one {provider} called)",
                scheme.secret_name()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_url_is_the_public_url_with_the_request_query() {
        let public = "https://hooks.example.com/webhooks/twilio/src_1";
        assert_eq!(called_url(public, None), public);
        assert_eq!(called_url(public, Some("")), public);
        assert_eq!(called_url(public, Some("userId=u%201&a=b")), format!("{public}?userId=u%201&a=b"));
        assert_eq!(called_url(&format!("{public}?old=1"), Some("a=b")), format!("{public}?a=b"));
    }

    #[test]
    fn ports_are_tried_written_and_unwritten() {
        assert_eq!(
            port_variants("https://h.example/p?q=1"),
            ["https://h.example/p?q=1", "https://h.example:443/p?q=1"]
        );
        assert_eq!(port_variants("http://h.example:8080/p"), ["http://h.example:8080/p", "http://h.example/p"]);
        assert_eq!(port_variants("https://[::1]/p"), ["https://[::1]/p", "https://[::1]:443/p"]);
        assert_eq!(port_variants("not a url"), ["not a url"]);
    }
}
