//! Records, links and rules for the unit tests of the pass's decisions.

use chrono::{DateTime, TimeZone, Utc};
use prmsync_mapping::config::MappingConfig;
use prmsync_mapping::{CrmRecord, Fields, ObjectKind, PrmRecord};
use serde_json::Value;

use crate::objects::ObjectSpec;
use crate::store::{Link, LinkState};

/// A time on the test day.
pub(super) fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
}

pub(super) fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => panic!("a JSON object"),
    }
}

/// The built-in mapping's rules for one object pair.
pub(super) fn spec(kind: ObjectKind) -> (MappingConfig, ObjectSpec) {
    let mapping = MappingConfig::default();
    let spec = ObjectSpec::new(kind, &mapping);
    (mapping, spec)
}

/// A Salesforce record changed at `modstamp`.
pub(super) fn crm(id: &str, modstamp: DateTime<Utc>, values: Value) -> CrmRecord {
    let mut fields = fields(values);
    fields.insert("Id".into(), Value::String(id.into()));
    CrmRecord {
        id: id.into(),
        fields,
        modstamp: Some(modstamp),
        deleted: false,
        master_id: None,
    }
}

/// A PRM record at `version`, changed at `updated_at`.
pub(super) fn prm(id: &str, version: i64, updated_at: DateTime<Utc>, values: Value) -> PrmRecord {
    PrmRecord {
        id: id.into(),
        version,
        updated_at,
        deleted: false,
        crm_id: None,
        fields: fields(values),
    }
}

/// A link in `state` between two records, with an empty snapshot (never merged).
pub(super) fn link_in(state: LinkState, kind: ObjectKind, prm_id: &str, crm_id: &str) -> Link {
    let mut l = Link::new(kind, prm_id, crm_id);
    l.state = state;
    l
}
