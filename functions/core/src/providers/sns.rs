//! What providers that publish through Amazon SNS share (SES, AWS End User Messaging SMS): the
//! envelope's subscription messages become notices, and a notification's message is handed to
//! the provider's reader. Its signature and topic were checked by [`crate::auth::sns`].

use super::{Normalized, Notice, ProviderId};
use crate::auth::sns::SnsEnvelope;
use crate::webhook::{WebhookError, parse_json};

/// Reads an SNS envelope: confirmations become notices; a notification's message goes to
/// `notification`, whose `None` means the message is not one of the provider's records (a test
/// publish, another service's message on the topic): authentic but not ours to read, so a notice
/// rather than an error, and SNS stops retrying it.
pub(crate) fn read(
    provider: ProviderId,
    body: &[u8],
    notification: impl FnOnce(&SnsEnvelope<'_>) -> Option<Normalized<'static>>,
) -> Result<Normalized<'static>, WebhookError> {
    let envelope: SnsEnvelope<'_> = parse_json(provider, &"SNS message", body)?;
    match envelope.kind.as_ref() {
        "SubscriptionConfirmation" => {
            let subscribe_url = envelope
                .subscribe_url
                .as_deref()
                .ok_or_else(|| WebhookError::malformed(provider, "SNS SubscriptionConfirmation has no SubscribeURL"))?;
            Ok(Normalized::notice(Notice::SnsSubscriptionConfirmation {
                topic_arn: envelope.topic_arn.to_string(),
                subscribe_url: subscribe_url.to_owned(),
            }))
        }
        "UnsubscribeConfirmation" => {
            Ok(Normalized::notice(Notice::SnsUnsubscribeConfirmation { topic_arn: envelope.topic_arn.to_string() }))
        }
        "Notification" => Ok(notification(&envelope).unwrap_or_else(|| {
            Normalized::notice(Notice::NotARecord {
                topic_arn: envelope.topic_arn.to_string(),
                message_id: envelope.message_id.to_string(),
            })
        })),
        other => {
            Err(WebhookError::malformed(provider, format!("SNS `Type` {other:?} is not a known SNS message type")))
        }
    }
}
