//! The fan-out Lambda function. `TIDINGS_ALLOW_NETWORKS` (comma-separated CIDRs) opens private
//! ranges to deliveries; empty by default, so only public addresses are reached. EventBridge
//! and SQS destinations are reached with the function's role, in each destination's region.

use lambda_runtime::{LambdaEvent, service_fn};
use tidings_core::delivery::ATTEMPT_TIMEOUT;
use tidings_core::pipeline::Fanout;
use tidings_core::ssrf::{Cidr, Guard};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tidings_aws::init_lambda_logging();
    let tidings_aws::Ports { store, queues, config, .. } = tidings_aws::ports_from_env()?;
    let allowed: Vec<Cidr> = std::env::var("TIDINGS_ALLOW_NETWORKS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let sender = tidings_fanout::Deliverer::new(Guard::allowing(allowed), ATTEMPT_TIMEOUT)?
        .with_publisher(std::sync::Arc::new(tidings_aws::AwsPublisher::new(config)));
    let fanout = Fanout::new(store, queues.clone(), sender);
    let (fanout, queues) = (&fanout, &queues);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(tidings_fanout::handle(fanout, queues, event.payload).await)
    }))
    .await
}
