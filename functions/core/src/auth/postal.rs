//! Postal's webhook signature: the server's RSA key signs the raw body, PKCS#1 v1.5, with
//! SHA-256 in `X-Postal-Signature-256` (Postal 3.2 and later) and with SHA-1 in
//! `X-Postal-Signature` (every version). The key to verify with is the server's public key:
//! the `p=` value of its DKIM record (`postal default-dkim-record`), as base64 DER, PEM, or the
//! JWK at `https://<postal host>/.well-known/jwks.json`. The SHA-256 signature is checked where
//! it is sent; the SHA-1 one only from a Postal too old to send the other.
//!
//! Postal signs no timestamp: a replayed request repeats an event already stored under its id.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{Authentication, SourceAuth, base64_header, secrets};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

pub const SIGNATURE_HEADER: &str = "X-Postal-Signature";
pub const SIGNATURE_256_HEADER: &str = "X-Postal-Signature-256";

const RSA_OID: &str = "1.2.840.113549.1.1.1";

/// A Postal server's public key.
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER, from a SubjectPublicKeyInfo.
    Der(Vec<u8>),
    /// The modulus and exponent of a JWK.
    Components { n: Vec<u8>, e: Vec<u8> },
}

/// Reads a public key given as base64 DER SubjectPublicKeyInfo (a DKIM record's `p=` value,
/// with or without `p=`), PEM, or an RSA JWK (`{"kty":"RSA","n":…,"e":…}`).
pub fn public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let jwk: serde_json::Value = serde_json::from_str(text).map_err(|_| "is not a JSON JWK".to_owned())?;
        let part = |name: &str| {
            jwk[name]
                .as_str()
                .and_then(|v| BASE64URL.decode(v.trim_end_matches('=')).ok())
                .ok_or(format!("has no base64url `{name}`"))
        };
        if jwk["kty"] != "RSA" {
            return Err("is a JWK but not an RSA key".into());
        }
        return Ok(PublicKey::Components { n: part("n")?, e: part("e")? });
    }
    let body: String = text
        .trim_start_matches("p=")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = BASE64.decode(body).map_err(|_| "is not base64, PEM or a JWK".to_owned())?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&der).map_err(|_| "is not a DER public key".to_owned())?;
    if spki.algorithm.algorithm.to_id_string() != RSA_OID {
        return Err("is not an RSA public key".into());
    }
    Ok(PublicKey::Der(spki.subject_public_key.data.to_vec()))
}

impl PublicKey {
    fn verify(&self, sha256: bool, body: &[u8], signature: &[u8]) -> bool {
        let algorithm =
            if sha256 { &RSA_PKCS1_2048_8192_SHA256 } else { &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY };
        match self {
            PublicKey::Der(der) => UnparsedPublicKey::new(algorithm, der).verify(body, signature).is_ok(),
            PublicKey::Components { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(algorithm, body, signature).is_ok()
            }
        }
    }
}

pub(crate) fn verify(provider: ProviderId, webhook: &Webhook<'_>, auth: &SourceAuth) -> Result<(), WebhookError> {
    let keys = secrets(provider, Authentication::PostalRsa, auth)?;
    let keys = keys.iter().map(|k| public_key(k.expose())).collect::<Result<Vec<_>, _>>().map_err(|why| {
        WebhookError::unauthenticated(provider, format!("source misconfigured: the public key {why}"))
    })?;
    let (name, sha256) = if webhook.headers.get(SIGNATURE_256_HEADER).is_some() {
        (SIGNATURE_256_HEADER, true)
    } else {
        (SIGNATURE_HEADER, false)
    };
    let signature = base64_header(provider, webhook, name)?;
    if keys.iter().any(|key| key.verify(sha256, webhook.body, &signature)) {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("{name} does not verify (wrong public key, or an altered body)"),
        ))
    }
}
