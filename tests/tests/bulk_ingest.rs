//! Bulk API 2.0 ingest jobs through a whole sync: the same end state on both sides and the
//! same Integration Log entries as sObject Collections, with creates, updates, per-record
//! errors (too long, restricted picklist, duplicate external id, row lock) and a job that
//! fails as a whole; and results lost after a job is closed converge without duplicates.
//! A large run holds the write-backs of the links its passes create for one job, on one
//! machine and on the Lambda path alike; a crash before they are written converges.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::Harness;
use prmsync_engine::store::IntegrationLog;
use prmsync_engine::{LogFilter, RunMode, RunReport};
use prmsync_mapping::{LogCode, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::{json, Value};

/// What a world ended in, by names (Ids differ from one world to the other).
#[derive(Debug, PartialEq)]
struct EndState {
    /// Account name, its PRM id's organization name, Record Status.
    accounts: Vec<(String, String, String)>,
    /// Contact last name, its PRM id's person last name.
    contacts: Vec<(String, String)>,
    /// Organization name and its `crm_id` Account's name.
    organizations: Vec<(String, String)>,
    /// Integration Log entries (warnings and errors, but the jobs' own): code, Salesforce
    /// name, PRM name.
    log: Vec<(String, String, String)>,
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

async fn end_state(h: &Harness) -> EndState {
    let org_name = |id: &str| {
        h.prm
            .list(Collection::Organizations)
            .iter()
            .find(|o| o["id"] == id)
            .map(|o| text(o.get("name")))
            .unwrap_or_default()
    };
    let person_name = |id: &str| {
        h.prm
            .list(Collection::People)
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| text(p.get("last_name")))
            .unwrap_or_default()
    };
    let sf_name = |id: &str| {
        h.sf.get("Account", id)
            .map(|a| text(a.get("Name")))
            .or_else(|| h.sf.get("Contact", id).map(|c| text(c.get("LastName"))))
            .unwrap_or_default()
    };
    let mut accounts: Vec<_> = h
        .sf_records("Account")
        .iter()
        .map(|a| {
            (
                text(a.get("Name")),
                org_name(&text(a.get("PRM_Id__c"))),
                text(a.get("PRM_Record_Status__c")),
            )
        })
        .collect();
    accounts.sort();
    let mut contacts: Vec<_> = h
        .sf_records("Contact")
        .iter()
        .map(|c| {
            (
                text(c.get("LastName")),
                person_name(&text(c.get("PRM_Id__c"))),
            )
        })
        .collect();
    contacts.sort();
    let mut organizations: Vec<_> = h
        .prm
        .list(Collection::Organizations)
        .iter()
        .map(|o| (text(o.get("name")), sf_name(&text(o.get("crm_id")))))
        .collect();
    organizations.sort();
    let mut log: Vec<_> = h
        .store
        .entries(&LogFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.level != prmsync_mapping::Level::Info && e.code != LogCode::BulkJobFellBack)
        .map(|e| {
            let prm = e.prm_id.as_deref().unwrap_or_default();
            let prm = match org_name(prm) {
                n if n.is_empty() => person_name(prm),
                n => n,
            };
            (
                e.code.as_str().to_string(),
                sf_name(e.crm_id.as_deref().unwrap_or_default()),
                prm,
            )
        })
        .collect();
    log.sort();
    EndState {
        accounts,
        contacts,
        organizations,
        log,
    }
}

/// Six Accounts with a Contact each in Salesforce, six organizations with a user each in
/// the PRM; per-record errors on five of them; a first sync, then renames on both sides
/// and a second sync. `fail_whole` fails the first ingest job after its first row.
async fn world(threshold: u64, fail_whole: bool) -> (Harness, EndState) {
    let h = Harness::with_ingest_threshold(threshold).await;
    let mut accounts = Vec::new();
    for i in 0..6 {
        let acc = h.account(&format!("SF Co {i}"), Some("Active Partner"), json!({}));
        h.contact(
            &acc,
            "Sf",
            &format!("Sfperson{i}"),
            &format!("sf{i}@sf{i}.example"),
        );
        accounts.push(acc);
    }
    let mut orgs = Vec::new();
    for i in 0..6 {
        let name = if i == 0 {
            // Longer than Account Name takes: cut to its length the same way on both paths.
            format!("PRM Org {}", "long ".repeat(60))
        } else {
            format!("PRM Org {i}")
        };
        let org = h.org("distributor", "active", &name);
        h.prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Prm", "last_name": format!("Prmperson{i}"), "email": format!("prm{i}@prm{i}.example")}),
        );
        orgs.push(org);
    }
    let faults = h.sf.faults();
    faults.fail_record_write(
        &orgs[5],
        "STRING_TOO_LONG",
        "Account Site: data value too large: PRM Org 5 (max length=80)",
    );
    faults.fail_record_write(
        &orgs[1],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Organization Status: bad value for restricted picklist field: Gold",
    );
    faults.fail_record_write(
        &accounts[1],
        "DUPLICATE_VALUE",
        "duplicate value found: PRM_Id__c duplicates value on record with id: 001000000000001AAA",
    );
    // once: Collections re-send a locked record, an ingest job's locked rows go through
    // Collections
    faults.fail_record_write(
        &accounts[2],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    );
    if fail_whole {
        h.sf.fail_next_bulk_ingest("InternalServerError : the job could not be completed", 1);
    }
    h.sync().await;
    // Renames on both sides: updates each way.
    for o in orgs.iter().skip(2).take(3) {
        let name = format!(
            "{} renamed in PRM",
            text(h.prm_get(Collection::Organizations, o).get("name"))
        );
        h.prm
            .update(Collection::Organizations, o, json!({ "name": name }));
    }
    for a in accounts.iter().skip(3) {
        let name = format!("{} renamed in SF", h.sf_str("Account", a, "Name").unwrap());
        h.sf.update("Account", a, common::obj(json!({ "Name": name })));
    }
    h.sync().await;
    let end = end_state(&h).await;
    (h, end)
}

