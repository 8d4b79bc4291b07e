//! The ingest function: one binary serves every provider's route. Each provider has its own
//! function in `template.yaml` (its own route, logs, alarms and concurrency), and
//! `TIDINGS_PROVIDER` tells the function which provider it serves; webhooks for any other
//! provider are refused with 404.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let name = std::env::var("TIDINGS_PROVIDER")
        .map_err(|_| "TIDINGS_PROVIDER is not set: the provider this function serves (sendgrid, ses, …)")?;
    let provider: tidings_core::ProviderId = name.parse().map_err(|e| format!("TIDINGS_PROVIDER: {e}"))?;
    tidings_ingest::lambda::run_http(provider).await
}
