//! The checks on the Opportunity fields mapped to PRM deal fields: value mapped, required
//! values present, picklist values accepted by the PRM.

use serde_json::{json, Value};

use super::{Checker, MappedField};
use crate::codes::LogCode;

impl Checker<'_> {
    /// Checks one mapped field; returns the value to send (None: leave it out of the body).
    pub(super) fn check_field(&mut self, f: &MappedField) -> Option<Value> {
        let base = json!({
            "crm_field": f.crm_field,
            "prm_field": f.prm_field,
            "crm_value": f.crm_value,
        });
        let with = |extra: Value| {
            let mut d = base.clone();
            if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
                d.extend(e);
            }
            d
        };
        let value = match &f.value {
            Err(raw) => {
                let known = if f.mapped_values.is_empty() {
                    "none".to_string()
                } else {
                    f.mapped_values.join(", ")
                };
                self.reject(
                    LogCode::DealValueUnmapped,
                    format!(
                        "has {} = {:?}, which the mapping's values table for the PRM deal field \
                         {} does not list (mapped values: {known})",
                        f.crm_field, raw, f.prm_field
                    ),
                    format!(
                        "Add {:?} to the `values` table of {} -> {} in the mapping file, or \
                         change {} on the Opportunity to a mapped value ({known}).",
                        raw, f.crm_field, f.prm_field, f.crm_field
                    ),
                    with(json!({ "value": raw, "mapped_values": f.mapped_values })),
                );
                return None;
            }
            Ok(v) => v,
        };
        if is_blank(value) {
            if f.required {
                self.reject(
                    LogCode::DealRequiredFieldEmpty,
                    format!(
                        "has no value in {}, which maps to the PRM deal field {} that the PRM \
                         requires",
                        f.crm_field, f.prm_field
                    ),
                    format!(
                        "In Salesforce, fill {} on the Opportunity (the PRM requires {}).",
                        f.crm_field, f.prm_field
                    ),
                    with(json!({ "required": true })),
                );
            }
            return None;
        }
        let Some(accepted) = &f.accepted else {
            return Some(value.clone());
        };
        let text = display(value);
        if accepted.contains(&text) {
            return Some(value.clone());
        }
        // Same value spelled with another case: send the PRM's spelling.
        if let Some(a) = accepted
            .iter()
            .find(|a| a.eq_ignore_ascii_case(text.trim()))
        {
            return Some(Value::String(a.clone()));
        }
        self.reject(
            LogCode::DealValueNotAccepted,
            format!(
                "has {} = {}, which maps to {} = {:?}, a value the PRM does not accept (accepted: \
                 {})",
                f.crm_field,
                quoted(&f.crm_value),
                f.prm_field,
                text,
                accepted.join(", ")
            ),
            format!(
                "Map {} to one of the accepted values ({}) in the `values` table of {} -> {} in \
                 the mapping file, add {:?} to the PRM's picklist for {}, or change {} on the \
                 Opportunity.",
                quoted(&f.crm_value),
                accepted.join(", "),
                f.crm_field,
                f.prm_field,
                text,
                f.prm_field,
                f.crm_field
            ),
            with(json!({ "value": value, "accepted": accepted })),
        );
        None
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use crate::codes::LogCode;
    use serde_json::{json, Value};

    #[test]
    fn required_field_empty() {
        for empty in [Value::Null, json!("  ")] {
            let mut f = valid();
            f.fields[0] = field("Name", "name", empty, true);
            let r = only(&f, OFF, LogCode::DealRequiredFieldEmpty);
            assert!(r.message.contains("Name") && r.message.contains("name"));
        }
        // Not required: just left out of the body.
        let plan = check_opportunity(&valid(), OFF).unwrap();
        assert!(!plan.body.contains_key("description"));
    }

    #[test]
    fn value_unmapped() {
        let mut f = valid();
        f.fields[1].crm_value = json!("Negotiation");
        f.fields[1].value = Err("Negotiation".into());
        let r = only(&f, OFF, LogCode::DealValueUnmapped);
        assert!(r.message.contains("StageName"));
        assert!(r.message.contains("Negotiation"));
        assert!(r.message.contains("Closed Won"));
        assert!(r.fix.contains("`values`"));
        assert_eq!(r.details["value"], json!("Negotiation"));
    }

    #[test]
    fn value_not_accepted() {
        let mut f = valid();
        f.fields[1].value = Ok(json!("Negotiating"));
        let r = only(&f, OFF, LogCode::DealValueNotAccepted);
        assert!(r.message.contains("Negotiating"));
        assert!(r.message.contains("Prospecting, Qualified, Won"));
        assert_eq!(
            r.details["accepted"],
            json!(["Prospecting", "Qualified", "Won"])
        );

        // A case-only difference is sent in the PRM's spelling.
        f.fields[1].value = Ok(json!("qualified"));
        let plan = check_opportunity(&f, OFF).unwrap();
        assert_eq!(plan.body["stage"], json!("Qualified"));
    }
}
