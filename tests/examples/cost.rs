//! What a million events cost on AWS, from measured use: SendGrid webhooks go through ingest
//! (verify, normalize, enqueue on SQS), the processor (store in DynamoDB, one delivery task per
//! subscription) and fan-out (a signed POST to one subscriber on loopback, the attempt logged),
//! all through the real AWS SDK against moto. The adapters count the requests they make and
//! the capacity units those cost by DynamoDB's billing rules on the real item sizes; the CPU
//! time each stage spends is read from the kernel. Then the same webhooks again, as a provider's
//! retries would send them. BENCHMARKS.md has the table and how to read it.
//!
//! ```sh
//! target/moto-venv/bin/moto_server -p 5000 &   # installed by ./scripts/test.sh
//! TIDINGS_MOTO_ENDPOINT=http://127.0.0.1:5000 cargo run --release -p tidings-tests --example cost -- 1000 1
//! TIDINGS_MOTO_ENDPOINT=http://127.0.0.1:5000 cargo run --release -p tidings-tests --example cost -- 1 200
//! ```
//!
//! Arguments: events per webhook (default 1000), webhooks (default 1), `1` when the workspace
//! has erased someone first (default 0), the subscriptions' destination: `https` (the
//! default), `eventbridge`, `sqs` or `sqs-fifo`, and how many subscriptions take every event
//! (default 1).
//!
//! It ends with the partition model: the capacity units every partition key of the table and
//! its indexes received, per event, scaled to 1,000, 10,000 and 50,000 events per second.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tidings_aws::{DynamoStore, QueueUrls, SqsQueues};
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::pipeline::{Fanout, Ingest, IngestRequest, Processor};
use tidings_core::ports::{QueueName, SourceStore, SubscriptionStore};
use tidings_core::source::Source;
use tidings_core::{Headers, ProviderId, Timestamp, Transport};

/// us-east-1 list prices, USD (BENCHMARKS.md names the pages).
const DYNAMODB_PER_MILLION_WRU: f64 = 0.625;
const DYNAMODB_PER_MILLION_RRU: f64 = 0.125;
/// Provisioned capacity (`TableBilling=provisioned`): per unit-hour, and the utilisation the
/// template's auto scaling keeps (target tracking at 70%), so a consumed unit costs
/// price ÷ 3,600 s ÷ 0.7.
const DYNAMODB_WCU_HOUR: f64 = 0.000_65;
const DYNAMODB_RCU_HOUR: f64 = 0.000_13;
const PROVISIONED_UTILISATION: f64 = 0.7;
const SQS_PER_MILLION: f64 = 0.40;
const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;
const HTTP_API_PER_MILLION: f64 = 1.00;
/// The functions' memory (template.yaml `Globals.Function.MemorySize`).
const LAMBDA_GB: f64 = 256.0 / 1024.0;
/// Assumed in-region round trips, which a Lambda is billed for while it waits: DynamoDB
/// single-item reads and writes, SQS batch sends, and the subscriber's answer.
const DYNAMODB_CALL_MS: f64 = 5.0;
const SQS_CALL_MS: f64 = 10.0;
const SUBSCRIBER_MS: f64 = 50.0;
/// An in-region `PutEvents` or `SendMessage` round trip, waited for like a subscriber's answer.
const DESTINATION_MS: f64 = 20.0;
/// Per million requests, each 64 KB of payload one request: EventBridge custom events, SQS
/// FIFO (standard is [`SQS_PER_MILLION`]).
const EVENTBRIDGE_PER_MILLION: f64 = 1.00;
const SQS_FIFO_PER_MILLION: f64 = 0.50;
/// SQS event source batch sizes (template.yaml): processor 25, fan-out 10.
const PROCESSOR_BATCH: f64 = 25.0;
const FANOUT_BATCH: f64 = 10.0;

