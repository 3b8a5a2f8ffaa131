//! `prmsync mapping check --aws`: the deployment's mapping file, read from S3 (moto, started
//! by `./scripts/test.sh`), checked exactly as `prmsync mapping check FILE` checks a file.
#![cfg(feature = "aws")]

mod common;

use common::{endpoint, text};

use std::path::Path;
use std::process::{Command, Output};

/// A mapping whose check fails on line 4.
const BAD_DIRECTION: &str =
    "[[people.fields]]\nprm = \"email\"\ncrm = \"Email\"\ndirection = \"upwards\"\n";
/// A valid mapping in which Salesforce owns the organizations' websites.
const WEBSITE_TO_PRM: &str = "[[organizations.fields]]\nprm = \"name\"\ncrm = \"Name\"\n\n[[organizations.fields]]\nprm = \"website\"\ncrm = \"Website\"\ndirection = \"to_prm\"\n";

/// A fresh bucket holding `objects`.
async fn bucket_with(objects: &[(&str, &str)]) -> String {
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("prmsync-cli-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for (key, body) in objects {
        s3.put_object()
            .bucket(&bucket)
            .key(*key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    bucket
}

/// `prmsync mapping check ARGS` in `dir`, with `PRMSYNC_MAPPING_FILE` set to `location`
/// (or removed).
fn check(dir: &Path, args: &[&str], location: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prmsync"));
    cmd.args(["mapping", "check"]).args(args).current_dir(dir);
    match location {
        Some(l) => cmd.env("PRMSYNC_MAPPING_FILE", l),
        None => cmd.env_remove("PRMSYNC_MAPPING_FILE"),
    };
    cmd.output().expect("prmsync runs")
}

#[tokio::test]
async fn a_valid_deployed_mapping_passes_with_the_file_report() {
    if endpoint("`mapping check --aws`").is_none() {
        return;
    }
    let bucket = bucket_with(&[("prmsync/mapping.toml", WEBSITE_TO_PRM)]).await;
    let object = format!("s3://{bucket}/prmsync/mapping.toml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapping.toml"), WEBSITE_TO_PRM).unwrap();

    // the same text checked as a file and as the deployed object
    let file = check(dir.path(), &["mapping.toml"], None);
    let deployed = check(dir.path(), &["--aws"], Some(&object));
    assert!(file.status.success(), "{}", text(&file.stderr));
    assert!(deployed.status.success(), "{}", text(&deployed.stderr));
    assert_eq!(
        text(&deployed.stdout),
        text(&file.stdout).replace("mapping.toml", &object),
    );
    assert!(
        text(&deployed.stdout).starts_with(&format!("{object}: valid — 2 organization fields")),
        "{}",
        text(&deployed.stdout)
    );

    // --location instead of the variable (--aws implied)
    let given = check(dir.path(), &["--location", &object], None);
    assert!(given.status.success(), "{}", text(&given.stderr));
    assert_eq!(text(&given.stdout), text(&deployed.stdout));
}

#[tokio::test]
async fn an_invalid_or_missing_deployed_mapping_fails_with_the_fix() {
    if endpoint("`mapping check --aws`").is_none() {
        return;
    }
    let bucket = bucket_with(&[("mapping.toml", BAD_DIRECTION)]).await;
    let object = format!("s3://{bucket}/mapping.toml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapping.toml"), BAD_DIRECTION).unwrap();

    // an invalid mapping: the message the file check gives, naming the object
    let file = check(dir.path(), &["mapping.toml"], None);
    let deployed = check(dir.path(), &["--aws"], Some(&object));
    assert!(!file.status.success() && !deployed.status.success());
    assert_eq!(deployed.status.code(), file.status.code());
    let said = text(&deployed.stderr);
    assert_eq!(said, text(&file.stderr).replace("mapping.toml", &object));
    assert!(said.contains("line 4") && said.contains("fix:"), "{said}");

    // a missing object: named, with the upload command
    let missing = format!("s3://{bucket}/missing.toml");
    let out = check(dir.path(), &["--aws", "--location", &missing], None);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("{missing} does not exist"))
            && said.contains(&format!("aws s3 cp mapping.toml {missing}")),
        "{said}"
    );

    // a file and a location at once: refused
    let out = check(dir.path(), &["mapping.toml", "--location", &object], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );

    // no location at all: says where to find it
    let out = check(dir.path(), &["--aws"], None);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("PRMSYNC_MAPPING_FILE") && said.contains("--location"),
        "{said}"
    );
}
