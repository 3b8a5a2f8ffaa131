//! Bulk API 2.0 ingest jobs against the Salesforce simulator: the values and per-record
//! results of a job equal those of sObject Collections.

mod common;

use std::time::Duration;

use common::{obj, setup};

use prmsync_salesforce::{IngestOperation, IngestOptions, RecordResult};
use prmsync_simulators::salesforce::{FieldDef, FieldType, SalesforceSim};
use serde_json::{json, Map, Value};

fn options() -> IngestOptions {
    IngestOptions {
        poll_initial: Duration::from_millis(2),
        poll_max: Duration::from_millis(20),
        ..IngestOptions::default()
    }
}

/// Every type the mapping writes, nulls, empty text and awkward characters.
fn changes(i: usize) -> Map<String, Value> {
    obj(json!({
        "Name": format!("Deal {i}, \"quoted\"\nsecond line"),
        "Amount": 1234.5 + i as f64,
        "CloseDate": "2026-12-24",
        "Seen__c": "2026-12-01T10:00:00.000+0000",
        "PRM_Export_Deal__c": i.is_multiple_of(2),
        "Seats__c": i,
        "Description": if i.is_multiple_of(3) { Value::Null } else { json!("") },
    }))
}

/// The stored values a write leaves, without what differs from record to record.
fn stored(sim: &SalesforceSim, id: &str) -> Map<String, Value> {
    let mut r = sim.get("Opportunity", id).unwrap();
    for k in [
        "Id",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "attributes",
    ] {
        r.remove(k);
    }
    r
}

