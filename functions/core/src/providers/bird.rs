//! Bird (formerly MessageBird) Channels API webhooks: one event per request,
//! `{"service": "channels", "event": "<channel>.<outbound|inbound|interaction>", "payload": <the
//! message>}`, signed with `messagebird-signature` over the timestamp, the URL and the body's
//! hash (see [`crate::auth::bird`]).
//!
//! An outbound message's `status` is its state for its receiver contacts (one event each).
//! `delivery_failed` is read by Bird's failure reason (`details`): an unknown subscriber or an
//! invalid destination is a hard bounce, an absent subscriber, expiry or a network error a soft
//! one, anything else undetermined; `sending_failed` never left Bird (`failed`); `skipped` and
//! `deleted` were not sent (`dropped`). An inbound message is `received`, about its sender, and
//! an opt-out keyword as its whole text opts them out. The older MessageBird formats
//! (Conversations API events, SMS status reports by GET) are not read.

use serde_json::Value;

use super::value_text as text;
use super::{NormalizeContext, Normalized, Provider, ProviderId, Setup, message_type, opt_out, raw_body};
use crate::auth::Authentication;
use crate::event::{Bounce, BounceKind, Channel, EventData, Status};
use crate::recipient;
use crate::serde_util::StrictValue;
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub struct Bird;

const STATUSES: &[(&str, Status)] = &[
    ("accepted", Status::Sent),
    ("scheduled", Status::Sent),
    ("processing", Status::Sent),
    ("sent", Status::Sent),
    ("delivered", Status::Delivered),
    ("delivery_failed", Status::Bounced),
    ("sending_failed", Status::Failed),
    ("skipped", Status::Dropped),
    ("deleted", Status::Dropped),
];

/// Email interactions by their name.
const INTERACTIONS: &[(&str, Status)] = &[
    ("opened", Status::Opened),
    ("clicked", Status::Clicked),
    ("reported-as-spam", Status::Complained),
    ("unsubscribed", Status::Unsubscribed),
];

/// Failure reasons that mean the number or address itself is bad, and ones that pass.
const HARD_REASONS: &[&str] = &["unknown_subscriber", "invalid_destination", "invalid_recipient", "unknown_recipient"];
const SOFT_REASONS: &[&str] = &["absent_subscriber", "expired", "network_error", "mailbox_full", "temporary_failure"];

fn address(contact: &Value, channel: &Channel) -> Option<String> {
    let value = contact["identifierValue"].as_str()?;
    Some(if *channel == Channel::EMAIL { recipient::email(value) } else { recipient::international(value) })
}

impl Provider for Bird {
    fn setup(&self) -> Setup {
        Setup {
            add_source: "`sources add bird --secret <signing key>` (the `signingKey` you give the webhook subscription); `--public-url <URL>` when a proxy or custom domain stands in front",
            paste_url: "Developer → Webhooks (or the Notifications API): service `channels`, events `sms.outbound`, `sms.inbound` (and other channels'), the printed URL (Bird signs the URL it calls)",
            test_event: "send a message through the channel",
        }
    }

