//! Authenticity: does this webhook come from the provider the source is for?
//!
//! Each provider declares one [`Authentication`] scheme; [`verify`] checks a webhook against the
//! source's credentials ([`SourceAuth`]). Secret comparisons are constant-time (ring's HMAC
//! verify and `constant_time`), and where a provider signs a timestamp it must be within the
//! scheme's tolerance of `now`.
//!
//! Replay protection is layered: signed timestamps bound how old a request may be, Mailgun's
//! one-time tokens are claimed in a [`ReplayGuard`]-like store by the caller
//! ([`Verified::replay_claim`]), and an exact replay inside any window is a no-op anyway because
//! the event id is deterministic.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use crate::provider_id::ProviderId;
use crate::timestamp::Timestamp;
use crate::webhook::{Transport, Webhook, WebhookError};

pub mod bird;
pub mod jwt;
pub mod mailgun;
pub mod plivo;
pub mod postal;
pub mod sendgrid;
pub mod signer;
pub mod sinch;
pub mod sns;
pub mod standard_webhooks;
pub mod telnyx;
pub mod twilio;
pub mod unisender;
pub mod vonage;

pub use sns::{CertificateStore, SnsCertificate};

/// How a provider proves a webhook is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// Amazon SNS message signature (RSA PKCS#1 v1.5, SignatureVersion 1 = SHA1, 2 = SHA256)
    /// with a certificate from an allow-listed `SigningCertURL`, plus a TopicArn allow-list.
    SnsSignature,
    /// SendGrid Signed Event Webhook: ECDSA P-256/SHA-256 over `timestamp ‖ body`.
    SendgridEcdsa,
    /// Mailgun: HMAC-SHA256(signing key, `timestamp ‖ token`) carried inside the body.
    MailgunHmac,
    /// Standard Webhooks (Svix): HMAC-SHA256 over `id.timestamp.body`, headers
    /// `<prefix>-id`, `<prefix>-timestamp`, `<prefix>-signature`.
    StandardWebhooks { header_prefix: &'static str },
    /// Twilio: `X-Twilio-Signature`, HMAC-SHA1(auth token, public URL ‖ sorted params).
    TwilioHmacSha1,
    /// HMAC-SHA256(secret, body) in lowercase hex in a header (name configurable per source).
    HmacSha256Hex { default_header: &'static str },
    /// Telnyx: Ed25519 over `timestamp|body` (`telnyx-signature-ed25519`, `telnyx-timestamp`),
    /// verified with the account's public key.
    TelnyxEd25519,
    /// Vonage (Messages API): an HS256 JWT in `Authorization: Bearer`, under the signature
    /// secret, whose `payload_hash` claim is the body's SHA-256.
    VonageSignature,
    /// Mailchimp Transactional (Mandrill): `X-Mandrill-Signature`, HMAC-SHA1(webhook key, URL as
    /// configured ‖ sorted params), as Twilio signs.
    MandrillHmacSha1,
    /// Sinch: `x-sinch-webhook-signature`, HMAC-SHA256 over `body.nonce.timestamp`, where Sinch
    /// signs; otherwise the secret as a shared secret (basic auth in the callback URL).
    SinchHmac,
    /// Postal: RSA PKCS#1 v1.5 over the body (`X-Postal-Signature-256` SHA-256, or the older
    /// `X-Postal-Signature` SHA-1), verified with the Postal server's public key.
    PostalRsa,
    /// Unisender Go: the body's `auth` field, MD5 of the body with `auth` replaced by the API key.
    UnisenderMd5,
    /// Bird: `messagebird-signature`, HMAC-SHA256 over timestamp, URL and the body's SHA-256; or
    /// the older `MessageBird-Signature-JWT`.
    BirdHmac,
    /// Plivo: `X-Plivo-Signature-V3`, HMAC-SHA256(auth token, public URL ‖ sorted params ‖ nonce).
    PlivoV3,
    /// The provider signs nothing: the source's secret must come back as a bearer token, as the
    /// password of basic auth, in an `X-Tidings-Token` header, or as a `token` URL parameter.
    SharedSecret,
}

impl Authentication {
    /// A one-line description for documentation and `tidings providers`.
    pub fn describe(&self) -> String {
        match self {
            Authentication::SnsSignature => {
                "SNS RSA signature (v1 SHA1, v2 SHA256), SigningCertURL on sns.<region>.amazonaws.com, TopicArn allow-list".into()
            }
            Authentication::SendgridEcdsa => {
                "ECDSA P-256 over timestamp+body (X-Twilio-Email-Event-Webhook-Signature/-Timestamp)".into()
            }
            Authentication::MailgunHmac => "HMAC-SHA256(signing key, timestamp+token) in the body; tokens single-use".into(),
            Authentication::StandardWebhooks { header_prefix } => {
                format!("Standard Webhooks HMAC-SHA256 ({header_prefix}-id/-timestamp/-signature), 5 min tolerance")
            }
            Authentication::TwilioHmacSha1 => "X-Twilio-Signature HMAC-SHA1 over the configured public URL + sorted params".into(),
            Authentication::HmacSha256Hex { default_header } => {
                format!("HMAC-SHA256 of the body, hex, in {default_header} (header name configurable)")
            }
            Authentication::TelnyxEd25519 => {
                "Ed25519 over timestamp|body (telnyx-signature-ed25519, telnyx-timestamp), 5 min tolerance".into()
            }
            Authentication::VonageSignature => {
                "HS256 JWT in Authorization: Bearer, signature secret, payload_hash = SHA-256 of the body".into()
            }
            Authentication::MandrillHmacSha1 => {
                "X-Mandrill-Signature HMAC-SHA1 over the configured public URL + sorted params".into()
            }
            Authentication::SinchHmac => {
                "x-sinch-webhook-signature HMAC-SHA256 over body.nonce.timestamp where Sinch signs, else the secret as a shared secret (basic auth)".into()
            }
            Authentication::PostalRsa => {
                "RSA over the body (X-Postal-Signature-256 SHA-256, or X-Postal-Signature SHA-1), the server's public key".into()
            }
            Authentication::UnisenderMd5 => {
                "`auth` in the body: MD5 of the body with auth replaced by the API key".into()
            }
            Authentication::BirdHmac => {
                "messagebird-signature HMAC-SHA256 over timestamp, the configured public URL and the body's SHA-256 (or MessageBird-Signature-JWT)".into()
            }
            Authentication::PlivoV3 => {
                "X-Plivo-Signature-V3 HMAC-SHA256 over the configured public URL + sorted params + nonce".into()
            }
            Authentication::SharedSecret => {
                "shared secret: Bearer token, basic-auth password, X-Tidings-Token header or ?token= URL parameter".into()
            }
        }
    }

    /// Whether `secret` can be this scheme's secret, or the one-line reason it cannot: checked
    /// when a source is created or changed, so a weak or malformed secret never makes an
    /// endpoint anyone can post to.
    ///
    /// - shared secrets and HMAC keys (Mailgun, Twilio, Active Reach): at least
    ///   [`MIN_SECRET_LENGTH`] characters, none of them a space or a control character (they
    ///   travel in URLs and headers);
    /// - Standard Webhooks: `whsec_` and base64 of 24 to 64 bytes, as the specification asks;
    /// - SendGrid: a base64 P-256 public key (DER `SubjectPublicKeyInfo`);
    /// - SNS: no secret.
    pub fn check_secret(&self, secret: &str) -> Result<(), crate::invalid::Invalid> {
        self.secret_problem(secret).map_err(|why| crate::invalid::Invalid::new("secret", format!("secret: {why}")))
    }

    fn secret_problem(&self, secret: &str) -> Result<(), String> {
        let name = self.secret_name();
        match self {
            Authentication::SnsSignature => Err("SES sources take no secret: SNS signs with AWS's certificates".into()),
            Authentication::SendgridEcdsa => sendgrid::public_key_point(secret)
                .map(|_| ())
                .map_err(|e| format!("the {name} is not a base64 P-256 public key ({e})")),
            Authentication::PostalRsa => {
                postal::public_key(secret).map(|_| ()).map_err(|why| format!("the {name} {why}"))
            }
            Authentication::TelnyxEd25519 => {
                telnyx::public_key(secret).map(|_| ()).map_err(|why| format!("the {name} {why}"))
            }
            Authentication::StandardWebhooks { .. } => {
                let encoded =
                    secret.strip_prefix("whsec_").ok_or_else(|| format!("the {name} must start with whsec_"))?;
                let bytes =
                    BASE64.decode(encoded).map_err(|_| format!("the {name} is not whsec_ followed by base64"))?;
                if !(24..=64).contains(&bytes.len()) {
                    return Err(format!(
                        "the {name} holds {} bytes; Standard Webhooks secrets hold 24 to 64",
                        bytes.len()
                    ));
                }
                Ok(())
            }
            Authentication::MailgunHmac
            | Authentication::TwilioHmacSha1
            | Authentication::HmacSha256Hex { .. }
            | Authentication::VonageSignature
            | Authentication::PlivoV3
            | Authentication::MandrillHmacSha1
            | Authentication::SinchHmac
            | Authentication::UnisenderMd5
            | Authentication::BirdHmac
            | Authentication::SharedSecret => {
                if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!("the {name} holds a space or a control character"));
                }
                let length = secret.chars().count();
                if length < MIN_SECRET_LENGTH {
                    return Err(format!(
                        "the {name} is {length} characters; at least {MIN_SECRET_LENGTH} are required (leave it out to have one generated where the provider lets you choose)"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Whether the scheme signs the exact URL the provider posts to, so a source needs its public
    /// URL configured (scheme, host case and port as the provider sees them).
    pub fn signs_url(&self) -> bool {
        matches!(
            self,
            Authentication::TwilioHmacSha1
                | Authentication::MandrillHmacSha1
                | Authentication::PlivoV3
                | Authentication::BirdHmac
        )
    }

    /// Whether the signature travels inside the body (Mailgun, Unisender Go): a body that is not
    /// the provider's JSON carries none, and is refused as unauthenticated.
    pub fn signs_inside_body(&self) -> bool {
        matches!(self, Authentication::MailgunHmac | Authentication::UnisenderMd5)
    }

    /// What the source's `secret` is for this scheme (for messages and help text).
    pub fn secret_name(&self) -> &'static str {
        match self {
            Authentication::SnsSignature => "(none: SNS signs with AWS certificates)",
            Authentication::SendgridEcdsa => "verification public key",
            Authentication::MailgunHmac => "HTTP webhook signing key",
            Authentication::StandardWebhooks { .. } => "signing secret (whsec_…)",
            Authentication::TwilioHmacSha1 => "auth token",
            Authentication::HmacSha256Hex { .. } => "webhook signing secret",
            Authentication::TelnyxEd25519 => "public key",
            Authentication::VonageSignature => "signature secret",
            Authentication::PlivoV3 => "auth token",
            Authentication::BirdHmac => "signing key",
            Authentication::UnisenderMd5 => "API key",
            Authentication::PostalRsa => "server public key",
            Authentication::MandrillHmacSha1 => "webhook key",
            Authentication::SinchHmac => "callback secret",
            Authentication::SharedSecret => "shared secret",
        }
    }
}

/// The shortest secret a source may have where the secret is a password or an HMAC key.
pub const MIN_SECRET_LENGTH: usize = 16;

/// A secret value. Never printed: `Debug` shows `Secret(…)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A source's credentials and options for verification.
#[derive(Debug, Clone, Default)]
pub struct SourceAuth {
    /// Secrets or keys; a webhook passes if any one verifies it (so a secret can be rotated
    /// without dropping requests signed with the old one).
    pub secrets: Vec<Secret>,
    /// Twilio: the exact public URL the provider posts to (scheme, host case, port and query
    /// string all matter, so it is configured, never rebuilt from the request).
    pub public_url: Option<String>,
    /// SNS: the topics this source accepts. Empty refuses every SNS message over HTTP.
    pub allowed_topics: Vec<String>,
    /// Header carrying an HMAC signature, for providers that let you name it (Active Reach).
    pub signature_header: Option<String>,
    /// How far a signed timestamp may be from now, overriding the scheme's default.
    pub tolerance_seconds: Option<u64>,
}

impl SourceAuth {
    pub fn with_secret(secret: impl Into<String>) -> Self {
        SourceAuth { secrets: vec![Secret::new(secret)], ..SourceAuth::default() }
    }

    /// The timestamp tolerance: the source's own, else the scheme's `default`, never more than
    /// [`MAX_TOLERANCE_SECONDS`] (a source stored before the bound is held to it too).
    pub fn tolerance(&self, default: u64) -> u64 {
        self.tolerance_seconds.unwrap_or(default).min(MAX_TOLERANCE_SECONDS)
    }
}

/// The widest timestamp tolerance a source may ask for: 48 hours, twice SendGrid's 24 hours of
/// retries. Mailgun's one-time tokens are remembered for the tolerance, so it also bounds that
/// memory.
pub const MAX_TOLERANCE_SECONDS: u64 = 48 * 3600;

/// Checks a tolerance asked for when a source is created or changed.
pub fn check_tolerance(seconds: u64) -> Result<(), crate::invalid::Invalid> {
    if seconds == 0 || seconds > MAX_TOLERANCE_SECONDS {
        return Err(crate::invalid::Invalid::new(
            "tolerance_seconds",
            format!("tolerance_seconds must be between 1 and {MAX_TOLERANCE_SECONDS} (48 hours), not {seconds}"),
        ));
    }
    Ok(())
}

/// The clock and caches verification uses.
pub struct VerifyContext<'a> {
    pub now: Timestamp,
    pub certificates: &'a dyn CertificateStore,
}

/// A single-use value the caller must claim before accepting the webhook (Mailgun's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayClaim {
    pub provider: ProviderId,
    pub nonce: String,
    /// SHA-256 of the body: a provider retrying the same request reuses the nonce with the same
    /// body (a duplicate, harmless); another body under a seen nonce is a forgery or replay.
    pub fingerprint: [u8; 32],
    /// Until when the nonce must be remembered (the end of its tolerance window).
    pub remember_until: Timestamp,
}

/// What verification established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub replay_claim: Option<ReplayClaim>,
}

/// The answer of a nonce store for a [`ReplayClaim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// First sighting: accept.
    Fresh,
    /// Seen before with the same body: the provider retried; accept (dedup makes it a no-op).
    SameRequest,
    /// Seen before with a different body: refuse.
    Reused,
}

