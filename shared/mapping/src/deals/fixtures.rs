//! Test fixtures shared by the Deal Registration rule tests: a valid Partner-Owned and
//! Distributor-Owned Opportunity, the people they name, the distributor settings, and
//! helpers that check a rejection's shape.

use serde_json::{json, Value};

use super::*;
use crate::codes::LogCode;

pub(super) const OPP: &str = "006Sm0000000001AAA";
pub(super) const NAME: &str = "Acme renewal";

pub(super) fn group(id: &str, kind: &str, modules: &[&str]) -> GroupFacts {
    GroupFacts {
        id: id.into(),
        kind: kind.into(),
        modules: modules.iter().map(|m| m.to_string()).collect(),
    }
}

pub(super) fn partner_user() -> PrmUserFacts {
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

pub(super) fn distributor_user() -> PrmUserFacts {
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

pub(super) fn field(crm: &str, prm: &str, v: Value, required: bool) -> MappedField {
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

pub(super) fn stage() -> MappedField {
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
pub(super) fn valid() -> OpportunityFacts {
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
pub(super) fn valid_distributor() -> OpportunityFacts {
    OpportunityFacts {
        owner_type_raw: Some("Distributor-Owned".into()),
        distributor_email: Some("dan@dist.example".into()),
        distributor_user: Some(UserLookup::Found(distributor_user())),
        ..valid()
    }
}

pub(super) const OFF: DistributorSettings = DistributorSettings {
    enabled: false,
    partner_email_optional_for_distributor_owned: false,
};
pub(super) const ON: DistributorSettings = DistributorSettings {
    enabled: true,
    partner_email_optional_for_distributor_owned: false,
};
pub(super) const ON_OPTIONAL: DistributorSettings = DistributorSettings {
    enabled: true,
    partner_email_optional_for_distributor_owned: true,
};

pub(super) fn rejections(f: &OpportunityFacts, s: DistributorSettings) -> Vec<Rejection> {
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

pub(super) fn codes(f: &OpportunityFacts, s: DistributorSettings) -> Vec<LogCode> {
    rejections(f, s).iter().map(|r| r.code).collect()
}

pub(super) fn only(f: &OpportunityFacts, s: DistributorSettings, code: LogCode) -> Rejection {
    let r = rejections(f, s);
    assert_eq!(
        r.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![code],
        "{r:#?}"
    );
    r.into_iter().next().unwrap()
}
