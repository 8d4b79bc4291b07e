//! Amazon SNS message signatures.
//!
//! SNS signs a canonical string of the message's fields with an RSA key whose certificate it
//! names in `SigningCertURL`. We accept only certificate URLs of the form
//! `https://sns.<region>.amazonaws.com[.cn]/<name>.pem` (no credentials, port, query or
//! fragment), so an attacker cannot point us at a key of their own; the certificate itself is
//! fetched over TLS by the pipeline (or read from a directory for offline checks) and cached.
//! Validity dates are not checked against today's clock: what vouches for a certificate is the
//! allow-listed AWS URL it came from, and the published test certificates have expired.
//!
//! The TopicArn must be on the source's allow-list: any AWS account can sign a message with
//! SNS's key by publishing to its own topic, so the signature alone proves nothing about who
//! sent it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

use super::{SourceAuth, VerifyContext, trusted_transport};
use crate::provider_id::ProviderId;
use crate::webhook::{Webhook, WebhookError};

/// The JSON envelope SNS posts over HTTPS and puts on SQS queues (unless raw delivery is on).
#[derive(Debug, Deserialize)]
pub struct SnsEnvelope<'a> {
    #[serde(rename = "Type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "MessageId", borrow)]
    pub message_id: Cow<'a, str>,
    /// Empty when absent: only verification needs it (a signed message always has one), so
    /// `tidings normalize --no-verify` can read an envelope someone trimmed.
    #[serde(rename = "TopicArn", default, borrow)]
    pub topic_arn: Cow<'a, str>,
    #[serde(rename = "Message", borrow)]
    pub message: Cow<'a, str>,
    #[serde(rename = "Subject", default, borrow)]
    pub subject: Option<Cow<'a, str>>,
    #[serde(rename = "Timestamp", default, borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "SignatureVersion", default, borrow)]
    pub signature_version: Option<Cow<'a, str>>,
    #[serde(rename = "Signature", default, borrow)]
    pub signature: Option<Cow<'a, str>>,
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl", default, borrow)]
    pub signing_cert_url: Option<Cow<'a, str>>,
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl", default, borrow)]
    pub subscribe_url: Option<Cow<'a, str>>,
    #[serde(rename = "Token", default, borrow)]
    pub token: Option<Cow<'a, str>>,
}

impl SnsEnvelope<'_> {
    /// The string SNS signs: `Name\nvalue\n` for each signed field, in byte order of the names.
    pub fn string_to_sign(&self) -> Result<String, String> {
        let mut out = String::with_capacity(self.message.len() + 256);
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        let timestamp = self.timestamp.as_deref().ok_or("Timestamp is missing")?;
        match self.kind.as_ref() {
            "Notification" => {
                field("Message", &self.message);
                field("MessageId", &self.message_id);
                if let Some(subject) = &self.subject {
                    field("Subject", subject);
                }
                field("Timestamp", timestamp);
                field("TopicArn", &self.topic_arn);
                field("Type", &self.kind);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let subscribe_url = self.subscribe_url.as_deref().ok_or("SubscribeURL is missing")?;
                let token = self.token.as_deref().ok_or("Token is missing")?;
                field("Message", &self.message);
                field("MessageId", &self.message_id);
                field("SubscribeURL", subscribe_url);
                field("Timestamp", timestamp);
                field("Token", token);
                field("TopicArn", &self.topic_arn);
                field("Type", &self.kind);
            }
            other => return Err(format!("Type {other:?} is not an SNS message type")),
        }
        Ok(out)
    }
}

/// A `SigningCertURL` that passed the allow-list rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertUrl(String);

