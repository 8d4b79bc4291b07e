//! Signing webhooks the way each provider does, for the other side of the wire: tests, and
//! `tidings replay`, which posts sample payloads to a dev source signed with its secret.
//! Nothing here is used to accept a request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::Value;

use super::{Authentication, mailgun, sign_body_hmac_hex, standard_webhooks, twilio};
use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::Headers;

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A new SendGrid-style key pair: (base64 PKCS#8 private key, base64 DER SPKI public key as the
/// SendGrid dashboard shows it).
pub fn generate_sendgrid_key_pair() -> Result<(String, String), String> {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|_| "key generation failed")?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).map_err(|_| "bad key")?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((BASE64.encode(pkcs8.as_ref()), BASE64.encode(spki)))
}

/// A key pair for a scheme whose provider signs with a private key (new, except Postal's fixed
/// test key): (base64 PKCS#8 private
/// key, the public key as the provider's dashboard shows it). `None` for schemes with one shared
/// secret.
pub fn generate_key_pair(scheme: Authentication) -> Option<Result<(String, String), String>> {
    match scheme {
        Authentication::SendgridEcdsa => Some(generate_sendgrid_key_pair()),
        Authentication::TelnyxEd25519 => Some(generate_ed25519_key_pair()),
        // ring makes no RSA keys: Postal's dev and test sources share one fixed key pair, which
        // signs test requests only (a real Postal source verifies with its server's own key).
        Authentication::PostalRsa => {
            Some(Ok((POSTAL_TEST_KEY.trim().to_owned(), POSTAL_TEST_PUBLIC_KEY.trim().to_owned())))
        }
        _ => None,
    }
}

/// The RSA key pair Postal's dev and test sources sign and verify with: PKCS#8 and SPKI, base64.
const POSTAL_TEST_KEY: &str = include_str!("keys/postal-test-key.pkcs8.b64");
const POSTAL_TEST_PUBLIC_KEY: &str = include_str!("keys/postal-test-key.spki.b64");

/// A new Ed25519 key pair: (base64 PKCS#8, base64 of the 32-byte public key).
fn generate_ed25519_key_pair() -> Result<(String, String), String> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| "key generation failed")?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "bad key")?;
    Ok((BASE64.encode(pkcs8.as_ref()), BASE64.encode(pair.public_key().as_ref())))
}

/// What a signer needs: the secret (for SendGrid, the base64 PKCS#8 private key) and, for
/// Twilio, the public URL the request is posted to.
pub struct SigningKey<'a> {
    pub secret: &'a str,
    pub public_url: Option<&'a str>,
}