/// The entries of a jobs' fallback: their messages.
async fn fallbacks(h: &Harness) -> Vec<String> {
    let filter = LogFilter {
        code: Some(LogCode::BulkJobFellBack),
        ..Default::default()
    };
    let entries = h.store.entries(&filter).await.unwrap();
    entries.into_iter().map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_jobs_reach_the_same_end_and_log_as_collections() {
    let (plain, plain_end) = world(0, false).await;
    let (jobs, jobs_end) = world(1, true).await;
    assert_eq!(jobs_end, plain_end);

    // The scenario did what it says, on both paths.
    let codes: Vec<&str> = plain_end.log.iter().map(|l| l.0.as_str()).collect();
    assert!(
        plain_end.log.iter().any(|l| l.2 == "PRM Org 5"),
        "the value too long: {:?}",
        plain_end.log
    );
    assert!(
        plain_end
            .accounts
            .iter()
            .any(|a| a.0.len() == 255 && a.0.starts_with("PRM Org long")),
        "the long name is cut to the field's length: {:?}",
        plain_end.accounts
    );
    assert_eq!(plain_end.log.len(), 3, "{:?}", plain_end.log);
    assert!(codes.iter().all(|c| !c.is_empty()), "{codes:?}");
    assert!(
        plain_end.log.iter().any(|l| l.2 == "PRM Org 1"),
        "the restricted picklist value: {:?}",
        plain_end.log
    );
    assert!(
        plain_end.log.iter().any(|l| l.1 == "SF Co 1"),
        "the duplicate external id: {:?}",
        plain_end.log
    );
    assert_eq!(
        plain_end
            .accounts
            .iter()
            .filter(|a| a.0.ends_with("renamed in PRM"))
            .count(),
        3
    );
    assert_eq!(
        plain_end
            .organizations
            .iter()
            .filter(|o| o.0.ends_with("renamed in SF") && o.0 == o.1)
            .count(),
        3
    );
    // The locked Account was written in the end, on both paths.
    assert!(plain_end
        .accounts
        .iter()
        .any(|a| a.0 == "SF Co 2" && a.1 == "SF Co 2"));

    // Collections only on one path; ingest jobs on the other, and Collections there only
    // for the rows a job did not settle (the lock, the job that failed whole).
    let p = plain.sf.api_calls();
    let j = jobs.sf.api_calls();
    assert_eq!(p.kind("bulk_ingest_create"), 0);
    assert!(j.kind("bulk_ingest_create") >= 4, "{j:?}");
    assert_eq!(
        j.kind("bulk_ingest_create"),
        j.kind("bulk_ingest_upload"),
        "one upload per job"
    );
    assert!(j.kind("bulk_ingest_failed") >= 1, "{j:?}");
    assert_eq!(
        j.kind("bulk_ingest_unprocessed"),
        1,
        "the job that failed whole"
    );
    let collections = |c: &prmsync_simulators::salesforce::ApiCalls| {
        c.kind("composite_update") + c.kind("composite_upsert")
    };
    assert!(collections(&j) < collections(&p), "{j:?} / {p:?}");
    let states: Vec<String> = jobs
        .sf
        .bulk_ingest_jobs()
        .into_iter()
        .map(|(_, _, state, _)| state)
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "Failed").count(),
        1,
        "{states:?}"
    );
    // the job that failed whole has its entry, naming the job and Salesforce's message
    let fell_back = fallbacks(&jobs).await;
    assert_eq!(fell_back.len(), 1, "{fell_back:?}");
    assert!(
        fell_back[0].contains("750Si") && fell_back[0].contains("failed: InternalServerError"),
        "{}",
        fell_back[0]
    );
    assert!(fallbacks(&plain).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_lost_after_a_job_closed_converge_without_duplicates() {
    let h = Harness::with_ingest_threshold(1).await;
    let mut orgs = Vec::new();
    for i in 0..4 {
        orgs.push(h.org("distributor", "active", &format!("Lost {i}")));
    }
    // The job is closed and processed, then its results cannot be read.
    h.sf.faults()
        .fail_rate(Some("bulk_ingest_successful"), 1.0, 400, "INVALIDJOBSTATE");
    h.sync().await;
    h.sf.faults().clear();
    h.sync().await;
    let accounts = h.sf_records("Account");
    assert_eq!(accounts.len(), 4, "no duplicates: {accounts:?}");
    for org in &orgs {
        let o = h.prm_get(Collection::Organizations, org);
        let linked: Vec<_> = accounts.iter().filter(|a| a["PRM_Id__c"] == *org).collect();
        assert_eq!(linked.len(), 1, "{org}");
        assert_eq!(o["crm_id"], linked[0]["Id"], "linked both ways");
    }
    let fell_back = fallbacks(&h).await;
    assert!(
        !fell_back.is_empty()
            && fell_back
                .iter()
                .all(|m| m.contains("could not be completed (INVALIDJOBSTATE)")),
        "{fell_back:?}"
    );
    let again = h.sync().await;
    assert_eq!(common::total(&again, |c| c.writes()), 0, "settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_that_refuses_ingest_jobs_is_written_through_collections_after_one_try() {
    let h = Harness::with_ingest_threshold(1).await;
    for i in 0..3 {
        h.account(&format!("Refused {i}"), Some("Active Partner"), json!({}));
        h.org("distributor", "active", &format!("Refused org {i}"));
    }
    // as Salesforce answers when the Bulk API is not open to the user
    h.sf.faults()
        .fail_rate(Some("bulk_ingest_create"), 1.0, 400, "API_DISABLED_FOR_ORG");
    common::assert_succeeded(&h.sync().await);
    let calls = h.sf.api_calls();
    assert_eq!(calls.kind("bulk_ingest_create"), 1, "tried once: {calls:?}");
    assert!(calls.kind("composite_update") + calls.kind("composite_upsert") >= 2);
    let accounts = h.sf_records("Account");
    assert_eq!(accounts.len(), 6);
    assert!(
        accounts.iter().all(|a| a["PRM_Id__c"].is_string()),
        "every Account linked: {accounts:?}"
    );
    assert_eq!(h.prm.list(Collection::Organizations).len(), 6);
    let fell_back = fallbacks(&h).await;
    assert_eq!(fell_back.len(), 1, "said once: {fell_back:?}");
    assert!(
        fell_back[0].contains("API_DISABLED_FOR_ORG"),
        "{}",
        fell_back[0]
    );
}

/// The 700 Accounts of [`held_world`], the 451st refused once for its data; the call
/// counts start from here.
async fn held_seed() -> (Harness, Vec<String>) {
    let h = Harness::with_ingest(300, 200).await;
    let accounts: Vec<String> = (0..700)
        .map(|i| h.account(&format!("Held Co {i}"), Some("Active Partner"), json!({})))
        .collect();
    h.sf.faults().fail_record_write(
        &accounts[450],
        "STRING_TOO_LONG",
        "Account Site: data value too large: Held Co 450 (max length=80)",
    );
    h.sf.reset_api_calls();
    (h, accounts)
}

/// 700 Accounts read in REST pages of 200: four passes, each writing fewer records than the
/// ingest threshold of 300. A large run holds its passes' updates, so all 700 write-backs go
/// in one ingest job once the Accounts are read, with the outcome of each record as a pass
/// would have had it: a record Salesforce refuses gets its entry, the others their PRM id
/// and a settled link. The run's writes are counted by `crash`, and it stops after the
/// write `crash` names.
async fn held_world(crash: &Arc<common::Crash>) -> (Harness, Vec<String>, Vec<RunReport>) {
    let (h, accounts) = held_seed().await;
    let ctx = h.crashing_ctx(crash);
    let reports = h.sync_ctx(&ctx, RunMode::Incremental).await;
    (h, accounts, reports)
}

/// Every Account carries the id of the one organization linked to it, but the refused one
/// when `refused`.
fn assert_written_back(h: &Harness, accounts: &[String], refused: bool) {
    let orgs = h.prm.list(Collection::Organizations);
    assert_eq!(
        orgs.len(),
        700,
        "one organization per Account, no duplicate"
    );
    for (i, a) in accounts.iter().enumerate() {
        let linked = h.prm_by_crm(Collection::Organizations, a);
        assert_eq!(linked.len(), 1, "{a}");
        let written = h.sf_str("Account", a, "PRM_Id__c");
        if i == 450 && refused {
            assert_eq!(written, None, "refused");
        } else {
            assert_eq!(written.as_deref(), linked[0]["id"].as_str(), "{a}");
        }
    }
}

/// The 700 Accounts of [`held_seed`] with at most 250 write-backs held for a job: the rows of
/// the first passes go out while the next passes run (on another thread), the rest after
/// the pages. The same records, links, entries and counts as one job of all 700 gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_updates_written_beside_the_next_passes_reach_the_same_end_as_one_job() {
    let (mut h, accounts) = held_seed().await;
    h.mapping.salesforce.bulk_ingest_job_records = 250;
    let reports = h.sync_ctx(&h.ctx(), RunMode::Incremental).await;
    common::assert_succeeded(&reports);
    // The 400 rows of the first two passes go in a job written beside the third pass; the
    // last 300 (the refused one among them), no more than the ingest threshold, in
    // Collections of 200 after the pages.
    let calls = h.sf.api_calls();
    assert_eq!(calls.kind("bulk_ingest_create"), 1, "{calls:?}");
    assert_eq!(calls.kind("composite_update"), 2, "{calls:?}");
    assert_eq!(calls.kind("composite_upsert"), 0, "{calls:?}");
    assert_written_back(&h, &accounts, true);
    let refused = h.log(LogCode::CrmDataError).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].crm_id.as_deref(), Some(accounts[450].as_str()));
    // The counts one job gives.
    let (one, _) = held_seed().await;
    let one_job = one.sync_ctx(&one.ctx(), RunMode::Incremental).await;
    assert_eq!(one.sf.api_calls().kind("bulk_ingest_create"), 1);
    for (a, b) in reports.iter().zip(&one_job) {
        assert_eq!(a.counts, b.counts, "{reports:?} {one_job:?}");
    }
    assert_eq!(marked_for_retry(&h).await, 0);
    let again = h.sync().await;
    assert_eq!(common::total(&again, |c| c.writes()), 0, "{again:?}");
}

