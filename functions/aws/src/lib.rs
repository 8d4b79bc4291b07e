//! tidings on AWS: the core's ports implemented on DynamoDB ([`DynamoStore`]) and SQS
//! ([`SqsQueues`]), SDK clients built once per process, and configuration from the environment.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tidings_core::ports::{QueueName, StoreError};
use tokio::sync::OnceCell;

pub mod destinations;
pub mod dlq;
pub mod dynamo;
pub mod secrets;
pub mod ses;
pub mod sqs;
pub mod template;

pub use destinations::AwsPublisher;
pub use dynamo::DynamoStore;
pub use secrets::SsmSecrets;
pub use ses::{SesEmailer, SesSuppressionList};
pub use sqs::{QueueUrls, SqsQueues, answer_redriven_batch};

/// Loads the SDK configuration the standard way (environment, profile, container or instance
/// role), with one HTTPS client on rustls and ring. `AWS_ENDPOINT_URL` points every client at
/// another endpoint (moto in tests).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// The one HTTP client every SDK client uses: hyper with rustls on ring (no aws-lc build),
/// trusting [`root_certificates`].
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use base64::Engine;
    let mut roots = aws_smithy_http_client::tls::TrustStore::empty();
    for certificate in root_certificates() {
        let der = base64::engine::general_purpose::STANDARD.encode(certificate);
        roots.add_pem_certificate(format!("-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n"));
    }
    let builder = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring));
    match aws_smithy_http_client::tls::TlsContext::builder().with_trust_store(roots).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Not expected (the roots are fixed data); the platform's store still works.
        Err(error) => {
            tracing::warn!(%error, "compiled-in root certificates refused; using the platform's");
            builder.build_https()
        }
    }
}

/// The root certificates (DER) the AWS SDK clients trust: Mozilla's root program as the
/// `webpki-root-certs` crate compiles it in, as the ingest (SNS signing certificates) and fan-out
/// (subscribers) HTTPS clients also trust it. Loading and parsing the platform's store instead costs about 2 ms per client at every
/// cold start (BENCHMARKS.md); a Lambda's own store is the same public roots anyway, and cannot
/// be extended without a custom image. The `tidings` CLI keeps the platform's store.
pub fn root_certificates() -> impl Iterator<Item = &'static [u8]> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|certificate| certificate.as_ref())
}

/// Structured JSON logs for Lambda (CloudWatch adds the time), and metrics as EMF lines
/// ([`tidings_core::metrics`]). `TIDINGS_LOG_LEVEL` (or `RUST_LOG`) filters; the default is
/// `info`.
pub fn init_lambda_logging() {
    let namespace = std::env::var("TIDINGS_METRICS_NAMESPACE").ok().filter(|n| !n.is_empty());
    tidings_core::metrics::emit_to_stdout(namespace.as_deref().unwrap_or(tidings_core::metrics::DEFAULT_NAMESPACE));
    let filter = std::env::var("TIDINGS_LOG_LEVEL")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The SDK configuration of a process, loaded by [`sdk_config`] the first time a client needs
/// it rather than at cold start.
///
/// Why lazily: loading it (credential and region chains, the HTTPS client and its trust store)
/// is about a millisecond, most of what a function's Init phase spends beyond a hello-world
/// `lambda_runtime` binary (BENCHMARKS.md). Deferred, it is paid once, by the first invocation
/// that calls AWS, and not by invocations that never do. Clones share the one configuration.
#[derive(Clone, Default)]
pub struct LazyConfig {
    config: Arc<OnceCell<SdkConfig>>,
}

impl LazyConfig {
    /// Loaded from the environment on first use.
    pub fn from_env() -> LazyConfig {
        LazyConfig::default()
    }

    /// A configuration loaded already (tests, the CLI).
    pub fn ready(config: SdkConfig) -> LazyConfig {
        LazyConfig { config: Arc::new(OnceCell::new_with(Some(config))) }
    }

    pub async fn get(&self) -> &SdkConfig {
        self.config.get_or_init(sdk_config).await
    }

    /// A client of this configuration, built on its first use.
    pub fn client<C>(&self, build: fn(&SdkConfig) -> C) -> LazyClient<C> {
        LazyClient { client: Arc::new(OnceCell::new()), config: self.clone(), build }
    }
}

/// An SDK client built from a [`LazyConfig`] the first time it is used. Clones share it.
pub struct LazyClient<C> {
    client: Arc<OnceCell<C>>,
    config: LazyConfig,
    build: fn(&SdkConfig) -> C,
}

impl<C> LazyClient<C> {
    pub async fn get(&self) -> &C {
        self.client.get_or_init(|| async { (self.build)(self.config.get().await) }).await
    }
}

impl<C> fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient").field("built", &self.client.initialized()).finish()
    }
}

