//! `prmsync sync-record --aws`: the record is put on the deployment's work queue (moto's
//! SQS, started by `./scripts/test.sh`) as the one-record message a worker syncs, with
//! the operator's own credentials; a missing queue or a dry run is refused with the fix.
#![cfg(feature = "aws")]

mod common;

use common::{endpoint, text};

use std::process::{Command, Output};

fn sync_record(args: &[&str], queue_url: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prmsync"));
    cmd.arg("sync-record").args(args).current_dir(dir.path());
    match queue_url {
        Some(u) => cmd.env("PRMSYNC_QUEUE_URL", u),
        None => cmd.env_remove("PRMSYNC_QUEUE_URL"),
    };
    cmd.output().expect("prmsync runs")
}

#[tokio::test]
async fn a_record_is_queued_for_the_workers_by_its_18_character_id() {
    if endpoint("`sync-record --aws`").is_none() {
        return;
    }
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = sqs
        .create_queue()
        .queue_name(format!("work-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // the 15-character form is queued as the 18-character Id links use
    let out = sync_record(&["--aws", "--json", "001Sm0000000001"], Some(&queue));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["queued"], true);
    let run_id = said["run_id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("record-"), "{said}");
    let out = sync_record(&["--aws", "prm:person:per_7"], Some(&queue));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("prm:person:per_7: queued for the workers"));

    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert!(
            !got.is_empty(),
            "only {} of 2 messages: {bodies:?}",
            bodies.len()
        );
        bodies.extend(
            got.into_iter()
                .map(|m| serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap()),
        );
    }
    let account = bodies
        .iter()
        .find(|b| b["integration"] == "organizations")
        .expect("the Account's message");
    assert_eq!(
        account["crm_ids"],
        serde_json::json!(["001Sm0000000001IAA"])
    );
    assert_eq!(account["prm_ids"], serde_json::json!([]));
    assert_eq!(account["run_id"], run_id.as_str());
    let person = bodies
        .iter()
        .find(|b| b["integration"] == "people")
        .expect("the person's message");
    assert_eq!(person["prm_ids"], serde_json::json!(["per_7"]));
}

#[tokio::test]
async fn without_the_queue_or_with_a_dry_run_nothing_is_queued_and_the_fix_is_named() {
    if endpoint("`sync-record --aws`").is_none() {
        return;
    }
    let out = sync_record(&["--aws", "001Sm0000000001IAA"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("PRMSYNC_QUEUE_URL is not set") && err.contains("WorkQueueUrl"),
        "{err}"
    );
    let out = sync_record(
        &["--aws", "--dry-run", "001Sm0000000001IAA"],
        Some("http://127.0.0.1:9/never"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("drop --dry-run"),
        "{}",
        text(&out.stderr)
    );
    let out = sync_record(&["--aws", "hello"], Some("http://127.0.0.1:9/never"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("neither a Salesforce Id"),
        "{}",
        text(&out.stderr)
    );
}
