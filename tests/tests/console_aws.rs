//! `prmsync console --aws`: the console over the AWS deployment. Run Now invokes the
//! function that owns the integration (Lambda's Invoke API, served by the kit, runs the
//! real handlers) with the run id the page follows; the workers (the kit's event source
//! on moto's SQS) sync the chunks and close the run, and the page shows its counts. Sync
//! Now puts the record on the work queue, as `prmsync sync-record --aws` does, and a
//! worker syncs it. The record page says live values are not read on AWS.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::aws::{endpoint, Moto};
use common::lambda_api::{LambdaApi, DEAL_IMPORT, FULL_SYNC};
use prmsync_aws::deployment::Deployment;
use prmsync_console::deployment::DeploymentRunner;
use prmsync_console::Console;
use prmsync_engine::store::Store;
use prmsync_mapping::ObjectKind;
use prmsync_simulators::prm::Collection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_invokes_the_functions_and_follows_the_run_until_the_workers_close_it() {
    if endpoint().is_none() {
        return;
    }
    let moto = Arc::new(Moto::new(5).await);
    let store: Arc<dyn Store> = moto.store.clone();
    let (sandbox, ctx) = common::console::sandbox_context(store.clone(), Default::default()).await;
    let mapping = ctx.mapping.clone();
    let (deps, invocations) = moto.deps(ctx);
    let deps = Arc::new(deps);
    let lambda = LambdaApi::serve(deps.clone()).await;
    let deployment = Deployment::new(
        lambda.client().await,
        moto.sqs.clone(),
        Some(FULL_SYNC.into()),
        Some(DEAL_IMPORT.into()),
        Some(moto.queue_url.clone()),
    );
    let mut runner = DeploymentRunner::new(deployment, store.clone());
    runner.poll = Duration::from_millis(100);
    let console = Console::new(store.clone(), mapping, Arc::new(runner), "AWS", None);
    // 250 more flagged Accounts: the run is two chunks of at most 200
    for n in 0..250 {
        let fields = serde_json::json!({
            "Name": format!("Chunked {n} Ltd"),
            "PRM_Sync__c": true,
            "PRM_Organization_Status__c": "Active Partner",
        });
        sandbox
            .salesforce
            .insert("Account", fields.as_object().unwrap().clone());
    }
    let s = common::console::serve(console, store.clone(), sandbox).await;
    let csrf = s.csrf().await;

    // Run Full Sync Now on organizations: full-sync plans, the workers sync the chunks
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "full"),
            ("integration", "organizations"),
        ],
    )
    .await;
    // the planner queued the chunks; one worker finishes the first: the page shows the
    // run going with the records of that chunk done
    let deadline = Instant::now() + Duration::from_secs(240);
    let running = loop {
        let (_, body) = s.get("/runs.json").await;
        let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
        let run = runs["organizations"].clone();
        assert!(run["finished_at"].is_null(), "no worker ran yet: {runs}");
        if !moto.worker_batch_of(&deps, 1).await.is_empty() {
            let (_, body) = s.get("/runs.json").await;
            let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
            break runs["organizations"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the planner queued nothing: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(running["finished_at"].is_null(), "{running}");
    let done = running["records_done"].as_u64().unwrap();
    assert!((1..=400).contains(&done), "one chunk's records: {running}");
    // the rest by the workers, as Lambda's event source would
    let _workers = moto.workers(deps.clone(), invocations);
    let run = s.finished_run("organizations").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let invoked = lambda.invoked();
    assert_eq!(invoked.len(), 1, "{invoked:?}");
    let (function, payload) = &invoked[0];
    assert_eq!(function, FULL_SYNC);
    assert_eq!(payload["integration"], "organizations");
    assert_eq!(payload["mode"], "full");
    assert_eq!(
        payload["run_id"], run["run_id"],
        "the page follows the run it asked for"
    );
    // the counts are the closed run's, as the workers summed them in the state table
    let record = store
        .last_run(prmsync_mapping::Integration::Organizations)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.run_id, run["run_id"].as_str().unwrap());
    let created = run["counts"]["created"]["prm"].as_u64().unwrap()
        + run["counts"]["created"]["crm"].as_u64().unwrap();
    assert!(created > 250, "{run}");
    assert!(run["records_done"].as_u64().unwrap() > done, "{run}");
    assert_eq!(
        serde_json::to_value(&record.counts).unwrap(),
        run["counts"],
        "the page shows the closed run's counts"
    );
    let links = store.count_links(ObjectKind::Organization).await.unwrap();
    assert!(links.values().sum::<u64>() >= created, "{links:?}");

    // deals: deal-import runs in its invocation; its rejections are in the log table
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "full"),
            ("integration", "deals"),
        ],
    )
    .await;
    let deals = s.finished_run("deals").await;
    assert_eq!(deals["status"], "succeeded", "{deals}");
    assert!(deals["errors_so_far"].as_u64().unwrap() > 0, "{deals}");
    assert_eq!(lambda.invoked()[1].0, DEAL_IMPORT);
    let (_, log) = s.get("/log?integration=deals&level=error").await;
    assert!(log.contains("deal_no_primary_contact"), "{log}");

    // Sync Now queues the record; a worker reads it fresh and writes the PRM
    let ids: Vec<String> = s
        ._sandbox
        .prm
        .list(Collection::Organizations)
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_string))
        .collect();
    let link = store
        .find_links(ObjectKind::Organization, &[], &ids)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a linked organization");
    let mut fields = serde_json::Map::new();
    fields.insert("Name".into(), "Renamed by Sync Now".into());
    s._sandbox
        .salesforce
        .update("Account", &link.crm_id, fields);
    let (status, done) = s
        .post_to("/record/sync", &[("csrf", &csrf), ("id", &link.crm_id)])
        .await;
    assert_eq!(status, 303);
    assert!(
        done.contains("queued for the workers as run record-"),
        "{done}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let org = s
            ._sandbox
            .prm
            .get(Collection::Organizations, &link.prm_id)
            .unwrap();
        if org["name"] == "Renamed by Sync Now" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not sync it: {org}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // the record page shows the snapshot and says live values are not read here
    let (status, page) = s.get(&format!("/record?id={}", link.crm_id)).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-field="no-live""#), "{page}");
    assert!(page.contains(r#"data-field="snapshot""#), "{page}");
    let (status, page) = s.get("/record?id=someone%40example.com").await;
    assert_eq!(status, 400);
    assert!(page.contains("does not connect"), "{page}");
}