impl<C> Clone for LazyClient<C> {
    fn clone(&self) -> Self {
        LazyClient { client: Arc::clone(&self.client), config: self.config.clone(), build: self.build }
    }
}

/// A client built already (tests, the CLI).
impl<C> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        // `build` is never called: the cell is full.
        LazyClient {
            client: Arc::new(OnceCell::new_with(Some(client))),
            config: LazyConfig::from_env(),
            build: |_| unreachable!("a ready client is never built again"),
        }
    }
}

/// What every Lambda builds once, at cold start, from its environment: settings read, SDK
/// clients created lazily ([`LazyConfig`]).
pub struct Ports {
    pub settings: Settings,
    pub store: DynamoStore,
    pub queues: SqsQueues,
    /// For any further SDK client the function needs (SESv2, SSM), so the configuration is
    /// loaded once.
    pub config: LazyConfig,
}

/// The store and queues of a function, from its environment.
pub fn ports_from_env() -> Result<Ports, ConfigError> {
    let settings = Settings::from_env()?;
    let config = LazyConfig::from_env();
    let store = DynamoStore::new(config.client(aws_sdk_dynamodb::Client::new), settings.table.clone());
    let queues = SqsQueues::new(config.client(aws_sdk_sqs::Client::new), settings.queues.clone());
    Ok(Ports { settings, store, queues, config })
}

/// A function's environment is missing a setting or has one wrong: it cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} {value:?} is not {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

/// Settings read from the environment of a function (names as in `template.yaml`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: String,
    pub queues: QueueUrls,
    pub retention_days: u64,
    /// `TIDINGS_OPERATOR_WORKSPACES`: whose API keys may redrive the shared dead-letter queues.
    pub operator_workspaces: Vec<String>,
    /// `TIDINGS_SES_SUPPRESSION_SYNC`: workspaces (or `*`) whose suppressions are mirrored to SES.
    pub ses_suppression_sync: Vec<String>,
    /// `TIDINGS_SECRETS_PREFIX`: the SSM path `ssm:` secret references must lie under (empty:
    /// references are refused).
    pub secrets_prefix: String,
}

/// Each queue with the settings that name its URL and its dead-letter queue's URL, as the
/// template sets them and `tidings local-aws` writes them.
pub const QUEUE_VARIABLES: [(QueueName, &str, &str); 3] = [
    (QueueName::Events, "TIDINGS_EVENTS_QUEUE_URL", "TIDINGS_EVENTS_DLQ_URL"),
    (QueueName::Deliveries, "TIDINGS_DELIVERIES_QUEUE_URL", "TIDINGS_DELIVERIES_DLQ_URL"),
    (QueueName::Resend, "TIDINGS_RESEND_QUEUE_URL", "TIDINGS_RESEND_DLQ_URL"),
];

impl Settings {
    /// `TIDINGS_TABLE` is required; queue URLs are read when set (each function needs only
    /// some); `TIDINGS_RETENTION_DAYS` defaults to 90; the workspace lists default to empty.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let table = get("TIDINGS_TABLE").filter(|t| !t.is_empty()).ok_or(ConfigError::Missing("TIDINGS_TABLE"))?;
        let mut queues = QueueUrls { queues: HashMap::new(), dead_letters: HashMap::new() };
        for (queue, url, dlq) in QUEUE_VARIABLES {
            if let Some(value) = get(url).filter(|v| !v.is_empty()) {
                queues.queues.insert(queue, value);
            }
            if let Some(value) = get(dlq).filter(|v| !v.is_empty()) {
                queues.dead_letters.insert(queue, value);
            }
        }
        let retention_days = match get("TIDINGS_RETENTION_DAYS") {
            Some(days) => days.parse().map_err(|_| ConfigError::Invalid {
                name: "TIDINGS_RETENTION_DAYS",
                value: days.clone(),
                expected: "a number of days",
            })?,
            None => tidings_core::pipeline::DEFAULT_RETENTION_DAYS,
        };
        // Comma-separated, blanks ignored; unset is empty.
        let list = |name: &str| -> Vec<String> {
            get(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Ok(Settings {
            table,
            queues,
            retention_days,
            operator_workspaces: list("TIDINGS_OPERATOR_WORKSPACES"),
            ses_suppression_sync: list("TIDINGS_SES_SUPPRESSION_SYNC"),
            secrets_prefix: get("TIDINGS_SECRETS_PREFIX").unwrap_or_default().trim().to_owned(),
        })
    }
}

/// Error codes that clear up when the same request is sent again later.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestThrottled",
    "KMSThrottlingException",
];

