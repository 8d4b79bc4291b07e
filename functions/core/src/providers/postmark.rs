//! Postmark webhooks: one JSON object per request with a `RecordType` discriminator. Postmark
//! signs nothing: protect the URL with basic auth or a custom header (shared secret). Postmark
//! gives no event id except on bounces (`ID`), so the others are identified by record type,
//! message, recipient and event time. Field casing varies (`ServerID`/`ServerId`,
//! `MessageID`/`MessageId`), and times carry 7 fractional digits and an offset.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{
    NormalizeContext, Normalized, Provider, ProviderId, Setup, first_present, labels_from, lookup, message_type,
    raw_body, tags_from_object,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Postmark;

const RECORD_TYPES: &[(&str, Status)] = &[
    ("Delivery", Status::Delivered),
    ("Bounce", Status::Bounced),
    ("SpamComplaint", Status::Complained),
    ("Open", Status::Opened),
    ("Click", Status::Clicked),
    ("SubscriptionChange", Status::Unsubscribed),
];

/// Bounce records by `Type`: many are not bounces at all.
const BOUNCE_TYPES: &[(&str, Status, Option<BounceKind>)] = &[
    ("HardBounce", Status::Bounced, Some(BounceKind::Hard)),
    ("SoftBounce", Status::Bounced, Some(BounceKind::Soft)),
    ("VirusNotification", Status::Bounced, Some(BounceKind::Soft)),
    ("Unknown", Status::Bounced, Some(BounceKind::Undetermined)),
    ("Transient", Status::Deferred, None),
    ("DnsError", Status::Deferred, None),
    ("SpamNotification", Status::Complained, None),
    ("SpamComplaint", Status::Complained, None),
    ("BadEmailAddress", Status::Dropped, None),
    ("ManuallyDeactivated", Status::Dropped, None),
    ("Unconfirmed", Status::Dropped, None),
    ("Blocked", Status::Dropped, None),
    ("DMARCPolicy", Status::Dropped, None),
    ("Unsubscribe", Status::Unsubscribed, None),
    ("Subscribe", Status::Resubscribed, None),
    ("SMTPApiError", Status::Failed, None),
    ("TemplateRenderingFailed", Status::Failed, None),
    ("AutoResponder", Status::Unknown, None),
    ("AddressChange", Status::Unknown, None),
    ("ChallengeVerification", Status::Unknown, None),
];

/// SubscriptionChange with `SuppressSending: true`, by `SuppressionReason`.
const SUPPRESSION_REASONS: &[(&str, Status)] = &[
    ("ManualSuppression", Status::Unsubscribed),
    ("HardBounce", Status::Suppressed),
    ("SpamComplaint", Status::Suppressed),
];