impl CertUrl {
    /// Accepts only `https://sns.<region>.amazonaws.com[.cn]/<path>.pem`.
    pub fn parse(text: &str) -> Result<CertUrl, String> {
        let url = parse_sns_url("SigningCertURL", text)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("SigningCertURL must not have a query or fragment".into());
        }
        if !url.path().ends_with(".pem") || url.path().contains("..") {
            return Err("SigningCertURL must name a .pem file".into());
        }
        Ok(CertUrl(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last path segment (`SimpleNotificationService-….pem`): the file name used for an
    /// offline certificate directory.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

/// An `https://sns.<region>.amazonaws.com[.cn]/…` URL with no credentials or port.
fn parse_sns_url(field: &str, text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{field} is not a URL ({e})"))?;
    if url.scheme() != "https" {
        return Err(format!("{field} must use https"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(format!("{field} must not carry credentials or a port"));
    }
    let host = url.host_str().unwrap_or_default();
    if !is_sns_host(host) {
        return Err(format!("{field} host {host:?} is not sns.<region>.amazonaws.com"));
    }
    Ok(url)
}

/// Checks that a SubscribeURL points at SNS itself before tidings visits it.
pub fn check_sns_endpoint(text: &str) -> Result<(), String> {
    parse_sns_url("SubscribeURL", text).map(|_| ())
}

fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest.strip_suffix(".amazonaws.com").or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    match region {
        Some(region) => {
            !region.is_empty()
                && region.len() <= 32
                && region.split('-').count() >= 3
                && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        None => false,
    }
}

/// The RSA public key of an SNS signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsCertificate {
    /// PKCS#1 `RSAPublicKey` DER, as ring wants it.
    rsa_public_key: Vec<u8>,
}

const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

impl SnsCertificate {
    /// Reads a PEM certificate. It must hold an RSA key and be issued to an SNS host name.
    pub fn from_pem(pem: &[u8]) -> Result<SnsCertificate, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate ({e})"))?;
        let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let issued_to_sns = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn == "sns.amazonaws.com" || is_sns_host(cn));
        if !issued_to_sns {
            return Err("certificate is not issued to an SNS host".into());
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION_OID {
            return Err("certificate key is not RSA".into());
        }
        Ok(SnsCertificate { rsa_public_key: spki.subject_public_key.data.to_vec() })
    }

    fn verify(&self, version: &str, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let algorithm: &dyn signature::VerificationAlgorithm = match version {
            "1" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &signature::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(format!("SignatureVersion {other:?} is not 1 or 2")),
        };
        UnparsedPublicKey::new(algorithm, &self.rsa_public_key)
            .verify(message, signature)
            .map_err(|_| "Signature does not match the message (altered message or wrong certificate)".to_owned())
    }
}

/// Where verification finds certificates. Lookups are synchronous: the HTTP layer fetches an
/// unknown certificate (see [`signing_cert_url`]) into a [`CertificateCache`] before verifying.
pub trait CertificateStore: Sync {
    fn certificate(&self, url: &CertUrl) -> Result<Arc<SnsCertificate>, String>;
}

/// Certificates by URL, shared by every request a process serves.
#[derive(Debug, Default)]
pub struct CertificateCache {
    by_url: RwLock<HashMap<CertUrl, Arc<SnsCertificate>>>,
}

impl CertificateCache {
    pub fn new() -> Self {
        CertificateCache::default()
    }

    pub fn contains(&self, url: &CertUrl) -> bool {
        self.by_url.read().map(|m| m.contains_key(url)).unwrap_or(false)
    }

    pub fn insert(&self, url: CertUrl, certificate: SnsCertificate) {
        if let Ok(mut map) = self.by_url.write() {
            map.insert(url, Arc::new(certificate));
        }
    }
}

impl CertificateStore for CertificateCache {
    fn certificate(&self, url: &CertUrl) -> Result<Arc<SnsCertificate>, String> {
        self.by_url
            .read()
            .ok()
            .and_then(|m| m.get(url).cloned())
            .ok_or_else(|| format!("certificate {} has not been fetched", url.as_str()))
    }
}

/// The certificate URL a webhook's SNS envelope will need, so the caller can fetch it first.
/// `None` when the body is not a signed SNS envelope.
pub fn signing_cert_url(body: &[u8], allowed_topics: &[String]) -> Option<Result<CertUrl, String>> {
    let envelope: SnsEnvelope<'_> = serde_json::from_slice(body).ok()?;
    // A message from a topic the source does not accept is refused unverified (403): nothing
    // is fetched for it, so no one can make tidings fetch on their behalf.
    if !allowed_topics.iter().any(|t| t == envelope.topic_arn.as_ref()) {
        return None;
    }
    envelope.signing_cert_url.as_deref().map(CertUrl::parse)
}

/// Verifies one envelope's signature.
pub fn verify_envelope(envelope: &SnsEnvelope<'_>, certificates: &dyn CertificateStore) -> Result<(), String> {
    let version = envelope.signature_version.as_deref().ok_or("SignatureVersion is missing")?;
    let signature = envelope.signature.as_deref().ok_or("Signature is missing")?;
    let signature = BASE64.decode(signature).map_err(|_| "Signature is not base64".to_owned())?;
    let url = CertUrl::parse(envelope.signing_cert_url.as_deref().ok_or("SigningCertURL is missing")?)?;
    let certificate = certificates.certificate(&url)?;
    let message = envelope.string_to_sign()?;
    certificate.verify(version, message.as_bytes(), &signature)
}

/// The SES source's check: a signed SNS envelope over HTTP (or any SES-shaped body from a queue
/// that IAM guards), from an allow-listed topic.
pub(crate) fn verify_webhook(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<(), WebhookError> {
    let envelope = match serde_json::from_slice::<SnsEnvelope<'_>>(webhook.body) {
        Ok(envelope) => envelope,
        Err(_) if trusted_transport(webhook) => return Ok(()),
        Err(_) => {
            let raw_delivery =
                webhook.headers.get("x-amz-sns-rawdelivery").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let why = if raw_delivery {
                "SNS raw message delivery carries no signature; turn raw delivery off for HTTPS subscriptions or deliver through SQS"
            } else {
                "body is not a signed SNS message; unsigned SES records are accepted only from an SQS queue"
            };
            return Err(WebhookError::forbidden(provider, why));
        }
    };
    // From a queue the allow-list is a second fence, enforced when it is set; over HTTP it is
    // the only thing that ties a valid AWS signature to this source, so it must be set. It is
    // checked first: a message from another topic is refused before anything is verified.
    let listed = auth.allowed_topics.iter().any(|t| t == envelope.topic_arn.as_ref());
    let queue_without_list = trusted_transport(webhook) && auth.allowed_topics.is_empty();
    if !(listed || queue_without_list) {
        let why = if envelope.topic_arn.is_empty() {
            "SNS message has no TopicArn, so it cannot be on this source's topic allow-list".to_owned()
        } else {
            format!("TopicArn {} is not on this source's topic allow-list", envelope.topic_arn)
        };
        return Err(WebhookError::forbidden(provider, why));
    }
    if !trusted_transport(webhook) {
        verify_envelope(&envelope, ctx.certificates).map_err(|why| WebhookError::unauthenticated(provider, why))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_urls_must_be_sns_pem_over_https() {
        let good = "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem";
        let url = CertUrl::parse(good).unwrap();
        assert_eq!(url.file_name(), "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem");
        assert!(CertUrl::parse("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem").is_ok());
        for bad in [
            "http://sns.us-east-2.amazonaws.com/cert.pem",
            "https://sns.us-east-2.amazonaws.com.evil.example/cert.pem",
            "https://sns.amazonaws.com.evil.example/cert.pem",
            "https://evil.example/sns.us-east-2.amazonaws.com/cert.pem",
            "https://sns.us-east-2.amazonaws.com/cert.txt",
            "https://sns.us-east-2.amazonaws.com/cert.pem?x=.pem",
            "https://sns.us-east-2.amazonaws.com:8443/cert.pem",
            "https://user:pw@sns.us-east-2.amazonaws.com/cert.pem",
            "https://s3.us-east-2.amazonaws.com/cert.pem",
            "https://sns..amazonaws.com/cert.pem",
            "not a url",
        ] {
            assert!(CertUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
