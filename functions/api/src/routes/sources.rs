//! Sources: where each provider account posts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tidings_core::ports::{Queue, Store};
use tidings_core::providers::ProviderId;
use tidings_core::source::{Source, new_id, new_secret};
use tidings_core::timestamp::Timestamp;

use schemars::JsonSchema;

use crate::views;
use crate::{ApiError, AppState, JsonBody, PathParams, Workspace, bad_request, base_url, webhook_url};

pub(crate) async fn sources<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<views::SourceList>, ApiError> {
    let sources = shared.store.sources(&workspace).await?;
    let base = base_url(&shared.settings, &headers);
    let sources = sources
        .iter()
        .map(|s| {
            let url = webhook_url(&base, s.provider, &s.id);
            views::SourceView {
                source: views::SourceFields::new(s, url),
                secrets: format!("{} configured", s.secrets.len()),
            }
        })
        .collect();
    Ok(axum::Json(views::SourceList { sources }))
}

/// A new source: one provider account posting to tidings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSource {
    /// The provider (`postmark`, `ses`, `twilio`, …).
    #[schemars(with = "ProviderId")]
    provider: String,
    #[serde(default)]
    description: String,
    /// The provider's secret or key; generated when the provider lets you choose (shared
    /// secrets, Active Reach, Standard Webhooks). On AWS, `ssm:/<parameter name>` names a
    /// SecureString parameter holding it.
    secret: Option<String>,
    /// Providers that sign the URL they post to (Twilio, Plivo): the exact URL configured in the
    /// provider, when a proxy stands in front of tidings.
    public_url: Option<String>,
    /// Providers that publish through SNS (SES, AWS SMS): the SNS topic ARNs to accept (required).
    #[serde(default)]
    allowed_topics: Vec<String>,
    /// Active Reach: the header the signature is sent in, when renamed.
    signature_header: Option<String>,
    /// The signed timestamp's tolerance, in seconds (at most 172800, two days).
    #[schemars(range(min = 1, max = tidings_core::auth::MAX_TOLERANCE_SECONDS))]
    tolerance_seconds: Option<u64>,
}

pub(crate) async fn create_source<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    headers: axum::http::HeaderMap,
    JsonBody(new): JsonBody<NewSource>,
) -> Result<Response, ApiError> {
    use tidings_core::auth::Authentication;
    let provider: ProviderId = new.provider.parse().map_err(bad_request)?;
    let scheme = provider.provider().authentication();
    if new.secret.as_deref().is_some_and(|s| s.starts_with("ssm:")) && !shared.settings.secret_references {
        return Err(bad_request(
            "secret: ssm: references are read by the ingest functions on AWS; this server cannot resolve them, so give the secret itself",
        ));
    }
    if let Some(name) = new.secret.as_deref().and_then(|s| s.strip_prefix("ssm:"))
        && !(name.starts_with('/') && name.len() > 1 && !name.contains(char::is_whitespace))
    {
        return Err(bad_request(format!(
            "secret: an SSM reference is ssm:/<path>/<name> (a full parameter name), not ssm:{name}"
        )));
    }
    if let Some(seconds) = new.tolerance_seconds {
        tidings_core::auth::check_tolerance(seconds)?;
    }
    if let Some(secret) = new.secret.as_deref().filter(|s| !s.starts_with("ssm:")) {
        scheme.check_secret(secret)?;
    }
    let secrets = match (new.secret, scheme) {
        (Some(secret), _) => vec![secret],
        (None, Authentication::SnsSignature) => vec![],
        (None, Authentication::SharedSecret | Authentication::HmacSha256Hex { .. }) => vec![new_secret(false)],
        (None, other) => {
            return Err(bad_request(format!("{provider} sources need `secret`: the {}", other.secret_name())));
        }
    };
    if scheme == Authentication::SnsSignature && new.allowed_topics.is_empty() {
        return Err(bad_request(format!("{provider} sources need `allowed_topics`: the SNS topic ARNs to accept")));
    }
    let id = new_id("src");
    let base = base_url(&shared.settings, &headers);
    // A scheme that signs the exact URL posted to (Twilio's, Plivo's): unless told otherwise (a
    // proxy in front), that is this source's own webhook URL, which only exists once the id does.
    let public_url = match new.public_url {
        None if scheme.signs_url() => Some(webhook_url(&base, provider, &id)),
        given => given,
    };
    let source = Source {
        id,
        workspace,
        provider,
        description: new.description,
        secrets: secrets.clone(),
        public_url,
        allowed_topics: new.allowed_topics,
        signature_header: new.signature_header,
        tolerance_seconds: new.tolerance_seconds,
        dev_signing_key: None,
        created_at: Timestamp::now(),
    };
    shared.store.put_source(&source).await?;
    // The secrets are shown once: the API never returns them again.
    let url = webhook_url(&base, source.provider, &source.id);
    Ok((
        StatusCode::CREATED,
        axum::Json(views::CreatedSource { source: views::SourceFields::new(&source, url), secrets }),
    )
        .into_response())
}

pub(crate) async fn delete_source<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    if shared.store.delete_source(&workspace, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no source {id}")))
    }
}
