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

/// Why an SNS message or signing certificate is refused; each reads as the one line the webhook
/// is refused with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("Type {0:?} is not an SNS message type")]
    UnknownType(String),
    #[error("{field} is not a URL ({reason})")]
    NotAUrl { field: &'static str, reason: String },
    #[error("{0} must use https")]
    NotHttps(&'static str),
    #[error("{0} must not carry credentials or a port")]
    CredentialsOrPort(&'static str),
    #[error("{field} host {host:?} is not sns.<region>.amazonaws.com")]
    NotSnsHost { field: &'static str, host: String },
    #[error("SigningCertURL must not have a query or fragment")]
    CertUrlQuery,
    #[error("SigningCertURL must name a .pem file")]
    CertUrlNotPem,
    #[error("not a PEM certificate ({0})")]
    NotPem(String),
    #[error("not an X.509 certificate ({0})")]
    NotX509(String),
    #[error("certificate is not issued to an SNS host")]
    NotIssuedToSns,
    #[error("certificate key is not RSA")]
    NotRsa,
    #[error("SignatureVersion {0:?} is not 1 or 2")]
    SignatureVersion(String),
    #[error("Signature is not base64")]
    SignatureNotBase64,
    #[error("Signature does not match the message (altered message or wrong certificate)")]
    SignatureMismatch,
    #[error("certificate {0} has not been fetched")]
    NotFetched(String),
    #[error("cannot fetch SNS certificate {url}: {error}")]
    Fetch { url: String, error: crate::ports::FetchError },
    #[error("SNS certificate {url}: {error}")]
    Certificate { url: String, error: Box<SnsError> },
    #[error("cannot confirm SNS subscription: {0}")]
    Confirmation(crate::ports::FetchError),
    /// A certificate store could not give the certificate: where it looked, and why.
    #[error("{place}: {why}")]
    Unavailable { place: String, why: String },
}

impl SnsEnvelope<'_> {
    /// The string SNS signs: `Name\nvalue\n` for each signed field, in byte order of the names.
    pub fn string_to_sign(&self) -> Result<String, SnsError> {
        let mut out = String::with_capacity(self.message.len() + 256);
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        let timestamp = self.timestamp.as_deref().ok_or(SnsError::Missing("Timestamp"))?;
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
                let subscribe_url = self.subscribe_url.as_deref().ok_or(SnsError::Missing("SubscribeURL"))?;
                let token = self.token.as_deref().ok_or(SnsError::Missing("Token"))?;
                field("Message", &self.message);
                field("MessageId", &self.message_id);
                field("SubscribeURL", subscribe_url);
                field("Timestamp", timestamp);
                field("Token", token);
                field("TopicArn", &self.topic_arn);
                field("Type", &self.kind);
            }
            other => return Err(SnsError::UnknownType(other.to_owned())),
        }
        Ok(out)
    }
}

/// A `SigningCertURL` that passed the allow-list rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertUrl(String);

impl CertUrl {
    /// Accepts only `https://sns.<region>.amazonaws.com[.cn]/<path>.pem`.
    pub fn parse(text: &str) -> Result<CertUrl, SnsError> {
        let url = parse_sns_url("SigningCertURL", text)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(SnsError::CertUrlQuery);
        }
        if !url.path().ends_with(".pem") || url.path().contains("..") {
            return Err(SnsError::CertUrlNotPem);
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
fn parse_sns_url(field: &'static str, text: &str) -> Result<url::Url, SnsError> {
    let url = url::Url::parse(text).map_err(|e| SnsError::NotAUrl { field, reason: e.to_string() })?;
    if url.scheme() != "https" {
        return Err(SnsError::NotHttps(field));
    }
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(SnsError::CredentialsOrPort(field));
    }
    let host = url.host_str().unwrap_or_default();
    if !is_sns_host(host) {
        return Err(SnsError::NotSnsHost { field, host: host.to_owned() });
    }
    Ok(url)
}

/// Checks that a SubscribeURL points at SNS itself before tidings visits it.
pub fn check_sns_endpoint(text: &str) -> Result<(), SnsError> {
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
    pub fn from_pem(pem: &[u8]) -> Result<SnsCertificate, SnsError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| SnsError::NotPem(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| SnsError::NotX509(e.to_string()))?;
        let issued_to_sns = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn == "sns.amazonaws.com" || is_sns_host(cn));
        if !issued_to_sns {
            return Err(SnsError::NotIssuedToSns);
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION_OID {
            return Err(SnsError::NotRsa);
        }
        Ok(SnsCertificate { rsa_public_key: spki.subject_public_key.data.to_vec() })
    }

    fn verify(&self, version: &str, message: &[u8], signature: &[u8]) -> Result<(), SnsError> {
        let algorithm: &dyn signature::VerificationAlgorithm = match version {
            "1" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &signature::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(SnsError::SignatureVersion(other.to_owned())),
        };
        UnparsedPublicKey::new(algorithm, &self.rsa_public_key)
            .verify(message, signature)
            .map_err(|_| SnsError::SignatureMismatch)
    }
}

/// Where verification finds certificates. Lookups are synchronous: the HTTP layer fetches an
/// unknown certificate (see [`signing_cert_url`]) into a [`CertificateCache`] before verifying.
pub trait CertificateStore: Sync {
    fn certificate(&self, url: &CertUrl) -> Result<Arc<SnsCertificate>, SnsError>;
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
    fn certificate(&self, url: &CertUrl) -> Result<Arc<SnsCertificate>, SnsError> {
        self.by_url
            .read()
            .ok()
            .and_then(|m| m.get(url).cloned())
            .ok_or_else(|| SnsError::NotFetched(url.as_str().to_owned()))
    }
}

/// The certificate URL a webhook's SNS envelope will need, so the caller can fetch it first.
/// `None` when the body is not a signed SNS envelope.
pub fn signing_cert_url(body: &[u8], allowed_topics: &[String]) -> Option<Result<CertUrl, SnsError>> {
    let envelope: SnsEnvelope<'_> = serde_json::from_slice(body).ok()?;
    // A message from a topic the source does not accept is refused unverified (403): nothing
    // is fetched for it, so no one can make tidings fetch on their behalf.
    if !allowed_topics.iter().any(|t| t == envelope.topic_arn.as_ref()) {
        return None;
    }
    envelope.signing_cert_url.as_deref().map(CertUrl::parse)
}

/// Verifies one envelope's signature.
pub fn verify_envelope(envelope: &SnsEnvelope<'_>, certificates: &dyn CertificateStore) -> Result<(), SnsError> {
    let version = envelope.signature_version.as_deref().ok_or(SnsError::Missing("SignatureVersion"))?;
    let signature = envelope.signature.as_deref().ok_or(SnsError::Missing("Signature"))?;
    let signature = BASE64.decode(signature).map_err(|_| SnsError::SignatureNotBase64)?;
    let url = CertUrl::parse(envelope.signing_cert_url.as_deref().ok_or(SnsError::Missing("SigningCertURL"))?)?;
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
                "body is not a signed SNS message; unsigned records are accepted only from an SQS queue"
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
        verify_envelope(&envelope, ctx.certificates)
            .map_err(|why| WebhookError::unauthenticated(provider, why.to_string()))?;
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
