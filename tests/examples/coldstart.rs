//! Cold start and memory of each Lambda function binary, measured against the Runtime API
//! emulator the Lambda-level test uses. Run by `infra/bench/coldstart.sh` (which builds the
//! release binaries and starts moto); results go in BENCHMARKS.md.
//!
//! - Cold start: time from exec to the function's first `GET /2018-06-01/runtime/invocation/next`
//!   (what Lambda's Init phase covers), for each function and for a hello-world
//!   `lambda_runtime` binary built with the same profile, started alternately; the median of
//!   each over the pairs, and their ratio.
//! - Peak RSS (`VmHWM`) after 1,000 invocations with a realistic event, AWS calls going to moto
//!   (its queues emptied every 50 invocations: moto slows down as they fill).
//!
//! Usage: coldstart [pairs] [invocations]      (defaults 21 and 1000; needs TIDINGS_MOTO_ENDPOINT)

#[path = "../tests/lambda/runtime_api.rs"]
mod runtime_api;

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_api::Function;
use serde_json::{Value, json};
use tidings_core::auth::signer::{self, SigningKey, generate_sendgrid_key_pair};
use tidings_core::ports::{ApiKey, KeyStore, SourceStore};
use tidings_core::source::Source;
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_tests::lambda_events::{api_gateway_v2, sqs_batch};

