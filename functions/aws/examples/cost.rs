//! What one event costs on AWS, measured: a 1,000-event SendGrid batch goes through ingest
//! (verify, normalize, enqueue on SQS) and the processor (store in DynamoDB), and the requests
//! and capacity units the adapters used are printed per event. Then the same batch again, as
//! SendGrid's retries would send it.
//!
//! ```sh
//! ./target/moto-venv/bin/moto_server -p 5000 &   # installed by ./scripts/test.sh
//! TIDINGS_MOTO_ENDPOINT=http://127.0.0.1:5000 cargo run -p tidings-aws --example cost
//! ```

use std::path::Path;

use serde_json::Value;
use tidings_aws::{DynamoStore, QueueUrls, SqsQueues};
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::pipeline::{Ingest, IngestRequest, Processor};
use tidings_core::ports::{QueueName, Store};
use tidings_core::source::Source;
use tidings_core::{Headers, ProviderId, Timestamp, Transport};

struct NoFetch;
impl tidings_core::ports::Fetcher for NoFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        Err(format!("no fetch of {url}"))
    }
}

fn batch(n: usize) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/sendgrid/batch-every-type.json");
    let sample: Vec<Value> = serde_json::from_slice(&std::fs::read(path).expect("sample")).expect("json");
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut event = sample[i % sample.len()].clone();
            event["sg_event_id"] = Value::String(format!("cost-{i:06}"));
            event["email"] = Value::String(format!("user{}@example.com", i % 250));
            event["sg_message_id"] = Value::String(format!("msg{}.filter0001", i % 250));
            event
        })
        .collect();
    serde_json::to_vec(&events).expect("encode")
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::var("TIDINGS_MOTO_ENDPOINT").expect("set TIDINGS_MOTO_ENDPOINT to a moto server");
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let table = format!("tidings-cost-{}", std::process::id());
    tidings_aws::dynamo::create_table(&dynamo, &table).await.expect("table");
    let url = sqs
        .create_queue()
        .queue_name(format!("cost-{}", std::process::id()))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let store = DynamoStore::new(dynamo, table);
    let queues = SqsQueues::new(
        sqs.clone(),
        QueueUrls { queues: [(QueueName::Events, url.clone())].into(), ..QueueUrls::default() },
    );

    let (private, public) = signer::generate_sendgrid_key_pair().expect("key");
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
        created_at: Timestamp::now(),
    };
    store.put_source(&source).await.expect("source");
    let ingest = Ingest::new(store.clone(), queues.clone(), NoFetch);
    let processor = Processor::new(store.clone(), 90);
    let events = 1000;
    let body = batch(events);
    let mut headers = Headers::new();
    let body = signer::sign(
        ProviderId::Sendgrid,
        &body,
        &mut headers,
        &SigningKey { secret: &private, public_url: None },
        Timestamp::now(),
    )
    .expect("sign");
    println!("payload: one SendGrid batch of {events} events, {} bytes; 250 messages to 250 recipients\n", body.len());

    for round in ["first delivery", "the same batch again (a provider retry)"] {
        let (store_before, sqs_before) = (store.usage(), queues.requests());
        let request = IngestRequest {
            provider: ProviderId::Sendgrid,
            source_id: "src_cost",
            body: &body,
            headers: &headers,
            query: None,
            transport: Transport::Http,
            received_at: Timestamp::now(),
        };
        let response = ingest.handle(request).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let mut processed = 0;
        loop {
            let page = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.expect("receive");
            let messages = page.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in &messages {
                processor.process(message.body.as_deref().unwrap_or_default()).await.expect("process");
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
                processed += 1;
            }
        }
        let used = store.usage();
        let per = |n: u64| n as f64 / processed as f64;
        println!("{round}: {processed} events");
        println!("  SQS SendMessageBatch (ingest)        {:.3} requests/event", per(queues.requests() - sqs_before));
        println!(
            "  SQS Receive + DeleteMessageBatch     0.200 requests/event (the Lambda event source, batches of 10)"
        );
        for (operation, count) in &used.requests {
            let before = store_before.requests.get(operation).copied().unwrap_or(0);
            println!("  DynamoDB {operation:<27} {:.3} requests/event", per(count - before));
        }
        println!(
            "  DynamoDB write units                 {:.3} WRU/event",
            per(used.write_units - store_before.write_units)
        );
        println!(
            "  DynamoDB read units                  {:.3} RRU/event\n",
            per(used.read_units - store_before.read_units)
        );
    }
}
