//! The console's rules, at the HTTP level over SQLite: who may see a page, which forms are
//! accepted, and what a page may never show. The browser test (tests/console) covers the flow.

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use common::{Fixture, events_dir, fixture};
use tidings_core::ProviderId;
use tidings_core::pipeline::Processor;
use tidings_core::ports::QueueName;
use tidings_core::ports::SubscriptionStore;
use tidings_local::Sqlite;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn set_cookie(&self) -> &str {
        self.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let start = self.body.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + 19;
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

async fn call(f: &Fixture<Sqlite>, method: &str, uri: &str, key: Option<&str>, form: Option<&str>) -> Answer {
    call_with(f, method, uri, key, form, &[]).await
}

/// A browser's request: the session cookie for `key`, a form body, and extra headers.
async fn call_with(
    f: &Fixture<Sqlite>,
    method: &str,
    uri: &str,
    key: Option<&str>,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri).header(header::HOST, "console.test");
    if let Some(key) = key {
        request = request.header(header::COOKIE, format!("theme=dark; tidings_console={key}"));
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let response = f.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

async fn sqlite_fixture() -> Fixture<Sqlite> {
    let db = Sqlite::in_memory().unwrap();
    fixture(db.clone(), db).await
}

async fn drain(db: &Sqlite) {
    let processor = Processor::new(db.clone(), 90);
    loop {
        let batch = db.receive(QueueName::Events, 10, 30).unwrap();
        if batch.is_empty() {
            return;
        }
        for message in batch {
            processor.process(&message.body).await.unwrap();
            db.delete(QueueName::Events, &message.receipt).unwrap();
        }
    }
}

/// A browser's form POST (urlencoded `pairs`) with the session cookie for `key`.
async fn submit(f: &Fixture<Sqlite>, uri: &str, key: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
    call(f, "POST", uri, key, Some(&form(pairs))).await
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(pairs);
    serializer.finish()
}

#[tokio::test]
async fn pages_need_a_session_from_a_known_key() {
    let f = sqlite_fixture().await;
    let signed_out = call(&f, "GET", "/console/events", None, None).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_out.location(), "/console/login");

    let wrong = call(&f, "POST", "/console/login", None, Some("key=key-nobody")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not known"), "{}", wrong.body);
    assert!(wrong.set_cookie().is_empty());
    // A key that would break out of its cookie is refused before any lookup.
    let injected = submit(&f, "/console/login", None, &[("key", "key-default; Domain=evil")]).await;
    assert_eq!(injected.status, StatusCode::UNAUTHORIZED);

    let signed_in = call(&f, "POST", "/console/login", None, Some("key=key-default")).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = signed_in.set_cookie();
    for part in ["tidings_console=key-default", "HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    // The fixture serves plain http://, as `tidings dev` does: a Secure cookie would never
    // come back. Anywhere else the cookie is Secure.
    assert!(common::BASE.starts_with("http://") && !cookie.contains("Secure"), "{cookie}");
    let https = tidings_api::router(f.store.clone(), f.store.clone(), tidings_api::Settings::default());
    let request = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("key=key-default"))
        .unwrap();
    let response = https.oneshot(request).await.unwrap();
    let cookie = response.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    let page = call(&f, "GET", "/console/events", Some("key-default"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("key-default"), "the key is never written into a page");
    let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    // A key revoked (or never known) since the cookie was set: back to sign-in, cookie cleared.
    let stale = call(&f, "GET", "/console/events", Some("key-revoked"), None).await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert!(stale.set_cookie().contains("Max-Age=0"), "{}", stale.set_cookie());
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_the_console_origin() {
    let f = sqlite_fixture().await;
    let page = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await;
    let csrf = page.csrf();
    let new = |token: &str| form(&[("csrf", token), ("url", "https://example.com/hook"), ("types", "email.*")]);

    let missing = call(&f, "POST", "/console/subscriptions", Some("key-default"), Some(&new(""))).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("CSRF"), "{}", missing.body);
    // Another workspace's token does not work in this session.
    let other_page = call(&f, "GET", "/console/subscriptions", Some("key-other"), None).await;
    let stolen = call(&f, "POST", "/console/subscriptions", Some("key-default"), Some(&new(&other_page.csrf()))).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    for (name, value) in [("Origin", "https://evil.example"), ("Origin", "null"), ("Sec-Fetch-Site", "cross-site")] {
        let cross =
            call_with(&f, "POST", "/console/subscriptions", Some("key-default"), Some(&new(&csrf)), &[(name, value)])
                .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN, "{name}: {value}");
    }
    assert_eq!(subscription_count(&f).await, 0, "no refused form created anything");

    let same = [("Origin", "https://console.test"), ("Sec-Fetch-Site", "same-origin")];
    let created = call_with(&f, "POST", "/console/subscriptions", Some("key-default"), Some(&new(&csrf)), &same).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(subscription_count(&f).await, 1);

    let signed_out = submit(&f, "/console/logout", Some("key-default"), &[("csrf", &csrf)]).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert!(signed_out.set_cookie().contains("Max-Age=0"));
}

#[tokio::test]
async fn a_workspace_sees_only_its_own_data_and_no_secret_after_creation() {
    let f = sqlite_fixture().await;
    f.post_sample(ProviderId::Sendgrid, &events_dir().join("sendgrid/batch-every-type.json")).await;
    drain(&f.store).await;
    let message = "qNwBLgPQQjW6DJvKQwSAbw";

    let mine = call(&f, "GET", "/console/events?refresh=off", Some("key-default"), None).await;
    assert!(mine.body.contains(message));
    let timeline = call(&f, "GET", &format!("/console/messages/{message}"), Some("key-default"), None).await;
    assert_eq!(timeline.status, StatusCode::OK);
    assert!(timeline.body.contains("Provider record (sendgrid"), "the raw record is shown");

    let theirs = call(&f, "GET", "/console/events?refresh=off", Some("key-other"), None).await;
    assert!(!theirs.body.contains(message) && theirs.body.contains("No events match."));
    let overview = call(&f, "GET", "/console?window=all", Some("key-other"), None).await;
    assert!(overview.body.contains("No events in the latest events"), "{}", overview.body);
    let peek = call(&f, "GET", &format!("/console/messages/{message}"), Some("key-other"), None).await;
    assert_eq!(peek.status, StatusCode::NOT_FOUND);
    let sources = call(&f, "GET", "/console/sources", Some("key-other"), None).await;
    assert!(!sources.body.contains("src_test_"), "another workspace's sources are not listed");

    // Secrets: a source's never; a subscription's on the page that creates it, then never.
    let sources = call(&f, "GET", "/console/sources", Some("key-default"), None).await;
    assert_eq!(sources.body.matches("/webhooks/").count(), tidings_core::ProviderId::ALL.len());
    for source in &f.sources {
        for secret in source.secrets.iter().chain(&source.dev_signing_key) {
            assert!(!sources.body.contains(secret.as_str()), "{} secret shown", source.provider);
        }
    }
    let csrf = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await.csrf();
    let created = submit(
        &f,
        "/console/subscriptions",
        Some("key-default"),
        &[
            ("csrf", &csrf),
            ("url", "https://example.com/hook"),
            ("types", "email.*, *.complained"),
            ("description", "<script>alert(1)</script>"),
        ],
    )
    .await;
    let secret = created.body.split("whsec_").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let id = created.body.split("/console/subscriptions/").nth(1).unwrap().split('/').next().unwrap().to_owned();
    assert!(!created.body.contains("<script>alert"), "input is escaped");
    let again = call(&f, "GET", &format!("/console/subscriptions/{id}"), Some("key-default"), None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(!again.body.contains(&secret), "the secret is shown once");
    let list = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await;
    assert!(list.body.contains(&id) && !list.body.contains(&secret));
    assert!(list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // A header's value (a Dittofeed write key) is never shown either, not even at creation.
    let dittofeed = submit(
        &f,
        "/console/subscriptions",
        Some("key-default"),
        &[
            ("csrf", &csrf),
            ("url", "https://dittofeed.example/api/public/apps/track"),
            ("types", "*"),
            ("format", "dittofeed"),
            ("header", "Authorization: Basic d3JpdGUta2V5"),
        ],
    )
    .await;
    assert_eq!(dittofeed.status, StatusCode::CREATED, "{}", dittofeed.body);
    assert!(dittofeed.body.contains("Authorization") && !dittofeed.body.contains("d3JpdGUta2V5"));
    let bad = submit(
        &f,
        "/console/subscriptions",
        Some("key-default"),
        &[("csrf", &csrf), ("url", "https://x.example"), ("types", "*"), ("format", "svix")],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("format: unknown format"), "{}", bad.body);

    // Another workspace can neither open nor act on it.
    let other_csrf = call(&f, "GET", "/console/subscriptions", Some("key-other"), None).await.csrf();
    let open = call(&f, "GET", &format!("/console/subscriptions/{id}"), Some("key-other"), None).await;
    assert_eq!(open.status, StatusCode::NOT_FOUND);
    let rotate =
        submit(&f, &format!("/console/subscriptions/{id}/rotate"), Some("key-other"), &[("csrf", &other_csrf)]).await;
    assert_eq!(rotate.status, StatusCode::NOT_FOUND);
    assert!(!rotate.body.contains("whsec_"));

    // Dead-letter queues are every workspace's: operators only.
    let queues = call(&f, "GET", "/console/queues", Some("key-other"), None).await;
    assert!(queues.body.contains("is not one") && !queues.body.contains("Redrive events"));
    let redrive = submit(&f, "/console/queues/events/redrive", Some("key-other"), &[("csrf", &other_csrf)]).await;
    assert_eq!(redrive.status, StatusCode::FORBIDDEN);
    let operator = call(&f, "GET", "/console/queues", Some("key-default"), None).await;
    assert!(operator.body.contains("Redrive events"));
}

#[tokio::test]
async fn a_suppression_is_lifted_only_in_its_own_workspace() {
    let f = sqlite_fixture().await;
    f.post_sample(ProviderId::Postmark, &events_dir().join("postmark/bounce-hard.json")).await;
    drain(&f.store).await;
    let page = call(&f, "GET", "/console/suppressions?q=NOBODY", Some("key-default"), None).await;
    assert!(page.body.contains("nobody@example.com"), "search ignores case");
    let remove = |key: &'static str, csrf: String| {
        let f = &f;
        async move {
            let pairs = [("csrf", csrf.as_str()), ("recipient", "nobody@example.com")];
            submit(f, "/console/suppressions/remove", Some(key), &pairs).await
        }
    };
    let other_csrf = call(&f, "GET", "/console/suppressions", Some("key-other"), None).await.csrf();
    let theirs = remove("key-other", other_csrf).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let mine = remove("key-default", page.csrf()).await;
    assert_eq!(mine.status, StatusCode::SEE_OTHER);
    assert_eq!(mine.location(), "/console/suppressions?done=removed");
    let after = call(&f, "GET", "/console/suppressions?done=removed", Some("key-default"), None).await;
    assert!(after.body.contains("Removed from the suppression list.") && !after.body.contains("nobody@example.com"));
}

async fn subscription_count(f: &Fixture<Sqlite>) -> usize {
    f.store.subscriptions(common::WS).await.unwrap().len()
}

/// The privacy page erases a recipient only when it is typed twice, within the session's own
/// workspace, and says what it removed; the suppression list then shows the hash.
#[tokio::test]
async fn the_privacy_page_erases_a_recipient_typed_twice() {
    use tidings_core::ports::EventStore;
    let f = sqlite_fixture().await;
    f.post_sample(ProviderId::Postmark, &events_dir().join("postmark/bounce-hard.json")).await;
    drain(&f.store).await;
    let page = call(&f, "GET", "/console/privacy", Some("key-default"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Erase a recipient"));
    let erase = |confirm: &'static str, key: &'static str, csrf: String| {
        let f = &f;
        async move {
            let pairs = [("csrf", csrf.as_str()), ("recipient", "nobody@example.com"), ("confirm", confirm)];
            submit(f, "/console/privacy/erase", Some(key), &pairs).await
        }
    };
    let mistyped = erase("nobody@example.org", "key-default", page.csrf()).await;
    assert_eq!(mistyped.status, StatusCode::BAD_REQUEST);
    assert!(mistyped.body.contains("confirm: not the same recipient"));
    assert!(f.store.suppression("ws_default", "nobody@example.com").await.unwrap().is_some(), "nothing was erased");

    let other_csrf = call(&f, "GET", "/console/privacy", Some("key-other"), None).await.csrf();
    let theirs = erase("NoBody@Example.com", "key-other", other_csrf).await;
    assert!(theirs.body.contains("0 events"), "another workspace has nothing of them to erase");
    assert!(f.store.suppression("ws_default", "nobody@example.com").await.unwrap().is_some());

    let done = erase("NoBody@Example.com", "key-default", page.csrf()).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("Erased.") && done.body.contains("1 events"), "{}", done.body);
    assert!(!done.body.contains("nobody@example.com"));
    let listed = call(&f, "GET", "/console/suppressions", Some("key-default"), None).await;
    assert!(listed.body.contains("erased_") && !listed.body.contains("nobody@example.com"));
}

/// A subscription made in the console takes a content filter, refuses one that does not read,
/// and shows it.
#[tokio::test]
async fn a_subscription_made_in_the_console_takes_a_content_filter() {
    let f = sqlite_fixture().await;
    let csrf = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await.csrf();
    let make = |filter: &'static str| {
        let (f, csrf) = (&f, csrf.clone());
        async move {
            let pairs =
                [("csrf", csrf.as_str()), ("url", "https://example.com/hook"), ("types", "*"), ("filter", filter)];
            submit(f, "/console/subscriptions", Some("key-default"), &pairs).await
        }
    };
    let refused = make("data.bounce.kind ==").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("filter: expected a value"), "{}", refused.body);
    let created = make(r#"data.bounce.kind == "hard""#).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.body.contains("data.bounce.kind == &quot;hard&quot;"), "the filter is shown, escaped");
}

/// A subscription made in the console with a pace and a queue destination shows them, refuses
/// numbers out of bounds naming the field, and shows an open circuit in the list and on its page.
#[tokio::test]
async fn the_console_makes_paced_subscriptions_to_queues_and_shows_their_circuit() {
    use tidings_core::ports::SubscriptionStore;
    let f = sqlite_fixture().await;
    let csrf = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await.csrf();
    let queue = "arn:aws:sqs:eu-west-1:111122223333:bounces.fifo";
    let make = |rate: &'static str| {
        let (f, csrf) = (&f, csrf.clone());
        async move {
            let pairs = [
                ("csrf", csrf.as_str()),
                ("url", queue),
                ("types", "*"),
                ("rate_limit", rate),
                ("max_in_flight", "4"),
                ("circuit_failures", "3"),
                ("circuit_failure_rate", "50"),
                ("circuit_window_seconds", ""),
            ];
            submit(f, "/console/subscriptions", Some("key-default"), &pairs).await
        }
    };
    let refused = make("0").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("rate_limit must be between 1 and 500"), "{}", refused.body);
    assert!(make("ten").await.body.contains("rate_limit: &quot;ten&quot; is not a whole number"));
    let created = make("10").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.body.contains(queue));
    assert!(created.body.contains("10 per second, at most 4 in flight"), "{}", created.body);
    assert!(created.body.contains("closed · opens after 3 failures in a row or 50% failed in 300 s"));

    let mut stored = f.store.subscriptions("ws_default").await.unwrap().pop().unwrap();
    stored.circuit.consecutive_failures = 3;
    stored.circuit.open("3 consecutive failed attempts".into(), tidings_core::Timestamp::now());
    assert!(f.store.update_subscription(&stored).await.unwrap());
    let list = call(&f, "GET", "/console/subscriptions", Some("key-default"), None).await;
    assert!(list.body.contains("circuit open"), "{}", list.body);
    let page = call(&f, "GET", &format!("/console/subscriptions/{}", stored.id), Some("key-default"), None).await;
    assert!(page.body.contains("open: 3 consecutive failed attempts"), "{}", page.body);
    assert!(page.body.contains("next probe"));
    assert!(page.body.contains("3 failed attempts in a row"));
}
