//! Deal Registration import end to end: every rejection rule with its code, valid
//! Partner-Owned and Distributor-Owned imports, idempotence, and two-way field sync.

mod common;

use common::*;
use prmsync_engine::RunMode;
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::Collection;
use prmsync_simulators::salesforce::{FieldDef, FieldType};
use serde_json::{json, Value};

struct World {
    h: Harness,
    customer: String,
    primary: String,
}

/// A PRM with a partner and a distributor organization and their people, and a Salesforce
/// customer Account with a Contact.
async fn world() -> World {
    let h = Harness::new().await;
    let p = &h.prm;
    let dr = p.insert(
        Collection::Groups,
        json!({"kind": "partner", "name": "Partner DR", "modules": ["deal_registration"]}),
    );
    let training = p.insert(
        Collection::Groups,
        json!({"kind": "partner", "name": "Training", "modules": ["training"]}),
    );
    let dist_dr = p.insert(
        Collection::Groups,
        json!({"kind": "distributor", "name": "Distributor DR", "modules": ["deal_registration"]}),
    );
    let partner = p.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Partner Org"}),
    );
    let dist = p.insert(
        Collection::Organizations,
        json!({"kind": "distributor", "status": "active", "name": "Dist Org"}),
    );
    let user = |org: &str, email: &str, status: &str, group: &str| {
        p.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "user", "status": status, "first_name": "U", "last_name": email, "email": email, "group_ids": [group]}),
        )
    };
    user(&partner, "alice@partner.example", "active", &dr);
    user(&partner, "bob@partner.example", "pending", &dr);
    user(&partner, "dave@partner.example", "active", &training);
    user(&dist, "dist@dist.example", "active", &dist_dr);
    p.insert(
        Collection::People,
        json!({"organization_id": partner, "kind": "contact", "first_name": "Carol", "last_name": "Contact", "email": "carol@partner.example"}),
    );
    // an unrestricted owner type picklist, so a stray value can be stored
    h.sf.add_field(
        "Opportunity",
        FieldDef::new("PRM_Deal_Owner_Type__c", FieldType::Picklist),
    );
    let customer = h.account("Customer Co", None, json!({}));
    let primary = h.contact(&customer, "Pat", "Primary", "pat@customer.example");
    World {
        h,
        customer,
        primary,
    }
}

impl World {
    /// A flagged Opportunity with a primary contact; `extra` overrides fields.
    fn opportunity(&self, name: &str, extra: Value) -> String {
        let mut f = obj(json!({
            "Name": name, "StageName": "Prospecting", "Amount": 5000, "CloseDate": "2026-12-31",
            "AccountId": self.customer, "PRM_Sync__c": true, "PRM_Export_Deal__c": true,
            "PRM_Partner_Email__c": "alice@partner.example",
        }));
        for (k, v) in obj(extra) {
            if v.is_null() {
                f.remove(&k);
            } else {
                f.insert(k, v);
            }
        }
        let id = self.h.sf.insert("Opportunity", f);
        self.primary_role(&id);
        id
    }

    fn primary_role(&self, opp: &str) {
        self.h.sf.insert(
            "OpportunityContactRole",
            obj(json!({"OpportunityId": opp, "ContactId": self.primary, "IsPrimary": true, "Role": "Decision Maker"})),
        );
    }

    fn deals_for(&self, opp: &str) -> Vec<Value> {
        self.h.prm_by_crm(Collection::Deals, opp)
    }

    async fn codes_for(&self, opp: &str) -> Vec<String> {
        let entries = self
            .h
            .store
            .entries(&prmsync_engine::LogFilter {
                record_id: Some(opp.to_string()),
                min_level: Some(prmsync_mapping::Level::Error),
                ..Default::default()
            })
            .await
            .unwrap();
        entries
            .iter()
            .map(|e| e.code.as_str().to_string())
            .collect()
    }
}

use prmsync_engine::store::IntegrationLog;

