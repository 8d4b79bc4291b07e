//! The resend Lambda function: resends SES sends that failed retryably. It is its own function
//! so its concurrency (and so the resend rate SES sees) is capped apart from the processor's.

use lambda_runtime::{LambdaEvent, service_fn};
use tidings_core::resend::Resender;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let tidings_aws::Ports { store, queues, config, .. } = tidings_aws::ports_from_env()?;
    let resender =
        Resender::new(store, queues.clone(), tidings_aws::SesEmailer::new(config.client(aws_sdk_sesv2::Client::new)));
    let (resender, queues) = (&resender, &queues);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(tidings_processor::handle_resend(resender, queues, event.payload).await)
    }))
    .await
}
