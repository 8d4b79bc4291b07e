//! Deliveries against subscribers on loopback: what each kind of answer becomes, and that the
//! guard refuses private and loopback targets (literal, mapped, decimal, octal, or by name)
//! before any connection. Refused addresses other than loopback are never contacted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tidings_core::delivery::Outcome;
use tidings_core::ssrf::Guard;
use tidings_fanout::Deliverer;

/// A subscriber on 127.0.0.1 with one route per behaviour; counts the requests it got.
async fn subscriber() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let count = |hits: Arc<AtomicUsize>| move || hits.fetch_add(1, Ordering::SeqCst);
    let (h1, h2, h3, h4, h5, h6) = (
        count(hits.clone()),
        count(hits.clone()),
        count(hits.clone()),
        count(hits.clone()),
        count(hits.clone()),
        count(hits.clone()),
    );
    let app = Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: String| async move {
                h1();
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                (StatusCode::OK, format!("got {id} {}", body.len()))
            }),
        )
        .route(
            "/fail",
            post(move || async move {
                h2();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/busy",
            post(move || async move {
                h3();
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "30")])
            }),
        )
        .route(
            "/moved",
            post(move || async move {
                h4();
                (StatusCode::FOUND, [("location", "/ok")]).into_response()
            }),
        )
        .route(
            "/hang",
            post(move || async move {
                h5();
                tokio::time::sleep(Duration::from_secs(10)).await;
                StatusCode::OK
            }),
        )
        .route(
            "/huge",
            post(move || async move {
                h6();
                "x".repeat(10 * 1024 * 1024)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

fn loopback_allowed(timeout: Duration) -> Deliverer {
    Deliverer::new(Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]), timeout).unwrap()
}

#[tokio::test]
async fn answers_become_outcomes() {
    let (addr, hits) = subscriber().await;
    let deliverer = loopback_allowed(Duration::from_secs(5));
    let url = |path: &str| format!("http://{addr}{path}");
    let headers = vec![("webhook-id".to_owned(), "evt_1".to_owned())];

    let ok = deliverer.deliver(&url("/ok"), &headers, b"{\"a\":1}".to_vec()).await;
    assert_eq!(ok.outcome, Outcome::Delivered { code: 200 });
    assert_eq!(ok.detail, "got evt_1 7");

    let fail = deliverer.deliver(&url("/fail"), &headers, vec![]).await;
    assert_eq!(fail.outcome, Outcome::Status { code: 500, retry_after: None });

    let busy = deliverer.deliver(&url("/busy"), &headers, vec![]).await;
    assert_eq!(busy.outcome, Outcome::Status { code: 429, retry_after: Some(Duration::from_secs(30)) });

    let before = hits.load(Ordering::SeqCst);
    let moved = deliverer.deliver(&url("/moved"), &headers, vec![]).await;
    assert_eq!(moved.outcome, Outcome::Status { code: 302, retry_after: None });
    assert_eq!(hits.load(Ordering::SeqCst), before + 1, "the redirect is not followed");

    let huge = deliverer.deliver(&url("/huge"), &headers, vec![]).await;
    assert_eq!(huge.outcome, Outcome::Delivered { code: 200 });
    assert!(huge.detail.len() <= 1024, "only an excerpt of a huge answer is kept");
}

#[tokio::test]
async fn a_hanging_subscriber_times_out() {
    let (addr, _) = subscriber().await;
    let deliverer = loopback_allowed(Duration::from_millis(300));
    let attempt = deliverer.deliver(&format!("http://{addr}/hang"), &[], vec![]).await;
    assert_eq!(attempt.outcome, Outcome::Timeout);
    assert!(attempt.latency < Duration::from_secs(5), "bounded by the timeout: {:?}", attempt.latency);
}

#[tokio::test]
async fn private_and_loopback_targets_are_refused_before_connecting() {
    let (addr, hits) = subscriber().await;
    let port = addr.port();
    let guarded = Deliverer::new(Guard::new(), Duration::from_secs(2)).unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        format!("http://0177.0.0.1:{port}/ok"),
        format!("http://0x7f.1:{port}/ok"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "http://100.64.0.1/hook".to_owned(),
        "ftp://example.com/hook".to_owned(),
    ] {
        let attempt = guarded.deliver(&url, &[], vec![]).await;
        assert_eq!(attempt.outcome, Outcome::Unreachable, "{url}");
        assert!(
            attempt.detail.contains("refused") || attempt.detail.contains("not an http"),
            "{url}: {}",
            attempt.detail
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the subscriber");
}
