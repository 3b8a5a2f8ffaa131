//! Types of the PRM API v1.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::PrmError;

/// The most ids one list request may filter on; [`crate::PrmClient::list`] splits longer lists.
pub const MAX_IDS: usize = 200;

/// The writable record collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Organizations,
    People,
    Deals,
}

impl Collection {
    /// The path segment under `/v1`.
    pub fn path(self) -> &'static str {
        match self {
            Collection::Organizations => "organizations",
            Collection::People => "people",
            Collection::Deals => "deals",
        }
    }
}

impl std::fmt::Display for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

/// Filters of a list request. `email` and `organization_id` apply to people only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Records changed at or after this time (inclusive).
    pub updated_since: Option<DateTime<Utc>>,
    /// Page size, 1..=1000 (the PRM's default is 200).
    pub limit: Option<u32>,
    /// Only these ids; more than [`MAX_IDS`] are split into several requests by `list`.
    pub ids: Vec<String>,
    pub crm_id: Option<String>,
    pub email: Option<String>,
    pub organization_id: Option<String>,
}

/// A PRM record: the fields every record has, and all the others in `fields`
/// (`name`, `kind`, `custom`, `created_at`, ...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrmRecord {
    pub id: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub crm_id: Option<String>,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl PrmRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// A field by name, `Value::Null` when absent.
    pub fn field(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }

    /// Reads a record from its JSON object.
    pub fn from_json(value: Value) -> Result<Self, PrmError> {
        let Value::Object(mut map) = value else {
            return Err(PrmError::Decode("a record is not a JSON object".into()));
        };
        let id = match map.remove("id") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(PrmError::Decode("a record has no string id".into())),
        };
        let version = map
            .remove("version")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| PrmError::Decode(format!("record {id} has no integer version")))?;
        let updated_at = match map.remove("updated_at") {
            Some(Value::String(s)) => parse_ts(&id, "updated_at", &s)?,
            _ => {
                return Err(PrmError::Decode(format!(
                    "record {id} has no updated_at timestamp"
                )))
            }
        };
        let deleted_at = match map.remove("deleted_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_ts(&id, "deleted_at", &s)?),
            Some(_) => {
                return Err(PrmError::Decode(format!(
                    "record {id} has a deleted_at that is not a timestamp"
                )))
            }
        };
        // A crm_id may have been typed by hand in its 15-character form: the engine keeps
        // Salesforce Ids in their 18-character form only.
        let crm_id = match map.remove("crm_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(prmsync_mapping::normalise_id(&s)),
            Some(_) => {
                return Err(PrmError::Decode(format!(
                    "record {id} has a crm_id that is not a string"
                )))
            }
        };
        Ok(Self {
            id,
            version,
            updated_at,
            deleted_at,
            crm_id,
            fields: map,
        })
    }
}

/// A record of a list page that [`PrmRecord::from_json`] refused: what could be read of
/// its id and `updated_at`, and the problem. The rest of the page is read without it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Malformed {
    pub id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub problem: String,
}

/// Reads each record of a page on its own: the records read, and the ones refused.
pub fn read_records(values: Vec<Value>) -> (Vec<PrmRecord>, Vec<Malformed>) {
    let mut records = Vec::with_capacity(values.len());
    let mut malformed = Vec::new();
    for value in values {
        // What may still be read of a refused record (short strings: cheap to keep).
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        let (id, updated_at) = (text("id"), text("updated_at"));
        match PrmRecord::from_json(value) {
            Ok(r) => records.push(r),
            Err(e) => malformed.push(Malformed {
                id: id.filter(|s| !s.is_empty()),
                updated_at: updated_at
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|t| t.with_timezone(&Utc)),
                problem: match e {
                    PrmError::Decode(m) => m,
                    other => other.to_string(),
                },
            }),
        }
    }
    (records, malformed)
}

fn parse_ts(id: &str, field: &str, s: &str) -> Result<DateTime<Utc>, PrmError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| PrmError::Decode(format!("record {id} has {field} '{s}', not RFC 3339")))
}

impl<'de> Deserialize<'de> for PrmRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        PrmRecord::from_json(value).map_err(serde::de::Error::custom)
    }
}