#[tokio::test]
async fn each_rule_rejects_with_its_code_and_creates_nothing() {
    let w = world().await;
    w.h.prm.set_settings(json!({
        "distributor_module": {"enabled": true, "partner_email_optional_for_distributor_owned": false},
        "deal_fields": [
            {"name": "name", "required": true, "values": null},
            {"name": "stage", "required": true, "values": ["Prospecting", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]},
            {"name": "amount", "required": true, "values": null},
            {"name": "close_date", "required": false, "values": null}
        ],
        "organization_fields": [], "person_fields": []
    }));
    let cases = [
        ("deal_no_account", json!({"AccountId": null})),
        (
            "deal_partner_email_missing",
            json!({"PRM_Partner_Email__c": null}),
        ),
        (
            "deal_user_not_found",
            json!({"PRM_Partner_Email__c": "nobody@partner.example"}),
        ),
        (
            "deal_user_inactive",
            json!({"PRM_Partner_Email__c": "bob@partner.example"}),
        ),
        (
            "deal_user_is_contact",
            json!({"PRM_Partner_Email__c": "carol@partner.example"}),
        ),
        (
            "deal_user_lacks_deal_registration",
            json!({"PRM_Partner_Email__c": "dave@partner.example"}),
        ),
        (
            "deal_user_in_distributor_org",
            json!({"PRM_Partner_Email__c": "dist@dist.example"}),
        ),
        (
            "deal_distributor_email_missing",
            json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned"}),
        ),
        (
            "deal_user_in_partner_org",
            json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "alice@partner.example"}),
        ),
        (
            "deal_owner_type_unknown",
            json!({"PRM_Deal_Owner_Type__c": "Reseller-Owned"}),
        ),
        ("deal_required_field_empty", json!({"Amount": null})),
        (
            "deal_value_unmapped",
            json!({"StageName": "Needs Analysis"}),
        ),
    ];
    let mut ids = Vec::new();
    for (code, extra) in &cases {
        ids.push((
            code.to_string(),
            w.opportunity(&format!("Opp {code}"), extra.clone()),
        ));
    }
    let no_primary = {
        let mut f = obj(
            json!({"Name": "Opp no primary", "StageName": "Prospecting", "Amount": 1, "CloseDate": "2026-12-31",
            "AccountId": w.customer, "PRM_Sync__c": true, "PRM_Export_Deal__c": true, "PRM_Partner_Email__c": "alice@partner.example"}),
        );
        f.remove("x");
        w.h.sf.insert("Opportunity", f)
    };
    ids.push(("deal_no_primary_contact".into(), no_primary.clone()));

    let report = w.h.sync_deals().await;
    assert_eq!(report.status, "succeeded", "{:?}", report.message);

    for (code, opp) in &ids {
        let codes = w.codes_for(opp).await;
        assert_eq!(codes, vec![code.clone()], "Opportunity for {code}");
        assert!(w.deals_for(opp).is_empty(), "{code}: nothing created");
        assert!(w.h.sf_str("Opportunity", opp, "PRM_Deal_Id__c").is_none());
    }
    let entry = &w.h.log(LogCode::DealUserInactive).await[0];
    // the email masked (docs/integration-log.md), the user's status and id in full
    assert!(
        entry.message.contains("b***@partner.example")
            && !entry.message.contains("bob@")
            && entry.message.contains("pending")
            && entry.message.contains("PRM_Partner_Email__c"),
        "{}",
        entry.message
    );
    assert!(entry
        .link
        .as_deref()
        .unwrap()
        .ends_with(&format!("/lightning/r/Opportunity/{}/view", ids[3].1)));
    assert!(!entry.fix.is_empty());
    assert!(w.h.prm.list(Collection::Deals).is_empty());

    // fixing the Opportunity in Salesforce imports it on the next run
    w.primary_role(&no_primary);
    w.h.sf.update(
        "Opportunity",
        &no_primary,
        obj(json!({"Description": "primary contact added"})),
    );
    let report = w.h.sync_deals().await;
    assert_eq!(report.counts.created.prm, 1, "{report:?}");
    assert_eq!(w.deals_for(&no_primary).len(), 1);
    // the others are not retried (and not logged again) while unchanged
    assert_eq!(w.codes_for(&ids[0].1).await.len(), 1);
}

#[tokio::test]
async fn the_distributor_module_switched_off_rejects_distributor_deals() {
    let w = world().await;
    w.h.prm.set_settings(json!({
        "distributor_module": {"enabled": false, "partner_email_optional_for_distributor_owned": false},
        "deal_fields": [{"name": "name", "required": true, "values": null}, {"name": "stage", "required": true, "values": ["Prospecting"]}],
        "organization_fields": [], "person_fields": []
    }));
    let owned = w.opportunity("Dist owned", json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "dist@dist.example"}));
    let report = w.h.sync_deals().await;
    assert_eq!(report.status, "succeeded");
    assert!(w
        .codes_for(&owned)
        .await
        .contains(&"deal_distributor_module_disabled".to_string()));
    assert!(w.deals_for(&owned).is_empty());
}

