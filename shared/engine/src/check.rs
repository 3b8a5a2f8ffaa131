//! Checks a mapping against Salesforce's describe before a full run, so a missing field or
//! picklist value is reported once, by name, with the fix, instead of failing every record.

use std::collections::HashMap;

use crate::context::SyncContext;
use crate::error::{During, EngineError};
use crate::objects::ObjectSpec;
use crate::ports::FieldInfo;

/// Fails with a message naming every problem (field, object, fix).
pub async fn check_mapping(ctx: &SyncContext, spec: &ObjectSpec) -> Result<(), EngineError> {
    let object = spec.crm_object();
    let described = ctx
        .crm
        .describe(object)
        .await
        .during(|| format!("describing {object}"))?;
    let problems = mapping_problems(spec, &described);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Setup(format!(
            "the mapping does not fit Salesforce's {object}:\n  - {}",
            problems.join("\n  - ")
        )))
    }
}

/// A number field whose mapping does not round to the scale Salesforce keeps: a value
/// with more places would come back rounded and look like a change once. No I/O.
fn scale_problem(
    object: &str,
    name: &str,
    f: &prmsync_mapping::config::FieldMapping,
    info: &FieldInfo,
) -> Option<String> {
    let kept = info.scale?;
    if f.field_type != prmsync_mapping::config::FieldType::Number || f.scale == Some(kept) {
        return None;
    }
    let mapped = match f.scale {
        Some(s) => format!("scale = {s}"),
        None => "no scale".to_string(),
    };
    Some(format!(
        "{object}.{name} keeps {kept} decimal places in Salesforce, but its mapping has {mapped}: set scale = {kept} on it (with type = \"number\"), so values are rounded as Salesforce stores them and do not come back as a change"
    ))
}

