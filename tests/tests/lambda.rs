//! The deployed shape, end to end: the real function binaries (`cargo build --workspace
//! --bins`), each run as Lambda runs it, against a Runtime API emulator, with DynamoDB and SQS
//! on moto. Webhooks go in as API Gateway HTTP API events built from `events/lambda/`; the
//! messages the functions put on SQS come out of moto and go to the next function as SQS
//! events, as the event source mappings in `template.yaml` do; a subscriber on loopback gets
//! the signed deliveries. The first API key comes from `tidings keys create`, as the README
//! tells a new deployment to make it.

#[path = "lambda/runtime_api.rs"]
mod runtime_api;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_sqs::types::QueueAttributeName;
use runtime_api::Function;
use serde_json::{Value, json};
use tidings_core::auth::signer::{self, SigningKey, generate_sendgrid_key_pair};
use tidings_core::auth::standard_webhooks;
use tidings_core::ports::{EventQuery, Store};
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_tests::lambda_events::{api_gateway_v2, sqs_batch};

const WORKSPACE: &str = "ws_default";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The workspace's binaries, built once per test run with the profile this test was built with
/// (a no-op when `cargo test --workspace` already built them).
fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let output = Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--locked"])
            .current_dir(&root)
            .output()
            .expect("cannot run cargo");
        assert!(output.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&output.stderr));
        // This test runs from <target>/<profile>/deps; the binaries sit in <target>/<profile>.
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    })
}

fn moto() -> String {
    std::env::var("TIDINGS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto")
    })
}

/// A deployment on moto: the table and the queues of `template.yaml`, and the environment the
/// template gives every function.
struct Deployment {
    sqs: aws_sdk_sqs::Client,
    store: tidings_aws::DynamoStore,
    table: String,
    events: String,
    deliveries: String,
    env: Vec<(&'static str, String)>,
}

impl Deployment {
    async fn new() -> Deployment {
        let config = tidings_aws::sdk_config_for_endpoint(&moto()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let run = format!("lambda-{}", std::process::id());
        let table = format!("tidings-{run}");
        tidings_aws::dynamo::create_table(&dynamo, &table).await.unwrap();
        let mut env = vec![
            ("AWS_ENDPOINT_URL", moto()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("TIDINGS_TABLE", table.clone()),
            ("TIDINGS_RETENTION_DAYS", "90".into()),
            ("TIDINGS_LOG_LEVEL", "info".into()),
        ];
        let mut urls = Vec::new();
        for (queue, variable, dlq_variable) in [
            ("events", "TIDINGS_EVENTS_QUEUE_URL", "TIDINGS_EVENTS_DLQ_URL"),
            ("deliveries", "TIDINGS_DELIVERIES_QUEUE_URL", "TIDINGS_DELIVERIES_DLQ_URL"),
            ("redrive", "TIDINGS_REDRIVE_QUEUE_URL", "TIDINGS_REDRIVE_DLQ_URL"),
        ] {
            let dlq =
                sqs.create_queue().queue_name(format!("{run}-{queue}-dlq")).send().await.unwrap().queue_url.unwrap();
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&dlq)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&QueueAttributeName::QueueArn]
                .clone();
            let url = sqs
                .create_queue()
                .queue_name(format!("{run}-{queue}"))
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#),
                )
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            env.push((variable, url.clone()));
            env.push((dlq_variable, dlq));
            urls.push(url);
        }
        let store = tidings_aws::DynamoStore::new(dynamo, table.clone());
        Deployment { sqs, store, table, events: urls[0].clone(), deliveries: urls[1].clone(), env }
    }

