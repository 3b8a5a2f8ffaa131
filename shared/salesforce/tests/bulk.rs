//! Bulk API 2.0 query jobs against the Salesforce simulator.

mod common;

use std::time::Duration;

use common::{obj, setup};

use prmsync_salesforce::{BulkJobError, BulkQueryOptions, CallCounts, SObject, SfError};
use prmsync_simulators::salesforce::{FieldDef, FieldType, SalesforceSim};
use serde_json::{json, Value};

fn opts(max_records: Option<u32>) -> BulkQueryOptions {
    BulkQueryOptions {
        max_records,
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(50),
        deadline: Duration::from_secs(10),
    }
}

fn delta(after: CallCounts, before: CallCounts) -> (u64, u64, u64) {
    (
        after.reads - before.reads,
        after.writes - before.writes,
        after.auth - before.auth,
    )
}

/// 300 Opportunities with every type the simulator has, awkward text and nulls; every
/// seventh one deleted.
fn seed(sim: &SalesforceSim) {
    sim.add_field("Opportunity", FieldDef::new("Seats__c", FieldType::Int));
    sim.add_field(
        "Opportunity",
        FieldDef::new("Probability__c", FieldType::Double),
    );
    let account = sim.insert("Account", obj(json!({"Name": "Acme, Inc."})));
    for i in 0..300i64 {
        let name = match i % 5 {
            0 => format!("Deal {i}, \"big\" one"),
            1 => format!("Deal {i}\nsecond line"),
            2 => format!("Ünïcödé {i} ✓"),
            3 => format!("  spaced {i}  "),
            _ => format!("Deal {i}"),
        };
        let stage = ["Prospecting", "Qualification", "Closed Won"][(i % 3) as usize];
        let mut fields = json!({
            "Name": name,
            "StageName": stage,
            "CloseDate": format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
            "PRM_Sync__c": i % 2 == 0,
            "PRM_Export_Deal__c": i % 3 == 0,
        });
        if i % 4 != 0 {
            fields["Amount"] = if i % 2 == 0 {
                json!(i * 1000)
            } else {
                json!(i as f64 + 0.5)
            };
            fields["Seats__c"] = json!(i - 150);
            fields["Probability__c"] = json!((i % 10) as f64 / 10.0 + 0.05);
            fields["Description"] = json!(format!("line one\r\nline \"two\", {i}"));
            fields["AccountId"] = json!(account);
        }
        let id = sim.insert("Opportunity", obj(fields));
        if i % 7 == 3 {
            sim.delete("Opportunity", &id);
        }
    }
}

const SOQL: &str = "SELECT Id, Name, StageName, Amount, Seats__c, Probability__c, CloseDate, \
                    PRM_Sync__c, PRM_Export_Deal__c, Description, AccountId, IsDeleted, \
                    CreatedDate, SystemModstamp FROM Opportunity";

#[tokio::test]
async fn bulk_records_equal_rest_records_across_pages_with_exact_calls() {
    let (sim, client) = setup().await;
    seed(&sim);
    let describe = client.describe("Opportunity").await.unwrap();
    sim.set_bulk_query_polls(3);
    sim.reset_api_calls();

    let before = client.calls();
    let mut pages: Vec<Vec<SObject>> = Vec::new();
    client
        .bulk_query_pages_with(SOQL, true, &describe, &opts(Some(70)), |p| pages.push(p))
        .await
        .unwrap();
    // One create (a write), three polls, five result sets of at most 70 (300 = 4 * 70 + 20).
    assert_eq!(delta(client.calls(), before), (3 + 5, 1, 0));
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![70, 70, 70, 70, 20]);
    let calls = sim.api_calls();
    assert_eq!(calls.kind("bulk_query_create"), 1);
    assert_eq!(calls.kind("bulk_query_info"), 3);
    assert_eq!(calls.kind("bulk_query_results"), 5);
    assert_eq!(calls.total, 9);

    let bulk: Vec<SObject> = pages.into_iter().flatten().collect();
    let rest = client.query_all(SOQL).await.unwrap();
    assert_eq!(rest.len(), 300);
    assert_eq!(bulk.len(), rest.len());
    for (b, r) in bulk.iter().zip(&rest) {
        assert_eq!(b, r, "bulk and REST differ for {}", r.id);
    }
    // The awkward values survived the CSV round trip.
    assert_eq!(bulk[0].str("Name"), Some("Deal 0, \"big\" one"));
    assert_eq!(bulk[1].str("Name"), Some("Deal 1\nsecond line"));
    assert_eq!(bulk[3].str("Name"), Some("  spaced 3  "));
    assert_eq!(bulk[0].get("Amount"), Some(&Value::Null));
    assert_eq!(bulk[2].get("Amount"), Some(&json!(2000)));
    assert_eq!(bulk[1].get("Amount"), Some(&json!(1.5)));
    assert_eq!(bulk[3].bool("IsDeleted"), Some(true));
    assert!(bulk[1].datetime("SystemModstamp").is_some());

    // query (not queryAll) leaves the deleted ones out, like REST; default options.
    let mut live = Vec::new();
    sim.set_bulk_query_polls(1);
    client
        .bulk_query_pages(SOQL, false, &describe, |p| live.extend(p))
        .await
        .unwrap();
    assert_eq!(live, client.query(SOQL).await.unwrap());
    assert_eq!(live.len(), 300 - 43);
}

