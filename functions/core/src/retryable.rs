//! Is a failed send worth retrying? The rule tidings applies to SES sends, as Dittofeed does: an
//! error the provider marks retryable (the AWS SDKs mark them `$retryable`) is retried and never
//! reported as a failure; only the others become `failed`.
//!
//! The error is read as AWS SDKs serialise it:
//!
//! - JavaScript SDK v3: `{"name": "ThrottlingException", "message": "…", "$fault": "client",
//!   "$retryable": {"throttling": true}, "$metadata": {"httpStatusCode": 400}}`
//!   (`$retryable` is present only on retryable errors).
//! - Rust SDK: `{"code": "ThrottlingException", "message": "…", "kind": "ThrottlingError",
//!   "http_status": 400}` where `kind` is `ProvideErrorKind::retryable_error_kind()`
//!   (`ThrottlingError`, `TransientError`, `ServerError`, or absent/`ClientError`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sends of one email in all (the first included) before a retryable failure is given up on:
/// the resend queue stops there, and the SES reader reports the last one as exhausted.
pub const MAX_SEND_ATTEMPTS: u32 = 5;

/// A send error as an application reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendError {
    #[serde(default, alias = "Code", alias = "code")]
    pub name: Option<String>,
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
    /// `client` or `server`.
    #[serde(default, rename = "$fault")]
    pub fault: Option<String>,
    /// Present (as `{"throttling": bool}`) only when the SDK considers the error retryable.
    #[serde(default, rename = "$retryable")]
    pub retryable: Option<Value>,
    #[serde(default, rename = "$metadata")]
    pub metadata: Option<Value>,
    /// The Rust SDK's retryable error kind.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default, alias = "httpStatusCode")]
    pub http_status: Option<u16>,
}

/// Errors that mean "slow down": retried.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ThrottledException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Errors that mean "try again": the service or the network failed, not the request.
const TRANSIENT: &[&str] = &[
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "TimeoutError",
    "NetworkingError",
    "ECONNRESET",
    "ECONNREFUSED",
    "ETIMEDOUT",
    "EPIPE",
];

/// Errors that will fail the same way again, whatever the status code says.
const PERMANENT: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "MailFromDomainNotVerified",
    "AccountSuspendedException",
    "AccountSuspended",
    "SendingPausedException",
    "SendingPaused",
    "BadRequestException",
    "NotFoundException",
    "AccessDeniedException",
    "ValidationException",
];

impl SendError {
    fn status(&self) -> Option<u16> {
        self.http_status.or_else(|| {
            self.metadata.as_ref().and_then(|m| m.get("httpStatusCode")).and_then(Value::as_u64).map(|s| s as u16)
        })
    }

    /// Whether the send should be retried (and so not reported as failed).
    pub fn is_retryable(&self) -> bool {
        let name = self.name.as_deref().unwrap_or_default();
        if PERMANENT.contains(&name) {
            return false;
        }
        if self.retryable.as_ref().is_some_and(|r| !r.is_null()) {
            return true;
        }
        if matches!(self.kind.as_deref(), Some("ThrottlingError" | "TransientError" | "ServerError")) {
            return true;
        }
        if THROTTLING.contains(&name) || TRANSIENT.contains(&name) {
            return true;
        }
        // SES's LimitExceededException is throttling only when the SDK says so ($retryable);
        // otherwise it is an account limit that will not lift by retrying.
        self.fault.as_deref() == Some("server") || self.status().is_some_and(|s| s >= 500 || s == 429)
    }

    /// Whether the retryable error is throttling (the SDK's `$retryable.throttling`, or a
    /// throttling error name): throttled sends wait longer before the next try.
    pub fn is_throttling(&self) -> bool {
        let marked = self.retryable.as_ref().and_then(|r| r.get("throttling")).and_then(Value::as_bool) == Some(true);
        marked
            || self.kind.as_deref() == Some("ThrottlingError")
            || THROTTLING.contains(&self.name.as_deref().unwrap_or_default())
            || self.status() == Some(429)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> SendError {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_sdk_retryable_marker_decides_first() {
        let throttled = error(
            r#"{"name":"LimitExceededException","message":"Maximum sending rate exceeded.","$fault":"client","$retryable":{"throttling":true},"$metadata":{"httpStatusCode":400}}"#,
        );
        assert!(throttled.is_retryable() && throttled.is_throttling());
        let limit = error(
            r#"{"name":"LimitExceededException","message":"Too many identities","$fault":"client","$metadata":{"httpStatusCode":400}}"#,
        );
        assert!(!limit.is_retryable(), "an account limit without the marker is not throttling");
    }

    #[test]
    fn throttling_transient_and_server_errors_are_retried() {
        for json in [
            r#"{"name":"ThrottlingException","$metadata":{"httpStatusCode":400}}"#,
            r#"{"name":"TooManyRequestsException","$metadata":{"httpStatusCode":429}}"#,
            r#"{"name":"InternalFailure","$fault":"server","$metadata":{"httpStatusCode":500}}"#,
            r#"{"name":"TimeoutError","message":"socket hang up"}"#,
            r#"{"name":"Whatever","$metadata":{"httpStatusCode":503}}"#,
            r#"{"code":"ThrottlingException","kind":"ThrottlingError","http_status":400}"#,
            r#"{"code":"DispatchFailure","kind":"TransientError"}"#,
        ] {
            assert!(error(json).is_retryable(), "{json}");
        }
    }

    #[test]
    fn rejections_and_account_problems_are_not() {
        for json in [
            r#"{"name":"MessageRejected","message":"Email address is not verified.","$fault":"client","$metadata":{"httpStatusCode":400}}"#,
            r#"{"name":"MailFromDomainNotVerifiedException","$metadata":{"httpStatusCode":400}}"#,
            r#"{"name":"AccountSuspendedException","$metadata":{"httpStatusCode":400}}"#,
            r#"{"name":"SendingPausedException","$metadata":{"httpStatusCode":400}}"#,
            r#"{"name":"BadRequestException","$metadata":{"httpStatusCode":400}}"#,
            r#"{"code":"MessageRejected","kind":"ClientError","http_status":400}"#,
            r#"{"name":"MessageRejected","$metadata":{"httpStatusCode":500}}"#,
            r#"{}"#,
        ] {
            assert!(!error(json).is_retryable(), "{json}");
        }
    }
}
