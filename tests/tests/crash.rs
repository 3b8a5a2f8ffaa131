//! Crash safety (sync rule 5 in `docs/sync-rules.md`): a failure right after each write in
//! turn, and every batch delivered twice at once, both end with exactly one record per side
//! and the right values.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use prmsync_engine::objects::ObjectSpec;
use prmsync_engine::pass::{run_pass, PassInput};
use prmsync_engine::RunMode;
use prmsync_mapping::ObjectKind;
use prmsync_simulators::prm::Collection;
use serde_json::json;

/// Two Accounts with Contacts in Salesforce, two organizations with people in the PRM, and
/// one pair linked already with a change on each side.
async fn seeded() -> (Harness, String, String) {
    seeded_with(Harness::new().await).await
}

/// [`seeded`] on a harness made as the test wants it.
async fn seeded_with(h: Harness) -> (Harness, String, String) {
    let linked = h.account("Linked Co", Some("Active Partner"), json!({"Phone": "1"}));
    assert_succeeded(&h.sync().await);
    let linked_org = seed_the_rest(&h, &linked);
    (h, linked, linked_org)
}

/// After the first sync linked "Linked Co": two more Accounts with Contacts, two
/// organizations with people, and a change on each side of the linked pair. Returns the
/// linked organization.
fn seed_the_rest(h: &Harness, linked: &str) -> String {
    let linked_org = h.sf_str("Account", linked, "PRM_Id__c").unwrap();
    for i in 0..2 {
        let acc = h.account(
            &format!("SF Org {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://sf{i}.example")}),
        );
        for j in 0..2 {
            h.contact(
                &acc,
                "Sf",
                &format!("Person{i}{j}"),
                &format!("sf{i}{j}@sf{i}.example"),
            );
        }
        let org = h.org("distributor", "active", &format!("PRM Org {i}"));
        for j in 0..2 {
            h.prm.insert(
                Collection::People,
                json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Prm", "last_name": format!("Person{i}{j}"), "email": format!("prm{i}{j}@prm{i}.example")}),
            );
        }
    }
    h.sf.update("Account", linked, obj(json!({"Phone": "2"})));
    h.prm.update(
        Collection::Organizations,
        &linked_org,
        json!({"city": "Porto"}),
    );
    linked_org
}

