//! Reading and writing mapped fields on each side, in canonical form.
//!
//! Canonical values live in the PRM's value space: a Salesforce picklist value goes through
//! the field's `values` table on the way in and back through it on the way out.

use serde_json::Value;

use crate::config::FieldMapping;
use crate::record::Fields;
use crate::value::canonical;

/// A value with no entry in a field's `values` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value `{value}` of {side} field `{field}` has no mapping; mapped values: {accepted}")]
pub struct UnmappedValue {
    pub side: &'static str,
    pub field: String,
    pub value: String,
    pub accepted: String,
}

fn accepted(values: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = values.collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// The canonical value of a mapped field in a Salesforce record.
pub fn read_crm(f: &FieldMapping, fields: &Fields) -> Result<Value, UnmappedValue> {
    let Some(name) = &f.crm else {
        return Ok(Value::Null);
    };
    let raw = fields.get(name).cloned().unwrap_or(Value::Null);
    let value = canonical(f.field_type, f.max_length, &raw);
    if f.values.is_empty() {
        return Ok(value);
    }
    match &value {
        Value::Null => Ok(Value::Null),
        Value::String(s) => match f.values.iter().find(|(crm, _)| crm.eq_ignore_ascii_case(s)) {
            Some((_, prm)) => Ok(Value::String(prm.clone())),
            None => Err(UnmappedValue {
                side: "Salesforce",
                field: name.clone(),
                value: s.clone(),
                accepted: accepted(f.values.keys().cloned()),
            }),
        },
        other => Ok(other.clone()),
    }
}

/// The canonical value of a mapped field in a PRM record.
pub fn read_prm(f: &FieldMapping, fields: &Fields) -> Value {
    let Some(path) = &f.prm else {
        return Value::Null;
    };
    let raw = prm_get(fields, path);
    canonical(f.field_type, f.max_length, &raw)
}

/// Reads a PRM field path: `name`, `custom.tier` or the virtual `kind_status`.
pub fn prm_get(fields: &Fields, path: &str) -> Value {
    if path == "kind_status" {
        return match (
            fields.get("kind").and_then(Value::as_str),
            fields.get("status").and_then(Value::as_str),
        ) {
            (Some(k), Some(s)) => Value::String(format!("{k}:{s}")),
            _ => Value::Null,
        };
    }
    match path.split_once('.') {
        Some((outer, inner)) => fields
            .get(outer)
            .and_then(|o| o.get(inner))
            .cloned()
            .unwrap_or(Value::Null),
        None => fields.get(path).cloned().unwrap_or(Value::Null),
    }
}

/// Writes a canonical value into a Salesforce field set (a create or update body).
pub fn write_crm(f: &FieldMapping, value: &Value, out: &mut Fields) -> Result<(), UnmappedValue> {
    let Some(name) = &f.crm else {
        return Ok(());
    };
    let v = match (value, f.values.is_empty()) {
        (Value::String(s), false) => match f.values.iter().find(|(_, prm)| *prm == s) {
            Some((crm, _)) => Value::String(crm.clone()),
            None => {
                return Err(UnmappedValue {
                    side: "PRM",
                    field: f.prm.clone().unwrap_or_default(),
                    value: s.clone(),
                    accepted: accepted(f.values.values().cloned()),
                })
            }
        },
        _ => value.clone(),
    };
    out.insert(name.clone(), v);
    Ok(())
}

/// Writes a canonical value into a PRM body (a create body or a partial PATCH).
pub fn write_prm(f: &FieldMapping, value: &Value, out: &mut Fields) {
    let Some(path) = &f.prm else {
        return;
    };
    prm_set(out, path, value.clone());
}

/// Sets a PRM field path in a body; `custom.x` nests, `kind_status` splits.
pub fn prm_set(out: &mut Fields, path: &str, value: Value) {
    if path == "kind_status" {
        if let Some((k, s)) = value.as_str().and_then(|v| v.split_once(':')) {
            out.insert("kind".into(), Value::String(k.into()));
            out.insert("status".into(), Value::String(s.into()));
        }
        return;
    }
    match path.split_once('.') {
        Some((outer, inner)) => {
            let entry = out
                .entry(outer.to_string())
                .or_insert_with(|| Value::Object(Fields::new()));
            if let Value::Object(map) = entry {
                map.insert(inner.to_string(), value);
            }
        }
        None => {
            out.insert(path.to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MappingConfig;
    use serde_json::json;

    fn field(prm: &str) -> FieldMapping {
        MappingConfig::default()
            .organizations
            .fields
            .into_iter()
            .find(|f| f.prm.as_deref() == Some(prm))
            .unwrap()
    }

    #[test]
    fn organization_status_maps_to_kind_and_status() {
        let f = field("kind_status");
        let crm: Fields = json!({"PRM_Organization_Status__c": "Active Distributor"})
            .as_object()
            .unwrap()
            .clone();
        let v = read_crm(&f, &crm).unwrap();
        assert_eq!(v, json!("distributor:active"));
        let mut body = Fields::new();
        write_prm(&f, &v, &mut body);
        assert_eq!(
            body,
            *json!({"kind": "distributor", "status": "active"})
                .as_object()
                .unwrap()
        );
        assert_eq!(read_prm(&f, &body), v);
        let mut back = Fields::new();
        write_crm(&f, &v, &mut back).unwrap();
        assert_eq!(
            back["PRM_Organization_Status__c"],
            json!("Active Distributor")
        );
    }

    #[test]
    fn unmapped_values_name_the_value_and_the_accepted_ones() {
        let f = field("kind_status");
        let mut out = Fields::new();
        let err = write_crm(&f, &json!("distributor:prospective"), &mut out).unwrap_err();
        assert_eq!(err.value, "distributor:prospective");
        assert!(err.accepted.contains("partner:active"));
        let crm: Fields = json!({"PRM_Organization_Status__c": "Gold"})
            .as_object()
            .unwrap()
            .clone();
        assert!(read_crm(&f, &crm).unwrap_err().to_string().contains("Gold"));
    }

    #[test]
    fn custom_fields_nest() {
        let mut body = Fields::new();
        prm_set(&mut body, "custom.tier", json!("gold"));
        assert_eq!(prm_get(&body, "custom.tier"), json!("gold"));
    }
}
