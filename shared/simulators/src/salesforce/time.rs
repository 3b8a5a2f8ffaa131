//! Date and datetime parsing and Salesforce's output format.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// `2026-11-22T10:15:30.123+0000`, the format Salesforce returns datetimes in.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    let mut s = t.to_rfc3339_opts(SecondsFormat::Millis, true);
    s.pop(); // the `Z`
    s.push_str("+0000");
    s
}

/// Parses `2026-11-22T10:00:00.000Z`, `...Z` without millis, `+00:00`, `+0000` offsets.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // `+0000`: read as RFC 3339 with the offset's colon put back, the common case (the
    // `strftime` forms below take ten times as long).
    let b = s.as_bytes();
    let n = b.len();
    if n > 5 && matches!(b[n - 5], b'+' | b'-') && b[n - 4..].iter().all(u8::is_ascii_digit) {
        let colon = format!("{}:{}", &s[..n - 2], &s[n - 2..]);
        if let Ok(t) = DateTime::parse_from_rfc3339(&colon) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    // Without an offset: UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_salesforce_forms() {
        let a = parse_datetime("2026-11-22T10:00:00.000Z").unwrap();
        assert_eq!(parse_datetime("2026-11-22T10:00:00Z"), Some(a));
        assert_eq!(parse_datetime("2026-11-22T10:00:00+00:00"), Some(a));
        assert_eq!(parse_datetime("2026-11-22T10:00:00.000+0000"), Some(a));
        assert_eq!(parse_datetime("2026-11-22T12:00:00+02:00"), Some(a));
        assert_eq!(parse_datetime("2026-11-22T11:00:00.000+0100"), Some(a));
        assert_eq!(parse_datetime("2026-11-22T05:00:00-0500"), Some(a));
        assert_eq!(format_datetime(a), "2026-11-22T10:00:00.000+0000");
        let later = parse_datetime("2026-11-22T10:00:00.123456Z").unwrap();
        assert_eq!(format_datetime(later), "2026-11-22T10:00:00.123+0000");
        assert!(parse_datetime("2026-11-22").is_none());
        assert!(parse_date("2026-11-22").is_some());
    }
}
