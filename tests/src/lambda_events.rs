//! The Lambda event envelopes in `events/lambda/`, derived from the raw samples: what API
//! Gateway (HTTP API, payload format 2.0) hands an ingest function, what the SQS event source
//! hands the SES intake and processor functions. They are for `cargo lambda invoke
//! --data-file` and `sam local invoke -e`; the Lambda-level tests sign and send them.
//!
//! - `http/<provider>-<sample>.json`: a provider's webhook as the ingest function receives it,
//!   posted to `/webhooks/<provider>/src_example_<provider>`, unsigned (the test signs it with
//!   its source's secret; a real provider signs its own, so on its own it is refused with 401).
//! - `sns-http/<provider>-<sample>.json`: for providers other than SES that publish through SNS
//!   (AWS SMS), the SNS envelope as SNS posts it over HTTPS; its signature is a placeholder only
//!   AWS could replace, so it shows the shape and is refused as it is.
//! - `ses-queue/<sample>.json`: an SES record on the SES intake queue (IAM guards that path, so
//!   it carries no signature and works as is).
//! - `processor/<provider>-<sample>.json`: the events ingest puts on the events queue for that
//!   sample, in workspace `ws_default`, as the processor receives them.
//!
//! Regenerate with `TIDINGS_BLESS=1 cargo test -p tidings-tests --test lambda_events`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tidings_core::{Headers, NormalizeContext, ProviderId, Timestamp, Transport, Webhook};

/// The source id a provider's envelopes name: the id `tidings local-aws` gives that provider's
/// example source. The API Gateway id and region are examples too.
pub fn source_id(provider: ProviderId) -> String {
    format!("src_example_{provider}")
}
const API_ID: &str = "a1b2c3d4e5";
const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";
/// 2026-11-23T12:00:00Z: envelopes carry a fixed time so they are reproducible.
const TIME_EPOCH_MS: i64 = 1_795_435_200_000;

/// Each provider whose webhooks arrive over HTTP signed by a key a source holds (SES's come
/// signed by AWS through SNS, or through a queue), with the sample that stands for it
/// (`Provider::example`).
pub fn http_samples() -> Vec<(ProviderId, &'static str)> {
    ProviderId::ALL
        .into_iter()
        .filter(|p| p.provider().authentication() != tidings_core::auth::Authentication::SnsSignature)
        .map(|p| (p, p.provider().example()))
        .collect()
}
/// SES records for the SES intake function (an SNS notification as SNS delivers it to SQS).
pub const SES_QUEUE_SAMPLES: &[&str] = &["bounce-permanent.json", "send-failure-throttled.json"];
/// What the processor gets after ingest accepted these samples.
pub const PROCESSOR_SAMPLES: &[(ProviderId, &str)] =
    &[(ProviderId::Sendgrid, "batch-every-type.json"), (ProviderId::Postmark, "bounce-hard.json")];

/// A sample's bytes and its recorded headers.
pub fn sample(events: &Path, provider: ProviderId, name: &str) -> (Vec<u8>, Headers) {
    let path = events.join(provider.as_str()).join(name);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = match std::fs::read_to_string(path.with_extension("headers")) {
        Ok(text) => Headers::parse_lines(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        Err(_) => Headers::new(),
    };
    (body, headers)
}

fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// An API Gateway HTTP API (payload 2.0) request event.
pub fn api_gateway_v2(method: &str, path: &str, query: &str, headers: &Headers, body: &[u8]) -> Value {
    let host = format!("{API_ID}.execute-api.{REGION}.amazonaws.com");
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), json!(host));
    for (name, value) in headers.iter() {
        header_map.insert(name.to_ascii_lowercase(), json!(value));
    }
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (json!(text), false),
        Err(_) => {
            use base64::Engine;
            (json!(base64::engine::general_purpose::STANDARD.encode(body)), true)
        }
    };
    let route = route_key(method, path);
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": headers.get("user-agent").unwrap_or("tidings-tests")
            },
            "requestId": "tidings-example-request",
            "routeKey": route,
            "stage": "$default",
            "time": "23/Nov/2026:12:00:00 +0000",
            "timeEpoch": TIME_EPOCH_MS
        },
        "pathParameters": path_parameters(path),
        "body": body,
        "isBase64Encoded": base64
    })
}

