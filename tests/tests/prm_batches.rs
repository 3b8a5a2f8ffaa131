//! PRM batch writes through a whole sync: the same end state on both sides and the same
//! Integration Log entries whether the PRM offers batches or not, with creates, updates
//! and per-record refusals; and with batches, PRM writes take one request per batch.

mod common;

use common::Harness;
use prmsync_engine::store::IntegrationLog;
use prmsync_engine::LogFilter;
use prmsync_simulators::prm::Collection;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// What a world ended in: the PRM's records (ids left out, they differ), the links' Ids,
/// and the log entries (code and Salesforce Id).
#[derive(Debug, PartialEq)]
struct EndState {
    organizations: Vec<(String, String, String, String)>,
    people: Vec<(String, String, String, String)>,
    log: Vec<(String, String)>,
}

async fn world(batches: Option<usize>) -> (Harness, EndState) {
    let h = Harness::new().await;
    h.prm.set_batches(batches);
    // 30 flagged Accounts with two Contacts each; three Contacts have no first name, which
    // the PRM requires: refused each on its own
    for i in 0..30 {
        let acc = h.sf.insert("Account", obj(json!({"Name": format!("Batch {i:02}"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})));
        for j in 0..2 {
            let first = if i % 10 == 3 && j == 0 {
                Value::Null
            } else {
                json!("F")
            };
            h.sf.insert("Contact", obj(json!({"AccountId": acc, "FirstName": first, "LastName": format!("L{i:02}{j}"), "Email": format!("p{i}{j}@batch{i}.example")})));
        }
    }
    h.sync().await;
    // then five renamed in Salesforce: updates
    for a in h.sf.records("Account").iter().take(5) {
        let name = format!("{} renamed", a["Name"].as_str().unwrap());
        h.sf.update(
            "Account",
            a["Id"].as_str().unwrap(),
            obj(json!({ "Name": name })),
        );
    }
    h.sync().await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut organizations: Vec<_> = h
        .prm
        .list(Collection::Organizations)
        .iter()
        .map(|o| {
            (
                text(&o["name"]),
                text(&o["kind"]),
                text(&o["status"]),
                text(&o["crm_id"]),
            )
        })
        .collect();
    organizations.sort();
    let mut people: Vec<_> = h
        .prm
        .list(Collection::People)
        .iter()
        .map(|p| {
            (
                text(&p["first_name"]),
                text(&p["last_name"]),
                text(&p["email"]),
                text(&p["crm_id"]),
            )
        })
        .collect();
    people.sort();
    let mut log: Vec<_> = h
        .store
        .entries(&LogFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.level != prmsync_mapping::Level::Info)
        .map(|e| {
            (
                e.code.as_str().to_string(),
                e.crm_id.clone().unwrap_or_default(),
            )
        })
        .collect();
    log.sort();
    (
        h,
        EndState {
            organizations,
            people,
            log,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_reach_the_same_end_and_log_as_record_by_record_writes() {
    let (plain, plain_end) = world(None).await;
    let (batched, batched_end) = world(Some(200)).await;
    assert_eq!(batched_end, plain_end);
    assert_eq!(plain_end.organizations.len(), 30);
    assert_eq!(plain_end.people.len(), 57, "three refused");
    // the three refusals are logged, each naming its Contact
    assert_eq!(plain_end.log.len(), 3, "{:?}", plain_end.log);
    assert!(
        plain_end
            .organizations
            .iter()
            .filter(|o| o.0.ends_with("renamed"))
            .count()
            == 5,
        "{:?}",
        plain_end.organizations
    );
    // record by record: one request per write; in batches: one per batch
    let p = plain.prm.api_calls();
    let b = batched.prm.api_calls();
    assert_eq!(p.count("batch"), 0);
    assert_eq!(p.count("create"), 30 + 60);
    assert_eq!(b.count("create") + b.count("update"), 0, "{b:?}");
    assert!(b.count("batch") <= 4, "{b:?}");
    assert!(
        b.total * 3 < p.total,
        "batches: {} PRM requests, record by record: {}",
        b.total,
        p.total
    );
}
