//! Infobip SMS and WhatsApp reports: `{"results": [...]}` batches (100 reports a request by
//! default) of delivery reports (`status`, `error`), WhatsApp seen reports (`seenAt`) and inbound
//! messages (`receivedAt`, with `text` or a WhatsApp `message`). Infobip signs nothing by default:
//! its Subscriptions Management sends basic auth, so the source holds a shared secret.
//!
//! A delivery report does not say whether it is about an SMS or a WhatsApp message. The webhook
//! URL can (`?channel=whatsapp` or `?channel=sms`); without it, a WhatsApp message id
//! (`wamid.…`) says WhatsApp, and so does a report that names neither a sender, a network
//! (`mccMnc`) nor an SMS count, which every SMS report does. Statuses are read by Infobip's
//! status groups (PENDING, DELIVERED, UNDELIVERABLE, EXPIRED, REJECTED); an undeliverable message
//! by its error: the error names that mean the number does not exist or cannot take messages are
//! hard bounces, the ones that mean the person opted out or blocked the sender are `dropped`, and
//! others are soft bounces unless Infobip marks them `permanent` (then undetermined: Infobip's
//! flag says a resend fails the same way, not that the number is bad). `DELIVERED_TO_OPERATOR`
//! is not yet delivery (a handset report may follow): it stays `sent`.
//!
//! Numbers come without the `+`, and times with an offset without a colon
//! (`2025-11-28T06:00:04.917+0000`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{BodyItem, NormalizeContext, Normalized, Provider, ProviderId, Setup, each_record, message_type, opt_out};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::opt_string_or_number;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Infobip;

/// Error names that mean the number does not exist or cannot take these messages.
const NUMBER_ERRORS: &[&str] = &[
    "EC_UNKNOWN_SUBSCRIBER",
    "EC_ILLEGAL_SUBSCRIBER",
    "EC_TELESERVICE_NOT_PROVISIONED",
    "EC_INVALID_REQUEST_DESTINATION",
    "EC_DEACTIVATED_LIST",
    "EC_DEST_ADDRESS_UNABLE_TO_RECEIVE_SMS",
    "EC_DESTINATION_NOT_SMS_PROVISIONED",
    "EC_UNKNOWN_USER",
];

/// Error names that mean the person opted out of or blocked the sender.
const OPTED_OUT_ERRORS: &[&str] = &[
    "EC_CONTENT_BLOCKED",
    "EC_SC_BLOCKED_BY_END_USER",
    "EC_BLACKLISTED_DESTINATIONADDRESS",
    "EC_BLOCKED_USER",
    "EC_MARKETING_OPT_OUT",
    "EC_TEMPLATE_BLOCKED_BY_USER",
];

/// REJECTED statuses that are the sender's account or configuration, not the recipient.
const SENDER_REJECTIONS: &[&str] = &[
    "REJECTED_NOT_ENOUGH_CREDITS",
    "REJECTED_PREPAID_PACKAGE_EXPIRED",
    "REJECTED_SOURCE",
    "REJECTED_SENDER",
    "REJECTED_FLOODING_FILTER",
];

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

/// An Infobip time: RFC 3339, or with a `+hhmm` offset.
fn infobip_time(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text).or_else(|| {
        let split = text.len().checked_sub(5)?;
        let (head, offset) = (text.get(..split)?, text.get(split..)?);
        let (sign, digits) = offset.split_at(1);
        if !matches!(sign, "+" | "-") || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Timestamp::parse_rfc3339(&format!("{head}{sign}{}:{}", &digits[..2], &digits[2..]))
    })
}

fn upper(text: Option<&str>) -> String {
    text.unwrap_or_default().to_ascii_uppercase()
}