/// A nonce's body fingerprint and how long to remember it.
type SeenNonce = ([u8; 32], Timestamp);

/// An in-memory nonce store (the CLI, tests, and one warm Lambda's first line of defence; the
/// pipeline keeps nonces in its store so every instance sees them).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<(ProviderId, String), SeenNonce>>,
}

impl ReplayGuard {
    pub fn new() -> Self {
        ReplayGuard::default()
    }

    pub fn check(&self, claim: &ReplayClaim, now: Timestamp) -> NonceCheck {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        seen.retain(|_, (_, until)| *until >= now);
        match seen.get(&(claim.provider, claim.nonce.clone())) {
            Some((fingerprint, _)) if *fingerprint == claim.fingerprint => NonceCheck::SameRequest,
            Some(_) => NonceCheck::Reused,
            None => {
                seen.insert((claim.provider, claim.nonce.clone()), (claim.fingerprint, claim.remember_until));
                NonceCheck::Fresh
            }
        }
    }

    /// Claims `claim`, turning a reuse into the error the webhook is refused with.
    pub fn claim(&self, claim: &ReplayClaim, now: Timestamp) -> Result<NonceCheck, WebhookError> {
        match self.check(claim, now) {
            NonceCheck::Reused => Err(reused_nonce(claim.provider)),
            other => Ok(other),
        }
    }
}