/// Signs `body` as `provider` would at `now`: sets the provider's signature headers and returns
/// the body to send (Mailgun carries its signature inside the body, so its body changes).
pub fn sign(
    provider: ProviderId,
    body: &[u8],
    headers: &mut Headers,
    key: &SigningKey<'_>,
    now: Timestamp,
) -> Result<Vec<u8>, String> {
    let ts = now.unix_seconds().to_string();
    match provider.provider().authentication() {
        Authentication::SnsSignature => {
            Err("SNS messages are signed by AWS; a dev source takes SES samples as queue records".into())
        }
        Authentication::SendgridEcdsa => {
            let pkcs8 = BASE64.decode(key.secret).map_err(|_| "SendGrid signing key is not base64 PKCS#8")?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &SystemRandom::new())
                .map_err(|_| "SendGrid signing key is not a P-256 PKCS#8 key")?;
            let mut signed = ts.clone().into_bytes();
            signed.extend_from_slice(body);
            let signature = pair.sign(&SystemRandom::new(), &signed).map_err(|_| "signing failed")?;
            headers.set(super::sendgrid::SIGNATURE_HEADER, BASE64.encode(signature.as_ref()));
            headers.set(super::sendgrid::TIMESTAMP_HEADER, ts);
            Ok(body.to_vec())
        }
        Authentication::MailgunHmac => {
            let mut value: Value =
                serde_json::from_slice(body).map_err(|e| format!("Mailgun body is not JSON: {e}"))?;
            // A fresh token per signing, as Mailgun does: derived from the body and time.
            let mut seed = ts.clone().into_bytes();
            seed.extend_from_slice(body);
            let token = hex::encode(&digest::digest(&digest::SHA256, &seed).as_ref()[..25]);
            let signature = mailgun::sign(key.secret, &ts, &token);
            let object = value.as_object_mut().ok_or("Mailgun body is not a JSON object")?;
            object.insert(
                "signature".into(),
                serde_json::json!({"timestamp": ts, "token": token, "signature": signature}),
            );
            serde_json::to_vec(&value).map_err(|e| e.to_string())
        }
        Authentication::StandardWebhooks { header_prefix } => {
            let id_name = format!("{header_prefix}-id");
            let id = headers.get(&id_name).map(str::to_owned).unwrap_or_else(|| {
                format!("msg_{}", hex::encode(&digest::digest(&digest::SHA256, body).as_ref()[..12]))
            });
            let signing_key = standard_webhooks::secret_key(key.secret).map_err(|e| e.to_string())?;
            let signature = standard_webhooks::sign(&signing_key, &id, now.unix_seconds(), body);
            headers.set(&id_name, id);
            headers.set(&format!("{header_prefix}-timestamp"), ts);
            headers.set(&format!("{header_prefix}-signature"), signature);
            Ok(body.to_vec())
        }
        scheme @ (Authentication::TwilioHmacSha1 | Authentication::MandrillHmacSha1) => {
            let url = key.public_url.ok_or_else(|| format!("{provider} signs the public URL: none given"))?;
            let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            let params: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let header = if scheme == Authentication::TwilioHmacSha1 {
                twilio::SIGNATURE_HEADER
            } else {
                twilio::MANDRILL_SIGNATURE_HEADER
            };
            headers.set(header, twilio::sign(key.secret, url, &params));
            Ok(body.to_vec())
        }
        Authentication::HmacSha256Hex { default_header } => {
            headers.set(default_header, sign_body_hmac_hex(key.secret, body));
            Ok(body.to_vec())
        }
        Authentication::TelnyxEd25519 => {
            let pkcs8 = BASE64.decode(key.secret).map_err(|_| "Telnyx signing key is not base64 PKCS#8")?;
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                .map_err(|_| "Telnyx signing key is not an Ed25519 PKCS#8 key")?;
            let signature = pair.sign(&super::telnyx::signed_content(&ts, body));
            headers.set(super::telnyx::SIGNATURE_HEADER, BASE64.encode(signature.as_ref()));
            headers.set(super::telnyx::TIMESTAMP_HEADER, ts);
            Ok(body.to_vec())
        }
        Authentication::VonageSignature => {
            let nonce = hex::encode(&digest::digest(&digest::SHA256, body).as_ref()[..16]);
            let params = super::vonage::sms_parameters(body);
            // The SMS API's webhooks name `messageId` and `msisdn`; everything else is signed as
            // the Messages API signs.
            let sms_api = params.as_ref().is_some_and(|p| {
                p.iter().any(|(k, _)| k == "messageId") && !p.iter().any(|(k, _)| k == "message_uuid")
            });
            let messages_api = !sms_api;
            if messages_api {
                let claims = serde_json::json!({
                    "iat": now.unix_seconds(),
                    "jti": nonce,
                    "iss": "Vonage",
                    "payload_hash": super::vonage::payload_hash(body),
                });
                headers.set("Authorization", format!("Bearer {}", super::vonage::sign(key.secret, &claims)));
                return Ok(body.to_vec());
            }
            // The SMS API signs its parameters, adding `timestamp`, `nonce` and `sig` to them.
            let mut params: Vec<(String, String)> = params
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "nonce" | "sig"))
                .collect();
            params.push(("timestamp".into(), ts.clone()));
            params.push(("nonce".into(), nonce));
            let sig = super::vonage::sign_sms(key.secret, &params);
            params.push(("sig".into(), sig));
            if body.trim_ascii_start().first() == Some(&b'{') {
                let object: serde_json::Map<String, Value> =
                    params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                serde_json::to_vec(&object).map_err(|e| e.to_string())
            } else {
                Ok(form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes())
            }
        }
        Authentication::PlivoV3 => {
            let url = key.public_url.ok_or("Plivo signs the public URL: none given")?;
            let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            // A fresh nonce per signing, as Plivo sends: derived from the body and time.
            let mut seed = ts.clone().into_bytes();
            seed.extend_from_slice(body);
            let digest = digest::digest(&digest::SHA256, &seed);
            let nonce: String = digest.as_ref()[..10].iter().map(|b| format!("{:02}", b % 100)).collect();
            headers.set(super::plivo::SIGNATURE_HEADER, super::plivo::sign(key.secret, url, &params, &nonce));
            headers.set(super::plivo::NONCE_HEADER, nonce);
            Ok(body.to_vec())
        }
        Authentication::SinchHmac => {
            let nonce = hex::encode(&digest::digest(&digest::SHA256, body).as_ref()[..13]);
            headers.set(super::sinch::SIGNATURE_HEADER, super::sinch::sign(key.secret, body, &nonce, &ts));
            headers.set(super::sinch::NONCE_HEADER, nonce);
            headers.set(super::sinch::TIMESTAMP_HEADER, ts);
            headers.set(super::sinch::ALGORITHM_HEADER, "HmacSHA256");
            Ok(body.to_vec())
        }
        Authentication::PostalRsa => {
            let pkcs8 = BASE64.decode(key.secret).map_err(|_| "Postal signing key is not base64 PKCS#8")?;
            let pair = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8)
                .map_err(|_| "Postal signing key is not an RSA PKCS#8 key")?;
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(&ring::signature::RSA_PKCS1_SHA256, &SystemRandom::new(), body, &mut signature)
                .map_err(|_| "signing failed")?;
            headers.set(super::postal::SIGNATURE_256_HEADER, BASE64.encode(&signature));
            Ok(body.to_vec())
        }
        Authentication::UnisenderMd5 => {
            // The body's `auth` field holds a placeholder, replaced by the signature; a body
            // whose `auth` is not text gets one.
            let mut value: Value =
                serde_json::from_slice(body).map_err(|e| format!("Unisender body is not JSON: {e}"))?;
            if let Some(placeholder) = value["auth"].as_str() {
                return Ok(super::unisender::sign(body, placeholder, key.secret));
            }
            let placeholder = "0".repeat(32);
            value
                .as_object_mut()
                .ok_or("Unisender body is not a JSON object")?
                .insert("auth".into(), Value::String(placeholder.clone()));
            let body = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
            Ok(super::unisender::sign(&body, &placeholder, key.secret))
        }
        Authentication::BirdHmac => {
            let url = key.public_url.ok_or("Bird signs the public URL: none given")?;
            headers.set(super::bird::SIGNATURE_HEADER, super::bird::sign(key.secret, &ts, url, body));
            headers.set(super::bird::TIMESTAMP_HEADER, ts);
            Ok(body.to_vec())
        }
        Authentication::SharedSecret => {
            headers.set("Authorization", format!("Bearer {}", key.secret));
            Ok(body.to_vec())
        }
    }
}
