//! Every route of the admin API, each declared once with its documentation; the handlers live
//! in one file per resource.

pub(crate) mod audit;
pub(crate) mod deliverability;
pub(crate) mod events;
pub(crate) mod queues;
pub(crate) mod recipients;
pub(crate) mod sources;
pub(crate) mod subscriptions;
pub(crate) mod suppressions;

use std::sync::Arc;

use axum::routing::{delete, get, put};
use tidings_core::ports::{DeadLetters, Queue, QueueName, Store};

use crate::openapi::Operation;
use crate::{Shared, views};

/// The queues' names, as paths take them.
const QUEUE_NAMES: [&str; 3] = [QueueName::ALL[0].as_str(), QueueName::ALL[1].as_str(), QueueName::ALL[2].as_str()];

/// Every route of the API, each with its documentation: the router and the OpenAPI document
/// are both built from this list ([`openapi`]).
pub(crate) fn operations<S: Store + 'static, Q: Queue + DeadLetters + 'static>() -> Vec<Operation<Arc<Shared<S, Q>>>> {
    use axum::http::Method;
    use axum::routing::post;
    let subscription = ("id", "The subscription's id (`sub_…`).");
    vec![
        Operation::new(Method::GET, "/api/health", "health", "Whether the server is up", get(health))
            .public()
            .answers::<views::Health>(200, "Up."),
        Operation::new(
            Method::GET,
            "/api/events",
            "listEvents",
            "List events, newest first",
            get(events::events::<S, Q>),
        )
        .query::<events::EventsParams>()
        .answers::<views::EventPage>(200, "A page of events.")
        .link("message", "getMessage", "id", "$response.body#/events/0/data/message_id")
        .link("raw", "getRawEvent", "id", "$response.body#/events/0/id")
        .errors(&[400]),
        Operation::new(
            Method::GET,
            "/api/events/{id}/raw",
            "getRawEvent",
            "The provider's own record an event was made from",
            get(events::raw::<S, Q>),
        )
        .path_param("id", "The event's id (`evt_` and 32 hex digits).")
        .query::<events::RawParams>()
        .answers_any_json(200, "The provider's record, as received (form posts as a JSON object).")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/messages/{id}",
            "getMessage",
            "A message's state per recipient and its timeline",
            get(events::message::<S, Q>),
        )
        .path_param("id", "The provider's message id.")
        .answers::<views::MessageHistory>(200, "The message.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/suppressions",
            "listSuppressions",
            "The workspace's suppressed recipients",
            get(suppressions::suppressions::<S, Q>),
        )
        .answers::<views::SuppressionList>(200, "Every active suppression."),
        Operation::new(
            Method::GET,
            "/api/suppressions/{recipient}",
            "getSuppression",
            "Whether a recipient is suppressed, also once they were erased (their entry under their hash)",
            get(suppressions::suppression::<S, Q>),
        )
        .path_param("recipient", "The address or number.")
        .answers::<tidings_core::suppression::Suppression>(200, "Suppressed: the active entry.")
        .errors(&[400, 404]),
        Operation::new(
            Method::DELETE,
            "/api/suppressions/{recipient}",
            "removeSuppression",
            "Lift a suppression (and, with `ses=true`, in SES)",
            delete(suppressions::remove_suppression::<S, Q>),
        )
        .path_param("recipient", "The suppressed address or number.")
        .query::<suppressions::RemoveSuppressionParams>()
        .answers_empty(204, "Lifted.")
        .answers::<views::SuppressionRemoved>(200, "With `ses=true`: what was lifted where.")
        .errors(&[400, 404, 409]),
        Operation::new(
            Method::GET,
            "/api/deliverability",
            "getDeliverability",
            "Counts and rates over a window, by mailbox provider, domain, provider or source",
            get(deliverability::report::<S, Q>),
        )
        .query::<deliverability::ReportParams>()
        .answers::<tidings_core::deliverability::Report>(
            200,
            "Sent, delivered, bounced by reason, complained, deferred, and the rates.",
        )
        .errors(&[400]),
        Operation::new(
            Method::GET,
            "/api/deliverability/settings",
            "getDeliverabilitySettings",
            "The workspace's thresholds, mailbox domain mapping and silent-source setting",
            get(deliverability::settings::<S, Q>),
        )
        .answers::<tidings_core::deliverability::Settings>(200, "The settings (the defaults where none were set)."),
        Operation::new(
            Method::PUT,
            "/api/deliverability/settings",
            "putDeliverabilitySettings",
            "Replace the workspace's deliverability settings (over the version read)",
            put(deliverability::put_settings::<S, Q>),
        )
        .body::<tidings_core::deliverability::Settings>()
        .answers::<tidings_core::deliverability::Settings>(200, "Stored; `version` is the new one.")
        .errors(&[400, 409, 413, 415]),
        Operation::new(
            Method::GET,
            "/api/deliverability/alarms",
            "listAlarms",
            "Thresholds crossed and sources silent, now and last changed",
            get(deliverability::alarms::<S, Q>),
        )
        .answers::<deliverability::AlarmList>(200, "Active alarms first."),
        Operation::new(
            Method::GET,
            "/api/recipients/{recipient}/export",
            "exportRecipient",
            "Everything the workspace holds about one recipient, for an access request",
            get(recipients::export::<S, Q>),
        )
        .path_param("recipient", "The address or phone number.")
        .answers::<tidings_core::pipeline::RecipientExport>(
            200,
            "Events with their provider records, message states, the suppression entry and delivery attempts (recorded in the audit log).",
        )
        .errors(&[400]),
        Operation::new(
            Method::DELETE,
            "/api/recipients/{recipient}",
            "eraseRecipient",
            "Erase a recipient: events, provider records, message states, queued copies; the suppression entry kept under a keyed hash",
            delete(recipients::erase::<S, Q>),
        )
        .path_param("recipient", "The address or phone number.")
        .answers::<tidings_core::privacy::Erased>(
            200,
            "What was removed, by kind, and the hash the recipient is known by from now on; `complete: false`: call again to go on.",
        )
        .errors(&[400]),
        Operation::new(
            Method::GET,
            "/api/privacy/settings",
            "getPrivacySettings",
            "The workspace's retention and redaction settings",
            get(recipients::privacy_settings::<S, Q>),
        )
        .answers::<tidings_core::privacy::PrivacySettings>(200, "The settings (the defaults where none were set)."),
        Operation::new(
            Method::PUT,
            "/api/privacy/settings",
            "putPrivacySettings",
            "Replace the workspace's retention and redaction settings (over the version read)",
            put(recipients::put_privacy_settings::<S, Q>),
        )
        .body::<tidings_core::privacy::PrivacySettings>()
        .answers::<tidings_core::privacy::PrivacySettings>(200, "Stored; `version` is the new one.")
        .errors(&[400, 409, 413, 415]),
        Operation::new(
            Method::GET,
            "/api/audit",
            "listAudit",
            "Administrative actions on the workspace, newest first",
            get(audit::audit::<S, Q>),
        )
        .query::<audit::AuditParams>()
        .answers::<tidings_core::audit::AuditPage>(200, "A page of entries, and `next` when there are older ones.")
        .errors(&[400]),
        Operation::new(
            Method::GET,
            "/api/sources",
            "listSources",
            "The workspace's sources",
            get(sources::sources::<S, Q>),
        )
        .answers::<views::SourceList>(200, "Every source, secrets counted, not shown."),
        Operation::new(
            Method::POST,
            "/api/sources",
            "createSource",
            "Add a source: where one provider account posts",
            post(sources::create_source::<S, Q>),
        )
        .body::<sources::NewSource>()
        .answers::<views::CreatedSource>(201, "Created; its secrets are shown this once.")
        .link("delete", "deleteSource", "id", "$response.body#/id")
        .errors(&[400, 413, 415]),
        Operation::new(
            Method::DELETE,
            "/api/sources/{id}",
            "deleteSource",
            "Remove a source",
            delete(sources::delete_source::<S, Q>),
        )
        .path_param("id", "The source's id (`src_…`).")
        .answers_empty(204, "Removed.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/subscriptions",
            "listSubscriptions",
            "The workspace's subscriptions",
            get(subscriptions::subscriptions::<S, Q>),
        )
        .answers::<views::SubscriptionList>(200, "Every subscription, secrets counted, not shown."),
        Operation::new(
            Method::POST,
            "/api/subscriptions",
            "createSubscription",
            "Subscribe an endpoint to events",
            post(subscriptions::create_subscription::<S, Q>),
        )
        .body::<subscriptions::NewSubscription>()
        .answers::<views::SubscriptionView>(201, "Created; its signing secret is shown this once.")
        .link("attempts", "listAttempts", "id", "$response.body#/id")
        .link("enable", "enableSubscription", "id", "$response.body#/id")
        .link("disable", "disableSubscription", "id", "$response.body#/id")
        .link("rotate", "rotateSubscriptionSecret", "id", "$response.body#/id")
        .link("replay", "replaySubscription", "id", "$response.body#/id")
        .link("test", "testSubscription", "id", "$response.body#/id")
        .errors(&[400, 413, 415]),
        Operation::new(
            Method::GET,
            "/api/subscriptions/{id}/attempts",
            "listAttempts",
            "A subscription's latest delivery attempts",
            get(subscriptions::attempts::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<subscriptions::AttemptParams>()
        .answers::<views::AttemptList>(200, "Newest first.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/enable",
            "enableSubscription",
            "Enable a subscription",
            post(subscriptions::enable::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::SubscriptionView>(200, "Enabled.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/disable",
            "disableSubscription",
            "Disable a subscription (nothing is delivered until it is enabled)",
            post(subscriptions::disable::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::SubscriptionView>(200, "Disabled.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/rotate",
            "rotateSubscriptionSecret",
            "Give a subscription a new signing secret; the old ones sign on for a grace period",
            post(subscriptions::rotate::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<subscriptions::RotateParams>()
        .answers::<views::SubscriptionView>(200, "Rotated; the new secret is shown this once.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/replay",
            "replaySubscription",
            "Deliver stored events to a subscription again",
            post(subscriptions::replay::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .query::<subscriptions::ReplayParams>()
        .answers::<views::Replayed>(200, "Queued for delivery, up to 2,000 events read per call.")
        .errors(&[400, 404]),
        Operation::new(
            Method::POST,
            "/api/subscriptions/{id}/test",
            "testSubscription",
            "Send a `subscription.test` event to a subscription",
            post(subscriptions::test::<S, Q>),
        )
        .path_param(subscription.0, subscription.1)
        .answers::<views::TestSent>(200, "Stored and queued for delivery.")
        .errors(&[400, 404]),
        Operation::new(
            Method::GET,
            "/api/queues/{queue}/dead-letters",
            "getDeadLetters",
            "What waits on a queue's dead-letter queue (operator keys only)",
            get(queues::dead_letters::<S, Q>),
        )
        .path_param_of("queue", "The queue whose dead-letter queue is meant.", &QUEUE_NAMES)
        .answers::<tidings_core::ports::DeadLetterStatus>(200, "The dead-letter queue.")
        .errors(&[400, 403, 404]),
        Operation::new(
            Method::POST,
            "/api/queues/{queue}/redrive",
            "redriveDeadLetters",
            "Move a queue's dead letters back onto it (operator keys only)",
            post(queues::redrive_dead_letters::<S, Q>),
        )
        .path_param_of("queue", "The queue whose dead-letter queue is meant.", &QUEUE_NAMES)
        .query::<queues::RedriveParams>()
        .answers::<tidings_core::ports::DeadLetterStatus>(200, "How far the move got (SQS moves asynchronously).")
        .errors(&[400, 403, 404]),
    ]
}

async fn health() -> axum::Json<views::Health> {
    axum::Json(views::Health { ok: true })
}
