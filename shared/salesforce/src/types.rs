//! Data types returned by the client.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{classify, ErrorClass, SfError};

/// Field values of one record, keyed by API name.
pub type Fields = serde_json::Map<String, Value>;

/// One record as returned by a query or a GET.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SObject {
    /// `attributes.type`, e.g. `Account`.
    pub object: String,
    /// The record Id (empty for aggregate rows without an Id).
    pub id: String,
    /// Field values without `attributes` (nested relationship objects are stripped of their
    /// `attributes` too); includes `Id` when it was selected.
    pub fields: Fields,
}

impl SObject {
    /// Build from a record JSON object as Salesforce returns it.
    pub fn from_json(value: Value) -> Result<Self, SfError> {
        let Value::Object(mut map) = value else {
            return Err(SfError::decode("a record", "record is not a JSON object"));
        };
        let attributes = map.remove("attributes");
        let object = attributes
            .as_ref()
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = match map.get("Id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => attributes
                .as_ref()
                .and_then(|a| a.get("url"))
                .and_then(Value::as_str)
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or_default()
                .to_string(),
        };
        for v in map.values_mut() {
            strip_attributes(v);
        }
        Ok(SObject {
            object,
            id,
            fields: map,
        })
    }

    /// A field's value (`None` when absent; `Some(Value::Null)` when selected but blank).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// A field as text (`None` when absent, null or not a string).
    pub fn str(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }

    /// A field as bool (`None` when absent or not a bool).
    pub fn bool(&self, field: &str) -> Option<bool> {
        self.fields.get(field).and_then(Value::as_bool)
    }

    /// A datetime field (e.g. `SystemModstamp`), parsed.
    pub fn datetime(&self, field: &str) -> Option<DateTime<Utc>> {
        self.str(field).and_then(parse_datetime)
    }
}

fn strip_attributes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("attributes");
            for v in m.values_mut() {
                strip_attributes(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_attributes),
        _ => {}
    }
}

/// Parse a Salesforce datetime: `2026-11-22T10:00:00.000+0000`, `...Z` or RFC 3339 (the
/// mapping's reading, one for both systems).
pub use prmsync_mapping::value::parse_datetime;

/// Parse a Salesforce date `2026-11-22`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Format a datetime the way Salesforce writes it (`2026-11-22T10:00:00.000Z`).
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Result of one record in an sObject Collections call. Success = `errors.is_empty()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordResult {
    pub id: Option<String>,
    /// Upserts only: true when the record was created, false when updated.
    pub created: Option<bool>,
    pub errors: Vec<RecordError>,
}

impl RecordResult {
    pub fn is_success(&self) -> bool {
        self.errors.is_empty()
    }

    /// The class of the first error, if any.
    pub fn error_class(&self) -> Option<ErrorClass> {
        self.errors.first().map(RecordError::class)
    }

    pub(crate) fn failed(error: RecordError) -> Self {
        RecordResult {
            id: None,
            created: None,
            errors: vec![error],
        }
    }
}

/// One per-record error: `{statusCode, message, fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn class(&self) -> ErrorClass {
        classify(None, &self.status_code)
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status_code, self.message)?;
        if !self.fields.is_empty() {
            write!(f, " (fields: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// Wire shape of a collections result item.
#[derive(Debug, Deserialize)]
pub(crate) struct WireRecordResult {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub created: Option<bool>,
    #[serde(default)]
    pub errors: Vec<WireRecordError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRecordError {
    #[serde(default, rename = "statusCode")]
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

impl From<WireRecordResult> for RecordResult {
    fn from(w: WireRecordResult) -> Self {
        let mut errors: Vec<RecordError> = w
            .errors
            .into_iter()
            .map(|e| RecordError {
                status_code: e.status_code,
                message: e.message,
                fields: e.fields,
            })
            .collect();
        if w.success == Some(false) && errors.is_empty() {
            errors.push(RecordError {
                status_code: "UNKNOWN_ERROR".into(),
                message: "Salesforce reported a failure without an error".into(),
                fields: vec![],
            });
        }
        RecordResult {
            id: w.id,
            created: w.created,
            errors,
        }
    }
}

/// A record from getDeleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_date: DateTime<Utc>,
}

/// Full getDeleted answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedResult {
    pub records: Vec<DeletedRecord>,
    pub earliest_date_available: Option<DateTime<Utc>>,
    /// Use as the next call's start when set (changes may be in flight after it).
    pub latest_date_covered: Option<DateTime<Utc>>,
}

/// Daily API usage, from `Sforce-Limit-Info: api-usage=used/max` or `/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }

    /// Parse the header value, e.g. `api-usage=25/5000` or
    /// `api-usage=25/5000, per-app-api-usage=17/250(appName=x)`.
    pub fn parse_header(value: &str) -> Option<Self> {
        value.split(',').find_map(|part| {
            let rest = part.trim().strip_prefix("api-usage=")?;
            let (used, max) = rest.split_once('/')?;
            let max: String = max.chars().take_while(|c| c.is_ascii_digit()).collect();
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                max: max.parse().ok()?,
            })
        })
    }
}

