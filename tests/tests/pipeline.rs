//! The pipeline as `tidings dev` runs it, in process: the real ingest and API routers over
//! SQLite, and the processor draining the events queue.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Fixture, events_dir, expected_ids, fixture, samples};
use tidings_core::ProviderId;
use tidings_core::pipeline::Processor;
use tidings_core::ports::KeyStore;
use tidings_core::ports::QueueName;
use tidings_local::Sqlite;

async fn sqlite_fixture() -> Fixture<Sqlite> {
    let db = Sqlite::in_memory().unwrap();
    fixture(db.clone(), db).await
}

/// Runs the processor until the events queue is empty; returns how many it processed.
async fn drain(db: &Sqlite) -> usize {
    let processor = Processor::new(db.clone(), 90);
    let mut processed = 0;
    loop {
        let batch = db.receive(QueueName::Events, 10, 30).unwrap();
        if batch.is_empty() {
            return processed;
        }
        for message in batch {
            processor.process(&message.body).await.unwrap();
            db.delete(QueueName::Events, &message.receipt).unwrap();
            processed += 1;
        }
    }
}

#[tokio::test]
async fn every_sample_posted_twice_is_stored_once() {
    let f = sqlite_fixture().await;
    let mut accepted = 0;
    for round in 0..2 {
        for (provider, path) in samples() {
            let (status, body) = f.post_sample(provider, &path).await;
            assert_eq!(status, StatusCode::OK, "round {round}: {}: {body}", path.display());
            accepted += body["accepted"].as_u64().unwrap() as usize;
        }
    }
    let processed = drain(&f.store).await;
    assert_eq!(processed, accepted, "every accepted event reaches the processor");
    let stored = f.stored_ids().await;
    let expected = expected_ids();
    // Samples that repeat an event (the same SES event wired two ways, a SendGrid event in a
    // batch and alone) are one event: the store holds each id once.
    assert_eq!(stored, expected);
    assert!(accepted >= 2 * expected.len());
    assert_eq!(f.store.depth(QueueName::Events).unwrap(), 0);
    assert!(f.store.dead_letters(QueueName::Events).unwrap().is_empty());

    common::check_states_and_suppressions(&f.store).await;
}

#[tokio::test]
async fn rejected_webhooks_enqueue_nothing() {
    let f = sqlite_fixture().await;
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
            post(format!("/webhooks/pigeonpost/{postmark}"), "secret-postmark", delivery.clone()),
            StatusCode::NOT_FOUND,
            "no provider",
        ),
    ];
    for (request, status, reason) in cases {
        let (got, body) = f.call(request).await;
        assert_eq!(got, status, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(reason), "{body}");
        assert_eq!(f.store.depth(QueueName::Events).unwrap(), 0, "nothing enqueued for {reason}");
    }
    // And the same body with the right secret goes through.
    let (ok, _) = f.call(post(format!("/webhooks/postmark/{postmark}"), "secret-postmark", delivery)).await;
    assert_eq!(ok, StatusCode::OK);
    assert_eq!(f.store.depth(QueueName::Events).unwrap(), 1);
}

