//! The processor Lambda function.

use lambda_runtime::{LambdaEvent, service_fn};
use tidings_core::pipeline::Processor;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let (settings, store, queues) = tidings_aws::ports_from_env().await?;
    // Stored events fan out to matching subscriptions through the deliveries queue.
    let processor = Processor::with_fanout(store, queues.clone(), settings.retention_days);
    let (processor, queues) = (&processor, &queues);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(tidings_processor::handle(processor, queues, event.payload).await)
    }))
    .await
}
