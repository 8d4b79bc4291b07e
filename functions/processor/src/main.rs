//! The processor Lambda function.

use lambda_runtime::{LambdaEvent, service_fn};
use tidings_core::pipeline::Processor;
use tidings_processor::SuppressionSync;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let (settings, store, queues) = tidings_aws::ports_from_env().await?;
    // Stored events fan out to matching subscriptions through the deliveries queue.
    let processor = Processor::with_fanout(store, queues.clone(), settings.retention_days);
    let sync = match std::env::var("TIDINGS_SES_SUPPRESSION_SYNC")
        .ok()
        .as_deref()
        .and_then(SuppressionSync::workspaces_from)
    {
        Some(workspaces) => {
            let config = tidings_aws::sdk_config().await;
            let list = tidings_aws::SesSuppressionList::new(aws_sdk_sesv2::Client::new(&config));
            Some(SuppressionSync { list, workspaces })
        }
        None => None,
    };
    let (processor, queues, sync) = (&processor, &queues, sync.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(
            tidings_processor::handle_with_sync(processor, queues, sync, event.payload).await,
        )
    }))
    .await
}
