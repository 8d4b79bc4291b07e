//! The mailglyph ingest function.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidings_ingest::lambda::run_http(tidings_core::ProviderId::Mailglyph).await
}
