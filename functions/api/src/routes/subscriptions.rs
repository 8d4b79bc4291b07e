//! Subscriptions: creating and listing them, their attempts, and acting on one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tidings_core::invalid::Invalid;
use tidings_core::pattern::TypePattern;
use tidings_core::ports::{Queue, Store, StoreError};
use tidings_core::source::{new_id, new_secret};
use tidings_core::subscription::{AnonymousId, Format, SigningSecret, Subscription};
use tidings_core::timestamp::Timestamp;

use schemars::JsonSchema;

use crate::views;
use crate::{ApiError, AppState, JsonBody, Params, PathParams, Shared, Workspace, bad_request, parse_time};

pub(crate) async fn subscriptions<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<views::SubscriptionList>, ApiError> {
    let subscriptions = shared.store.subscriptions(&workspace).await?;
    let subscriptions = subscriptions.iter().map(|s| views::SubscriptionView::new(s, None)).collect();
    Ok(axum::Json(views::SubscriptionList { subscriptions }))
}

/// What a subscription is created from, by the API (JSON) or the console (a form).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubscription {
    /// Where events go: an `https://` URL (loopback and private addresses are refused on AWS),
    /// an EventBridge event bus ARN (`arn:aws:events:REGION:ACCOUNT:event-bus/NAME`) or an SQS
    /// queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`, FIFO when it ends in `.fifo`).
    pub(crate) url: String,
    /// Type patterns (`email.*`, `*.bounced`, `*`); an event matching any is delivered.
    #[schemars(length(min = 1), inner(regex(pattern = tidings_core::pattern::TYPE_PATTERN_REGEX)))]
    pub(crate) types: Vec<String>,
    /// Only events from these providers (empty: all).
    #[serde(default)]
    pub(crate) providers: Vec<String>,
    /// Only events from these sources (empty: all).
    #[serde(default)]
    pub(crate) sources: Vec<String>,
    /// Only events whose fields pass this filter: comparisons of dotted paths
    /// (`data.bounce.kind == "hard"`, `data.tags.userId exists`,
    /// `data.mailbox_provider in ["gmail", "yahoo"]`) joined by `and`, `or`, `not` and
    /// parentheses. Applies to replays too.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub(crate) filter: Option<String>,
    /// The body sent: `cloudevents` (the default) or `dittofeed`.
    #[serde(default)]
    pub(crate) format: Format,
    /// Dittofeed format: `"recipient"` sends events without a `userId` tag with the recipient
    /// as `anonymousId`; `"none"` (the default) skips them.
    #[serde(default)]
    pub(crate) anonymous_id: AnonymousId,
    /// `["Name: value", …]`.
    #[serde(default)]
    pub(crate) headers: Vec<String>,
    #[serde(default)]
    pub(crate) description: String,
    /// Deliveries started per second at most, across every fan-out instance (1 to 500); those
    /// beyond it wait their turn. No limit when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub(crate) rate_limit: Option<u32>,
    /// Deliveries awaiting the subscriber's answer at most (1 to 100). No cap when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) max_in_flight: Option<u32>,
    /// Consecutive failed attempts that open the circuit (1 to 1000; default 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000))]
    pub(crate) circuit_failures: Option<u32>,
    /// Also open the circuit when this percentage of the attempts within
    /// `circuit_window_seconds` failed (1 to 100; counted over at least 10 attempts).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) circuit_failure_rate: Option<u32>,
    /// The failure-rate window in seconds (10 to 86400; default 300).
    #[serde(default)]
    #[schemars(range(min = 10, max = 86_400))]
    pub(crate) circuit_window_seconds: Option<u32>,
}

