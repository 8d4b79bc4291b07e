//! The pipeline as `tidings dev` runs it, in process: the real ingest and API routers over
//! SQLite, and the processor draining the events queue.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tidings_core::auth::signer::{self, SigningKey, generate_sendgrid_key_pair};
use tidings_core::pipeline::{Ingest, Processor};
use tidings_core::ports::{ApiKey, EventQuery, QueueName, Store};
use tidings_core::source::Source;
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_local::Sqlite;
use tower::ServiceExt;

const WS: &str = "ws_default";
const BASE: &str = "http://127.0.0.1:8787";

struct Fixture {
    db: Sqlite,
    app: Router,
    sources: Vec<Source>,
}

struct Offline;
impl tidings_core::ports::Fetcher for Offline {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        Err(format!("offline test: no fetch of {url}"))
    }
}

async fn fixture() -> Fixture {
    let db = Sqlite::in_memory().unwrap();
    let mut sources = Vec::new();
    for provider in ProviderId::ALL {
        let id = format!("src_test_{provider}");
        let mut source = Source {
            id: id.clone(),
            workspace: WS.into(),
            provider,
            description: String::new(),
            secrets: vec![format!("secret-{provider}")],
            public_url: Some(format!("{BASE}/webhooks/twilio/{id}")),
            allowed_topics: vec!["arn:aws:sns:eu-west-1:111122223333:ses-events".into()],
            signature_header: None,
            tolerance_seconds: None,
            dev_signing_key: None,
            created_at: Timestamp::now(),
        };
        match provider {
            ProviderId::Sendgrid => {
                let (private, public) = generate_sendgrid_key_pair().unwrap();
                source.secrets = vec![public];
                source.dev_signing_key = Some(private);
            }
            ProviderId::Resend => source.secrets = vec!["whsec_dGVzdC1zZWNyZXQ=".into()],
            _ => {}
        }
        db.put_source(&source).await.unwrap();
        sources.push(source);
    }
    for (workspace, key) in [(WS, "key-default"), ("ws_other", "key-other")] {
        let hash = tidings_api::api_key_hash(key);
        db.put_api_key(&ApiKey { id: key.into(), workspace: workspace.into(), hash, created_at: Timestamp::now() })
            .await
            .unwrap();
    }
    let ingest = Ingest::new(db.clone(), db.clone(), Offline).without_subscription_confirmation();
    let app = tidings_ingest::router(ingest, tidings_ingest::Options { queue_route: true })
        .merge(tidings_api::router(db.clone(), tidings_api::Settings { public_base_url: BASE.into() }));
    Fixture { db, app, sources }
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Every sample file as (provider, path).
fn samples() -> Vec<(ProviderId, PathBuf)> {
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

impl Fixture {
    fn source(&self, provider: ProviderId) -> &Source {
        self.sources.iter().find(|s| s.provider == provider).unwrap()
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Posts a sample the way `tidings replay` does: signed, or through the queue route (SES).
    async fn post_sample(&self, provider: ProviderId, path: &Path) -> (StatusCode, Value) {
        let source = self.source(provider);
        let body = std::fs::read(path).unwrap();
        let mut headers = match std::fs::read_to_string(path.with_extension("headers")) {
            Ok(text) => Headers::parse_lines(&text).unwrap(),
            Err(_) => Headers::new(),
        };
        let (uri, body) = if provider == ProviderId::Ses {
            (format!("/webhooks/ses/{}/queued", source.id), body)
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

    /// Runs the processor until the events queue is empty; returns how many it processed.
    async fn drain(&self) -> usize {
        let processor = Processor::new(self.db.clone(), 90);
        let mut processed = 0;
        loop {
            let batch = self.db.receive(QueueName::Events, 10, 30).unwrap();
            if batch.is_empty() {
                return processed;
            }
            for message in batch {
                processor.process(&message.body).await.unwrap();
                self.db.delete(QueueName::Events, &message.receipt).unwrap();
                processed += 1;
            }
        }
    }

    async fn stored_ids(&self) -> BTreeSet<String> {
        let page =
            self.db.events(&EventQuery { workspace: WS.into(), limit: 1000, ..EventQuery::default() }).await.unwrap();
        page.events.iter().map(|e| e.id.to_string()).collect()
    }
}

/// The ids the checked-in expectations say the samples produce (in workspace `ws_default`).
fn expected_ids() -> BTreeSet<String> {
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

#[tokio::test]
async fn every_sample_posted_twice_is_stored_once() {
    let f = fixture().await;
    let mut accepted = 0;
    for round in 0..2 {
        for (provider, path) in samples() {
            let (status, body) = f.post_sample(provider, &path).await;
            assert_eq!(status, StatusCode::OK, "round {round}: {}: {body}", path.display());
            accepted += body["accepted"].as_u64().unwrap() as usize;
        }
    }
    let processed = f.drain().await;
    assert_eq!(processed, accepted, "every accepted event reaches the processor");
    let stored = f.stored_ids().await;
    let expected = expected_ids();
    // Samples that repeat an event (the same SES event wired two ways, a SendGrid event in a
    // batch and alone) are one event: the store holds each id once.
    assert_eq!(stored, expected);
    assert!(accepted >= 2 * expected.len());
    assert_eq!(f.db.depth(QueueName::Events).unwrap(), 0);
    assert!(f.db.dead_letters(QueueName::Events).unwrap().is_empty());

    // Message state: the SES message's Delivery and Open events leave jane at "opened"
    // (the same message also has a Reject, which is terminal).
    let states = f.db.message_states(WS, "0102019ac9b1d2f4-5b1f7a34-8c1e-4f5d-9a77-0f3c2d1e9b8a-000000").await.unwrap();
    let jane = states.iter().find(|s| s.recipient == "jane.doe@example.com").unwrap();
    assert_eq!(jane.progress, tidings_core::Status::Clicked);
    assert_eq!(jane.status, tidings_core::Status::Dropped, "the SES Reject is a terminal failure");
    assert_eq!((jane.opens, jane.clicks), (1, 1));

    let suppressed: BTreeSet<String> = f.db.suppressions(WS).await.unwrap().into_iter().map(|s| s.recipient).collect();
    for address in ["nobody@example.com", "angry@example.com", "+15558675310"] {
        assert!(suppressed.contains(address), "{address} should be suppressed: {suppressed:?}");
    }
    for address in ["full@example.com", "busy@example.com", "slow@example.com"] {
        assert!(!suppressed.contains(address), "a soft bounce or deferral must not suppress {address}");
    }
}

#[tokio::test]
async fn rejected_webhooks_enqueue_nothing() {
    let f = fixture().await;
    let postmark = f.source(ProviderId::Postmark).id.clone();
    let delivery = std::fs::read(events_dir().join("postmark/delivery.json")).unwrap();
    let post = |uri: String, auth: &str, body: Vec<u8>| {
        Request::post(uri).header("Authorization", format!("Bearer {auth}")).body(Body::from(body)).unwrap()
    };
    let cases = [
        (
            post(format!("/webhooks/postmark/{postmark}"), "wrong", delivery.clone()),
            StatusCode::UNAUTHORIZED,
            "postmark: credentials do not match",
        ),
        (
            post(format!("/webhooks/postmark/{postmark}"), "secret-postmark", b"{\"RecordType\":".to_vec()),
            StatusCode::BAD_REQUEST,
            "postmark: body",
        ),
        (
            post(format!("/webhooks/postmark/{postmark}"), "secret-postmark", vec![b' '; 5 * 1024 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "postmark: body",
        ),
        (
            post("/webhooks/postmark/src_nope".into(), "secret-postmark", delivery.clone()),
            StatusCode::NOT_FOUND,
            "postmark: no source src_nope",
        ),
        // A source of another provider is not found either.
        (
            post(format!("/webhooks/brevo/{postmark}"), "secret-postmark", delivery.clone()),
            StatusCode::NOT_FOUND,
            "brevo: no source",
        ),
        (
            post(format!("/webhooks/mandrill/{postmark}"), "secret-postmark", delivery.clone()),
            StatusCode::NOT_FOUND,
            "no provider",
        ),
    ];
    for (request, status, reason) in cases {
        let (got, body) = f.call(request).await;
        assert_eq!(got, status, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(reason), "{body}");
        assert_eq!(f.db.depth(QueueName::Events).unwrap(), 0, "nothing enqueued for {reason}");
    }
    // And the same body with the right secret goes through.
    let (ok, _) = f.call(post(format!("/webhooks/postmark/{postmark}"), "secret-postmark", delivery)).await;
    assert_eq!(ok, StatusCode::OK);
    assert_eq!(f.db.depth(QueueName::Events).unwrap(), 1);
}

#[tokio::test]
async fn the_api_shows_a_workspace_only_its_own_data() {
    let f = fixture().await;
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    f.drain().await;
    let get = |uri: &str, key: &str| {
        Request::get(uri).header("Authorization", format!("Bearer {key}")).body(Body::empty()).unwrap()
    };

    let (status, mine) = f.call(get("/api/events?type=email.bounced&limit=10", "key-default")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["events"].as_array().unwrap().len(), 3);
    let (_, timeline) = f.call(get("/api/messages/qNwBLgPQQjW6DJvKQwSAbw", "key-default")).await;
    assert_eq!(timeline["timeline"].as_array().unwrap().len(), 15);

    let (_, theirs) = f.call(get("/api/events", "key-other")).await;
    assert!(theirs["events"].as_array().unwrap().is_empty(), "another workspace's key sees nothing");
    let (status, _) = f.call(get("/api/messages/qNwBLgPQQjW6DJvKQwSAbw", "key-other")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, sources) = f.call(get("/api/sources", "key-other")).await;
    assert!(sources["sources"].as_array().unwrap().is_empty());
    let delete = Request::delete(format!("/api/sources/{}", f.source(ProviderId::Sendgrid).id))
        .header("Authorization", "Bearer key-other")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.call(delete).await.0, StatusCode::NOT_FOUND);

    let (status, _) = f.call(get("/api/events", "no-such-key")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, listed) = f.call(get("/api/sources", "key-default")).await;
    let text = listed.to_string();
    assert!(!text.contains("secret-postmark") && !text.contains("dev_signing_key"), "secrets are never listed");
}
