//! MailerSend webhooks: one JSON object per request, `{type, created_at, data}`, signed with a
//! `Signature` header (hex HMAC-SHA256 of the body under the webhook's signing secret).
//!
//! Two payload versions exist and a webhook chooses one: 2.0 (the default for new webhooks) is
//! flat (`data.email` is the address, `data.message_id`, event details in `data.meta`); 1.0 nests
//! (`data.email.recipient.email`, `data.email.message.id`, details in `data.morph`). Both are
//! read. Hard and soft bounces are separate event types. Events that are not about a message
//! (`maintenance.start`, `sender_identity.verified`, …) become platform events named
//! `mailersend.<type>`, so that a name like `inbound_forward.failed` is never read as a message
//! status. `data.id` identifies an event.
//!
//! When a webhook is saved, MailerSend posts `webhook.test`, signed with a fixed secret that
//! MailerSend publishes rather than the webhook's own, and keeps the webhook only if it is
//! answered 2xx: that ping is accepted under either secret and makes no event.

use serde_json::Value;

use super::value_text as text;
use super::{
    NormalizeContext, Normalized, Notice, Provider, ProviderId, Setup, labels_from, lookup, message_type, raw_body,
};
use crate::auth::{self, Authentication, SourceAuth, Verified, VerifyContext};
use crate::event::{Bounce, BounceKind, Channel, EventData, EventType, Status};
use crate::recipient;
use crate::serde_util::{StrictValue, parse_time};
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Mailersend;

pub const SIGNATURE_HEADER: &str = "Signature";

/// The secret MailerSend signs its `webhook.test` ping with, published in its documentation.
pub const TEST_PING_SECRET: &str = "test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G";

const ACTIVITIES: &[(&str, Status)] = &[
    ("activity.sent", Status::Sent),
    ("activity.delivered", Status::Delivered),
    ("activity.deferred", Status::Deferred),
    ("activity.soft_bounced", Status::Bounced),
    ("activity.hard_bounced", Status::Bounced),
    ("activity.opened", Status::Opened),
    ("activity.opened_unique", Status::Opened),
    ("activity.clicked", Status::Clicked),
    ("activity.clicked_unique", Status::Clicked),
    ("activity.unsubscribed", Status::Unsubscribed),
    ("activity.spam_complaint", Status::Complained),
];

/// Whether `body` is MailerSend's `webhook.test` ping.
fn is_test_ping(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["type"] == "webhook.test" && v.get("data").is_none())
}

/// A time as MailerSend writes it: RFC 3339 (`2025-08-05T21:23:54.000000Z`), or, on account
/// events, `2025-08-05 22:27:14`, read as UTC.
fn mailersend_time(value: &Value) -> Option<Timestamp> {
    parse_time(value).or_else(|| value.as_str().and_then(super::utc_time))
}

