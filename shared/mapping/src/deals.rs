//! Deal Registration import rules (salesforce.md "Opportunity import conditions").
//!
//! The engine gathers the facts about one flagged Opportunity and the PRM people named by its
//! email fields ([`OpportunityFacts`]), then [`check_opportunity`] decides: import it as the
//! [`DealPlan`] returned, or reject it with every reason that applies, one [`Rejection`] (one
//! Integration Log entry) each.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::codes::LogCode;

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

/// Checks every import condition; collects ALL failing rules (not just the first), each as
/// its own Rejection.
pub fn check_opportunity(
    facts: &OpportunityFacts,
    settings: DistributorSettings,
) -> Result<DealPlan, Vec<Rejection>> {
    let mut c = Checker {
        facts,
        out: Vec::new(),
    };

    // Rule 1: an Account and a primary contact role.
    if blank(facts.account_id.as_deref()).is_none() {
        c.reject(
            LogCode::DealNoAccount,
            "has no Account, so the deal would have no customer company".to_string(),
            "In Salesforce, set the Opportunity's Account to the customer's Account.".to_string(),
            json!({ "field": "AccountId", "value": facts.account_id }),
        );
    }
    if facts.primary_contact.is_none() {
        c.reject(
            LogCode::DealNoPrimaryContact,
            "has no primary contact: none of its Contact Roles is marked Primary, so the deal \
             would have no customer contact"
                .to_string(),
            LogCode::DealNoPrimaryContact.fix().to_string(),
            json!({ "object": "OpportunityContactRole", "field": "IsPrimary" }),
        );
    }

    // Rule 2: the owner type.
    let owner = match parse_owner_type(facts.owner_type_raw.as_deref()) {
        Ok(o) => Some(o),
        Err(raw) => {
            c.reject(
                LogCode::DealOwnerTypeUnknown,
                format!(
                    "has {} = {:?}, which is not a Deal Owner Type prmsync knows; the accepted \
                     values are Partner-Owned, Distributor-Owned or blank (Partner-Owned)",
                    facts.owner_type_field, raw
                ),
                format!(
                    "In Salesforce, set {} on the Opportunity to Partner-Owned or \
                     Distributor-Owned, or clear it (blank means Partner-Owned).",
                    facts.owner_type_field
                ),
                json!({
                    "field": facts.owner_type_field,
                    "value": raw,
                    "accepted": ["", "Partner-Owned", "Distributor-Owned"],
                }),
            );
            None
        }
    };

    let partner_email = blank(facts.partner_email.as_deref());
    let distributor_email = blank(facts.distributor_email.as_deref());

    // Rule 4 (first half): the distributor module must be on for anything distributor.
    let wants_distributor = owner == Some(OwnerType::Distributor) || distributor_email.is_some();
    if wants_distributor && !settings.enabled {
        let what = match (owner == Some(OwnerType::Distributor), distributor_email) {
            (true, Some(e)) => format!(
                "is Distributor-Owned and names a distributor ({} = {})",
                facts.distributor_email_field, e
            ),
            (true, None) => "is Distributor-Owned".to_string(),
            (false, Some(e)) => format!(
                "names a distributor ({} = {})",
                facts.distributor_email_field, e
            ),
            (false, None) => unreachable!("wants_distributor"),
        };
        c.reject(
            LogCode::DealDistributorModuleDisabled,
            format!("{what}, but the distributor module is turned off in the PRM"),
            format!(
                "Turn the distributor module on in the PRM settings, or in Salesforce set {} to \
                 Partner-Owned and clear {} on the Opportunity.",
                facts.owner_type_field, facts.distributor_email_field
            ),
            json!({
                "owner_type": facts.owner_type_raw,
                "field": facts.distributor_email_field,
                "email": distributor_email,
                "distributor_module_enabled": false,
            }),
        );
    }

    // Rule 3: the partner email, when required.
    let partner_optional =
        settings.enabled && settings.partner_email_optional_for_distributor_owned;
    let partner_required = match owner {
        Some(OwnerType::Partner) => true,
        Some(OwnerType::Distributor) => !partner_optional,
        // Unknown owner type: required if it is required whatever the owner type.
        None => !partner_optional,
    };
    if partner_email.is_none() && partner_required {
        let why = match owner {
            Some(OwnerType::Distributor) => {
                "a Distributor-Owned deal needs the partner user too unless the PRM's distributor \
                 module makes it optional"
            }
            _ => "a Partner-Owned deal needs the partner user who registers it",
        };
        c.reject(
            LogCode::DealPartnerEmailMissing,
            format!(
                "has no partner email ({} is blank); {why}",
                facts.partner_email_field
            ),
            format!(
                "In Salesforce, enter the email of the PRM partner user who registers the deal in \
                 {} on the Opportunity.",
                facts.partner_email_field
            ),
            json!({
                "field": facts.partner_email_field,
                "value": facts.partner_email,
                "owner_type": owner.map(OwnerType::as_prm),
            }),
        );
    }

    // Rule 4 (second half): the distributor email on a Distributor-Owned deal.
    if settings.enabled && owner == Some(OwnerType::Distributor) && distributor_email.is_none() {
        c.reject(
            LogCode::DealDistributorEmailMissing,
            format!(
                "is Distributor-Owned but has no distributor email ({} is blank)",
                facts.distributor_email_field
            ),
            format!(
                "In Salesforce, enter the email of the PRM distributor user in {} on the \
                 Opportunity, or set {} to Partner-Owned.",
                facts.distributor_email_field, facts.owner_type_field
            ),
            json!({
                "field": facts.distributor_email_field,
                "value": facts.distributor_email,
                "owner_type": "distributor",
            }),
        );
    }

    // The users named by the emails.
    let partner = partner_email.and_then(|email| {
        c.check_user(
            OwnerType::Partner,
            &facts.partner_email_field,
            email,
            facts.partner_user.as_ref(),
        )
    });
    let distributor = match distributor_email {
        Some(email) if settings.enabled => c.check_user(
            OwnerType::Distributor,
            &facts.distributor_email_field,
            email,
            facts.distributor_user.as_ref(),
        ),
        _ => None,
    };

    // Rule 5: the mapped fields.
    let mut mapped = Map::new();
    for f in &facts.fields {
        if let Some(v) = c.check_field(f) {
            mapped.insert(f.prm_field.clone(), v);
        }
    }

    if !c.out.is_empty() {
        return Err(c.out);
    }
    let owner_type = owner.expect("no rejection, so the owner type parsed");

    let (partner_user_id, partner_organization_id) = partner.unzip();
    let (distributor_user_id, distributor_organization_id) = distributor.unzip();

    let mut body = mapped;
    let mut customer = Map::new();
    put(&mut customer, "company", facts.account_name.as_deref());
    if let Some(pc) = &facts.primary_contact {
        put(&mut customer, "first_name", pc.first_name.as_deref());
        put(&mut customer, "last_name", pc.last_name.as_deref());
        put(&mut customer, "email", pc.email.as_deref());
        put(&mut customer, "phone", pc.phone.as_deref());
    }
    if !customer.is_empty() {
        body.insert("customer".into(), Value::Object(customer));
    }
    body.insert("owner_type".into(), owner_type.as_prm().into());
    put(&mut body, "partner_user_id", partner_user_id.as_deref());
    put(
        &mut body,
        "partner_organization_id",
        partner_organization_id.as_deref(),
    );
    put(
        &mut body,
        "distributor_user_id",
        distributor_user_id.as_deref(),
    );
    put(
        &mut body,
        "distributor_organization_id",
        distributor_organization_id.as_deref(),
    );

    Ok(DealPlan {
        owner_type,
        partner_user_id,
        partner_organization_id,
        distributor_user_id,
        distributor_organization_id,
        body,
    })
}

