//! SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header's text
//! followed by the raw body, signature in base64 DER, public key in base64 DER (SPKI) as the
//! SendGrid dashboard shows it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{Authentication, SourceAuth, VerifyContext, base64_header, check_timestamp, header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// SendGrid does not document whether retries are re-signed, and retries for up to 24 hours, so
/// the default tolerance spans that window: a stale retry must not be lost. Exact replays
/// inside it are no-ops (dedup by `sg_event_id`); a source can narrow it.
pub const TOLERANCE_SECONDS: u64 = 25 * 60 * 60;

const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";

/// Why a SendGrid verification key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("verification key is not base64")]
    NotBase64,
    #[error("verification key is not a DER public key")]
    NotDer,
    #[error("verification key is not an ECDSA P-256 key")]
    NotP256,
}

/// The uncompressed P-256 point from a base64 DER SubjectPublicKeyInfo (PEM armour tolerated).
pub fn public_key_point(key: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = BASE64.decode(body).map_err(|_| KeyError::NotBase64)?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&der).map_err(|_| KeyError::NotDer)?;
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|oid| oid.to_id_string());
    if spki.algorithm.algorithm.to_id_string() != EC_PUBLIC_KEY_OID || curve.as_deref() != Some(P256_OID) {
        return Err(KeyError::NotP256);
    }
    Ok(spki.subject_public_key.data.to_vec())
}

pub(crate) fn verify(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::SendgridEcdsa, auth)?;
    let points = keys
        .iter()
        .map(|k| public_key_point(k.expose()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| WebhookError::unauthenticated(provider, format!("source misconfigured: {why}")))?;
    let signature = base64_header(provider, webhook, SIGNATURE_HEADER)?;
    let timestamp = header(provider, webhook, TIMESTAMP_HEADER)?;
    check_timestamp(provider, TIMESTAMP_HEADER, timestamp, ctx.now, auth.tolerance(TOLERANCE_SECONDS))?;
    let mut signed = Vec::with_capacity(timestamp.len() + webhook.body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(webhook.body);
    let ok = points
        .iter()
        .any(|point| UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(&signed, &signature).is_ok());
    if ok {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("{SIGNATURE_HEADER} does not verify (wrong public key, altered body or timestamp)"),
        ))
    }
}
