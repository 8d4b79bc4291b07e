//! A Lambda Runtime API emulator: the real function binaries run as child processes and fetch
//! their invocations from it, exactly as they do from the Lambda service
//! (`GET /2018-06-01/runtime/invocation/next`, then `POST …/{id}/response` or `…/{id}/error`).
//! One emulator serves one function process; an invocation waits for the function's answer.

// Shared by the Lambda-level test and the cold-start bench, each using part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// How an invocation ended: the function's response, or the error it reported.
pub type Outcome = Result<Value, Value>;

#[derive(Default)]
struct Shared {
    /// When the function first asked for an invocation: the end of its cold start.
    first_poll: std::sync::OnceLock<std::time::Instant>,
    polled: Notify,
    pending: Mutex<VecDeque<(String, Bytes)>>,
    ready: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Value>>,
}

/// A function binary running against its own emulator. Dropping it kills the process.
pub struct Function {
    name: String,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    log: tempfile_path::LogFile,
    started: std::time::Instant,
    pid: Option<u32>,
    process: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Function {
    /// Ends the process: the task that owns it drops it, and it is killed.
    fn drop(&mut self) {
        self.process.abort();
        self.server.abort();
    }
}

impl Function {
    /// Starts `binary` with `env` (on top of what the Lambda service sets for every function).
    pub async fn start(binary: &Path, name: &str, env: &[(&str, String)]) -> Function {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let log = tempfile_path::LogFile::new(name);
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]0123456789abcdef")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.handle())
            .stderr(log.handle())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id();
        let watched = shared.clone();
        let process = tokio::spawn(async move {
            let status = child.wait().await;
            // The process is gone: nothing will answer the invocations still waiting.
            watched.waiting.lock().unwrap().clear();
            let _ = status;
        });
        Function { name: name.into(), shared, next_id: AtomicU64::new(0), log, started, pid, process, server }
    }

    /// How long the process took from exec to its first `GET …/invocation/next`: its cold
    /// start, as Lambda's Init phase measures it.
    pub async fn initialized(&self) -> Duration {
        loop {
            let polled = self.shared.polled.notified();
            if let Some(at) = self.shared.first_poll.get() {
                return at.duration_since(self.started);
            }
            if tokio::time::timeout(Duration::from_secs(30), polled).await.is_err() {
                panic!("{} never asked for an invocation; its output:\n{}", self.name, self.log.read());
            }
        }
    }

    /// The process's peak resident memory (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Hands `event` to the function; the receiver gets its answer, or is dropped if the
    /// process ends without one.
    pub fn start_invocation(&self, event: &Value) -> oneshot::Receiver<Outcome> {
        let id = format!("{}-{:04}", self.name, self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(id.clone(), tx);
        self.shared.pending.lock().unwrap().push_back((id, Bytes::from(serde_json::to_vec(event).unwrap())));
        self.shared.ready.notify_one();
        rx
    }

    /// Invokes the function with `event` and waits (at most 60 s) for its answer.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let rx = self.start_invocation(event);
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => panic!(
                "{} exited without answering (init error: {:?}); its output:\n{}",
                self.name,
                self.shared.init_error.lock().unwrap(),
                self.log.read()
            ),
            Err(_) => panic!("{} did not answer within 60 s; its output:\n{}", self.name, self.log.read()),
        }
    }

    /// Invokes and expects a response (not an error).
    pub async fn call(&self, event: &Value) -> Value {
        self.invoke(event).await.unwrap_or_else(|error| panic!("{} failed: {error}\n{}", self.name, self.log.read()))
    }

    /// Everything the function wrote to stdout and stderr (its logs).
    pub fn output(&self) -> String {
        self.log.read()
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.first_poll.set(std::time::Instant::now()).is_ok() {
        shared.polled.notify_waiters();
    }
    let (id, body) = loop {
        let notified = shared.ready.notified();
        if let Some(item) = shared.pending.lock().unwrap().pop_front() {
            break item;
        }
        notified.await;
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline.as_millis() as u64));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:tidings"),
    );
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-67891233-abcdef012345678912345678"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, body)
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.waiting.lock().unwrap().remove(id) {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    answer(&shared, &id, Ok(json(&body)))
}

async fn fail(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    answer(&shared, &id, Err(json(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(json(&body));
    StatusCode::ACCEPTED
}

/// Where a function's output goes: a file under the target directory, read back on failure.
mod tempfile_path {
    use std::fs::File;
    use std::path::PathBuf;

    pub struct LogFile(PathBuf);

    impl LogFile {
        pub fn new(name: &str) -> LogFile {
            // Integration tests get a scratch directory under target/; benches use the system's.
            let scratch = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
            let dir = scratch.join("lambda-logs");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{}.log", std::process::id()));
            File::create(&path).unwrap();
            LogFile(path)
        }

        pub fn handle(&self) -> File {
            File::options().append(true).open(&self.0).unwrap()
        }

        pub fn read(&self) -> String {
            std::fs::read_to_string(&self.0).unwrap_or_default()
        }
    }
}