/// Classifies an SDK error the way the SDK's retry logic sees it: timeouts, connection
/// failures and unreadable responses are transient; so are throttling and server (5xx) errors.
/// Everything else (validation, missing table, access denied) will fail again the same way.
pub fn classify<E, R>(operation: &str, error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + fmt::Debug + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let message = match error.as_service_error() {
        Some(service) => {
            format!("{operation}: {}: {}", service.code().unwrap_or("error"), service.message().unwrap_or(""))
        }
        None => format!("{operation}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(error)),
    };
    let retryable = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("");
            RETRYABLE_CODES.contains(&code) || status_is_server_error(format!("{:?}", context.raw()).as_str())
        }
        _ => false,
    };
    if retryable { StoreError::unavailable(message) } else { StoreError::refused(message) }
}

/// Whether a raw response's debug text shows a 5xx or 429 status.
fn status_is_server_error(raw: &str) -> bool {
    raw_status(raw).is_some_and(|code| code >= 500 || code == 429)
}

/// The HTTP status in a raw response's debug text (the response type differs between SDK
/// crates; its status is in its debug form either way).
pub(crate) fn raw_status(raw: &str) -> Option<u16> {
    raw.split("status: StatusCode(").nth(1).and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok())
}

/// SDK configuration for the usual AWS environment (credentials chain, region, `us-east-1` if
/// none is set) with every call sent to `endpoint`: `tidings dev --ses-endpoint`.
pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
    // The region from the environment only: the full provider chain would build its own HTTP
    // client for instance metadata.
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "us-east-1".into());
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .region(aws_sdk_dynamodb::config::Region::new(region))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// SDK configuration for an emulator or other local endpoint (moto in tests): fixed region and
/// dummy static credentials, so nothing is read from the environment.
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tidings-tests"))
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_hold_those_aws_endpoints_and_common_subscribers_chain_to() {
        // The subject names appear in each certificate's DER as plain text.
        let roots: Vec<String> = root_certificates().map(|der| String::from_utf8_lossy(der).into_owned()).collect();
        assert!(roots.len() > 100, "{} roots", roots.len());
        for name in [
            "Amazon Root CA 1",
            "Starfield Services Root Certificate Authority - G2",
            "ISRG Root X1",
            "DigiCert Global Root G2",
        ] {
            assert!(roots.iter().any(|r| r.contains(name)), "{name} is not among the roots");
        }
    }

    #[test]
    fn settings_come_from_the_environment() {
        let env = HashMap::from([
            ("TIDINGS_TABLE", "tidings"),
            ("TIDINGS_EVENTS_QUEUE_URL", "https://sqs/events"),
            ("TIDINGS_EVENTS_DLQ_URL", "https://sqs/events-dlq"),
            ("TIDINGS_RETENTION_DAYS", "30"),
            ("TIDINGS_OPERATOR_WORKSPACES", " ws_ops, ,ws_admin "),
        ]);
        let settings = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(settings.table, "tidings");
        assert_eq!(settings.queues.queues[&QueueName::Events], "https://sqs/events");
        assert_eq!(settings.queues.dead_letters[&QueueName::Events], "https://sqs/events-dlq");
        assert_eq!(settings.retention_days, 30);
        assert_eq!(settings.operator_workspaces, ["ws_ops", "ws_admin"]);
        assert!(settings.ses_suppression_sync.is_empty(), "unset: no workspace is mirrored to SES");
        assert_eq!(Settings::from_lookup(|_| None).unwrap_err(), ConfigError::Missing("TIDINGS_TABLE"));
        let bad = HashMap::from([("TIDINGS_TABLE", "t"), ("TIDINGS_RETENTION_DAYS", "ninety")]);
        assert!(Settings::from_lookup(|k| bad.get(k).map(|v| v.to_string())).is_err());
    }
}