#[tokio::test]
async fn valid_opportunities_become_deals_with_the_right_owner_and_organizations() {
    let w = world().await;
    let partner_owned = w.opportunity(
        "Big Deal",
        json!({"StageName": "Proposal/Price Quote", "Amount": 12500.5}),
    );
    let dist_owned = w.opportunity(
        "Dist Deal",
        json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "dist@dist.example"}),
    );
    let report = w.h.sync_deals().await;
    assert_eq!(report.status, "succeeded", "{:?}", report.message);
    assert_eq!(
        report.counts.created.prm,
        2,
        "{:?}",
        w.h.log(LogCode::DealUserNotFound).await
    );

    let people = w.h.prm.list(Collection::People);
    let id_of = |email: &str| people.iter().find(|p| p["email"] == email).unwrap()["id"].clone();
    let org_of = |email: &str| {
        people.iter().find(|p| p["email"] == email).unwrap()["organization_id"].clone()
    };

    let d = &w.deals_for(&partner_owned)[0];
    assert_eq!(d["owner_type"], "partner");
    assert_eq!(d["partner_user_id"], id_of("alice@partner.example"));
    assert_eq!(
        d["partner_organization_id"],
        org_of("alice@partner.example")
    );
    assert_eq!(d["stage"], "Proposal");
    assert_eq!(d["amount"], 12500.5);
    assert_eq!(d["close_date"], "2026-12-31");
    assert_eq!(d["customer"]["company"], "Customer Co");
    assert_eq!(d["customer"]["last_name"], "Primary");
    assert_eq!(d["customer"]["email"], "pat@customer.example");
    assert_eq!(
        w.h.sf_str("Opportunity", &partner_owned, "PRM_Deal_Id__c"),
        d["id"].as_str().map(str::to_string)
    );
    assert_eq!(
        w.h.sf_str("Opportunity", &partner_owned, "PRM_Registration_Status__c")
            .as_deref(),
        Some("Pending")
    );

    let d = &w.deals_for(&dist_owned)[0];
    assert_eq!(d["owner_type"], "distributor");
    assert_eq!(d["distributor_user_id"], id_of("dist@dist.example"));
    assert_eq!(
        d["distributor_organization_id"],
        org_of("dist@dist.example")
    );
    assert_eq!(d["partner_user_id"], id_of("alice@partner.example"));
    assert_eq!(w.h.log(LogCode::DealImported).await.len(), 2);
}

#[tokio::test]
async fn partner_email_may_be_omitted_for_distributor_deals_when_the_settings_allow() {
    let w = world().await;
    w.h.prm.set_settings(json!({
        "distributor_module": {"enabled": true, "partner_email_optional_for_distributor_owned": true},
        "deal_fields": [{"name": "name", "required": true, "values": null}, {"name": "stage", "required": true, "values": ["Prospecting"]}],
        "organization_fields": [], "person_fields": []
    }));
    let opp = w.opportunity(
        "No partner",
        json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "dist@dist.example", "PRM_Partner_Email__c": null}),
    );
    let report = w.h.sync_deals().await;
    assert_eq!(
        report.counts.created.prm,
        1,
        "{:?}",
        w.codes_for(&opp).await
    );
    let d = &w.deals_for(&opp)[0];
    assert_eq!(d["owner_type"], "distributor");
    assert!(d.get("partner_user_id").is_none_or(Value::is_null));
}

#[tokio::test]
async fn an_opportunity_is_imported_once_whatever_repeats_or_fails() {
    let w = world().await;
    let opps: Vec<String> = (0..3)
        .map(|i| w.opportunity(&format!("Once {i}"), json!({})))
        .collect();
    // each write failing once in turn, right after it was made
    for n in 1..=6 {
        let crash = Crash::new(n);
        let ctx = w.h.crashing_ctx(&crash);
        let _ = prmsync_engine::run_integration(
            &ctx,
            prmsync_mapping::Integration::Deals,
            prmsync_engine::RunOptions {
                mode: RunMode::Full,
                dry_run: false,
                run_id: None,
                allow_mass_change: false,
            },
        )
        .await;
    }
    // two overlapping runs
    let (a, b) = tokio::join!(w.h.sync_deals(), w.h.sync_deals());
    assert!(a.status == "succeeded" || b.status == "succeeded");
    w.h.sync_deals().await;
    for opp in &opps {
        assert_eq!(w.deals_for(opp).len(), 1, "exactly one deal for {opp}");
        assert!(w.h.sf_str("Opportunity", opp, "PRM_Deal_Id__c").is_some());
    }
    assert_eq!(w.h.prm.list(Collection::Deals).len(), 3);
}

