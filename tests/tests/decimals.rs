//! End-to-end: a decimal Salesforce rounds to its field's scale (the simulator rounds as
//! Salesforce saves it) does not come back as a change, and a number field mapped without
//! the scale Salesforce keeps stops the first full run with the fix.

mod common;

use common::*;
use prmsync_engine::RunMode;
use prmsync_simulators::prm::Collection;
use prmsync_simulators::salesforce::{FieldDef, FieldType};
use serde_json::json;

const FIELD: &str = "Discount__c";
const SCALE: usize = 2;

#[tokio::test]
async fn a_decimal_salesforce_rounds_is_written_once() {
    // GIVEN a number field of scale 2 mapped from a PRM custom field, and a linked
    // organization
    let src = format!(
        "{}\n[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"{FIELD}\"\ntype = \"number\"\nscale = {SCALE}\n",
        prmsync_mapping::config::DEFAULT_MAPPING
    );
    let mapping = prmsync_mapping::MappingConfig::parse(&src, "mapping.toml").unwrap();
    let h = Harness::with_mapping(mapping).await;
    // Salesforce keeps 2 places of this field: it rounds what it is sent when it saves it.
    h.sf.add_field(
        "Account",
        FieldDef::new(FIELD, FieldType::Double).scale(SCALE as u32),
    );
    let org = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Rounded", "custom": {"discount": 10}}),
    );
    let ctx = h.ctx();
    assert_succeeded(&h.sync_ctx(&ctx, RunMode::Incremental).await);
    let acc = h.prm_get(Collection::Organizations, &org)["crm_id"]
        .as_str()
        .expect("linked")
        .to_string();
    assert_eq!(h.sf_get("Account", &acc)[FIELD].as_f64(), Some(10.0));

    // WHEN the PRM value changes to one with more places than the field keeps, and the
    // sync runs twice
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"custom": {"discount": 12.345}}),
    );
    let first = h.sync_ctx(&ctx, RunMode::Incremental).await;
    let second = h.sync_ctx(&ctx, RunMode::Incremental).await;

    // THEN the first run writes Salesforce once, and the second sees no change
    assert_succeeded(&first);
    assert_succeeded(&second);
    assert_eq!(h.sf_get("Account", &acc)[FIELD].as_f64(), Some(12.35));
    assert_eq!(total(&first, |c| c.writes()), 1, "{first:?}");
    assert_eq!(total(&first, |c| c.updated.crm), 1, "{first:?}");
    assert_eq!(total(&second, |c| c.writes()), 0, "{second:?}");
    assert_eq!(total(&second, |c| c.conflicts), 0, "{second:?}");
    // and the PRM keeps its value: it equals Salesforce's at the field's scale
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["custom"]["discount"],
        json!(12.345)
    );
}

#[tokio::test]
async fn a_full_run_stops_on_a_number_field_mapped_without_the_scale_salesforce_keeps() {
    // GIVEN the same field mapped without its scale
    let src = format!(
        "{}\n[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"{FIELD}\"\ntype = \"number\"\n",
        prmsync_mapping::config::DEFAULT_MAPPING
    );
    let mapping = prmsync_mapping::MappingConfig::parse(&src, "mapping.toml").unwrap();
    let h = Harness::with_mapping(mapping).await;
    h.sf.add_field(
        "Account",
        FieldDef::new(FIELD, FieldType::Double).scale(SCALE as u32),
    );
    h.org("partner", "active", "Rounded");

    // WHEN the first (full) run goes
    let reports = h.sync().await;

    // THEN it stops before writing, naming the field and the fix
    let orgs = &reports[0];
    assert_eq!(orgs.status, prmsync_engine::RunStatus::Failed);
    let m = orgs.message.as_deref().unwrap();
    assert!(
        m.contains("Account.Discount__c keeps 2 decimal places in Salesforce, but its mapping has no scale: set scale = 2"),
        "{m}"
    );
    assert!(h.sf_records("Account").is_empty());
}
