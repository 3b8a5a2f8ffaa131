//! Canonical values: one spelling per value, so that comparing what each system holds never
//! sees a change where there is none (sync rule 4, "No echoes", in `docs/sync-rules.md`).

use std::borrow::Cow;

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
    canonical_cow(ty, max_length, value).into_owned()
}

/// [`canonical`] without copying: a value that is already canonical (the usual case: text
/// within its length, a lower-case e-mail, a boolean) is returned borrowed, so reading a
/// mapped field allocates at most once.
#[inline]
pub fn canonical_cow(ty: FieldType, max_length: Option<usize>, value: &Value) -> Cow<'_, Value> {
    // The usual case, decided inline: text that starts with a visible ASCII character (so
    // it is not blank) and has no more bytes than the field has characters (so it is not
    // cut) is canonical as it is.
    if let (FieldType::Text, Value::String(s)) = (ty, value) {
        if starts_visible_ascii(s) && !matches!(max_length, Some(max) if s.len() > max) {
            return Cow::Borrowed(value);
        }
    }
    canonical_general(ty, max_length, value)
}

/// Whether the first character of `s` is ASCII and not whitespace.
#[inline]
fn starts_visible_ascii(s: &str) -> bool {
    s.as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii() && !char::from(b).is_whitespace())
}

fn canonical_general(ty: FieldType, max_length: Option<usize>, value: &Value) -> Cow<'_, Value> {
    match ty {
        FieldType::Text => text(value, max_length),
        FieldType::Email => match text(value, max_length) {
            Cow::Borrowed(Value::String(s)) => match email(s) {
                Some(lower) => Cow::Owned(Value::String(lower)),
                None => Cow::Borrowed(value),
            },
            Cow::Owned(Value::String(s)) => Cow::Owned(Value::String(email(&s).unwrap_or(s))),
            other => other,
        },
        FieldType::Number => number(value),
        FieldType::Boolean => match value {
            Value::Bool(_) => Cow::Borrowed(value),
            Value::Null => Cow::Owned(Value::Bool(false)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Cow::Owned(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") || s.trim().is_empty() => {
                Cow::Owned(Value::Bool(false))
            }
            other => Cow::Borrowed(other),
        },
        FieldType::Date => match text(value, None) {
            Cow::Borrowed(Value::String(s)) => match parse_date(s) {
                Some(d) => Cow::Owned(Value::String(d.format("%Y-%m-%d").to_string())),
                None => Cow::Borrowed(value),
            },
            Cow::Owned(Value::String(s)) => Cow::Owned(Value::String(match parse_date(&s) {
                Some(d) => d.format("%Y-%m-%d").to_string(),
                None => s,
            })),
            other => other,
        },
        FieldType::Datetime => match text(value, None) {
            Cow::Borrowed(Value::String(s)) => match parse_datetime(s) {
                Some(t) => Cow::Owned(Value::String(format_datetime(t))),
                None => Cow::Borrowed(value),
            },
            Cow::Owned(Value::String(s)) => Cow::Owned(Value::String(match parse_datetime(&s) {
                Some(t) => format_datetime(t),
                None => s,
            })),
            other => other,
        },
    }
}

/// The trimmed, lower-cased spelling of a non-blank e-mail, or `None` when `s` already is
/// that spelling (the common case, checked without allocating).
fn email(s: &str) -> Option<String> {
    let t = s.trim();
    let canonical_already =
        t.len() == s.len() && t.is_ascii() && !t.bytes().any(|b| b.is_ascii_uppercase());
    (!canonical_already).then(|| t.to_lowercase())
}

/// Text of a value: null stays null, blank is null, other scalars are spelled out; cut to
/// `max_length` characters. Only a string that must change is copied.
fn text(value: &Value, max_length: Option<usize>) -> Cow<'_, Value> {
    match value {
        Value::Null => Cow::Owned(Value::Null),
        Value::String(s) => {
            // Blank: only whitespace (trimming the start alone tells).
            if s.trim_start().is_empty() {
                return Cow::Owned(Value::Null);
            }
            match cut(s, max_length) {
                Some(short) => Cow::Owned(Value::String(short.to_string())),
                None => Cow::Borrowed(value),
            }
        }
        other => {
            let s = match other {
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            if s.trim().is_empty() {
                return Cow::Owned(Value::Null);
            }
            Cow::Owned(Value::String(match cut(&s, max_length) {
                Some(short) => short.to_string(),
                None => s,
            }))
        }
    }
}

