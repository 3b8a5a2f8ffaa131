//! Version races: the PRM refuses an update whose `If-Match` version is outdated (`412`),
//! because someone edited the record between the sync's read and its `PATCH`. Within the
//! same run the sync reads the record again, merges again and sends the update again with
//! the new version (three attempts in all); a PRM edit that has to reach Salesforce is
//! written in the same run. The races here are real: the test edits the record in the PRM
//! simulator just before the sync's update goes out.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use prmsync_engine::{RunMode, SyncContext};
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::{Collection, PrmSim};
use serde_json::{json, Value};

/// Edits one PRM record in the simulator before each of the sync's updates of it, as long
/// as it has edits left, and counts the updates and reads by id of that record.
struct EditBeforeUpdate {
    sim: PrmSim,
    id: String,
    edits: Mutex<VecDeque<Value>>,
    updates: AtomicU64,
    fetches: AtomicU64,
}

impl EditBeforeUpdate {
    fn new(h: &Harness, id: &str, edits: Vec<Value>) -> Arc<Self> {
        Arc::new(Self {
            sim: h.prm.clone(),
            id: id.to_string(),
            edits: Mutex::new(edits.into()),
            updates: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        })
    }

    /// A context whose PRM goes through these hooks.
    fn ctx(self: &Arc<Self>, h: &Harness) -> SyncContext {
        h.ctx_with(
            h.crm_client.clone(),
            HookedPrm::wrap(h.prm_client.clone(), self.clone()),
        )
    }

    fn updates(&self) -> u64 {
        self.updates.load(Ordering::SeqCst)
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl PrmHooks for EditBeforeUpdate {
    fn before_fetch(&self, _collection: &str, ids: &[String]) {
        if ids.contains(&self.id) {
            self.fetches.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn before_update(&self, _collection: &str, id: &str, _version: i64) {
        if id != self.id {
            return;
        }
        self.updates.fetch_add(1, Ordering::SeqCst);
        if let Some(edit) = self.edits.lock().unwrap().pop_front() {
            self.sim.update(Collection::Organizations, id, edit);
        }
    }
}

const OLD_WEBSITE: &str = "https://northwind.example";

/// An Account linked to a PRM organization by a first run; returns both ids.
async fn linked_account(h: &Harness) -> (String, String) {
    let account = h.account(
        "Northwind",
        Some("Active Partner"),
        json!({"Phone": "+49 30 1", "Website": OLD_WEBSITE}),
    );
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &account, "PRM_Id__c").expect("linked");
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        json!("+49 30 1")
    );
    (account, org)
}

/// The Salesforce user changes the phone: the next run updates the PRM organization.
fn phone_changed_in_salesforce(h: &Harness, account: &str) {
    h.sf.update("Account", account, obj(json!({"Phone": "+49 30 2"})));
}

#[tokio::test]
async fn a_prm_edit_between_the_read_and_the_update_is_merged_and_both_changes_land() {
    // GIVEN a linked organization whose phone changed in Salesforce, and a PRM user who
    // edits its website just before the sync's update goes out.
    let h = Harness::new().await;
    let (account, org) = linked_account(&h).await;
    phone_changed_in_salesforce(&h, &account);
    let race = EditBeforeUpdate::new(&h, &org, vec![json!({"website": "https://nw.example"})]);

    // WHEN the run syncs
    let reports = h.sync_ctx(&race.ctx(&h), RunMode::Incremental).await;

    // THEN the update refused for its version is read and sent again once, and both the
    // sync's change and the PRM edit end in the PRM.
    assert_succeeded(&reports);
    assert_eq!(race.updates(), 2, "one update more");
    assert_eq!(race.fetches(), 1, "one read by id more");
    let o = h.prm_get(Collection::Organizations, &org);
    assert_eq!(o["phone"], json!("+49 30 2"));
    assert_eq!(o["website"], json!("https://nw.example"));
    // The PRM edit reached Salesforce in this run.
    assert_eq!(
        h.sf_str("Account", &account, "Website").as_deref(),
        Some("https://nw.example")
    );
    assert!(h.log(LogCode::TransientError).await.is_empty());
    assert!(h.log(LogCode::Conflict).await.is_empty());
    let orgs = &reports[0].counts;
    assert_eq!((orgs.updated.prm, orgs.updated.crm, orgs.errors), (1, 1, 0));

    // And the next run has nothing left to write.
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.updated.crm + c.updated.prm), 0);
}

#[tokio::test]
async fn a_prm_edit_of_the_same_field_is_a_conflict_the_conflict_rule_decides() {
    // GIVEN a linked organization whose phone changed in Salesforce, and a PRM user who
    // changes the same phone just before the sync's update goes out.
    let h = Harness::new().await;
    let (account, org) = linked_account(&h).await;
    phone_changed_in_salesforce(&h, &account);
    let race = EditBeforeUpdate::new(&h, &org, vec![json!({"phone": "+49 30 3"})]);

    // WHEN the run syncs
    let reports = h.sync_ctx(&race.ctx(&h), RunMode::Incremental).await;

    // THEN the merge again finds a conflict, decided by the conflict rule (the newest
    // change: the PRM edit) and logged once; the PRM keeps its value, so no update is sent
    // again, and Salesforce takes it.
    assert_succeeded(&reports);
    let conflicts = h.log(LogCode::Conflict).await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].details["field"], json!("phone"));
    assert_eq!(conflicts[0].details["winner"], json!("prm"));
    // the Salesforce side of the conflict, masked as every logged value is by default
    assert_eq!(conflicts[0].details["crm"], json!("***02"));
    assert_eq!(reports[0].counts.conflicts, 1);
    assert_eq!(race.updates(), 1);
    assert_eq!(race.fetches(), 1);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        json!("+49 30 3")
    );
    assert_eq!(
        h.sf_str("Account", &account, "Phone").as_deref(),
        Some("+49 30 3")
    );
    assert!(h.log(LogCode::TransientError).await.is_empty());

    // And the next run has nothing left to write, nor a conflict to log again.
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.updated.crm + c.updated.prm), 0);
    assert_eq!(h.log(LogCode::Conflict).await.len(), 1);
}

