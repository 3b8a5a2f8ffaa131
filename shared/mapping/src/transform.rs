//! Reading and writing mapped fields on each side, in canonical form.
//!
//! Canonical values live in the PRM's value space: a Salesforce picklist value goes through
//! the field's `values` table on the way in and back through it on the way out.
//!
//! One case rule for picklists, on both sides and both ways: a value matches a `values`
//! entry when they are equal ignoring ASCII case (the exact spelling first), and the
//! table's spelling is the one compared and written. So `GOLD` typed in the PRM compares
//! equal to `Gold` read from Salesforce through `"Gold" = "gold"`, and is written back to
//! Salesforce as `Gold`.
//!
//! A number field with a `scale` is rounded to it as Salesforce stores it, on both sides.

use std::borrow::Cow;

use serde_json::Value;

use crate::config::FieldMapping;
use crate::record::Fields;
use crate::value::{canonical_cow, round_to_scale};

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

static NULL: Value = Value::Null;

/// The entry of `table` whose side (`side` picks it from an entry) matches `value`: the
/// exact spelling, else the one equal ignoring ASCII case.
fn find_entry<'t>(
    table: &'t std::collections::BTreeMap<String, String>,
    value: &str,
    side: fn((&'t String, &'t String)) -> &'t String,
) -> Option<(&'t String, &'t String)> {
    table
        .iter()
        .find(|e| side(*e) == value)
        .or_else(|| table.iter().find(|e| side(*e).eq_ignore_ascii_case(value)))
}

fn crm_side<'t>(e: (&'t String, &'t String)) -> &'t String {
    e.0
}

fn prm_side<'t>(e: (&'t String, &'t String)) -> &'t String {
    e.1
}

/// A canonical value of a field with a `scale`, rounded to it.
#[inline]
fn scaled<'a>(f: &FieldMapping, value: Cow<'a, Value>) -> Cow<'a, Value> {
    match f.scale {
        Some(scale) => round_to_scale(value, scale),
        None => value,
    }
}

/// The canonical value of a mapped field in a Salesforce record.
pub fn read_crm(f: &FieldMapping, fields: &Fields) -> Result<Value, UnmappedValue> {
    read_crm_cow(f, fields).map(Cow::into_owned)
}

/// [`read_crm`] without copying: a stored value that is already canonical is borrowed from
/// `fields`, so comparing it (the merge of an unchanged field) allocates nothing.
#[inline]
pub fn read_crm_cow<'a>(
    f: &FieldMapping,
    fields: &'a Fields,
) -> Result<Cow<'a, Value>, UnmappedValue> {
    let Some(name) = &f.crm else {
        return Ok(Cow::Owned(Value::Null));
    };
    let raw = fields.get(name).unwrap_or(&NULL);
    let value = scaled(f, canonical_cow(f.field_type, f.max_length, raw));
    if f.values.is_empty() {
        return Ok(value);
    }
    match &*value {
        Value::Null => Ok(Cow::Owned(Value::Null)),
        Value::String(s) => match find_entry(&f.values, s, crm_side) {
            Some((_, prm)) => Ok(Cow::Owned(Value::String(prm.clone()))),
            None => Err(UnmappedValue {
                side: "Salesforce",
                field: name.clone(),
                value: s.clone(),
                accepted: accepted(f.values.keys().cloned()),
            }),
        },
        _ => Ok(value),
    }
}

/// The canonical value of a mapped field in a PRM record.
pub fn read_prm(f: &FieldMapping, fields: &Fields) -> Value {
    read_prm_cow(f, fields).into_owned()
}

