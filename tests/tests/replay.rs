//! The AWS calls moto does not emulate (SQS `StartMessageMoveTask`/`ListMessageMoveTasks`,
//! SESv2 suppression-list calls), tested through the real SDK against recorded traffic: each
//! request the SDK makes is compared with the one AWS documents (URI, operation, JSON body),
//! and answered with the response AWS gives.

use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use axum::http;
use tidings_aws::{QueueUrls, SqsQueues};
use tidings_core::ports::{DeadLetters, MoveMethod, QueueName};

const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/tidings-events";
const DLQ: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/tidings-events-dlq";
const QUEUE_ARN: &str = "arn:aws:sqs:eu-west-1:111122223333:tidings-events";
const DLQ_ARN: &str = "arn:aws:sqs:eu-west-1:111122223333:tidings-events-dlq";

/// One SQS call (AWS JSON 1.0: `POST /` with the operation in `X-Amz-Target`) and its answer.
fn sqs(operation: &str, request: serde_json::Value, response: serde_json::Value) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::post("https://sqs.eu-west-1.amazonaws.com/")
            .header("x-amz-target", format!("AmazonSQS.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from(request.to_string()))
            .unwrap(),
        http::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from(response.to_string()))
            .unwrap(),
    )
}

fn sqs_queues(replay: &StaticReplayClient) -> SqsQueues {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "replay"))
        .http_client(replay.clone())
        .build();
    let urls = QueueUrls {
        queues: [(QueueName::Events, QUEUE.to_owned())].into(),
        dead_letters: [(QueueName::Events, DLQ.to_owned())].into(),
    };
    SqsQueues::new(aws_sdk_sqs::Client::from_conf(config), urls)
}

fn arn_of(url: &str, arn: &str) -> ReplayEvent {
    sqs(
        "GetQueueAttributes",
        serde_json::json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
        serde_json::json!({"Attributes": {"QueueArn": arn}}),
    )
}

fn status_calls(waiting: u32, task: serde_json::Value) -> Vec<ReplayEvent> {
    vec![
        sqs(
            "GetQueueAttributes",
            serde_json::json!({"QueueUrl": DLQ, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            serde_json::json!({"Attributes": {"ApproximateNumberOfMessages": waiting.to_string()}}),
        ),
        arn_of(DLQ, DLQ_ARN),
        sqs(
            "ListMessageMoveTasks",
            serde_json::json!({"SourceArn": DLQ_ARN, "MaxResults": 1}),
            serde_json::json!({"Results": task}),
        ),
    ]
}

#[tokio::test]
async fn redrive_starts_an_sqs_move_task_from_the_dead_letter_queue_back_to_its_queue() {
    let mut calls = vec![
        arn_of(DLQ, DLQ_ARN),
        arn_of(QUEUE, QUEUE_ARN),
        sqs(
            "StartMessageMoveTask",
            serde_json::json!({"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN}),
            serde_json::json!({"TaskHandle": "eyJ0YXNrSWQiOiIxIn0="}),
        ),
    ];
    calls.extend(status_calls(
        12,
        serde_json::json!([{
            "TaskHandle": "eyJ0YXNrSWQiOiIxIn0=", "Status": "RUNNING", "SourceArn": DLQ_ARN,
            "DestinationArn": QUEUE_ARN, "ApproximateNumberOfMessagesMoved": 3,
            "ApproximateNumberOfMessagesToMove": 15, "StartedTimestamp": 1764311400000_i64
        }]),
    ));
    let replay = StaticReplayClient::new(calls);
    let status = sqs_queues(&replay).redrive_dead_letters(QueueName::Events, MoveMethod::Native).await.unwrap();
    replay.relaxed_requests_match();
    assert_eq!(status.queue, "events");
    assert_eq!(status.status.as_deref(), Some("RUNNING"));
    assert_eq!((status.waiting, status.moved, status.to_move), (12, 3, Some(15)), "progress, and what is left");
}

#[tokio::test]
async fn dead_letter_status_reports_a_failed_move_and_what_is_still_waiting() {
    let replay = StaticReplayClient::new(status_calls(
        7,
        serde_json::json!([{
            "TaskHandle": "eyJ0YXNrSWQiOiIyIn0=", "Status": "FAILED", "SourceArn": DLQ_ARN,
            "ApproximateNumberOfMessagesMoved": 0, "ApproximateNumberOfMessagesToMove": 7,
            "FailureReason": "AWS.SimpleQueueService.NonExistentQueue", "StartedTimestamp": 1764311400000_i64
        }]),
    ));
    let status = sqs_queues(&replay).dead_letter_status(QueueName::Events).await.unwrap();
    replay.relaxed_requests_match();
    assert_eq!(status.status.as_deref(), Some("FAILED"));
    assert_eq!(status.failure.as_deref(), Some("AWS.SimpleQueueService.NonExistentQueue"));
    assert_eq!(status.waiting, 7);
}

#[tokio::test]
async fn a_refused_move_task_is_an_error_naming_the_operation_and_sqs_reason() {
    let replay = StaticReplayClient::new(vec![
        arn_of(DLQ, DLQ_ARN),
        arn_of(QUEUE, QUEUE_ARN),
        ReplayEvent::new(
            http::Request::post("https://sqs.eu-west-1.amazonaws.com/")
                .header("x-amz-target", "AmazonSQS.StartMessageMoveTask")
                .body(SdkBody::from(serde_json::json!({"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN}).to_string()))
                .unwrap(),
            http::Response::builder()
                .status(400)
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amzn-query-error", "AWS.SimpleQueueService.UnsupportedOperation;Sender")
                .body(SdkBody::from(
                    serde_json::json!({
                        "__type": "com.amazonaws.sqs#UnsupportedOperation",
                        "message": "A move task is already running for this source."
                    })
                    .to_string(),
                ))
                .unwrap(),
        ),
    ]);
    let error = sqs_queues(&replay).redrive_dead_letters(QueueName::Events, MoveMethod::Native).await.unwrap_err();
    replay.relaxed_requests_match();
    assert!(!error.retryable, "asking again will not help");
    assert!(error.message.starts_with("StartMessageMoveTask: "), "{}", error.message);
    assert!(error.message.contains("already running"), "{}", error.message);
}