impl Provider for Postmark {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add postmark` (prints a secret)",
            paste_url: "Servers → your server → Webhooks → Add webhook: URL `https://tidings:<secret>@<host>/webhooks/postmark/<id>` (basic auth)",
            test_event: "*Send test* on the webhook page",
        }
    }

    fn example(&self) -> &'static str {
        "bounce-hard.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Postmark
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("Delivery", "email.delivered"),
            ("Bounce HardBounce", "email.bounced (hard)"),
            ("Bounce SoftBounce, VirusNotification", "email.bounced (soft)"),
            ("Bounce Unknown", "email.bounced (undetermined)"),
            ("Bounce Transient, DnsError", "email.deferred"),
            ("Bounce SpamNotification; SpamComplaint", "email.complained"),
            ("Bounce BadEmailAddress, ManuallyDeactivated, Unconfirmed, Blocked, DMARCPolicy", "email.dropped"),
            ("Bounce Unsubscribe / Subscribe", "email.unsubscribed / email.resubscribed"),
            ("Bounce SMTPApiError, TemplateRenderingFailed", "email.failed"),
            ("Bounce AutoResponder, AddressChange, ChallengeVerification", "email.unknown"),
            ("Open", "email.opened"),
            ("Click", "email.clicked"),
            ("SubscriptionChange SuppressSending=false", "email.resubscribed"),
            ("SubscriptionChange ManualSuppression", "email.unsubscribed"),
            ("SubscriptionChange HardBounce, SpamComplaint", "email.suppressed"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let r: Record<'_> = parse_json(id, &"body", webhook.body)?;
        let name = r.record_type.as_ref();
        let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
        data.message_id = r.message_id.as_deref().map(str::to_owned);
        data.recipient = first_present([r.recipient.as_deref(), r.email.as_deref()]).map(recipient::email);
        tags_from_object(r.metadata.as_ref(), &mut data.tags);
        data.labels = labels_from(r.tag.as_ref());
        data.user_agent = r.user_agent.as_deref().map(str::to_owned);
        data.ip = r.geo.as_ref().and_then(|g| g.ip.clone());
        if let Some(stream) = &r.message_stream {
            data.details.insert("message_stream".into(), Value::String(stream.to_string()));
        }

        let mut status = lookup(RECORD_TYPES, name);
        let mut event_time = r.received_at.as_deref();
        match status {
            Some(Status::Delivered) => {
                event_time = r.delivered_at.as_deref();
                data.reason = r.details.as_deref().map(str::to_owned);
            }
            Some(Status::Bounced) => {
                event_time = r.bounced_at.as_deref();
                let kind = r.bounce_type.as_deref().unwrap_or_default();
                let (mapped, bounce_kind) = BOUNCE_TYPES
                    .iter()
                    .find(|(t, _, _)| *t == kind)
                    .map_or((Status::Unknown, None), |(_, s, k)| (*s, *k));
                status = Some(mapped);
                data.provider_event_id = r.id.clone();
                data.reason = first_present([r.description.as_deref(), r.details.as_deref()]).map(str::to_owned);
                data.bounce = bounce_kind.map(|kind| Bounce {
                    kind,
                    code: r.type_code.clone(),
                    subtype: r.bounce_type.as_deref().map(str::to_owned),
                    diagnostic: r.details.as_deref().map(str::to_owned),
                    reason: None,
                    provider_kind: None,
                });
            }
            Some(Status::Complained) => {
                event_time = r.bounced_at.as_deref();
                data.provider_event_id = r.id.clone();
                data.reason = r.details.as_deref().map(str::to_owned);
            }
            Some(Status::Opened) => {
                if let Some(first) = r.first_open {
                    data.details.insert("first_open".into(), Value::Bool(first));
                }
            }
            Some(Status::Clicked) => data.url = r.original_link.as_deref().map(str::to_owned),
            Some(Status::Unsubscribed) => {
                event_time = r.changed_at.as_deref();
                let reason = r.suppression_reason.as_deref().unwrap_or_default();
                status = Some(match r.suppress_sending {
                    Some(false) => Status::Resubscribed,
                    _ => lookup(SUPPRESSION_REASONS, reason).unwrap_or(Status::Unsubscribed),
                });
                data.reason = r.suppression_reason.as_deref().map(str::to_owned);
                if let Some(origin) = &r.origin {
                    data.details.insert("origin".into(), Value::String(origin.to_string()));
                }
            }
            _ => {}
        }
        let time = event_time.and_then(Timestamp::parse_rfc3339);
        let dedup = match &r.id {
            Some(bounce_id) => format!("{name}|{bounce_id}"),
            // No id: the record's own facts, including what a subscription change changed to.
            None => format!(
                "{name}|{}|{}|{}|{}|{:?}|{}",
                data.message_id.as_deref().unwrap_or_default(),
                data.recipient.as_deref().unwrap_or_default(),
                event_time.unwrap_or_default(),
                data.url.as_deref().unwrap_or_default(),
                r.suppress_sending,
                r.suppression_reason.as_deref().unwrap_or_default()
            ),
        };
        let raw = raw_body(webhook);
        Ok(Normalized::events(vec![ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, &raw)]))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record<'a> {
    #[serde(borrow)]
    record_type: Cow<'a, str>,
    #[serde(rename = "MessageID", alias = "MessageId", default, borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    recipient: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(rename = "ID", alias = "Id", default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(rename = "Type", default, borrow)]
    bounce_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    type_code: Option<String>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    details: Option<Cow<'a, str>>,
    #[serde(default)]
    tag: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default, borrow)]
    message_stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delivered_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    bounced_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    received_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    changed_at: Option<Cow<'a, str>>,
    #[serde(default)]
    first_open: Option<bool>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default)]
    geo: Option<Geo>,
    #[serde(default, borrow)]
    original_link: Option<Cow<'a, str>>,
    #[serde(default)]
    suppress_sending: Option<bool>,
    #[serde(default, borrow)]
    suppression_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    origin: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Geo {
    #[serde(rename = "IP", default)]
    ip: Option<String>,
}
