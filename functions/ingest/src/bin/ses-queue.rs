//! The SES intake function for SNS→SQS and EventBridge wiring.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_ingest::lambda::run_ses_queue().await
}
