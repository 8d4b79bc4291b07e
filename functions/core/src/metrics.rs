//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: on Lambda, a JSON line on
//! stdout with an `_aws` block becomes CloudWatch metrics, with no API call and no agent.
//! Everything is in one namespace: `TIDINGS_METRICS_NAMESPACE`, which `template.yaml` sets to
//! `tidings/<stack name>` so two stacks in one account keep apart ([`DEFAULT_NAMESPACE`] when
//! unset); the template's alarms and dashboard read them there.
//!
//! | metric | unit | dimensions | written by |
//! |---|---|---|---|
//! | `WebhooksAccepted` | Count | Provider | ingest, per webhook answered 2xx |
//! | `Events` | Count | Provider, Type | ingest, per canonical event enqueued |
//! | `UnknownTypes` | Count | Provider | ingest, events whose provider type tidings does not map |
//! | `Rejected` | Count | Provider, Reason | ingest, per webhook refused (reason: `unauthenticated`, `malformed`, `unknown_source`, …) |
//! | `SignatureFailures` | Count | Provider | ingest, refusals for a bad or missing signature |
//! | `EnqueueLatency` | Milliseconds | Provider | ingest, time to put a webhook's events on SQS |
//! | `Stored` / `Duplicates` | Count | (none) | processor, per queued event |
//! | `DeadLettered` | Count | Queue | processor, fan-out: records sent to a dead-letter queue |
//! | `Deliveries` | Count | Outcome | fan-out, per attempt (`delivered`, `http_4xx`, `http_5xx`, `timeout`, `unreachable`), per copy of a made delivery acknowledged unsent (`duplicate`), per delivery not sent (`skipped`: nothing to send in the format; `erased`: its recipient was erased), and per delivery put back on the queue to wait for its turn or an open circuit's probe (`deferred`) |
//! | `AttemptsNotLogged` | Count | (none) | fan-out, attempts the attempt log could not take (the deliveries go on) |
//! | `DeliveryLatency` | Milliseconds | Outcome | fan-out, the subscriber's response time |
//! | `DeliveryAttempt` | None | Outcome | fan-out, the attempt number (1 = first try) |
//!
//! Metrics are off unless a Lambda function turns them on ([`emit_to_stdout`]): `tidings dev`
//! and tests print nothing extra.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace when none is configured.
pub const DEFAULT_NAMESPACE: &str = "tidings";

static ENABLED: AtomicBool = AtomicBool::new(false);
static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Writes metrics to stdout from now on, in `namespace` (Lambda functions call this at cold
/// start; the first namespace given stays).
pub fn emit_to_stdout(namespace: &str) {
    let _ = NAMESPACE.set(namespace.to_owned());
    ENABLED.store(true, Ordering::Relaxed);
}

/// CloudWatch's units for the metrics tidings writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// Records `values` under one set of dimensions (one EMF line), when metrics are on.
pub fn record(dimensions: &[(&str, &str)], values: &[(&str, Unit, f64)]) {
    if !ENABLED.load(Ordering::Relaxed) || values.is_empty() {
        return;
    }
    let namespace = NAMESPACE.get().map_or(DEFAULT_NAMESPACE, String::as_str);
    let line = render(namespace, crate::Timestamp::now().unix_millis(), dimensions, values);
    // One write per line, so lines from concurrent invocations never interleave.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// The EMF document for one record.
pub fn render(namespace: &str, timestamp_ms: i64, dimensions: &[(&str, &str)], values: &[(&str, Unit, f64)]) -> String {
    let mut document = Map::new();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let metrics: Vec<Value> =
        values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [names], "Metrics": metrics}]
        }),
    );
    for (name, value) in dimensions {
        document.insert((*name).into(), json!(value));
    }
    for (name, _, value) in values {
        document.insert((*name).into(), json!(value));
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_emf_document_cloudwatch_can_read() {
        let line = render(
            "tidings/prod",
            1_795_435_200_000,
            &[("Provider", "sendgrid"), ("Type", "email.bounced")],
            &[("Events", Unit::Count, 3.0), ("EnqueueLatency", Unit::Milliseconds, 12.5)],
        );
        let document: Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(document["_aws"]["Timestamp"], 1_795_435_200_000i64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "tidings/prod");
        assert_eq!(directive["Dimensions"], json!([["Provider", "Type"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Events", "Unit": "Count"}, {"Name": "EnqueueLatency", "Unit": "Milliseconds"}])
        );
        // Every dimension and metric named in the directive is a member with its value.
        assert_eq!(
            (document["Provider"].as_str(), document["Type"].as_str()),
            (Some("sendgrid"), Some("email.bounced"))
        );
        assert_eq!((document["Events"].as_f64(), document["EnqueueLatency"].as_f64()), (Some(3.0), Some(12.5)));
    }

    #[test]
    fn a_record_without_dimensions_has_one_empty_dimension_set() {
        let document: Value =
            serde_json::from_str(&render("tidings", 0, &[], &[("Stored", Unit::Count, 1.0)])).unwrap();
        assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(document["Stored"], 1.0);
    }
}
