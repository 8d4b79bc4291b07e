//! Subscribers that misbehave at the TCP level: trickling, resetting, flapping, answering
//! forever. Each attempt must end within its time limit, read a bounded amount, and come out as
//! the outcome the retry schedule expects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tidings_core::delivery::Outcome;
use tidings_core::ssrf::Guard;
use tidings_fanout::Deliverer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_millis(500);

fn deliverer() -> Deliverer {
    Deliverer::new(Guard::allowing(vec!["127.0.0.0/8".parse().unwrap()]), LIMIT).unwrap()
}

/// A subscriber on loopback that handles each connection with `behave` (given the connection
/// and how many came before it); returns its URL.
async fn subscriber<F, Fut>(behave: F) -> String
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let behave = Arc::new(behave);
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(behave(stream, n));
        }
    });
    url
}

/// Reads the request's head and body (the deliverer sends a small body with Content-Length).
async fn read_request(stream: &mut TcpStream) {
    let mut buffer = vec![0; 64 * 1024];
    let mut seen = Vec::new();
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buffer[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

async fn attempt(url: &str) -> (tidings_fanout::Attempt, Duration) {
    let started = Instant::now();
    let attempt = deliverer().deliver(url, &[], b"{}".to_vec()).await;
    (attempt, started.elapsed())
}

#[tokio::test]
async fn a_subscriber_trickling_its_status_line_times_out_within_the_limit() {
    let url = subscriber(|mut stream, _| async move {
        read_request(&mut stream).await;
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (attempt, took) = attempt(&url).await;
    assert_eq!(attempt.outcome, Outcome::Timeout, "{}", attempt.detail);
    assert!(took < LIMIT * 3, "{took:?}");
}

#[tokio::test]
async fn a_subscriber_that_answers_200_then_trickles_its_body_has_taken_the_event() {
    let url = subscriber(|mut stream, _| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nok").await;
        loop {
            if stream.write_all(b".").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (attempt, took) = attempt(&url).await;
    assert_eq!(attempt.outcome, Outcome::Delivered { code: 200 }, "retrying would deliver it twice");
    assert!(
        attempt.detail.starts_with("ok.") && attempt.detail.ends_with("(answer body timed out)"),
        "{}",
        attempt.detail
    );
    assert!(took < LIMIT * 3, "{took:?}");
}

#[tokio::test]
async fn an_endless_fast_answer_is_read_no_further_than_the_excerpt_limit() {
    let url = subscriber(|mut stream, _| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let (attempt, took) = attempt(&url).await;
    assert_eq!(attempt.outcome, Outcome::Delivered { code: 200 });
    assert!(attempt.detail.len() <= 1024, "an excerpt only");
    assert!(took < LIMIT, "stops reading at the byte limit, not the time limit: {took:?}");
}

#[tokio::test]
async fn a_reset_or_a_closed_connection_is_unreachable_at_once() {
    let reset = subscriber(|stream, _| async move {
        // SO_LINGER 0: closing sends RST, not FIN (and with a zero linger, drop does not block,
        // which is why tokio deprecates the call for other values).
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await;
    let closed = subscriber(|mut stream, _| async move {
        read_request(&mut stream).await;
        drop(stream);
    })
    .await;
    for url in [reset, closed] {
        let (attempt, took) = attempt(&url).await;
        assert_eq!(attempt.outcome, Outcome::Unreachable, "{}", attempt.detail);
        assert!(took < LIMIT, "{took:?}");
    }
}

#[tokio::test]
async fn a_flapping_subscriber_gets_each_answer_for_what_it_is() {
    let url = subscriber(|mut stream, n| async move {
        read_request(&mut stream).await;
        let answer: &[u8] = if n % 2 == 0 {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup"
        };
        let _ = stream.write_all(answer).await;
    })
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(attempt(&url).await.0.outcome);
    }
    let down = Outcome::Status { code: 503, retry_after: None };
    assert_eq!(outcomes, [down.clone(), Outcome::Delivered { code: 200 }, down, Outcome::Delivered { code: 200 }]);
}