struct NoFetch;
impl tidings_core::ports::Fetcher for NoFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, tidings_core::ports::FetchError> {
        Err(tidings_core::ports::FetchError::Transport(format!("no fetch of {url}")))
    }
}

/// CPU time this thread has used (the runtime is single-threaded, so that is all the work).
fn cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// `n` SendGrid events cycling through the sample batch's types, 4 events per message.
fn batch(webhook: usize, n: usize) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/sendgrid/batch-every-type.json");
    let sample: Vec<Value> = serde_json::from_slice(&std::fs::read(path).expect("sample")).expect("json");
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let k = webhook * n + i;
            let mut event = sample[k % sample.len()].clone();
            event["sg_event_id"] = Value::String(format!("cost-{k:07}"));
            event["email"] = Value::String(format!("user{}@example.com", k / 4));
            event["sg_message_id"] = Value::String(format!("msg{}.filter0001", k / 4));
            event
        })
        .collect();
    serde_json::to_vec(&events).expect("encode")
}

/// What one stage used.
#[derive(Default)]
struct Stage {
    dynamo: BTreeMap<&'static str, u64>,
    wru: u64,
    rru: f64,
    sqs_sends: u64,
    /// Messages the stage's Lambda event source handed it (0 for the HTTP stage).
    received: u64,
    invocations: f64,
    cpu: Duration,
    http_out: u64,
    /// Requests to the subscription's bus or queue, and their price per million.
    destination_calls: u64,
    destination_price: f64,
}

impl Stage {
    fn dynamo_calls(&self) -> u64 {
        self.dynamo.values().sum()
    }
}

struct Meter<'a> {
    store: &'a DynamoStore,
    queues: &'a SqsQueues,
    usage: tidings_aws::dynamo::UsageSnapshot,
    sqs: u64,
    cpu: Duration,
}

impl<'a> Meter<'a> {
    fn start(store: &'a DynamoStore, queues: &'a SqsQueues) -> Self {
        Meter { store, queues, usage: store.usage(), sqs: queues.requests(), cpu: cpu() }
    }

