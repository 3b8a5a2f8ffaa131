//! The mapping file read from S3, against moto (or any S3 endpoint named by
//! `AWS_ENDPOINT_URL`). `./scripts/test.sh` starts moto and sets it.

use aws_config::BehaviorVersion;
use prmsync_aws::mapping_source::{MappingLocation, MappingSourceError};
use prmsync_mapping::config::{Direction, DEFAULT_MAPPING};
use prmsync_mapping::MappingConfig;

/// The AWS configuration of the endpoint; None (after a loud warning) when no endpoint is
/// configured and `PRMSYNC_REQUIRE_AWS` is not set.
async fn aws() -> Option<aws_config::SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        if std::env::var_os("PRMSYNC_REQUIRE_AWS").is_some() {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto");
        }
        static WARN: std::sync::Once = std::sync::Once::new();
        WARN.call_once(|| {
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"\n!!! WARNING: AWS_ENDPOINT_URL is not set: the S3 mapping tests did NOT run.\n\
                  !!! Run ./scripts/test.sh (it starts moto), or set AWS_ENDPOINT_URL to an S3 endpoint.\n\n",
            );
        });
        return None;
    }
    Some(aws_config::defaults(BehaviorVersion::latest()).load().await)
}

fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    )
}

/// A fresh bucket, versioned when asked.
async fn bucket(aws: &aws_config::SdkConfig, versioned: bool) -> String {
    let name = format!("prmsync-mapping-{}", uuid::Uuid::new_v4().simple());
    let client = s3(aws);
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create the test bucket");
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("turn versioning on");
    }
    name
}

async fn put(aws: &aws_config::SdkConfig, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    s3(aws)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
        .send()
        .await
        .expect("upload the mapping");
}

fn location(bucket: &str, key: &str) -> MappingLocation {
    MappingLocation::parse(&format!("s3://{bucket}/{key}"))
        .unwrap()
        .unwrap()
}

/// The built-in mapping with the organization website owned by Salesforce.
fn website_to_prm() -> String {
    let from = "prm = \"website\"\ncrm = \"Website\"\n";
    assert_eq!(DEFAULT_MAPPING.matches(from).count(), 1);
    DEFAULT_MAPPING.replacen(from, &format!("{from}direction = \"to_prm\"\n"), 1)
}

fn website_direction(m: &MappingConfig) -> Direction {
    m.organizations
        .fields
        .iter()
        .find(|f| f.prm.as_deref() == Some("website"))
        .expect("a website field")
        .direction
}

#[tokio::test]
async fn a_mapping_in_s3_is_read_and_its_changes_are_used() {
    let Some(aws) = aws().await else { return };
    // GIVEN a versioned bucket holding the built-in mapping
    let bucket = bucket(&aws, true).await;
    put(&aws, &bucket, "prmsync/mapping.toml", DEFAULT_MAPPING).await;
    let at = location(&bucket, "prmsync/mapping.toml");
    let (first, text) = at.load(&aws).await.expect("the mapping loads");
    assert_eq!(first, MappingConfig::default());
    assert_eq!(website_direction(&first), Direction::Both);
    let first_version = text
        .version_id
        .expect("a versioned bucket names the version");

    // WHEN an operator uploads a mapping in which Salesforce owns the website
    put(&aws, &bucket, "prmsync/mapping.toml", website_to_prm()).await;

    // THEN the next read uses it, and names the new version
    let (second, text) = at.load(&aws).await.expect("the changed mapping loads");
    assert_eq!(website_direction(&second), Direction::ToPrm);
    assert_ne!(text.version_id.as_deref(), Some(first_version.as_str()));
}

#[tokio::test]
async fn a_missing_object_or_bucket_is_named_with_the_fix() {
    let Some(aws) = aws().await else { return };
    let bucket = bucket(&aws, false).await;

    // a bucket without the object
    let err = location(&bucket, "mapping.toml")
        .load(&aws)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MappingSourceError::NotFound { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    let object = format!("s3://{bucket}/mapping.toml");
    assert!(
        text.contains(&format!("{object} does not exist"))
            && text.contains(&format!("aws s3 cp mapping.toml {object}"))
            && text.contains("MappingLocation"),
        "{text}"
    );

    // no such bucket
    let err = location(&format!("{bucket}-missing"), "mapping.toml")
        .load(&aws)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MappingSourceError::NotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("s3://{bucket}-missing/mapping.toml")),
        "{err}"
    );
}

#[tokio::test]
async fn an_invalid_mapping_gets_the_message_the_cli_gives_for_the_file() {
    let Some(aws) = aws().await else { return };
    let bucket = bucket(&aws, false).await;
    let object = format!("s3://{bucket}/mapping.toml");
    for src in [
        // a value the file format does not allow
        "[[people.fields]]\nprm = \"email\"\ncrm = \"Email\"\ndirection = \"upwards\"\n",
        // not TOML at all
        "organizations: [name]\n",
        // valid TOML, but a PRM field that does not exist
        "[[organizations.fields]]\nprm = \"nickname\"\ncrm = \"Name\"\n",
    ] {
        put(&aws, &bucket, "mapping.toml", src).await;
        let err = location(&bucket, "mapping.toml")
            .load(&aws)
            .await
            .unwrap_err();
        // what `prmsync mapping check` says of the same text, with the object as its origin
        let cli = MappingConfig::parse(src, &object).unwrap_err();
        assert!(matches!(err, MappingSourceError::Invalid(_)), "{err:?}");
        assert_eq!(err.to_string(), cli.to_string());
        assert!(err.to_string().starts_with(&object), "{err}");
    }

    // bytes that are not text
    put(&aws, &bucket, "mapping.toml", vec![0x1f, 0x8b, 0xff, 0xfe]).await;
    let err = location(&bucket, "mapping.toml")
        .load(&aws)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MappingSourceError::NotText { .. }) && err.to_string().contains(&object),
        "{err:?}"
    );
}
