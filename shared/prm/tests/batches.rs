//! Batch writes (`POST /v1/{collection}/batch`) against the PRM simulator: items applied
//! or refused each on its own, a batch sent again after a lost answer converging without
//! duplicates, batches no larger than the PRM's `max`, and a PRM without batches written
//! record by record, through the engine's port as the sync uses it.

use std::time::Duration;

use prmsync_engine::ports::{FailureClass, Prm};
use prmsync_prm::{BatchWrite, Collection, PrmClient, PrmConfig, PrmError};
use prmsync_simulators::prm::{Collection as SimCollection, PrmSim};
use serde_json::{json, Map, Value};

const TOKEN: &str = "sim-token";

async fn setup(batch: Option<usize>) -> (PrmSim, PrmClient) {
    let sim = PrmSim::new(TOKEN);
    sim.set_batches(batch);
    let base = sim.start().await.expect("start sim");
    let mut cfg = PrmConfig::new(base, TOKEN);
    cfg.max_retries = 3;
    cfg.timeout = Duration::from_secs(5);
    (sim, PrmClient::new(cfg).expect("client"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn org(name: &str) -> Map<String, Value> {
    obj(json!({"name": name, "kind": "partner", "status": "active"}))
}

#[tokio::test]
async fn each_item_is_applied_or_refused_on_its_own() {
    let (sim, c) = setup(Some(10)).await;
    let existing = sim.insert(
        SimCollection::Organizations,
        json!({"name": "Old", "kind": "partner", "status": "active"}),
    );
    let gone = sim.insert(
        SimCollection::Organizations,
        json!({"name": "Gone", "kind": "partner", "status": "active"}),
    );
    sim.delete(SimCollection::Organizations, &gone);
    let (good, bad, rename, stale) = (
        org("Made in a batch"),
        obj(json!({"name": "No kind", "kind": "reseller"})),
        obj(json!({"name": "Renamed"})),
        obj(json!({"name": "Stale"})),
    );
    let results = c
        .batch(
            Collection::Organizations,
            &[
                BatchWrite::Create {
                    idempotency_key: "k-good",
                    record: &good,
                },
                BatchWrite::Create {
                    idempotency_key: "k-bad",
                    record: &bad,
                },
                BatchWrite::Update {
                    id: &existing,
                    if_match: 1,
                    record: &rename,
                },
                BatchWrite::Update {
                    id: &existing,
                    if_match: 1,
                    record: &stale,
                },
                BatchWrite::Update {
                    id: "org_missing",
                    if_match: 1,
                    record: &rename,
                },
                BatchWrite::Update {
                    id: &gone,
                    if_match: 2,
                    record: &rename,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    let made = results[0].as_ref().expect("created");
    assert_eq!(made.field("name"), "Made in a batch");
    assert!(
        matches!(&results[1], Err(PrmError::Validation { fields, .. }) if fields.iter().any(|f| f.field == "kind")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap().version, 2);
    assert_eq!(
        results[3],
        Err(PrmError::VersionConflict),
        "the first update moved the version"
    );
    assert_eq!(results[4], Err(PrmError::NotFound));
    assert_eq!(results[5], Err(PrmError::Deleted));
    // the refused items changed nothing, the others were applied
    assert_eq!(
        sim.get(SimCollection::Organizations, &existing).unwrap()["name"],
        "Renamed"
    );
    // the old one and the one made (the deleted one stays a tombstone)
    assert_eq!(sim.list(SimCollection::Organizations).len(), 2);
    assert_eq!(sim.api_calls().count("batch"), 1);
}

#[tokio::test]
async fn a_batch_sent_again_after_a_lost_answer_converges_without_duplicates() {
    let (sim, c) = setup(Some(10)).await;
    let existing = sim.insert(
        SimCollection::Organizations,
        json!({"name": "Old", "kind": "partner", "status": "active"}),
    );
    // the PRM applies the batch, then the answer is lost (502); the client sends it again
    sim.faults()
        .fail_nth_after_write(Some("batch"), 1, 502, "bad_gateway");
    let (new, rename) = (org("Once"), obj(json!({"name": "Renamed once"})));
    let results = c
        .batch(
            Collection::Organizations,
            &[
                BatchWrite::Create {
                    idempotency_key: "k-once",
                    record: &new,
                },
                BatchWrite::Update {
                    id: &existing,
                    if_match: 1,
                    record: &rename,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(sim.api_calls().count("batch"), 2, "sent twice");
    // the create replayed its key; the update answered 412 and was found applied
    let created = results[0].as_ref().expect("the first record");
    let updated = results[1].as_ref().expect("the update went through");
    assert_eq!(updated.version, 2);
    let named_once: Vec<Value> = sim
        .list(SimCollection::Organizations)
        .into_iter()
        .filter(|o| o["name"] == "Once")
        .collect();
    assert_eq!(named_once.len(), 1, "no twin");
    assert_eq!(named_once[0]["id"], created.id.as_str());
}

#[tokio::test]
async fn the_port_writes_in_batches_of_the_prms_max_and_record_by_record_without_them() {
    // a PRM with batches of at most 3: 7 creates are 3 batches, results in order
    let (sim, c) = setup(Some(3)).await;
    let items: Vec<(String, Map<String, Value>)> = (0..7)
        .map(|i| (format!("key-{i}"), org(&format!("Org {i}"))))
        .collect();
    let mut with_a_bad_one = items.clone();
    with_a_bad_one[4].1 = obj(json!({"name": "Bad", "kind": "reseller"}));
    let results = Prm::create_many(&c, "organizations", with_a_bad_one, 2).await;
    assert_eq!(results.len(), 7);
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (4, Ok(Err(failure))) => assert_eq!(failure.class, FailureClass::Data),
            (_, Ok(Ok(rec))) => assert_eq!(rec.fields["name"], format!("Org {i}")),
            other => panic!("{other:?}"),
        }
    }
    let calls = sim.api_calls();
    assert_eq!(calls.count("batch"), 3);
    assert_eq!(calls.count("create"), 0);
    assert_eq!(calls.count("settings"), 1, "the settings are read once");
    // updates go the same way
    let updates: Vec<(String, i64, Map<String, Value>)> = results
        .iter()
        .filter_map(|r| r.as_ref().ok()?.as_ref().ok())
        .map(|rec| {
            (
                rec.id.clone(),
                rec.version,
                obj(json!({"status": "inactive"})),
            )
        })
        .collect();
    let n = updates.len();
    let updated = Prm::update_many(&c, "organizations", updates, 2).await;
    assert!(updated
        .iter()
        .all(|r| matches!(r, Ok(Ok(rec)) if rec.version == 2)));
    assert_eq!(sim.api_calls().count("batch"), 3 + n.div_ceil(3) as u64);

    // a PRM without batches: one create per record, and the same results
    let (plain, c) = setup(None).await;
    let results = Prm::create_many(&c, "organizations", items, 2).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Ok(_)))));
    let calls = plain.api_calls();
    assert_eq!((calls.count("create"), calls.count("batch")), (7, 0));
}

#[tokio::test]
async fn the_prm_refuses_a_batch_too_large_or_not_a_list_and_applies_nothing() {
    let (sim, _) = setup(Some(2)).await;
    let base = sim.start().await.unwrap();
    let http = reqwest::Client::new();
    let send = |body: Value| {
        http.post(format!("{base}/v1/organizations/batch"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let item = json!({"op": "create", "idempotency_key": "k", "record": {"name": "X", "kind": "partner", "status": "active"}});
    assert_eq!(
        send(json!({"items": [item, item, item]}))
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(send(json!({"items": "no"})).await.unwrap().status(), 422);
    assert_eq!(send(json!({"items": []})).await.unwrap().status(), 422);
    assert!(sim.list(SimCollection::Organizations).is_empty());
    // and a PRM that offers no batches has no such path
    sim.set_batches(None);
    assert_eq!(send(json!({"items": [item]})).await.unwrap().status(), 404);
}