/// Every mismatch between the mapping of `spec` and the described fields.
pub fn mapping_problems(spec: &ObjectSpec, described: &[FieldInfo]) -> Vec<String> {
    let object = spec.crm_object();
    let by_name: HashMap<String, &FieldInfo> = described
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), f))
        .collect();
    let mut problems = Vec::new();
    for name in spec.crm_fields() {
        if !by_name.contains_key(&name.to_ascii_lowercase()) {
            problems.push(format!(
                "{object} has no field `{name}`: create it in Setup > Object Manager > {object} > Fields (see docs/salesforce-setup.md), give the integration user access, or change the name in the mapping file"
            ));
        }
    }
    if let Some(info) = by_name.get(&spec.prm_id_field().to_ascii_lowercase()) {
        problems.extend(id_field_problem(spec, info));
    }
    for f in spec.fields.iter() {
        let Some(name) = &f.crm else { continue };
        let Some(info) = by_name.get(&name.to_ascii_lowercase()) else {
            continue;
        };
        if !info.updateable && f.direction != prmsync_mapping::Direction::ToPrm {
            problems.push(format!(
                "{object}.{name} is read-only for the integration user, but the mapping writes it: set direction = \"to_prm\" or grant edit access"
            ));
        }
        if let Some(problem) = scale_problem(object, name, f, info) {
            problems.push(problem);
        }
        if info.restricted_picklist {
            for crm_value in f.values.keys() {
                if !info
                    .picklist_values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(crm_value))
                {
                    problems.push(format!(
                        "{object}.{name} has no picklist value `{crm_value}` (it has: {}): add the value in Salesforce or fix `values` in the mapping file",
                        info.picklist_values.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// What is missing from the field holding the PRM id (the key of every upsert), with the
/// fix: it must be an External ID, Unique and case-sensitive, or PRM ids differing only in
/// case ("abc1" and "ABC1") would name the same Salesforce record and one PRM record's
/// changes would overwrite another's.
fn id_field_problem(spec: &ObjectSpec, info: &FieldInfo) -> Option<String> {
    let object = spec.crm_object();
    let kind = spec.kind;
    let mut missing = Vec::new();
    let mut ticks = Vec::new();
    if !info.external_id {
        missing.push("External ID");
        ticks.push("'External ID'".to_string());
    }
    if !info.unique {
        missing.push("Unique");
    }
    if !info.case_sensitive {
        missing.push("Case-sensitive");
    }
    if !info.unique || !info.case_sensitive {
        ticks.push(
            "'Unique' with 'Treat \"ABC\" and \"abc\" as different values (case sensitive)'"
                .to_string(),
        );
    }
    if missing.is_empty() {
        return None;
    }
    let name = &info.name;
    let label = if info.label.trim().is_empty() {
        name
    } else {
        &info.label
    };
    let duplicates = if info.unique {
        String::new()
    } else {
        format!(
            " (Salesforce refuses Unique while two {object}s hold the same value: clear one first)"
        )
    };
    Some(format!(
        "{object} field {name} is not {missing}: it holds the PRM {kind} id that upserts match on, and must be an External ID, Unique and case-sensitive, or PRM ids differing only in case (\"abc1\" and \"ABC1\") would update the same {object}. In Setup > Object Manager > {object} > Fields & Relationships > {label}, edit the field and tick {ticks}{duplicates}, then run again",
        missing = missing.join("/"),
        ticks = ticks.join(" and "),
    ))
}

#[cfg(test)]
mod tests {
    use prmsync_mapping::{MappingConfig, ObjectKind};

    use super::*;

    /// Every field `spec` reads, writable, with the PRM id field as given.
    fn described(
        spec: &ObjectSpec,
        external_id: bool,
        unique: bool,
        case_sensitive: bool,
    ) -> Vec<FieldInfo> {
        spec.crm_fields()
            .into_iter()
            .map(|name| {
                let id = name == spec.prm_id_field();
                FieldInfo {
                    label: if id { "PRM Id".into() } else { name.clone() },
                    name,
                    field_type: "string".into(),
                    updateable: true,
                    createable: true,
                    external_id: id && external_id,
                    unique: id && unique,
                    case_sensitive: id && case_sensitive,
                    ..FieldInfo::default()
                }
            })
            .collect()
    }

    fn spec(kind: ObjectKind) -> ObjectSpec {
        ObjectSpec::new(kind, &MappingConfig::default())
    }

    #[test]
    fn a_number_field_mapped_without_the_scale_salesforce_keeps_is_named_with_the_fix() {
        let spec = spec(ObjectKind::Deal);
        let mut fields = described(&spec, true, true, true);
        let amount = fields.iter_mut().find(|f| f.name == "Amount").unwrap();
        amount.field_type = "currency".into();
        amount.scale = Some(2);
        // The built-in mapping rounds Amount to 2 places: it fits.
        assert_eq!(mapping_problems(&spec, &fields), Vec::<String>::new());
        // Salesforce keeping 3 places: named, with the fix.
        fields
            .iter_mut()
            .find(|f| f.name == "Amount")
            .unwrap()
            .scale = Some(3);
        let problems = mapping_problems(&spec, &fields);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("Opportunity.Amount keeps 3 decimal places in Salesforce, but its mapping has scale = 2: set scale = 3"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_external_id_unique_case_sensitive_id_field_passes() {
        for kind in [
            ObjectKind::Organization,
            ObjectKind::Person,
            ObjectKind::Deal,
        ] {
            let spec = spec(kind);
            assert_eq!(
                mapping_problems(&spec, &described(&spec, true, true, true)),
                Vec::<String>::new(),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_case_insensitive_id_field_is_named_with_the_fix() {
        let spec = spec(ObjectKind::Organization);
        let problems = mapping_problems(&spec, &described(&spec, true, true, false));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.starts_with("Account field PRM_Id__c is not Case-sensitive:"),
            "{p}"
        );
        assert!(
            p.contains("Setup > Object Manager > Account > Fields & Relationships > PRM Id"),
            "{p}"
        );
        assert!(
            p.contains(
                "tick 'Unique' with 'Treat \"ABC\" and \"abc\" as different values (case sensitive)'"
            ),
            "{p}"
        );
        assert!(!p.contains("'External ID'"), "{p}");
    }

    #[test]
    fn an_id_field_that_is_not_unique_nor_an_external_id_lists_all_three() {
        let spec = spec(ObjectKind::Person);
        let problems = mapping_problems(&spec, &described(&spec, false, false, false));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.starts_with("Contact field PRM_Id__c is not External ID/Unique/Case-sensitive:"),
            "{p}"
        );
        assert!(
            p.contains("> Contact > Fields & Relationships > PRM Id"),
            "{p}"
        );
        assert!(p.contains("tick 'External ID' and 'Unique' with"), "{p}");
    }

    #[test]
    fn an_external_id_that_is_not_unique_is_reported() {
        let spec = spec(ObjectKind::Organization);
        let problems = mapping_problems(&spec, &described(&spec, true, false, false));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("Account field PRM_Id__c is not Unique/Case-sensitive:"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn the_deal_id_field_is_checked_on_opportunity() {
        let spec = spec(ObjectKind::Deal);
        let problems = mapping_problems(&spec, &described(&spec, true, true, false));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("Opportunity field PRM_Deal_Id__c is not Case-sensitive:"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_missing_id_field_is_reported_once_as_missing() {
        let spec = spec(ObjectKind::Organization);
        let fields: Vec<FieldInfo> = described(&spec, false, false, false)
            .into_iter()
            .filter(|f| f.name != "PRM_Id__c")
            .collect();
        let problems = mapping_problems(&spec, &fields);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("has no field `PRM_Id__c`"),
            "{}",
            problems[0]
        );
    }
}
