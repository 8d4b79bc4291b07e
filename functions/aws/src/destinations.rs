//! Deliveries to AWS destinations: `PutEvents` to an EventBridge event bus and `SendMessage` to
//! an SQS queue, in the destination's own region, with the answer read as an HTTPS attempt's.
//!
//! - EventBridge: `Source` is `tidings`, `DetailType` the canonical type (`email.delivered`),
//!   `Detail` the canonical event as an HTTPS subscriber receives it, `Time` the event's time,
//!   and `EventBusName` the bus's ARN (so a bus in another account is named exactly).
//! - SQS: the body is the canonical event; the Standard Webhooks headers ride along as string
//!   message attributes (`content-type` too). A FIFO queue's message group is the event's provider message id (the
//!   event id when it has none), so one message's events stay in order, and its deduplication id
//!   is the delivery's key, so a retried send within SQS's five-minute window is not queued twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use tidings_core::delivery::{Outcome, Response};
use tidings_core::destination::{AwsKind, AwsTarget, fifo_id};
use tidings_core::ports::{Publication, Publisher};

use crate::{LazyConfig, raw_status};

/// The EventBridge `Source` of every event tidings puts on a bus.
pub const EVENT_SOURCE: &str = "tidings";

/// Sends deliveries to buses and queues, with one pair of clients per region, built on first
/// use from the process's SDK configuration.
pub struct AwsPublisher {
    config: LazyConfig,
    clients: Mutex<HashMap<String, (aws_sdk_eventbridge::Client, aws_sdk_sqs::Client)>>,
}

impl AwsPublisher {
    pub fn new(config: LazyConfig) -> AwsPublisher {
        AwsPublisher { config, clients: Mutex::new(HashMap::new()) }
    }

    /// A publisher whose clients use `config` (a test's, on moto).
    pub fn with_config(config: SdkConfig) -> AwsPublisher {
        AwsPublisher::new(LazyConfig::ready(config))
    }

    async fn clients(&self, region: &str) -> (aws_sdk_eventbridge::Client, aws_sdk_sqs::Client) {
        if let Some(clients) = self.clients.lock().unwrap_or_else(|e| e.into_inner()).get(region) {
            return clients.clone();
        }
        let base = self.config.get().await;
        let region_of = aws_sdk_eventbridge::config::Region::new(region.to_owned());
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(base).region(region_of.clone()).build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(base).region(region_of).build());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry(region.to_owned()).or_insert((events, sqs)).clone()
    }

    /// Puts one delivery on `target`.
    pub async fn send(&self, target: &AwsTarget, publication: &Publication<'_>) -> Response {
        let started = Instant::now();
        let (events, sqs) = self.clients(&target.region).await;
        let body = String::from_utf8_lossy(publication.body);
        let (outcome, detail) = match target.kind {
            AwsKind::EventBus => put_event(&events, target, publication, &body).await,
            AwsKind::Queue => send_message(&sqs, target, publication, &body).await,
        };
        Response { outcome, latency: started.elapsed(), detail }
    }
}

impl Publisher for AwsPublisher {
    fn publish<'a>(
        &'a self,
        target: &'a AwsTarget,
        publication: &'a Publication<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(self.send(target, publication))
    }
}

async fn put_event(
    client: &aws_sdk_eventbridge::Client,
    target: &AwsTarget,
    publication: &Publication<'_>,
    body: &str,
) -> (Outcome, String) {
    let event = publication.event;
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(EVENT_SOURCE)
        .detail_type(event.event_type.to_string())
        .detail(body)
        .event_bus_name(&target.arn)
        .time(aws_smithy_types::DateTime::from_secs(event.time.unix_seconds()))
        .build();
    match client.put_events().entries(entry).send().await {
        Ok(answer) => {
            let first = answer.entries().first();
            match first.and_then(|e| e.error_code()) {
                None if answer.failed_entry_count() == 0 => {
                    let id = first.and_then(|e| e.event_id()).unwrap_or_default();
                    (Outcome::Delivered { code: 200 }, format!("EventBridge event {id}"))
                }
                code => {
                    let code = code.unwrap_or("FailedEntry");
                    let message = first.and_then(|e| e.error_message()).unwrap_or_default();
                    (status_of(code, 400), format!("PutEvents: {code}: {message}"))
                }
            }
        }
        Err(error) => failed("PutEvents", target, &error),
    }
}

