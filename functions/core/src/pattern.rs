//! Event type patterns: `email.bounced`, `email.*`, `*.bounced`, `*`.
//!
//! `*` matches exactly one dotted segment, except as the last segment, where it matches the
//! rest (one or more segments): `email.*` matches `email.bounced`, and `contact.*` matches
//! `contact.created`; a lone `*` matches everything.

use std::fmt;

use crate::invalid::Invalid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern(Vec<String>);

/// What [`TypePattern::parse`] accepts, as a regular expression (for API documents; the fuzzing
/// run of the test command holds the server to it). Surrounding whitespace is trimmed.
pub const TYPE_PATTERN_REGEX: &str = r"^\s*(\*|[a-z0-9_-]+)(\.(\*|[a-z0-9_-]+))*\s*$";

impl TypePattern {
    pub fn parse(text: &str) -> Result<TypePattern, Invalid> {
        let segments: Vec<String> = text.trim().split('.').map(str::to_owned).collect();
        for segment in &segments {
            let ok = segment == "*"
                || (!segment.is_empty()
                    && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
            if !ok {
                return Err(Invalid::new(
                    "types",
                    format!("type pattern {text:?}: each dotted part must be `*` or lowercase [a-z0-9_-]"),
                ));
            }
        }
        Ok(TypePattern(segments))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        let parts: Vec<&str> = event_type.split('.').collect();
        let last = self.0.len() - 1;
        for (i, segment) in self.0.iter().enumerate() {
            if i == last && segment == "*" {
                return parts.len() > i;
            }
            match parts.get(i) {
                Some(part) if segment == "*" || segment == part => {}
                _ => return false,
            }
        }
        parts.len() == self.0.len()
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn m(pattern: &str, event_type: &str) -> bool {
        TypePattern::parse(pattern).unwrap().matches(event_type)
    }

    #[test]
    fn wildcards_match_as_documented() {
        assert!(m("*", "email.bounced"));
        assert!(m("*", "segment.entered"));
        assert!(m("email.*", "email.bounced"));
        assert!(!m("email.*", "sms.bounced"));
        assert!(!m("email.*", "email"));
        assert!(m("*.bounced", "sms.bounced"));
        assert!(!m("*.bounced", "sms.delivered"));
        assert!(m("sms.delivered", "sms.delivered"));
        assert!(!m("sms.delivered", "sms.delivered.extra"));
        assert!(!m("email.bounced", "email"));
        assert!(TypePattern::parse("Email.*").is_err());
        assert!(TypePattern::parse("email..x").is_err());
    }
}
