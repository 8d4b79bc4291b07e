//! One module per provider, all of one shape: a table from the provider's event names to
//! canonical statuses, and a `normalize` that reads one webhook body into canonical events.
//! Authenticity is declared (`Provider::authentication`) and checked by [`crate::auth`], so a
//! provider file is about the provider's dialect and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::auth::{self, Authentication, SourceAuth, Verified, VerifyContext};
use crate::event::{CanonicalEvent, Channel, DataContentType, EventData, EventId, EventType, SpecVersion, Status};
use crate::timestamp::Timestamp;
use crate::webhook::{Webhook, WebhookError, parse_json};

pub mod activereach;
pub mod awssms;
pub mod bird;
pub mod brevo;
pub mod cmcom;
pub mod greenarrow;
pub mod infobip;
pub mod mailersend;
pub mod mailglyph;
pub mod mailgun;
pub mod mailjet;
pub mod mailtrap;
pub mod mandrill;
pub mod opt_out;
pub mod plivo;
pub mod postal;
pub mod postmark;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod sinch;
pub mod sns;
pub mod sparkpost;
pub mod telnyx;
pub mod twilio;
pub mod unisender;
pub mod vonage;
pub mod whatsapp;

pub use crate::provider_id::ProviderId;

impl ProviderId {
    /// The provider's implementation.
    pub fn provider(self) -> &'static dyn Provider {
        match self {
            ProviderId::Ses => &ses::Ses,
            ProviderId::Sendgrid => &sendgrid::Sendgrid,
            ProviderId::Postmark => &postmark::Postmark,
            ProviderId::Mailgun => &mailgun::Mailgun,
            ProviderId::Resend => &resend::Resend,
            ProviderId::Twilio => &twilio::Twilio,
            ProviderId::Brevo => &brevo::Brevo,
            ProviderId::Sparkpost => &sparkpost::Sparkpost,
            ProviderId::Greenarrow => &greenarrow::Greenarrow,
            ProviderId::Cmcom => &cmcom::Cmcom,
            ProviderId::Activereach => &activereach::Activereach,
            ProviderId::Mailglyph => &mailglyph::Mailglyph,
            ProviderId::Whatsapp => &whatsapp::Whatsapp,
            ProviderId::Mailjet => &mailjet::Mailjet,
            ProviderId::Mailersend => &mailersend::Mailersend,
            ProviderId::Telnyx => &telnyx::Telnyx,
            ProviderId::Plivo => &plivo::Plivo,
            ProviderId::Mailtrap => &mailtrap::Mailtrap,
            ProviderId::Mandrill => &mandrill::Mandrill,
            ProviderId::Infobip => &infobip::Infobip,
            ProviderId::Sinch => &sinch::Sinch,
            ProviderId::Vonage => &vonage::Vonage,
            ProviderId::Postal => &postal::Postal,
            ProviderId::Unisender => &unisender::Unisender,
            ProviderId::Bird => &bird::Bird,
            ProviderId::Awssms => &awssms::Awssms,
        }
    }
}

/// How a provider is set up, as the README's set-up table shows it (Markdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub add_source: &'static str,
    pub paste_url: &'static str,
    pub test_event: &'static str,
}

/// What a provider is: how it proves a webhook is its own, and how its dialect reads.
pub trait Provider: Sync {
    fn id(&self) -> ProviderId;

    /// How this provider's webhooks are authenticated.
    fn authentication(&self) -> Authentication;

    /// The provider's event names and the canonical type each becomes, for documentation and
    /// `tidings providers`. Conditional mappings say so in their text.
    fn event_types(&self) -> &'static [(&'static str, &'static str)];

    /// The sample file (in `events/<id>/`) that stands for this provider wherever one payload
    /// per provider is used: the Lambda envelopes, the bench, the hostile-input catalogue. A
    /// bounce where the provider sends one, since that is what users act on.
    fn example(&self) -> &'static str;

