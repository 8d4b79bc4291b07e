//! Content filters: which events a subscription takes, by the values of their fields.
//!
//! ```text
//! data.bounce.kind == "hard"
//! data.tags.userId exists
//! data.mailbox_provider in ["gmail", "yahoo"] and not data.test == true
//! (type == "email.bounced" or type == "email.complained") and data.provider != "ses"
//! ```
//!
//! A filter is comparisons of dotted paths into the canonical event (as delivered: `type`,
//! `source`, `data.…`) joined by `and`, `or` and `not`, with parentheses. Comparisons:
//!
//! - `path == value`, `path != value`: JSON equality (a number equals the same number however
//!   written); `!=` is `not ==`, so it holds where the field is absent;
//! - `path in [value, …]`: equal to one of them;
//! - `path exists`: present and not `null`.
//!
//! Values are JSON strings, numbers, `true`, `false` and `null`. `and` binds tighter than `or`.
//! A path segment is letters, digits, `_`, `-` and `$`; one with other characters (a tag named
//! `user id`) is written as a JSON string: `data.tags."user id"`. Filters are checked when a
//! subscription is made or changed, within bounds ([`MAX_FILTER_CHARS`], [`MAX_DEPTH`],
//! [`MAX_COMPARISONS`]), so evaluating one is bounded work per event.

use serde_json::Value;

use crate::invalid::Invalid;

/// The longest filter, in characters.
pub const MAX_FILTER_CHARS: usize = 2000;
/// How deeply `not` and parentheses may nest.
pub const MAX_DEPTH: usize = 16;
/// The most comparisons (and `in` list items) one filter holds.
pub const MAX_COMPARISONS: usize = 100;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equals(Vec<String>, Value),
    In(Vec<String>, Vec<Value>),
    Exists(Vec<String>),
}

impl Filter {
    /// Reads `text`; a refusal names the `filter` field and where in the text it stopped.
    pub fn parse(text: &str) -> Result<Filter, Invalid> {
        if text.chars().count() > MAX_FILTER_CHARS {
            return Err(Invalid::new("filter", format!("filter: longer than {MAX_FILTER_CHARS} characters")));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0, comparisons: 0 };
        let filter = parser.or(0)?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(parser.refuse(token, "expected `and`, `or` or the end"));
        }
        Ok(filter)
    }

    /// Whether `event` (the canonical event as JSON) passes.
    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(event)),
            Filter::Or(any) => any.iter().any(|f| f.matches(event)),
            Filter::Not(inner) => !inner.matches(event),
            Filter::Equals(path, value) => lookup(event, path).is_some_and(|found| same(found, value)),
            Filter::In(path, values) => lookup(event, path).is_some_and(|found| values.iter().any(|v| same(found, v))),
            Filter::Exists(path) => lookup(event, path).is_some_and(|found| !found.is_null()),
        }
    }
}

fn lookup<'a>(event: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(event, |value, segment| value.get(segment.as_str()))
}

/// JSON equality, with numbers compared by value (`1` and `1.0` are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(serde_json::Number),
    Symbol(&'static str),
}

/// A token and the character it starts at.
type Located = (Token, usize);

fn tokenize(text: &str) -> Result<Vec<Located>, Invalid> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if two == "==" || two == "!=" {
            tokens.push((Token::Symbol(if two == "==" { "==" } else { "!=" }), start));
            i += 2;
        } else if let Some(symbol) = ["(", ")", "[", "]", ",", "."].into_iter().find(|s| s.starts_with(c)) {
            tokens.push((Token::Symbol(symbol), start));
            i += 1;
        } else if c == '"' {
            // A JSON string, read by JSON's own rules.
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            if end >= chars.len() {
                return Err(Invalid::new(
                    "filter",
                    format!("filter: the string at character {} is not closed", start + 1),
                ));
            }
            let literal: String = chars[i..=end].iter().collect();
            let value: String = serde_json::from_str(&literal).map_err(|e| {
                Invalid::new(
                    "filter",
                    format!("filter: the string at character {} is not a JSON string ({e})", start + 1),
                )
            })?;
            tokens.push((Token::Text(value), start));
            i = end + 1;
        } else if c == '-' || c.is_ascii_digit() {
            let mut end = i + 1;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || "+-.".contains(chars[end])) {
                end += 1;
            }
            let literal: String = chars[i..end].iter().collect();
            let number = serde_json::from_str::<serde_json::Number>(&literal).map_err(|_| {
                Invalid::new("filter", format!("filter: {literal:?} at character {} is not a number", start + 1))
            })?;
            tokens.push((Token::Number(number), start));
            i = end;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut end = i + 1;
            while end < chars.len() && (chars[end].is_alphanumeric() || "_-$".contains(chars[end])) {
                end += 1;
            }
            tokens.push((Token::Word(chars[i..end].iter().collect()), start));
            i = end;
        } else {
            return Err(Invalid::new("filter", format!("filter: unexpected {c:?} at character {}", start + 1)));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Located>,
    at: usize,
    comparisons: usize,
}