/// A partner or distributor group (read-only in the API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    /// `partner` or `distributor`.
    pub kind: String,
    pub name: String,
    /// Drawn from `deal_registration`, `lead_distribution`, `mdf`, `training`.
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The distributor module switches of `/v1/settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributorModule {
    pub enabled: bool,
    #[serde(default)]
    pub partner_email_optional_for_distributor_owned: bool,
}

/// A field the PRM knows: whether it is required and, for a picklist, its values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// `GET /v1/settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub distributor_module: DistributorModule,
    #[serde(default)]
    pub deal_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub organization_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub person_fields: Vec<FieldSpec>,
    /// Batch writes, when the PRM offers them (`"batch": {"max": 200}`).
    #[serde(default)]
    pub batch: Option<BatchSettings>,
}

/// How large a batch the PRM takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSettings {
    pub max: usize,
}

impl Settings {
    /// The field list of a collection.
    pub fn fields_for(&self, c: Collection) -> &[FieldSpec] {
        match c {
            Collection::Organizations => &self.organization_fields,
            Collection::People => &self.person_fields,
            Collection::Deals => &self.deal_fields,
        }
    }

    /// One field of a collection's list.
    pub fn field(&self, c: Collection, name: &str) -> Option<&FieldSpec> {
        self.fields_for(c).iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_splits_meta_from_fields() {
        let r = PrmRecord::from_json(json!({
            "id": "org_1", "version": 3, "updated_at": "2026-11-22T10:15:30.123Z",
            "deleted_at": null, "crm_id": "001", "name": "Acme", "custom": {"tier": "gold"}
        }))
        .unwrap();
        assert_eq!(r.id, "org_1");
        assert_eq!(r.version, 3);
        assert_eq!(r.updated_at.timestamp_subsec_millis(), 123);
        assert_eq!(r.crm_id.as_deref(), Some("001"));
        assert_eq!(r.field("name"), "Acme");
        assert_eq!(r.field("missing"), &Value::Null);
        assert!(!r.fields.contains_key("id"));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["custom"]["tier"], "gold");
        assert_eq!(back["id"], "org_1");
    }

    #[test]
    fn a_fifteen_character_crm_id_reads_as_its_eighteen_character_form() {
        let read = |crm_id: &str| {
            PrmRecord::from_json(json!({
                "id": "org_1", "version": 1, "updated_at": "2026-11-22T10:15:30.123Z",
                "crm_id": crm_id
            }))
            .unwrap()
            .crm_id
        };
        assert_eq!(
            read("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert_eq!(
            read("001a0000006vm9riac").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        assert_eq!(
            read("001A0000006Vm9rIAC").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
    }

    #[test]
    fn bad_records_are_decode_errors() {
        for bad in [
            json!([]),
            json!({"version": 1, "updated_at": "2026-01-01T00:00:00Z"}),
            json!({"id": "a", "updated_at": "2026-01-01T00:00:00Z"}),
            json!({"id": "a", "version": 1, "updated_at": "yesterday"}),
            json!({"id": "a", "version": 1, "updated_at": "2026-01-01T00:00:00Z", "crm_id": 5}),
        ] {
            assert!(matches!(
                PrmRecord::from_json(bad),
                Err(PrmError::Decode(_))
            ));
        }
    }

    #[test]
    fn a_malformed_record_is_refused_alone_with_what_can_be_read_of_it() {
        let (records, malformed) = read_records(vec![
            json!({"id": "org_1", "version": 1, "updated_at": "2026-01-01T00:00:00Z"}),
            json!({"id": "org_2", "version": 1, "updated_at": "yesterday"}),
            json!({"id": "org_3", "version": 1, "updated_at": "2026-01-02T00:00:00Z", "crm_id": 5}),
            json!({"version": 1, "updated_at": "2026-01-03T00:00:00Z"}),
            json!("not a record"),
            json!({"id": "org_4", "version": 2, "updated_at": "2026-01-04T00:00:00Z"}),
        ]);
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["org_1", "org_4"]);
        assert_eq!(malformed.len(), 4);
        assert_eq!(malformed[0].id.as_deref(), Some("org_2"));
        assert_eq!(malformed[0].updated_at, None);
        assert!(
            malformed[0].problem.contains("updated_at 'yesterday'"),
            "{:?}",
            malformed[0]
        );
        assert_eq!(malformed[1].id.as_deref(), Some("org_3"));
        assert_eq!(
            malformed[1].updated_at,
            Some("2026-01-02T00:00:00Z".parse().unwrap())
        );
        assert!(
            malformed[1].problem.contains("crm_id"),
            "{:?}",
            malformed[1]
        );
        assert_eq!(malformed[2].id, None);
        assert!(malformed[2].updated_at.is_some());
        assert_eq!(malformed[3].id, None);
        assert_eq!(malformed[3].updated_at, None);
    }
}
