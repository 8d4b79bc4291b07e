//! The watch Lambda function: run by EventBridge Scheduler (every 15 minutes by default), it
//! holds each workspace's rates to its thresholds and its sources' traffic to their usual gaps,
//! and announces each change as an operational event on the events queue.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use tidings_core::Timestamp;
use tidings_core::pipeline::Watch;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let tidings_aws::Ports { store, queues, .. } = tidings_aws::ports_from_env()?;
    let watch = Watch::new(store, queues);
    let watch = &watch;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        // A run that cannot list the workspaces fails (and the scheduler's retry policy runs it
        // again); a workspace that fails is logged and counted, and the others are watched.
        let run = Box::pin(watch.run(Timestamp::now())).await?;
        Ok::<_, lambda_runtime::Error>(json!({
            "workspaces": run.workspaces,
            "announced": run.announced.len(),
            "failed": run.failed.len(),
        }))
    }))
    .await
}
