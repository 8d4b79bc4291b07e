//! The AWS calls moto does not emulate (SQS `StartMessageMoveTask`/`ListMessageMoveTasks`,
//! SESv2 suppression-list calls), tested through the real SDK against recorded traffic: each
//! request the SDK makes is compared with the one AWS documents (URI, operation, JSON body),
//! and answered with the response AWS gives.

mod common;

use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use axum::http;
use common::sqs_event;
use tidings_aws::{QueueUrls, SqsQueues};
use tidings_core::ports::EventStore;
use tidings_core::ports::KeyStore;
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
    assert!(!error.is_retryable(), "asking again will not help");
    assert!(error.message().starts_with("StartMessageMoveTask: "), "{}", error.message());
    assert!(error.message().contains("already running"), "{}", error.message());
}

/// One SESv2 call (REST-JSON) and its answer.
fn sesv2(method: &str, path: &str, request: Option<serde_json::Value>, status: u16, response: &str) -> ReplayEvent {
    let mut builder =
        http::Request::builder().method(method).uri(format!("https://email.eu-west-1.amazonaws.com{path}"));
    if request.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let mut answer = http::Response::builder().status(status).header("content-type", "application/json");
    match status {
        404 => answer = answer.header("x-amzn-errortype", "NotFoundException"),
        429 => answer = answer.header("x-amzn-errortype", "TooManyRequestsException"),
        _ => {}
    }
    ReplayEvent::new(
        builder.body(SdkBody::from(request.map(|r| r.to_string()).unwrap_or_default())).unwrap(),
        answer.body(SdkBody::from(response.to_owned())).unwrap(),
    )
}

fn ses_list(replay: &StaticReplayClient) -> tidings_aws::SesSuppressionList {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "replay"))
        .http_client(replay.clone())
        .build();
    tidings_aws::SesSuppressionList::new(aws_sdk_sesv2::Client::from_conf(config))
}

#[tokio::test]
async fn hard_bounces_and_complaints_of_synced_workspaces_go_on_the_ses_suppression_list() {
    use tidings_core::Status;
    let replay = StaticReplayClient::new(vec![
        sesv2(
            "PUT",
            "/v2/email/suppression/addresses",
            Some(serde_json::json!({"EmailAddress": "gone@example.com", "Reason": "BOUNCE"})),
            200,
            "{}",
        ),
        sesv2(
            "PUT",
            "/v2/email/suppression/addresses",
            Some(serde_json::json!({"EmailAddress": "angry@example.com", "Reason": "COMPLAINT"})),
            200,
            "{}",
        ),
    ]);
    let sync = tidings_processor::SuppressionSync { list: ses_list(&replay), workspaces: vec!["ws_synced".into()] };
    let db = tidings_local::Sqlite::in_memory().unwrap();
    let processor = tidings_core::pipeline::Processor::new(db, 90);
    let events = [
        tidings_tests::hard_bounce("ws_synced", "m1", "gone@example.com", 1, "b1"),
        tidings_tests::event("ws_synced", Status::Complained, "m2", "angry@example.com", 2, "c1"),
        // Not for SES: a delivery, an unsubscribe (SES has no such reason), another workspace.
        tidings_tests::event("ws_synced", Status::Delivered, "m3", "fine@example.com", 3, "d1"),
        tidings_tests::event("ws_synced", Status::Unsubscribed, "m4", "bye@example.com", 4, "u1"),
        tidings_tests::hard_bounce("ws_other", "m5", "theirs@example.com", 5, "b2"),
    ];
    let bodies: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    // No SQS call is expected: nothing is dead-lettered.
    let sqs = sqs_queues(&StaticReplayClient::new(vec![]));
    let response = tidings_processor::handle_with_sync(&processor, &sqs, Some(&sync), sqs_event(&bodies)).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    replay.relaxed_requests_match();
}

