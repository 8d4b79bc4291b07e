//! The deployed shape, end to end: the real function binaries (`cargo build --workspace
//! --bins`), each run as Lambda runs it, against a Runtime API emulator, with DynamoDB and SQS
//! on moto. Webhooks go in as API Gateway HTTP API events built from `events/lambda/`; the
//! messages the functions put on SQS come out of moto and go to the next function as SQS
//! events, as the event source mappings in `template.yaml` do; a subscriber on loopback gets
//! the signed deliveries. The first API key comes from `tidings keys create`, as the README
//! tells a new deployment to make it.

mod common;
#[path = "lambda/deployment.rs"]
mod deployment;
#[path = "lambda/local_aws.rs"]
mod local_aws;
#[path = "lambda/runtime_api.rs"]
mod runtime_api;

use std::collections::{BTreeMap, BTreeSet};

use common::events_dir;
use runtime_api::Function;
use serde_json::{Value, json};
use tidings_core::auth::signer::{self, SigningKey, generate_sendgrid_key_pair};
use tidings_core::auth::standard_webhooks;
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_tests::lambda_events::{api_gateway_v2, function_url, sqs_batch};

use deployment::{Deployment, STACK, WORKSPACE, access_key, create_key, moto, subscriber};
/// moto's request recorder: every AWS call the functions make, with its headers and body.
async fn recorder(action: &str) -> String {
    tidings_ingest::install_crypto_provider();
    let url = format!("{}/moto-api/recorder/{action}", moto());
    let client = reqwest::Client::new();
    let response = if action == "download-recording" { client.get(url) } else { client.post(url) };
    response.send().await.unwrap().error_for_status().unwrap().text().await.unwrap()
}

/// One AWS call a function made: the IAM action it needs, on which template resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    function: String,
    action: String,
    resource: String,
}