/// The error for a nonce seen before with another body.
pub fn reused_nonce(provider: ProviderId) -> WebhookError {
    WebhookError::unauthenticated(provider, "signature token was already used for a different request (replay refused)")
}

/// Checks `webhook` against `auth` under `scheme`.
pub fn verify(
    provider: ProviderId,
    scheme: Authentication,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
) -> Result<Verified, WebhookError> {
    let none = Ok(Verified::default());
    match scheme {
        Authentication::SnsSignature => sns::verify_webhook(provider, webhook, auth, ctx).and(none),
        Authentication::SendgridEcdsa => sendgrid::verify(provider, webhook, auth, ctx).and(none),
        Authentication::MailgunHmac => mailgun::verify(provider, webhook, auth, ctx),
        Authentication::StandardWebhooks { header_prefix } => {
            standard_webhooks::verify_webhook(provider, header_prefix, webhook, auth, ctx).and(none)
        }
        Authentication::TwilioHmacSha1 => {
            twilio::verify(provider, scheme, twilio::SIGNATURE_HEADER, webhook, auth).and(none)
        }
        Authentication::MandrillHmacSha1 => {
            twilio::verify(provider, scheme, twilio::MANDRILL_SIGNATURE_HEADER, webhook, auth).and(none)
        }
        Authentication::HmacSha256Hex { default_header } => {
            verify_body_hmac(provider, default_header, webhook, auth).and(none)
        }
        Authentication::TelnyxEd25519 => telnyx::verify(provider, webhook, auth, ctx).and(none),
        Authentication::VonageSignature => vonage::verify(provider, webhook, auth, ctx).and(none),
        Authentication::PlivoV3 => plivo::verify(provider, webhook, auth).and(none),
        Authentication::BirdHmac => bird::verify(provider, webhook, auth, ctx).and(none),
        Authentication::UnisenderMd5 => unisender::verify(provider, webhook, auth).and(none),
        Authentication::PostalRsa => postal::verify(provider, webhook, auth).and(none),
        Authentication::SinchHmac => sinch::verify(provider, webhook, auth, ctx).and(none),
        Authentication::SharedSecret => verify_shared_secret(provider, webhook, auth).and(none),
    }
}