impl Parser {
    fn refuse(&self, (token, at): &Located, expected: &str) -> Invalid {
        let found = match token {
            Token::Word(w) => format!("`{w}`"),
            Token::Text(t) => format!("{t:?}"),
            Token::Number(n) => n.to_string(),
            Token::Symbol(s) => format!("`{s}`"),
        };
        Invalid::new("filter", format!("filter: {expected}, found {found} at character {}", at + 1))
    }

    fn end(&self, expected: &str) -> Invalid {
        Invalid::new("filter", format!("filter: {expected}, found the end"))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn next(&mut self, expected: &str) -> Result<Located, Invalid> {
        let token = self.tokens.get(self.at).cloned().ok_or_else(|| self.end(expected))?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn count(&mut self, n: usize) -> Result<(), Invalid> {
        self.comparisons += n;
        if self.comparisons > MAX_COMPARISONS {
            return Err(Invalid::new("filter", format!("filter: more than {MAX_COMPARISONS} comparisons")));
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<Filter, Invalid> {
        let mut any = vec![self.and(depth)?];
        while self.keyword("or") {
            self.at += 1;
            any.push(self.and(depth)?);
        }
        Ok(if any.len() == 1 { any.remove(0) } else { Filter::Or(any) })
    }

    fn and(&mut self, depth: usize) -> Result<Filter, Invalid> {
        let mut all = vec![self.unary(depth)?];
        while self.keyword("and") {
            self.at += 1;
            all.push(self.unary(depth)?);
        }
        Ok(if all.len() == 1 { all.remove(0) } else { Filter::And(all) })
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, Invalid> {
        if depth >= MAX_DEPTH {
            return Err(Invalid::new("filter", format!("filter: nested more than {MAX_DEPTH} deep")));
        }
        if self.keyword("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Token::Symbol("(")) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            let closing = self.next("expected `)`")?;
            if closing.0 != Token::Symbol(")") {
                return Err(self.refuse(&closing, "expected `)`"));
            }
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, Invalid> {
        let path = self.path()?;
        self.count(1)?;
        let operator = self.next("expected `==`, `!=`, `in` or `exists` after the path")?;
        match &operator.0 {
            Token::Symbol("==") => Ok(Filter::Equals(path, self.value()?)),
            Token::Symbol("!=") => Ok(Filter::Not(Box::new(Filter::Equals(path, self.value()?)))),
            Token::Word(w) if w == "exists" => Ok(Filter::Exists(path)),
            Token::Word(w) if w == "in" => {
                let open = self.next("expected `[`")?;
                if open.0 != Token::Symbol("[") {
                    return Err(self.refuse(&open, "expected `[` after `in`"));
                }
                let mut values = Vec::new();
                loop {
                    values.push(self.value()?);
                    self.count(1)?;
                    let separator = self.next("expected `,` or `]`")?;
                    match separator.0 {
                        Token::Symbol(",") => continue,
                        Token::Symbol("]") => break,
                        _ => return Err(self.refuse(&separator, "expected `,` or `]`")),
                    }
                }
                Ok(Filter::In(path, values))
            }
            _ => Err(self.refuse(&operator, "expected `==`, `!=`, `in` or `exists` after the path")),
        }
    }

    fn path(&mut self) -> Result<Vec<String>, Invalid> {
        let mut path = Vec::new();
        loop {
            let segment = self.next("expected a field path (`data.bounce.kind`)")?;
            match segment.0 {
                Token::Word(word)
                    if path.is_empty() && ["and", "or", "not", "in", "exists"].contains(&word.as_str()) =>
                {
                    return Err(
                        self.refuse(&(Token::Word(word), segment.1), "expected a field path (`data.bounce.kind`)")
                    );
                }
                Token::Word(word) | Token::Text(word) => path.push(word),
                _ => return Err(self.refuse(&segment, "expected a field path (`data.bounce.kind`)")),
            }
            if self.peek() != Some(&Token::Symbol(".")) {
                return Ok(path);
            }
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<Value, Invalid> {
        let token = self.next("expected a value (a JSON string, number, true, false or null)")?;
        match token.0 {
            Token::Text(text) => Ok(Value::String(text)),
            Token::Number(number) => Ok(Value::Number(number)),
            Token::Word(ref w) if w == "true" => Ok(Value::Bool(true)),
            Token::Word(ref w) if w == "false" => Ok(Value::Bool(false)),
            Token::Word(ref w) if w == "null" => Ok(Value::Null),
            _ => Err(self.refuse(&token, "expected a value (a JSON string, number, true, false or null)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "type": "email.bounced",
            "data": {
                "provider": "sendgrid",
                "bounce": {"kind": "hard", "code": "550"},
                "mailbox_provider": "gmail",
                "tags": {"userId": "u_1", "user id": "x"},
                "attempt": 2,
                "test": null
            }
        })
    }

    fn passes(filter: &str) -> bool {
        Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")).matches(&event())
    }

    #[test]
    fn the_documented_examples_read_as_written() {
        assert!(passes(r#"data.bounce.kind == "hard""#));
        assert!(!passes(r#"data.bounce.kind == "soft""#));
        assert!(passes("data.tags.userId exists"));
        assert!(!passes("data.tags.email exists"));
        assert!(!passes("data.test exists"), "null is not there");
        assert!(passes(r#"data.mailbox_provider in ["gmail", "yahoo"]"#));
        assert!(!passes(r#"data.mailbox_provider in ["yahoo"]"#));
        assert!(passes(r#"data.tags."user id" == "x""#));
        assert!(passes("data.attempt == 2.0"), "numbers by value");
        assert!(passes(r#"data.missing != "x""#), "!= holds where the field is absent");
        assert!(passes(r#"type == "email.opened" or data.bounce.kind == "hard" and data.provider == "sendgrid""#));
        assert!(!passes(r#"(type == "email.opened" or data.bounce.kind == "hard") and data.provider == "ses""#));
        assert!(passes(r#"not data.provider == "ses""#));
    }

    #[test]
    fn refusals_name_the_field_and_the_place() {
        for (filter, says) in [
            ("", "found the end"),
            ("data.bounce.kind", "expected `==`"),
            ("data.bounce.kind = \"hard\"", "unexpected '='"),
            ("data.kind == hard", "expected a value"),
            ("data.kind == \"hard", "not closed"),
            ("data.kind in \"hard\"", "expected `[`"),
            ("data.kind in [\"a\" \"b\"]", "expected `,` or `]`"),
            ("(data.kind exists", "expected `)`"),
            ("data.kind exists data.x exists", "expected `and`, `or` or the end"),
            ("and exists", "expected a field path"),
        ] {
            let refused = Filter::parse(filter).unwrap_err();
            assert_eq!(refused.field, "filter");
            assert!(refused.reason.contains(says), "{filter:?}: {}", refused.reason);
        }
        let deep = format!("{}data.x exists{}", "(".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&deep).unwrap_err().reason.contains("nested"));
        let many = vec!["data.x exists"; 101].join(" or ");
        assert!(Filter::parse(&many).unwrap_err().reason.contains("comparisons"));
        assert!(Filter::parse(&"x".repeat(MAX_FILTER_CHARS + 1)).unwrap_err().reason.contains("longer"));
    }
}