#[tokio::test]
async fn failed_job_reports_salesforce_message_and_job_id() {
    let (sim, client) = setup().await;
    let describe = client.describe("Account").await.unwrap();
    sim.fail_next_bulk_query("QUERY_TIMEOUT: Your query request was running for too long.");
    sim.set_bulk_query_polls(2);
    let before = client.calls();
    let mut pages = 0;
    let err = client
        .bulk_query_pages_with(
            "SELECT Id FROM Account",
            false,
            &describe,
            &opts(None),
            |_| pages += 1,
        )
        .await
        .unwrap_err();
    assert_eq!(pages, 0);
    // Create + 2 polls, no results.
    assert_eq!(delta(client.calls(), before), (2, 1, 0));
    let SfError::BulkJob(BulkJobError::Failed { job_id, message }) = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(job_id.starts_with("750"));
    assert_eq!(
        message,
        "QUERY_TIMEOUT: Your query request was running for too long."
    );
    let text = err.to_string();
    assert!(
        text.contains(job_id.as_str()) && text.contains("QUERY_TIMEOUT") && text.contains("Fix:")
    );
}

#[tokio::test]
async fn deadline_aborts_the_job_and_names_it() {
    let (sim, client) = setup().await;
    let describe = client.describe("Account").await.unwrap();
    sim.set_bulk_query_polls(1_000_000);
    let options = BulkQueryOptions {
        deadline: Duration::from_millis(150),
        ..opts(None)
    };
    let err = client
        .bulk_query_pages_with("SELECT Id FROM Account", false, &describe, &options, |_| {})
        .await
        .unwrap_err();
    let SfError::BulkJob(BulkJobError::Timeout { job_id, state, .. }) = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(state, "InProgress");
    assert!(err.to_string().contains(job_id.as_str()));
    assert!(err.class().is_retryable());
    assert_eq!(sim.api_calls().kind("bulk_query_abort"), 1);
    let polls = sim.api_calls().kind("bulk_query_info");
    // 5 ms doubling to 50 ms within 150 ms: a handful of polls, not a busy loop.
    assert!((1..=10).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn unsupported_soql_and_wrong_describe_are_refused() {
    let (sim, client) = setup().await;
    let describe = client.describe("Account").await.unwrap();
    let before = client.calls();
    let err = client
        .bulk_query_pages_with(
            "SELECT COUNT() FROM Account",
            false,
            &describe,
            &opts(None),
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("FUNCTIONALITY_NOT_ENABLED"));
    // Not retried.
    assert_eq!(delta(client.calls(), before), (0, 1, 0));

    let err = client
        .bulk_query_pages_with(
            "SELECT Id FROM Contact",
            false,
            &describe,
            &opts(None),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SfError::Config(_)), "{err:?}");
    assert_eq!(sim.bulk_query_jobs(), 1);
}

#[tokio::test]
async fn expired_token_and_transient_faults_are_handled_by_the_client() {
    let (sim, client) = setup().await;
    for i in 0..5 {
        sim.insert("Account", obj(json!({"Name": format!("A{i}")})));
    }
    let describe = client.describe("Account").await.unwrap();
    sim.expire_tokens();
    sim.faults()
        .fail_nth(Some("bulk_query_results"), 2, 503, "SERVER_UNAVAILABLE");
    let before = client.calls();
    let mut got = Vec::new();
    client
        .bulk_query_pages_with(
            "SELECT Id, Name FROM Account",
            false,
            &describe,
            &opts(Some(2)),
            |p| got.extend(p),
        )
        .await
        .unwrap();
    // A 401 then the create again after a new token; 1 poll; 3 sets plus one retried 503.
    assert_eq!(delta(client.calls(), before), (1 + 3 + 1, 2, 1));
    assert_eq!(got.len(), 5);
    assert_eq!(
        got,
        client.query("SELECT Id, Name FROM Account").await.unwrap()
    );
}
