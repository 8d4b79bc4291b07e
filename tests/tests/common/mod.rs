//! What the pipeline tests share: sources for every provider, posting samples the way
//! `tidings replay` does, and the event ids the checked-in expectations promise.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::pipeline::Ingest;
use tidings_core::ports::{ApiKey, EventQuery, Queue, Store};
use tidings_core::source::Source;
use tidings_core::{Headers, ProviderId, Timestamp};
use tower::ServiceExt;

pub const WS: &str = "ws_default";
pub const BASE: &str = "http://127.0.0.1:8787";

pub struct Offline;
impl tidings_core::ports::Fetcher for Offline {
    async fn get(&self, url: &str) -> Result<Vec<u8>, tidings_core::ports::FetchError> {
        Err(tidings_core::ports::FetchError::Transport(format!("offline test: no fetch of {url}")))
    }
}

pub struct Fixture<S> {
    pub store: S,
    pub app: Router,
    pub sources: Vec<Source>,
}

/// A store with a source per provider and two workspaces' API keys, behind the real routers.
pub async fn fixture<S: Store + Clone + 'static, Q: Queue + tidings_core::ports::DeadLetters + Clone + 'static>(
    store: S,
    queue: Q,
) -> Fixture<S> {
    let mut sources = Vec::new();
    for provider in ProviderId::ALL {
        let id = format!("src_test_{provider}_{}", std::process::id());
        let mut source = Source {
            id: id.clone(),
            workspace: WS.into(),
            provider,
            description: String::new(),
            secrets: vec![format!("secret-{provider}")],
            public_url: Some(format!("{BASE}/webhooks/{provider}/{id}")),
            allowed_topics: [
                "arn:aws:sns:eu-west-1:111122223333:ses-events",
                "arn:aws:sns:us-east-1:111122223333:sms-events",
                "arn:aws:sns:us-east-1:111122223333:sms-inbound",
            ]
            .map(String::from)
            .to_vec(),
            signature_header: None,
            tolerance_seconds: None,
            dev_signing_key: None,
            created_at: Timestamp::now(),
        };
        if let Some(pair) = signer::generate_key_pair(provider.provider().authentication()) {
            let (private, public) = pair.unwrap();
            source.secrets = vec![public];
            source.dev_signing_key = Some(private);
        }
        if provider == ProviderId::Resend {
            source.secrets = vec!["whsec_dGVzdC1zZWNyZXQ=".into()];
        }
        store.put_source(&source).await.unwrap();
        sources.push(source);
    }
    for (workspace, key) in [(WS, "key-default"), ("ws_other", "key-other")] {
        let hash = tidings_api::api_key_hash(key);
        store
            .put_api_key(&ApiKey { id: key.into(), workspace: workspace.into(), hash, created_at: Timestamp::now() })
            .await
            .unwrap();
    }
    let ingest = Ingest::new(store.clone(), queue.clone(), Offline).without_subscription_confirmation();
    let app = tidings_ingest::router(ingest, tidings_ingest::Options { queue_route: true, only: None }).merge(
        tidings_api::router(
            store.clone(),
            queue,
            tidings_api::Settings {
                public_base_url: BASE.into(),
                operator_workspaces: vec![WS.into()],
                ses_suppressions: None,
                secret_references: false,
            },
        ),
    );
    Fixture { store, app, sources }
}

/// The headers a sample is sent with: its `.headers` file, when it has one.
pub fn sample_headers(sample: &Path) -> Headers {
    match std::fs::read_to_string(sample.with_extension("headers")) {
        Ok(text) => Headers::parse_lines(&text).unwrap(),
        Err(_) => Headers::new(),
    }
}

pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Every sample file as (provider, path).
pub fn samples() -> Vec<(ProviderId, PathBuf)> {
    let mut out = Vec::new();
    for provider in ProviderId::ALL {
        let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir().join(provider.as_str()))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "form")))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (provider, f)));
    }
    out
}