/// Checks `webhook` under `scheme` against the source's secrets; failing that, when it is the
/// provider's URL check (`is_url_check`), against the fixed key the provider publishes and signs
/// those checks with (MailerSend's `webhook.test`, Mandrill's empty batch). A URL check makes no
/// event, so the published key lets nothing else in. The error is the one the source's secrets
/// gave.
pub fn verify_or_url_check(
    provider: ProviderId,
    scheme: Authentication,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
    ctx: &VerifyContext<'_>,
    is_url_check: impl FnOnce() -> bool,
    published_key: &str,
) -> Result<Verified, WebhookError> {
    match verify(provider, scheme, webhook, auth, ctx) {
        Err(error) if is_url_check() => {
            let published = SourceAuth { secrets: vec![Secret::new(published_key)], ..auth.clone() };
            verify(provider, scheme, webhook, &published, ctx).map_err(|_| error)
        }
        other => other,
    }
}

/// The source's secrets, or the error for a source that has none configured.
pub(crate) fn secrets(
    provider: ProviderId,
    scheme: Authentication,
    auth: &SourceAuth,
) -> Result<Vec<&Secret>, WebhookError> {
    // An empty secret (stored before secrets were checked) verifies nothing: an HMAC under an
    // empty key is one anybody can compute.
    let usable: Vec<&Secret> = auth.secrets.iter().filter(|s| !s.expose().is_empty()).collect();
    if usable.is_empty() {
        return Err(WebhookError::unauthenticated(
            provider,
            format!("the source has no {} configured, so no request can be verified", scheme.secret_name()),
        ));
    }
    Ok(usable)
}

