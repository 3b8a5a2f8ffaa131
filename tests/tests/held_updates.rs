//! A Salesforce update of a pair linked before the run is never held back past the pass
//! that read its record (only the write-backs of new links wait for a run's ingest job): a
//! Salesforce user's edit made while a long run goes on is not overwritten by an update
//! planned from an older read; it syncs like any other change.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use prmsync_engine::RunMode;
use prmsync_mapping::{CrmRecord, LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;
use prmsync_simulators::salesforce::SalesforceSim;
use serde_json::json;

/// Edits one Account in Salesforce when the run reads its third page of Account changes:
/// after the pass of the first page has finished.
struct EditDuringRun {
    sf: SalesforceSim,
    account: Mutex<Option<String>>,
    reads: AtomicUsize,
}

#[async_trait]
impl CrmHooks for EditDuringRun {
    fn change_read(&self, object: &str, _records: &[CrmRecord]) {
        if object != "Account" || self.reads.fetch_add(1, Ordering::SeqCst) != 2 {
            return;
        }
        if let Some(a) = self.account.lock().unwrap().take() {
            self.sf
                .update("Account", &a, obj(json!({"Phone": "+1 555 0300"})));
        }
    }
}

#[tokio::test]
async fn a_salesforce_edit_made_during_a_long_run_is_never_overwritten_by_a_held_update() {
    // GIVEN 450 linked Accounts read in pages of 200
    // (every Account changes: the mass-change breaker is off for this run)
    let mut mapping = MappingConfig::default();
    mapping.sync.mass_change_percent = 100;
    let h = Harness::with_query_page(mapping, 200).await;
    let accounts: Vec<String> = (0..450)
        .map(|i| h.account(&format!("Co {i:03}"), Some("Active Partner"), json!({})))
        .collect();
    assert_succeeded(&h.sync().await);
    let first = accounts[0].clone();
    let org = h.sf_str("Account", &first, "PRM_Id__c").expect("linked");

    // The first Account changes on both sides (its name in Salesforce, its phone in the
    // PRM), so the first page plans one Salesforce update: less than a Collection. Then
    // every other Account changes in Salesforce, making three pages.
    h.sf.advance_clock(chrono::Duration::minutes(1));
    h.sf.update("Account", &first, obj(json!({"Name": "Co 000 Renamed"})));
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"phone": "+1 555 0100"}),
    );
    h.sf.advance_clock(chrono::Duration::minutes(1));
    for a in &accounts[1..] {
        h.sf.update("Account", a, obj(json!({"Website": "https://co.example"})));
    }

    // WHEN a run goes, and a Salesforce user sets the first Account's phone while it reads
    // the third page
    let hooks = Arc::new(EditDuringRun {
        sf: h.sf.clone(),
        account: Mutex::new(Some(first.clone())),
        reads: AtomicUsize::new(0),
    });
    let ctx = h.ctx_with(
        HookedCrm::wrap(h.crm_client.clone(), hooks.clone()),
        h.prm_client.clone(),
    );
    assert_succeeded(&h.sync_ctx(&ctx, RunMode::Incremental).await);
    assert!(hooks.account.lock().unwrap().is_none(), "the user edited");

    // THEN the user's edit stands: the PRM's phone was written when its page was synced,
    // before the edit, not after it
    assert_eq!(
        h.sf_str("Account", &first, "Phone").as_deref(),
        Some("+1 555 0300")
    );
    assert!(h.log(LogCode::Conflict).await.is_empty());

    // and the next run takes the edit to the PRM like any other change
    assert_succeeded(&h.sync().await);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        json!("+1 555 0300")
    );
    assert_eq!(
        h.sf_str("Account", &first, "Phone").as_deref(),
        Some("+1 555 0300")
    );
}
