//! List query parameters: parsing, filtering and the opaque cursor.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::{FieldError, SimError};
use super::store::{record_id, Collection, StoredRecord};

pub const DEFAULT_LIMIT: usize = 200;
pub const MAX_LIMIT: usize = 1000;
pub const MAX_IDS: usize = 200;

/// A parsed `GET /v1/{collection}` query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFilter {
    pub updated_since: Option<DateTime<Utc>>,
    pub limit: usize,
    pub after: Option<(DateTime<Utc>, String)>,
    pub ids: Option<Vec<String>>,
    pub crm_id: Option<String>,
    pub email: Option<String>,
    pub organization_id: Option<String>,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            updated_since: None,
            limit: DEFAULT_LIMIT,
            after: None,
            ids: None,
            crm_id: None,
            email: None,
            organization_id: None,
        }
    }
}

impl ListFilter {
    /// Parses a raw query string; every problem becomes one `fields` entry.
    pub fn parse(c: Collection, raw: Option<&str>) -> Result<Self, SimError> {
        let mut f = ListFilter::default();
        let mut errors = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
        for (key, value) in pairs {
            let key = key.into_owned();
            let value = value.into_owned();
            if seen.contains(&key) {
                errors.push(FieldError::new(&key, "is given more than once"));
                continue;
            }
            seen.push(key.clone());
            let people_only = matches!(key.as_str(), "email" | "organization_id");
            if people_only && c != Collection::People {
                errors.push(FieldError::new(
                    &key,
                    format!("is not a filter of {}", c.path()),
                ));
                continue;
            }
            match key.as_str() {
                "updated_since" => match DateTime::parse_from_rfc3339(&value) {
                    Ok(t) => f.updated_since = Some(t.with_timezone(&Utc)),
                    Err(_) => errors.push(FieldError::new(
                        &key,
                        "must be an RFC 3339 timestamp such as 2026-11-22T10:15:30.123Z",
                    )),
                },
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                    _ => errors.push(FieldError::new(
                        &key,
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )),
                },
                "cursor" => match decode_cursor(&value) {
                    Some(after) => f.after = Some(after),
                    None => errors.push(FieldError::new(
                        &key,
                        "is not a cursor returned by this API",
                    )),
                },
                "ids" => {
                    let ids: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if ids.is_empty() {
                        errors.push(FieldError::new(&key, "must list at least one id"));
                    } else if ids.len() > MAX_IDS {
                        errors.push(FieldError::new(
                            &key,
                            format!("lists {} ids; at most {MAX_IDS} are allowed", ids.len()),
                        ));
                    } else {
                        f.ids = Some(ids);
                    }
                }
                "crm_id" => f.crm_id = Some(value),
                "email" => f.email = Some(value.to_lowercase()),
                "organization_id" => f.organization_id = Some(value),
                _ => errors.push(FieldError::new(&key, "is not a known query parameter")),
            }
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(SimError::validation(errors))
        }
    }

    /// Whether a record passes the filters (the cursor is applied by the store).
    pub fn matches(&self, r: &StoredRecord) -> bool {
        if let Some(since) = self.updated_since {
            if r.updated_at < since {
                return false;
            }
        }
        if let Some(ids) = &self.ids {
            if !ids.iter().any(|i| i == record_id(r)) {
                return false;
            }
        }
        let str_field = |name: &str| r.data.get(name).and_then(Value::as_str);
        if let Some(crm_id) = &self.crm_id {
            if str_field("crm_id") != Some(crm_id.as_str()) {
                return false;
            }
        }
        if let Some(email) = &self.email {
            if str_field("email").map(str::to_lowercase).as_deref() != Some(email.as_str()) {
                return false;
            }
        }
        if let Some(org) = &self.organization_id {
            if str_field("organization_id") != Some(org.as_str()) {
                return false;
            }
        }
        true
    }
}

/// Encodes the position after `(updated_at, id)` as an opaque hex string.
pub fn encode_cursor(ts: DateTime<Utc>, id: &str) -> String {
    format!("{}:{}", ts.timestamp_millis(), id)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, String)> {
    let bytes = s
        .as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(hex_digit(*hi)? * 16 + hex_digit(*lo)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ms, id) = text.split_once(':')?;
    let ts = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
    Some((ts, id.to_string()))
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let ts = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        let c = encode_cursor(ts, "org_000001");
        assert_eq!(decode_cursor(&c), Some((ts, "org_000001".to_string())));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("abc"), None);
        assert_eq!(decode_cursor("é1"), None);
    }

    #[test]
    fn unknown_and_bad_params_are_each_reported() {
        let err = ListFilter::parse(
            Collection::Organizations,
            Some("limit=0&foo=1&email=a@b.c&updated_since=yesterday"),
        )
        .unwrap_err();
        assert_eq!(err.status, 422);
        let fields: Vec<_> = err.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["limit", "foo", "email", "updated_since"]);
    }

    #[test]
    fn people_filters_parse() {
        let f = ListFilter::parse(
            Collection::People,
            Some("email=A%40B.com&organization_id=org_1&ids=a,b&limit=5"),
        )
        .unwrap();
        assert_eq!(f.email.as_deref(), Some("a@b.com"));
        assert_eq!(f.organization_id.as_deref(), Some("org_1"));
        assert_eq!(f.ids, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(f.limit, 5);
    }
}
