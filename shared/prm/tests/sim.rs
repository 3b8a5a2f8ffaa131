//! The client against the PRM simulator.

use std::time::Duration;

use prmsync_prm::{Collection, ListQuery, PrmClient, PrmConfig, PrmError};
use prmsync_simulators::prm::{Collection as SimCollection, PrmSim};
use serde_json::{json, Map, Value};

const TOKEN: &str = "sim-token";

async fn setup() -> (PrmSim, PrmClient) {
    let sim = PrmSim::new(TOKEN);
    let base = sim.start().await.expect("start sim");
    let mut cfg = PrmConfig::new(base, TOKEN);
    cfg.max_retries = 3;
    cfg.timeout = Duration::from_secs(5);
    (sim, PrmClient::new(cfg).expect("client"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn create_update_delete_round_trip() {
    let (sim, c) = setup().await;
    let org = c
        .create(
            Collection::Organizations,
            "001A",
            &obj(json!({"name": "Acme", "kind": "partner", "status": "active", "crm_id": "001A"})),
        )
        .await
        .unwrap();
    assert_eq!(org.version, 1);
    assert_eq!(org.crm_id.as_deref(), Some("001A"));
    assert_eq!(org.field("kind"), "partner");

    // Same key again: the same record, whatever the body.
    let again = c
        .create(
            Collection::Organizations,
            "001A",
            &obj(json!({"name": "Other"})),
        )
        .await
        .unwrap();
    assert_eq!(again, org);
    assert_eq!(sim.list(SimCollection::Organizations).len(), 1);

    let updated = c
        .update(
            Collection::Organizations,
            &org.id,
            1,
            &obj(json!({"city": "Lyon"})),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(updated.updated_at > org.updated_at);
    assert_eq!(
        c.update(
            Collection::Organizations,
            &org.id,
            1,
            &obj(json!({"city": "Nice"}))
        )
        .await
        .unwrap_err(),
        PrmError::VersionConflict
    );

    c.delete(Collection::Organizations, &org.id).await.unwrap();
    let tomb = c
        .get(Collection::Organizations, &org.id)
        .await
        .unwrap()
        .unwrap();
    assert!(tomb.is_deleted());
    assert_eq!(
        c.update(
            Collection::Organizations,
            &org.id,
            3,
            &obj(json!({"city": "Nice"}))
        )
        .await
        .unwrap_err(),
        PrmError::Deleted
    );
    assert_eq!(
        c.get(Collection::Organizations, "org_404").await.unwrap(),
        None
    );

    let since = ListQuery {
        updated_since: Some(tomb.updated_at),
        ..ListQuery::default()
    };
    let changed = c.list(Collection::Organizations, &since).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].is_deleted());
    assert_eq!(c.calls(), sim.api_calls().total);
}

#[tokio::test]
async fn list_pages_through_the_simulator() {
    let (sim, c) = setup().await;
    let org = sim.insert(SimCollection::Organizations, json!({"name": "Acme"}));
    for i in 0..25 {
        sim.insert(
            SimCollection::People,
            json!({"organization_id": org, "first_name": "P", "last_name": format!("{i}"),
                   "email": format!("p{i}@acme.test")}),
        );
    }
    let q = ListQuery {
        limit: Some(10),
        organization_id: Some(org.clone()),
        ..ListQuery::default()
    };
    let all = c.list(Collection::People, &q).await.unwrap();
    assert_eq!(all.len(), 25);
    assert!(all
        .windows(2)
        .all(|w| (w[0].updated_at, &w[0].id) < (w[1].updated_at, &w[1].id)));
    assert_eq!(c.calls(), 3);

    let by_email = ListQuery {
        email: Some("P7@ACME.test".into()),
        ..ListQuery::default()
    };
    let found = c.list(Collection::People, &by_email).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field("last_name"), "7");

    let ids = ListQuery {
        ids: all
            .iter()
            .map(|r| r.id.clone())
            .chain((0..300).map(|i| format!("x{i}")))
            .collect(),
        ..ListQuery::default()
    };
    assert_eq!(c.list(Collection::People, &ids).await.unwrap().len(), 25);
}

#[tokio::test]
async fn validation_groups_settings_and_auth() {
    let (sim, c) = setup().await;
    sim.insert(
        SimCollection::Groups,
        json!({"kind": "partner", "name": "Gold", "modules": ["deal_registration", "mdf"]}),
    );
    let groups = c.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].modules, ["deal_registration", "mdf"]);
    let settings = c.settings().await.unwrap();
    assert!(settings.field(Collection::Deals, "stage").unwrap().required);

    let err = c
        .create(
            Collection::Deals,
            "006X",
            &obj(json!({"name": "Deal", "stage": "Won", "registration_status": "approved"})),
        )
        .await
        .unwrap_err();
    let PrmError::Validation { fields, .. } = err else {
        panic!("{err:?}")
    };
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["registration_status", "stage"]);

    let base = sim.start().await.unwrap();
    let bad = PrmClient::new(PrmConfig::new(base, "wrong")).unwrap();
    assert_eq!(bad.settings().await.unwrap_err(), PrmError::Unauthorized);
}

#[tokio::test]
async fn retries_converge_after_lost_responses() {
    let (sim, c) = setup().await;
    // A create whose response is lost: the retry replays the idempotency key.
    sim.faults()
        .fail_nth_after_write(Some("create"), 1, 502, "internal");
    let org = c
        .create(
            Collection::Organizations,
            "k-1",
            &obj(json!({"name": "Acme"})),
        )
        .await
        .unwrap();
    assert_eq!(sim.list(SimCollection::Organizations).len(), 1);
    assert_eq!(sim.api_calls().count("create"), 2);

    // An update whose response is lost: the retry meets 412, the client sees it applied.
    sim.faults()
        .fail_nth_after_write(Some("update"), 1, 503, "internal");
    let r = c
        .update(
            Collection::Organizations,
            &org.id,
            1,
            &obj(json!({"city": "Lyon", "custom": {"tier": "gold"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.field("city"), "Lyon");

    // Rate limiting: the client waits Retry-After and succeeds.
    sim.faults().rate_limit_next(1, 1);
    assert!(c
        .get(Collection::Organizations, &org.id)
        .await
        .unwrap()
        .is_some());

    // Injected 503s are retried.
    sim.faults().fail_nth(Some("list"), 1, 503, "internal");
    assert_eq!(
        c.list(Collection::Organizations, &ListQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
}
