//! Instants as providers write them (RFC 3339 with 0 to 9 fractional digits and any offset,
//! Unix seconds as integers, floats or strings, Unix milliseconds), and as tidings writes them:
//! RFC 3339 in UTC, with milliseconds only when they are not zero.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// An instant, kept to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    pub fn now() -> Timestamp {
        let now = OffsetDateTime::now_utc();
        Timestamp::from_datetime(now).unwrap_or(Timestamp(now))
    }

    /// `dt` in UTC, truncated to milliseconds so an instant prints and parses back to itself;
    /// `None` outside the years RFC 3339 can write (0000–9999).
    fn from_datetime(dt: OffsetDateTime) -> Option<Timestamp> {
        let dt = dt.to_offset(UtcOffset::UTC);
        let millis = dt.millisecond();
        (0..=9999).contains(&dt.year()).then(|| Timestamp(dt.replace_millisecond(millis).unwrap_or(dt)))
    }

    /// Whole seconds since the Unix epoch; `None` outside years 0000–9999.
    pub fn from_unix_seconds(seconds: i64) -> Option<Timestamp> {
        OffsetDateTime::from_unix_timestamp(seconds).ok().and_then(Timestamp::from_datetime)
    }

    /// Milliseconds since the Unix epoch; `None` outside years 0000–9999.
    pub fn from_unix_millis(millis: i64) -> Option<Timestamp> {
        let nanos = i128::from(millis) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).ok().and_then(Timestamp::from_datetime)
    }

    /// Fractional seconds since the Unix epoch (Mailgun's `1529006854.329574`).
    pub fn from_unix_float(seconds: f64) -> Option<Timestamp> {
        if !seconds.is_finite() {
            return None;
        }
        let millis = (seconds * 1000.0).round();
        if millis.abs() > 1e15 {
            return None;
        }
        Timestamp::from_unix_millis(millis as i64)
    }

    /// Unix seconds written as text: `"1454442600"` or `"1529006854.329574"`.
    pub fn from_unix_text(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<i64>() {
            return Timestamp::from_unix_seconds(seconds);
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return text.parse::<f64>().ok().and_then(Timestamp::from_unix_float);
        }
        None
    }

    /// RFC 3339 (`2019-11-05T16:33:54.9070259-05:00`, `2024-11-22T23:41:12.126Z`), also with a
    /// space for the `T`, and a bare `YYYY-MM-DD HH:MM:SS` taken as UTC.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
            return Timestamp::from_datetime(dt);
        }
        if text.len() > 10 && text.as_bytes()[10] == b' ' {
            let with_t = format!("{}T{}", &text[..10], &text[11..]);
            if let Ok(dt) = OffsetDateTime::parse(&with_t, &Rfc3339) {
                return Timestamp::from_datetime(dt);
            }
        }
        // `+00:00`-less forms some providers send: no offset means UTC.
        let naive = format_description!(
            version = 2,
            "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(text, &naive).ok().and_then(|dt| Timestamp::from_datetime(dt.assume_utc()))
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// `seconds` later (the same time when that is out of range).
    pub fn plus_seconds(self, seconds: u64) -> Timestamp {
        self.plus(std::time::Duration::from_secs(seconds))
    }

    /// `duration` later, to the millisecond (the same time when that is out of range).
    pub fn plus(self, duration: std::time::Duration) -> Timestamp {
        i64::try_from(duration.as_millis())
            .ok()
            .and_then(|ms| self.unix_millis().checked_add(ms))
            .and_then(Timestamp::from_unix_millis)
            .unwrap_or(self)
    }

    /// Seconds from `self` to `later` (negative when `later` is earlier).
    pub fn seconds_until(&self, later: Timestamp) -> i64 {
        later.unix_seconds() - self.unix_seconds()
    }

    /// The RFC 3339 text (`2026-11-24T06:18:18Z`, `.123` before the `Z` when there are
    /// milliseconds) written into a buffer: each canonical event writes two or three, so this
    /// skips the formatting machinery. Every constructor keeps to years 0000–9999, so the clamp
    /// changes nothing.
    fn rfc3339(&self) -> ([u8; 24], usize) {
        fn digits(out: &mut [u8], mut value: u32) {
            for slot in out.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let dt = self.0;
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        digits(&mut buf[0..4], dt.year().clamp(0, 9999) as u32);
        digits(&mut buf[5..7], u32::from(u8::from(dt.month())));
        digits(&mut buf[8..10], u32::from(dt.day()));
        digits(&mut buf[11..13], u32::from(dt.hour()));
        digits(&mut buf[14..16], u32::from(dt.minute()));
        digits(&mut buf[17..19], u32::from(dt.second()));
        let millis = dt.millisecond();
        if millis == 0 {
            buf[19] = b'Z';
            (buf, 20)
        } else {
            digits(&mut buf[20..23], u32::from(millis));
            (buf, 24)
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (buf, len) = self.rfc3339();
        // Only ASCII digits and punctuation were written.
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (buf, len) = self.rfc3339();
        serializer.serialize_str(std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(text: &str) -> String {
        Timestamp::parse_rfc3339(text).map(|t| t.to_string()).unwrap_or_default()
    }

    #[test]
    fn provider_time_formats_become_utc_rfc3339() {
        assert_eq!(rfc("2019-11-05T16:33:54.9070259-05:00"), "2019-11-05T21:33:54.907Z");
        assert_eq!(rfc("2025-11-28T06:29:34+00:00"), "2025-11-28T06:29:34Z");
        assert_eq!(rfc("2025-11-28T06:36:18.8261187+00:00"), "2025-11-28T06:36:18.826Z");
        assert_eq!(rfc("2024-11-22T23:41:12.126Z"), "2024-11-22T23:41:12.126Z");
        assert_eq!(rfc("2020-10-09 00:00:00"), "2020-10-09T00:00:00Z");
        assert_eq!(rfc("2020-10-09T13:14:15.5"), "2020-10-09T13:14:15.500Z");
        assert_eq!(rfc("yesterday"), "");
    }

    #[test]
    fn unix_forms() {
        assert_eq!(Timestamp::from_unix_seconds(1513299569).unwrap().to_string(), "2017-12-15T00:59:29Z");
        assert_eq!(Timestamp::from_unix_float(1529006854.329574).unwrap().to_string(), "2018-06-14T20:07:34.330Z");
        assert_eq!(Timestamp::from_unix_text("1460989507").unwrap().to_string(), "2016-04-18T14:25:07Z");
        assert_eq!(Timestamp::from_unix_millis(1598634509223).unwrap().to_string(), "2020-08-28T17:08:29.223Z");
        assert!(Timestamp::from_unix_seconds(i64::MAX).is_none());
        // Before year 0 RFC 3339 has no way to write the time: no time, not a wrong one.
        assert!(Timestamp::from_unix_seconds(-62_167_219_201).is_none());
        assert_eq!(Timestamp::from_unix_seconds(-62_167_219_200).unwrap().to_string(), "0000-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_unix_millis(253_402_300_799_999).unwrap().to_string(), "9999-12-31T23:59:59.999Z");
        assert!(Timestamp::from_unix_millis(253_402_300_800_000).is_none());
        assert!(Timestamp::from_unix_float(f64::NAN).is_none());
        assert!(Timestamp::from_unix_text("12ab").is_none());
    }

    #[test]
    fn display_parses_back_to_the_same_instant() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        let whole = Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
        assert_eq!(whole.to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(Timestamp::from_unix_millis(1_700_000_000_007).unwrap().to_string(), "2023-11-14T22:13:20.007Z");
    }
}