struct Subject {
    name: &'static str,
    binary: &'static str,
    env: Vec<(&'static str, String)>,
    event: Value,
}

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events().join(path)).unwrap()).unwrap()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(21);
    let invocations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let moto =
        std::env::var("TIDINGS_MOTO_ENDPOINT").expect("set TIDINGS_MOTO_ENDPOINT (infra/bench/coldstart.sh does)");
    // This example runs from <target>/release/examples; the binaries are in <target>/release.
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().to_path_buf();
    let binaries = examples.parent().unwrap().to_path_buf();

    // A deployment on moto: table, queues, a SendGrid and an SES source, an API key.
    let config = tidings_aws::sdk_config_for_endpoint(&moto).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let run = format!("bench-{}", std::process::id());
    tidings_aws::dynamo::create_table(&dynamo, &run).await.unwrap();
    let store = tidings_aws::DynamoStore::new(dynamo, run.clone());
    let mut env: Vec<(&'static str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("TIDINGS_TABLE", run.clone()),
        ("TIDINGS_LOG_LEVEL", "warn".into()),
    ];
    let mut queue_urls = Vec::new();
    for (queue, variable, dlq_variable) in tidings_aws::QUEUE_VARIABLES {
        let queue = queue.as_str();
        let url = sqs.create_queue().queue_name(format!("{run}-{queue}")).send().await.unwrap().queue_url.unwrap();
        let dlq = sqs.create_queue().queue_name(format!("{run}-{queue}-dlq")).send().await.unwrap().queue_url.unwrap();
        queue_urls.push((format!("{run}-{queue}"), url.clone()));
        env.push((variable, url));
        env.push((dlq_variable, dlq));
    }
    let (private, public) = generate_sendgrid_key_pair().unwrap();
    let source = |id: &str, provider, secrets: Vec<String>, topics: Vec<String>| Source {
        id: id.into(),
        workspace: "ws_default".into(),
        provider,
        description: String::new(),
        secrets,
        public_url: None,
        allowed_topics: topics,
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: Timestamp::now(),
    };
    store.put_source(&source("src_bench_sendgrid", ProviderId::Sendgrid, vec![public], vec![])).await.unwrap();
    let topic = "arn:aws:sns:eu-west-1:111122223333:ses-events".to_owned();
    store.put_source(&source("src_bench_ses", ProviderId::Ses, vec![], vec![topic])).await.unwrap();
    let key = "tdk_bench";
    let hash = tidings_api::api_key_hash(key);
    store
        .put_api_key(&ApiKey {
            id: "key_bench".into(),
            workspace: "ws_default".into(),
            hash,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();

    // What each function is invoked with.
    let sendgrid = {
        let envelope = read("lambda/http/sendgrid-batch-every-type.json");
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        let body = envelope["body"].as_str().unwrap().as_bytes().to_vec();
        let key = SigningKey { secret: &private, public_url: None };
        let body = signer::sign(ProviderId::Sendgrid, &body, &mut headers, &key, Timestamp::now()).unwrap();
        api_gateway_v2("POST", "/webhooks/sendgrid/src_bench_sendgrid", "", &headers, &body)
    };
    let api_call = {
        let mut headers = Headers::new();
        headers.insert("authorization", format!("Bearer {key}"));
        api_gateway_v2("GET", "/api/events", "limit=20", &headers, b"")
    };
    let delivery = json!({"workspace": "ws_default", "subscription": "sub_gone", "event_id": "evt_00000000000000000000000000000000"});
    let with = |extra: &[(&'static str, &str)]| {
        let mut all = env.clone();
        all.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        all
    };
    let subjects = vec![
        Subject {
            name: "ingest (SendGrid, 15-event batch)",
            binary: "ingest",
            env: with(&[("TIDINGS_PROVIDER", "sendgrid")]),
            event: sendgrid,
        },
        Subject {
            name: "ses-queue (one SNS record)",
            binary: "ses-queue",
            env: with(&[("TIDINGS_SES_SOURCE", "src_bench_ses")]),
            event: read("lambda/ses-queue/bounce-permanent.json"),
        },
        Subject {
            name: "processor (15 queued events)",
            binary: "processor",
            env: with(&[]),
            event: read("lambda/processor/sendgrid-batch-every-type.json"),
        },
        Subject {
            name: "fanout (task for a removed subscription)",
            binary: "fanout",
            env: with(&[]),
            event: sqs_batch("deliveries", "d", &[delivery.to_string()]),
        },
        Subject { name: "api (GET /api/events)", binary: "api", env: with(&[]), event: api_call },
    ];
    let hello = examples.join("hello_lambda");

    println!("cold start: exec to first /next, median of {pairs} alternated pairs with hello_lambda");
    println!(
        "| function | hello-world median | function median | ratio | peak RSS after {invocations} invocations | warm invocation median (AWS calls to moto) |"
    );
    println!("|---|---|---|---|---|---|");
    for subject in &subjects {
        let binary = binaries.join(subject.binary);
        let (mut base, mut own) = (Vec::new(), Vec::new());
        for _ in 0..pairs {
            let baseline = Function::start(&hello, "hello", &[]).await;
            base.push(baseline.initialized().await);
            drop(baseline);
            let function = Function::start(&binary, subject.binary, &subject.env).await;
            own.push(function.initialized().await);
            drop(function);
        }
        let function = Function::start(&binary, subject.binary, &subject.env).await;
        let mut warm = Vec::with_capacity(invocations);
        for invocation in 0..invocations {
            // moto answers SQS more slowly the more messages a queue holds (ingest adds 15 per
            // invocation); emptying the queues now and then keeps the run to minutes. Real SQS
            // has no such cost, so this changes nothing the function does.
            if invocation % 50 == 49 {
                // (PurgeQueue is allowed once a minute; a queue deleted and made again is empty.)
                for (name, url) in &queue_urls {
                    sqs.delete_queue().queue_url(url).send().await.unwrap();
                    let again = sqs.create_queue().queue_name(name).send().await.unwrap().queue_url;
                    assert_eq!(again.as_deref(), Some(url.as_str()), "{name} came back at another URL");
                }
            }
            let started = std::time::Instant::now();
            if let Err(error) = function.invoke(&subject.event).await {
                panic!("{}: {error}\n{}", subject.name, function.output());
            }
            warm.push(started.elapsed());
        }
        let rss = function.peak_rss_kib().map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let (base, own) = (median(base), median(own));
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2}× | {rss} | {:.2} ms |",
            subject.name,
            base.as_secs_f64() * 1000.0,
            own.as_secs_f64() * 1000.0,
            own.as_secs_f64() / base.as_secs_f64(),
            median(warm).as_secs_f64() * 1000.0
        );
    }
}