/// The first `max` characters of `s` when it is longer than that.
fn cut(s: &str, max_length: Option<usize>) -> Option<&str> {
    let max = max_length?;
    // A string of at most `max` bytes has at most `max` characters.
    if s.len() <= max {
        return None;
    }
    s.char_indices().nth(max).map(|(end, _)| &s[..end])
}

fn number(value: &Value) -> Cow<'_, Value> {
    let n = match value {
        Value::Null => return Cow::Owned(Value::Null),
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return Cow::Owned(Value::Null),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    Cow::Owned(match n {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::Number(serde_json::Number::from(f as i64))
        }
        Some(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        None => return Cow::Borrowed(value),
    })
}

/// Rounds a canonical number to `scale` decimal places the way Salesforce stores a value
/// sent to a number field of that scale: half away from zero, on the decimal digits the
/// value is sent with (the shortest spelling that reads back as the same `f64`, so
/// `12.345` is `12.35` at scale 2, although the nearest `f64` is a little below it).
/// Anything but a number is returned unchanged; so is a number with no more places.
pub fn round_to_scale(value: Cow<'_, Value>, scale: u32) -> Cow<'_, Value> {
    let Value::Number(n) = &*value else {
        return value;
    };
    let Some(f) = n.as_f64().filter(|f| f.is_finite()) else {
        return value;
    };
    if n.is_i64() || n.is_u64() {
        return value;
    }
    // `Display` of an `f64` is its shortest round-trip spelling, never in exponent form.
    let spelled = format!("{}", f.abs());
    let (whole, fraction) = spelled.split_once('.').unwrap_or((&spelled, ""));
    let scale = scale as usize;
    if fraction.len() <= scale {
        return value;
    }
    let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes().take(scale)).collect();
    if fraction.as_bytes()[scale] >= b'5' {
        // Add one unit in the last kept place, carrying to the left.
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let mut text = String::with_capacity(digits.len() + 2);
    if f.is_sign_negative() {
        text.push('-');
    }
    text.push_str(std::str::from_utf8(&digits[..split]).unwrap_or("0"));
    if scale > 0 {
        text.push('.');
        text.push_str(std::str::from_utf8(&digits[split..]).unwrap_or("0"));
    }
    match number(&Value::String(text)) {
        Cow::Owned(v @ Value::Number(_)) => Cow::Owned(v),
        _ => value,
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
///
/// Salesforce's spelling is read as RFC 3339 with the offset's colon put back (the
/// `strftime` parser takes ten times as long, and every record of a sync carries a
/// `SystemModstamp`); other `%z` spellings fall back to it.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Some(t) = colonless_offset(s).and_then(|r| DateTime::parse_from_rfc3339(&r).ok()) {
        return Some(t.with_timezone(&Utc));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `...+0000` as `...+00:00`, when `s` ends with a four-digit offset. No I/O.
fn colonless_offset(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let n = b.len();
    if n < 6 || !matches!(b[n - 5], b'+' | b'-') || !b[n - 4..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = String::with_capacity(n + 1);
    out.push_str(&s[..n - 2]);
    out.push(':');
    out.push_str(&s[n - 2..]);
    Some(out)
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
    fn decimals_round_to_the_scale_half_away_from_zero_as_salesforce_stores_them() {
        let round = |v: Value, scale| round_to_scale(Cow::Owned(v), scale).into_owned();
        assert_eq!(round(json!(12.345), 2), json!(12.35));
        assert_eq!(round(json!(-12.345), 2), json!(-12.35));
        assert_eq!(round(json!(12.344), 2), json!(12.34));
        assert_eq!(round(json!(1.005), 2), json!(1.01));
        assert_eq!(round(json!(9.995), 2), json!(10));
        assert_eq!(round(json!(-0.5), 0), json!(-1));
        assert_eq!(round(json!(0.4), 0), json!(0));
        assert_eq!(round(json!(0.0000001), 2), json!(0));
        assert_eq!(round(json!(99.99), 1), json!(100));
        // already within the scale, integral, or not a number: unchanged
        assert_eq!(round(json!(12.3), 2), json!(12.3));
        assert_eq!(round(json!(12), 0), json!(12));
        assert_eq!(round(json!("12.345"), 2), json!("12.345"));
        assert_eq!(round(Value::Null, 2), Value::Null);
        // rounding twice is rounding once: the value Salesforce stores compares equal
        for v in [
            json!(12.345),
            json!(-7.125),
            json!(0.045),
            json!(123456.789),
        ] {
            let once = round(v.clone(), 2);
            assert_eq!(round(once.clone(), 2), once, "{v}");
        }
    }

    #[test]
    fn salesforce_and_rfc3339_datetimes_read_as_the_same_instant() {
        let z = parse_datetime("2013-05-07T22:07:19.000Z").unwrap();
        assert_eq!(parse_datetime("2013-05-07T22:07:19.000+0000"), Some(z));
        assert_eq!(parse_datetime("2013-05-07T22:07:19+0000"), Some(z));
        assert_eq!(parse_datetime("2013-05-07T23:07:19.000+0100"), Some(z));
        assert_eq!(parse_datetime("2013-05-07T17:07:19.000-0500"), Some(z));
        assert_eq!(parse_datetime(" 2013-05-07T22:07:19+00:00 "), Some(z));
        for bad in [
            "2013-05-07T22:07:19.000+00",
            "+0000",
            "2013-05-07",
            "nope",
            "2013-05-07T22:07:19.000+00x0",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
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

/// The allocation-free [`canonical_cow`] against the original, always-copying implementation.
#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `canonical` as it was before the borrowed fast path, kept as the reference.
    fn reference(ty: FieldType, max_length: Option<usize>, value: &Value) -> Value {
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
                Some(max) if s.chars().count() > max => {
                    Value::String(s.chars().take(max).collect())
                }
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

    fn field_type() -> impl Strategy<Value = FieldType> {
        prop_oneof![
            Just(FieldType::Text),
            Just(FieldType::Email),
            Just(FieldType::Number),
            Just(FieldType::Boolean),
            Just(FieldType::Date),
            Just(FieldType::Datetime),
        ]
    }

    /// Strings as both systems send them: blank, padded, mixed case, non-ASCII (including
    /// characters whose lower case differs in length), numbers, booleans, dates.
    fn text_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ \t\n\r\x0B\x0C\x1F\u{85}\u{a0}\u{3000}]{0,3}",
            "[ \t\x0B\x1F\u{85}][a-z]{0,3}[ \x0B]{0,2}",
            "[ ]{0,2}[a-zA-Z0-9@._+-]{0,12}[ ]{0,2}",
            "[a-zA-Z0-9 ]{0,6}[äÄßẞİıΣσςÉéŉǅ\u{301}😀][a-zA-Z ]{0,6}",
            "(true|TRUE|False|false|yes| 1.5 |-0|1e3|9007199254740993|12a)",
            "(2026-11-22|2026-11-22T10:15:30.123\\+0000|2026-11-22T11:15:30\\+01:00|2026-11-22T10:15:30Z|2026-02-30| 2026-01-05T00:00:00Z )",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1.0e16..1.0e16f64).prop_map(|f| json!(f)),
            (-1000i32..1000).prop_map(|n| json!(f64::from(n) / 4.0)),
            text_value().prop_map(Value::String),
            Just(json!(["a", 1])),
            Just(json!({"a": " "})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn borrowed_canonical_agrees_with_the_reference(
            ty in field_type(),
            max_length in proptest::option::of(1usize..16),
            value in json_value(),
        ) {
            let fast = canonical_cow(ty, max_length, &value);
            let want = reference(ty, max_length, &value);
            // Borrowed only when the value is canonical already.
            if let Cow::Borrowed(b) = &fast {
                prop_assert!(std::ptr::eq(*b, &value));
                prop_assert_eq!(*b, &want);
            }
            prop_assert_eq!(fast.into_owned(), want.clone());
            prop_assert_eq!(canonical(ty, max_length, &value), want);
        }
    }

    #[test]
    fn already_canonical_values_are_not_copied() {
        for (ty, max, v) in [
            (FieldType::Text, Some(255), json!("Northwind Traders GmbH")),
            (FieldType::Text, Some(3), json!("Zoë")),
            (FieldType::Email, None, json!("ops@northwind.example")),
            (FieldType::Boolean, None, json!(true)),
            (FieldType::Number, None, json!("not a number")),
        ] {
            assert!(
                matches!(canonical_cow(ty, max, &v), Cow::Borrowed(_)),
                "{ty:?} {v}"
            );
        }
        for (ty, max, v) in [
            (FieldType::Text, Some(2), json!("Zoë")),
            (FieldType::Email, None, json!("Ops@northwind.example")),
            (FieldType::Email, None, json!("ops@northwind.example ")),
            (FieldType::Email, None, json!("zoë@northwind.example")),
            (FieldType::Email, None, json!("ẞ@northwind.example")),
        ] {
            assert!(
                matches!(canonical_cow(ty, max, &v), Cow::Owned(_)),
                "{ty:?} {v}"
            );
        }
    }
}
