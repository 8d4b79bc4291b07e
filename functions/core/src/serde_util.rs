//! Lenient readers for fields providers write in more than one JSON type.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::timestamp::Timestamp;

/// A scalar written as a string or a number (`"1529006854"` or `1529006854.3`), as text.
pub fn string_or_number<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    match Scalar::deserialize(de)? {
        Scalar::Text(s) => Ok(s.into_owned()),
        Scalar::Number(n) => Ok(n.to_string()),
        Scalar::Bool(b) => Ok(b.to_string()),
    }
}

/// Like [`string_or_number`], for optional fields; `null` is `None`.
pub fn opt_string_or_number<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Scalar>::deserialize(de)? {
        None => None,
        Some(Scalar::Text(s)) => Some(s.into_owned()),
        Some(Scalar::Number(n)) => Some(n.to_string()),
        Some(Scalar::Bool(b)) => Some(b.to_string()),
    })
}

enum Scalar<'a> {
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    Bool(bool),
}

/// Read by one visitor rather than `#[serde(untagged)]`, which buffers the value and, for
/// every number, builds (and throws away) the error of trying it as a string first: that was
/// a tenth of normalizing a Postmark webhook (BENCHMARKS.md).
impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                serde_json::Number::from_f64(v)
                    .map(Scalar::Number)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
        }
        de.deserialize_any(ScalarVisitor)
    }
}

/// A boolean written as `true`, `"true"`, `1` or `"1"` (and their negatives).
pub fn opt_loose_bool<'de, D: Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(de)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => n.as_i64().map(|n| n != 0),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" => Some(true),
            "false" | "0" | "no" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// An instant written as Unix seconds (integer, float or numeric string), Unix milliseconds
/// (integers past the year 33658 in seconds), or RFC 3339 text. `None` when absent or unreadable;
/// the caller decides whether that is an error.
pub fn parse_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i.unsigned_abs() >= 100_000_000_000 {
                    Timestamp::from_unix_millis(i)
                } else {
                    Timestamp::from_unix_seconds(i)
                }
            } else {
                n.as_f64().and_then(Timestamp::from_unix_float)
            }
        }
        Value::String(s) => Timestamp::from_unix_text(s).or_else(|| Timestamp::parse_rfc3339(s)),
        _ => None,
    }
}

/// A string that borrows from the input when it has no escapes, and is owned when it does.
/// (serde's own `Cow<str>` always copies unless a derive marks the field `#[serde(borrow)]`.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        de.deserialize_str(V)
    }
}

/// `value` with every object's keys in order, so its text is the same whether or not something
/// in the build turns on serde_json's `preserve_order` (the AWS SDK's test utilities do, and
/// features are unified across a workspace build). For text that is compared or checked in.
pub fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Doc {
        #[serde(default, deserialize_with = "opt_string_or_number")]
        id: Option<String>,
    }

    fn id(json: &str) -> Result<Option<String>, String> {
        serde_json::from_str::<Doc>(json).map(|d| d.id).map_err(|e| e.to_string())
    }

    #[test]
    fn scalars_read_as_their_text_and_anything_else_is_refused() {
        assert_eq!(id(r#"{"id":"abc"}"#).unwrap().as_deref(), Some("abc"));
        assert_eq!(id(r#"{"id":"a\"b"}"#).unwrap().as_deref(), Some("a\"b"));
        assert_eq!(id(r#"{"id":1529006854}"#).unwrap().as_deref(), Some("1529006854"));
        assert_eq!(id(r#"{"id":-3}"#).unwrap().as_deref(), Some("-3"));
        assert_eq!(id(r#"{"id":1529006854.3}"#).unwrap().as_deref(), Some("1529006854.3"));
        assert_eq!(id(r#"{"id":true}"#).unwrap().as_deref(), Some("true"));
        assert_eq!(id(r#"{"id":null}"#).unwrap(), None);
        assert_eq!(id(r#"{}"#).unwrap(), None);
        for refused in [r#"{"id":{}}"#, r#"{"id":[1]}"#] {
            let error = id(refused).unwrap_err();
            assert!(error.contains("a string, a number or a boolean"), "{error}");
        }
        let value: Value = serde_json::json!({"id": 42});
        assert_eq!(serde_json::from_value::<Doc>(value).unwrap().id.as_deref(), Some("42"));
    }
}

/// A JSON value read with every object's keys unique: a body that names a key twice is refused
/// rather than read as its last occurrence, so no two readers of one signed body can disagree
/// about what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[test]
    fn a_key_named_twice_at_any_depth_is_refused() {
        let ok: StrictValue = serde_json::from_str(r#"{"a":[{"b":1},{"b":2}],"c":{"d":null}}"#).unwrap();
        assert_eq!(ok.0["a"][1]["b"], 2);
        let err = serde_json::from_str::<StrictValue>(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key `a`"), "{err}");
        assert!(serde_json::from_str::<StrictValue>(r#"{"x":{"y":1,"y":1}}"#).is_err());
    }
}

/// For `skip_serializing_if`: a count left at zero is not written.
pub fn is_zero(n: &u32) -> bool {
    *n == 0
}