/// [`read_prm`] without copying: a stored value that is already canonical is borrowed from
/// `fields`.
#[inline]
pub fn read_prm_cow<'a>(f: &FieldMapping, fields: &'a Fields) -> Cow<'a, Value> {
    let Some(path) = &f.prm else {
        return Cow::Owned(Value::Null);
    };
    let value = match prm_get_cow(fields, path) {
        Cow::Borrowed(raw) => canonical_cow(f.field_type, f.max_length, raw),
        // `kind_status`, built from two fields: canonical unless cut or retyped.
        Cow::Owned(raw) => {
            let changed = match canonical_cow(f.field_type, f.max_length, &raw) {
                Cow::Owned(v) => Some(v),
                Cow::Borrowed(_) => None,
            };
            Cow::Owned(changed.unwrap_or(raw))
        }
    };
    let value = scaled(f, value);
    if f.values.is_empty() {
        return value;
    }
    // A picklist value in another case than the table's reads as the table's spelling.
    let respelled = match &*value {
        Value::String(s) => match find_entry(&f.values, s, prm_side) {
            Some((_, prm)) if prm != s => Some(Value::String(prm.clone())),
            _ => None,
        },
        _ => None,
    };
    match respelled {
        Some(v) => Cow::Owned(v),
        None => value,
    }
}

/// Reads a PRM field path: `name`, `custom.tier` or the virtual `kind_status`.
pub fn prm_get(fields: &Fields, path: &str) -> Value {
    prm_get_cow(fields, path).into_owned()
}

/// [`prm_get`] without copying a stored value.
fn prm_get_cow<'a>(fields: &'a Fields, path: &str) -> Cow<'a, Value> {
    if path == "kind_status" {
        return Cow::Owned(
            match (
                fields.get("kind").and_then(Value::as_str),
                fields.get("status").and_then(Value::as_str),
            ) {
                (Some(k), Some(s)) => {
                    let mut pair = String::with_capacity(k.len() + 1 + s.len());
                    pair.push_str(k);
                    pair.push(':');
                    pair.push_str(s);
                    Value::String(pair)
                }
                _ => Value::Null,
            },
        );
    }
    // `split_once('.')` without a `memchr` call: field paths are a few bytes long.
    Cow::Borrowed(match path.bytes().position(|b| b == b'.') {
        Some(dot) => fields
            .get(&path[..dot])
            .and_then(|o| o.get(&path[dot + 1..]))
            .unwrap_or(&NULL),
        None => fields.get(path).unwrap_or(&NULL),
    })
}

