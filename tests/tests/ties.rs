//! End-to-end: many records sharing one SystemModstamp (Salesforce) or one `updated_at`
//! (PRM) across page boundaries are each read once per run, none missed; the next run's
//! window overlaps, reads the records at exactly the cursor again and writes nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use prmsync_engine::{RunMode, RunReport};
use prmsync_mapping::{CrmRecord, MappingConfig, PrmRecord};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[async_trait]
impl CrmHooks for Reads {
    fn change_read(&self, object: &str, records: &[CrmRecord]) {
        self.add(object, records.iter().map(|r| &r.id));
    }
}

impl PrmHooks for Reads {
    fn change_read(&self, collection: &str, records: &[PrmRecord]) {
        self.add(collection, records.iter().map(|r| &r.id));
    }
}

/// The ids each change read (`changed`, `changed_page`, `sweep_page`) handed the engine, by
/// object or collection.
#[derive(Default)]
struct Reads(Mutex<BTreeMap<String, Vec<String>>>);

impl Reads {
    fn add<'a>(&self, what: &str, ids: impl Iterator<Item = &'a String>) {
        self.0
            .lock()
            .unwrap()
            .entry(what.to_string())
            .or_default()
            .extend(ids.cloned());
    }

    /// The reads of `what` since the last call, as id -> times read.
    fn take(&self, what: &str) -> BTreeMap<String, usize> {
        let ids = self.0.lock().unwrap().remove(what).unwrap_or_default();
        let mut times = BTreeMap::new();
        for id in ids {
            *times.entry(id).or_default() += 1;
        }
        times
    }
}

/// A harness reading Salesforce in pages of 200 and the PRM in pages of `prm_page`, and
/// the change reads its runs make.
async fn harness(prm_page: u32) -> (Harness, Arc<Reads>) {
    let mut h = Harness::with_query_page(MappingConfig::default(), 200).await;
    // A second listener on the same simulated PRM, for a client with small pages.
    let url = h.prm.start().await.unwrap();
    let mut cfg = PrmConfig::new(url, TOKEN);
    cfg.page_size = prm_page;
    h.prm_client = Arc::new(PrmClient::new(cfg).unwrap());
    (h, Arc::new(Reads::default()))
}

async fn run(h: &Harness, reads: &Arc<Reads>) -> Vec<RunReport> {
    let ctx = h.ctx_with(
        HookedCrm::wrap(h.crm_client.clone(), reads.clone()),
        HookedPrm::wrap(h.prm_client.clone(), reads.clone()),
    );
    let reports = h.sync_ctx(&ctx, RunMode::Incremental).await;
    assert_succeeded(&reports);
    reports
}

/// Every id of `want` read exactly once, and nothing else.
fn read_once(times: &BTreeMap<String, usize>, want: &[String], what: &str) {
    let twice: Vec<_> = times.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "{what}: read more than once: {twice:?}");
    let missed: Vec<_> = want.iter().filter(|id| !times.contains_key(*id)).collect();
    assert!(missed.is_empty(), "{what}: never read: {missed:?}");
    assert_eq!(times.len(), want.len(), "{what}: read others too");
}

fn writes(reports: &[RunReport]) -> u64 {
    total(reports, |c| {
        c.created.crm + c.created.prm + c.updated.crm + c.updated.prm
    })
}

#[tokio::test]
async fn accounts_sharing_one_system_modstamp_across_query_pages_are_each_read_once() {
    // GIVEN 450 flagged Accounts saved with one SystemModstamp (three query pages of 200),
    // and a clock that stays held, so the sync's own writes share it too
    let (h, reads) = harness(1000).await;
    h.sf.hold_clock(true);
    let accounts: Vec<String> = (0..450)
        .map(|i| {
            h.account(
                &format!("Tied {i:03}"),
                Some("Active Partner"),
                json!({"Website": format!("https://tied-{i:03}.example")}),
            )
        })
        .collect();
    let stamps: std::collections::BTreeSet<_> = h
        .sf_records("Account")
        .iter()
        .map(|a| a["SystemModstamp"].to_string())
        .collect();
    assert_eq!(stamps.len(), 1, "one SystemModstamp");

    // WHEN the first run syncs them
    let first = run(&h, &reads).await;

    // THEN each Account was read once and became one organization
    read_once(&reads.take("Account"), &accounts, "first run");
    assert_eq!(total(&first, |c| c.created.prm), 450);
    let orgs = h.prm.list(Collection::Organizations);
    assert_eq!(orgs.len(), 450);
    let mut linked: Vec<String> = orgs
        .iter()
        .map(|o| o["crm_id"].as_str().unwrap().to_string())
        .collect();
    linked.sort();
    let mut want = accounts.clone();
    want.sort();
    assert_eq!(linked, want, "one organization per Account");

    // WHEN one more Account is saved at that same instant, and the next run reads from its
    // cursor, where all of them are
    let late = h.account(
        "Tied late",
        Some("Active Partner"),
        json!({"Website": "https://tied-late.example"}),
    );
    let mut all = accounts.clone();
    all.push(late.clone());
    let sf_calls = h.sf.api_calls();
    let second = run(&h, &reads).await;

    // THEN each is read once again, over several pages; only the late one is written
    read_once(&reads.take("Account"), &all, "second run");
    let after = h.sf.api_calls();
    assert!(
        after.kind("query_more") + after.kind("query_all") + after.kind("query")
            >= sf_calls.kind("query_more")
                + sf_calls.kind("query_all")
                + sf_calls.kind("query")
                + 3,
        "451 Accounts take three pages"
    );
    assert_eq!(total(&second, |c| c.created.prm), 1, "{second:?}");
    assert_eq!(writes(&second), 1, "{second:?}");
    assert_eq!(total(&second, |c| c.unchanged), 450, "{second:?}");
    assert_eq!(h.prm_by_crm(Collection::Organizations, &late).len(), 1);
    assert_eq!(h.prm.list(Collection::Organizations).len(), 451);

    // WHEN it runs once more THEN the records at the cursor are read again, nothing written
    let prm_writes = h.prm.api_calls().writes();
    let sf_calls = h.sf.api_calls();
    let third = run(&h, &reads).await;
    read_once(&reads.take("Account"), &all, "third run");
    assert_eq!(writes(&third), 0, "{third:?}");
    let after = h.sf.api_calls();
    for kind in ["composite_create", "composite_update", "composite_upsert"] {
        assert_eq!(after.kind(kind), sf_calls.kind(kind), "{kind}");
    }
    assert_eq!(h.prm.api_calls().writes(), prm_writes);
    h.sf.hold_clock(false);
}

