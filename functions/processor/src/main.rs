//! The processor Lambda function.

use lambda_runtime::{LambdaEvent, service_fn};
use tidings_core::pipeline::Processor;
use tidings_processor::SuppressionSync;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let tidings_aws::Ports { settings, store, queues, config } = tidings_aws::ports_from_env()?;
    // Stored events fan out to matching subscriptions through the deliveries queue.
    let processor = Processor::with_fanout(store, queues.clone(), settings.retention_days);
    let sync = (!settings.ses_suppression_sync.is_empty()).then(|| SuppressionSync {
        list: tidings_aws::SesSuppressionList::new(config.client(aws_sdk_sesv2::Client::new)),
        workspaces: settings.ses_suppression_sync.clone(),
    });
    let (processor, queues, sync) = (&processor, &queues, sync.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(
            tidings_processor::handle_with_sync(processor, queues, sync, event.payload).await,
        )
    }))
    .await
}