/// The Opportunity's name as messages start: `Opportunity <name> (<Id>)`.
pub fn opportunity_label(facts: &OpportunityFacts) -> String {
    match blank(facts.name.as_deref()) {
        Some(n) => format!("Opportunity {n} ({})", facts.id),
        None => format!("Opportunity (no name) ({})", facts.id),
    }
}

struct Checker<'a> {
    facts: &'a OpportunityFacts,
    out: Vec<Rejection>,
}

impl Checker<'_> {
    fn reject(&mut self, code: LogCode, what: String, fix: String, details: Value) {
        self.out.push(Rejection {
            code,
            message: format!("{} {what}.", opportunity_label(self.facts)),
            fix,
            details,
        });
    }

    /// Checks the person named by `field` = `email` for the role `role`; returns their user
    /// and organization ids when they qualify.
    fn check_user(
        &mut self,
        role: OwnerType,
        field: &str,
        email: &str,
        lookup: Option<&UserLookup>,
    ) -> Option<(String, String)> {
        let role_name = role.as_prm();
        let user = match lookup.unwrap_or(&UserLookup::NotFound) {
            UserLookup::NotFound => {
                self.reject(
                    LogCode::DealUserNotFound,
                    format!("names {email} in {field}, but no PRM person has that email"),
                    format!(
                        "In Salesforce, correct {field} on the Opportunity to the email of a PRM \
                         {role_name} user, or create a {role_name} user with the email {email} in \
                         the PRM."
                    ),
                    json!({ "field": field, "email": email, "role": role_name }),
                );
                return None;
            }
            UserLookup::Several(ids) => {
                self.reject(
                    LogCode::DealUserAmbiguous,
                    format!(
                        "names {email} in {field}, but {} PRM people have that email ({}), so \
                         the {role_name} user is ambiguous",
                        ids.len(),
                        ids.join(", ")
                    ),
                    format!(
                        "In the PRM, give the people {} distinct emails or delete the duplicates, \
                         or put another {role_name} user's email in {field} on the Opportunity.",
                        ids.join(", ")
                    ),
                    json!({ "field": field, "email": email, "role": role_name, "person_ids": ids }),
                );
                return None;
            }
            UserLookup::Found(u) => u,
        };
        let before = self.out.len();
        let who = format!("{field} = {email} (PRM person {})", user.id);
        let is_user = user.kind == "user";

        if !is_user {
            self.reject(
                LogCode::DealUserIsContact,
                format!(
                    "names {who}, who is a PRM {} without portal access, not a user, so they \
                     cannot register the deal",
                    user.kind
                ),
                format!(
                    "In the PRM, promote person {} to a user (active, in a {role_name} group with \
                     Deal Registration), or put a {role_name} user's email in {field} on the \
                     Opportunity.",
                    user.id
                ),
                json!({
                    "field": field, "email": email, "role": role_name,
                    "person_id": user.id, "kind": user.kind,
                }),
            );
        }

        let status = user.status.as_deref().map(str::trim).unwrap_or("");
        if user.deleted || (is_user && status != "active") {
            let state = if user.deleted {
                "has been deleted in the PRM".to_string()
            } else if status.is_empty() {
                "has no status in the PRM (only active users can register deals)".to_string()
            } else {
                format!("has status {status} in the PRM (only active users can register deals)")
            };
            self.reject(
                LogCode::DealUserInactive,
                format!("names {who}, who {state}"),
                if user.deleted {
                    format!(
                        "Restore person {} in the PRM, or put the email of an active {role_name} \
                         user in {field} on the Opportunity.",
                        user.id
                    )
                } else {
                    format!(
                        "In the PRM, set user {}'s status to active, or put the email of an \
                         active {role_name} user in {field} on the Opportunity.",
                        user.id
                    )
                },
                json!({
                    "field": field, "email": email, "role": role_name,
                    "person_id": user.id, "status": user.status, "deleted": user.deleted,
                }),
            );
        }

        // A user in the wrong kind of organization is reported for that alone: its groups
        // are of the other kind too, which says nothing more.
        let organization_fits = user.organization_kind.as_deref().map(str::trim) == Some(role_name);
        match user.organization_kind.as_deref().map(str::trim) {
            Some(k) if k == role_name => {}
            Some(k @ ("partner" | "distributor")) => {
                let (code, needed_field, fix) = match role {
                    OwnerType::Partner => (
                        LogCode::DealUserInDistributorOrg,
                        &self.facts.distributor_email_field,
                        format!(
                            "In Salesforce, put a partner user's email in {field}; if the deal \
                             belongs to this distributor, set {} to Distributor-Owned and move \
                             {email} to {}.",
                            self.facts.owner_type_field, self.facts.distributor_email_field
                        ),
                    ),
                    OwnerType::Distributor => (
                        LogCode::DealUserInPartnerOrg,
                        &self.facts.partner_email_field,
                        format!(
                            "In Salesforce, put a distributor user's email in {field}; if \
                             {email} is the partner registering the deal, move it to {}.",
                            self.facts.partner_email_field
                        ),
                    ),
                };
                self.reject(
                    code,
                    format!(
                        "names {who}, who belongs to {k} organization {}; {field} needs a \
                         {role_name} (a {k}'s email belongs in {needed_field})",
                        user.organization_id
                    ),
                    fix,
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "organization_id": user.organization_id,
                        "organization_kind": k,
                    }),
                );
            }
            other => {
                let state = match other {
                    None => "is missing or deleted in the PRM".to_string(),
                    Some(k) => format!("is of kind {k:?}, neither partner nor distributor"),
                };
                self.reject(
                    LogCode::DealUserOrganizationUnknown,
                    format!(
                        "names {who}, whose organization {} {state}",
                        user.organization_id
                    ),
                    format!(
                        "In the PRM, move person {} to an active {role_name} organization, or put \
                         another {role_name} user's email in {field} on the Opportunity.",
                        user.id
                    ),
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "organization_id": user.organization_id,
                        "organization_kind": other,
                    }),
                );
            }
        }

        if is_user && organization_fits {
            let qualifies = user.groups.iter().any(|g| {
                g.kind.trim() == role_name
                    && g.modules
                        .iter()
                        .any(|m| m.trim() == DEAL_REGISTRATION_MODULE)
            });
            if !qualifies {
                let groups: Vec<Value> = user
                    .groups
                    .iter()
                    .map(|g| json!({ "id": g.id, "kind": g.kind, "modules": g.modules }))
                    .collect();
                let listed = if user.groups.is_empty() {
                    "belongs to no group".to_string()
                } else {
                    format!(
                        "belongs to groups {}",
                        user.groups
                            .iter()
                            .map(|g| format!("{} ({})", g.id, g.kind))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                self.reject(
                    LogCode::DealUserLacksDealRegistration,
                    format!(
                        "names {who}, who {listed} but is in no {role_name} group with the Deal \
                         Registration module"
                    ),
                    format!(
                        "In the PRM, add user {} to a {role_name} group whose modules include \
                         deal_registration (or enable it on one of their {role_name} groups), or \
                         put another {role_name} user's email in {field} on the Opportunity.",
                        user.id
                    ),
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "groups": groups,
                    }),
                );
            }
        }

        (self.out.len() == before).then(|| (user.id.clone(), user.organization_id.clone()))
    }

    /// Checks one mapped field; returns the value to send (None: leave it out of the body).
    fn check_field(&mut self, f: &MappedField) -> Option<Value> {
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

/// The text trimmed, or None when it is blank.
fn blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Inserts `key` when the value is not blank.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = blank(value) {
        map.insert(key.to_string(), Value::String(v.to_string()));
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
    use super::*;
    use crate::codes::Level;

    const OPP: &str = "006Sm0000000001AAA";
    const NAME: &str = "Acme renewal";

    fn group(id: &str, kind: &str, modules: &[&str]) -> GroupFacts {
        GroupFacts {
            id: id.into(),
            kind: kind.into(),
            modules: modules.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn partner_user() -> PrmUserFacts {
        PrmUserFacts {
            id: "per_p1".into(),
            kind: "user".into(),
            status: Some("active".into()),
            organization_id: "org_p1".into(),
            organization_kind: Some("partner".into()),
            groups: vec![
                group("grp_train", "partner", &["training"]),
                group("grp_deals", "partner", &["mdf", "deal_registration"]),
            ],
            deleted: false,
        }
    }

    fn distributor_user() -> PrmUserFacts {
        PrmUserFacts {
            id: "per_d1".into(),
            kind: "user".into(),
            status: Some("active".into()),
            organization_id: "org_d1".into(),
            organization_kind: Some("distributor".into()),
            groups: vec![group("grp_dist", "distributor", &["deal_registration"])],
            deleted: false,
        }
    }

    fn field(crm: &str, prm: &str, v: Value, required: bool) -> MappedField {
        MappedField {
            crm_field: crm.into(),
            prm_field: prm.into(),
            crm_value: v.clone(),
            value: Ok(v),
            required,
            accepted: None,
            mapped_values: vec![],
        }
    }

    fn stage() -> MappedField {
        MappedField {
            crm_field: "StageName".into(),
            prm_field: "stage".into(),
            crm_value: json!("Qualification"),
            value: Ok(json!("Qualified")),
            required: true,
            accepted: Some(vec!["Prospecting".into(), "Qualified".into(), "Won".into()]),
            mapped_values: vec![
                "Prospecting".into(),
                "Qualification".into(),
                "Closed Won".into(),
            ],
        }
    }

    /// A valid Partner-Owned Opportunity.
    fn valid() -> OpportunityFacts {
        OpportunityFacts {
            id: OPP.into(),
            name: Some(NAME.into()),
            link: Some(format!(
                "https://example.my.salesforce.com/lightning/r/Opportunity/{OPP}/view"
            )),
            account_id: Some("001Sm0000000001AAA".into()),
            account_name: Some("Acme Corp".into()),
            primary_contact: Some(ContactFacts {
                id: "003Sm0000000001AAA".into(),
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace".into()),
                email: Some("ada@acme.example".into()),
                phone: None,
            }),
            owner_type_raw: None,
            partner_email: Some("pat@partner.example".into()),
            distributor_email: None,
            partner_user: Some(UserLookup::Found(partner_user())),
            distributor_user: None,
            fields: vec![
                field("Name", "name", json!(NAME), true),
                stage(),
                field("Amount", "amount", json!(1200.5), false),
                field("Description", "description", Value::Null, false),
            ],
            partner_email_field: "PRM_Partner_Email__c".into(),
            distributor_email_field: "PRM_Distributor_Email__c".into(),
            owner_type_field: "PRM_Deal_Owner_Type__c".into(),
        }
    }

    /// A valid Distributor-Owned Opportunity (needs the module on).
    fn valid_distributor() -> OpportunityFacts {
        OpportunityFacts {
            owner_type_raw: Some("Distributor-Owned".into()),
            distributor_email: Some("dan@dist.example".into()),
            distributor_user: Some(UserLookup::Found(distributor_user())),
            ..valid()
        }
    }

    const OFF: DistributorSettings = DistributorSettings {
        enabled: false,
        partner_email_optional_for_distributor_owned: false,
    };
    const ON: DistributorSettings = DistributorSettings {
        enabled: true,
        partner_email_optional_for_distributor_owned: false,
    };
    const ON_OPTIONAL: DistributorSettings = DistributorSettings {
        enabled: true,
        partner_email_optional_for_distributor_owned: true,
    };

    fn rejections(f: &OpportunityFacts, s: DistributorSettings) -> Vec<Rejection> {
        match check_opportunity(f, s) {
            Ok(plan) => panic!("expected a rejection, got {plan:?}"),
            Err(r) => {
                assert!(!r.is_empty());
                for x in &r {
                    assert!(
                        x.message
                            .starts_with(&format!("Opportunity {} ({})", NAME, OPP)),
                        "{}",
                        x.message
                    );
                    assert!(!x.fix.is_empty(), "{:?} has no fix", x.code);
                    assert!(x.details.is_object());
                }
                r
            }
        }
    }

    fn codes(f: &OpportunityFacts, s: DistributorSettings) -> Vec<LogCode> {
        rejections(f, s).iter().map(|r| r.code).collect()
    }

    fn only(f: &OpportunityFacts, s: DistributorSettings, code: LogCode) -> Rejection {
        let r = rejections(f, s);
        assert_eq!(
            r.iter().map(|r| r.code).collect::<Vec<_>>(),
            vec![code],
            "{r:#?}"
        );
        r.into_iter().next().unwrap()
    }

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

    #[test]
    fn valid_partner_owned_plan() {
        for s in [OFF, ON, ON_OPTIONAL] {
            let plan = check_opportunity(&valid(), s).unwrap();
            assert_eq!(plan.owner_type, OwnerType::Partner);
            assert_eq!(plan.partner_user_id.as_deref(), Some("per_p1"));
            assert_eq!(plan.partner_organization_id.as_deref(), Some("org_p1"));
            assert_eq!(plan.distributor_user_id, None);
            assert_eq!(plan.distributor_organization_id, None);
            assert_eq!(
                Value::Object(plan.body),
                json!({
                    "owner_type": "partner",
                    "partner_user_id": "per_p1",
                    "partner_organization_id": "org_p1",
                    "name": NAME,
                    "stage": "Qualified",
                    "amount": 1200.5,
                    "customer": {
                        "company": "Acme Corp",
                        "first_name": "Ada",
                        "last_name": "Lovelace",
                        "email": "ada@acme.example",
                    },
                })
            );
        }
        let mut f = valid();
        f.owner_type_raw = Some("Partner-Owned".into());
        assert!(check_opportunity(&f, OFF).is_ok());
    }

    #[test]
    fn partner_owned_with_distributor_email_fills_both() {
        let mut f = valid();
        f.distributor_email = Some("dan@dist.example".into());
        f.distributor_user = Some(UserLookup::Found(distributor_user()));
        let plan = check_opportunity(&f, ON).unwrap();
        assert_eq!(plan.owner_type, OwnerType::Partner);
        assert_eq!(plan.partner_user_id.as_deref(), Some("per_p1"));
        assert_eq!(plan.distributor_user_id.as_deref(), Some("per_d1"));
        assert_eq!(plan.distributor_organization_id.as_deref(), Some("org_d1"));
        assert_eq!(plan.body["distributor_user_id"], json!("per_d1"));
        assert_eq!(plan.body["distributor_organization_id"], json!("org_d1"));

        // ...and the distributor user is validated too.
        let mut d = distributor_user();
        d.status = Some("pending".into());
        f.distributor_user = Some(UserLookup::Found(d));
        only(&f, ON, LogCode::DealUserInactive);
    }

    #[test]
    fn valid_distributor_owned_plan_with_partner() {
        for s in [ON, ON_OPTIONAL] {
            let plan = check_opportunity(&valid_distributor(), s).unwrap();
            assert_eq!(plan.owner_type, OwnerType::Distributor);
            assert_eq!(plan.distributor_user_id.as_deref(), Some("per_d1"));
            assert_eq!(plan.distributor_organization_id.as_deref(), Some("org_d1"));
            assert_eq!(plan.partner_user_id.as_deref(), Some("per_p1"));
            assert_eq!(plan.partner_organization_id.as_deref(), Some("org_p1"));
            assert_eq!(plan.body["owner_type"], json!("distributor"));
            assert_eq!(plan.body["distributor_user_id"], json!("per_d1"));
            assert_eq!(plan.body["partner_user_id"], json!("per_p1"));
            assert_eq!(plan.body["customer"]["company"], json!("Acme Corp"));
            assert_eq!(plan.body["stage"], json!("Qualified"));
        }
    }

    #[test]
    fn distributor_owned_without_partner_when_optional() {
        let mut f = valid_distributor();
        f.partner_email = Some(" ".into());
        f.partner_user = None;
        let plan = check_opportunity(&f, ON_OPTIONAL).unwrap();
        assert_eq!(plan.owner_type, OwnerType::Distributor);
        assert_eq!(plan.partner_user_id, None);
        assert_eq!(plan.partner_organization_id, None);
        assert_eq!(plan.distributor_user_id.as_deref(), Some("per_d1"));
        assert!(!plan.body.contains_key("partner_user_id"));
        assert!(!plan.body.contains_key("partner_organization_id"));

        // Not optional: the partner email is required.
        let r = only(&f, ON, LogCode::DealPartnerEmailMissing);
        assert!(r.message.contains("PRM_Partner_Email__c"));
        assert!(r.fix.contains("PRM_Partner_Email__c"));
    }

    #[test]
    fn no_account() {
        let mut f = valid();
        f.account_id = None;
        f.account_name = None;
        only(&f, OFF, LogCode::DealNoAccount);
    }

    #[test]
    fn no_primary_contact() {
        let mut f = valid();
        f.primary_contact = None;
        let r = only(&f, OFF, LogCode::DealNoPrimaryContact);
        assert!(r.fix.contains("Primary"));
    }

    #[test]
    fn owner_type_unknown() {
        let mut f = valid();
        f.owner_type_raw = Some("Reseller-Owned".into());
        let r = only(&f, OFF, LogCode::DealOwnerTypeUnknown);
        assert!(r.message.contains("Reseller-Owned"));
        assert!(r.message.contains("Partner-Owned"));
        assert!(r.message.contains("Distributor-Owned"));
        assert_eq!(r.details["value"], json!("Reseller-Owned"));
    }

    #[test]
    fn distributor_module_disabled() {
        // Distributor-Owned with the module off (the partner email is given, so only this).
        let r = only(
            &valid_distributor(),
            OFF,
            LogCode::DealDistributorModuleDisabled,
        );
        assert!(r.message.contains("distributor module"));
        assert!(r.fix.contains("PRM_Deal_Owner_Type__c"));
        assert!(r.fix.contains("PRM_Distributor_Email__c"));

        // A distributor email on a Partner-Owned deal with the module off.
        let mut f = valid();
        f.distributor_email = Some("dan@dist.example".into());
        f.distributor_user = Some(UserLookup::Found(distributor_user()));
        let r = only(&f, OFF, LogCode::DealDistributorModuleDisabled);
        assert!(r.message.contains("dan@dist.example"));
        assert_eq!(r.details["email"], json!("dan@dist.example"));
    }

    #[test]
    fn partner_email_missing() {
        let mut f = valid();
        f.partner_email = None;
        f.partner_user = None;
        for s in [OFF, ON, ON_OPTIONAL] {
            only(&f, s, LogCode::DealPartnerEmailMissing);
        }
        // Distributor-Owned with the module off: both reasons.
        let mut f = valid_distributor();
        f.partner_email = None;
        f.partner_user = None;
        assert_eq!(
            codes(&f, OFF),
            vec![
                LogCode::DealDistributorModuleDisabled,
                LogCode::DealPartnerEmailMissing
            ]
        );
    }

    #[test]
    fn distributor_email_missing() {
        let mut f = valid_distributor();
        f.distributor_email = Some("".into());
        f.distributor_user = None;
        for s in [ON, ON_OPTIONAL] {
            let r = only(&f, s, LogCode::DealDistributorEmailMissing);
            assert!(r.message.contains("PRM_Distributor_Email__c"));
        }
    }

    #[test]
    fn user_not_found() {
        let mut f = valid();
        f.partner_user = Some(UserLookup::NotFound);
        let r = only(&f, OFF, LogCode::DealUserNotFound);
        assert!(r.message.contains("PRM_Partner_Email__c"));
        assert!(r.message.contains("pat@partner.example"));
        assert_eq!(r.details["email"], json!("pat@partner.example"));

        // The engine gave no lookup for a given email: treated as not found.
        f.partner_user = None;
        only(&f, OFF, LogCode::DealUserNotFound);

        let mut f = valid_distributor();
        f.distributor_user = Some(UserLookup::NotFound);
        let r = only(&f, ON, LogCode::DealUserNotFound);
        assert!(r.message.contains("PRM_Distributor_Email__c"));
        assert!(r.message.contains("dan@dist.example"));
    }

    #[test]
    fn user_ambiguous() {
        let mut f = valid();
        f.partner_user = Some(UserLookup::Several(vec!["per_a".into(), "per_b".into()]));
        let r = only(&f, OFF, LogCode::DealUserAmbiguous);
        assert!(r.message.contains("per_a") && r.message.contains("per_b"));
        assert_eq!(r.details["person_ids"], json!(["per_a", "per_b"]));
        assert_eq!(LogCode::DealUserAmbiguous.level(), Level::Error);
    }

    #[test]
    fn user_is_contact() {
        let mut u = partner_user();
        u.kind = "contact".into();
        u.status = None;
        u.groups = vec![];
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserIsContact);
        assert!(r.fix.contains("promote"));
    }

    #[test]
    fn user_inactive() {
        for status in ["pending", "inactive", "disabled"] {
            let mut u = partner_user();
            u.status = Some(status.into());
            let mut f = valid();
            f.partner_user = Some(UserLookup::Found(u));
            let r = only(&f, OFF, LogCode::DealUserInactive);
            assert!(r.message.contains(status), "{}", r.message);
            assert_eq!(r.details["status"], json!(status));
        }
        let mut u = partner_user();
        u.deleted = true;
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserInactive);
        assert!(r.message.contains("deleted"));
    }

    #[test]
    fn user_lacks_deal_registration() {
        let mut u = partner_user();
        u.groups = vec![
            group("grp_train", "partner", &["training"]),
            // Deal registration in a group of the wrong kind does not count.
            group("grp_x", "distributor", &["deal_registration"]),
        ];
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserLacksDealRegistration);
        assert!(r.message.contains("grp_train"));

        let mut d = distributor_user();
        d.groups = vec![group("grp_p", "partner", &["deal_registration"])];
        let mut f = valid_distributor();
        f.distributor_user = Some(UserLookup::Found(d));
        only(&f, ON, LogCode::DealUserLacksDealRegistration);
    }

    #[test]
    fn user_in_distributor_org() {
        let mut f = valid();
        let mut u = distributor_user();
        // Give them a partner group with deal registration so only the organization is wrong.
        u.groups
            .push(group("grp_deals", "partner", &["deal_registration"]));
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserInDistributorOrg);
        assert!(r.message.contains("org_d1"));
        assert_eq!(r.details["organization_kind"], json!("distributor"));
    }

    #[test]
    fn user_in_partner_org() {
        let mut f = valid_distributor();
        let mut u = partner_user();
        u.groups
            .push(group("grp_dist", "distributor", &["deal_registration"]));
        f.distributor_user = Some(UserLookup::Found(u));
        let r = only(&f, ON, LogCode::DealUserInPartnerOrg);
        assert!(r.message.contains("org_p1"));
    }

    #[test]
    fn user_organization_unknown() {
        let mut u = partner_user();
        u.organization_kind = None;
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        only(&f, OFF, LogCode::DealUserOrganizationUnknown);
    }

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

    #[test]
    fn collects_every_failure() {
        let mut f = valid();
        f.account_id = None;
        f.primary_contact = None;
        f.partner_user = Some(UserLookup::NotFound);
        f.fields[1].value = Err("Negotiation".into());
        assert_eq!(
            codes(&f, OFF),
            vec![
                LogCode::DealNoAccount,
                LogCode::DealNoPrimaryContact,
                LogCode::DealUserNotFound,
                LogCode::DealValueUnmapped,
            ]
        );

        // One person failing several ways: one entry per reason.
        let mut u = partner_user();
        u.status = Some("disabled".into());
        u.organization_kind = Some("distributor".into());
        u.groups.clear();
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        assert_eq!(
            codes(&f, OFF),
            vec![LogCode::DealUserInactive, LogCode::DealUserInDistributorOrg]
        );
    }

    #[test]
    fn messages_name_the_opportunity() {
        let mut f = valid();
        f.account_id = None;
        for r in rejections(&f, OFF) {
            assert!(r.message.contains(OPP));
            assert!(r.message.contains(NAME));
        }
        f.name = None;
        let r = check_opportunity(&f, OFF).unwrap_err();
        assert!(r[0]
            .message
            .starts_with(&format!("Opportunity (no name) ({OPP})")));
    }

    #[test]
    fn deal_codes_are_in_the_catalogue() {
        let deal_codes: Vec<_> = LogCode::ALL
            .iter()
            .filter(|c| c.as_str().starts_with("deal_"))
            .collect();
        assert!(deal_codes.len() >= 18);
        for c in deal_codes {
            if c.level() == Level::Info {
                assert_eq!(c.fix(), "");
            } else {
                assert!(!c.fix().is_empty(), "{}", c.as_str());
            }
        }
        assert_eq!(LogCode::DealImported.level(), Level::Info);
        assert_eq!(LogCode::DealRejectedByPrm.level(), Level::Error);
    }
}