#[tokio::test]
async fn stage_and_amount_flow_to_the_deal_and_registration_status_to_salesforce() {
    let w = world().await;
    let opp = w.opportunity("Moving", json!({}));
    w.h.sync_deals().await;
    let deal = w.deals_for(&opp)[0]["id"].as_str().unwrap().to_string();

    w.h.sf.update(
        "Opportunity",
        &opp,
        obj(json!({"StageName": "Negotiation/Review", "Amount": 7000})),
    );
    let report = w.h.sync_deals().await;
    assert_eq!(report.counts.updated.prm, 1, "{report:?}");
    let d = w.h.prm_get(Collection::Deals, &deal);
    assert_eq!(d["stage"], "Negotiation");
    assert_eq!(d["amount"], 7000);

    w.h.prm.set_registration_status(&deal, "approved");
    let report = w.h.sync_deals().await;
    assert_eq!(report.counts.updated.crm, 1, "{report:?}");
    assert_eq!(
        w.h.sf_str("Opportunity", &opp, "PRM_Registration_Status__c")
            .as_deref(),
        Some("Approved")
    );
    // settled
    let report = w.h.sync_deals().await;
    assert_eq!(report.counts.writes(), 0);
}

#[tokio::test]
async fn sync_record_imports_just_that_opportunity() {
    let w = world().await;
    let one = w.opportunity("Just me", json!({}));
    let other = w.opportunity("Not me", json!({}));
    let report = prmsync_engine::sync_record(
        &w.h.ctx(),
        &prmsync_engine::RecordRef::Crm(prmsync_mapping::ObjectKind::Deal, one.clone()),
        false,
    )
    .await;
    assert_eq!(report.status, "succeeded", "{:?}", report.message);
    assert_eq!(report.counts.created.prm, 1);
    assert_eq!(w.deals_for(&one).len(), 1);
    assert!(w.deals_for(&other).is_empty());
    assert!(w.h.sf_str("Opportunity", &one, "PRM_Deal_Id__c").is_some());
    // a rejected record is tried again on request, without waiting for a change
    let bad = w.opportunity(
        "Bad",
        json!({"PRM_Partner_Email__c": "bob@partner.example"}),
    );
    w.h.sync_deals().await;
    assert_eq!(w.codes_for(&bad).await.len(), 1);
    let r = prmsync_engine::sync_record(
        &w.h.ctx(),
        &prmsync_engine::RecordRef::Crm(prmsync_mapping::ObjectKind::Deal, bad.clone()),
        false,
    )
    .await;
    assert_eq!(r.counts.errors, 1);
    assert_eq!(w.codes_for(&bad).await.len(), 2);
}

#[tokio::test]
async fn a_deal_the_prm_rejects_is_logged_with_its_message() {
    let w = world().await;
    let opp = w.opportunity("Refused", json!({}));
    w.h.prm
        .faults()
        .fail_nth(Some("deals.create"), 1, 422, "validation_failed");
    let report = w.h.sync_deals().await;
    assert_eq!(report.status, "succeeded");
    assert_eq!(
        w.codes_for(&opp).await,
        vec!["deal_rejected_by_prm".to_string()]
    );
    let e = &w.h.log(LogCode::DealRejectedByPrm).await[0];
    // the Opportunity's name masked, its Id in full; the deal sent is not kept
    assert!(
        e.message.contains("Opportunity R*** (") && e.message.contains(&opp),
        "{}",
        e.message
    );
    assert!(e.details.get("body").is_none(), "{}", e.details);
    assert_eq!(e.details["code"], "validation_failed");
    assert!(w.deals_for(&opp).is_empty());
    // corrected (here: the PRM accepts it now) and changed: imported
    w.h.sf
        .update("Opportunity", &opp, obj(json!({"Amount": 6000})));
    assert_eq!(w.h.sync_deals().await.counts.created.prm, 1);
}
