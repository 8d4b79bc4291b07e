//! The admin API Lambda function. `TIDINGS_PUBLIC_URL`: the base URL providers post webhooks to
//! (shown with each source; default: the host the API was called on).
//! `TIDINGS_OPERATOR_WORKSPACES` (comma-separated): the workspaces whose keys may redrive the
//! shared dead-letter queues.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidings_aws::init_lambda_logging();
    let tidings_aws::Ports { settings, store, queues, config } = tidings_aws::ports_from_env()?;
    // Optional: without it, source URLs use the host the API was called on.
    let public_base_url = std::env::var("TIDINGS_PUBLIC_URL").unwrap_or_default();
    // Suppressions mirrored to SES (see the processor) can be lifted there too.
    let ses_suppressions = (!settings.ses_suppression_sync.is_empty()).then(|| {
        let list = tidings_aws::SesSuppressionList::new(config.client(aws_sdk_sesv2::Client::new));
        let remove: tidings_api::SesRemover = std::sync::Arc::new(move |address: String| {
            let list = list.clone();
            Box::pin(async move { list.remove(&address).await })
        });
        tidings_api::SesSuppressions { workspaces: settings.ses_suppression_sync.clone(), remove }
    });
    let settings = tidings_api::Settings {
        public_base_url,
        operator_workspaces: settings.operator_workspaces,
        ses_suppressions,
        secret_references: true,
    };
    lambda_http::run(tidings_api::router(store, queues, settings)).await
}
