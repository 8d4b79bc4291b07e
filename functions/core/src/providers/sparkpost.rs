//! SparkPost webhooks: a JSON array of `{"msys": {"<kind>_event": {...}}}` batches. A webhook
//! test sends `[{"msys":{}}]`: accepted, no event. SparkPost signs nothing (basic auth, OAuth2 or
//! a custom header: use a shared secret). `event_id` identifies an event.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    NormalizeContext, Normalized, Notice, Provider, ProviderId, Raw, Setup, first_present, labels_from, lookup,
    message_type, tags_from_object,
};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::{opt_string_or_number, parse_time};
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Sparkpost;

const EVENTS: &[(&str, Status)] = &[
    ("injection", Status::Sent),
    ("delivery", Status::Delivered),
    ("delay", Status::Deferred),
    ("bounce", Status::Bounced),
    ("out_of_band", Status::Bounced),
    ("policy_rejection", Status::Dropped),
    ("generation_rejection", Status::Dropped),
    ("generation_failure", Status::Failed),
    ("open", Status::Opened),
    ("initial_open", Status::Opened),
    ("amp_open", Status::Opened),
    ("amp_initial_open", Status::Opened),
    ("click", Status::Clicked),
    ("amp_click", Status::Clicked),
    ("spam_complaint", Status::Complained),
    ("list_unsubscribe", Status::Unsubscribed),
    ("link_unsubscribe", Status::Unsubscribed),
];

/// SparkPost bounce classes. Hard: the address is invalid or refuses the sender for good.
/// Soft: temporary, or a block of this message rather than of the address (blocks must not
/// suppress an address). Anything unlisted is undetermined.
const BOUNCE_CLASSES: &[(&str, BounceKind)] = &[
    ("1", BounceKind::Undetermined),
    ("10", BounceKind::Hard),
    ("20", BounceKind::Soft),
    ("21", BounceKind::Soft),
    ("22", BounceKind::Soft),
    ("23", BounceKind::Soft),
    ("24", BounceKind::Soft),
    ("25", BounceKind::Hard),
    ("30", BounceKind::Hard),
    ("40", BounceKind::Soft),
    ("50", BounceKind::Soft),
    ("51", BounceKind::Soft),
    ("52", BounceKind::Soft),
    ("53", BounceKind::Soft),
    ("54", BounceKind::Soft),
    ("60", BounceKind::Soft),
    ("70", BounceKind::Soft),
    ("90", BounceKind::Hard),
    ("100", BounceKind::Soft),
];

impl Provider for Sparkpost {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add sparkpost` (prints a secret)",
            paste_url: "Configuration → Webhooks → New: Target URL, Authentication *Basic* with any user and the secret as password",
            test_event: "*Test webhook* on the webhook",
        }
    }

    fn example(&self) -> &'static str {
        "batch-every-type.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Sparkpost
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("injection", "email.sent"),
            ("delivery", "email.delivered"),
            ("delay", "email.deferred"),
            ("bounce, out_of_band (bounce_class 10, 25, 30, 90)", "email.bounced (hard)"),
            ("bounce, out_of_band (bounce_class 20-24, 40, 50-54, 60, 70, 100)", "email.bounced (soft)"),
            ("policy_rejection, generation_rejection", "email.dropped"),
            ("generation_failure", "email.failed"),
            ("open, initial_open, amp_open, amp_initial_open", "email.opened"),
            ("click, amp_click", "email.clicked"),
            ("spam_complaint", "email.complained"),
            ("list_unsubscribe, link_unsubscribe", "email.unsubscribed"),
            ("{\"msys\":{}} (test ping)", "no event"),
            ("anything else", "email.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let batch: Vec<Batch<'_>> = parse_json(id, &"body (a JSON array of {\"msys\": …})", webhook.body)?;
        let mut out = Normalized::default();
        for (index, item) in batch.into_iter().enumerate() {
            let Some((kind, raw_event)) = item.msys.into_iter().next() else {
                out.notices.push(Notice::TestPing);
                continue;
            };
            let e: Record<'_> = parse_json(id, &format_args!("[{index}].msys.{kind}"), raw_event.get().as_bytes())?;
            let name = e.kind.as_ref();
            let status = lookup(EVENTS, name);
            let mut data = EventData::new(Some(Channel::EMAIL), id.as_str(), name);
            data.provider_event_id = e.event_id.clone();
            data.message_id = e.message_id.as_deref().map(str::to_owned);
            data.recipient = first_present([e.rcpt_to.as_deref(), e.raw_rcpt_to.as_deref()]).map(recipient::email);
            data.sending_domain = first_present([e.friendly_from.as_deref(), e.msg_from.as_deref()]).map(str::to_owned);
            tags_from_object(e.rcpt_meta.as_ref(), &mut data.tags);
            data.labels = labels_from(e.rcpt_tags.as_ref());
            data.ip = e.ip_address.as_deref().map(str::to_owned);
            data.user_agent = e.user_agent.as_deref().map(str::to_owned);
            let reason = first_present([e.reason.as_deref(), e.raw_reason.as_deref()]).map(str::to_owned);
            for (key, value) in [
                ("campaign_id", &e.campaign_id),
                ("transmission_id", &e.transmission_id),
                ("subaccount_id", &e.subaccount_id),
            ] {
                if let Some(v) = value {
                    data.details.insert(key.into(), Value::String(v.clone()));
                }
            }
            match status {
                Some(Status::Bounced) => {
                    let class = e.bounce_class.as_deref().unwrap_or_default();
                    data.bounce = Some(Bounce {
                        kind: lookup(BOUNCE_CLASSES, class).unwrap_or(BounceKind::Undetermined),
                        code: e.error_code.clone(),
                        subtype: e.bounce_class.clone(),
                        diagnostic: reason,
                        reason: None,
                        provider_kind: None,
                    });
                }
                Some(Status::Clicked) => data.url = e.target_link_url.as_deref().map(str::to_owned),
                _ => data.reason = reason,
            }
            let time = e.timestamp.as_ref().and_then(parse_time);
            let dedup = e.event_id.clone().unwrap_or_else(|| {
                format!(
                    "{name}|{}|{}|{}",
                    data.message_id.as_deref().unwrap_or_default(),
                    data.recipient.as_deref().unwrap_or_default(),
                    e.timestamp.as_ref().map(super::tag_value).unwrap_or_default()
                )
            });
            let raw = Raw::Borrowed(raw_event.get());
            out.events.push(ctx.event(message_type(&Channel::EMAIL, status), time, &dedup, data, &raw));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    msys: BTreeMap<Cow<'a, str>, &'a RawValue>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    event_id: Option<String>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default, borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    rcpt_to: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    raw_rcpt_to: Option<Cow<'a, str>>,
    /// The envelope sender (its domain is the sending domain).
    #[serde(default, borrow)]
    msg_from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    friendly_from: Option<Cow<'a, str>>,
    #[serde(default)]
    rcpt_meta: Option<Value>,
    #[serde(default)]
    rcpt_tags: Option<Value>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    bounce_class: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    error_code: Option<String>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    raw_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    target_link_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    campaign_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    transmission_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    subaccount_id: Option<String>,
}