#[tokio::test]
async fn the_api_shows_a_workspace_only_its_own_data() {
    let f = sqlite_fixture().await;
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    drain(&f.store).await;
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

/// Records the URLs the ingest fetched.
#[derive(Clone, Default)]
struct Recording(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl tidings_core::ports::Fetcher for Recording {
    async fn get(&self, url: &str) -> Result<Vec<u8>, tidings_core::ports::FetchError> {
        self.0.lock().unwrap().push(url.to_owned());
        Ok(b"<ConfirmSubscriptionResponse/>".to_vec())
    }
}

#[tokio::test]
async fn sns_subscriptions_are_confirmed_only_for_allow_listed_topics() {
    use tidings_core::pipeline::{Ingest, IngestRequest};
    use tidings_core::{Headers, Timestamp, Transport};
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let fetched = Recording::default();
    let ingest = Ingest::new(db.clone(), db.clone(), fetched.clone());
    let body = std::fs::read(events_dir().join("ses/subscription-confirmation.json")).unwrap();
    let headers = Headers::new();
    let request = |source: &'static str| IngestRequest {
        provider: ProviderId::Ses,
        source_id: source,
        body: &body,
        headers: &headers,
        query: None,
        transport: Transport::Queue,
        received_at: Timestamp::now(),
    };
    let allowed: &'static str = Box::leak(f.source(ProviderId::Ses).id.clone().into_boxed_str());
    let response = ingest.handle(request(allowed)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let urls = fetched.0.lock().unwrap().clone();
    assert_eq!(urls.len(), 1);
    assert!(urls[0].starts_with("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"), "{urls:?}");

    // A source that does not list the topic refuses the message and confirms nothing.
    let mut other = f.source(ProviderId::Ses).clone();
    other.id = "src_other_topics".into();
    other.allowed_topics = vec!["arn:aws:sns:eu-west-1:111122223333:something-else".into()];
    tidings_core::ports::SourceStore::put_source(&db, &other).await.unwrap();
    let response = ingest.handle(request("src_other_topics")).await;
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(fetched.0.lock().unwrap().len(), 1, "no confirmation for a topic not on the list");
}

#[tokio::test]
async fn each_ingest_function_serves_only_its_provider() {
    use tidings_core::pipeline::Ingest;
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let only_postmark = tidings_ingest::router(
        Ingest::new(db.clone(), db.clone(), common::Offline),
        tidings_ingest::Options { queue_route: false, only: Some(ProviderId::Postmark) },
    );
    let brevo = f.source(ProviderId::Brevo).id.clone();
    let request = Request::post(format!("/webhooks/brevo/{brevo}")).body(Body::from("{}")).unwrap();
    let response = tower::ServiceExt::oneshot(only_postmark, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Serves the real SNS certificate for its URL, and counts fetches.
#[derive(Clone, Default)]
struct CertServer(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl tidings_core::ports::Fetcher for CertServer {
    async fn get(&self, url: &str) -> Result<Vec<u8>, tidings_core::ports::FetchError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = url.rsplit('/').next().unwrap_or_default();
        let path = events_dir().join("../functions/core/tests/vectors").join(format!("sns_cert_{name}"));
        std::fs::read(&path).map_err(|e| tidings_core::ports::FetchError::Transport(format!("{}: {e}", path.display())))
    }
}

#[tokio::test]
async fn real_signed_sns_messages_are_verified_over_https_with_a_fetched_and_cached_certificate() {
    use tidings_core::pipeline::{Ingest, IngestRequest};
    use tidings_core::{Headers, Timestamp, Transport};
    let db = Sqlite::in_memory().unwrap();
    let vectors = events_dir().join("../functions/core/tests/vectors");
    let message = std::fs::read(vectors.join("sns_real_signed_v1_sha1.json")).unwrap();
    let topic = "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362";
    let mut source = fixture(db.clone(), db.clone()).await.source(ProviderId::Ses).clone();
    source.id = "src_real_sns".into();
    source.allowed_topics = vec![topic.into()];
    tidings_core::ports::SourceStore::put_source(&db, &source).await.unwrap();
    let fetches = CertServer::default();
    let ingest = Ingest::new(db.clone(), db.clone(), fetches.clone());
    let headers = Headers::new();
    let request = |body: &'static [u8]| IngestRequest {
        provider: ProviderId::Ses,
        source_id: "src_real_sns",
        body,
        headers: &headers,
        query: None,
        transport: Transport::Http,
        received_at: Timestamp::now(),
    };
    let message: &'static [u8] = Box::leak(message.into_boxed_slice());
    for _ in 0..3 {
        let response = ingest.handle(request(message)).await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(response.body["notices"][0].as_str().unwrap().contains("not an event record of this provider"));
    }
    assert_eq!(fetches.0.load(std::sync::atomic::Ordering::Relaxed), 1, "the certificate is fetched once, then cached");

    // The same signed message on a source that does not list its topic: refused, and no
    // certificate is fetched for it.
    let mut elsewhere = source.clone();
    elsewhere.id = "src_other_topic".into();
    elsewhere.allowed_topics = vec!["arn:aws:sns:us-east-2:295079676684:another".into()];
    tidings_core::ports::SourceStore::put_source(&db, &elsewhere).await.unwrap();
    let fresh = CertServer::default();
    let other_ingest = Ingest::new(db.clone(), db.clone(), fresh.clone());
    let response = other_ingest.handle(IngestRequest { source_id: "src_other_topic", ..request(message) }).await;
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(fresh.0.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing fetched for a topic not allowed");

    let tampered: &'static [u8] = Box::leak(
        String::from_utf8(message.to_vec())
            .unwrap()
            .replace("Hello world", "Hello World")
            .into_bytes()
            .into_boxed_slice(),
    );
    let response = ingest.handle(request(tampered)).await;
    assert_eq!(response.status, 401, "{}", response.body);
    assert_eq!(db.depth(QueueName::Events).unwrap(), 0);
}

#[tokio::test]
async fn an_operator_redrives_dead_letters_back_to_their_queue_and_others_may_not() {
    let f = sqlite_fixture().await;
    let db = &f.store;
    let body = serde_json::to_string(&tidings_tests::event(
        common::WS,
        tidings_core::Status::Delivered,
        "m-dead",
        "a@example.com",
        1,
        "dlq",
    ))
    .unwrap();
    db.dead_letter(QueueName::Events, &body, "store was down", 5).unwrap();
    let call = |method: &str, uri: &str, key: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("Authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };

    // Dead-letter queues hold every workspace's messages: a tenant's key cannot touch them.
    let (status, reply) = f.call(call("POST", "/api/queues/events/redrive", "key-other")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert_eq!(db.dead_letters(QueueName::Events).unwrap().len(), 1);
    let (status, reply) = f.call(call("POST", "/api/queues/nowhere/redrive", "key-default")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");

    let (status, reply) = f.call(call("GET", "/api/queues/events/dead-letters", "key-default")).await;
    assert_eq!((status, reply["waiting"].as_u64()), (StatusCode::OK, Some(1)), "{reply}");
    let (status, reply) = f.call(call("POST", "/api/queues/events/redrive?method=manual", "key-default")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!((reply["moved"].as_u64(), reply["waiting"].as_u64()), (Some(1), Some(0)), "{reply}");
    assert_eq!(drain(db).await, 1, "the dead letter is processed again");
    let (status, _) = f.call(call("GET", "/api/messages/m-dead", "key-default")).await;
    assert_eq!(status, StatusCode::OK, "and stored");
}

#[tokio::test]
async fn without_a_public_url_source_urls_use_the_host_the_api_was_called_on() {
    use tidings_core::ports::ApiKey;
    use tower::ServiceExt;
    let db = Sqlite::in_memory().unwrap();
    let hash = tidings_api::api_key_hash("key-host");
    db.put_api_key(&ApiKey {
        id: "k".into(),
        workspace: "ws_host".into(),
        hash,
        created_at: tidings_core::Timestamp::now(),
    })
    .await
    .unwrap();
    let app = tidings_api::router(db.clone(), db, tidings_api::Settings::default());
    let request = Request::post("/api/sources")
        .header("Host", "abc123.execute-api.eu-west-1.amazonaws.com")
        .header("Authorization", "Bearer key-host")
        .header("Content-Type", "application/json")
        .body(Body::from(r#"{"provider": "postmark"}"#))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let view: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let url = view["url"].as_str().unwrap();
    assert!(url.starts_with("https://abc123.execute-api.eu-west-1.amazonaws.com/webhooks/postmark/src_"), "{url}");
}

#[tokio::test]
async fn a_batch_larger_than_one_enqueue_chunk_is_queued_whole_and_stored_once() {
    let f = sqlite_fixture().await;
    // 250 events: two full chunks of `ENQUEUE_CHUNK` (100) and a partial one.
    let batch: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            serde_json::json!({
                "email": format!("user{i}@example.com"),
                "timestamp": 1_764_000_000 + i,
                "event": "delivered",
                "sg_event_id": format!("chunked-{i:03}"),
                "sg_message_id": format!("msg-{i:03}.filter0001"),
            })
        })
        .collect();
    assert!(batch.len() > 2 * tidings_core::pipeline::ENQUEUE_CHUNK);
    let body = serde_json::to_vec(&batch).unwrap();
    let (status, answer) = f.post_signed(ProviderId::Sendgrid, body, tidings_core::Headers::new()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 250);
    let queued = f.store.peek(QueueName::Events).unwrap();
    assert_eq!(queued.len(), 250, "every event is queued, once");
    let raws: std::collections::BTreeSet<String> = queued
        .iter()
        .map(|(_, body)| {
            let message: tidings_core::ports::QueuedEvent = serde_json::from_str(body).unwrap();
            message.raw
        })
        .collect();
    assert_eq!(raws.len(), 250, "each message carries its own record");
    assert!(raws.iter().all(|raw| raw.starts_with('{') && raw.contains("chunked-")));
    assert_eq!(drain(&f.store).await, 250);
    assert_eq!(f.stored_ids().await.len(), 250, "each event stored once");
}

#[tokio::test]
async fn unknown_source_ids_cost_bounded_memory_and_bounded_log_lines() {
    use tidings_core::pipeline::{Ingest, IngestRequest, SOURCE_CACHE_ENTRIES};
    use tidings_core::{Headers, Timestamp, Transport};
    let db = Sqlite::in_memory().unwrap();
    let _f = fixture(db.clone(), db.clone()).await;
    let ingest = Ingest::new(db.clone(), db.clone(), common::Offline);
    let headers = Headers::new();
    fn request<'a>(source_id: &'a str, headers: &'a Headers) -> IngestRequest<'a> {
        IngestRequest {
            provider: ProviderId::Postmark,
            source_id,
            body: b"{}",
            headers,
            query: None,
            transport: Transport::Http,
            received_at: Timestamp::now(),
        }
    }
    // An id no source can have (65 KB): refused before any lookup, with a short reason.
    let long = "x".repeat(65_536);
    let response = ingest.handle(request(&long, &headers)).await;
    assert_eq!(response.status, 404);
    assert!(response.body["error"].as_str().unwrap().len() < 200, "{}", response.body);
    assert_eq!(ingest.cached_sources(), 0, "nothing remembered for it");
    // Many distinct ids that could be sources: each looked up, the cache within its bound.
    for i in 0..SOURCE_CACHE_ENTRIES + 300 {
        let id = format!("src_missing_{i}");
        assert_eq!(ingest.handle(request(&id, &headers)).await.status, 404);
    }
    assert!(ingest.cached_sources() <= SOURCE_CACHE_ENTRIES, "{} cached", ingest.cached_sources());
}

/// A text message of STOP (or Twilio's `OptOutType=STOP`) suppresses its sender's number on its
/// channel, and START lifts it again when it comes later; HELP and ordinary replies change
/// nothing. Twilio sends no event time, so the order is the order of arrival.
#[tokio::test]
async fn sms_and_whatsapp_opt_outs_update_the_suppression_list_for_the_sender() {
    use tidings_core::ports::{EventStore, QueuedEvent};
    use tidings_core::providers::NormalizeContext;
    use tidings_core::{Headers, Timestamp, Webhook};
    let store = Sqlite::in_memory().unwrap();
    let provider = ProviderId::Twilio.provider();
    let record = |name: &'static str, second: i64| {
        let store = store.clone();
        async move {
            let body = std::fs::read(events_dir().join("twilio").join(name)).unwrap();
            let received_at = Timestamp::from_unix_seconds(1_795_000_000 + second).unwrap();
            let ctx = NormalizeContext { workspace: "ws_optout", received_at };
            let headers = Headers::new();
            let normalized = provider.normalize(&Webhook::http(&body, &headers), &ctx).unwrap();
            for e in normalized.events {
                let queued = QueuedEvent { event: e.event, raw: e.raw.to_string(), source: "src_twilio".into() };
                store.record(&queued, Timestamp::from_unix_seconds(1_900_000_000).unwrap().into()).await.unwrap();
            }
        }
    };
    let suppressed = || async {
        let list = store.suppressions("ws_optout").await.unwrap();
        list.into_iter().map(|s| (s.recipient, s.reason.as_str())).collect::<Vec<_>>()
    };

    record("received-not-a-keyword.form", 0).await;
    record("received-optouttype-help.form", 1).await;
    assert!(suppressed().await.is_empty(), "a reply or HELP suppresses no one");

    record("received.form", 2).await;
    record("received-optouttype-stop.form", 3).await;
    assert_eq!(
        suppressed().await,
        [("+15558675310".to_owned(), "unsubscribe"), ("+33612345678".to_owned(), "unsubscribe")],
        "STOP, and a custom keyword Twilio reports as OptOutType=STOP, suppress the sender"
    );
    record("received-start.form", 4).await;
    assert_eq!(suppressed().await, [("+33612345678".to_owned(), "unsubscribe")], "START lifts it");
    record("whatsapp-received-stop.form", 5).await;
    assert_eq!(suppressed().await.len(), 2, "a WhatsApp STOP suppresses the number again");
}

#[tokio::test]
async fn url_checks_by_get_are_answered_whatsapps_with_the_challenge_for_the_listed_verify_token() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let source = f.source(ProviderId::Whatsapp).id.clone();
    let list = Request::get("/api/sources").header("Authorization", "Bearer key-default").body(Body::empty()).unwrap();
    let (_, listed) = f.call(list).await;
    let token = listed["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == source.as_str())
        .and_then(|s| s["verify_token"].as_str())
        .expect("the WhatsApp source lists its verify token")
        .to_owned();
    let answer = |query: String| {
        let app = f.app.clone();
        async move {
            let request = Request::get(format!("/webhooks/whatsapp/{query}")).body(Body::empty()).unwrap();
            let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (status, text) =
        answer(format!("{source}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}")).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "1158201444"), "Meta expects the challenge echoed back");
    let (status, text) = answer(format!("{source}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.starts_with("whatsapp: "), "{text}");
    let (status, _) = answer(format!("src_nope?hub.mode=subscribe&hub.challenge=1&hub.verify_token={token}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Unisender Go checks its URL with a bare GET, wanting a 200.
    let unisender = f.source(ProviderId::Unisender).id.clone();
    let request = Request::get(format!("/webhooks/unisender/{unisender}")).body(Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(f.app.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Providers that only post do not answer GET, and nothing is ever enqueued by one.
    let postmark = f.source(ProviderId::Postmark).id.clone();
    let request = Request::get(format!("/webhooks/postmark/{postmark}")).body(Body::empty()).unwrap();
    let response = tower::ServiceExt::oneshot(f.app.clone(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(drain(&db).await, 0);
}

#[tokio::test]
async fn every_administrative_change_is_audited_in_its_workspace_without_secrets() {
    use serde_json::Value;
    let f = sqlite_fixture().await;
    let send = |method: &str, uri: &str, key: &str, body: Option<Value>| {
        let request = Request::builder().method(method).uri(uri).header("Authorization", format!("Bearer {key}"));
        match body {
            Some(body) => {
                request.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
            }
            None => request.body(Body::empty()).unwrap(),
        }
    };
    let created = f
        .call(send(
            "POST",
            "/api/subscriptions",
            "key-default",
            Some(serde_json::json!({"url": "https://example.com/hook", "types": ["email.*"]})),
        ))
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let id = created.1["id"].as_str().unwrap().to_owned();
    let secret = created.1["secret"].as_str().unwrap().to_owned();
    let rotated = f.call(send("POST", &format!("/api/subscriptions/{id}/rotate"), "key-default", None)).await;
    assert_eq!(rotated.0, StatusCode::OK);
    let refused =
        f.call(send("POST", "/api/subscriptions", "key-default", Some(serde_json::json!({"url": "ftp://x"})))).await;
    assert_eq!(refused.0, StatusCode::BAD_REQUEST);
    let lift = f.call(send("DELETE", "/api/suppressions/someone@example.com", "key-default", None)).await;
    assert_eq!(lift.0, StatusCode::NOT_FOUND);
    assert_eq!(f.call(send("GET", "/api/events", "key-default", None)).await.0, StatusCode::OK);
    assert_eq!(f.call(send("POST", "/api/subscriptions", "no-such-key", None)).await.0, StatusCode::UNAUTHORIZED);

    let (status, log) = f.call(send("GET", "/api/audit?limit=10", "key-default", None)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let actions: Vec<(String, String, Value)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned(), e["target"].clone())
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("DELETE /api/suppressions/{recipient}".into(), "refused".into(), Value::Null),
            ("POST /api/subscriptions".into(), "refused".into(), Value::Null),
            ("POST /api/subscriptions/{id}/rotate".into(), "succeeded".into(), Value::String(id.clone())),
            ("POST /api/subscriptions".into(), "succeeded".into(), Value::Null),
        ],
        "writes only, newest first, reads and unauthenticated calls left out"
    );
    let text = log.to_string();
    assert!(!text.contains(&secret) && !text.contains("someone@example.com"), "no secret, no recipient: {text}");
    // The fixture's key has the id `key-default`: entries name keys by id.
    assert!(log["entries"].as_array().unwrap().iter().all(|e| e["key"] == "key-default"));
    let (_, theirs) = f.call(send("GET", "/api/audit", "key-other", None)).await;
    assert!(theirs["entries"].as_array().unwrap().is_empty(), "another workspace sees none of it");
    assert_eq!(f.call(send("GET", "/api/audit?cursor=nope", "key-default", None)).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_recipient_s_export_holds_everything_stored_about_them_and_is_audited() {
    use std::collections::BTreeSet;
    let f = sqlite_fixture().await;
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    drain(&f.store).await;
    let get = |uri: &str, key: &str| {
        Request::get(uri).header("Authorization", format!("Bearer {key}")).body(Body::empty()).unwrap()
    };
    let (status, listed) = f.call(get("/api/events?recipient=nobody@example.com&limit=1000", "key-default")).await;
    assert_eq!(status, StatusCode::OK);
    let stored: BTreeSet<String> =
        listed["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert!(!stored.is_empty());

    let (status, export) = f.call(get("/api/recipients/NoBody@Example.com/export", "key-default")).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["recipient"], "nobody@example.com", "the address in the form events keep it");
    let exported: BTreeSet<String> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["event"]["data"]["recipient"], "nobody@example.com");
            assert!(
                e["raw"].as_str().is_some_and(|raw| raw.contains("nobody@example.com")),
                "with its provider record"
            );
            e["event"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(exported, stored, "every event of the recipient, and only theirs");
    assert_eq!(export["complete"], true);
    assert!(!export["message_states"].as_array().unwrap().is_empty());
    assert!(export["message_states"].as_array().unwrap().iter().all(|s| s["recipient"] == "nobody@example.com"));
    assert_eq!(export["suppression"]["recipient"], "nobody@example.com", "the hard bounce's suppression entry");

    let (_, theirs) = f.call(get("/api/recipients/nobody@example.com/export", "key-other")).await;
    assert!(theirs["events"].as_array().unwrap().is_empty(), "another workspace's export holds nothing");
    assert!(theirs["suppression"].is_null());

    let (_, log) = f.call(get("/api/audit", "key-default")).await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries[0]["action"], "GET /api/recipients/{recipient}/export", "an export is an audited action");
    assert!(!log.to_string().contains("nobody@example.com"), "the audit log does not name the recipient");
}

#[tokio::test]
async fn privacy_settings_redact_at_ingest_and_an_erasure_through_the_api_is_audited_without_the_recipient() {
    use serde_json::{Value, json};
    let f = sqlite_fixture().await;
    let send = |method: &str, uri: &str, body: Option<Value>| {
        let builder = Request::builder().method(method).uri(uri).header("Authorization", "Bearer key-default");
        match body {
            Some(body) => builder.header("Content-Type", "application/json").body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap()
    };
    let (status, refused) =
        f.call(send("PUT", "/api/privacy/settings", Some(json!({"retention_days": 0, "version": 0})))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"].as_str().unwrap().starts_with("retention_days:"), "{refused}");
    let wanted = json!({"redact_ip": true, "redact_user_agent": true, "raw_retention_days": 0, "version": 0});
    let (status, stored) = f.call(send("PUT", "/api/privacy/settings", Some(wanted.clone()))).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["version"], 1);
    let (status, _) = f.call(send("PUT", "/api/privacy/settings", Some(wanted))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a change over a stale version is refused");

    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    drain(&f.store).await;
    let (_, opens) = f.call(send("GET", "/api/events?type=email.opened&limit=100", None)).await;
    let opens = opens["events"].as_array().unwrap();
    assert!(!opens.is_empty());
    for open in opens {
        assert!(open["data"].get("ip").is_none() && open["data"].get("user_agent").is_none(), "{open}");
        let uri = format!(
            "/api/events/{}/raw?message={}",
            open["id"].as_str().unwrap(),
            open["data"]["message_id"].as_str().unwrap()
        );
        let (status, why) = f.call(send("GET", &uri, None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the provider's record was not kept: {why}");
    }

    let (status, erased) = f.call(send("DELETE", "/api/recipients/Jane.Doe@Example.com", None)).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert!(erased["events"].as_u64().unwrap() >= 5, "{erased}");
    assert_eq!(erased["complete"], true);
    let (_, again) = f.call(send("DELETE", "/api/recipients/jane.doe@example.com", None)).await;
    assert_eq!((again["events"].as_u64(), again["hash"].clone()), (Some(0), erased["hash"].clone()), "idempotent");
    let (_, listed) = f.call(send("GET", "/api/events?recipient=jane.doe@example.com", None)).await;
    assert!(listed["events"].as_array().unwrap().is_empty());
    let (status, _) = f.call(send("DELETE", "/api/recipients/", None)).await;
    assert!(status.is_client_error());

    let (_, log) = f.call(send("GET", "/api/audit", None)).await;
    let actions: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "DELETE /api/recipients/{recipient}").count(), 2, "{actions:?}");
    assert!(actions.contains(&"PUT /api/privacy/settings"));
    assert!(!log.to_string().to_lowercase().contains("jane.doe"), "the audit log does not name the recipient");
}

#[tokio::test]
async fn a_subscription_s_filter_is_checked_when_it_is_made_and_shown_after() {
    use serde_json::json;
    let f = sqlite_fixture().await;
    let create = |body: serde_json::Value| {
        Request::post("/api/subscriptions")
            .header("Authorization", "Bearer key-default")
            .header("Content-Type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, refused) = f
        .call(create(
            json!({"url": "https://example.com/hook", "types": ["*"], "filter": "data.bounce.kind = \"hard\""}),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["field"], "filter");
    assert!(refused["error"].as_str().unwrap().starts_with("filter: unexpected '=' at character 18"), "{refused}");
    let filter = r#"data.mailbox_provider in ["gmail", "yahoo"] and not data.test == true"#;
    let (status, created) =
        f.call(create(json!({"url": "https://example.com/hook", "types": ["email.*"], "filter": filter}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["filter"], filter);
}