    async fn start(&self, binary: &str, extra: &[(&'static str, String)]) -> Function {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        Function::start(&binaries().join(binary), binary, &env).await
    }

    /// Takes every message off a queue, as the SQS event source does before invoking.
    async fn drain(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let page = self.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            let messages = page.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            for message in messages {
                let handle = message.receipt_handle.unwrap();
                self.sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();
                bodies.push(message.body.unwrap());
            }
        }
    }

    async fn stored_ids(&self) -> BTreeSet<String> {
        let query = EventQuery { workspace: WORKSPACE.into(), limit: 1000, ..EventQuery::default() };
        let page = self.store.events(&query).await.unwrap();
        assert!(page.next.is_none());
        page.events.iter().map(|e| e.id.to_string()).collect()
    }
}

/// The first API key, made the way the README says: `tidings keys create`.
fn create_key(deployment: &Deployment) -> String {
    let output = Command::new(binaries().join("tidings"))
        .args(["keys", "create", "--table", &deployment.table, "--workspace", WORKSPACE])
        .env_clear()
        .envs(deployment.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(output.status.success(), "tidings keys create: {}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("tdk_"), "unexpected key output {key:?}");
    key
}

/// An admin API call through the `api` function, as API Gateway invokes it.
async fn api(function: &Function, key: &str, method: &str, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut headers = Headers::new();
    headers.insert("authorization", format!("Bearer {key}"));
    headers.insert("content-type", "application/json");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = function.call(&api_gateway_v2(method, path, query, &headers, body.as_bytes())).await;
    http_answer(&response)
}

fn http_answer(response: &Value) -> (u16, Value) {
    let status = response["statusCode"].as_u64().unwrap_or(0) as u16;
    let body = response["body"].as_str().unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

/// A checked-in ingest envelope, re-aimed at `source` and signed with its secret the way the
/// provider signs (the envelopes are stored unsigned).
fn signed_envelope(file: &str, provider: ProviderId, source: &str, key: &SigningKey<'_>) -> Value {
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("lambda/http").join(file)).unwrap()).unwrap();
    let mut headers = Headers::new();
    for (name, value) in envelope["headers"].as_object().unwrap() {
        if name != "host" {
            headers.insert(name.clone(), value.as_str().unwrap());
        }
    }
    let body = envelope["body"].as_str().unwrap().as_bytes().to_vec();
    let body = signer::sign(provider, &body, &mut headers, key, Timestamp::now()).unwrap();
    api_gateway_v2("POST", &format!("/webhooks/{provider}/{source}"), "", &headers, &body)
}

/// The ids the checked-in expectation of a sample lists.
fn expected_ids(provider: ProviderId, sample: &str) -> BTreeSet<String> {
    let path = events_dir().join(provider.as_str()).join("expected").join(format!("{sample}.json"));
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    expected["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// The sum of metric `name` over the EMF lines in a function's output whose dimensions include
/// `dimensions`, and how many lines carried it.
fn metric(output: &str, name: &str, dimensions: &[(&str, &str)]) -> (f64, usize) {
    let mut sum = (0.0, 0);
    for line in output.lines().filter(|l| l.starts_with('{') && l.contains("\"_aws\":")) {
        let document: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad EMF line {line}: {e}"));
        let declared = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "tidings");
        let names_metric = declared["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == name);
        if names_metric && dimensions.iter().all(|(k, v)| document[*k] == *v) {
            sum.0 += document[name].as_f64().unwrap();
            sum.1 += 1;
        }
    }
    sum
}

type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A subscriber on loopback that keeps every request it gets.
async fn subscriber() -> (String, Received) {
    use axum::routing::post;
    let received: Received = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| async move {
            log.lock().unwrap().push((headers, body));
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_through_the_function_binaries_are_stored_once_and_delivered_signed() {
    let deployment = Deployment::new().await;
    let key = create_key(&deployment);
    let api_function = deployment.start("api", &[("TIDINGS_OPERATOR_WORKSPACES", WORKSPACE.into())]).await;

    // Sources and a subscription, through the admin API.
    let (status, body) = api(&api_function, "tdk_wrong", "GET", "/api/sources", None).await;
    assert_eq!(status, 401, "an unknown key is refused: {body}");
    let (sendgrid_private, sendgrid_public) = generate_sendgrid_key_pair().unwrap();
    let (status, sendgrid) = api(
        &api_function,
        &key,
        "POST",
        "/api/sources",
        Some(json!({"provider": "sendgrid", "secret": sendgrid_public})),
    )
    .await;
    assert_eq!(status, 201, "{sendgrid}");
    let (status, twilio) = api(
        &api_function,
        &key,
        "POST",
        "/api/sources",
        Some(json!({"provider": "twilio", "secret": "twilio-auth-token"})),
    )
    .await;
    assert_eq!(status, 201, "{twilio}");
    let twilio_url = twilio["url"].as_str().unwrap().to_owned();
    assert!(
        twilio_url.starts_with("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/webhooks/twilio/src_"),
        "the URL to paste into Twilio is the API's own: {twilio_url}"
    );
    assert_eq!(twilio["public_url"], json!(twilio_url), "Twilio's signed URL defaults to the source's URL");
    let (status, ses) = api(
        &api_function,
        &key,
        "POST",
        "/api/sources",
        Some(json!({"provider": "ses", "allowed_topics": ["arn:aws:sns:eu-west-1:111122223333:ses-events"]})),
    )
    .await;
    assert_eq!(status, 201, "{ses}");
    let (hook, received) = subscriber().await;
    let (status, subscription) =
        api(&api_function, &key, "POST", "/api/subscriptions", Some(json!({"url": hook, "types": ["*"]}))).await;
    assert_eq!(status, 201, "{subscription}");
    let signing_secret = subscription["secret"].as_str().unwrap().to_owned();

    // Webhooks in. SendGrid retries its batch once: the same events, stored once below.
    let sendgrid_id = sendgrid["id"].as_str().unwrap();
    let sendgrid_function = deployment.start("sendgrid", &[]).await;
    let unsigned: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("lambda/http/sendgrid-batch-every-type.json")).unwrap(),
    )
    .unwrap();
    let mut unsigned = unsigned;
    unsigned["rawPath"] = json!(format!("/webhooks/sendgrid/{sendgrid_id}"));
    unsigned["requestContext"]["http"]["path"] = unsigned["rawPath"].clone();
    let (status, body) = http_answer(&sendgrid_function.call(&unsigned).await);
    assert_eq!(status, 401, "the checked-in envelope carries no signature: {body}");
    assert!(body.to_string().contains("sendgrid"), "the reason names the provider: {body}");
    assert!(deployment.drain(&deployment.events).await.is_empty(), "a refused webhook enqueues nothing");

    let sendgrid_key = SigningKey { secret: &sendgrid_private, public_url: None };
    for _ in 0..2 {
        let envelope =
            signed_envelope("sendgrid-batch-every-type.json", ProviderId::Sendgrid, sendgrid_id, &sendgrid_key);
        let (status, body) = http_answer(&sendgrid_function.call(&envelope).await);
        assert_eq!(status, 200, "{body}");
    }
    let twilio_function = deployment.start("twilio", &[]).await;
    let twilio_key = SigningKey { secret: "twilio-auth-token", public_url: Some(&twilio_url) };
    let envelope =
        signed_envelope("twilio-undelivered.json", ProviderId::Twilio, twilio["id"].as_str().unwrap(), &twilio_key);
    let (status, body) = http_answer(&twilio_function.call(&envelope).await);
    assert_eq!(status, 200, "{body}");

    // SES through its intake queue: the checked-in SQS envelope, as is.
    let ses_function =
        deployment.start("ses-queue", &[("TIDINGS_SES_SOURCE", ses["id"].as_str().unwrap().into())]).await;
    let envelope: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("lambda/ses-queue/bounce-permanent.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ses_function.call(&envelope).await, json!({"batchItemFailures": []}));

    // The processor stores what ingest queued: each event once, whatever came twice.
    let queued = deployment.drain(&deployment.events).await;
    let processor = deployment.start("processor", &[]).await;
    let response = processor.call(&sqs_batch("events", "m", &queued)).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let mut expected = expected_ids(ProviderId::Sendgrid, "batch-every-type");
    expected.extend(expected_ids(ProviderId::Twilio, "undelivered"));
    expected.extend(expected_ids(ProviderId::Ses, "bounce-permanent"));
    assert!(queued.len() > expected.len(), "the retried batch was queued again ({} messages)", queued.len());
    assert_eq!(deployment.stored_ids().await, expected);

    // Fan-out delivers each stored event once, signed with the subscription's secret.
    let tasks = deployment.drain(&deployment.deliveries).await;
    assert_eq!(tasks.len(), expected.len(), "one delivery task per stored event");
    let fanout = deployment.start("fanout", &[("TIDINGS_ALLOW_NETWORKS", "127.0.0.0/8".into())]).await;
    let response = fanout.call(&sqs_batch("deliveries", "d", &tasks)).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let received = received.lock().unwrap().clone();
    let signing_key = standard_webhooks::secret_key(&signing_secret).unwrap();
    let mut delivered = BTreeSet::new();
    for (headers, body) in &received {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(
            standard_webhooks::verify_signature(
                std::slice::from_ref(&signing_key),
                &header("webhook-id"),
                &header("webhook-timestamp"),
                body.as_bytes(),
                &header("webhook-signature"),
            ),
            "delivery {} does not verify",
            header("webhook-id")
        );
        let event: Value = serde_json::from_str(body).unwrap();
        delivered.insert(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(received.len(), expected.len(), "each event delivered once");
    assert_eq!(delivered, expected);

    // And the admin API reads them back.
    let (status, page) = api(&api_function, &key, "GET", "/api/events?limit=100", None).await;
    assert_eq!(status, 200, "{page}");
    let listed: BTreeSet<String> =
        page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, expected);

    // Each function wrote its metrics as EMF lines.
    let ingest_log = sendgrid_function.output();
    let sendgrid_events = expected_ids(ProviderId::Sendgrid, "batch-every-type").len() as f64;
    let sendgrid = [("Provider", "sendgrid")];
    assert_eq!(metric(&ingest_log, "WebhooksAccepted", &sendgrid).0, 2.0);
    assert_eq!(metric(&ingest_log, "Events", &sendgrid).0, 2.0 * sendgrid_events, "events by type, both posts");
    assert_eq!(metric(&ingest_log, "Events", &[("Provider", "sendgrid"), ("Type", "email.bounced")]).1, 2);
    assert_eq!(metric(&ingest_log, "EnqueueLatency", &sendgrid).1, 2);
    assert_eq!(metric(&ingest_log, "Rejected", &[("Provider", "sendgrid"), ("Reason", "unauthenticated")]).0, 1.0);
    assert_eq!(metric(&ingest_log, "SignatureFailures", &sendgrid).0, 1.0);
    let stored = metric(&processor.output(), "Stored", &[]).0;
    let duplicates = metric(&processor.output(), "Duplicates", &[]).0;
    assert_eq!((stored, duplicates), (expected.len() as f64, (queued.len() - expected.len()) as f64));
    let delivered = metric(&fanout.output(), "Deliveries", &[("Outcome", "delivered")]);
    assert_eq!(delivered.0, expected.len() as f64);
    assert_eq!(metric(&fanout.output(), "DeliveryAttempt", &[("Outcome", "delivered")]).0, expected.len() as f64);

    // The functions logged what they did, and no secret: not the API key, not the
    // subscription's signing secret, not a provider's token.
    for function in [&api_function, &sendgrid_function, &twilio_function, &ses_function, &processor, &fanout] {
        let output = function.output();
        assert!(output.contains("Lambda runtime invoke"), "no logs from a function:\n{output}");
        for secret in [key.as_str(), signing_secret.as_str(), "twilio-auth-token", sendgrid_private.as_str()] {
            assert!(!output.contains(secret), "a secret in the logs:\n{output}");
        }
    }
}
