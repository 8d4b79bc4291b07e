//! Sending one delivery: an HTTP POST that cannot be turned against tidings' own network.
//!
//! - Every address connected to passes the [`Guard`]: names are resolved by a resolver that
//!   returns only allowed addresses (so the address checked is the address used: no DNS
//!   rebinding gap), and literal IP hosts (also decimal, octal and IPv4-mapped forms, which the
//!   URL parser normalises) are checked before any connection.
//! - Redirects are not followed (a 3xx is a failed attempt), no proxy from the environment is
//!   used, the whole attempt is bounded by a timeout, and at most 64 KiB of the answer is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tidings_core::delivery::{Outcome, Response};
use tidings_core::destination::AwsTarget;
use tidings_core::ports::{Publication, Publisher, Sender};
use tidings_core::ssrf::Guard;

/// What one attempt did (the core's delivery response).
pub type Attempt = Response;

/// Bytes of a subscriber's answer read at most (the rest is not waited for).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const EXCERPT_BYTES: usize = 1024;

struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addresses.iter().copied().filter(|a| guard.check(a.ip()).is_ok()).collect();
            if allowed.is_empty() {
                let why = addresses
                    .first()
                    .and_then(|a| guard.check(a.ip()).err())
                    .map_or_else(|| "no addresses".to_owned(), |blocked| blocked.to_string());
                let error =
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("{host} resolves to {why}"));
                return Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Sends deliveries: HTTPS itself, AWS destinations through the publisher it is given.
pub struct Deliverer {
    client: reqwest::Client,
    guard: Arc<Guard>,
    publisher: Option<Arc<dyn Publisher>>,
}

impl Deliverer {
    /// The delivery client; building it fails only where TLS cannot be set up at all.
    pub fn new(guard: Guard, timeout: Duration) -> Result<Deliverer, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            .tls_certs_only(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().filter_map(|c| reqwest::Certificate::from_der(c).ok()),
            )
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver { guard: guard.clone() }))
            .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer { client, guard, publisher: None })
    }

    /// Deliveries to EventBridge buses and SQS queues go through `publisher`; without one they
    /// fail as unreachable, naming why.
    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Deliverer {
        self.publisher = Some(publisher);
        self
    }

    /// POSTs `body` to `url` with `headers`.
    pub async fn deliver(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Attempt {
        let started = Instant::now();
        let refused = |detail: String| Attempt { outcome: Outcome::Unreachable, latency: started.elapsed(), detail };
        let parsed = match url::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
            _ => return refused(format!("{url} is not an http(s) URL")),
        };
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal
            && let Err(why) = self.guard.check(ip)
        {
            return refused(why.to_string());
        }
        let mut request = self.client.post(parsed).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let outcome = if error.is_timeout() { Outcome::Timeout } else { Outcome::Unreachable };
                return Attempt { outcome, latency: started.elapsed(), detail: error_chain(&error) };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The status decides the outcome; the body is only read for an excerpt, and no further
        // than MAX_RESPONSE_BYTES or the attempt's time limit (a subscriber that answers 200 and
        // then trickles its body has still taken the event: retrying would deliver it twice).
        let mut read = Vec::new();
        let mut cut_short = false;
        while read.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    cut_short = error.is_timeout();
                    break;
                }
            }
        }
        read.truncate(EXCERPT_BYTES);
        let mut detail = String::from_utf8_lossy(&read).into_owned();
        if cut_short {
            detail.push_str(" (answer body timed out)");
        }
        let outcome = if (200..300).contains(&status) {
            Outcome::Delivered { code: status }
        } else {
            Outcome::Status { code: status, retry_after }
        };
        Attempt { outcome, latency: started.elapsed(), detail }
    }
}

impl Sender for Deliverer {
    async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Response {
        self.deliver(url, headers, body).await
    }

    async fn publish(&self, target: &AwsTarget, publication: &Publication<'_>) -> Response {
        match &self.publisher {
            Some(publisher) => publisher.publish(target, publication).await,
            None => Response {
                outcome: Outcome::Unreachable,
                latency: Duration::ZERO,
                detail: format!("{} is an AWS destination, and this process has no AWS publisher", target.arn),
            },
        }
    }
}

/// An error and its causes on one line (reqwest's own message hides the refusal reason).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(feature = "lambda")]
/// The fan-out function's handler: an SQS batch from the deliveries queue, answered with the
/// records to keep. A delivery to retry stays on the queue: its visibility is extended to the
/// retry's delay and it is reported as a batch item failure so Lambda does not delete it; its
/// receive count is the attempt number. Store or queue trouble is retried the same way, by SQS.
pub async fn handle<S, Q, D>(
    fanout: &tidings_core::pipeline::Fanout<S, Q, D>,
    queues: &tidings_aws::SqsQueues,
    event: aws_lambda_events::sqs::SqsEvent,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    S: tidings_core::ports::Store,
    Q: tidings_core::ports::Queue,
    D: Sender,
{
    use tidings_core::ports::QueueName;
    // SQS holds a task twice when a SendMessageBatch is retried after its answer was lost; the
    // copies are sent together, so they usually arrive in one batch. The first is delivered, the
    // others acknowledged: if the first must be retried, it stays on the queue for both.
    let mut bodies = std::collections::HashSet::new();
    let taken: Vec<&aws_lambda_events::sqs::SqsMessage> = event
        .records
        .iter()
        .filter(|record| {
            let first = bodies.insert(record.body.as_deref().unwrap_or_default());
            if !first {
                tracing::info!(message = ?record.message_id, "a second copy of a delivery task in one batch, acknowledged");
            }
            first
        })
        .collect();
    let messages: Vec<tidings_core::pipeline::QueuedTask<'_>> = taken
        .iter()
        .map(|record| tidings_core::pipeline::QueuedTask {
            id: record.message_id.as_deref().unwrap_or_default(),
            body: record.body.as_deref().unwrap_or_default(),
            receive_count: tidings_aws::sqs::receive_count(record),
        })
        .collect();
    let results = fanout.deliver_batch(&messages, tidings_core::Timestamp::now()).await;
    queues.answer_batch(QueueName::Deliveries, &taken, results).await
}
