//! The inputs and outputs of the Deal Registration rules: the facts the engine gathers about
//! one Opportunity and the PRM people it names, the distributor settings, and the
//! [`DealPlan`] or [`Rejection`]s that come out.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::LogCode;
use crate::mask::LogValues;

/// The module a PRM group needs for its users to register deals.
pub const DEAL_REGISTRATION_MODULE: &str = "deal_registration";

/// Deal Owner Type as read from PRM_Deal_Owner_Type__c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerType {
    Partner,
    Distributor,
}

impl OwnerType {
    /// The PRM spelling (`owner_type` of a deal, `kind` of an organization or group).
    pub fn as_prm(self) -> &'static str {
        match self {
            OwnerType::Partner => "partner",
            OwnerType::Distributor => "distributor",
        }
    }

    /// The Salesforce picklist value.
    pub fn as_crm(self) -> &'static str {
        match self {
            OwnerType::Partner => "Partner-Owned",
            OwnerType::Distributor => "Distributor-Owned",
        }
    }
}

/// Blank / None / "Partner-Owned" -> Ok(Partner); "Distributor-Owned" -> Ok(Distributor)
/// (compared trimmed, ignoring case); anything else -> Err(the raw value).
pub fn parse_owner_type(raw: Option<&str>) -> Result<OwnerType, String> {
    let Some(raw) = raw else {
        return Ok(OwnerType::Partner);
    };
    let t = raw.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("partner-owned") {
        Ok(OwnerType::Partner)
    } else if t.eq_ignore_ascii_case("distributor-owned") {
        Ok(OwnerType::Distributor)
    } else {
        Err(raw.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactFacts {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupFacts {
    pub id: String,
    /// `partner` | `distributor`
    pub kind: String,
    pub modules: Vec<String>,
}

/// A PRM person found by email (the engine looks them up with GET /v1/people?email=).
#[derive(Debug, Clone, PartialEq)]
pub struct PrmUserFacts {
    pub id: String,
    /// `user` | `contact`
    pub kind: String,
    /// Users: `active` | `pending` | `inactive` | `disabled`.
    pub status: Option<String>,
    pub organization_id: String,
    /// Kind of that organization: `partner` | `distributor` (None if unknown/deleted).
    pub organization_kind: Option<String>,
    /// The person's groups, resolved.
    pub groups: Vec<GroupFacts>,
    pub deleted: bool,
}

/// What the lookup by email found: nothing, exactly one person, or several.
#[derive(Debug, Clone, PartialEq)]
pub enum UserLookup {
    NotFound,
    Found(PrmUserFacts),
    /// The ids of the people found.
    Several(Vec<String>),
}

/// One Opportunity field mapped to a PRM deal field, already read and value-mapped by the
/// engine.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedField {
    /// e.g. "StageName"
    pub crm_field: String,
    /// e.g. "stage"
    pub prm_field: String,
    /// The raw Salesforce value (for messages).
    pub crm_value: Value,
    /// The canonical PRM value, or Err(raw value) when the value map has no entry for it.
    pub value: Result<Value, String>,
    /// The PRM settings mark the deal field required.
    pub required: bool,
    /// The PRM's picklist values for this field (settings), if it is a picklist.
    pub accepted: Option<Vec<String>>,
    /// The Salesforce values the mapping's `values` table knows (for messages).
    pub mapped_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpportunityFacts {
    pub id: String,
    pub name: Option<String>,
    /// `<instance>/lightning/r/Opportunity/<Id>/view`
    pub link: Option<String>,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    /// OpportunityContactRole with IsPrimary = true.
    pub primary_contact: Option<ContactFacts>,
    pub owner_type_raw: Option<String>,
    pub partner_email: Option<String>,
    pub distributor_email: Option<String>,
    /// None when partner_email is blank.
    pub partner_user: Option<UserLookup>,
    /// None when distributor_email is blank.
    pub distributor_user: Option<UserLookup>,
    pub fields: Vec<MappedField>,
    /// Setup field API names, for messages (e.g. "PRM_Partner_Email__c").
    pub partner_email_field: String,
    pub distributor_email_field: String,
    pub owner_type_field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DistributorSettings {
    pub enabled: bool,
    pub partner_email_optional_for_distributor_owned: bool,
}

/// The deal to create.
#[derive(Debug, Clone, PartialEq)]
pub struct DealPlan {
    pub owner_type: OwnerType,
    pub partner_user_id: Option<String>,
    pub partner_organization_id: Option<String>,
    pub distributor_user_id: Option<String>,
    pub distributor_organization_id: Option<String>,
    /// The deal body: owner_type, the four ids above (only those set), mapped fields
    /// (prm_field -> value, nulls left out), and "customer": {"company": account_name,
    /// "first_name","last_name","email","phone"} from the primary contact (nulls left out).
    pub body: Map<String, Value>,
}

/// One reason an Opportunity was not imported.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: LogCode,
    pub message: String,
    pub fix: String,
    pub details: Value,
}

/// The keys of a rejection's details that hold a record's value (the others hold field
/// names, codes, ids and the PRM's own settings).
const VALUE_KEYS: &[&str] = &["value", "email"];

impl Rejection {
    /// The rejection as the logs show it ([`crate::mask`]): the Opportunity's values (its
    /// name, emails, customer, mapped values) masked in the message, the fix and the
    /// details, unless values are shown in full.
    pub fn shown(self, values: LogValues, facts: &OpportunityFacts) -> Rejection {
        if values == LogValues::Full {
            return self;
        }
        let mut known: Vec<Value> = [
            &facts.name,
            &facts.account_name,
            &facts.partner_email,
            &facts.distributor_email,
        ]
        .into_iter()
        .flatten()
        .map(|s| Value::String(s.clone()))
        .collect();
        if let Some(c) = &facts.primary_contact {
            known.extend(
                [&c.first_name, &c.last_name, &c.email, &c.phone]
                    .into_iter()
                    .flatten()
                    .map(|s| Value::String(s.clone())),
            );
        }
        // A picklist's values (a field with a `values` table or the PRM's accepted values)
        // are a vocabulary, not a person's data: shown, so that the mapping can be fixed.
        for f in facts
            .fields
            .iter()
            .filter(|f| f.mapped_values.is_empty() && f.accepted.is_none())
        {
            known.push(f.crm_value.clone());
        }
        let picklist = matches!(
            self.code,
            LogCode::DealValueUnmapped
                | LogCode::DealValueNotAccepted
                | LogCode::DealOwnerTypeUnknown
        );
        let mut details = self.details;
        if let Value::Object(map) = &mut details {
            for key in VALUE_KEYS.iter().filter(|k| !(picklist && **k == "value")) {
                if let Some(v) = map.get_mut(*key) {
                    *v = values.value(v);
                }
            }
        }
        // Known values only: a picklist value quoted in the message stays.
        let scrub = |text: &str| {
            let known = crate::mask::known_values(&known);
            crate::mask::scrub_known(text, &known)
        };
        Rejection {
            code: self.code,
            message: scrub(&self.message),
            fix: scrub(&self.fix),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owner_type_parsing() {
        assert_eq!(parse_owner_type(None), Ok(OwnerType::Partner));
        assert_eq!(parse_owner_type(Some("  ")), Ok(OwnerType::Partner));
        assert_eq!(
            parse_owner_type(Some("Partner-Owned")),
            Ok(OwnerType::Partner)
        );
        assert_eq!(
            parse_owner_type(Some(" distributor-owned ")),
            Ok(OwnerType::Distributor)
        );
        assert_eq!(
            parse_owner_type(Some("Reseller")),
            Err("Reseller".to_string())
        );
        assert_eq!(OwnerType::Partner.as_prm(), "partner");
        assert_eq!(OwnerType::Distributor.as_prm(), "distributor");
        assert_eq!(
            serde_json::to_value(OwnerType::Distributor).unwrap(),
            json!("distributor")
        );
    }
}
