//! The admin API Lambda function. `TIDINGS_PUBLIC_URL` is the base URL providers post
//! webhooks to (shown with each source).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidings_aws::init_lambda_logging();
    let (_, store, queues) = tidings_aws::ports_from_env().await?;
    let public_base_url = std::env::var("TIDINGS_PUBLIC_URL").map_err(|_| "TIDINGS_PUBLIC_URL is not set")?;
    lambda_http::run(tidings_api::router(store, queues, tidings_api::Settings { public_base_url })).await
}