impl Provider for Infobip {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add infobip` (prints a secret)",
            paste_url: "Developer Tools → Subscriptions Management: a notification profile with the URL and *Basic* security (any user, the secret as password), subscribed to delivery reports, seen reports and inbound messages; add `?channel=whatsapp` to the URL of a WhatsApp subscription (`?channel=sms` for SMS)",
            test_event: "send a message through the API",
        }
    }

    fn example(&self) -> &'static str {
        "failed-invalid-number.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Infobip
    }

    fn authentication(&self) -> Authentication {
        Authentication::SharedSecret
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("status group PENDING; DELIVERED_TO_OPERATOR; EXPIRED_DLR_UNKNOWN", "sms.sent"),
            ("DELIVERED_TO_HANDSET (group DELIVERED)", "sms.delivered"),
            ("UNDELIVERABLE, error meaning an unknown or unable number", "sms.bounced (hard)"),
            ("UNDELIVERABLE, error meaning opt-out or a block by the person", "sms.dropped"),
            ("UNDELIVERABLE, other error", "sms.bounced (soft; undetermined when marked permanent)"),
            ("EXPIRED_EXPIRED", "sms.bounced (soft)"),
            ("REJECTED (the sender's credit, number or rate)", "sms.failed"),
            ("REJECTED (the destination: DND, blocklisted, network)", "sms.dropped"),
            ("seen report (seenAt)", "whatsapp.read"),
            ("inbound message", "sms.received (recipient: from, the sender)"),
            ("inbound message whose text is an opt-out keyword", "sms.unsubscribed / sms.resubscribed"),
            (
                "(a wamid. message id, integrationType WHATSAPP, or ?channel=whatsapp on the URL)",
                "the same on channel whatsapp",
            ),
            ("anything else", "sms.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let batch: Batch<'a> = parse_json(id, &"body (a JSON object with `results`)", webhook.body)?;
        let items = batch.results.into_iter().enumerate().map(|(i, raw)| BodyItem { raw, index: Some(i) }).collect();
        let url_channel = webhook.query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "channel").map(|(_, v)| v.to_ascii_lowercase())
        });
        each_record(id, items, |r: Report<'_>, _, raw| {
            let message_id = r.message_id.as_deref();
            // An SMS report names its sender and network (or, before v3, its SMS count); a
            // WhatsApp report names neither.
            let bare_report = r.status.is_some() && r.sender.is_none() && r.mcc_mnc.is_none() && r.sms_count.is_none();
            let whatsapp = match url_channel.as_deref() {
                Some("whatsapp") => true,
                Some("sms") => false,
                _ => {
                    message_id.is_some_and(|m| m.starts_with("wamid."))
                        || upper(r.integration_type.as_deref().or(r.channel.as_deref())) == "WHATSAPP"
                        || r.message.is_some()
                        || r.seen_at.is_some()
                        || bare_report
                }
            };
            let channel = if whatsapp { Channel::WHATSAPP } else { Channel::SMS };
            let (name, status, time, recipient, dedup) = if let Some(s) = &r.status {
                let group = upper(s.group_name.as_deref());
                let state = upper(s.name.as_deref());
                let status = match group.as_str() {
                    "PENDING" => Status::Sent,
                    "DELIVERED" if state == "DELIVERED_TO_OPERATOR" => Status::Sent,
                    "DELIVERED" => Status::Delivered,
                    "UNDELIVERABLE" => Status::Bounced,
                    "EXPIRED" if state == "EXPIRED_DLR_UNKNOWN" => Status::Sent,
                    "EXPIRED" => Status::Bounced,
                    "REJECTED" if SENDER_REJECTIONS.contains(&state.as_str()) => Status::Failed,
                    "REJECTED" => Status::Dropped,
                    _ => Status::Unknown,
                };
                let dedup = format!(
                    "report|{}|{}|{}",
                    message_id.unwrap_or_default(),
                    s.id.as_deref().unwrap_or_default(),
                    r.error.as_ref().and_then(|e| e.id.as_deref()).unwrap_or_default()
                );
                let name = s.name.clone().unwrap_or_else(|| group.clone());
                (name, status, r.done_at.as_deref(), r.to.as_deref(), dedup)
            } else if r.seen_at.is_some() {
                let dedup = format!("seen|{}", message_id.unwrap_or_default());
                ("SEEN".to_owned(), Status::Read, r.seen_at.as_deref(), r.to.as_deref(), dedup)
            } else if r.event.is_none() && r.received_at.is_some() {
                let text = r.text.as_deref().or_else(|| r.message.as_ref().and_then(|m| m["text"].as_str()));
                let status = opt_out::by_keyword(text).unwrap_or(Status::Received);
                let dedup = format!("inbound|{}", message_id.unwrap_or_default());
                ("INBOUND".to_owned(), status, r.received_at.as_deref(), r.from.as_deref(), dedup)
            } else {
                let name = r.event.clone().unwrap_or_else(|| "UNKNOWN".to_owned());
                let digest = ring::digest::digest(&ring::digest::SHA256, raw.as_bytes());
                let dedup = format!("other|{name}|{}", hex::encode(digest.as_ref()));
                let who = r.sender.as_deref().or(r.from.as_deref());
                (name, Status::Unknown, r.received_at.as_deref(), who, dedup)
            };
            let mut status = status;
            let mut data = EventData::new(Some(channel.clone()), id.as_str(), &name);
            data.message_id = r.message_id.clone();
            data.recipient = recipient.map(recipient::international);
            if let Some(callback) = r.callback_data.as_deref().filter(|c| !c.is_empty()) {
                data.tags.insert("callbackData".into(), callback.to_owned());
            }
            for (key, value) in [("bulk_id", &r.bulk_id), ("sender", &r.sender), ("mcc_mnc", &r.mcc_mnc)] {
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    data.details.insert(key.into(), Value::String(value.to_owned()));
                }
            }
            if let Some(s) = &r.status {
                data.reason = s.description.clone();
            }
            if let Some(error) =
                r.error.as_ref().filter(|e| upper(e.name.as_deref()) != "NO_ERROR" && e.id.as_deref() != Some("0"))
            {
                let error_name = upper(error.name.as_deref());
                data.reason = error.description.clone().or(data.reason.take());
                data.details.insert("error_name".into(), Value::String(error_name.clone()));
                if status == Status::Bounced {
                    if OPTED_OUT_ERRORS.contains(&error_name.as_str()) {
                        status = Status::Dropped;
                    } else {
                        let kind = if NUMBER_ERRORS.contains(&error_name.as_str()) {
                            BounceKind::Hard
                        } else if error.permanent == Some(true) {
                            BounceKind::Undetermined
                        } else {
                            BounceKind::Soft
                        };
                        data.bounce = Some(Bounce {
                            kind,
                            code: error.id.clone(),
                            subtype: error.name.clone(),
                            diagnostic: error.description.clone(),
                            reason: None,
                            provider_kind: None,
                        });
                    }
                }
            }
            if status == Status::Bounced && data.bounce.is_none() {
                data.bounce = Some(Bounce::of_kind(BounceKind::Soft));
            }
            let time = time.and_then(infobip_time);
            Ok(ctx.event(message_type(&channel, Some(status)), time, &dedup, data, raw))
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    message_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    bulk_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    sender: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    mcc_mnc: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    sms_count: Option<String>,
    #[serde(default)]
    done_at: Option<String>,
    #[serde(default)]
    seen_at: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    status: Option<StatusRecord>,
    #[serde(default)]
    error: Option<ErrorRecord>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    callback_data: Option<String>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    integration_type: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRecord {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorRecord {
    #[serde(default, deserialize_with = "opt_string_or_number")]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    permanent: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_channel_of_a_report_that_does_not() {
        let body = br#"{"results":[{"messageId":"m1","to":"14155550142","sender":"InfoSMS","status":{"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET"}}]}"#;
        let headers = crate::webhook::Headers::new();
        let ctx = NormalizeContext { workspace: "ws", received_at: Timestamp::from_unix_seconds(1).unwrap() };
        let kind = |query: Option<&str>| {
            let webhook = Webhook { body, headers: &headers, query, transport: crate::webhook::Transport::Http };
            Infobip.normalize(&webhook, &ctx).unwrap().events[0].event.event_type.to_string()
        };
        assert_eq!(kind(None), "sms.delivered");
        assert_eq!(kind(Some("token=x&channel=whatsapp")), "whatsapp.delivered");
        let bare = br#"{"results":[{"messageId":"m1","to":"14155550142","status":{"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET"}}]}"#;
        let webhook = Webhook {
            body: bare,
            headers: &headers,
            query: Some("channel=sms"),
            transport: crate::webhook::Transport::Http,
        };
        assert_eq!(Infobip.normalize(&webhook, &ctx).unwrap().events[0].event.event_type.to_string(), "sms.delivered");
    }

    #[test]
    fn times_are_read_with_or_without_a_colon_in_the_offset() {
        let expected = Timestamp::parse_rfc3339("2025-11-28T06:00:04.917Z");
        assert_eq!(infobip_time("2025-11-28T06:00:04.917+0000"), expected);
        assert_eq!(infobip_time("2025-11-28T03:00:04.917-0300"), expected);
        assert_eq!(infobip_time("2025-11-28T06:00:04.917+00:00"), expected);
        assert_eq!(infobip_time("2025-11-28T06:00:04.917+00x0"), None);
        assert_eq!(infobip_time("é"), None);
    }
}
