//! The admin API's OpenAPI document against the router that serves it: the document names
//! exactly the routes and methods the router answers, every authenticated operation refuses a
//! request without a key as it says, every reference resolves, and the copy kept in the
//! repository (`functions/api/openapi.json`, for generating a client without a running server)
//! is the one served. What each operation answers is held to the document by the fuzzing run
//! (`functions/cli/tests/interop.rs`).

use crate::common::{Fixture, fixture};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tidings_local::Sqlite;

async fn served_document(f: &Fixture<Sqlite>) -> Value {
    let (status, document) = f.call(Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// `path` with each `{name}` segment filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.starts_with('{') { "doc-probe" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

fn request(method: &Method, uri: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method.clone()).uri(uri).header("Content-Type", "application/json");
    if let Some(key) = key {
        builder = builder.header("Authorization", format!("Bearer {key}"));
    }
    builder.body(Body::from("{}")).unwrap()
}

#[tokio::test]
async fn the_openapi_document_names_exactly_the_routes_and_methods_the_router_serves() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db).await;
    let document = served_document(&f).await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys());
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        let uri = concrete(path);
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let (status, body) = f.call(request(&method, &uri, Some("key-default"))).await;
            let Some(operation) = item.get(method.as_str().to_ascii_lowercase()) else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not in the document");
                continue;
            };
            // A handler answered (the router's own 404 and 405 have no JSON body).
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(body.is_object(), "{method} {path}: {status} without a JSON body");
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_owned()), "operationId {id} is used twice");
            let documented = |status: StatusCode| operation["responses"].get(status.as_str()).is_some();
            assert!(documented(status), "{method} {path} answered {status}, which the document does not list");
            if operation.get("security") == Some(&Value::Array(vec![])) {
                continue;
            }
            let (status, body) = f.call(request(&method, &uri, None)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a key: {body}");
            assert!(documented(status), "{method} {path}: 401 is not in the document");
        }
    }
    // Every `$ref` points at a schema the document holds.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    refs(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(document.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

#[tokio::test]
async fn the_openapi_document_in_the_repository_is_the_one_served() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db).await;
    let served = served_document(&f).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/api/openapi.json");
    let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("TIDINGS_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == text,
        "functions/api/openapi.json differs from what /api/openapi.json serves: after a deliberate change, \
         regenerate it with TIDINGS_BLESS=1 cargo test -p tidings-tests --test hostile openapi"
    );
}