impl Provider for Mailersend {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add mailersend --secret <signing secret>` (the webhook's page → *Signing secret*)",
            paste_url: "Domains → your domain → Webhooks → Add webhook: *Endpoint URL*, the events, version 2.0",
            test_event: "the webhook's *Test webhook*",
        }
    }

    fn example(&self) -> &'static str {
        "bounce-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Mailersend
    }

    fn authentication(&self) -> Authentication {
        Authentication::HmacSha256Hex { default_header: SIGNATURE_HEADER }
    }

    fn verify(
        &self,
        webhook: &Webhook<'_>,
        source: &SourceAuth,
        ctx: &VerifyContext<'_>,
    ) -> Result<Verified, WebhookError> {
        let is_ping = || is_test_ping(webhook.body);
        auth::verify_or_url_check(self.id(), self.authentication(), webhook, source, ctx, is_ping, TEST_PING_SECRET)
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("activity.sent", "email.sent"),
            ("activity.delivered", "email.delivered"),
            ("activity.deferred", "email.deferred"),
            ("activity.hard_bounced", "email.bounced (hard)"),
            ("activity.soft_bounced", "email.bounced (soft)"),
            ("activity.opened, activity.opened_unique", "email.opened"),
            ("activity.clicked, activity.clicked_unique", "email.clicked"),
            ("activity.unsubscribed", "email.unsubscribed"),
            ("activity.spam_complaint", "email.complained"),
            ("activity.survey_opened, activity.survey_submitted, other activity.*", "email.unknown"),
            ("webhook.test", "no event"),
            (
                "maintenance.*, sender_identity.*, inbound_forward.*, email_single.*, …",
                "mailersend.<type> (platform event)",
            ),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let StrictValue(body) = parse_json(id, &"body", webhook.body)?;
        let name = body["type"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WebhookError::malformed(id, "body field `type` is missing"))?;
        if name == "webhook.test" {
            return Ok(Normalized::notice(Notice::TestPing));
        }
        let d = &body["data"];
        if !d.is_object() {
            return Err(WebhookError::malformed(id, format!("body field `data` of a {name} event is not an object")));
        }
        let raw = raw_body(webhook);
        let event_id = text(&d["id"]);
        if !name.starts_with("activity.") {
            let event_type = EventType::platform(&format!("mailersend.{name}"))
                .unwrap_or_else(|| message_type(&Channel::EMAIL, None));
            let mut data = EventData::new(None, id.as_str(), name);
            data.provider_event_id = event_id.clone();
            data.details.insert("data".into(), d.clone());
            let time = mailersend_time(&body["created_at"]);
            let digest = ring::digest::digest(&ring::digest::SHA256, webhook.body);
            let dedup = format!("{name}|{}", event_id.unwrap_or_else(|| hex::encode(digest.as_ref())));
            return Ok(Normalized::events(vec![ctx.event(event_type, time, &dedup, data, &raw)]));
        }
        // 1.0 nests the email; 2.0 names the address in `data.email`.
        let nested = &d["email"];
        let legacy = nested.is_object();
        let details = if legacy { &d["morph"] } else { &d["meta"] };
        let status = lookup(ACTIVITIES, name);
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        data.provider_event_id = event_id.clone();
        data.message_id = if legacy { text(&nested["message"]["id"]) } else { text(&d["message_id"]) };
        let address = if legacy { &nested["recipient"]["email"] } else { &d["email"] };
        data.recipient = address.as_str().or_else(|| d["recipient"].as_str()).map(recipient::email);
        data.labels = labels_from(Some(if legacy { &nested["tags"] } else { &d["tags"] }));
        data.ip = text(&details["ip"]);
        data.user_agent = text(&details["user_agent"]);
        data.url = text(&details["url"]);
        if let Some(email_id) = if legacy { text(&nested["id"]) } else { text(&d["email_id"]) } {
            data.details.insert("email_id".into(), Value::String(email_id));
        }
        if name.ends_with("_unique") {
            data.details.insert("unique".into(), Value::Bool(true));
        }
        match status {
            Some(Status::Bounced) => {
                let kind = if name == "activity.hard_bounced" { BounceKind::Hard } else { BounceKind::Soft };
                let diagnostic = text(&details["bounce_reason"]).or_else(|| text(&details["reason"]));
                data.reason = diagnostic.clone();
                data.bounce = Some(Bounce {
                    kind,
                    code: text(&details["bounce_code"]),
                    subtype: None,
                    diagnostic,
                    reason: None,
                    provider_kind: None,
                });
            }
            Some(Status::Unsubscribed) => {
                data.reason = text(&details["readable_reason"])
                    .or_else(|| text(&details["unsubscribe_reason"]))
                    .or_else(|| text(&details["reason"]));
            }
            Some(Status::Complained) => data.reason = text(&details["reason"]),
            None if details.is_object() => {
                data.details.insert("meta".into(), details.clone());
            }
            _ => {}
        }
        let time = mailersend_time(if legacy { &d["created_at"] } else { &body["created_at"] })
            .or_else(|| mailersend_time(&body["created_at"]));
        let dedup = match &event_id {
            Some(event) => format!("{name}|{event}"),
            None => format!(
                "{name}|{}|{}|{}",
                data.message_id.as_deref().unwrap_or_default(),
                data.recipient.as_deref().unwrap_or_default(),
                body["created_at"]
            ),
        };
        Ok(Normalized::events(vec![ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, &raw)]))
    }
}
