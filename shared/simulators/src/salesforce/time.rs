//! Date and datetime parsing and Salesforce's output format.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// `2026-11-22T10:15:30.123+0000`, the format Salesforce returns datetimes in.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Parses `2026-11-22T10:00:00.000Z`, `...Z` without millis, `+00:00`, `+0000` offsets.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
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
        assert_eq!(format_datetime(a), "2026-11-22T10:00:00.000+0000");
        assert!(parse_datetime("2026-11-22").is_none());
        assert!(parse_date("2026-11-22").is_some());
    }
}