#[tokio::test]
async fn a_throttled_suppression_sync_leaves_the_record_for_sqs_to_retry() {
    let replay = StaticReplayClient::new(
        (0..3)
            .map(|_| {
                sesv2(
                    "PUT",
                    "/v2/email/suppression/addresses",
                    Some(serde_json::json!({"EmailAddress": "gone@example.com", "Reason": "BOUNCE"})),
                    429,
                    r#"{"message": "Rate exceeded"}"#,
                )
            })
            .collect(),
    );
    let sync = tidings_processor::SuppressionSync { list: ses_list(&replay), workspaces: vec!["*".into()] };
    let processor = tidings_core::pipeline::Processor::new(tidings_local::Sqlite::in_memory().unwrap(), 90);
    let body = serde_json::to_string(&tidings_tests::hard_bounce("ws_any", "m1", "gone@example.com", 1, "b1")).unwrap();
    let sqs = sqs_queues(&StaticReplayClient::new(vec![]));
    let response = tidings_processor::handle_with_sync(&processor, &sqs, Some(&sync), sqs_event(&[body])).await;
    let ids: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(ids, ["m0"], "stored, but retried until SES has it too");
}

#[tokio::test]
async fn removing_from_the_ses_suppression_list_says_whether_the_address_was_there() {
    let replay = StaticReplayClient::new(vec![
        sesv2("DELETE", "/v2/email/suppression/addresses/gone%40example.com", None, 200, "{}"),
        sesv2(
            "DELETE",
            "/v2/email/suppression/addresses/never%40example.com",
            None,
            404,
            r#"{"message": "Email address never@example.com does not exist on your suppression list."}"#,
        ),
    ]);
    let list = ses_list(&replay);
    assert!(list.remove("gone@example.com").await.unwrap());
    assert!(!list.remove("never@example.com").await.unwrap());
    replay.relaxed_requests_match();
}

#[tokio::test]
async fn lifting_a_suppression_with_ses_true_also_lifts_it_in_ses_for_a_synced_workspace_only() {
    use axum::body::Body;
    use tidings_core::ports::ApiKey;
    use tower::ServiceExt;
    let replay = StaticReplayClient::new(vec![sesv2(
        "DELETE",
        "/v2/email/suppression/addresses/gone%40example.com",
        None,
        200,
        "{}",
    )]);
    let list = ses_list(&replay);
    let remove: tidings_api::SesRemover = std::sync::Arc::new(move |address: String| {
        let list = list.clone();
        Box::pin(async move { list.remove(&address).await })
    });
    let db = tidings_local::Sqlite::in_memory().unwrap();
    for (workspace, key) in [("ws_synced", "key-synced"), ("ws_plain", "key-plain")] {
        let hash = tidings_api::api_key_hash(key);
        db.put_api_key(&ApiKey {
            id: key.into(),
            workspace: workspace.into(),
            hash,
            created_at: tidings_core::Timestamp::now(),
        })
        .await
        .unwrap();
        let bounce = tidings_tests::hard_bounce(workspace, "m1", "gone@example.com", 1, "b1");
        db.record(&bounce, tidings_core::Timestamp::now().into()).await.unwrap();
    }
    let settings = tidings_api::Settings {
        public_base_url: "http://127.0.0.1".into(),
        ses_suppressions: Some(tidings_api::SesSuppressions { workspaces: vec!["ws_synced".into()], remove }),
        ..Default::default()
    };
    let app = tidings_api::router(db.clone(), db.clone(), settings);
    let delete = |uri: &str, key: &str| {
        http::Request::delete(uri).header("Authorization", format!("Bearer {key}")).body(Body::empty()).unwrap()
    };

    // A workspace that does not mirror to SES cannot lift the account-wide entry.
    let response =
        app.clone().oneshot(delete("/api/suppressions/gone@example.com?ses=true", "key-plain")).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::CONFLICT);
    assert_eq!(db.suppressions("ws_plain").await.unwrap().iter().filter(|s| s.active).count(), 1, "nothing lifted");

    let response =
        app.clone().oneshot(delete("/api/suppressions/gone@example.com?ses=true", "key-synced")).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((reply["removed"].as_bool(), reply["ses_removed"].as_bool()), (Some(true), Some(true)), "{reply}");
    replay.relaxed_requests_match();

    // Without ses=true, SES is not asked (the replay has no more calls to answer).
    let response = app.oneshot(delete("/api/suppressions/gone@example.com", "key-plain")).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::NO_CONTENT);
}
