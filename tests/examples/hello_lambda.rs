//! The baseline for cold-start measurements (`infra/bench/coldstart.sh`): the smallest
//! `lambda_runtime` function, built with the same profile as tidings' functions. It answers
//! every invocation with its payload.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<Value>| async move { Ok::<_, lambda_runtime::Error>(event.payload) },
    ))
    .await
}
