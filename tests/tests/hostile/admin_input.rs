//! What a hurried operator or an attacker sends the admin API and the webhook routes, and the
//! one-line 4xx each gets: weak or malformed source secrets, unbounded tolerances, unknown
//! fields, control characters in subscription headers, malformed pagination cursors, and Twilio
//! parameters re-split under the same signature. Nothing is stored or enqueued for any of them.

use crate::common::{self, Fixture, fixture};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tidings_core::ProviderId;
use tidings_core::ports::QueueName;
use tidings_core::ports::SourceStore;
use tidings_core::ports::SubscriptionStore;
use tidings_local::Sqlite;

async fn sqlite_fixture() -> Fixture<Sqlite> {
    let db = Sqlite::in_memory().unwrap();
    fixture(db.clone(), db).await
}

fn post_json(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("Authorization", "Bearer key-default")
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).header("Authorization", "Bearer key-default").body(Body::empty()).unwrap()
}

/// Sends `request`; it must be refused with 400 and a reason containing `names`.
async fn refused(f: &Fixture<Sqlite>, request: Request<Body>, names: &str) {
    let (status, body) = f.call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{names}: {body}");
    let reason = body["error"].as_str().unwrap_or_default();
    assert!(reason.contains(names), "{names}: {reason}");
    assert!(!reason.contains('\n'), "one line: {reason}");
}

