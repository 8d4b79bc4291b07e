//! Standard output for people and for pipes.
//!
//! Lines go through [`line`] (the `outln!` macro): a reader that went away
//! (`tidings events --json | head -1`) ends the command quietly instead of panicking. Text
//! that came from outside (a provider's message id, a subscriber's URL) goes through [`text`]
//! before it is shown to a person, so control characters in it cannot retitle, clear or
//! rewrite the terminal; JSON output needs nothing, since JSON escapes them already.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use crate::Failure;

/// Writes `args` and a newline to standard output.
pub fn line(args: fmt::Arguments<'_>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{args}") {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Closed),
        Err(error) => Err(Failure::Input(format!("cannot write to standard output: {error}"))),
    }
}

/// `println!` for commands: `outln!("…", …)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// `value` fit for a terminal: every control character (C0, DEL, C1) written as `\u{…}`.
pub fn text(value: &str) -> Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_control() {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// A JSON value's string, fit for a terminal; `default` when it is not a string.
pub fn field<'a>(value: &'a serde_json::Value, default: &'a str) -> Cow<'a, str> {
    text(value.as_str().unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(text("plain ünïcode"), "plain ünïcode");
        assert_eq!(text("a\u{1b}]0;pwned\u{7}\u{1b}[2Jb"), "a\\u{1b}]0;pwned\\u{7}\\u{1b}[2Jb");
        assert_eq!(text("https://x.example/\r"), "https://x.example/\\u{d}");
        assert_eq!(text("\u{9b}31m"), "\\u{9b}31m");
    }
}
