//! The ingest HTTP surface: `POST /webhooks/<provider>/<source id>`, one axum router for every
//! provider. The same router runs in each ingest Lambda (through `lambda_http`) and in
//! `tidings dev`.

#[cfg(feature = "lambda")]
pub mod lambda;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tidings_core::pipeline::{Ingest, IngestRequest, MAX_BODY_BYTES};
use tidings_core::ports::{FetchError, Fetcher, Queue, Store};
use tidings_core::{Headers, ProviderId, Timestamp, Transport};

/// What the router serves besides the public webhook route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also serve `POST /webhooks/<provider>/<source>/queued`, which takes a body as if it came
    /// from the source's SQS queue (unsigned SNS-published records). For `tidings dev` only: on AWS that
    /// path is the queue itself, guarded by IAM.
    pub queue_route: bool,
    /// Serve only this provider's route (each ingest Lambda serves one provider).
    pub only: Option<ProviderId>,
}

struct Shared<S, Q, F> {
    ingest: Ingest<S, Q, F>,
    only: Option<ProviderId>,
}

/// The ingest router.
pub fn router<S, Q, F>(ingest: Ingest<S, Q, F>, options: Options) -> Router
where
    S: Store + 'static,
    Q: Queue + 'static,
    F: Fetcher + 'static,
{
    let shared = Arc::new(Shared { ingest, only: options.only });
    let mut router =
        Router::new().route("/webhooks/{provider}/{source}", post(webhook::<S, Q, F>).get(handshake::<S, Q, F>));
    if options.queue_route {
        router = router.route("/webhooks/{provider}/{source}/queued", post(queued::<S, Q, F>));
    }
    router.with_state(shared)
}

async fn webhook<S: Store, Q: Queue, F: Fetcher>(
    State(shared): State<Arc<Shared<S, Q, F>>>,
    Path((provider, source)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&shared, &provider, &source, query.as_deref(), &headers, body, Transport::Http).await
}

/// A provider's GET to the webhook URL (Meta's verification request), answered in plain text.
async fn handshake<S: Store, Q: Queue, F: Fetcher>(
    State(shared): State<Arc<Shared<S, Q, F>>>,
    Path((provider, source)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let parsed = provider.parse::<ProviderId>().ok().filter(|p| shared.only.is_none_or(|only| only == *p));
    let Some(provider) = parsed else {
        return (StatusCode::NOT_FOUND, format!("no provider {provider:?}")).into_response();
    };
    let answer = shared.ingest.handshake(provider, &source, query.as_deref()).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], answer.text).into_response()
}

async fn queued<S: Store, Q: Queue, F: Fetcher>(
    State(shared): State<Arc<Shared<S, Q, F>>>,
    Path((provider, source)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&shared, &provider, &source, None, &headers, body, Transport::Queue).await
}

async fn handle<S: Store, Q: Queue, F: Fetcher>(
    shared: &Shared<S, Q, F>,
    provider: &str,
    source: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    transport: Transport,
) -> Response {
    let parsed = provider.parse::<ProviderId>().ok().filter(|p| shared.only.is_none_or(|only| only == *p));
    let Some(provider) = parsed else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no provider {provider:?}")})))
            .into_response();
    };
    // Read one byte past the limit, so the service can tell "too large" with its own reason.
    let bytes = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let too_large = error.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some();
            let (status, line) = if too_large {
                (StatusCode::PAYLOAD_TOO_LARGE, format!("{provider}: body is over the {MAX_BODY_BYTES}-byte limit"))
            } else {
                // The sender stopped before the body it announced was whole.
                (StatusCode::BAD_REQUEST, format!("{provider}: the body ended before it was whole (truncated upload)"))
            };
            return (status, axum::Json(json!({"error": line}))).into_response();
        }
    };
    let headers = convert(headers);
    let request = IngestRequest {
        provider,
        source_id: source,
        body: &bytes,
        headers: &headers,
        query,
        transport,
        received_at: Timestamp::now(),
    };
    let response = shared.ingest.handle(request).await;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(response.body)).into_response()
}

/// Request headers as the core reads them. Values that are not visible ASCII (which no
/// provider signs with) are kept lossily.
pub fn convert(headers: &HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

/// HTTPS GETs for SNS certificates and subscription confirmations.
///
/// The client is built on the first GET, not at cold start: most webhooks never need it (SNS
/// certificates are cached), and building it (parsing the trust store) is a fifth of a
/// millisecond of Init otherwise. A client that cannot be built is an error of every GET.
#[derive(Default)]
pub struct HttpsFetcher {
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

/// Installs ring as rustls's process-wide crypto provider; every HTTPS client needs it, and
/// calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpsFetcher {
    pub fn new() -> HttpsFetcher {
        HttpsFetcher::default()
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        let built = self.client.get_or_init(|| {
            install_crypto_provider();
            reqwest::Client::builder()
                .tls_certs_only(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS
                        .iter()
                        .filter_map(|c| reqwest::Certificate::from_der(c).ok()),
                )
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the HTTPS client: {e}"))
        });
        built.as_ref().map_err(Clone::clone)
    }
}

impl Fetcher for HttpsFetcher {
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let client = self.client().map_err(FetchError::Transport)?;
        let response = client.get(url).send().await.map_err(|e| FetchError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status { url: url.to_owned(), status: response.status().as_u16() });
        }
        // Certificates are ~2 KiB and confirmations smaller: refuse anything large.
        let bytes = response.bytes().await.map_err(|e| FetchError::Transport(e.to_string()))?;
        if bytes.len() > 64 * 1024 {
            return Err(FetchError::TooLarge { url: url.to_owned(), bytes: bytes.len() });
        }
        Ok(bytes.to_vec())
    }
}
