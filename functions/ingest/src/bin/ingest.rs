//! The ingest function: one binary serves every provider's route. Each provider has its own
//! function in `template.yaml` (its own route, logs, alarms and concurrency), and
//! `TIDINGS_PROVIDER` tells the function which provider it serves; webhooks for any other
//! provider are refused with 404. Without `TIDINGS_PROVIDER` (`cargo lambda watch` on a
//! laptop) it serves every provider's route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let provider = match std::env::var("TIDINGS_PROVIDER") {
        Ok(name) if !name.is_empty() => Some(name.parse().map_err(|e| format!("TIDINGS_PROVIDER: {e}"))?),
        _ => None,
    };
    tidings_ingest::lambda::run_http(provider).await
}