/// A required header, or the error naming it.
pub(crate) fn header<'a>(provider: ProviderId, webhook: &Webhook<'a>, name: &str) -> Result<&'a str, WebhookError> {
    match webhook.headers.get(name) {
        Some(value) if !value.trim().is_empty() => Ok(value.trim()),
        _ => Err(WebhookError::unauthenticated(provider, format!("missing header {name}"))),
    }
}

/// A required header holding base64 (a signature), decoded, or the error naming it.
pub(crate) fn base64_header(provider: ProviderId, webhook: &Webhook<'_>, name: &str) -> Result<Vec<u8>, WebhookError> {
    let value = header(provider, webhook, name)?;
    BASE64.decode(value).map_err(|_| WebhookError::unauthenticated(provider, format!("{name} is not base64")))
}

/// Whether `signature` is the HMAC of `message` under any of `keys`, by `algorithm`; the
/// comparison is ring's, in constant time.
pub(crate) fn hmac_matches(algorithm: hmac::Algorithm, keys: &[&Secret], message: &[u8], signature: &[u8]) -> bool {
    keys.iter().any(|key| hmac::verify(&hmac::Key::new(algorithm, key.expose().as_bytes()), message, signature).is_ok())
}

/// Checks a signed Unix-seconds timestamp is within `tolerance` of `now`, either way.
pub(crate) fn check_timestamp(
    provider: ProviderId,
    field: &str,
    value: &str,
    now: Timestamp,
    tolerance: u64,
) -> Result<Timestamp, WebhookError> {
    let signed = value.trim().parse::<i64>().ok().and_then(Timestamp::from_unix_seconds).ok_or_else(|| {
        WebhookError::unauthenticated(provider, format!("{field} {value:?} is not a Unix time in seconds"))
    })?;
    let skew = now.seconds_until(signed).unsigned_abs();
    if skew > tolerance {
        return Err(WebhookError::unauthenticated(
            provider,
            format!("{field} is {skew} s from now, outside the {tolerance} s tolerance (replayed or clock skew)"),
        ));
    }
    Ok(signed)
}