    /// How a user sets it up: the `tidings sources add` line (and where the secret comes from),
    /// where in the provider's dashboard the webhook URL goes, and how to send a test event.
    /// The README's set-up table shows these, and a test holds it to them.
    fn setup(&self) -> Setup;

    /// The signing certificate a webhook's signature needs and the verifier does not hold yet,
    /// fetched before it is verified: SNS's, for the providers that publish through SNS. Others
    /// need none.
    fn certificate_to_fetch(
        &self,
        body: &[u8],
        allowed_topics: &[String],
    ) -> Option<Result<crate::auth::sns::CertUrl, crate::auth::sns::SnsError>> {
        match self.authentication() {
            Authentication::SnsSignature => crate::auth::sns::signing_cert_url(body, allowed_topics),
            _ => None,
        }
    }

    /// What becomes of a webhook this provider is answered 5xx for, when that means it is lost
    /// (the provider does not retry): logged as an error when the queue is unavailable.
    fn lost_on_server_error(&self) -> Option<&'static str> {
        None
    }

    /// Whether the provider checks a webhook URL with a GET before it posts to it (Meta's
    /// verification request): the ingest route then answers GET through [`Provider::handshake`],
    /// and the deployment routes GET to the provider's function. Most providers only POST.
    fn answers_get(&self) -> bool {
        false
    }

    /// The answer to the provider's GET to the webhook URL: the text to echo back, or why the
    /// request is refused. Only called where [`Provider::answers_get`] says so.
    fn handshake(&self, _query: Option<&str>, _auth: &SourceAuth) -> Result<String, WebhookError> {
        Err(WebhookError::malformed(self.id(), "this provider's webhook URL takes POST requests only"))
    }

    /// A value besides the URL that the provider's dashboard asks for, derived from the source's
    /// secret (WhatsApp's verify token): shown with the source, never stored.
    fn setup_token(&self, _secret: &str) -> Option<String> {
        None
    }

    /// Checks that `webhook` comes from the provider, against the source's credentials.
    fn verify(
        &self,
        webhook: &Webhook<'_>,
        auth: &SourceAuth,
        ctx: &VerifyContext<'_>,
    ) -> Result<Verified, WebhookError> {
        auth::verify(self.id(), self.authentication(), webhook, auth, ctx)
    }

    /// Reads `webhook` into canonical events. Must not panic on any input.
    fn normalize<'a>(&self, webhook: &Webhook<'a>, ctx: &NormalizeContext<'_>) -> Result<Normalized<'a>, WebhookError>;
}

/// Where and when a webhook is being normalized.
#[derive(Debug, Clone)]
pub struct NormalizeContext<'a> {
    pub workspace: &'a str,
    pub received_at: Timestamp,
}

impl NormalizeContext<'_> {
    /// Completes a canonical event: deterministic id, source, subject, workspace, received time.
    /// `time` falls back to the receive time when the provider gives none.
    pub fn event<'a>(
        &self,
        event_type: EventType,
        time: Option<Timestamp>,
        dedup_key: &str,
        mut data: EventData,
        raw: &Raw<'a>,
    ) -> NormalizedEvent<'a> {
        data.received_at = self.received_at;
        crate::deliverability::enrich(&mut data, &event_type);
        let id = EventId::derive(self.workspace, &data.provider, dedup_key, data.recipient.as_deref());
        let event = CanonicalEvent {
            specversion: SpecVersion::V1_0,
            id,
            source: format!("tidings/{}", data.provider),
            event_type,
            time: time.unwrap_or(self.received_at),
            subject: data.message_id.clone(),
            datacontenttype: DataContentType::Json,
            workspaceid: self.workspace.to_owned(),
            data,
        };
        NormalizedEvent { event, raw: raw.clone() }
    }
}

/// A canonical event with the provider record it came from (JSON text), kept for audit and
/// re-normalization. One record naming several recipients shares one `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedEvent<'a> {
    pub event: CanonicalEvent,
    pub raw: Raw<'a>,
}

