//! Unisender Go's webhook signature: the body's top-level `auth` field is the hex MD5 of the
//! body itself with that field's value replaced by the account's (or project's) API key. The
//! check does the same replacement on the raw bytes, never on re-written JSON: Unisender writes
//! `\/` for `/`, and key order matters. MD5 is what Unisender signs with; it binds the body to a
//! secret only as well as MD5 can, and there is no timestamp, so a replay repeats an event
//! already stored under its id.

use md5::{Digest, Md5};
use serde::Deserialize;

use super::{Authentication, SourceAuth, constant_time_eq, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(borrow)]
    auth: std::borrow::Cow<'a, str>,
}

/// `body` with every occurrence of `from` replaced by `to`.
pub fn replace_all(body: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return body.to_vec();
    }
    let mut out = Vec::with_capacity(body.len() + to.len());
    let mut rest = body;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The hex MD5 of `body` with `auth`'s value replaced by `api_key`.
pub fn digest(body: &[u8], auth: &str, api_key: &str) -> String {
    hex::encode(Md5::digest(replace_all(body, auth.as_bytes(), api_key.as_bytes())))
}

/// Signs `body`, whose `auth` field holds `placeholder`, as Unisender does.
pub fn sign(body: &[u8], placeholder: &str, api_key: &str) -> Vec<u8> {
    let signature = digest(body, placeholder, api_key);
    replace_all(body, placeholder.as_bytes(), signature.as_bytes())
}

pub(crate) fn verify(provider: ProviderId, webhook: &Webhook<'_>, auth: &SourceAuth) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::UnisenderMd5, auth)?;
    let signed: Signed<'_> = serde_json::from_slice(webhook.body).map_err(|error| {
        if error.to_string().starts_with("duplicate field") {
            WebhookError::malformed(provider, "body field `auth` is given twice")
        } else {
            WebhookError::unauthenticated(provider, "body has no top-level `auth` field, so it carries no signature")
        }
    })?;
    let given = signed.auth.to_ascii_lowercase();
    if given.len() != 32 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WebhookError::unauthenticated(provider, "body field `auth` is not an MD5 digest (32 hex digits)"));
    }
    if keys
        .iter()
        .any(|key| constant_time_eq(digest(webhook.body, &signed.auth, key.expose()).as_bytes(), given.as_bytes()))
    {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            "body field `auth` does not match (wrong API key, or an altered body)",
        ))
    }
}