/// HMAC-SHA256 of the raw body, hex, in a header (Active Reach's `X-Aegis-Signature`).
fn verify_body_hmac(
    provider: ProviderId,
    default_header: &str,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
) -> Result<(), WebhookError> {
    let scheme = Authentication::HmacSha256Hex { default_header: "" };
    let secrets = secrets(provider, scheme, auth)?;
    let name = auth.signature_header.as_deref().unwrap_or(default_header);
    let given = header(provider, webhook, name)?;
    let given = given.strip_prefix("sha256=").unwrap_or(given);
    let tag = hex::decode(given.to_ascii_lowercase())
        .map_err(|_| WebhookError::unauthenticated(provider, format!("header {name} is not a hex HMAC-SHA256")))?;
    let verified = secrets.iter().any(|secret| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        hmac::verify(&key, webhook.body, &tag).is_ok()
    });
    if verified {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(
            provider,
            format!("header {name} does not match the body (wrong secret or altered body)"),
        ))
    }
}

/// HMAC-SHA256(secret, body) as lowercase hex: what Active Reach sends.
pub fn sign_body_hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, body).as_ref())
}

/// A shared secret from wherever the sender put it: `Authorization: Bearer <s>`, basic auth
/// (any user, password `<s>`), `X-Tidings-Token: <s>`, or `?token=<s>`.
pub(crate) fn verify_shared_secret(
    provider: ProviderId,
    webhook: &Webhook<'_>,
    auth: &SourceAuth,
) -> Result<(), WebhookError> {
    let secrets = secrets(provider, Authentication::SharedSecret, auth)?;
    let mut presented: Vec<String> = Vec::new();
    if let Some(value) = webhook.headers.get("authorization") {
        let value = value.trim();
        if let Some(token) = strip_prefix_ignore_case(value, "bearer ") {
            presented.push(token.trim().to_owned());
        } else if let Some(encoded) = strip_prefix_ignore_case(value, "basic ") {
            let decoded = BASE64.decode(encoded.trim()).ok().and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some(password) = decoded.as_deref().and_then(|pair| pair.split_once(':')).map(|(_, p)| p) {
                presented.push(password.to_owned());
            }
        }
    }
    if let Some(token) = webhook.headers.get("x-tidings-token") {
        presented.push(token.trim().to_owned());
    }
    if let Some(query) = webhook.query {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name == "token" {
                presented.push(value.into_owned());
            }
        }
    }
    if presented.is_empty() {
        return Err(WebhookError::unauthenticated(
            provider,
            "no credentials: expected Authorization (Bearer or Basic), X-Tidings-Token, or ?token=",
        ));
    }
    // An empty credential matches nothing, whatever a source holds.
    let matched = presented.iter().filter(|candidate| !candidate.is_empty()).any(|candidate| {
        secrets.iter().any(|secret| constant_time_eq(candidate.as_bytes(), secret.expose().as_bytes()))
    });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::unauthenticated(provider, "credentials do not match the source's shared secret"))
    }
}

/// `value` without `prefix`, compared ignoring ASCII case; `None` when it does not start so.
/// Safe on any input: a prefix length that falls inside a multi-byte character is no match.
pub(crate) fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &value[prefix.len()..])
}

/// Compares two secrets in time that depends only on their lengths: both are MACed under a
/// fixed key and the tags compared with ring's constant-time verify.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The key's padded states, computed once rather than on every comparison.
    static KEY: std::sync::LazyLock<hmac::Key> =
        std::sync::LazyLock::new(|| hmac::Key::new(hmac::HMAC_SHA256, b"tidings constant-time comparison"));
    let tag = hmac::sign(&KEY, b);
    hmac::verify(&KEY, a, tag.as_ref()).is_ok()
}