#[tokio::test]
async fn weak_or_malformed_source_secrets_are_refused_when_the_source_is_made() {
    let f = sqlite_fixture().await;
    let before = f.store.sources(common::WS).await.unwrap().len();
    for (provider, secret, names) in [
        ("postmark", "", "at least 16"),
        ("postmark", "short", "at least 16"),
        ("postmark", "has a space in it somewhere", "space"),
        ("activereach", "", "at least 16"),
        ("mailgun", "key-1", "at least 16"),
        ("twilio", "tok", "at least 16"),
        ("resend", "whsec_dGVzdA==", "24 to 64"),
        ("resend", "not-whsec-at-all-but-long-enough", "whsec_"),
        ("sendgrid", "not a key", "P-256"),
    ] {
        let request = post_json("/api/sources", json!({"provider": provider, "secret": secret}));
        refused(&f, request, names).await;
    }
    assert_eq!(f.store.sources(common::WS).await.unwrap().len(), before, "no source was made");
    // Sensible ones are taken.
    for (provider, secret) in [
        ("postmark", "a-long-enough-shared-secret"),
        ("resend", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("twilio", "f2a9c1d83e7b4c5a9d0e1f2a3b4c5d6e"),
    ] {
        let (status, body) = f.call(post_json("/api/sources", json!({"provider": provider, "secret": secret}))).await;
        assert_eq!(status, StatusCode::CREATED, "{provider}: {body}");
    }
}

#[tokio::test]
async fn an_empty_credential_never_opens_a_source() {
    let f = sqlite_fixture().await;
    // A source stored with an empty secret before secrets were checked.
    let mut source = f.source(ProviderId::Postmark).clone();
    source.id = "src_empty_secret".into();
    source.secrets = vec![String::new()];
    f.store.put_source(&source).await.unwrap();
    let body = std::fs::read(common::events_dir().join("postmark/delivery.json")).unwrap();
    for (uri, header) in
        [("/webhooks/postmark/src_empty_secret?token=", None), ("/webhooks/postmark/src_empty_secret", Some(""))]
    {
        let mut request = Request::post(uri).header("Content-Type", "application/json");
        if let Some(value) = header {
            request = request.header("X-Tidings-Token", value);
        }
        let (status, answer) = f.call(request.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {answer}");
    }
    assert_eq!(f.store.depth(QueueName::Events).unwrap(), 0);
}

#[tokio::test]
async fn tolerances_are_bounded() {
    let f = sqlite_fixture().await;
    let secret = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    for tolerance in [0_u64, 172_801, u64::MAX] {
        let request =
            post_json("/api/sources", json!({"provider": "mailgun", "secret": secret, "tolerance_seconds": tolerance}));
        refused(&f, request, "tolerance_seconds").await;
    }
    let (status, _) = f
        .call(post_json("/api/sources", json!({"provider": "mailgun", "secret": secret, "tolerance_seconds": 3600})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_fields_in_admin_writes_are_named_not_ignored() {
    let f = sqlite_fixture().await;
    let subscription = json!({"url": "https://hooks.example.com/t", "types": ["*"], "rate_limt": 10});
    refused(&f, post_json("/api/subscriptions", subscription), "rate_limt").await;
    let source = json!({"provider": "postmark", "secert": "a-long-enough-shared-secret"});
    refused(&f, post_json("/api/sources", source), "secert").await;
    refused(&f, post_json("/api/subscriptions", json!({"url": 7, "types": ["*"]})), "url").await;
    assert!(f.store.subscriptions(common::WS).await.unwrap().is_empty());
}

#[tokio::test]
async fn subscription_headers_with_control_characters_are_refused() {
    let f = sqlite_fixture().await;
    for header in ["X-A: a\u{0}b", "X-A: a\u{1b}[2Jb", "X-A: a\u{7f}"] {
        let request = post_json(
            "/api/subscriptions",
            json!({"url": "https://hooks.example.com/t", "types": ["*"], "headers": [header]}),
        );
        refused(&f, request, "control character").await;
    }
    assert!(f.store.subscriptions(common::WS).await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_cursors_are_a_400_naming_the_cursor() {
    let f = sqlite_fixture().await;
    for cursor in
        ["abc:def", ":", "99999999999999999999999:evt_0", "1:evt_zz", "1", "-5:evt_00000000000000000000000000000000"]
    {
        let query = form_urlencoded::Serializer::new(String::new()).append_pair("cursor", cursor).finish();
        refused(&f, get(&format!("/api/events?{query}")), "cursor").await;
    }
    let (status, body) = f.call(get("/api/events?cursor=1764311400000:evt_00000000000000000000000000000000")).await;
    assert_eq!(status, StatusCode::OK, "a well-formed cursor: {body}");
}

#[tokio::test]
async fn twilio_parameters_resplit_under_the_same_signature_are_refused() {
    use tidings_core::auth::signer::{self, SigningKey};
    let f = sqlite_fixture().await;
    let source = f.source(ProviderId::Twilio).clone();
    let url = source.public_url.clone().unwrap();
    let path = url.strip_prefix(common::BASE).unwrap().to_owned();
    // Twilio MACs names and values run together: `ErrorCode=30003X` + `Y=` signs the same bytes as
    // `ErrorCode=30003` + `XY=`, and `To=+1555…` with no To at all can be built the same way.
    for (form, names) in [
        (
            "AccountSid=AC1&From=%2B15005550006&To=%2B15558675310&MessageSid=SM1&MessageStatus=undelivered&ErrorCode=3000x",
            "ErrorCode",
        ),
        ("AccountSid=AC1&From=%2B15005550006&MessageSid=SM1&MessageStatus=delivered&T=o%2B15558675310", "`To`"),
        ("From=%2B15005550006&To=%2B15558675310&MessageSid=SM1&MessageStatus=delivered", "`AccountSid`"),
    ] {
        let mut headers = tidings_core::Headers::new();
        let key = SigningKey { secret: &source.secrets[0], public_url: Some(&url) };
        signer::sign(ProviderId::Twilio, form.as_bytes(), &mut headers, &key, tidings_core::Timestamp::now()).unwrap();
        let mut request = Request::post(path.as_str()).header("Content-Type", "application/x-www-form-urlencoded");
        for (name, value) in headers.iter() {
            request = request.header(name, value);
        }
        let (status, body) = f.call(request.body(Body::from(form)).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form}: {body}");
        assert!(body["error"].as_str().unwrap().contains(names), "{body}");
    }
    assert_eq!(f.store.depth(QueueName::Events).unwrap(), 0);
}

#[tokio::test]
async fn a_refused_field_is_named_in_the_answer_for_code_too() {
    let f = sqlite_fixture().await;
    let subscription = |extra: Value| {
        let mut body = json!({"url": "https://hooks.example.com/t", "types": ["*"]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        post_json("/api/subscriptions", body)
    };
    for (request, field) in [
        (subscription(json!({"url": "ftp://hooks.example.com/t"})), "url"),
        (subscription(json!({"types": ["Email.*"]})), "types"),
        (subscription(json!({"headers": ["Webhook-Signature: x"]})), "headers"),
        (subscription(json!({"anonymous_id": "recipient"})), "anonymous_id"),
        (post_json("/api/sources", json!({"provider": "postmark", "secret": "short"})), "secret"),
        (
            post_json(
                "/api/sources",
                json!({"provider": "mailgun", "secret": "key-3ax6xnjp29jd6fds4gc373sgvjxteol0", "tolerance_seconds": 0}),
            ),
            "tolerance_seconds",
        ),
        (get("/api/events?cursor=1"), "cursor"),
        (get("/api/events?type=Email.*"), "type"),
    ] {
        let (status, body) = f.call(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty() && !e.contains('\n')), "{body}");
    }
    assert!(f.store.subscriptions(common::WS).await.unwrap().is_empty());
}