/// The calls in moto's recording made with the functions' access keys.
fn recorded_calls(recording: &str, deployment: &Deployment, functions: &[&str]) -> BTreeSet<Call> {
    use base64::Engine;
    let by_key: BTreeMap<String, &str> = functions.iter().map(|f| (access_key(f), *f)).collect();
    let queue_of: BTreeMap<&str, &str> =
        deployment.queues.iter().map(|(id, url)| (url.as_str(), id.as_str())).collect();
    let mut calls = BTreeSet::new();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let header = |name: &str| {
            entry["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let authorization = header("authorization");
        let Some(credential) = authorization.split("Credential=").nth(1) else { continue };
        let scope: Vec<&str> = credential.split('/').collect();
        let Some(function) = by_key.get(scope[0]) else { continue };
        let service = scope[3];
        let operation = header("x-amz-target").rsplit('.').next().unwrap_or_default().to_owned();
        let body = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"] == true {
            base64::engine::general_purpose::STANDARD.decode(body).unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut add = |action: String, resource: String| {
            calls.insert(Call { function: (*function).to_owned(), action, resource });
        };
        match service {
            "sqs" => {
                let url = body["QueueUrl"].as_str().unwrap_or_default();
                // A queue of the stack by its logical id; any other (a subscriber's) by its ARN.
                let queue = match queue_of.get(url) {
                    Some(id) => (*id).to_owned(),
                    None => queue_arn(url),
                };
                add(format!("sqs:{operation}"), queue);
            }
            "events" => {
                for entry in body["Entries"].as_array().into_iter().flatten() {
                    add(format!("events:{operation}"), entry["EventBusName"].as_str().unwrap_or("default").to_owned());
                }
            }
            "dynamodb" => {
                // A transaction is authorized as the item actions inside it.
                let items: Vec<(String, &Value)> = match operation.as_str() {
                    "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|item| item.as_object().unwrap().iter())
                        .map(|(kind, op)| {
                            let action = match kind.as_str() {
                                "Put" => "PutItem",
                                "Update" => "UpdateItem",
                                "Delete" => "DeleteItem",
                                "ConditionCheck" => "ConditionCheckItem",
                                _ => "GetItem",
                            };
                            (action.to_owned(), &op["TableName"])
                        })
                        .collect(),
                    _ => vec![(operation.clone(), &body["TableName"])],
                };
                for (action, table) in items {
                    assert_eq!(table.as_str(), Some(deployment.table.as_str()), "{function} used another table");
                    add(format!("dynamodb:{action}"), deployment.table_id.clone());
                }
            }
            "ssm" => {
                let name = body["Name"].as_str().unwrap_or_default();
                add(format!("ssm:{operation}"), format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}"));
            }
            other => add(format!("{other}:{operation}"), "*".into()),
        }
    }
    calls
}

/// The ARN of an SQS queue from its URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`).
fn queue_arn(url: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').rsplit('/').take(2).collect();
    let region = url.split("sqs.").nth(1).and_then(|rest| rest.split('.').next()).unwrap_or("us-east-1");
    match parts[..] {
        [name, account] => format!("arn:aws:sqs:{region}:{account}:{name}"),
        _ => url.to_owned(),
    }
}

/// Whether the function's role, as the template deploys it, allows `call`.
fn granted(deployment: &Deployment, call: &Call) -> bool {
    let function = deployment.function(&call.function);
    let role_id = function["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
    let role = &deployment.template["Resources"][role_id]["Properties"];
    let mut statements: Vec<(Vec<String>, BTreeSet<String>)> = Vec::new();
    for policy in role["Policies"].as_array().into_iter().flatten() {
        // A policy under a condition counts when the parameters (their defaults here) meet it.
        let policy = deployment::if_with_defaults(&deployment.template, policy);
        let document = &policy["PolicyDocument"]["Statement"];
        let list = document.as_array().cloned().unwrap_or_else(|| vec![document.clone()]);
        for statement in list.iter().filter(|s| s["Effect"] == "Allow") {
            let actions = match &statement["Action"] {
                Value::String(one) => vec![one.clone()],
                many => many.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            };
            let mut resources = BTreeSet::new();
            references(&statement["Resource"], &mut resources);
            // A list parameter (`EventBusDestinations`) stands for the ARNs it holds.
            let lists: Vec<String> = resources
                .iter()
                .filter(|r| deployment.template["Parameters"][r.as_str()]["Type"] == "CommaDelimitedList")
                .cloned()
                .collect();
            for list in lists {
                resources.remove(&list);
                let values =
                    deployment.template["Parameters"][&list]["Default"].as_str().unwrap_or_default().to_owned();
                resources.extend(values.split(',').filter(|v| !v.is_empty()).map(str::to_owned));
            }
            // ARN patterns (SSM parameters), evaluated the way CloudFormation would.
            let listed = match &statement["Resource"] {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            resources.extend(listed.iter().filter(|r| r.is_object()).map(|r| deployment.substitute(r)));
            statements.push((actions, resources));
        }
    }
    // What SAM attaches for an SQS event source: Lambda's poller reads and deletes with it.
    let managed = role["ManagedPolicyArns"].to_string();
    if managed.contains("AWSLambdaSQSQueueExecutionRole") {
        let actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];
        statements.push((actions.map(str::to_owned).to_vec(), BTreeSet::from(["*".to_owned()])));
    }
    let matches = |pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => call.action.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()),
        None => call.action.eq_ignore_ascii_case(pattern),
    };
    let on = |resource: &String| match resource.strip_suffix('*') {
        Some(prefix) if resource.starts_with("arn:") => call.resource.starts_with(prefix),
        _ => resource == "*" || *resource == call.resource,
    };
    statements.iter().any(|(actions, resources)| actions.iter().any(|a| matches(a)) && resources.iter().any(on))
}

