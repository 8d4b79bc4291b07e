//! The AWS adapters through the real AWS SDK against moto's server on loopback, which
//! `./scripts/test.sh` installs and starts (`TIDINGS_MOTO_ENDPOINT`). Each test makes its own
//! table and queues.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_sqs::types::QueueAttributeName;
use common::{expected_ids, fixture, samples};
use tidings_aws::{DynamoStore, QueueUrls, SqsQueues};
use tidings_core::pipeline::Processor;
use tidings_core::ports::{Outgoing, Queue, QueueName, StoreError};

fn endpoint() -> String {
    std::env::var("TIDINGS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto")
    })
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Aws {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

async fn aws() -> Aws {
    let config = tidings_aws::sdk_config_for_endpoint(&endpoint()).await;
    Aws { dynamo: aws_sdk_dynamodb::Client::new(&config), sqs: aws_sdk_sqs::Client::new(&config) }
}

impl Aws {
    async fn store(&self) -> DynamoStore {
        let table = unique("tidings");
        tidings_aws::dynamo::create_table(&self.dynamo, &table).await.unwrap();
        DynamoStore::new(self.dynamo.clone(), table)
    }

    /// The events queue with its dead-letter queue, as the template wires them.
    async fn queues(&self) -> (SqsQueues, String, String) {
        let name = unique("events");
        let dlq = self.sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
        let dlq_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let policy = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#);
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let urls = QueueUrls {
            queues: [(QueueName::Events, url.clone())].into_iter().collect(),
            dead_letters: [(QueueName::Events, dlq.clone())].into_iter().collect(),
        };
        (SqsQueues::new(self.sqs.clone(), urls), url, dlq)
    }

    /// Receives everything on `url` (what the SQS event source does for a Lambda).
    async fn receive_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            let messages = page.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for message in &messages {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            out.extend(messages);
        }
    }
}

#[tokio::test]
async fn dynamodb_store_conforms() {
    let aws = aws().await;
    let store = aws.store().await;
    tidings_tests::run_all(&store).await;
}

#[tokio::test]
async fn sqs_batches_within_limits_and_dead_letters_with_the_reason() {
    let aws = aws().await;
    let (queues, url, dlq) = aws.queues().await;
    let messages: Vec<Outgoing> =
        (0..23).map(|i| Outgoing { id: i.to_string(), body: format!("m{i}"), delay_seconds: 0 }).collect();
    queues.send(QueueName::Events, &messages).await.unwrap();
    let mut bodies: Vec<String> = aws.receive_all(&url).await.into_iter().map(|m| m.body.unwrap()).collect();
    bodies.sort_by_key(|b| b[1..].parse::<u32>().unwrap());
    assert_eq!(bodies, (0..23).map(|i| format!("m{i}")).collect::<Vec<_>>());

    queues.dead_letter(QueueName::Events, "poison", "events-queue message is not a queued event").await.unwrap();
    let dead = aws.receive_all(&dlq).await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0].message_attributes.as_ref().unwrap()["tidings-reason"].string_value.clone().unwrap();
    assert_eq!(reason, "events-queue message is not a queued event");

    let too_big = Outgoing { id: "0".into(), body: "x".repeat(300 * 1024), delay_seconds: 0 };
    let error: StoreError = queues.send(QueueName::Events, &[too_big]).await.unwrap_err();
    assert!(!error.retryable, "an oversized message will never fit: {error}");
}

#[tokio::test]
async fn every_sample_posted_twice_is_stored_once_on_dynamodb_and_sqs() {
    let aws = aws().await;
    let store = aws.store().await;
    let (queues, url, dlq) = aws.queues().await;
    let f = fixture(store.clone(), queues).await;
    let processor = Processor::new(store.clone(), 90);
    let mut accepted = 0;
    let mut processed = 0;
    for round in 0..2 {
        for (provider, path) in samples() {
            let (status, body) = f.post_sample(provider, &path).await;
            assert_eq!(status.as_u16(), 200, "round {round}: {}: {body}", path.display());
            accepted += body["accepted"].as_u64().unwrap() as usize;
            // Drain as we go, as the processor Lambda would, keeping moto's queue shallow.
            for message in aws.receive_all(&url).await {
                processor.process(message.body.as_deref().unwrap()).await.unwrap();
                processed += 1;
            }
        }
    }
    assert_eq!(processed, accepted);
    assert_eq!(f.stored_ids().await, expected_ids());
    assert!(aws.receive_all(&dlq).await.is_empty());
    common::check_states_and_suppressions(&f.store).await;
}
