//! Subscriptions: where a workspace's canonical events are delivered, which of them, in what
//! format, signed with which secrets.

use crate::invalid::Invalid;
use serde::{Deserialize, Serialize};

use crate::event::CanonicalEvent;
use crate::pacing::{Circuit, Pacing};
use crate::pattern::TypePattern;
use crate::timestamp::Timestamp;

/// The body a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The canonical event (CloudEvents 1.0 structured JSON).
    #[default]
    Cloudevents,
    /// A Dittofeed `track` call (`POST <dittofeed>/api/public/apps/track`).
    Dittofeed,
}

/// Dittofeed format: who an event without a `userId` tag is sent as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousId {
    /// Nobody: the event is skipped, as Dittofeed's own webhook handlers skip it.
    #[default]
    None,
    /// The recipient (address or number), as `anonymousId`.
    Recipient,
}

impl AnonymousId {
    fn is_none(&self) -> bool {
        *self == AnonymousId::None
    }
}

impl Format {
    /// The request's `Content-Type`. A canonical event is sent in the CloudEvents HTTP binding's
    /// structured content mode, whose media type is `application/cloudevents+json`: CloudEvents
    /// SDKs recognise an event by it (they find no event in a plain `application/json` body
    /// without `ce-*` headers). Dittofeed's track API takes plain JSON.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Cloudevents => "application/cloudevents+json; charset=utf-8",
            Format::Dittofeed => "application/json",
        }
    }
}

/// A signing secret. During rotation the old one keeps signing until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// `whsec_` + base64.
    pub secret: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub workspace: String,
    pub url: String,
    /// Type patterns (`email.*`, `*.bounced`, `*`); an event matching any is delivered.
    pub types: Vec<String>,
    /// Only events from these providers (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Only events from these sources (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Only events whose fields pass this filter ([`crate::filter`]); checked when the
    /// subscription is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// Dittofeed format: who an event without a `userId` tag is sent as.
    #[serde(default, skip_serializing_if = "AnonymousId::is_none")]
    pub anonymous_id: AnonymousId,
    pub secrets: Vec<SigningSecret>,
    /// Extra request headers (a Dittofeed write key as `Authorization`). Never returned by the
    /// API after creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// Bumped by every write after the first: a write is made only over the version it read
    /// (the store's `update_subscription`), so no writer undoes another's change (an operator's
    /// disable, a rotation) it has not seen.
    #[serde(default)]
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When the current run of failed deliveries began (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// Rate limit, in-flight cap and when the circuit opens ([`crate::pacing`]).
    #[serde(flatten)]
    pub pacing: Pacing,
    /// The circuit: failures in a row, and whether it is open.
    #[serde(default, skip_serializing_if = "Circuit::is_default")]
    pub circuit: Circuit,
    pub created_at: Timestamp,
}

/// Headers a subscription may not set: the signature's own, and hop-by-hop or framing ones.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Checks what a user asks for before a subscription is created; its destination, read.
pub fn validate(
    url: &str,
    types: &[String],
    headers: &[(String, String)],
) -> Result<crate::destination::Destination, Invalid> {
    let destination = crate::destination::Destination::parse(url)?;
    if destination.aws().is_some() && !headers.is_empty() {
        return Err(Invalid::new("headers", "headers: only an https destination is sent request headers"));
    }
    if types.is_empty() {
        return Err(Invalid::new("types", "types: give at least one pattern (`*` for every event)"));
    }
    for pattern in types {
        TypePattern::parse(pattern)?;
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("webhook-") || RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(Invalid::new("headers", format!("header {name} is set by tidings and cannot be overridden")));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            return Err(Invalid::new("headers", format!("header name {name:?} is not a valid header name")));
        }
        // An HTTP field value is visible characters, spaces and tabs: a control character
        // (NUL, a line break, ESC, DEL) would fail every delivery, or split the request.
        if let Some(bad) = value.bytes().find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Invalid::new(
                "headers",
                format!("header {name} has a control character (0x{bad:02x}) in its value"),
            ));
        }
    }
    Ok(destination)
}

impl Subscription {
    /// Whether `event` goes to this subscription (enabled or not): its workspace, a type
    /// pattern, the providers and sources named, and the content filter.
    pub fn matches(&self, event: &CanonicalEvent, source: &str) -> bool {
        let event_type = event.event_type.to_string();
        event.workspaceid == self.workspace
            && self.types.iter().any(|p| TypePattern::parse(p).is_ok_and(|p| p.matches(&event_type)))
            && (self.providers.is_empty() || self.providers.contains(&event.data.provider))
            && (self.sources.is_empty() || self.sources.iter().any(|s| s.as_str() == source))
            && self.passes_filter(event)
    }