    fn stop(self, received: u64, invocations: f64, http_out: u64) -> Stage {
        let cpu = cpu() - self.cpu;
        let now = self.store.usage();
        let dynamo = now
            .requests
            .iter()
            .map(|(op, n)| (*op, n - self.usage.requests.get(op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Stage {
            dynamo,
            wru: now.write_units - self.usage.write_units,
            rru: now.read_units() - self.usage.read_units(),
            sqs_sends: self.queues.requests() - self.sqs,
            received,
            invocations,
            cpu,
            http_out,
            destination_calls: 0,
            destination_price: 0.0,
        }
    }
}

/// An AWS publisher that counts its requests.
struct Counting {
    inner: tidings_aws::AwsPublisher,
    calls: Arc<AtomicU64>,
}

impl tidings_core::ports::Publisher for Counting {
    fn publish<'a>(
        &'a self,
        target: &'a tidings_core::destination::AwsTarget,
        publication: &'a tidings_core::ports::Publication<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = tidings_core::delivery::Response> + Send + 'a>> {
        self.calls.fetch_add(publication.body.len().div_ceil(64 * 1024) as u64, Ordering::Relaxed);
        self.inner.publish(target, publication)
    }
}

fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    for message in messages {
        let mut record = aws_lambda_events::sqs::SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.body = message.body.clone();
        event.records.push(record);
    }
    event
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let page = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.expect("receive");
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for message in &messages {
            let receipt = message.receipt_handle.clone().unwrap_or_default();
            sqs.delete_message().queue_url(url).receipt_handle(receipt).send().await.expect("delete");
        }
        out.extend(messages);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        arguments.get(i).map_or(default, |a| a.parse::<usize>().expect("numbers: events per webhook, webhooks, 0/1"))
    };
    let per_webhook = number(0, 1000).max(1);
    let webhooks = number(1, 1).max(1);
    // 1: the workspace has erased someone first, so each event's and delivery's recipient is
    // looked up by hash.
    let after_erasure = number(2, 0) == 1;
    let destination = arguments.get(3).map_or("https", String::as_str).to_owned();
    let subscriptions = number(4, 1).max(1);
    let endpoint = std::env::var("TIDINGS_MOTO_ENDPOINT").expect("set TIDINGS_MOTO_ENDPOINT to a moto server");
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let run = std::process::id();
    let table = format!("tidings-cost-{run}");
    tidings_aws::dynamo::create_table(&dynamo, &table).await.expect("table");
    let mut urls = QueueUrls::default();
    for name in [QueueName::Events, QueueName::Deliveries] {
        let created = sqs.create_queue().queue_name(format!("cost-{run}-{}", name.as_str())).send().await;
        urls.queues.insert(name, created.expect("queue").queue_url.expect("url"));
    }
    let (events_url, deliveries_url) =
        (urls.queues[&QueueName::Events].clone(), urls.queues[&QueueName::Deliveries].clone());
    let store = DynamoStore::new(dynamo, table);
    let queues = SqsQueues::new(sqs.clone(), urls);

    // One subscriber on loopback, answering at once.
    let delivered = Arc::new(AtomicU64::new(0));
    let count = delivered.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            count.fetch_add(1, Ordering::Relaxed);
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let hook = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (private, public) = signer::generate_sendgrid_key_pair().expect("key");
    let now = Timestamp::now();
    let source = Source {
        id: "src_cost".into(),
        workspace: "ws_cost".into(),
        provider: ProviderId::Sendgrid,
        description: String::new(),
        secrets: vec![public],
        public_url: None,
        allowed_topics: vec![],
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: now,
    };
    store.put_source(&source).await.expect("source");
    let (url, destination_price) = match destination.as_str() {
        "https" => (hook, 0.0),
        "eventbridge" => {
            let events = aws_sdk_eventbridge::Client::new(&config);
            let bus = events.create_event_bus().name(format!("cost-{run}")).send().await.expect("bus");
            (bus.event_bus_arn.expect("arn"), EVENTBRIDGE_PER_MILLION)
        }
        "sqs" | "sqs-fifo" => {
            let fifo = destination == "sqs-fifo";
            let name = format!("cost-{run}-destination{}", if fifo { ".fifo" } else { "" });
            let mut request = sqs.create_queue().queue_name(&name);
            if fifo {
                request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
            }
            request.send().await.expect("destination queue");
            let price = if fifo { SQS_FIFO_PER_MILLION } else { SQS_PER_MILLION };
            (format!("arn:aws:sqs:us-east-1:123456789012:{name}"), price)
        }
        other => panic!("destination {other:?}: https, eventbridge, sqs or sqs-fifo"),
    };
    for i in 0..subscriptions {
        let id = if i == 0 { "sub_cost".to_owned() } else { format!("sub_cost{i}") };
        let subscription = tidings_tests::subscription_to("ws_cost", &id, &url, &["*"]);
        store.put_subscription(&subscription).await.expect("subscription");
    }
    if after_erasure {
        tidings_core::pipeline::erase_recipient(&store, "ws_cost", "someone.else@example.org", now)
            .await
            .expect("erase");
    }

    let ingest = Ingest::new(store.clone(), queues.clone(), NoFetch);
    let processor = Processor::with_fanout(store.clone(), queues.clone(), 90);
    let loopback = tidings_core::ssrf::Guard::allowing(vec!["127.0.0.0/8".parse().expect("network")]);
    let published = Arc::new(AtomicU64::new(0));
    let publisher =
        Counting { inner: tidings_aws::AwsPublisher::with_config(config.clone()), calls: published.clone() };
    let sender = tidings_fanout::Deliverer::new(loopback, Duration::from_secs(5))
        .expect("sender")
        .with_publisher(Arc::new(publisher));
    let fanout = Fanout::new(store.clone(), queues.clone(), sender);
    let bodies: Vec<(Vec<u8>, Headers)> = (0..webhooks)
        .map(|w| {
            let mut headers = Headers::new();
            let key = SigningKey { secret: &private, public_url: None };
            let body =
                signer::sign(ProviderId::Sendgrid, &batch(w, per_webhook), &mut headers, &key, now).expect("sign");
            (body, headers)
        })
        .collect();
    let events = (per_webhook * webhooks) as f64;
    let erased = if after_erasure { "; the workspace has erased a recipient" } else { "" };
    println!(
        "{webhooks} SendGrid webhook(s) of {per_webhook} event(s); {subscriptions} subscription(s) ({destination}) for every event{erased}\n"
    );
    let partitions_before = store.partitions();

    for round in ["first delivery", "the same webhooks again (a provider's retries)"] {
        let meter = Meter::start(&store, &queues);
        for (body, headers) in &bodies {
            let request = IngestRequest {
                provider: ProviderId::Sendgrid,
                source_id: "src_cost",
                body,
                headers,
                query: None,
                transport: Transport::Http,
                received_at: Timestamp::now(),
            };
            let response = ingest.handle(request).await;
            assert_eq!(response.status, 200, "{}", response.body);
        }
        let ingest_stage = meter.stop(0, webhooks as f64, 0);

        let queued = drain(&sqs, &events_url).await;
        let meter = Meter::start(&store, &queues);
        for chunk in queued.chunks(PROCESSOR_BATCH as usize) {
            let response = tidings_processor::handle(&processor, &queues, sqs_event(chunk)).await;
            assert!(response.batch_item_failures.is_empty(), "processor failures");
        }
        let processor_stage = meter.stop(queued.len() as u64, (queued.len() as f64 / PROCESSOR_BATCH).ceil(), 0);

        let tasks = drain(&sqs, &deliveries_url).await;
        let before = delivered.load(Ordering::Relaxed);
        let published_before = published.load(Ordering::Relaxed);
        let meter = Meter::start(&store, &queues);
        for chunk in tasks.chunks(FANOUT_BATCH as usize) {
            let response = tidings_fanout::handle(&fanout, &queues, sqs_event(chunk)).await;
            assert!(response.batch_item_failures.is_empty(), "fan-out failures");
        }
        let posts = delivered.load(Ordering::Relaxed) - before;
        let mut fanout_stage = meter.stop(tasks.len() as u64, (tasks.len() as f64 / FANOUT_BATCH).ceil(), posts);
        fanout_stage.destination_calls = published.load(Ordering::Relaxed) - published_before;
        fanout_stage.destination_price = destination_price;
        let posts = posts + fanout_stage.destination_calls;

        println!("## {round}: {} events queued, {} delivery tasks, {posts} deliveries\n", queued.len(), tasks.len());
        report(
            events,
            per_webhook,
            &[("ingest", &ingest_stage), ("processor", &processor_stage), ("fan-out", &fanout_stage)],
        );
        if round == "first delivery" {
            partition_model(&partitions_before, &store.partitions(), events);
        }
    }
}

/// DynamoDB's limits on one partition, per second.
const PARTITION_WRITE_UNITS: f64 = 1_000.0;
const PARTITION_READ_UNITS: f64 = 3_000.0;
/// A key that took at least this share of the workload's events grows with the event rate
/// (a workspace's day index, its suppression list, a subscription): its load is its units per
/// event times the rate. A key below it belongs to a few events (a message, an event, a
/// recipient, a delivery): more events per second are more such keys, not more on one.
const SHARED_KEY_SHARE: f64 = 0.05;

/// A partition key (index and value), its write and read units per event, and whether its load
/// grows with the event rate.
type KeyLoad = (String, f64, f64, bool);

/// The partition model: each key's units per event in the first round, and at 1,000, 10,000 and
/// 50,000 events per second the load on the hottest keys against DynamoDB's per-partition limits.
fn partition_model(
    before: &BTreeMap<(&'static str, String), tidings_aws::dynamo::PartitionLoad>,
    after: &BTreeMap<(&'static str, String), tidings_aws::dynamo::PartitionLoad>,
    events: f64,
) {
    let mut keys: Vec<KeyLoad> = Vec::new();
    let (mut total_writes, mut total_reads) = (0.0, 0.0);
    for ((target, pk), load) in after {
        let earlier = before.get(&(*target, pk.clone())).copied().unwrap_or_default();
        let writes = (load.write_units - earlier.write_units) as f64 / events;
        let reads = (load.read_half_units - earlier.read_half_units) as f64 / 2.0 / events;
        if writes == 0.0 && reads == 0.0 {
            continue;
        }
        total_writes += writes;
        total_reads += reads;
        let shared = writes.max(reads) >= SHARED_KEY_SHARE;
        keys.push((format!("{target} {pk}"), writes, reads, shared));
    }
    keys.sort_by(|a, b| (b.1 + b.2 / 3.0).total_cmp(&(a.1 + a.2 / 3.0)));
    println!("\n### Partition model: units per event on the busiest keys ({} keys in all)\n", keys.len());
    println!("| partition key | write units per event | read units per event | grows with the rate |");
    println!("|---|---|---|---|");
    for (key, writes, reads, shared) in keys.iter().take(12) {
        println!("| `{key}` | {writes:.4} | {reads:.4} | {} |", if *shared { "yes" } else { "no" });
    }
    let hottest = keys.iter().filter(|k| k.3).map(|k| k.1).fold(0.0, f64::max);
    println!(
        "\nThe hottest key takes {:.0}% of all write units ({total_writes:.2} per event) and the hottest read key {:.0}% of all read units ({total_reads:.2} per event).\n",
        100.0 * hottest / total_writes.max(f64::MIN_POSITIVE),
        100.0 * keys.iter().filter(|k| k.3).map(|k| k.2).fold(0.0, f64::max) / total_reads.max(f64::MIN_POSITIVE)
    );
    println!(
        "| events/s | hottest write key | its WCU/s | hottest read key | its RCU/s | keys over a partition's 1,000 WCU or 3,000 RCU |"
    );
    println!("|---|---|---|---|---|---|");
    for rate in [1_000.0, 10_000.0, 50_000.0] {
        let load = |per_event: f64, shared: bool| if shared { per_event * rate } else { per_event };
        let by = |pick: &dyn Fn(&KeyLoad) -> f64| {
            keys.iter().max_by(|a, b| pick(a).total_cmp(&pick(b))).map(|k| (k.0.clone(), pick(k))).unwrap_or_default()
        };
        let (write_key, writes) = by(&|k| load(k.1, k.3));
        let (read_key, reads) = by(&|k| load(k.2, k.3));
        let over: Vec<&str> = keys
            .iter()
            .filter(|k| load(k.1, k.3) > PARTITION_WRITE_UNITS || load(k.2, k.3) > PARTITION_READ_UNITS)
            .map(|k| k.0.as_str())
            .collect();
        println!(
            "| {rate:.0} | `{write_key}` | {writes:.0} | `{read_key}` | {reads:.0} | {} |",
            if over.is_empty() { "none".to_owned() } else { over.join(", ") }
        );
    }
}

fn report(events: f64, per_webhook: usize, stages: &[(&str, &Stage)]) {
    let per = |n: f64| n / events;
    println!("| per event | {} | total |", stages.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "));
    println!("|---|{}---|", "---|".repeat(stages.len()));
    let row = |label: &str, f: &dyn Fn(&Stage) -> f64, digits: usize| {
        let values: Vec<f64> = stages.iter().map(|(_, s)| per(f(s))).collect();
        let total: f64 = values.iter().sum();
        let cells: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
        println!("| {label} | {} | {total:.digits$} |", cells.join(" | "));
    };
    let mut operations: Vec<&str> = stages.iter().flat_map(|(_, s)| s.dynamo.keys().copied()).collect();
    operations.sort_unstable();
    operations.dedup();
    for op in operations {
        row(&format!("DynamoDB {op}"), &|s| s.dynamo.get(op).copied().unwrap_or(0) as f64, 3);
    }
    row("DynamoDB write units", &|s| s.wru as f64, 3);
    row("DynamoDB read units", &|s| s.rru, 3);
    row("SQS sends (SendMessageBatch)", &|s| s.sqs_sends as f64, 3);
    // The Lambda event source receives in tens and deletes each batch it handled.
    row("SQS receives + deletes (event source)", &|s| 2.0 * (s.received as f64 / 10.0).ceil(), 3);
    row("Lambda invocations", &|s| s.invocations, 4);
    row("Destination requests (PutEvents / SendMessage)", &|s| s.destination_calls as f64, 3);
    row("CPU µs", &|s| s.cpu.as_secs_f64() * 1e6, 1);
    let billed_ms = |s: &Stage| {
        s.cpu.as_secs_f64() * 1000.0
            + s.dynamo_calls() as f64 * DYNAMODB_CALL_MS
            + s.sqs_sends as f64 * SQS_CALL_MS
            // A fan-out batch's deliveries go out concurrently: one subscriber wait per invocation.
            + (s.http_out as f64).min(s.invocations) * SUBSCRIBER_MS
            + (s.destination_calls as f64).min(s.invocations) * DESTINATION_MS
    };
    row("Lambda ms billed (CPU + modelled waits)", &billed_ms, 3);

    let total = |f: &dyn Fn(&Stage) -> f64| stages.iter().map(|(_, s)| per(f(s))).sum::<f64>() * 1e6;
    let dynamo =
        total(&|s| s.wru as f64) * DYNAMODB_PER_MILLION_WRU / 1e6 + total(&|s| s.rru) * DYNAMODB_PER_MILLION_RRU / 1e6;
    let provisioned = (total(&|s| s.wru as f64) * DYNAMODB_WCU_HOUR + total(&|s| s.rru) * DYNAMODB_RCU_HOUR)
        / 3600.0
        / PROVISIONED_UTILISATION;
    let sqs = total(&|s| s.sqs_sends as f64 + 2.0 * (s.received as f64 / 10.0).ceil()) * SQS_PER_MILLION / 1e6;
    let lambda = total(&|s| s.invocations) * LAMBDA_PER_MILLION_REQUESTS / 1e6
        + total(&billed_ms) / 1000.0 * LAMBDA_GB * LAMBDA_ARM_PER_GB_SECOND;
    let http_api = 1e6 / per_webhook as f64 * HTTP_API_PER_MILLION / 1e6;
    let destination = total(&|s| s.destination_calls as f64 * s.destination_price) / 1e6;
    println!("\n| USD per million events | HTTP API wiring | function URL wiring |");
    println!("|---|---|---|");
    println!("| DynamoDB (on demand) | {dynamo:.3} | {dynamo:.3} |");
    println!("| SQS | {sqs:.3} | {sqs:.3} |");
    println!("| Lambda (arm64, 256 MB) | {lambda:.3} | {lambda:.3} |");
    println!("| API Gateway HTTP API | {http_api:.3} | 0.000 |");
    println!("| destination (EventBridge, SQS) | {destination:.3} | {destination:.3} |");
    let all = dynamo + sqs + lambda + destination;
    println!("| **all** | **{:.2}** | **{:.2}** |", all + http_api, all);
    let with_provisioned = all - dynamo + provisioned;
    println!(
        "| DynamoDB provisioned (`TableBilling=provisioned`, 70% utilised) | {provisioned:.3} | {provisioned:.3} |"
    );
    println!("| **all, provisioned** | **{:.2}** | **{:.2}** |\n", with_provisioned + http_api, with_provisioned);
}
