//! Deal Registration import rules: the conditions an Opportunity must meet to become a PRM
//! deal (`docs/sync-rules.md`, "Deal Registration import"; one `deal_*` log code per
//! failed condition in `docs/integration-log.md`).
//!
//! The engine gathers the facts about one flagged Opportunity and the PRM people named by its
//! email fields ([`OpportunityFacts`]), then [`check_opportunity`] decides: import it as the
//! [`DealPlan`] returned, or reject it with every reason that applies, one [`Rejection`] (one
//! Integration Log entry) each.
//!
//! By role: `facts` holds the inputs and outputs, this module the conditions on the
//! Opportunity itself (Account, primary contact, owner type, the emails) and the deal body,
//! `users` the checks on the people the emails name, `fields` those on the mapped fields.

mod facts;
mod fields;
#[cfg(test)]
mod fixtures;
mod users;

use serde_json::{json, Map, Value};

use crate::codes::LogCode;

pub use facts::{
    parse_owner_type, ContactFacts, DealPlan, DistributorSettings, GroupFacts, MappedField,
    OpportunityFacts, OwnerType, PrmUserFacts, Rejection, UserLookup, DEAL_REGISTRATION_MODULE,
};

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

    // Rule 4 (first half): a Distributor-Owned deal needs the distributor module. The rest
    // of rule 4 applies only with the module on: with it off, the distributor email of a
    // Partner-Owned deal is ignored (not checked, not sent).
    if owner == Some(OwnerType::Distributor) && !settings.enabled {
        let what = match distributor_email {
            Some(e) => format!(
                "is Distributor-Owned and names a distributor ({} = {})",
                facts.distributor_email_field, e
            ),
            None => "is Distributor-Owned".to_string(),
        };
        c.reject(
            LogCode::DealDistributorModuleDisabled,
            format!("{what}, but the distributor module is turned off in the PRM"),
            format!(
                "Turn the distributor module on in the PRM settings, or in Salesforce set {} to \
                 Partner-Owned on the Opportunity.",
                facts.owner_type_field
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
}

/// The text trimmed, or None when it is blank.
fn blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Inserts `key` when the value is not blank.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = blank(value) {
        map.insert(key.to_string(), Value::String(v.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::codes::Level;

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
        assert!(r.message.contains("dan@dist.example"));
        assert_eq!(r.details["email"], json!("dan@dist.example"));
        assert!(r.fix.contains("PRM_Deal_Owner_Type__c"));
    }

    #[test]
    fn a_rejection_as_logged_masks_the_opportunitys_values_and_keeps_field_names() {
        let mut facts = valid_distributor();
        facts.name = Some("Zebulon Quux renewal".into());
        let r = check_opportunity(&facts, OFF).unwrap_err().remove(0);
        assert_eq!(r.code, LogCode::DealDistributorModuleDisabled);
        let shown = r.clone().shown(crate::mask::LogValues::Masked, &facts);
        let text = format!("{} {} {}", shown.message, shown.fix, shown.details);
        assert!(!text.contains("dan@dist.example"), "{text}");
        assert!(!text.contains("Zebulon"), "{text}");
        assert!(
            shown.message.contains("d***@dist.example"),
            "{}",
            shown.message
        );
        assert!(
            shown.message.contains("Opportunity Z*** ("),
            "{}",
            shown.message
        );
        assert!(shown.message.contains(OPP), "{}", shown.message);
        assert_eq!(shown.details["email"], json!("d***@dist.example"));
        assert!(shown.fix.contains("PRM_Deal_Owner_Type__c"));
        assert_eq!(r.clone().shown(crate::mask::LogValues::Full, &facts), r);
    }

    #[test]
    fn module_off_ignores_the_distributor_email_of_a_partner_owned_deal() {
        // A Partner-Owned deal naming a distributor who would be rejected with the module on
        // (a partner user, not a distributor)...
        let mut f = valid();
        f.distributor_email = Some("pat@partner.example".into());
        f.distributor_user = Some(UserLookup::Found(partner_user()));
        assert!(check_opportunity(&f, ON).is_err());
        // ...is imported with the module off, without the distributor.
        for blank_owner in [None, Some("Partner-Owned".to_string())] {
            f.owner_type_raw = blank_owner;
            let plan = check_opportunity(&f, OFF).unwrap();
            assert_eq!(plan.owner_type, OwnerType::Partner);
            assert_eq!(plan.partner_user_id.as_deref(), Some("per_p1"));
            assert_eq!(plan.distributor_user_id, None);
            assert_eq!(plan.distributor_organization_id, None);
            assert!(!plan.body.contains_key("distributor_user_id"));
            assert!(!plan.body.contains_key("distributor_organization_id"));
        }
        // Nor is a distributor email naming nobody in the PRM a reason with the module off.
        f.distributor_user = Some(UserLookup::NotFound);
        assert!(check_opportunity(&f, OFF).is_ok());
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
