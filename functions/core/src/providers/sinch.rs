//! Sinch SMS REST API callbacks: one JSON object whose `type` says what it is. A recipient
//! delivery report (`recipient_delivery_report_sms`, sent for each status change or each final
//! status, as the batch asked) is one event; a batch delivery report (`delivery_report_sms`) is
//! one event per recipient it lists (`full`), or per status when it lists none (`summary`: no
//! recipient, so it changes no message state); an inbound message (`mo_text`, `mo_binary`,
//! `mo_media`) is `received`, about its sender, and an opt-out keyword as its whole text opts
//! them out.
//!
//! Final statuses are read with their code: `Rejected` with 402 (unroutable: "retrying is likely
//! to cause the same error") is a hard bounce; `Failed` with 404 (temporary failure) and
//! `Expired` are soft; `Deleted` (an invalid number or an opted-out subscriber, Sinch says) and
//! other failures are undetermined; `Aborted`, and `Rejected` for the account's own reasons (408,
//! 413), are failures to send; `Cancelled` was stopped by the sender (`dropped`). There is no
//! event id: an event is its batch, recipient, status and code. Sinch writes numbers without the
//! `+`.

use serde::Deserialize;
use serde_json::Value;

use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, message_type, opt_out, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Sinch;

/// A status with its code, as Sinch documents them.
fn meaning(status: &str, code: Option<&str>) -> (Status, Option<BounceKind>) {
    match (status.to_ascii_lowercase().as_str(), code) {
        ("queued" | "dispatched", _) => (Status::Sent, None),
        ("delivered", _) => (Status::Delivered, None),
        ("rejected", Some("408" | "413" | "410" | "412")) => (Status::Failed, None),
        ("rejected", Some("402")) => (Status::Bounced, Some(BounceKind::Hard)),
        ("rejected", _) => (Status::Bounced, Some(BounceKind::Undetermined)),
        ("failed", Some("404")) => (Status::Bounced, Some(BounceKind::Soft)),
        ("failed" | "deleted", _) => (Status::Bounced, Some(BounceKind::Undetermined)),
        ("expired", _) => (Status::Bounced, Some(BounceKind::Soft)),
        ("aborted", _) => (Status::Failed, None),
        ("cancelled", _) => (Status::Dropped, None),
        _ => (Status::Unknown, None),
    }
}

impl Provider for Sinch {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add sinch` (prints a secret; give your callback secret with `--secret` if Sinch signs your callbacks)",
            paste_url: "as `callback_url` on each batch (with `delivery_report` `per_recipient` or `full`), or the service plan's default callback URL: `https://tidings:<secret>@<host>/webhooks/sinch/<id>` (basic auth)",
            test_event: "send a batch with that `callback_url`",
        }
    }

    fn example(&self) -> &'static str {
        "rejected-unroutable.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Sinch
    }

    fn authentication(&self) -> Authentication {
        Authentication::SinchHmac
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("Queued, Dispatched", "sms.sent"),
            ("Delivered", "sms.delivered"),
            ("Rejected with code 402 (unroutable)", "sms.bounced (hard)"),
            ("Failed with code 404 (temporary); Expired", "sms.bounced (soft)"),
            ("Deleted, other Failed and Rejected", "sms.bounced (undetermined)"),
            ("Aborted; Rejected with 408, 410, 412 or 413 (the account's own)", "sms.failed"),
            ("Cancelled", "sms.dropped"),
            ("delivery_report_sms: each recipient of each status", "as above"),
            ("mo_text, mo_binary, mo_media", "sms.received (recipient: from, the sender)"),
            ("mo_text whose body is an opt-out keyword", "sms.unsubscribed / sms.resubscribed"),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let r: Callback = parse_json(id, &"body", webhook.body)?;
        let kind = r.kind.as_str();
        let raw = raw_body(webhook);
        let channel = Channel::SMS;
        let base = |name: &str| {
            let mut data = EventData::new(Some(channel.clone()), id.as_str(), name);
            data.message_id = r.batch_id.clone();
            if let Some(reference) = r.client_reference.as_deref().filter(|c| !c.is_empty()) {
                data.tags.insert("client_reference".into(), reference.to_owned());
            }
            data
        };
        if kind.starts_with("mo_") {
            let text = r.body.as_ref().and_then(Value::as_str).filter(|_| kind == "mo_text");
            let status = opt_out::by_keyword(text).unwrap_or(Status::Received);
            let mut data = base(kind);
            data.message_id = r.id.clone();
            data.recipient = r.from.as_deref().map(recipient::international);
            if let Some(to) = &r.to {
                data.details.insert("to".into(), Value::String(to.clone()));
            }
            let time = r.received_at.as_deref().and_then(Timestamp::parse_rfc3339);
            let dedup = format!("mo|{}", r.id.as_deref().unwrap_or_default());
            let event = ctx.event(message_type(&channel, Some(status)), time, &dedup, data, &raw);
            return Ok(Normalized::events(vec![event]));
        }
        let batch = r.batch_id.as_deref().unwrap_or_default();
        let report = |status_name: &str, code: Option<&str>, who: Option<&str>| {
            let known = matches!(
                kind,
                "recipient_delivery_report_sms"
                    | "recipient_delivery_report_mms"
                    | "delivery_report_sms"
                    | "delivery_report_mms"
            );
            let (status, bounce) = if known { meaning(status_name, code) } else { (Status::Unknown, None) };
            let mut data = base(&format!("{kind}:{status_name}"));
            data.recipient = who.map(recipient::international);
            if let Some(code) = code {
                data.details.insert("code".into(), Value::String(code.to_owned()));
            }
            data.bounce = bounce.map(|kind| Bounce {
                kind,
                code: code.map(str::to_owned),
                subtype: Some(status_name.to_owned()),
                diagnostic: None,
                reason: None,
                provider_kind: None,
            });
            let dedup =
                format!("{kind}|{batch}|{}|{status_name}|{}", who.unwrap_or_default(), code.unwrap_or_default());
            (status, data, dedup)
        };
        let mut events = Vec::new();
        if r.statuses.is_empty() {
            let (status, data, dedup) =
                report(r.status.as_deref().unwrap_or_default(), r.code.as_deref(), r.recipient.as_deref());
            let time = r.at.as_deref().and_then(Timestamp::parse_rfc3339);
            events.push(ctx.event(message_type(&channel, Some(status)), time, &dedup, data, &raw));
        }
        for entry in &r.statuses {
            let status_name = entry.status.as_deref().unwrap_or_default();
            let mut who: Vec<Option<&str>> = entry.recipients.iter().map(|s| Some(s.as_str())).collect();
            if who.is_empty() {
                who.push(None);
            }
            for recipient in who {
                let (status, mut data, dedup) = report(status_name, entry.code.as_deref(), recipient);
                if recipient.is_none()
                    && let Some(count) = &entry.count
                {
                    data.details.insert("count".into(), Value::String(count.clone()));
                }
                events.push(ctx.event(message_type(&channel, Some(status)), None, &dedup, data, &raw));
            }
        }
        Ok(Normalized::events(events))
    }
}

#[derive(Deserialize)]
struct Callback {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    batch_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    recipient: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    code: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    client_reference: Option<String>,
    #[serde(default)]
    statuses: Vec<BatchStatus>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    to: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    received_at: Option<String>,
}

#[derive(Deserialize)]
struct BatchStatus {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    code: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    count: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
}