    /// The content filter, read on the event as it is delivered. A stored filter that no longer
    /// reads (none should: it was checked when the subscription was made) passes nothing.
    fn passes_filter(&self, event: &CanonicalEvent) -> bool {
        let Some(text) = &self.filter else { return true };
        match (crate::filter::Filter::parse(text), serde_json::to_value(event)) {
            (Ok(filter), Ok(value)) => filter.matches(&value),
            (Err(error), _) => {
                tracing::warn!(subscription = %self.id, %error, "stored filter unreadable: nothing passes");
                false
            }
            (_, Err(_)) => false,
        }
    }

    /// The secrets that sign a delivery at `now`: every one not yet expired.
    pub fn active_secrets(&self, now: Timestamp) -> impl Iterator<Item = &SigningSecret> {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|at| at > now))
    }

    /// Deliveries resume, and the run of failures is forgotten.
    pub fn enable(&mut self) {
        self.enabled = true;
        self.disabled_reason = None;
        self.failing_since = None;
        self.circuit = Circuit::default();
    }

    /// No deliveries until enabled again; `reason` says why, where the subscription is shown.
    pub fn disable(&mut self, reason: &str) {
        self.enabled = false;
        self.disabled_reason = Some(reason.into());
    }

    /// Rotates: `new` signs from now; the current secrets keep signing for `grace_seconds`.
    pub fn rotate(&mut self, new: String, now: Timestamp, grace_seconds: i64) {
        let until = Timestamp::from_unix_seconds(now.unix_seconds() + grace_seconds).unwrap_or(now);
        self.secrets.retain(|s| s.expires_at.is_none_or(|at| at > now));
        for secret in &mut self.secrets {
            secret.expires_at = Some(secret.expires_at.map_or(until, |at| at.min(until)));
        }
        self.secrets.push(SigningSecret { secret: new, created_at: now, expires_at: None });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_refuses_credentials_schemes_and_reserved_headers() {
        let types = vec!["email.*".to_owned()];
        assert!(
            validate("https://hooks.example.com/tidings", &types, &[("Authorization".into(), "Basic abc".into())])
                .is_ok()
        );
        for (url, why) in [
            ("ftp://example.com/x", "http or https"),
            ("https://user:pw@example.com/", "credentials"),
            ("file:///etc/passwd", "http or https"),
            ("not a url", "neither a URL"),
        ] {
            let refused = validate(url, &types, &[]).unwrap_err();
            assert!(refused.reason.contains(why) && refused.field == "url", "{url}: {refused:?}");
        }
        for header in ["webhook-signature", "Webhook-Id", "Host", "Transfer-Encoding", "Connection"] {
            let refused = validate("https://example.com", &types, &[(header.into(), "x".into())]).unwrap_err();
            assert_eq!(refused.field, "headers", "{header}");
        }
        assert!(validate("https://example.com", &types, &[("X-Key".into(), "a\r\nInjected: 1".into())]).is_err());
        assert!(validate("https://example.com", &[], &[]).is_err());
        assert!(validate("https://example.com", &["Email.*".into()], &[]).is_err());
        let queue = "arn:aws:sqs:us-east-1:123456789012:q";
        assert!(validate(queue, &types, &[]).is_ok());
        assert_eq!(validate(queue, &types, &[("X-Key".into(), "k".into())]).unwrap_err().field, "headers");
    }

    #[test]
    fn rotation_keeps_old_secrets_signing_for_the_grace_period_only() {
        let t0 = Timestamp::from_unix_seconds(1_000_000).unwrap();
        let mut sub = Subscription {
            id: "sub_1".into(),
            workspace: "ws".into(),
            url: "https://example.com".into(),
            types: vec!["*".into()],
            providers: vec![],
            sources: vec![],
            filter: None,
            format: Format::Cloudevents,
            anonymous_id: AnonymousId::None,
            secrets: vec![SigningSecret { secret: "whsec_b2xk".into(), created_at: t0, expires_at: None }],
            headers: vec![],
            description: String::new(),
            enabled: true,
            version: 0,
            disabled_reason: None,
            failing_since: None,
            pacing: Pacing::default(),
            circuit: Circuit::default(),
            created_at: t0,
        };
        sub.rotate("whsec_bmV3".into(), t0, 3600);
        let at = |s: i64| Timestamp::from_unix_seconds(1_000_000 + s).unwrap();
        assert_eq!(sub.active_secrets(at(10)).count(), 2);
        assert_eq!(sub.active_secrets(at(3601)).map(|s| s.secret.as_str()).collect::<Vec<_>>(), ["whsec_bmV3"]);
        // Rotating again drops expired secrets and shortens, never extends, a grace period.
        sub.rotate("whsec_dGhpcmQ=".into(), at(4000), 86_400);
        assert_eq!(sub.secrets.len(), 2);
    }
}
