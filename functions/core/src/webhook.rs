//! An inbound webhook as the providers send it: exact body bytes, headers, query string, and how
//! it reached us. Plus the error every provider answers with.

use std::fmt;

use serde::Deserialize;

use crate::provider_id::ProviderId;

/// Request headers, looked up without regard to case. Order and repeats are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.0.push((name.to_owned(), value.into()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Parses `Name: value` lines (the `.headers` files beside sample payloads, or curl's `-H`).
    /// Blank lines and lines starting with `#` are skipped.
    pub fn parse_lines(text: &str) -> Result<Headers, crate::invalid::Invalid> {
        let mut headers = Headers::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            headers.push_line(line)?;
        }
        Ok(headers)
    }

    /// Adds one `Name: value` header.
    pub fn push_line(&mut self, line: &str) -> Result<(), crate::invalid::Invalid> {
        use crate::invalid::Invalid;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Invalid::new("headers", format!("header {line:?} is not of the form 'Name: value'")))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new("headers", format!("header name {name:?} is not a valid header name")));
        }
        self.insert(name, value.trim());
        Ok(())
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect())
    }
}

/// How a webhook reached tidings. Unsigned SES records (SNS raw message delivery, EventBridge)
/// are trusted only when they come from a queue that AWS IAM guards, never over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Queue,
}

/// One inbound webhook.
#[derive(Debug, Clone, Copy)]
pub struct Webhook<'a> {
    /// The exact bytes the provider sent (signatures are computed over them).
    pub body: &'a [u8],
    pub headers: &'a Headers,
    /// The request URL's query string, without the `?`.
    pub query: Option<&'a str>,
    pub transport: Transport,
}

impl<'a> Webhook<'a> {
    pub fn http(body: &'a [u8], headers: &'a Headers) -> Self {
        Webhook { body, headers, query: None, transport: Transport::Http }
    }
}

/// Why a webhook was refused. Each kind has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Missing or wrong signature or credentials: 401.
    Unauthenticated,
    /// Authentic, but from a sender this source does not accept (an SNS topic that is not
    /// allow-listed, an unsigned record over HTTP): 403.
    Forbidden,
    /// The body cannot be read as the provider's format: 400.
    Malformed,
}

impl Rejection {
    pub fn status(self) -> u16 {
        match self {
            Rejection::Unauthenticated => 401,
            Rejection::Forbidden => 403,
            Rejection::Malformed => 400,
        }
    }

    /// The label used for this rejection in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Unauthenticated => "unauthenticated",
            Rejection::Forbidden => "forbidden",
            Rejection::Malformed => "malformed",
        }
    }
}

/// A refused webhook. Displays as one line, `<provider>: <reason>`, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookError {
    pub provider: ProviderId,
    pub kind: Rejection,
    message: String,
}

/// Longest reason kept: enough to name the field and the problem, never a whole payload.
const MAX_REASON: usize = 240;

impl WebhookError {
    pub fn new(provider: ProviderId, kind: Rejection, message: impl Into<String>) -> Self {
        WebhookError { provider, kind, message: one_line(message.into()) }
    }

    pub fn malformed(provider: ProviderId, message: impl Into<String>) -> Self {
        WebhookError::new(provider, Rejection::Malformed, message)
    }

    pub fn unauthenticated(provider: ProviderId, message: impl Into<String>) -> Self {
        WebhookError::new(provider, Rejection::Unauthenticated, message)
    }

    pub fn forbidden(provider: ProviderId, message: impl Into<String>) -> Self {
        WebhookError::new(provider, Rejection::Forbidden, message)
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The reason without the provider prefix.
    pub fn reason(&self) -> &str {
        &self.message
    }
}

fn one_line(message: String) -> String {
    let mut line: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider, self.message)
    }
}

impl std::error::Error for WebhookError {}

/// Deserializes `bytes` as `T`. On failure the error names the JSON path of the field at fault
/// (`[3].timestamp: invalid type: …`); the path is only computed on the error path, so valid
/// input pays nothing for it.
pub fn parse_json<'de, T: Deserialize<'de>>(
    provider: ProviderId,
    what: &dyn fmt::Display,
    bytes: &'de [u8],
) -> Result<T, WebhookError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(plain) => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let detail = match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(err) if err.path().iter().next().is_some() => {
                    format!("{what} field `{}`: {}", err.path(), err.inner())
                }
                _ => format!("{what} is not valid JSON of the expected shape: {plain}"),
            };
            Err(WebhookError::malformed(provider, detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_case_insensitive_and_parse_from_lines() {
        let h = Headers::parse_lines("# comment\nX-Twilio-Signature: abc=\r\n\ncontent-type: text/plain\n").unwrap();
        assert_eq!(h.get("x-twilio-signature"), Some("abc="));
        assert_eq!(h.get("Content-Type"), Some("text/plain"));
        assert!(Headers::parse_lines("no colon here").is_err());
        assert!(Headers::parse_lines(": empty name").is_err());
    }

    #[test]
    fn errors_are_one_bounded_line() {
        let err = WebhookError::malformed(ProviderId::Sendgrid, format!("bad\nvalue {}", "x".repeat(1000)));
        let text = err.to_string();
        assert!(text.starts_with("sendgrid: bad value"));
        assert!(!text.contains('\n'));
        assert!(text.len() < 300);
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Rec {
            timestamp: i64,
        }
        let err = parse_json::<Vec<Rec>>(ProviderId::Sendgrid, &"body", br#"[{"timestamp":1},{"timestamp":"x"}]"#)
            .unwrap_err();
        assert!(err.to_string().contains("`[1].timestamp`"), "{err}");
    }
}