/// Counts of HTTP requests sent by this client (retries included).
///
/// `total = reads + writes + auth`; `reads` are GETs to the REST API, `writes` are
/// POST/PATCH/DELETE, `auth` are token requests (which do not count against the daily API
/// allocation). Use [`CallCounts::api`] for the REST calls alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    pub total: u64,
    pub reads: u64,
    pub writes: u64,
    pub auth: u64,
}

impl CallCounts {
    /// REST API requests (reads + writes), i.e. without token calls.
    pub fn api(&self) -> u64 {
        self.reads + self.writes
    }
}

/// Typed subset of `GET /sobjects/{Obj}/describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Describe {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub fields: Vec<FieldDescribe>,
}

impl Describe {
    /// A field by API name (case-insensitive, as Salesforce API names are).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of a describe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `boolean`, `picklist`, `email`, `datetime`, `reference`, ...
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub length: u32,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
    #[serde(default)]
    pub restricted_picklist: bool,
    /// Decimal places of a number field (`double`, `currency`, `percent`).
    #[serde(default)]
    pub scale: Option<u32>,
}

impl FieldDescribe {
    /// The decimal places a number field keeps; None for other types.
    pub fn scale_kept(&self) -> Option<u32> {
        self.scale
            .filter(|_| matches!(self.field_type.as_str(), "double" | "currency" | "percent"))
    }

    /// Active picklist values.
    pub fn active_values(&self) -> impl Iterator<Item = &str> {
        self.picklist_values
            .iter()
            .filter(|p| p.active)
            .map(|p| p.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub default_value: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sobject_from_json_strips_attributes() {
        let rec = json!({
            "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003xx"},
            "Id": "003xx",
            "Email": null,
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme"}
        });
        let o = SObject::from_json(rec).unwrap();
        assert_eq!(o.object, "Contact");
        assert_eq!(o.id, "003xx");
        assert_eq!(o.fields.get("Email"), Some(&Value::Null));
        assert!(!o.fields.contains_key("attributes"));
        assert_eq!(o.fields["Account"], json!({"Name": "Acme"}));
    }

    #[test]
    fn sobject_id_from_url() {
        let o = SObject::from_json(
            json!({"attributes": {"type": "Account", "url": "/x/001AA"}, "Name": "n"}),
        )
        .unwrap();
        assert_eq!(o.id, "001AA");
    }

    #[test]
    fn datetimes() {
        let a = parse_datetime("2013-05-07T22:07:19.000+0000").unwrap();
        let b = parse_datetime("2013-05-07T22:07:19.000Z").unwrap();
        let c = parse_datetime("2013-05-07T23:07:19+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(format_datetime(&a), "2013-05-07T22:07:19.000Z");
        assert!(parse_datetime("nope").is_none());
    }

    #[test]
    fn usage_header() {
        assert_eq!(
            ApiUsage::parse_header("api-usage=25/5000"),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse_header("per-app-api-usage=17/250(appName=x), api-usage=26/5000"),
            Some(ApiUsage {
                used: 26,
                max: 5000
            })
        );
        assert_eq!(ApiUsage::parse_header("garbage"), None);
    }
}
