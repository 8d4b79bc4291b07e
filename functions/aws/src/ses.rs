//! Resending through SESv2 `SendEmail`: the request a send-failure report carried, as JSON in
//! the API's own shape (`FromEmailAddress`, `Destination`, `Content` (`Simple`, `Raw` or
//! `Template`), `ConfigurationSetName`, `EmailTags`, `ReplyToAddresses`), so the resent message
//! keeps its configuration set and tags and SES's events for it flow back into tidings.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent, Message, MessageTag, RawMessage, SuppressionListReason, Template,
};
use base64::Engine as _;
use serde_json::Value;
use tidings_core::ports::{Emailer, StoreError};
use tidings_core::retryable::SendError;
use tidings_core::suppression::Reason;

#[derive(Clone)]
pub struct SesEmailer {
    client: crate::LazyClient<Client>,
}

impl SesEmailer {
    pub fn new(client: impl Into<crate::LazyClient<Client>>) -> Self {
        SesEmailer { client: client.into() }
    }

    /// The SDK client, built on first use ([`crate::LazyClient`]).
    async fn client(&self) -> &Client {
        self.client.get().await
    }
}

fn bad_request(message: impl Into<String>) -> SendError {
    SendError { name: Some("BadRequestException".into()), message: Some(message.into()), ..SendError::default() }
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

fn content(value: Option<&Value>) -> Result<Option<Content>, String> {
    let Some(value) = value else { return Ok(None) };
    let data = value.get("Data").and_then(Value::as_str).ok_or_else(|| "Content without Data".to_owned())?;
    let mut builder = Content::builder().data(data);
    if let Some(charset) = value.get("Charset").and_then(Value::as_str) {
        builder = builder.charset(charset);
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// The SDK's `EmailContent` from the request's `Content`.
fn email_content(request: &Value) -> Result<EmailContent, String> {
    let content_json = request.get("Content").ok_or_else(|| "the report carried no Content to resend".to_owned())?;
    let mut email = EmailContent::builder();
    if let Some(simple) = content_json.get("Simple") {
        let body = simple.get("Body");
        let mut message = Message::builder().set_subject(content(simple.get("Subject"))?);
        message = message.body(
            Body::builder()
                .set_text(content(body.and_then(|b| b.get("Text")))?)
                .set_html(content(body.and_then(|b| b.get("Html")))?)
                .build(),
        );
        email = email.simple(message.build());
    } else if let Some(raw) = content_json.get("Raw") {
        let data = raw.get("Data").and_then(Value::as_str).ok_or_else(|| "Raw without Data".to_owned())?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap_or_else(|_| data.as_bytes().to_vec());
        email = email.raw(RawMessage::builder().data(Blob::new(bytes)).build().map_err(|e| e.to_string())?);
    } else if let Some(template) = content_json.get("Template") {
        let text = |k: &str| template.get(k).and_then(Value::as_str).map(str::to_owned);
        email = email.template(
            Template::builder()
                .set_template_name(text("TemplateName"))
                .set_template_arn(text("TemplateArn"))
                .set_template_data(text("TemplateData"))
                .build(),
        );
    } else {
        return Err("Content is neither Simple, Raw nor Template".to_owned());
    }
    Ok(email.build())
}

/// An SDK error as the retryable rule reads it (the Rust SDK form, `kind` from the same
/// classification the store uses).
fn send_error<E, R>(error: &SdkError<E, R>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + std::fmt::Debug + 'static,
    R: std::fmt::Debug + 'static,
{
    let classified = crate::classify("SendEmail", error);
    let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    let throttling = code.as_deref().is_some_and(|c| c.contains("Throttl") || c == "TooManyRequestsException");
    let kind = match (classified.is_retryable(), throttling) {
        (true, true) => "ThrottlingError",
        (true, false) => "TransientError",
        (false, _) => "ClientError",
    };
    SendError {
        name: code.or_else(|| Some("SdkError".into())),
        message: Some(classified.message().to_owned()),
        kind: Some(kind.into()),
        ..SendError::default()
    }
}

impl Emailer for SesEmailer {
    async fn send_email(&self, request: &Value) -> Result<String, SendError> {
        let destination = request.get("Destination");
        let mut call = self
            .client()
            .await
            .send_email()
            .set_from_email_address(request.get("FromEmailAddress").and_then(Value::as_str).map(str::to_owned))
            .destination(
                Destination::builder()
                    .set_to_addresses(strings(destination.and_then(|d| d.get("ToAddresses"))))
                    .set_cc_addresses(strings(destination.and_then(|d| d.get("CcAddresses"))))
                    .set_bcc_addresses(strings(destination.and_then(|d| d.get("BccAddresses"))))
                    .build(),
            )
            .set_reply_to_addresses(strings(request.get("ReplyToAddresses")))
            .set_configuration_set_name(request.get("ConfigurationSetName").and_then(Value::as_str).map(str::to_owned))
            .content(email_content(request).map_err(bad_request)?);
        for tag in request.get("EmailTags").and_then(Value::as_array).into_iter().flatten() {
            let (Some(name), Some(value)) =
                (tag.get("Name").and_then(Value::as_str), tag.get("Value").and_then(Value::as_str))
            else {
                continue;
            };
            call = call.email_tags(
                MessageTag::builder().name(name).value(value).build().map_err(|e| bad_request(e.to_string()))?,
            );
        }
        match call.send().await {
            Ok(out) => Ok(out.message_id.unwrap_or_default()),
            Err(error) => Err(send_error(&error)),
        }
    }
}

/// The SES account-level suppression list (SESv2 `PutSuppressedDestination` /
/// `DeleteSuppressedDestination`): tidings mirrors the hard bounces and complaints it learns of,
/// from any provider, so SES itself refuses to send to those addresses.
#[derive(Clone)]
pub struct SesSuppressionList {
    client: crate::LazyClient<Client>,
}

impl SesSuppressionList {
    pub fn new(client: impl Into<crate::LazyClient<Client>>) -> Self {
        SesSuppressionList { client: client.into() }
    }

    /// The SDK client, built on first use ([`crate::LazyClient`]).
    async fn client(&self) -> &Client {
        self.client.get().await
    }

    /// Puts `address` on the list. SES knows two reasons, so only hard bounces and complaints
    /// are mirrored (unsubscribes and provider suppressions stay per workspace): `Ok(false)`
    /// for the rest. Putting an address that is already there updates its reason.
    pub async fn put(&self, address: &str, reason: Reason) -> Result<bool, StoreError> {
        let reason = match reason {
            Reason::HardBounce => SuppressionListReason::Bounce,
            Reason::Complaint => SuppressionListReason::Complaint,
            Reason::ProviderSuppression | Reason::Unsubscribe => return Ok(false),
        };
        self.client()
            .await
            .put_suppressed_destination()
            .email_address(address)
            .reason(reason)
            .send()
            .await
            .map_err(|e| crate::classify("PutSuppressedDestination", &e))?;
        Ok(true)
    }

    /// Takes `address` off the list; `Ok(false)` when it was not on it.
    pub async fn remove(&self, address: &str) -> Result<bool, StoreError> {
        match self.client().await.delete_suppressed_destination().email_address(address).send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found_exception()) => Ok(false),
            Err(error) => Err(crate::classify("DeleteSuppressedDestination", &error)),
        }
    }
}
