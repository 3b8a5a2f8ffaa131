//! A mapping change never erases a value. Links made before a field was mapped have no
//! snapshot entry for it; when the field is mapped, a run that reads only one side of the
//! pair reads the other too and settles the field from both sides as a first link would,
//! whatever its direction (`both`, `to_crm`, `to_prm`, `on_create`). Removing the field
//! stops its sync and touches no value. On one machine and through the Lambda workers.

mod common;

use std::sync::Arc;

use common::*;
use prmsync_engine::{RunMode, SyncContext};
use prmsync_mapping::config::{Direction, FieldMapping};
use prmsync_mapping::MappingConfig;
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Deployment {
    OneMachine,
    Lambda,
}

/// The default mapping without the city field, and with it in `direction`.
fn mappings(direction: Direction) -> (MappingConfig, MappingConfig) {
    let with = {
        let mut m = MappingConfig::default();
        let city = m
            .organizations
            .fields
            .iter_mut()
            .find(|f| f.prm.as_deref() == Some("city"))
            .expect("the default mapping maps city");
        city.direction = direction;
        m
    };
    let mut without = with.clone();
    without
        .organizations
        .fields
        .retain(|f: &FieldMapping| f.prm.as_deref() != Some("city"));
    (without, with)
}

fn ctx_with(h: &Harness, mapping: &MappingConfig) -> SyncContext {
    let mut ctx = h.ctx();
    ctx.mapping = Arc::new(mapping.clone());
    ctx
}

async fn run(h: &Harness, mapping: &MappingConfig, deployment: Deployment) {
    let ctx = ctx_with(h, mapping);
    match deployment {
        Deployment::OneMachine => assert_succeeded(&h.sync_ctx(&ctx, RunMode::Incremental).await),
        Deployment::Lambda => {
            let out = h.lambda_sync(&ctx, RunMode::Incremental).await;
            assert!(out.chunks.iter().all(|c| c.parked == 0 && c.retried == 0));
        }
    }
}

/// An Account (city Lisbon) linked to its PRM organization (city Porto) while the city
/// was not mapped. Returns (Account Id, organization id).
async fn linked_while_unmapped(
    h: &Harness,
    without: &MappingConfig,
    d: Deployment,
) -> (String, String) {
    let account = h.account(
        "Acme",
        Some("Active Partner"),
        json!({"BillingCity": "Lisbon"}),
    );
    run(h, without, d).await;
    let org = h.sf_str("Account", &account, "PRM_Id__c").expect("linked");
    h.prm
        .update(Collection::Organizations, &org, json!({"city": "Porto"}));
    run(h, without, d).await;
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["city"],
        json!("Porto")
    );
    assert_eq!(
        h.sf_str("Account", &account, "BillingCity").as_deref(),
        Some("Lisbon")
    );
    (account, org)
}

fn cities(h: &Harness, account: &str, org: &str) -> (Option<String>, Option<String>) {
    (
        h.sf_str("Account", account, "BillingCity"),
        h.prm_get(Collection::Organizations, org)["city"]
            .as_str()
            .map(str::to_string),
    )
}

/// Maps the city in `direction` and changes one other field on `changed` side only.
async fn mapped_then_one_side_changes(direction: Direction, crm_changes: bool, d: Deployment) {
    // GIVEN a pair linked before the city was mapped, the two cities different
    let h = Harness::new().await;
    let (without, with) = mappings(direction);
    let (account, org) = linked_while_unmapped(&h, &without, d).await;

    // WHEN the city is mapped and only one side changes (another field)
    if crm_changes {
        h.sf.update("Account", &account, obj(json!({"Name": "Acme Renamed"})));
    } else {
        h.prm.update(
            Collection::Organizations,
            &org,
            json!({"name": "Acme Renamed"}),
        );
    }
    run(&h, &with, d).await;

    // THEN the other change synced, and the city settled from both sides: nothing erased
    assert_eq!(
        h.sf_str("Account", &account, "Name").as_deref(),
        Some("Acme Renamed")
    );
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        json!("Acme Renamed")
    );
    let expected = match direction {
        // the owner's value on both sides
        Direction::ToCrm => (Some("Porto".into()), Some("Porto".into())),
        Direction::ToPrm => (Some("Lisbon".into()), Some("Lisbon".into())),
        // the mapping's first-link winner (Salesforce)
        Direction::Both => (Some("Lisbon".into()), Some("Lisbon".into())),
        // written only when a record is created: both keep theirs
        Direction::OnCreate => (Some("Lisbon".into()), Some("Porto".into())),
    };
    assert_eq!(
        cities(&h, &account, &org),
        expected,
        "{direction:?} on {d:?}"
    );

    // and a run after it writes nothing more
    h.sf.reset_api_calls();
    run(&h, &with, d).await;
    assert_eq!(cities(&h, &account, &org), expected);
    assert_eq!(h.sf.api_calls().kind("composite_update"), 0);

    // WHEN the field is removed again and both cities change
    h.sf.update("Account", &account, obj(json!({"BillingCity": "Faro"})));
    h.prm
        .update(Collection::Organizations, &org, json!({"city": "Braga"}));
    run(&h, &without, d).await;

    // THEN its sync stopped: each side keeps its own value
    assert_eq!(
        cities(&h, &account, &org),
        (Some("Faro".into()), Some("Braga".into()))
    );
}

#[tokio::test]
async fn a_newly_mapped_to_crm_field_takes_the_prm_value_when_only_salesforce_changed() {
    for d in [Deployment::OneMachine, Deployment::Lambda] {
        mapped_then_one_side_changes(Direction::ToCrm, true, d).await;
    }
}

#[tokio::test]
async fn a_newly_mapped_to_prm_field_takes_the_salesforce_value_when_only_the_prm_changed() {
    for d in [Deployment::OneMachine, Deployment::Lambda] {
        mapped_then_one_side_changes(Direction::ToPrm, false, d).await;
    }
}

#[tokio::test]
async fn a_newly_mapped_both_field_settles_as_a_first_link_whichever_side_changed() {
    for d in [Deployment::OneMachine, Deployment::Lambda] {
        mapped_then_one_side_changes(Direction::Both, false, d).await;
        mapped_then_one_side_changes(Direction::Both, true, d).await;
    }
}

#[tokio::test]
async fn a_newly_mapped_on_create_field_touches_neither_side() {
    for d in [Deployment::OneMachine, Deployment::Lambda] {
        mapped_then_one_side_changes(Direction::OnCreate, true, d).await;
        mapped_then_one_side_changes(Direction::OnCreate, false, d).await;
    }
}