#[tokio::test]
async fn a_record_that_changes_before_every_attempt_waits_for_the_next_run() {
    // GIVEN a linked organization whose phone changed in Salesforce, and a PRM record
    // edited before each of the sync's updates.
    let h = Harness::new().await;
    let (account, org) = linked_account(&h).await;
    phone_changed_in_salesforce(&h, &account);
    let edits = (1..=5)
        .map(|n| json!({"website": format!("https://nw{n}.example")}))
        .collect();
    let race = EditBeforeUpdate::new(&h, &org, edits);

    // WHEN the run syncs
    let reports = h.sync_ctx(&race.ctx(&h), RunMode::Incremental).await;

    // THEN it gives up after three attempts: one transient_error entry, nothing written
    // but the first reads, and the link left for the next run.
    assert_succeeded(&reports);
    assert_eq!(race.updates(), 3);
    assert_eq!(race.fetches(), 2);
    let transient = h.log(LogCode::TransientError).await;
    assert_eq!(transient.len(), 1, "{transient:?}");
    assert_eq!(transient[0].prm_id.as_deref(), Some(org.as_str()));
    assert!(
        transient[0].message.contains("3 attempts"),
        "{}",
        transient[0].message
    );
    let o = h.prm_get(Collection::Organizations, &org);
    assert_eq!(o["phone"], json!("+49 30 1"));
    assert_eq!(o["website"], json!("https://nw3.example"));
    assert_eq!(
        h.sf_str("Account", &account, "Website").as_deref(),
        Some(OLD_WEBSITE),
        "no PRM edit of a record given up is written to Salesforce"
    );

    // AND the next run syncs both changes.
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        json!("+49 30 2")
    );
    assert_eq!(
        h.sf_str("Account", &account, "Website").as_deref(),
        Some("https://nw3.example")
    );
    assert!(h.log(LogCode::Conflict).await.is_empty());
    let reports = h.sync().await;
    assert_eq!(total(&reports, |c| c.updated.crm + c.updated.prm), 0);
}

#[tokio::test]
async fn a_record_deleted_before_it_is_read_again_is_gone() {
    // GIVEN a linked organization whose phone changed in Salesforce, and a PRM record
    // edited just before the sync's update and deleted right after that refused update.
    let h = Harness::new().await;
    let (account, org) = linked_account(&h).await;
    phone_changed_in_salesforce(&h, &account);
    struct EditThenDelete(Arc<EditBeforeUpdate>);
    impl PrmHooks for EditThenDelete {
        fn before_update(&self, c: &str, id: &str, v: i64) {
            self.0.before_update(c, id, v)
        }
        fn before_fetch(&self, c: &str, ids: &[String]) {
            if ids.contains(&self.0.id) {
                self.0.sim.delete(Collection::Organizations, &self.0.id);
            }
            self.0.before_fetch(c, ids)
        }
    }
    let race = EditBeforeUpdate::new(&h, &org, vec![json!({"website": "https://nw.example"})]);
    let ctx = h.ctx_with(
        h.crm_client.clone(),
        HookedPrm::wrap(h.prm_client.clone(), Arc::new(EditThenDelete(race.clone()))),
    );

    // WHEN the run syncs
    let reports = h.sync_ctx(&ctx, RunMode::Incremental).await;

    // THEN the record read again is gone: the "PRM record gone" path, no update again.
    assert_succeeded(&reports);
    assert_eq!((race.updates(), race.fetches()), (1, 1));
    assert_eq!(h.log(LogCode::PrmRecordGone).await.len(), 1);
    assert_eq!(reports[0].counts.disconnected, 1);
    assert!(h.log(LogCode::TransientError).await.is_empty());
}

#[tokio::test]
async fn a_worker_reads_merges_and_updates_again_too() {
    // GIVEN a linked organization (through the planner and workers) whose phone changed in
    // Salesforce, and a PRM user who edits its website just before the update goes out.
    let h = Harness::new().await;
    let account = h.account(
        "Northwind",
        Some("Active Partner"),
        json!({"Phone": "+49 30 1", "Website": OLD_WEBSITE}),
    );
    h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
    let org = h.sf_str("Account", &account, "PRM_Id__c").expect("linked");
    phone_changed_in_salesforce(&h, &account);
    let race = EditBeforeUpdate::new(&h, &org, vec![json!({"website": "https://nw.example"})]);

    // WHEN a worker syncs the chunk
    let out = h.lambda_sync(&race.ctx(&h), RunMode::Incremental).await;

    // THEN as in one-machine runs: both changes in the PRM, the edit in Salesforce.
    assert!(!out.chunks.is_empty(), "{out:?}");
    assert_eq!((race.updates(), race.fetches()), (2, 1));
    let o = h.prm_get(Collection::Organizations, &org);
    assert_eq!(o["phone"], json!("+49 30 2"));
    assert_eq!(o["website"], json!("https://nw.example"));
    assert_eq!(
        h.sf_str("Account", &account, "Website").as_deref(),
        Some("https://nw.example")
    );
    assert!(h.log(LogCode::TransientError).await.is_empty());
}