#[tokio::test]
async fn a_job_writes_the_values_and_gives_the_results_that_collections_do() {
    let (sim, client) = setup().await;
    sim.add_field("Opportunity", FieldDef::new("Seats__c", FieldType::Int));
    sim.add_field("Opportunity", FieldDef::new("Seen__c", FieldType::Datetime));
    let base = json!({"Name": "Old", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Description": "old text"});
    let by_job: Vec<String> = (0..6)
        .map(|_| sim.insert("Opportunity", obj(base.clone())))
        .collect();
    let by_rest: Vec<String> = (0..6)
        .map(|_| sim.insert("Opportunity", obj(base.clone())))
        .collect();
    // the fourth of each: a value too long; the fifth: a restricted picklist value
    let rows = |ids: &[String]| -> Vec<(String, Map<String, Value>)> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut f = changes(i);
                if i == 3 {
                    f.insert("Name".into(), json!("x".repeat(300)));
                }
                if i == 4 {
                    f.insert("StageName".into(), json!("Not A Stage"));
                }
                (id.clone(), f)
            })
            .collect()
    };
    let rest = client.update("Opportunity", rows(&by_rest)).await.unwrap();
    let job_rows = rows(&by_job)
        .into_iter()
        .map(|(id, mut f)| {
            f.insert("Id".into(), json!(id));
            f
        })
        .collect();
    let before = sim.api_calls();
    let job = client
        .ingest("Opportunity", IngestOperation::Update, job_rows, &options())
        .await
        .unwrap();
    let after = sim.api_calls();
    assert_eq!(
        after.kind("bulk_ingest_create") - before.kind("bulk_ingest_create"),
        1
    );
    assert_eq!(
        after.kind("bulk_ingest_failed") - before.kind("bulk_ingest_failed"),
        1
    );

    let shape = |r: &RecordResult| {
        (
            r.is_success(),
            r.errors
                .iter()
                .map(|e| (e.status_code.clone(), e.message.clone(), e.fields.clone()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        job.iter().map(shape).collect::<Vec<_>>(),
        rest.iter().map(shape).collect::<Vec<_>>()
    );
    assert!(!job[3].is_success() && !job[4].is_success() && job[0].is_success());
    assert_eq!(job[0].id.as_deref(), Some(by_job[0].as_str()));
    for i in 0..6 {
        assert_eq!(
            stored(&sim, &by_job[i]),
            stored(&sim, &by_rest[i]),
            "record {i}"
        );
    }
    // null and the empty string both cleared the text; the others kept theirs as written
    assert_eq!(
        sim.get("Opportunity", &by_job[1]).unwrap()["Description"],
        Value::Null
    );
    assert_eq!(
        sim.get("Opportunity", &by_job[0]).unwrap()["Amount"],
        json!(1234.5)
    );
}

#[tokio::test]
async fn an_upsert_job_creates_and_updates_on_the_external_id_and_splits_at_the_upload_limit() {
    let (sim, client) = setup().await;
    let existing = sim.insert(
        "Account",
        obj(json!({"Name": "Kept", "PRM_Id__c": "org-0"})),
    );
    let rows: Vec<Map<String, Value>> = (0..50)
        .map(|i| obj(json!({"PRM_Id__c": format!("org-{i}"), "Name": format!("Org {i}")})))
        .collect();
    let small = IngestOptions {
        max_upload_bytes: 400,
        ..options()
    };
    let out = client
        .ingest(
            "Account",
            IngestOperation::Upsert {
                external_id_field: "PRM_Id__c",
            },
            rows,
            &small,
        )
        .await
        .unwrap();
    let jobs = sim.api_calls().kind("bulk_ingest_create");
    assert!(jobs > 1, "split over {jobs} jobs");
    assert_eq!(out.len(), 50);
    assert!(out.iter().all(RecordResult::is_success));
    assert_eq!(out[0].id.as_deref(), Some(existing.as_str()));
    assert_eq!(out[0].created, Some(false));
    assert!(out[1..].iter().all(|r| r.created == Some(true)));
    assert_eq!(sim.records("Account").len(), 50);
    for (i, r) in out.iter().enumerate() {
        let a = sim.get("Account", r.id.as_deref().unwrap()).unwrap();
        assert_eq!(a["Name"], json!(format!("Org {i}")));
    }
}

#[tokio::test]
async fn a_job_that_failed_whole_goes_through_collections_and_keeps_what_it_wrote() {
    let (sim, client) = setup().await;
    let ids: Vec<String> = (0..3)
        .map(|i| sim.insert("Account", obj(json!({ "Name": format!("A{i}") }))))
        .collect();
    let rows = |name: &str| -> Vec<Map<String, Value>> {
        ids.iter()
            .map(|id| obj(json!({"Id": id, "Name": name})))
            .collect()
    };
    // The job writes its first row, then fails; the Collections call for the other two
    // is refused as a whole: they fail, the first keeps its success.
    sim.fail_next_bulk_ingest("InternalServerError : try again", 1);
    sim.faults()
        .fail_nth(Some("composite_update"), 1, 400, "INVALID_FIELD");
    let out = client
        .ingest("Account", IngestOperation::Update, rows("B"), &options())
        .await
        .unwrap();
    assert!(out[0].is_success(), "{out:?}");
    assert_eq!(out[1].errors[0].status_code, "INVALID_FIELD");
    assert_eq!(out[2].errors[0].status_code, "INVALID_FIELD");
    assert_eq!(sim.get("Account", &ids[0]).unwrap()["Name"], "B");
    assert_eq!(sim.get("Account", &ids[1]).unwrap()["Name"], "A1");
    let notices = client.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("failed: InternalServerError : try again"));
    assert!(client.take_notices().is_empty(), "handed out once");

    // Nothing written and Collections refused too: the call's error, as Collections give it.
    sim.fail_next_bulk_ingest("InternalServerError : try again", 0);
    sim.faults()
        .fail_nth(Some("composite_update"), 1, 400, "INVALID_FIELD");
    let err = client
        .ingest("Account", IngestOperation::Update, rows("C"), &options())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_FIELD"));

    // Without faults the same write succeeds through a job alone.
    let before = sim.api_calls().kind("composite_update");
    let out = client
        .ingest("Account", IngestOperation::Update, rows("D"), &options())
        .await
        .unwrap();
    assert!(out.iter().all(RecordResult::is_success));
    assert_eq!(sim.api_calls().kind("composite_update"), before);
}