/// The transport is one that AWS IAM guards (an SQS queue fed by SNS or EventBridge).
pub(crate) fn trusted_transport(webhook: &Webhook<'_>) -> bool {
    webhook.transport == Transport::Queue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Headers;

    struct NoCerts;
    impl CertificateStore for NoCerts {
        fn certificate(&self, url: &sns::CertUrl) -> Result<std::sync::Arc<SnsCertificate>, sns::SnsError> {
            Err(sns::SnsError::NotFetched(url.as_str().to_owned()))
        }
    }

    fn ctx() -> VerifyContext<'static> {
        VerifyContext { now: Timestamp::from_unix_seconds(1_700_000_000).unwrap(), certificates: &NoCerts }
    }

    fn shared(headers: &[(&str, &str)], query: Option<&str>) -> Result<Verified, WebhookError> {
        let headers: Headers = headers.iter().map(|(n, v)| (*n, *v)).collect();
        let webhook = Webhook { body: b"{}", headers: &headers, query, transport: Transport::Http };
        verify(ProviderId::Postmark, Authentication::SharedSecret, &webhook, &SourceAuth::with_secret("s3cret"), &ctx())
    }

    #[test]
    fn shared_secret_is_accepted_in_each_documented_place() {
        assert!(shared(&[("Authorization", "Bearer s3cret")], None).is_ok());
        assert!(shared(&[("Authorization", &format!("Basic {}", BASE64.encode("postmark:s3cret")))], None).is_ok());
        assert!(shared(&[("X-Tidings-Token", "s3cret")], None).is_ok());
        assert!(shared(&[], Some("a=1&token=s3cret")).is_ok());
    }

    #[test]
    fn shared_secret_refuses_wrong_or_missing_credentials() {
        let err = shared(&[("Authorization", "Bearer s3creT")], None).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.to_string().starts_with("postmark: credentials do not match"));
        assert!(shared(&[], None).unwrap_err().to_string().contains("no credentials"));
        assert!(shared(&[("Authorization", "Basic !!!")], None).is_err());
        assert!(shared(&[], Some("token=s3cre")).is_err());
    }

    #[test]
    fn a_source_without_a_secret_refuses_everything() {
        let headers = Headers::new();
        let webhook = Webhook::http(b"{}", &headers);
        let err = verify(ProviderId::Brevo, Authentication::SharedSecret, &webhook, &SourceAuth::default(), &ctx())
            .unwrap_err();
        assert!(err.to_string().contains("no shared secret configured"), "{err}");
    }

    #[test]
    fn body_hmac_matches_active_reach_and_honours_a_renamed_header() {
        let body = br#"{"id":"evt_1","type":"delivery.sent"}"#;
        let sig = sign_body_hmac_hex("whk", body);
        let headers: Headers = [("X-Aegis-Signature", sig.as_str())].into_iter().collect();
        let scheme = Authentication::HmacSha256Hex { default_header: "X-Aegis-Signature" };
        let mut auth = SourceAuth::with_secret("whk");
        assert!(verify(ProviderId::Activereach, scheme, &Webhook::http(body, &headers), &auth, &ctx()).is_ok());
        let mut tampered = body.to_vec();
        tampered[2] ^= 1;
        assert!(verify(ProviderId::Activereach, scheme, &Webhook::http(&tampered, &headers), &auth, &ctx()).is_err());
        auth.signature_header = Some("X-Signature".into());
        let err = verify(ProviderId::Activereach, scheme, &Webhook::http(body, &headers), &auth, &ctx()).unwrap_err();
        assert!(err.to_string().contains("missing header X-Signature"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let auth = SourceAuth::with_secret("hunter2");
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn replay_guard_tells_retries_from_replays() {
        let now = Timestamp::from_unix_seconds(100).unwrap();
        let guard = ReplayGuard::new();
        let claim = ReplayClaim {
            provider: ProviderId::Mailgun,
            nonce: "tok".into(),
            fingerprint: [1; 32],
            remember_until: Timestamp::from_unix_seconds(200).unwrap(),
        };
        assert_eq!(guard.check(&claim, now), NonceCheck::Fresh);
        assert_eq!(guard.check(&claim, now), NonceCheck::SameRequest);
        let forged = ReplayClaim { fingerprint: [2; 32], ..claim.clone() };
        assert!(guard.claim(&forged, now).is_err());
        // Forgotten after its window: the timestamp check refuses such a request anyway.
        assert_eq!(guard.check(&forged, Timestamp::from_unix_seconds(300).unwrap()), NonceCheck::Fresh);
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
