//! API economy of a full first import: 5,000 Accounts and 20,000 Contacts use fewer
//! Salesforce calls than the REST query pages and Collection calls they would need, plus
//! auth and describe (Bulk API 2.0 query and ingest jobs above their thresholds).

mod common;

use common::*;
use prmsync_mapping::ObjectKind;
use prmsync_simulators::prm::Collection;
use serde_json::json;

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_import_of_5000_accounts_and_20000_contacts_stays_within_the_call_budget() {
    let t0 = std::time::Instant::now();
    const ACCOUNTS: u64 = 5_000;
    const CONTACTS_PER_ACCOUNT: u64 = 4;
    let h = Harness::new().await;
    for i in 0..ACCOUNTS {
        let acc = h.account(
            &format!("Account {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://a{i}.example")}),
        );
        for j in 0..CONTACTS_PER_ACCOUNT {
            h.contact(
                &acc,
                "First",
                &format!("Last {i}-{j}"),
                &format!("p{j}@a{i}.example"),
            );
        }
    }
    let contacts = ACCOUNTS * CONTACTS_PER_ACCOUNT;
    h.sf.reset_api_calls();
    println!("seeded in {:?}", t0.elapsed());
    let t1 = std::time::Instant::now();
    let reports = h.sync().await;
    println!("synced in {:?}", t1.elapsed());

    assert_succeeded(&reports);
    assert_eq!(h.prm.list(Collection::Organizations).len() as u64, ACCOUNTS);
    assert_eq!(h.prm.list(Collection::People).len() as u64, contacts);
    let calls = h.sf.api_calls();
    // Reads: Accounts in REST query pages of 2,000 (5,000 is under the Bulk API threshold
    // of 10,000). The 20,000 Contacts: the first REST page tells their number, and a Bulk API
    // 2.0 query job reads them in two result sets of 10,000 (create, one status poll, two
    // result sets) instead of nine more pages. Writes: the PRM ids written back. The run is
    // large (more pages to come, or a result set above the ingest threshold), so its passes
    // hold their updates: the 5,000 Accounts' go in one Bulk API 2.0 ingest job once the
    // Accounts are read, the 20,000 Contacts' in another (create, upload, close, one status
    // poll; every record succeeded, so no result set is read).
    let rest_minimum = ceil_div(ACCOUNTS, 2000)
        + ceil_div(contacts, 2000)
        + ceil_div(ACCOUNTS, 200)
        + ceil_div(contacts, 200);
    let by_job = ceil_div(ACCOUNTS, 2000) + 1 + 4 + 2 * 4;
    assert_eq!(
        (
            calls.kind("bulk_ingest_create"),
            calls.kind("bulk_ingest_upload"),
            calls.kind("bulk_ingest_state"),
            calls.kind("bulk_ingest_info"),
            calls.kind("bulk_ingest_successful") + calls.kind("bulk_ingest_failed"),
            calls.kind("composite_update"),
        ),
        (2, 2, 2, 2, 0, 0),
        "{:?}",
        calls.by_kind
    );
    // Every record carries its PRM id, and the job's rows were settled on their links: an
    // unchanged run after reading the echoes writes nothing.
    for object in ["Account", "Contact"] {
        let missing =
            h.sf.records(object)
                .iter()
                .filter(|r| r.get("PRM_Id__c").and_then(|v| v.as_str()).is_none())
                .count();
        assert_eq!(missing, 0, "{object} records without their PRM id");
    }
    assert_eq!(
        (
            calls.kind("bulk_query_create"),
            calls.kind("bulk_query_info"),
            calls.kind("bulk_query_results")
        ),
        (1, 1, 2),
        "{:?}",
        calls.by_kind
    );
    let describe = calls.kind("describe");
    assert_eq!(
        describe, 2,
        "one per object, reused by the query job: {:?}",
        calls.by_kind
    );
    assert_eq!(calls.total, by_job + describe, "calls: {:?}", calls.by_kind);
    assert!(by_job < rest_minimum, "{by_job} vs {rest_minimum}");
    assert!(calls.kind("auth") <= 1, "{:?}", calls.by_kind);
    println!(
        "Salesforce calls for {ACCOUNTS} Accounts and {contacts} Contacts: {} ({:?})",
        calls.total, calls.by_kind
    );
    // The links marked for a retry while their writes were held are settled, and the next
    // run (reading the import's echoes) writes nothing.
    let store = h.ctx().store;
    for kind in [ObjectKind::Organization, ObjectKind::Person] {
        assert_eq!(store.links_to_retry(kind).await.unwrap().len(), 0, "{kind}");
    }
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(
        total(&reports, |c| c.updated.crm
            + c.updated.prm
            + c.created.crm
            + c.created.prm),
        0
    );
}