async fn marked_for_retry(h: &Harness) -> usize {
    h.ctx()
        .store
        .links_to_retry(ObjectKind::Organization)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_updates_of_several_passes_go_out_in_one_ingest_job() {
    let (h, accounts, reports) = held_world(&common::Crash::new(u64::MAX)).await;
    common::assert_succeeded(&reports);
    let calls = h.sf.api_calls();
    // four pages of Accounts, one (empty) of Contacts
    assert_eq!(
        calls.kind("query_all") + calls.kind("query_more"),
        5,
        "{calls:?}"
    );
    assert_eq!(calls.kind("bulk_ingest_create"), 1, "{calls:?}");
    assert_eq!(
        calls.kind("bulk_ingest_failed"),
        1,
        "the refused row: {calls:?}"
    );
    assert_eq!(
        calls.kind("composite_update") + calls.kind("composite_upsert"),
        0,
        "{calls:?}"
    );
    assert_written_back(&h, &accounts, true);
    // The refused record's entry, as Collections give it.
    let refused = h.log(LogCode::CrmDataError).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].crm_id.as_deref(), Some(accounts[450].as_str()));
    assert!(
        refused[0].message.contains("STRING_TOO_LONG"),
        "{}",
        refused[0].message
    );
    // Settled: no link is left marked for a retry, and the next runs write nothing (the
    // refused record waits until it changes).
    assert_eq!(marked_for_retry(&h).await, 0);
    for _ in 0..2 {
        let again = h.sync().await;
        assert_eq!(common::total(&again, |c| c.writes()), 0, "{again:?}");
    }
    assert_eq!(h.log(LogCode::CrmDataError).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_held_updates_are_settled_converges_without_duplicates() {
    // How many writes the run makes: the last is the ingest job of the held updates.
    let counting = common::Crash::new(u64::MAX);
    let (h, _, reports) = held_world(&counting).await;
    common::assert_succeeded(&reports);
    assert_eq!(h.sf.api_calls().kind("bulk_ingest_create"), 1);
    let writes = counting.writes.load(Ordering::SeqCst);
    assert!(writes >= 2, "{writes}");
    // A crash right after the job (its rows written, their links not settled yet: the
    // refused row is written again and goes through, as the simulator refuses it once), and
    // one right before it (after the last PRM write, the job never sent: the next run's job
    // refuses it).
    for (n, refused) in [(writes, false), (writes - 1, true)] {
        let (h, accounts, reports) = held_world(&common::Crash::new(n)).await;
        assert!(reports.iter().any(|r| r.status == "failed"), "{reports:?}");
        // at least the three passes before the last held theirs
        assert!(
            marked_for_retry(&h).await >= 600,
            "crash after write {n}: the held links wait"
        );
        common::assert_succeeded(&h.sync().await);
        common::assert_succeeded(&h.sync().await);
        assert_written_back(&h, &accounts, refused);
        assert_eq!(marked_for_retry(&h).await, 0, "crash after write {n}");
        assert_eq!(
            h.log(LogCode::CrmDataError).await.len(),
            usize::from(refused),
            "crash after write {n}"
        );
        let again = h.sync().await;
        assert_eq!(
            common::total(&again, |c| c.writes()),
            0,
            "crash after write {n}: settled"
        );
    }
}

/// The Lambda path makes the same choice: each chunk keeps the write-backs of the links
/// its pass created with the chunk, and the worker that closes the run writes those of
/// every chunk in one ingest job, for the same Salesforce calls as the one-machine run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_lambda_path_the_run_writes_its_chunks_write_backs_in_one_job() {
    let (one, _, reports) = held_world(&common::Crash::new(u64::MAX)).await;
    common::assert_succeeded(&reports);
    let one_machine = one.sf.api_calls();

    let (h, accounts) = held_seed().await;
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
    assert!(out.chunks.len() >= 4, "{} chunks", out.chunks.len());
    let lambda = h.sf.api_calls();
    assert_eq!(lambda.kind("bulk_ingest_create"), 1, "{lambda:?}");
    assert_eq!(
        lambda.kind("composite_update") + lambda.kind("composite_upsert"),
        0,
        "{lambda:?}"
    );
    let writes = |c: &prmsync_simulators::salesforce::ApiCalls| {
        c.by_kind
            .iter()
            .filter(|(k, _)| k.starts_with("bulk_ingest") || k.starts_with("composite"))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert_eq!(
        writes(&lambda),
        writes(&one_machine),
        "{lambda:?} / {one_machine:?}"
    );
    assert_written_back(&h, &accounts, true);
    let refused = h.log(LogCode::CrmDataError).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].crm_id.as_deref(), Some(accounts[450].as_str()));
    // the run's counts include the write-backs' outcome
    let org_run = &out
        .closed
        .iter()
        .find(|c| c.report.integration == prmsync_mapping::Integration::Organizations)
        .expect("the organizations run closed")
        .report;
    assert_eq!(org_run.counts.errors, 1, "{:?}", org_run.counts);
    assert_eq!(marked_for_retry(&h).await, 0);
    let again = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
    let written: u64 = again.chunks.iter().map(|c| c.counts.writes()).sum();
    assert_eq!(written, 0, "settled");
}