#[tokio::test]
async fn organizations_sharing_one_updated_at_across_prm_pages_are_each_read_once() {
    // GIVEN 25 PRM organizations with one updated_at, read in pages of 4, whose ids sort
    // in no particular relation to the order they were made in
    let (h, reads) = harness(4).await;
    h.prm.hold_clock(true);
    let orgs: Vec<String> = (0..25u32)
        .map(|i| {
            let id = format!("org_{:02x}", (i * 37 + 11) % 256);
            h.prm.insert(
                Collection::Organizations,
                json!({"id": id, "kind": "partner", "status": "active",
                       "name": format!("Tie {i:02}"), "website": format!("tie-{i:02}.example")}),
            )
        })
        .collect();
    let stamps: std::collections::BTreeSet<_> = h
        .prm
        .list(Collection::Organizations)
        .iter()
        .map(|o| o["updated_at"].to_string())
        .collect();
    assert_eq!(stamps.len(), 1, "one updated_at");

    // WHEN the first run syncs them (the PRM clock stays held: the crm_id the sync writes
    // leaves them at the same updated_at)
    let first = run(&h, &reads).await;

    // THEN each organization was read once and became one Account
    read_once(&reads.take("organizations"), &orgs, "first run");
    assert_eq!(total(&first, |c| c.created.crm), 25);
    let accounts = h.sf_records("Account");
    assert_eq!(accounts.len(), 25);
    let mut linked: Vec<String> = accounts
        .iter()
        .map(|a| a["PRM_Id__c"].as_str().unwrap().to_string())
        .collect();
    linked.sort();
    let mut want = orgs.clone();
    want.sort();
    assert_eq!(linked, want, "one Account per organization");
    let stamps: std::collections::BTreeSet<_> = h
        .prm
        .list(Collection::Organizations)
        .iter()
        .map(|o| o["updated_at"].to_string())
        .collect();
    assert_eq!(stamps.len(), 1, "still one updated_at");

    // WHEN one more organization is saved at that same instant, with an id that sorts
    // before all the others, and the next run reads from its cursor
    let late = h.prm.insert(
        Collection::Organizations,
        json!({"id": "org_00", "kind": "partner", "status": "active",
               "name": "Tie late", "website": "tie-late.example"}),
    );
    let mut all = orgs.clone();
    all.push(late.clone());
    let lists = h.prm.api_calls().count("organizations.list");
    let second = run(&h, &reads).await;

    // THEN each is read once again, over several pages; only the late one is written
    read_once(&reads.take("organizations"), &all, "second run");
    assert!(
        h.prm.api_calls().count("organizations.list") >= lists + 7,
        "26 organizations take 7 pages of 4"
    );
    assert_eq!(total(&second, |c| c.created.crm), 1, "{second:?}");
    assert_eq!(writes(&second), 1, "{second:?}");
    assert_eq!(total(&second, |c| c.unchanged), 25, "{second:?}");
    assert_eq!(h.sf_records("Account").len(), 26);

    // WHEN it runs once more THEN the records at the cursor are read again, nothing written
    let prm_writes = h.prm.api_calls().writes();
    let sf_calls = h.sf.api_calls();
    let third = run(&h, &reads).await;
    read_once(&reads.take("organizations"), &all, "third run");
    assert_eq!(writes(&third), 0, "{third:?}");
    assert_eq!(h.prm.api_calls().writes(), prm_writes);
    let after = h.sf.api_calls();
    for kind in ["composite_create", "composite_update", "composite_upsert"] {
        assert_eq!(after.kind(kind), sf_calls.kind(kind), "{kind}");
    }
    h.prm.hold_clock(false);
}