/// The ids the checked-in expectations say the samples produce (in workspace `ws_default`).
pub fn expected_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for provider in ProviderId::ALL {
        for entry in std::fs::read_dir(events_dir().join(provider.as_str()).join("expected")).unwrap() {
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
            for event in expected["events"].as_array().cloned().unwrap_or_default() {
                ids.insert(event["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

impl<S: Store> Fixture<S> {
    pub fn source(&self, provider: ProviderId) -> &Source {
        self.sources.iter().find(|s| s.provider == provider).unwrap()
    }

    pub async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Posts a sample the way `tidings replay` does: signed, or through the queue route (SES).
    pub async fn post_sample(&self, provider: ProviderId, path: &Path) -> (StatusCode, Value) {
        self.post_signed(provider, std::fs::read(path).unwrap(), sample_headers(path)).await
    }

    /// Posts `body` to the provider's source, signed as the provider signs (SES: through the
    /// queue route, as SQS delivers it).
    pub async fn post_signed(&self, provider: ProviderId, body: Vec<u8>, mut headers: Headers) -> (StatusCode, Value) {
        let source = self.source(provider);
        let sns = provider.provider().authentication() == tidings_core::auth::Authentication::SnsSignature;
        let (uri, body) = if sns {
            (format!("/webhooks/{provider}/{}/queued", source.id), body)
        } else {
            let key = SigningKey { secret: source.signing_secret().unwrap(), public_url: source.public_url.as_deref() };
            (
                format!("/webhooks/{provider}/{}", source.id),
                signer::sign(provider, &body, &mut headers, &key, Timestamp::now()).unwrap(),
            )
        };
        let mut request = Request::post(uri);
        for (name, value) in headers.iter() {
            request = request.header(name, value);
        }
        self.call(request.body(Body::from(body)).unwrap()).await
    }

    pub async fn stored_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut cursor = None;
        loop {
            let query = EventQuery { workspace: WS.into(), limit: 1000, cursor, ..EventQuery::default() };
            let page = self.store.events(&query).await.unwrap();
            ids.extend(page.events.iter().map(|e| e.id.to_string()));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return ids,
            }
        }
    }
}

/// After every sample: the message states and suppressions the samples imply.
pub async fn check_states_and_suppressions<S: Store>(store: &S) {
    // The SES samples share one message: jane's events run up to a click, and its Reject is a
    // terminal failure that the later engagement does not clear.
    let states =
        store.message_states(WS, "0102019ac9b1d2f4-5b1f7a34-8c1e-4f5d-9a77-0f3c2d1e9b8a-000000").await.unwrap();
    let jane = states.iter().find(|s| s.recipient == "jane.doe@example.com").unwrap();
    assert_eq!(jane.progress, tidings_core::Status::Clicked);
    assert_eq!(jane.status, tidings_core::Status::Dropped, "the SES Reject is a terminal failure");
    assert_eq!((jane.opens, jane.clicks), (1, 1));

    let suppressed: BTreeSet<String> = store.suppressions(WS).await.unwrap().into_iter().map(|s| s.recipient).collect();
    for address in ["nobody@example.com", "angry@example.com", "+15558675310"] {
        assert!(suppressed.contains(address), "{address} should be suppressed: {suppressed:?}");
    }
    for address in ["full@example.com", "busy@example.com", "slow@example.com"] {
        assert!(!suppressed.contains(address), "a soft bounce or deferral must not suppress {address}");
    }
}

/// An SQS-triggered Lambda event with one record per body (ids `m0`, `m1`, …).
pub fn sqs_event<B: AsRef<str>>(bodies: &[B]) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut record = aws_lambda_events::sqs::SqsMessage::default();
        record.message_id = Some(format!("m{i}"));
        record.body = Some(body.as_ref().to_owned());
        event.records.push(record);
    }
    event
}

/// Keeps `value` in SSM Parameter Store as the SecureString `name` (a source's secret).
pub async fn put_secret(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

/// Takes every message off an SQS queue (receive, then delete each), as a Lambda event source
/// does before it invokes the function; message attributes included.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let page = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for message in &messages {
            let handle = message.receipt_handle.clone().unwrap();
            sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();
        }
        out.extend(messages);
    }
}

/// An SQS queue with its dead-letter queue after five receives, as the template wires the
/// events queue; returns (queue URL, dead-letter queue URL).
pub async fn queue_with_dead_letters(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let attributes =
        sqs.get_queue_attributes().queue_url(&dlq).attribute_names(QueueAttributeName::QueueArn).send().await.unwrap();
    let arn = attributes.attributes.unwrap()[&QueueAttributeName::QueueArn].clone();
    let policy = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#);
    let created =
        sqs.create_queue().queue_name(name).attributes(QueueAttributeName::RedrivePolicy, policy).send().await;
    (created.unwrap().queue_url.unwrap(), dlq)
}