/// Exactly one record per side for each, linked both ways, with the right values.
fn assert_converged(h: &Harness, linked: &str, linked_org: &str, context: &str) {
    let accounts = h.sf_records("Account");
    let orgs = h.prm.list(Collection::Organizations);
    assert_eq!(accounts.len(), 5, "{context}: Accounts {accounts:?}");
    assert_eq!(orgs.len(), 5, "{context}: organizations");
    let contacts = h.sf_records("Contact");
    let people = h.prm.list(Collection::People);
    assert_eq!(contacts.len(), 8, "{context}: Contacts");
    assert_eq!(people.len(), 8, "{context}: people");
    for a in &accounts {
        let org = a["PRM_Id__c"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: Account without PRM id {a:?}"));
        let o = h.prm_get(Collection::Organizations, org);
        assert_eq!(o["crm_id"], a["Id"], "{context}: linked both ways");
        assert_eq!(o["name"], a["Name"], "{context}");
        assert!(
            a["PRM_Record_Status__c"].is_string(),
            "{context}: Record Status set"
        );
    }
    for c in &contacts {
        let pid = c["PRM_Id__c"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: Contact without PRM id"));
        let p = h.prm_get(Collection::People, pid);
        assert_eq!(p["crm_id"], c["Id"], "{context}");
        assert_eq!(p["last_name"], c["LastName"], "{context}");
    }
    assert_eq!(
        h.sf_str("Account", linked, "BillingCity").as_deref(),
        Some("Porto"),
        "{context}"
    );
    assert_eq!(
        h.prm_get(Collection::Organizations, linked_org)["phone"],
        "2",
        "{context}"
    );
}

#[tokio::test]
async fn a_crash_after_any_write_converges_on_the_next_run() {
    crash_after_each_write(0).await;
}

/// Salesforce writes of more than one record go by Bulk API 2.0 ingest jobs: a crash
/// after a job closed and before its results were recorded converges too.
#[tokio::test]
async fn a_crash_after_any_ingest_job_converges_on_the_next_run() {
    crash_after_each_write(1).await;
}

/// A run crashed right after each of its writes in turn (`ingest_threshold` as
/// `[salesforce] bulk_ingest_threshold`, 0 = Collections only), then run again.
async fn crash_after_each_write(ingest_threshold: u64) {
    let harness = || Harness::with_ingest_threshold(ingest_threshold);
    // How many writes a clean run makes.
    let (h, linked, linked_org) = seeded_with(harness().await).await;
    let crash = Crash::new(u64::MAX);
    let ctx = h.crashing_ctx(&crash);
    assert_succeeded(&h.sync_ctx(&ctx, RunMode::Incremental).await);
    assert_converged(&h, &linked, &linked_org, "clean run");
    let writes = crash.writes.load(Ordering::SeqCst);
    assert!(
        writes >= 10,
        "the scenario makes writes on both sides: {writes}"
    );

    if ingest_threshold > 0 {
        assert!(
            h.sf.api_calls().kind("bulk_ingest_create") > 0,
            "the clean run wrote through ingest jobs"
        );
    }

    for n in 1..=writes {
        let (h, linked, linked_org) = seeded_with(harness().await).await;
        let crash = Crash::new(n);
        let ctx = h.crashing_ctx(&crash);
        let crashed = h.sync_ctx(&ctx, RunMode::Incremental).await;
        assert!(
            crashed.iter().any(|r| r.status == "failed"),
            "write {n} crashed the run"
        );
        assert_succeeded(&h.sync().await);
        assert_succeeded(&h.sync().await);
        assert_converged(&h, &linked, &linked_org, &format!("crash after write {n}"));
        // and a further run changes nothing
        let again = h.sync().await;
        assert_eq!(
            total(&again, |c| c.writes()),
            0,
            "crash after write {n}: settled"
        );
    }
}

#[tokio::test]
async fn every_batch_delivered_twice_at_once_converges() {
    let (h, linked, linked_org) = seeded().await;
    let ctx = h.ctx();
    for kind in [ObjectKind::Organization, ObjectKind::Person] {
        let spec = ObjectSpec::new(kind, &h.mapping);
        let fields = spec.crm_fields();
        let input = PassInput {
            crm: ctx
                .crm
                .changed(spec.crm_object(), &fields, None, &spec.scope())
                .await
                .unwrap(),
            prm: ctx.prm.changed(spec.prm_collection(), None).await.unwrap(),
            full: false,
            retry_rejected: false,
            ..Default::default()
        };
        let (a, b) = tokio::join!(
            run_pass(&ctx, kind, "run-a", false, input.clone()),
            run_pass(&ctx, kind, "run-b", false, input.clone())
        );
        a.unwrap();
        b.unwrap();
        // and once more, late, with the same stale records
        run_pass(&ctx, kind, "run-c", false, input).await.unwrap();
    }
    assert_succeeded(&h.sync().await);
    assert_converged(&h, &linked, &linked_org, "double delivery");
    let again = h.sync().await;
    assert_eq!(total(&again, |c| c.writes()), 0, "settled");
}

#[tokio::test]
async fn a_crash_after_any_write_on_the_lambda_path_converges() {
    use prmsync_engine::worker::ChunkVerdict;
    // How many writes the planner and workers make on a clean run.
    let (h, linked, linked_org) = seeded().await;
    let crash = Crash::new(u64::MAX);
    let ctx = h.crashing_ctx(&crash);
    h.lambda_sync(&ctx, RunMode::Incremental).await;
    assert_converged(&h, &linked, &linked_org, "clean run");
    let writes = crash.writes.load(Ordering::SeqCst);
    assert!(
        writes >= 10,
        "the scenario makes writes on both sides: {writes}"
    );

    for n in 1..=writes {
        let (h, linked, linked_org) = seeded().await;
        let crash = Crash::new(n);
        let ctx = h.crashing_ctx(&crash);
        // The crashed chunk is handed out again after its delay, which the harness lets
        // pass; a crash in the close of a run (the write-backs its chunks held) fails the
        // message, whose redelivery closes the run.
        let out = h.lambda_sync(&ctx, RunMode::Incremental).await;
        assert!(
            out.chunks
                .iter()
                .any(|c| c.verdict == ChunkVerdict::Requeued)
                || out
                    .chunks
                    .iter()
                    .any(|c| c.verdict == ChunkVerdict::Redelivered && c.closed.is_some()),
            "write {n} crashed a chunk or a close"
        );
        assert_converged(&h, &linked, &linked_org, &format!("crash after write {n}"));
        // and a further run changes nothing
        let again = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
        let writes: u64 = again.chunks.iter().map(|c| c.counts.writes()).sum();
        assert_eq!(writes, 0, "crash after write {n}: settled");
    }
}

/// The seeded scenario on AWS: the functions' handlers over fresh DynamoDB tables and SQS
/// queues on moto, the first sync (that links "Linked Co") made through them too. Returns
/// the harness, moto, the linked Account and organization.
async fn seeded_on_aws(
    mapping: prmsync_mapping::MappingConfig,
) -> (Harness, common::aws::Moto, String, String) {
    let h = Harness::with_mapping(mapping).await;
    let linked = h.account("Linked Co", Some("Active Partner"), json!({"Phone": "1"}));
    let moto = common::aws::Moto::new(5).await;
    let (deps, invocations) = moto.deps(h.ctx());
    aws_sync(&deps, &moto, &invocations).await;
    let linked_org = seed_the_rest(&h, &linked);
    (h, moto, linked, linked_org)
}

/// The hourly run on AWS: full-sync's `all`, then the workers until the queue is empty.
async fn aws_sync(
    deps: &prmsync_lambda::Deps,
    moto: &common::aws::Moto,
    invocations: &common::aws::Invocations,
) {
    prmsync_lambda::handlers::full_sync::handle(deps, json!({"integration": "all"}))
        .await
        .unwrap();
    moto.drain(deps, invocations, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_write_on_aws_converges() {
    use prmsync_engine::store::IntegrationLog;
    if common::aws::endpoint().is_none() {
        return;
    }
    // A crashed chunk is handed out again at once (no retry delay), so the test need not
    // wait for SQS.
    let mut mapping = prmsync_mapping::MappingConfig::default();
    mapping.sync.retry_delay_seconds = 0;
    // How many writes a clean run makes.
    let (h, moto, linked, linked_org) = seeded_on_aws(mapping.clone()).await;
    let crash = Crash::new(u64::MAX);
    let (deps, invocations) = moto.deps(h.crashing_ctx(&crash));
    aws_sync(&deps, &moto, &invocations).await;
    assert_converged(&h, &linked, &linked_org, "clean run on AWS");
    let writes = crash.writes.load(Ordering::SeqCst);
    assert!(
        writes >= 10,
        "the scenario makes writes on both sides: {writes}"
    );

    for n in 1..=writes {
        let (h, moto, linked, linked_org) = seeded_on_aws(mapping.clone()).await;
        let crash = Crash::new(n);
        let (deps, invocations) = moto.deps(h.crashing_ctx(&crash));
        aws_sync(&deps, &moto, &invocations).await;
        let context = format!("crash after write {n} on AWS");
        assert_converged(&h, &linked, &linked_org, &context);
        assert!(
            moto.dead_letters().await.is_empty(),
            "{context}: nothing dead"
        );
        let chunk_retried = moto
            .store
            .entries(&prmsync_engine::LogFilter {
                code: Some(prmsync_mapping::LogCode::ChunkRetried),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            !chunk_retried.is_empty(),
            "{context}: the crashed chunk, or the message of the crashed close, was handed out again"
        );
    }
}
