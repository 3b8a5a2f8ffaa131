//! Canonical values: one spelling per value, so that comparing what each system holds never
//! sees a change where there is none (DESIGN "No echoes").

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::FieldType;

/// Puts a value into its canonical form for a field of type `ty`.
///
/// - text, url, phone: blank (empty or only spaces) is null; otherwise kept as is, cut to
///   `max_length` characters when a length is set.
/// - email: trimmed and lower-cased; blank is null.
/// - number: a JSON number (numeric strings are parsed); integral values lose their `.0`.
/// - boolean: `null` is false (a Salesforce checkbox is never null).
/// - date: `YYYY-MM-DD`; datetime: RFC 3339 UTC with milliseconds.
///
/// A value that cannot be read as its type is kept as text, so that it is still compared
/// and reported rather than silently dropped.
pub fn canonical(ty: FieldType, max_length: Option<usize>, value: &Value) -> Value {
    match ty {
        FieldType::Text => text(value, max_length),
        FieldType::Email => match text(value, max_length) {
            Value::String(s) => Value::String(s.trim().to_lowercase()),
            other => other,
        },
        FieldType::Number => number(value),
        FieldType::Boolean => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::Null => Value::Bool(false),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") || s.trim().is_empty() => {
                Value::Bool(false)
            }
            other => other.clone(),
        },
        FieldType::Date => match text(value, None) {
            Value::String(s) => match parse_date(&s) {
                Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                None => Value::String(s),
            },
            other => other,
        },
        FieldType::Datetime => match text(value, None) {
            Value::String(s) => match parse_datetime(&s) {
                Some(t) => Value::String(format_datetime(t)),
                None => Value::String(s),
            },
            other => other,
        },
    }
}

fn text(value: &Value, max_length: Option<usize>) -> Value {
    let s = match value {
        Value::Null => return Value::Null,
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    if s.trim().is_empty() {
        return Value::Null;
    }
    match max_length {
        Some(max) if s.chars().count() > max => Value::String(s.chars().take(max).collect()),
        _ => Value::String(s),
    }
}

fn number(value: &Value) -> Value {
    let n = match value {
        Value::Null => return Value::Null,
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Value::Null,
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::Number(serde_json::Number::from(f as i64))
        }
        Some(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        None => value.clone(),
    }
}

/// Reads a date as `YYYY-MM-DD` or the date part of a datetime.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_datetime(s).map(|t| t.date_naive()))
}

/// Reads both systems' datetime spellings: RFC 3339 (`...Z`, `+00:00`) and Salesforce's
/// `2026-11-22T10:15:30.123+0000`.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The canonical datetime spelling: RFC 3339 UTC with milliseconds.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Null-aware equality of two canonical values (a missing value is null).
pub fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    a.unwrap_or(&Value::Null) == b.unwrap_or(&Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blank_text_is_null() {
        assert_eq!(canonical(FieldType::Text, None, &json!("  ")), Value::Null);
        assert_eq!(canonical(FieldType::Text, None, &json!("")), Value::Null);
        assert_eq!(canonical(FieldType::Text, None, &json!("a ")), json!("a "));
    }

    #[test]
    fn text_is_cut_to_length_the_same_way_every_time() {
        let once = canonical(FieldType::Text, Some(3), &json!("abcdef"));
        assert_eq!(once, json!("abc"));
        assert_eq!(canonical(FieldType::Text, Some(3), &once), once);
    }

    #[test]
    fn numbers_compare_as_values() {
        assert_eq!(canonical(FieldType::Number, None, &json!(10.0)), json!(10));
        assert_eq!(canonical(FieldType::Number, None, &json!("10")), json!(10));
        assert_eq!(
            canonical(FieldType::Number, None, &json!(10.5)),
            json!(10.5)
        );
        assert_eq!(canonical(FieldType::Number, None, &json!("")), Value::Null);
    }

    #[test]
    fn datetimes_compare_as_instants() {
        let a = canonical(
            FieldType::Datetime,
            None,
            &json!("2026-11-22T10:15:30.123+0000"),
        );
        let b = canonical(
            FieldType::Datetime,
            None,
            &json!("2026-11-22T11:15:30.123+01:00"),
        );
        assert_eq!(a, b);
        assert_eq!(a, json!("2026-11-22T10:15:30.123Z"));
    }

    #[test]
    fn dates_and_emails() {
        assert_eq!(
            canonical(FieldType::Date, None, &json!("2026-01-05T00:00:00Z")),
            json!("2026-01-05")
        );
        assert_eq!(
            canonical(FieldType::Email, None, &json!(" Ann@Example.COM")),
            json!("ann@example.com")
        );
        assert_eq!(
            canonical(FieldType::Boolean, None, &Value::Null),
            json!(false)
        );
    }
}
