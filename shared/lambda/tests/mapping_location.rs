//! A function's cold start reads the mapping named by `PRMSYNC_MAPPING_FILE` from S3, on
//! moto (`./scripts/test.sh` starts it and sets `AWS_ENDPOINT_URL`). One test: it sets the
//! process's environment.

use prmsync_lambda::deps::mapping_from_env;
use prmsync_lambda::{Deps, FunctionEnv};
use prmsync_mapping::config::{Direction, DEFAULT_MAPPING};

/// The moto endpoint, or None (loudly) when a plain `cargo test` has none.
fn endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PRMSYNC_REQUIRE_AWS").is_ok() => {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "WARNING: the S3 mapping cold-start test did NOT run: AWS_ENDPOINT_URL is not set (./scripts/test.sh starts moto)");
            None
        }
    }
}

#[tokio::test]
async fn cold_start_reads_the_mapping_object_and_refuses_a_missing_one() {
    if endpoint().is_none() {
        return;
    }
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("prmsync-cold-start-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    // GIVEN a mapping object in which Salesforce owns the people's titles
    let from = "prm = \"title\"\ncrm = \"Title\"\n";
    assert_eq!(DEFAULT_MAPPING.matches(from).count(), 1);
    let src = DEFAULT_MAPPING.replacen(from, &format!("{from}direction = \"to_prm\"\n"), 1);
    s3.put_object()
        .bucket(&bucket)
        .key("mapping.toml")
        .body(src.into_bytes().into())
        .send()
        .await
        .unwrap();

    // WHEN a function starts with the template's variable pointing at it
    std::env::set_var(
        "PRMSYNC_MAPPING_FILE",
        format!("s3://{bucket}/mapping.toml"),
    );
    let mapping = mapping_from_env(&aws).await.expect("the mapping loads");

    // THEN the changed direction is what the engine gets
    let title = mapping
        .people
        .fields
        .iter()
        .find(|f| f.prm.as_deref() == Some("title"))
        .unwrap();
    assert_eq!(title.direction, Direction::ToPrm);

    // GIVEN the variable names an object that is not there
    let missing = format!("s3://{bucket}/missing.toml");
    // WHEN the function starts with it
    let settings = FunctionEnv {
        secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:never-read".into(),
        state_table: "state".into(),
        log_table: "log".into(),
        queue_url: "http://127.0.0.1/queue".into(),
        mapping: missing.clone(),
    };
    let err = match Deps::load(&aws, &settings, None).await {
        Ok(_) => panic!("a function started with a missing mapping object"),
        Err(e) => format!("{e:#}"),
    };
    // THEN it stops before anything else, naming the object and the fix
    assert!(
        err.contains(&format!("{missing} does not exist")) && err.contains("aws s3 cp"),
        "{err}"
    );
    std::env::remove_var("PRMSYNC_MAPPING_FILE");
}
