//! The DynamoDB store passes the engine's store contract, against moto (or any DynamoDB
//! endpoint named by `AWS_ENDPOINT_URL`). `./scripts/test.sh` starts moto and sets it.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use prmsync_aws::dynamo::DynamoStore;
use prmsync_engine::report::Counts;
use prmsync_engine::store::{ChunkRecord, Cursors, Link, Links, RetrySet, RunChunks, StoreError};
use prmsync_engine::store_contract;
use prmsync_mapping::{Integration, ObjectKind};

/// A store on fresh, uniquely named tables; None (after a loud warning) when no endpoint
/// is configured and `PRMSYNC_REQUIRE_AWS` is not set.
async fn store() -> Option<DynamoStore> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        if std::env::var_os("PRMSYNC_REQUIRE_AWS").is_some() {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto");
        }
        // Written to stderr directly: the test harness captures `eprintln!` of passing tests.
        static WARN: std::sync::Once = std::sync::Once::new();
        WARN.call_once(|| {
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"\n!!! WARNING: AWS_ENDPOINT_URL is not set: the DynamoDB contract tests did NOT run.\n\
                  !!! Run ./scripts/test.sh (it starts moto), or set AWS_ENDPOINT_URL to a DynamoDB endpoint.\n\n",
            );
        });
        return None;
    }
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let store = DynamoStore::new(
        client,
        format!("prmsync-state-{suffix}"),
        format!("prmsync-log-{suffix}"),
    );
    store.create_tables().await.expect("create the test tables");
    // Creating them again is a no-op.
    store
        .create_tables()
        .await
        .expect("create_tables is idempotent");
    Some(store)
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some(store) = store().await {
                    store_contract::$name(&store).await;
                }
            }
        )*
    };
}

contract!(
    links,
    links_in_batches,
    children_pending,
    cursors,
    leases,
    pauses,
    checkpoints,
    take_checkpoint,
    runs,
    runs_since,
    run_chunks,
    retry_set,
    api_hold,
    log,
    rejections
);