/// A provider record's text: a slice of the webhook's body where the record stands in it as it
/// is (no copy: a 1,000-event batch is not held twice while it is queued, see BENCHMARKS.md),
/// or text of its own, shared by the events made from it, where the record had to be decoded
/// (an SNS message, a form).
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
}

impl Raw<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Raw::Borrowed(text) => text,
            Raw::Shared(text) => text,
        }
    }
}

impl PartialEq for Raw<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<'a> From<&'a str> for Raw<'a> {
    fn from(text: &'a str) -> Self {
        Raw::Borrowed(text)
    }
}

impl From<String> for Raw<'_> {
    fn from(text: String) -> Self {
        Raw::Shared(Arc::from(text))
    }
}

impl std::ops::Deref for Raw<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a webhook said that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// SNS asks to confirm a subscription: GET `subscribe_url` to confirm (only for allow-listed
    /// topics; verification already refused the others).
    SnsSubscriptionConfirmation { topic_arn: String, subscribe_url: String },
    /// SNS says a subscription ended. Nothing to do.
    SnsUnsubscribeConfirmation { topic_arn: String },
    /// SES's "Successfully validated SNS topic" message after a configuration set was attached.
    SesTopicValidated,
    /// An authentic SNS notification whose message is not one of the provider's records.
    NotARecord { topic_arn: String, message_id: String },
    /// A provider's connectivity test (SparkPost's `{"msys":{}}`).
    TestPing,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::SnsSubscriptionConfirmation { topic_arn, .. } => {
                write!(f, "SNS subscription confirmation for {topic_arn}")
            }
            Notice::SnsUnsubscribeConfirmation { topic_arn } => {
                write!(f, "SNS unsubscribe confirmation for {topic_arn}")
            }
            Notice::SesTopicValidated => f.write_str("SES topic validation message (no event)"),
            Notice::NotARecord { topic_arn, message_id } => {
                write!(f, "SNS message {message_id} from {topic_arn} is not an event record of this provider; ignored")
            }
            Notice::TestPing => f.write_str("provider test ping (no event)"),
        }
    }
}

/// The result of normalizing one webhook; its events' raw records may borrow the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalized<'a> {
    pub events: Vec<NormalizedEvent<'a>>,
    pub notices: Vec<Notice>,
}

impl<'a> Normalized<'a> {
    pub fn events(events: Vec<NormalizedEvent<'a>>) -> Self {
        Normalized { events, notices: Vec::new() }
    }

    pub fn notice(notice: Notice) -> Self {
        Normalized { events: Vec::new(), notices: vec![notice] }
    }

    /// The same, owning its raw records (events made from one record still share one copy).
    pub fn into_static(self) -> Normalized<'static> {
        let mut last: Option<(*const u8, Arc<str>)> = None;
        let events = self
            .events
            .into_iter()
            .map(|e| {
                let raw = match e.raw {
                    Raw::Shared(text) => text,
                    Raw::Borrowed(text) => match &last {
                        Some((at, copy)) if *at == text.as_ptr() && copy.len() == text.len() => Arc::clone(copy),
                        _ => {
                            let copy: Arc<str> = Arc::from(text);
                            last = Some((text.as_ptr(), Arc::clone(&copy)));
                            copy
                        }
                    },
                };
                NormalizedEvent { event: e.event, raw: Raw::Shared(raw) }
            })
            .collect();
        Normalized { events, notices: self.notices }
    }
}

/// Verifies then normalizes: the whole path of one webhook through a provider.
pub fn process<'a>(
    provider: ProviderId,
    webhook: &Webhook<'a>,
    auth: &SourceAuth,
    verify: &VerifyContext<'_>,
    ctx: &NormalizeContext<'_>,
) -> Result<Normalized<'a>, WebhookError> {
    let p = provider.provider();
    p.verify(webhook, auth, verify)?;
    p.normalize(webhook, ctx)
}

