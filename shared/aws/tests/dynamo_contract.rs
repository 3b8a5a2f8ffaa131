//! The DynamoDB store passes the engine's store contract, against moto (or any DynamoDB
//! endpoint named by `AWS_ENDPOINT_URL`). `./scripts/test.sh` starts moto and sets it.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use prmsync_aws::dynamo::DynamoStore;
use prmsync_engine::store::{Link, Links, StoreError};
use prmsync_engine::store_contract;
use prmsync_mapping::ObjectKind;

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
    runs,
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