/// The template resources an IAM `Resource` names (`*` for any).
fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(text) if text == "*" => {
            out.insert("*".into());
        }
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("Ref") {
                out.insert(id.clone());
            }
            if let Some(id) = map.get("Fn::GetAtt").and_then(|g| g[0].as_str()) {
                out.insert(id.to_owned());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
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
        assert_eq!(declared["Namespace"], format!("tidings/{STACK}"), "the namespace the template sets");
        let names_metric = declared["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == name);
        if names_metric && dimensions.iter().all(|(k, v)| document[*k] == *v) {
            sum.0 += document[name].as_f64().unwrap();
            sum.1 += 1;
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_through_the_function_binaries_are_stored_once_and_delivered_signed() {
    let mut deployment = Deployment::new().await;
    let key = create_key(&deployment);
    // Only this test talks to moto while it runs (cargo runs one test binary at a time).
    recorder("reset-recording").await;
    recorder("start-recording").await;
    let api_function = deployment.start("Api", &[("TIDINGS_OPERATOR_WORKSPACES", WORKSPACE.into())]).await;

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
    // Twilio's auth token stays in SSM Parameter Store; the source holds only its name.
    let prefix =
        deployment.environment("IngestTwilio").into_iter().find(|(k, _)| k == "TIDINGS_SECRETS_PREFIX").unwrap().1;
    let parameter = format!("{prefix}e2e-{}/twilio-auth-token", std::process::id());
    common::put_secret(&deployment.ssm, &parameter, "twilio-auth-token").await;
    let bad = json!({"provider": "twilio", "secret": "ssm:twilio-auth-token"});
    let (status, body) = api(&api_function, &key, "POST", "/api/sources", Some(bad)).await;
    assert_eq!(status, 400, "an SSM reference needs the full parameter name: {body}");
    let reference = format!("ssm:{parameter}");
    let (status, twilio) =
        api(&api_function, &key, "POST", "/api/sources", Some(json!({"provider": "twilio", "secret": reference})))
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
    // And an SQS queue and an EventBridge bus of the subscriber's, named by their ARNs.
    let config = tidings_aws::sdk_config_for_endpoint(&moto()).await;
    let bridge = aws_sdk_eventbridge::Client::new(&config);
    let bus_arn = bridge
        .create_event_bus()
        .name(format!("e2e-bus-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let queue_name = format!("e2e-destination-{}", std::process::id());
    let queue_url = deployment.sqs.create_queue().queue_name(&queue_name).send().await.unwrap().queue_url.unwrap();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}");
    let mut destination_secrets = Vec::new();
    for arn in [&bus_arn, &queue_arn] {
        let body = json!({"url": arn, "types": ["*"]});
        let (status, created) = api(&api_function, &key, "POST", "/api/subscriptions", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        destination_secrets.push(created["secret"].as_str().unwrap().to_owned());
    }

    // Webhooks in. SendGrid retries its batch once: the same events, stored once below.
    let sendgrid_id = sendgrid["id"].as_str().unwrap();
    let sendgrid_function = deployment.start("IngestSendGrid", &[]).await;
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
    assert!(deployment.drain_bodies("EventsQueue").await.is_empty(), "a refused webhook enqueues nothing");

    let sendgrid_key = SigningKey { secret: &sendgrid_private, public_url: None };
    // Signed but cut short: 400, naming the provider; counted as malformed (below).
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    let truncated = signer::sign(
        ProviderId::Sendgrid,
        b"[{\"email\": \"a@example.com\", \"ev",
        &mut headers,
        &sendgrid_key,
        Timestamp::now(),
    )
    .unwrap();
    let path = format!("/webhooks/sendgrid/{sendgrid_id}");
    let (status, body) =
        http_answer(&sendgrid_function.call(&api_gateway_v2("POST", &path, "", &headers, &truncated)).await);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("sendgrid: body"), "{body}");
    assert!(deployment.drain_bodies("EventsQueue").await.is_empty(), "a refused webhook enqueues nothing");
    for round in 0..2 {
        let mut envelope =
            signed_envelope("sendgrid-batch-every-type.json", ProviderId::Sendgrid, sendgrid_id, &sendgrid_key);
        // The retry comes through the other wiring, the function's own URL
        // (WebhookWiring=function-urls): the same function takes either event shape.
        if round == 1 {
            envelope = function_url(envelope);
        }
        let (status, body) = http_answer(&sendgrid_function.call(&envelope).await);
        assert_eq!(status, 200, "round {round}: {body}");
    }
    let twilio_function = deployment.start("IngestTwilio", &[]).await;
    let twilio_key = SigningKey { secret: "twilio-auth-token", public_url: Some(&twilio_url) };
    let envelope =
        signed_envelope("twilio-undelivered.json", ProviderId::Twilio, twilio["id"].as_str().unwrap(), &twilio_key);
    let (status, body) = http_answer(&twilio_function.call(&envelope).await);
    assert_eq!(status, 200, "{body}");

    // SES through its intake queue: the checked-in SQS envelope, as is.
    let ses_function =
        deployment.start("SesIntake", &[("TIDINGS_SES_SOURCE", ses["id"].as_str().unwrap().into())]).await;
    let envelope: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("lambda/ses-queue/bounce-permanent.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ses_function.call(&envelope).await, json!({"batchItemFailures": []}));

    // The processor stores what ingest queued: each event once, whatever came twice.
    let queued = deployment.drain_bodies("EventsQueue").await;
    let processor = deployment.start("Processor", &[]).await;
    // And one record that is not an event: dead-lettered with its reason, not retried forever.
    let mut batch = queued.clone();
    batch.push("not an event".into());
    let response = processor.call(&sqs_batch("events", "m", &batch)).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let dead = deployment.drain("EventsDeadLetterQueue").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some("not an event"));
    let reason = dead[0].message_attributes.as_ref().and_then(|a| a.get("tidings-reason"));
    assert!(
        reason.and_then(|r| r.string_value()).is_some_and(|r| r.contains("not a queued event")),
        "the reason travels with the dead letter: {reason:?}"
    );
    let mut expected = expected_ids(ProviderId::Sendgrid, "batch-every-type");
    expected.extend(expected_ids(ProviderId::Twilio, "undelivered"));
    expected.extend(expected_ids(ProviderId::Ses, "bounce-permanent"));
    assert!(queued.len() > expected.len(), "the retried batch was queued again ({} messages)", queued.len());
    assert_eq!(deployment.stored_ids().await, expected);

    // Fan-out delivers each stored event once, signed with the subscription's secret.
    let tasks = deployment.drain_bodies("DeliveriesQueue").await;
    assert_eq!(tasks.len(), 3 * expected.len(), "one delivery task per stored event and subscription");
    let fanout = deployment.start("Fanout", &[("TIDINGS_ALLOW_NETWORKS", "127.0.0.0/8".into())]).await;
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
    // The queue holds the same events, their signature in the message attributes.
    let queue_key = standard_webhooks::secret_key(&destination_secrets[1]).unwrap();
    let mut on_queue = BTreeSet::new();
    for message in common::receive_all(&deployment.sqs, &queue_url).await {
        let attributes = message.message_attributes().unwrap();
        let attribute = |name: &str| attributes[name].string_value().unwrap_or_default().to_owned();
        let body = message.body().unwrap();
        assert!(standard_webhooks::verify_signature(
            std::slice::from_ref(&queue_key),
            &attribute("webhook-id"),
            &attribute("webhook-timestamp"),
            body.as_bytes(),
            &attribute("webhook-signature"),
        ));
        let event: Value = serde_json::from_str(body).unwrap();
        assert!(on_queue.insert(event["id"].as_str().unwrap().to_owned()), "each event queued once");
    }
    assert_eq!(on_queue, expected);

    // And the admin API reads them back.
    let (status, page) = api(&api_function, &key, "GET", "/api/events?limit=100", None).await;
    assert_eq!(status, 200, "{page}");
    let listed: BTreeSet<String> =
        page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, expected);

    // So does the console, served by the same function behind the HTTP API, whose payload
    // carries the browser's cookies apart from its headers.
    let mut envelope = api_gateway_v2("GET", "/console/events", "refresh=off", &Headers::new(), b"");
    envelope["cookies"] = json!([format!("tidings_console={key}")]);
    let response = api_function.call(&envelope).await;
    let (status, html) = http_answer(&response);
    assert_eq!(status, 200, "{html}");
    let html = html.as_str().unwrap_or_default();
    let messages: BTreeSet<&str> =
        page["events"].as_array().unwrap().iter().filter_map(|e| e["data"]["message_id"].as_str()).collect();
    assert!(!messages.is_empty() && messages.iter().all(|m| html.contains(m)), "the stream lists every message");
    let signed_out = api_function.call(&api_gateway_v2("GET", "/console", "", &Headers::new(), b"")).await;
    assert_eq!(http_answer(&signed_out).0, 303, "no cookie, no console");

    // Each function wrote its metrics as EMF lines.
    let ingest_log = sendgrid_function.output();
    let sendgrid_events = expected_ids(ProviderId::Sendgrid, "batch-every-type").len() as f64;
    let sendgrid = [("Provider", "sendgrid")];
    assert_eq!(metric(&ingest_log, "WebhooksAccepted", &sendgrid).0, 2.0);
    assert_eq!(metric(&ingest_log, "Events", &sendgrid).0, 2.0 * sendgrid_events, "events by type, both posts");
    assert_eq!(metric(&ingest_log, "Events", &[("Provider", "sendgrid"), ("Type", "email.bounced")]).1, 2);
    assert_eq!(metric(&ingest_log, "EnqueueLatency", &sendgrid).1, 2);
    assert_eq!(metric(&ingest_log, "Rejected", &[("Provider", "sendgrid"), ("Reason", "unauthenticated")]).0, 1.0);
    assert_eq!(metric(&ingest_log, "Rejected", &[("Provider", "sendgrid"), ("Reason", "malformed")]).0, 1.0);
    assert_eq!(metric(&ingest_log, "SignatureFailures", &sendgrid).0, 1.0);
    let stored = metric(&processor.output(), "Stored", &[]).0;
    let duplicates = metric(&processor.output(), "Duplicates", &[]).0;
    assert_eq!((stored, duplicates), (expected.len() as f64, (queued.len() - expected.len()) as f64));
    assert_eq!(metric(&processor.output(), "DeadLettered", &[("Queue", "events")]).0, 1.0);
    let delivered = metric(&fanout.output(), "Deliveries", &[("Outcome", "delivered")]);
    assert_eq!(delivered.0, 3.0 * expected.len() as f64, "to the endpoint, the bus and the queue");
    assert_eq!(metric(&fanout.output(), "DeliveryAttempt", &[("Outcome", "delivered")]).0, 3.0 * expected.len() as f64);

    // The watch, as EventBridge Scheduler runs it: with thresholds low enough for these few
    // samples (set through the API), it announces crossings on the events queue, once each.
    let (status, settings) = api(&api_function, &key, "GET", "/api/deliverability/settings", None).await;
    assert_eq!(status, 200, "{settings}");
    let mut lowered = settings.clone();
    lowered["bounce_rate"] = json!(0.01);
    lowered["min_volume"] = json!(1);
    let (status, stored_settings) =
        api(&api_function, &key, "PUT", "/api/deliverability/settings", Some(lowered.clone())).await;
    assert_eq!(status, 200, "{stored_settings}");
    let (status, refused) = api(&api_function, &key, "PUT", "/api/deliverability/settings", Some(lowered)).await;
    assert_eq!(status, 409, "a write over a stale version is refused: {refused}");
    let watch = deployment.start("Watch", &[]).await;
    let run = watch.call(&json!({})).await;
    assert_eq!(run["failed"], 0, "{run}");
    assert!(run["announced"].as_u64().unwrap() >= 1, "{run}");
    let announced = deployment.drain_bodies("EventsQueue").await;
    assert!(!announced.is_empty());
    for body in &announced {
        let queued: Value = serde_json::from_str(body).unwrap();
        assert_eq!(queued["event"]["type"], "deliverability.threshold_crossed", "{body}");
    }
    let again = watch.call(&json!({})).await;
    assert_eq!(again["announced"], 0, "a crossing is announced once: {again}");
    assert!(metric(&watch.output(), "ThresholdsCrossed", &[]).0 >= 1.0);

    // Every AWS call each function made is one its role in the template allows.
    recorder("stop-recording").await;
    let started = ["Api", "IngestSendGrid", "IngestTwilio", "SesIntake", "Processor", "Fanout", "Watch"];
    let calls = recorded_calls(&recorder("download-recording").await, &deployment, &started);
    // Deployed with the subscriber's bus and queue as the stack's destinations.
    let destinations = [("EventBusDestinations", bus_arn.clone()), ("QueueDestinations", queue_arn.clone())];
    for (parameter, arn) in &destinations {
        deployment.template["Parameters"][*parameter]["Default"] = json!(arn);
    }
    let denied: Vec<String> = calls
        .iter()
        .filter(|c| !granted(&deployment, c))
        .map(|c| format!("{} calls {} on {}", c.function, c.action, c.resource))
        .collect();
    assert!(denied.is_empty(), "template.yaml does not grant:\n{}", denied.join("\n"));
    for (function, action, resource) in [
        ("IngestSendGrid", "sqs:SendMessageBatch", "EventsQueue"),
        ("Processor", "dynamodb:PutItem", "Table"),
        ("Processor", "sqs:SendMessageBatch", "DeliveriesQueue"),
        ("Processor", "sqs:SendMessage", "EventsDeadLetterQueue"),
        ("Api", "dynamodb:PutItem", "Table"),
        ("Watch", "dynamodb:Query", "Table"),
        ("Watch", "dynamodb:PutItem", "Table"),
        ("Watch", "sqs:SendMessageBatch", "EventsQueue"),
        ("IngestTwilio", "ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter{}"),
        ("Fanout", "events:PutEvents", &bus_arn),
        ("Fanout", "sqs:SendMessage", &queue_arn),
    ] {
        let resource = resource.replace("{}", &parameter);
        let call = Call { function: function.into(), action: action.into(), resource };
        assert!(calls.contains(&call), "no {call:?} recorded; the check above would be vacuous: {calls:#?}");
    }
    // Deployed without them (the default), the fan-out may send to neither.
    for (parameter, _) in &destinations {
        deployment.template["Parameters"][*parameter]["Default"] = json!("");
    }
    for (action, arn) in [("events:PutEvents", &bus_arn), ("sqs:SendMessage", &queue_arn)] {
        let call = Call { function: "Fanout".into(), action: action.into(), resource: arn.clone() };
        assert!(!granted(&deployment, &call), "{action} on {arn} granted without the parameter");
    }

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