/// A body that is one JSON object, or an array of them when the provider batches.
pub(crate) fn one_or_many(provider: ProviderId, body: &[u8]) -> Result<Vec<BodyItem<'_>>, WebhookError> {
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if is_array {
        let items: Vec<&RawValue> = parse_json(provider, &"body", body)?;
        Ok(items.into_iter().enumerate().map(|(index, raw)| BodyItem { raw, index: Some(index) }).collect())
    } else {
        Ok(vec![BodyItem { raw: parse_json(provider, &"body", body)?, index: None }])
    }
}

/// Reads each item as a provider record `R` and turns it into one event with `to_event`, which
/// also gets the item's raw text (kept beside the event) and its position (for messages).
pub(crate) fn each_record<'a, R: serde::Deserialize<'a>>(
    provider: ProviderId,
    items: Vec<BodyItem<'a>>,
    mut to_event: impl FnMut(R, &BodyItem<'a>, &Raw<'a>) -> Result<NormalizedEvent<'a>, WebhookError>,
) -> Result<Normalized<'a>, WebhookError> {
    let mut events = Vec::with_capacity(items.len());
    for item in &items {
        let record: R = parse_json(provider, item, item.raw.get().as_bytes())?;
        events.push(to_event(record, item, &Raw::Borrowed(item.raw.get()))?);
    }
    Ok(Normalized::events(events))
}

/// One record of a body, and where it stood (for error messages, formatted only on error).
pub(crate) struct BodyItem<'a> {
    pub raw: &'a RawValue,
    pub index: Option<usize>,
}

impl fmt::Display for BodyItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "body [{index}]"),
            None => f.write_str("body"),
        }
    }
}

/// Looks `name` up in a mapping table.
pub(crate) fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A message event type for `channel`, or `<channel>.unknown` when the table has no entry.
pub(crate) fn message_type(channel: &Channel, status: Option<Status>) -> EventType {
    EventType::message(channel.clone(), status.unwrap_or(Status::Unknown))
}

/// The whole body as the stored raw record (one-record providers).
pub(crate) fn raw_body<'a>(webhook: &Webhook<'a>) -> Raw<'a> {
    match String::from_utf8_lossy(webhook.body) {
        std::borrow::Cow::Borrowed(text) => Raw::Borrowed(text),
        std::borrow::Cow::Owned(text) => Raw::from(text),
    }
}

/// A tag value as text: strings as they are, anything else as its JSON.
pub(crate) fn tag_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Tags from a JSON object of metadata; anything that is not an object adds nothing.
pub(crate) fn tags_from_object(value: Option<&Value>, into: &mut BTreeMap<String, String>) {
    if let Some(Value::Object(map)) = value {
        for (k, v) in map {
            if !v.is_null() {
                into.insert(k.clone(), tag_value(v));
            }
        }
    }
}

/// Labels from a string or a list of strings (JSON).
pub(crate) fn labels_from(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => {
            items.iter().filter_map(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

/// A JSON scalar as text: a non-empty string as it is, a number as its digits; `None` for
/// anything else (absent, null, empty, a structure).
pub(crate) fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time written `2025-11-28 06:00:04` (fraction allowed) with no zone, as Plivo, Vonage's SMS
/// API, Unisender Go and MailerSend's account events write it: read as UTC, which each of them
/// uses.
pub(crate) fn utc_time(text: &str) -> Option<Timestamp> {
    let (date, time) = text.trim().split_once(' ')?;
    Timestamp::parse_rfc3339(&format!("{date}T{time}Z"))
}

/// The first of several optional strings that is present and not blank.
pub(crate) fn first_present<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Option<&'a str> {
    candidates.into_iter().flatten().find(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_round_trip_and_name_the_known_ones_on_error() {
        for id in ProviderId::ALL {
            assert_eq!(id.as_str().parse::<ProviderId>(), Ok(id));
            assert_eq!(id.provider().id(), id);
            assert!(!id.provider().event_types().is_empty());
        }
        let err = "pigeonpost".parse::<ProviderId>().unwrap_err();
        assert!(err.contains("sendgrid"), "{err}");
    }
}
