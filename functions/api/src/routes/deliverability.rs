//! Deliverability: counts and rates by dimension, the workspace's thresholds and mappings, and
//! its alarms.

use axum::extract::State;
use serde::Deserialize;
use tidings_core::Timestamp;
use tidings_core::deliverability::counters::{self, Dimension, hour_of};
use tidings_core::deliverability::{Alarm, Report, Settings};
use tidings_core::ports::{Queue, Store};

use schemars::JsonSchema;

use crate::{ApiError, AppState, JsonBody, Params, Workspace, bad_request, parse_when};

/// The longest window a report covers.
pub(crate) const MAX_WINDOW_DAYS: i64 = 31;

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportParams {
    /// What to group by: `mailbox_provider` (the default), `recipient_domain`, `provider`,
    /// `sending_domain` or `source`.
    by: Option<String>,
    /// The window's start: RFC 3339, Unix seconds, or a span back from now (`24h`, `7d`,
    /// `30d`). Default `24h`; at most 31 days back.
    since: Option<String>,
    /// The window's end (RFC 3339 or Unix seconds); default now.
    until: Option<String>,
}

/// A span back from now (`90m`, `24h`, `7d`) in seconds.
fn span_seconds(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let number = &text[..text.len() - unit.len_utf8()];
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// The window `since`..`until` of a request, checked: `since` before `until`, at most
/// [`MAX_WINDOW_DAYS`] apart.
pub(crate) fn window(
    since: Option<&str>,
    until: Option<&str>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), ApiError> {
    let until = match until {
        Some(text) => parse_when(text)
            .ok_or_else(|| bad_request(format!("until: {text:?} is neither RFC 3339 nor Unix seconds")))?,
        None => now,
    };
    let since = match since {
        None => Timestamp::from_unix_seconds(until.unix_seconds() - 86_400),
        Some(text) => match span_seconds(text) {
            Some(span) => Timestamp::from_unix_seconds(now.unix_seconds().saturating_sub(span)),
            None => Some(parse_when(text).ok_or_else(|| {
                bad_request(format!("since: {text:?} is neither RFC 3339, Unix seconds nor a span such as 24h or 7d"))
            })?),
        },
    }
    .ok_or_else(|| bad_request("since: out of range"))?;
    if since > until {
        return Err(bad_request("since: must not be after until"));
    }
    if until.unix_seconds() - since.unix_seconds() > MAX_WINDOW_DAYS * 86_400 {
        return Err(bad_request(format!("since: a report covers at most {MAX_WINDOW_DAYS} days")));
    }
    Ok((since, until))
}

/// Reads a report from the store: the counters of the hours the window touches.
pub(crate) async fn read_report<S: Store>(
    store: &S,
    workspace: &str,
    by: Dimension,
    since: Timestamp,
    until: Timestamp,
) -> Result<Report, tidings_core::ports::StoreError> {
    let rows = store.counters(workspace, by.series(), hour_of(since), hour_of(until)).await?;
    Ok(counters::report(by, since, until, &rows))
}

pub(crate) async fn report<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    Params(p): Params<ReportParams>,
) -> Result<axum::Json<Report>, ApiError> {
    let by: Dimension = p.by.as_deref().unwrap_or("mailbox_provider").parse()?;
    let (since, until) = window(p.since.as_deref(), p.until.as_deref(), Timestamp::now())?;
    Ok(axum::Json(read_report(&shared.store, &workspace, by, since, until).await?))
}

pub(crate) async fn settings<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<Settings>, ApiError> {
    Ok(axum::Json(shared.store.deliverability_settings(&workspace).await?.unwrap_or_default()))
}

/// Replaces the workspace's settings. Fields left out take their defaults; `version` must be
/// the one read (0 for a workspace that has none), so two operators' changes never silently
/// overwrite each other: the second is refused with 409 and reads again.
pub(crate) async fn put_settings<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
    JsonBody(settings): JsonBody<Settings>,
) -> Result<axum::Json<Settings>, ApiError> {
    settings.validate()?;
    if !shared.store.put_deliverability_settings(&workspace, &settings).await? {
        return Err(ApiError::Conflict(format!(
            "version: the settings changed since version {} was read; read them again and reapply the change",
            settings.version
        )));
    }
    Ok(axum::Json(Settings { version: settings.version.saturating_add(1), ..settings }))
}

#[derive(serde::Serialize, JsonSchema)]
pub(crate) struct AlarmList {
    /// Every threshold and source the watch has an opinion on; `active` ones hold now.
    pub alarms: Vec<Alarm>,
}

pub(crate) async fn alarms<S: Store, Q: Queue>(
    State(shared): AppState<S, Q>,
    Workspace(workspace): Workspace,
) -> Result<axum::Json<AlarmList>, ApiError> {
    let mut alarms = shared.store.alarms(&workspace).await?;
    alarms.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| b.since.cmp(&a.since)));
    Ok(axum::Json(AlarmList { alarms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_checked_and_spans_read() {
        let now = Timestamp::from_unix_seconds(1_764_000_000).unwrap();
        let (since, until) = window(Some("7d"), None, now).unwrap();
        assert_eq!((until.unix_seconds() - since.unix_seconds()), 7 * 86_400);
        assert!(window(Some("32d"), None, now).is_err());
        assert!(window(Some("soon"), None, now).is_err());
        assert!(window(Some("0h"), None, now).is_err());
        assert!(window(Some("99999999999999999d"), None, now).is_err());
        assert!(window(Some("7é"), None, now).is_err(), "a multi-byte last character is refused, not a panic");
        assert!(window(Some(""), None, now).is_err());
        assert!(window(Some("1764000001"), Some("1764000000"), now).is_err());
        let (since, _) = window(None, None, now).unwrap();
        assert_eq!(now.unix_seconds() - since.unix_seconds(), 86_400);
    }
}