/// Writes a canonical value into a Salesforce field set (a create or update body).
pub fn write_crm(f: &FieldMapping, value: &Value, out: &mut Fields) -> Result<(), UnmappedValue> {
    let Some(name) = &f.crm else {
        return Ok(());
    };
    let v = match (value, f.values.is_empty()) {
        (Value::String(s), false) => match find_entry(&f.values, s, prm_side) {
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
    fn picklist_values_follow_one_case_rule_on_read_and_on_write() {
        let mut f = field("kind_status");
        f.values = [("Gold", "gold"), ("Silver", "silver")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        f.prm = Some("custom.tier".into());
        f.crm = Some("Tier__c".into());
        let crm = |v: &str| -> Fields { json!({"Tier__c": v}).as_object().unwrap().clone() };
        let prm =
            |v: &str| -> Fields { json!({"custom": {"tier": v}}).as_object().unwrap().clone() };
        // read: any case on either side reads as the table's PRM spelling
        for v in ["Gold", "GOLD", "gold"] {
            assert_eq!(read_crm(&f, &crm(v)).unwrap(), json!("gold"), "{v}");
            assert_eq!(read_prm(&f, &prm(v)), json!("gold"), "{v}");
        }
        // so a PRM `GOLD` and a Salesforce `Gold` are the same value: no change either way
        assert_eq!(
            read_prm(&f, &prm("GOLD")),
            read_crm(&f, &crm("Gold")).unwrap()
        );
        // write: any case writes the table's Salesforce spelling
        for v in ["gold", "GOLD", "Gold"] {
            let mut out = Fields::new();
            write_crm(&f, &json!(v), &mut out).unwrap();
            assert_eq!(out["Tier__c"], json!("Gold"), "{v}");
        }
        // a value of no entry, in any case, is still unmapped
        assert!(read_crm(&f, &crm("Bronze")).is_err());
        assert_eq!(read_prm(&f, &prm("bronze")), json!("bronze"));
        assert!(write_crm(&f, &json!("bronze"), &mut Fields::new()).is_err());
    }

    #[test]
    fn picklist_spellings_that_differ_only_in_case_match_exactly_first() {
        let mut f = field("kind_status");
        f.values = [("GOLD", "g"), ("Gold", "G")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let crm = |v: &str| -> Fields {
            json!({"PRM_Organization_Status__c": v})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(read_crm(&f, &crm("Gold")).unwrap(), json!("G"));
        assert_eq!(read_crm(&f, &crm("GOLD")).unwrap(), json!("g"));
        let mut out = Fields::new();
        write_crm(&f, &json!("G"), &mut out).unwrap();
        assert_eq!(out["PRM_Organization_Status__c"], json!("Gold"));
    }

    #[test]
    fn a_decimal_reads_rounded_to_the_field_scale_on_both_sides() {
        let mut f = field("name");
        f.prm = Some("amount".into());
        f.crm = Some("Amount".into());
        f.field_type = crate::config::FieldType::Number;
        f.scale = Some(2);
        let prm: Fields = json!({"amount": 12.345}).as_object().unwrap().clone();
        let crm: Fields = json!({"Amount": 12.35}).as_object().unwrap().clone();
        assert_eq!(read_prm(&f, &prm), json!(12.35));
        assert_eq!(read_crm(&f, &crm).unwrap(), json!(12.35));
        // what is written is the rounded value: Salesforce stores it as sent
        let mut out = Fields::new();
        write_crm(&f, &read_prm(&f, &prm), &mut out).unwrap();
        assert_eq!(out["Amount"], json!(12.35));
        // without a scale the value is kept whole
        f.scale = None;
        assert_eq!(read_prm(&f, &prm), json!(12.345));
    }

    #[test]
    fn custom_fields_nest() {
        let mut body = Fields::new();
        prm_set(&mut body, "custom.tier", json!("gold"));
        assert_eq!(prm_get(&body, "custom.tier"), json!("gold"));
    }
}

/// The borrowing readers against the original, always-copying ones.
#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use crate::config::MappingConfig;
    use crate::value::canonical;
    use proptest::prelude::*;
    use serde_json::json;

    fn reference_prm_get(fields: &Fields, path: &str) -> Value {
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

    fn reference_read_prm(f: &FieldMapping, fields: &Fields) -> Value {
        let Some(path) = &f.prm else {
            return Value::Null;
        };
        let value = reference_scaled(
            f,
            canonical(f.field_type, f.max_length, &reference_prm_get(fields, path)),
        );
        match &value {
            Value::String(s) if !f.values.is_empty() => f
                .values
                .values()
                .find(|prm| *prm == s)
                .or_else(|| f.values.values().find(|prm| prm.eq_ignore_ascii_case(s)))
                .map(|prm| Value::String(prm.clone()))
                .unwrap_or(value),
            _ => value,
        }
    }

    fn reference_scaled(f: &FieldMapping, value: Value) -> Value {
        match f.scale {
            Some(scale) => crate::value::round_to_scale(Cow::Owned(value), scale).into_owned(),
            None => value,
        }
    }

    fn reference_read_crm(f: &FieldMapping, fields: &Fields) -> Result<Value, UnmappedValue> {
        let Some(name) = &f.crm else {
            return Ok(Value::Null);
        };
        let raw = fields.get(name).cloned().unwrap_or(Value::Null);
        let value = reference_scaled(f, canonical(f.field_type, f.max_length, &raw));
        if f.values.is_empty() {
            return Ok(value);
        }
        match &value {
            Value::Null => Ok(Value::Null),
            Value::String(s) => {
                let exact = f.values.iter().find(|(crm, _)| *crm == s);
                match exact.or_else(|| f.values.iter().find(|(crm, _)| crm.eq_ignore_ascii_case(s)))
                {
                    Some((_, prm)) => Ok(Value::String(prm.clone())),
                    None => Err(UnmappedValue {
                        side: "Salesforce",
                        field: name.clone(),
                        value: s.clone(),
                        accepted: accepted(f.values.keys().cloned()),
                    }),
                }
            }
            other => Ok(other.clone()),
        }
    }

    /// Every mapped field of the built-in mapping, plus a custom field, a cut `kind_status`,
    /// case-variant picklist keys and one-sided mappings.
    fn all_fields() -> Vec<FieldMapping> {
        let m = MappingConfig::default();
        let mut fields: Vec<FieldMapping> = [m.organizations, m.people, m.deals]
            .into_iter()
            .flat_map(|o| o.fields)
            .collect();
        let base = fields[0].clone();
        fields.push(FieldMapping {
            prm: Some("custom.tier".into()),
            crm: Some("Tier__c".into()),
            max_length: Some(4),
            ..base.clone()
        });
        fields.push(FieldMapping {
            prm: Some("kind_status".into()),
            crm: Some("Kind__c".into()),
            max_length: Some(9),
            values: [
                ("GOLD", "g"),
                ("Gold", "G"),
                ("gold", "gg"),
                ("Silver", "s"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..base.clone()
        });
        fields.push(FieldMapping {
            prm: Some("amount".into()),
            crm: Some("Amount".into()),
            field_type: crate::config::FieldType::Number,
            scale: Some(1),
            ..base.clone()
        });
        fields.push(FieldMapping {
            prm: None,
            crm: Some("Type".into()),
            ..base.clone()
        });
        fields.push(FieldMapping {
            prm: Some("name".into()),
            crm: None,
            ..base
        });
        fields
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1000i64..1000).prop_map(|n| json!(n)),
            Just(json!(12.5)),
            Just(json!(12.345)),
            Just(json!(-0.05)),
            "[ ]{0,2}[a-zA-Z0-9@.:/ ]{0,10}[ ]{0,2}".prop_map(Value::String),
            "(Active Partner|active partner|ACTIVE DISTRIBUTOR|Gold|gold|GOLD|gOLD|Silver|Approved|Closed Won|partner|active|Zoë@Example.com|2026-12-31|2026-12-31T00:00:00.000\\+0000)"
                .prop_map(Value::String),
            Just(json!({"tier": "gold"})),
        ]
    }

    fn record(names: &'static [&'static str]) -> impl Strategy<Value = Fields> {
        proptest::collection::vec(proptest::option::of(value()), names.len()).prop_map(
            move |values| {
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
                    .collect()
            },
        )
    }

    const CRM: &[&str] = &[
        "Name",
        "PRM_Organization_Status__c",
        "Website",
        "Phone",
        "BillingStreet",
        "BillingCity",
        "FirstName",
        "Email",
        "StageName",
        "Amount",
        "CloseDate",
        "PRM_Registration_Status__c",
        "Tier__c",
        "Kind__c",
        "Type",
    ];
    const PRM: &[&str] = &[
        "name",
        "kind",
        "status",
        "website",
        "phone",
        "city",
        "first_name",
        "email",
        "stage",
        "amount",
        "close_date",
        "registration_status",
        "custom",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn borrowing_readers_agree_with_the_reference(crm in record(CRM), prm in record(PRM)) {
            for f in all_fields() {
                let want = reference_read_crm(&f, &crm);
                prop_assert_eq!(read_crm_cow(&f, &crm).map(Cow::into_owned), want.clone());
                prop_assert_eq!(read_crm(&f, &crm), want);
                let want = reference_read_prm(&f, &prm);
                prop_assert_eq!(read_prm_cow(&f, &prm).into_owned(), want.clone());
                prop_assert_eq!(read_prm(&f, &prm), want);
                if let Some(path) = &f.prm {
                    prop_assert_eq!(prm_get(&prm, path), reference_prm_get(&prm, path));
                }
            }
        }
    }
}