async fn send_message(
    client: &aws_sdk_sqs::Client,
    target: &AwsTarget,
    publication: &Publication<'_>,
    body: &str,
) -> (Outcome, String) {
    let mut request = client.send_message().queue_url(target.queue_url()).message_body(body);
    let attribute = |value: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder().data_type("String").string_value(value).build()
    };
    for (name, value) in publication.headers {
        if let Ok(value) = attribute(value) {
            request = request.message_attributes(name.to_ascii_lowercase(), value);
        }
    }
    if target.is_fifo() {
        let event = publication.event;
        let group = event.data.message_id.as_deref().filter(|m| !m.is_empty()).unwrap_or(event.id.as_str());
        request = request.message_group_id(fifo_id(group)).message_deduplication_id(fifo_id(publication.key));
    }
    match request.send().await {
        Ok(answer) => {
            (Outcome::Delivered { code: 200 }, format!("SQS message {}", answer.message_id().unwrap_or_default()))
        }
        Err(error) => failed("SendMessage", target, &error),
    }
}

/// A refused or failed call as an attempt's outcome: what the service answered as a status
/// (its own code decides where a code says more than the HTTP status: throttling is a 429,
/// a missing bus or queue a 404, a refused permission a 403), a timeout, or unreachable.
fn failed<E, R>(operation: &str, target: &AwsTarget, error: &SdkError<E, R>) -> (Outcome, String)
where
    E: ProvideErrorMetadata + std::fmt::Debug + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error {
        SdkError::TimeoutError(_) => (Outcome::Timeout, format!("{operation}: timed out")),
        SdkError::ServiceError(context) => {
            let service = context.err();
            let code = service.code().unwrap_or("error");
            let message = service.message().unwrap_or_default();
            let raw = format!("{:?}", context.raw());
            let status = raw_status(&raw).unwrap_or(400);
            let outcome = status_of(code, status);
            let mut detail = format!("{operation}: {code}: {message}");
            if matches!(outcome, Outcome::Status { code: 403, .. }) {
                detail.push_str(&format!(
                    " (the fan-out function needs {} on {}; in another account, the {} policy must allow it too)",
                    target.action(),
                    target.arn,
                    if target.kind == AwsKind::EventBus { "bus's resource" } else { "queue's" }
                ));
            }
            (outcome, detail)
        }
        other => {
            (Outcome::Unreachable, format!("{operation}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(other)))
        }
    }
}

/// The attempt outcome of an AWS error `code` answered with HTTP `status`.
fn status_of(code: &str, status: u16) -> Outcome {
    let lower = code.to_ascii_lowercase();
    let code = if lower.contains("throttl") || lower.contains("toomanyrequests") || lower.contains("limitexceeded") {
        429
    } else if lower.contains("accessdenied") || lower.contains("notauthorized") || lower.starts_with("kms") {
        403
    } else if lower.contains("nonexistentqueue") || lower.contains("queuedoesnotexist") || lower.contains("notfound") {
        404
    } else if lower.contains("internal") || lower.contains("unavailable") {
        status.max(500)
    } else {
        status
    };
    Outcome::Status { code, retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_read_as_statuses() {
        let code = |outcome: Outcome| match outcome {
            Outcome::Status { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(status_of("ThrottlingException", 400)), 429);
        assert_eq!(code(status_of("RequestThrottled", 403)), 429);
        assert_eq!(code(status_of("AccessDeniedException", 400)), 403);
        assert_eq!(code(status_of("KMS.AccessDeniedException", 400)), 403);
        assert_eq!(code(status_of("AWS.SimpleQueueService.NonExistentQueue", 400)), 404);
        assert_eq!(code(status_of("ResourceNotFoundException", 400)), 404);
        assert_eq!(code(status_of("InternalFailure", 400)), 500);
        assert_eq!(code(status_of("InvalidParameterValue", 400)), 400);
        assert_eq!(raw_status("Response { status: StatusCode(503), headers"), Some(503));
    }
}
