//! The ingest Lambda functions: each provider's function serves its route through
//! `lambda_http` (API Gateway HTTP API or a Function URL), with the store and queue built once
//! at cold start. `ses-queue` reads SES records that reach tidings through AWS instead of HTTP:
//! an SQS queue subscribed to the SES topic (SNS→SQS, raw or enveloped) or an EventBridge rule.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tidings_core::pipeline::{Ingest, IngestRequest};
use tidings_core::ports::StoreError;
use tidings_core::{Headers, ProviderId, Timestamp, Transport};

use crate::{HttpsFetcher, Options, router};

/// Runs `provider`'s ingest function (every provider's, given none).
pub async fn run_http(provider: Option<ProviderId>) -> Result<(), lambda_http::Error> {
    tidings_aws::init_lambda_logging();
    let (store, queues) = ingest_ports()?;
    let ingest = Ingest::new(store, queues, HttpsFetcher::new());
    lambda_http::run(router(ingest, Options { queue_route: false, only: provider })).await
}

/// Runs the SES intake function for SQS batches and EventBridge events. `TIDINGS_SES_SOURCE`
/// names the source those records belong to.
pub async fn run_ses_queue() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let (store, queues) = ingest_ports()?;
    let source = std::env::var("TIDINGS_SES_SOURCE").map_err(|_| "TIDINGS_SES_SOURCE is not set")?;
    let shared = std::sync::Arc::new((Ingest::new(store, queues, HttpsFetcher::new()), source));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let shared = shared.clone();
        // Boxed: the SDK's futures are deep types, and the runtime's own nesting on top of them
        // exceeds the compiler's type-layout depth otherwise.
        let future: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(async move { handle_ses_event(&shared.0, &shared.1, event.payload).await });
        future
    }))
    .await
}

/// The store (resolving `ssm:` secret references under `TIDINGS_SECRETS_PREFIX`) and queues of
/// an ingest function.
fn ingest_ports() -> Result<(tidings_aws::DynamoStore, tidings_aws::SqsQueues), tidings_aws::ConfigError> {
    let tidings_aws::Ports { settings, store, queues, config } = tidings_aws::ports_from_env()?;
    let secrets = tidings_aws::SsmSecrets::new(config.client(aws_sdk_ssm::Client::new), settings.secrets_prefix);
    Ok((store.with_secrets(secrets), queues))
}

/// Handles one invocation: an SQS batch (answered with the ids of records to retry, for
/// `ReportBatchItemFailures`) or one EventBridge event (an error makes Lambda retry it).
pub async fn handle_ses_event<S, Q, F>(
    ingest: &Ingest<S, Q, F>,
    source: &str,
    payload: Value,
) -> Result<Value, lambda_runtime::Error>
where
    S: tidings_core::ports::Store,
    Q: tidings_core::ports::Queue,
    F: tidings_core::ports::Fetcher,
{
    let headers = Headers::new();
    if payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(payload).map_err(|e| format!("not an SQS batch: {e}"))?;
        let records: Vec<&SqsMessage> = batch.records.iter().collect();
        let mut results = Vec::with_capacity(records.len());
        for record in &records {
            let body = record.body.as_deref().unwrap_or_default();
            let response = ingest.handle(queued(source, body.as_bytes(), &headers)).await;
            results.push(match response.status {
                ..=299 => Ok(None),
                429 | 500.. => Err(StoreError::unavailable(response.body.to_string())),
                _ => Err(StoreError::refused(response.body.to_string())),
            });
        }
        let answer = tidings_aws::answer_redriven_batch(&records, results);
        return Ok(serde_json::to_value(answer)?);
    }
    if payload.get("detail-type").is_some() {
        let body = serde_json::to_vec(&payload)?;
        let response = ingest.handle(queued(source, &body, &headers)).await;
        if response.status >= 300 {
            return Err(format!("EventBridge event refused: {}", response.body).into());
        }
        return Ok(response.body);
    }
    Err("not an SQS batch or an EventBridge event".into())
}

/// An SES record that arrived through AWS (IAM guards the way in, so no signature is needed).
fn queued<'a>(source: &'a str, body: &'a [u8], headers: &'a Headers) -> IngestRequest<'a> {
    IngestRequest {
        provider: ProviderId::Ses,
        source_id: source,
        body,
        headers,
        query: None,
        transport: Transport::Queue,
        received_at: Timestamp::now(),
    }
}
