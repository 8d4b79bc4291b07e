//! What the `tidings` process tests share: the binary, a dev server on a free port, and a
//! subscriber on loopback that records every request it is sent.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tidings")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty directory for one test: `tidings-<name>-<pid>` under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The ids of every event the samples' checked-in expectations hold (several samples share
/// some, so this is what a replay of `events/` stores).
pub fn expected_ids() -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for provider in std::fs::read_dir(repo().join("events")).unwrap() {
        let dir = provider.unwrap().path().join("expected");
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir).unwrap() {
            let expected: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
            for event in expected["events"].as_array().cloned().unwrap_or_default() {
                ids.insert(event["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tidings dev` process, killed when dropped.
pub struct Dev(pub Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tidings dev` on `db` and `port` and waits (bounded) until it listens.
pub fn start(db: &Path, port: u16) -> Dev {
    let mut command = dev_command(db, port);
    command.stderr(Stdio::null());
    spawn_dev(command, port)
}

/// The command that runs `tidings dev` on `db` and `port`, its standard output discarded.
pub fn dev_command(db: &Path, port: u16) -> Command {
    let mut command = Command::new(bin());
    command.args(["dev", "--addr", &format!("127.0.0.1:{port}"), "--db", &db.to_string_lossy()]).stdout(Stdio::null());
    command
}

/// Spawns a `tidings dev` command and waits (bounded) until it listens on `port`.
pub fn spawn_dev(mut command: Command, port: u16) -> Dev {
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tidings dev did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Dev(child)
}

/// POSTs `body` to an `http://` URL on loopback and returns the status and the response body
/// (HTTP/1.1, one request per connection).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    request("POST", url, headers, body)
}

/// GETs an `http://` URL on loopback: the status and the response body.
pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    request("GET", url, headers, b"")
}

/// One HTTP/1.1 request on its own connection: the status and the response body (chunked
/// bodies are returned as sent, chunk sizes included).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, target) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let mut stream = TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// One request a subscriber received: its path, headers (names lowercase) and exact body.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A subscriber on loopback, in a runtime of its own, answering 200 to every POST.
pub struct Subscriber {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Subscriber {
    pub fn start() -> Subscriber {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                        let headers = headers
                            .iter()
                            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect();
                        log.lock().unwrap().push(Received {
                            path: uri.path().to_owned(),
                            headers,
                            body: body.to_vec(),
                        });
                        axum::http::StatusCode::OK
                    },
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Subscriber { addr: addr_rx.recv().unwrap(), received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What arrived at `path` so far.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits (bounded) until `count` requests have arrived at `path`, and returns them.
    pub fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let arrived = self.at(path);
            if arrived.len() >= count {
                return arrived;
            }
            assert!(Instant::now() < deadline, "{} of {count} deliveries arrived at {path}", arrived.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