/// A new, enabled subscription of `workspace` and its first signing secret (shown once), or why
/// the request cannot be one.
pub(crate) fn new_subscription(workspace: String, new: NewSubscription) -> Result<(Subscription, String), Invalid> {
    let mut headers = Vec::new();
    for line in &new.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Invalid::new("headers", format!("header {line:?} is not 'Name: value'")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let destination = tidings_core::subscription::validate(&new.url, &new.types, &headers)?;
    let filter = new.filter.map(|f| f.trim().to_owned()).filter(|f| !f.is_empty());
    if let Some(filter) = &filter {
        tidings_core::filter::Filter::parse(filter)?;
    }
    if destination.aws().is_some() && new.format != Format::Cloudevents {
        return Err(Invalid::new(
            "format",
            "format: an EventBridge bus or SQS queue is sent the canonical event (cloudevents)",
        ));
    }
    if new.anonymous_id != AnonymousId::None && new.format != Format::Dittofeed {
        return Err(Invalid::new("anonymous_id", "anonymous_id: only the dittofeed format sends events as a user"));
    }
    let pacing = tidings_core::pacing::Pacing {
        rate_limit: new.rate_limit,
        max_in_flight: new.max_in_flight,
        circuit_failures: new.circuit_failures,
        circuit_failure_rate: new.circuit_failure_rate,
        circuit_window_seconds: new.circuit_window_seconds,
    };
    pacing.validate()?;
    let now = Timestamp::now();
    let secret = new_secret(true);
    let subscription = Subscription {
        id: new_id("sub"),
        workspace,
        url: new.url,
        types: new.types,
        providers: new.providers,
        sources: new.sources,
        filter,
        format: new.format,
        anonymous_id: new.anonymous_id,
        secrets: vec![SigningSecret { secret: secret.clone(), created_at: now, expires_at: None }],
        headers,
        description: new.description,
        enabled: true,
        version: 0,
        disabled_reason: None,
        failing_since: None,
        pacing,
        circuit: Default::default(),
        created_at: now,
    };
    Ok((subscription, secret))
}

pub(crate) async fn create_subscription<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    JsonBody(new): JsonBody<NewSubscription>,
) -> Result<Response, ApiError> {
    let (subscription, secret) = new_subscription(workspace, new)?;
    shared.store.put_subscription(&subscription).await?;
    // The secret is shown once: verify deliveries with it (Standard Webhooks).
    Ok((StatusCode::CREATED, axum::Json(views::SubscriptionView::new(&subscription, Some(secret)))).into_response())
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttemptParams {
    /// At most this many attempts (1 to 1000, default 50).
    limit: Option<usize>,
}

pub(crate) async fn attempts<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<AttemptParams>,
) -> Result<axum::Json<views::AttemptList>, ApiError> {
    if shared.store.subscription(&workspace, &id).await?.is_none() {
        return Err(no_subscription(&id));
    }
    let attempts = shared.store.attempts(&workspace, &id, p.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(axum::Json(views::AttemptList { attempts }))
}

pub(crate) fn no_subscription(id: &str) -> ApiError {
    ApiError::NotFound(format!("no subscription {id}"))
}

/// Changes a subscription with `change`, made over the version read and redone on the fresh
/// one if another writer (a delivery's bookkeeping, another operator) wrote in between: none
/// undoes another.
pub(crate) async fn change_subscription<S: Store, Q: Queue>(
    shared: &Shared<S, Q>,
    workspace: &str,
    id: &str,
    secret: Option<String>,
    change: impl FnMut(&mut Subscription) -> bool,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    let changed = tidings_core::pipeline::modify_subscription(&shared.store, workspace, id, change).await?;
    let subscription = changed.ok_or_else(|| no_subscription(id))?;
    Ok(axum::Json(views::SubscriptionView::new(&subscription, secret)))
}

pub(crate) async fn enable<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    change_subscription(&shared, &workspace, &id, None, |s| {
        s.enable();
        true
    })
    .await
}

pub(crate) async fn disable<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    change_subscription(&shared, &workspace, &id, None, |s| {
        s.disable("disabled by an operator");
        true
    })
    .await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateParams {
    /// How long the old secrets keep signing, in seconds (0 to 604800, default 86400).
    #[schemars(range(min = 0, max = 604_800))]
    grace_seconds: Option<i64>,
}