/// The same request as a Lambda function URL delivers it (`WebhookWiring=function-urls`): payload
/// format 2.0 too, but on the function's own `<url-id>.lambda-url.<region>.on.aws` host, with the
/// route and stage `$default` and no path parameters.
pub fn function_url(mut event: Value) -> Value {
    const URL_ID: &str = "abcdefghijklmnopqrstuvwxyz012345";
    let host = format!("{URL_ID}.lambda-url.{REGION}.on.aws");
    event["routeKey"] = json!("$default");
    event["headers"]["host"] = json!(host);
    let context = &mut event["requestContext"];
    context["apiId"] = json!(URL_ID);
    context["domainName"] = json!(host);
    context["domainPrefix"] = json!(URL_ID);
    context["routeKey"] = json!("$default");
    context["stage"] = json!("$default");
    if let Some(object) = event.as_object_mut() {
        object.remove("pathParameters");
    }
    event
}

/// The template's route for a path: `/webhooks/<provider>/{source}` or `/api/{proxy+}`.
fn route_key(method: &str, path: &str) -> String {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "webhooks", provider, ..] => format!("{method} /webhooks/{provider}/{{source}}"),
        _ => "ANY /api/{proxy+}".into(),
    }
}

fn path_parameters(path: &str) -> Value {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "webhooks", _, source] => json!({"source": source}),
        ["", "api", rest @ ..] => json!({"proxy": rest.join("/")}),
        _ => json!({}),
    }
}

/// An SQS event source batch, one record per body (message ids `<prefix>-0`, `-1`, …).
pub fn sqs_batch(queue: &str, prefix: &str, bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("{prefix}-{i}"),
                "receiptHandle": format!("{prefix}-{i}-receipt"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": TIME_EPOCH_MS.to_string(),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": TIME_EPOCH_MS.to_string()
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"),
                "awsRegion": REGION
            })
        })
        .collect();
    json!({"Records": records})
}

/// The events queue bodies ingest produces for a sample (normalized as the checked-in
/// expectations are: workspace `ws_default`, received at the samples' fixed time).
pub fn queued_bodies(events: &Path, provider: ProviderId, name: &str) -> Vec<String> {
    let (body, headers) = sample(events, provider, name);
    let sns = provider.provider().authentication() == tidings_core::auth::Authentication::SnsSignature;
    let transport = if sns { Transport::Queue } else { Transport::Http };
    let webhook = Webhook { body: &body, headers: &headers, query: None, transport };
    let received_at = Timestamp::from_unix_millis(TIME_EPOCH_MS).unwrap_or_else(Timestamp::now);
    let normalized = provider
        .provider()
        .normalize(&webhook, &NormalizeContext { workspace: "ws_default", received_at })
        .unwrap_or_else(|e| panic!("{provider}/{name}: {e}"));
    normalized
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| tidings_core::pipeline::event_message(i, e, &source_id(provider)).unwrap().body)
        .collect()
}

/// Every envelope file, as (path under `events/lambda`, pretty JSON text).
pub fn generate(events: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut put = |path: PathBuf, value: Value| {
        let mut text = serde_json::to_string_pretty(&tidings_core::serde_util::sorted_keys(value)).unwrap_or_default();
        text.push('\n');
        out.push((path, text));
    };
    for provider in ProviderId::ALL.into_iter().filter(|p| {
        *p != ProviderId::Ses && p.provider().authentication() == tidings_core::auth::Authentication::SnsSignature
    }) {
        let name = provider.provider().example();
        let (body, headers) = sample(events, provider, name);
        let path = format!("/webhooks/{provider}/{}", source_id(provider));
        put(
            PathBuf::from(format!("sns-http/{provider}-{}.json", stem(name))),
            api_gateway_v2("POST", &path, "", &headers, &body),
        );
    }
    for (provider, name) in http_samples() {
        let (body, headers) = sample(events, provider, name);
        let path = format!("/webhooks/{provider}/{}", source_id(provider));
        put(
            PathBuf::from(format!("http/{provider}-{}.json", stem(name))),
            api_gateway_v2("POST", &path, "", &headers, &body),
        );
    }
    for name in SES_QUEUE_SAMPLES {
        let (body, _) = sample(events, ProviderId::Ses, name);
        let body = String::from_utf8(body).unwrap_or_default();
        put(PathBuf::from(format!("ses-queue/{}.json", stem(name))), sqs_batch("tidings-ses-intake", "ses", &[body]));
    }
    for &(provider, name) in PROCESSOR_SAMPLES {
        let bodies = queued_bodies(events, provider, name);
        put(
            PathBuf::from(format!("processor/{provider}-{}.json", stem(name))),
            sqs_batch("tidings-events", provider.as_str(), &bodies),
        );
    }
    out
}