#[tokio::test]
async fn all_contracts_on_one_store() {
    if let Some(store) = store().await {
        store_contract::all(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_of_one_version_let_exactly_one_win() {
    let Some(store) = store().await else { return };
    let store = Arc::new(store);
    let saved = store
        .save_link(&Link::new(ObjectKind::Organization, "org_race", "001RACE"))
        .await
        .expect("save");
    for round in 0..5 {
        let current = store
            .find_links(ObjectKind::Organization, &[], &["org_race".to_string()])
            .await
            .expect("find")
            .pop()
            .expect("the link exists");
        let tasks: Vec<_> = (0..2)
            .map(|writer| {
                let store = store.clone();
                let mut link = current.clone();
                link.prm_version = Some(round * 10 + writer);
                // One writer also moves the Salesforce Id (a transaction), one does not.
                if writer == 1 {
                    link.crm_id = format!("001RACE{round}");
                }
                tokio::spawn(async move { store.save_link(&link).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(l) => {
                    assert_eq!(l.version, current.version + 1);
                    wins += 1;
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(
            wins, 1,
            "round {round}: exactly one of two concurrent saves wins"
        );
    }
    // Two concurrent inserts of the same new pair: one wins.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .save_link(&Link::new(ObjectKind::Person, "per_race", "003RACE"))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("task").is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one of two concurrent inserts wins");
    assert!(saved.version == 1);
}

#[tokio::test]
async fn a_missing_table_names_the_table_and_the_fix() {
    let Some(store) = store().await else { return };
    let missing = DynamoStore::new(store.client().clone(), "prmsync-no-such-table", "x");
    let err = missing
        .find_links(ObjectKind::Organization, &[], &["org_1".to_string()])
        .await
        .expect_err("a missing table is an error");
    let text = err.to_string();
    assert!(
        text.contains("prmsync-no-such-table") && text.contains("PRMSYNC_STATE_TABLE"),
        "the error names the table and the setting: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finishes_count_every_chunk_once() {
    let Some(store) = store().await else { return };
    let store = Arc::new(store);
    let i = Integration::People;
    // GIVEN 12 chunks of a run
    let chunks: Vec<ChunkRecord> = (0..12)
        .map(|number| ChunkRecord {
            integration: i,
            run_id: "run-race".into(),
            number,
            crm_ids: vec![format!("003R{number}")],
            prm_ids: Vec::new(),
            done: false,
            counts: Counts::default(),
            held: Vec::new(),
        })
        .collect();
    store.add_chunks(&chunks).await.expect("add");
    // WHEN each is finished twice at once (a message and its redelivery)
    let tasks: Vec<_> = (0..24u32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let counts = Counts {
                    unchanged: u64::from(n),
                    ..Counts::default()
                };
                store
                    .finish_chunk(i, "run-race", n % 12, &counts, &[])
                    .await
            })
        })
        .collect();
    let mut counted = Vec::new();
    for t in tasks {
        if let Some(n) = t.await.expect("task").expect("finish") {
            counted.push(n);
        }
    }
    // THEN each chunk counts once, and a finish sees every chunk done
    assert_eq!(counted.len(), 12, "each chunk counts once: {counted:?}");
    assert_eq!(counted.iter().max(), Some(&12), "{counted:?}");
    let listed = store.run_chunks(i, "run-race").await.expect("list");
    assert!(listed.iter().all(|c| c.done), "every chunk is done");
}

#[tokio::test]
async fn a_checkpoint_stored_without_its_run_id_attribute_is_taken_by_its_run() {
    let Some(store) = store().await else { return };
    // GIVEN a checkpoint item as written before the run id was kept beside the JSON
    let checkpoint = serde_json::json!({
        "run_id": "run-legacy", "mode": "incremental", "started_at": "2024-05-01T10:00:00Z",
        "crm": {"from": {"since": null, "after": null}, "newest": null, "done": false},
        "prm": {"from": {"since": null, "after": null}, "newest": null, "done": false},
        "records": 10, "chunks": 1, "invocations": 1
    });
    store
        .client()
        .put_item()
        .table_name(store.state_table())
        .item("pk", AttributeValue::S("CHECKPOINT#organizations".into()))
        .item("sk", AttributeValue::S("PLAN".into()))
        .item("checkpoint", AttributeValue::S(checkpoint.to_string()))
        .send()
        .await
        .expect("put a checkpoint item");
    let i = Integration::Organizations;
    // WHEN another run, then its own run, takes it
    let other = store.take_checkpoint(i, "run-other").await.expect("take");
    let own = store.take_checkpoint(i, "run-legacy").await.expect("take");
    // THEN only its own run gets it, once
    assert_eq!(other, None);
    let own = own.expect("the checkpoint's own run takes it");
    assert_eq!(
        (own.run_id.as_str(), own.records, own.planned),
        ("run-legacy", 10, false)
    );
    assert_eq!(store.checkpoint(i).await.expect("checkpoint"), None);
    assert_eq!(
        store.take_checkpoint(i, "run-legacy").await.expect("take"),
        None
    );
}

#[tokio::test]
async fn an_item_that_cannot_be_read_is_an_error_naming_it() {
    let Some(store) = store().await else { return };
    store
        .client()
        .put_item()
        .table_name(store.state_table())
        .item("pk", AttributeValue::S("RETRY#deal".into()))
        .item("sk", AttributeValue::S("crm#006BAD".into()))
        .item("id", AttributeValue::S("006BAD".into()))
        .send()
        .await
        .expect("put a broken item");
    let err = store
        .all_retries(ObjectKind::Deal)
        .await
        .expect_err("an unreadable item is an error");
    let text = err.to_string();
    assert!(
        text.contains("RETRY#deal")
            && text.contains("crm#006BAD")
            && text.contains("delete the item"),
        "the error names the item and what to do: {text}"
    );
}
