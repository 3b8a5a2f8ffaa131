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