pub(crate) async fn rotate<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<RotateParams>,
) -> Result<axum::Json<views::SubscriptionView>, ApiError> {
    let grace = p.grace_seconds.unwrap_or(86_400);
    if !(0..=7 * 86_400).contains(&grace) {
        return Err(bad_request(format!("grace_seconds must be between 0 and 604800 (7 days), not {grace}")));
    }
    let (secret, now) = (new_secret(true), Timestamp::now());
    let new = secret.clone();
    change_subscription(&shared, &workspace, &id, Some(secret), move |s| {
        s.rotate(new.clone(), now, grace);
        true
    })
    .await
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayParams {
    /// Events at or after this time (RFC 3339 or Unix seconds).
    since: Option<String>,
    /// Events at or before this time.
    until: Option<String>,
    /// Only events of this type pattern.
    #[schemars(regex(pattern = tidings_core::pattern::TYPE_PATTERN_REGEX))]
    r#type: Option<String>,
    /// The `next` of the previous call, to go on with the same replay (give the same `since`,
    /// `until` and `type` again).
    cursor: Option<String>,
}

pub(crate) async fn replay<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
    Params(p): Params<ReplayParams>,
) -> Result<axum::Json<views::Replayed>, ApiError> {
    use tidings_core::pipeline::{ReplayPosition, ReplayRange};
    if let Some(pattern) = &p.r#type {
        TypePattern::parse(pattern).map_err(|e| e.in_field("type"))?;
    }
    let range = ReplayRange {
        since: p.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        until: p.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        type_pattern: p.r#type,
    };
    let from = p.cursor.as_deref().map(ReplayPosition::parse).transpose()?;
    let subscription = shared.store.subscription(&workspace, &id).await?.ok_or_else(|| no_subscription(&id))?;
    let progress = tidings_core::pipeline::replay(&shared.store, &shared.queue, &subscription, &range, from).await?;
    Ok(axum::Json(views::Replayed {
        replayed: progress.queued as u64,
        next: progress.next.map(|position| position.to_string()),
    }))
}

pub(crate) async fn test<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<views::TestSent>, ApiError> {
    let subscription = shared.store.subscription(&workspace, &id).await?.ok_or_else(|| no_subscription(&id))?;
    let event_id = send_test_event(&shared.store, &shared.queue, &subscription, Timestamp::now()).await?;
    Ok(axum::Json(views::TestSent { event_id }))
}

/// Stores a `subscription.test` event and queues it for `subscription` alone (it is delivered
/// whatever the subscription's type patterns, through the same signing and retry path).
pub(crate) async fn send_test_event<S: Store, Q: Queue>(
    store: &S,
    queue: &Q,
    subscription: &Subscription,
    now: Timestamp,
) -> Result<String, StoreError> {
    use tidings_core::delivery::DeliveryTask;
    use tidings_core::event::{EventData, EventType};
    use tidings_core::ports::{Outgoing, QueueName, QueuedEvent};
    use tidings_core::providers::NormalizeContext;
    let event_type = EventType::platform(tidings_core::outbound::TEST_EVENT_TYPE)
        .ok_or_else(|| StoreError::malformed("bad event type"))?;
    let mut data =
        EventData::new(None, tidings_core::pipeline::OPERATIONAL_PROVIDER, tidings_core::outbound::TEST_EVENT_TYPE);
    data.reason = Some("a test event, sent from the admin API or the console".into());
    data.details.insert("subscription".into(), json!(subscription.id));
    let ctx = NormalizeContext { workspace: &subscription.workspace, received_at: now };
    let key = format!("subscription.test|{}|{}", subscription.id, now.unix_millis());
    let event = ctx.event(event_type, Some(now), &key, data, &tidings_core::providers::Raw::Borrowed("{}")).event;
    let expires = Timestamp::from_unix_seconds(now.unix_seconds() + 7 * 86_400).unwrap_or(now);
    let queued = QueuedEvent {
        event: event.clone(),
        raw: "{}".into(),
        source: tidings_core::pipeline::OPERATIONAL_PROVIDER.into(),
    };
    store.record(&queued, expires.into()).await?;
    let task = DeliveryTask::new(subscription, &event);
    let body = serde_json::to_string(&task).map_err(|e| StoreError::malformed(e.to_string()))?;
    queue.send(QueueName::Deliveries, &[Outgoing { id: "0".into(), body, delay_seconds: 0 }]).await?;
    Ok(event.id.to_string())
}