    fn example(&self) -> &'static str {
        "sms-outbound-delivery-failed-permanent.json"
    }

    fn id(&self) -> ProviderId {
        ProviderId::Bird
    }

    fn authentication(&self) -> Authentication {
        Authentication::BirdHmac
    }

    fn event_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("<channel>.outbound accepted, scheduled, processing, sent", "<channel>.sent"),
            ("<channel>.outbound delivered", "<channel>.delivered"),
            (
                "<channel>.outbound delivery_failed, unknown subscriber or invalid destination",
                "<channel>.bounced (hard)",
            ),
            (
                "<channel>.outbound delivery_failed, absent subscriber, expired, network error",
                "<channel>.bounced (soft)",
            ),
            ("<channel>.outbound delivery_failed, other reasons", "<channel>.bounced (undetermined)"),
            ("<channel>.outbound sending_failed", "<channel>.failed"),
            ("<channel>.outbound skipped, deleted", "<channel>.dropped"),
            (
                "<channel>.inbound",
                "<channel>.received (recipient: the sender); an opt-out keyword: unsubscribed / resubscribed",
            ),
            (
                "email.interaction opened, clicked, reported-as-spam, unsubscribed",
                "email.opened, clicked, complained, unsubscribed",
            ),
            ("anything else", "<channel>.unknown"),
        ]
    }

    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError> {
        let id = self.id();
        let StrictValue(body) = parse_json(id, &"body", webhook.body)?;
        let name = body["event"].as_str().filter(|e| !e.is_empty()).ok_or_else(|| {
            WebhookError::malformed(id, "body field `event` is missing (is this a Channels API webhook?)")
        })?;
        let p = &body["payload"];
        if !p.is_object() {
            return Err(WebhookError::malformed(id, "body field `payload` is not an object"));
        }
        let (platform, kind) = name.split_once('.').unwrap_or((name, ""));
        let channel = Channel::parse(platform).unwrap_or(Channel::SMS);
        let raw = raw_body(webhook);
        let message_id = text(&p["id"]);
        let state = text(&p["status"]).unwrap_or_default();
        let time = p["lastStatusAt"].as_str().or(p["updatedAt"].as_str()).and_then(Timestamp::parse_rfc3339);
        let base = |who: Option<String>| {
            let mut data = EventData::new(Some(channel.clone()), id.as_str(), &format!("{name}:{state}"));
            data.message_id = message_id.clone();
            data.recipient = who;
            if let Some(reference) = text(&p["reference"]) {
                data.tags.insert("reference".into(), reference);
            }
            if let Some(channel_id) = text(&p["channelId"]) {
                data.details.insert("channel_id".into(), Value::String(channel_id));
            }
            data
        };
        let dedup = |who: &Option<String>| {
            format!(
                "{name}|{}|{state}|{}|{}",
                message_id.as_deref().unwrap_or_default(),
                p["lastStatusAt"].as_str().unwrap_or_default(),
                who.as_deref().unwrap_or_default()
            )
        };
        let mut events = Vec::new();
        match kind {
            "inbound" => {
                let who = address(&p["sender"]["contact"], &channel);
                let words = p["body"]["text"]["text"].as_str();
                let status = opt_out::by_keyword(words).unwrap_or(Status::Received);
                let key = dedup(&who);
                events.push(ctx.event(message_type(&channel, Some(status)), time, &key, base(who), &raw));
            }
            "outbound" => {
                let status = super::lookup(STATUSES, &state);
                let reason = text(&p["details"]);
                let mut bounce = None;
                if status == Some(Status::Bounced) {
                    let r = reason.as_deref().unwrap_or_default();
                    bounce = Some(if HARD_REASONS.contains(&r) {
                        BounceKind::Hard
                    } else if SOFT_REASONS.contains(&r) {
                        BounceKind::Soft
                    } else {
                        BounceKind::Undetermined
                    });
                }
                let contacts = p["receiver"]["contacts"].as_array().cloned().unwrap_or_default();
                let mut whom: Vec<Option<String>> = contacts.iter().map(|c| address(c, &channel)).collect();
                if whom.is_empty() {
                    whom.push(None);
                }
                let code = text(&p["failure"]["code"]);
                for who in whom {
                    let key = dedup(&who);
                    let mut data = base(who);
                    data.reason = text(&p["reason"]).or_else(|| reason.clone());
                    if let Some(code) = &code {
                        data.details.insert("failure_code".into(), Value::String(code.clone()));
                    }
                    if let Some(source) = text(&p["failure"]["source"]["name"]) {
                        data.details.insert("failure_source".into(), Value::String(source));
                    }
                    data.bounce = bounce.map(|kind| Bounce {
                        kind,
                        code: code.clone(),
                        subtype: reason.clone(),
                        diagnostic: text(&p["reason"]),
                        reason: None,
                        provider_kind: None,
                    });
                    events.push(ctx.event(message_type(&channel, status), time, &key, data, &raw));
                }
            }
            _ => {
                let interaction = text(&p["type"]).or_else(|| text(&p["interactionType"])).unwrap_or_default();
                let status = if kind == "interaction" { super::lookup(INTERACTIONS, &interaction) } else { None };
                let who = address(&p["receiver"]["contacts"][0], &channel);
                let key = format!("{}|{interaction}", dedup(&who));
                let mut data = base(who);
                data.url = text(&p["url"]);
                events.push(ctx.event(message_type(&channel, status), time, &key, data, &raw));
            }
        }
        Ok(Normalized::events(events))
    }
}
