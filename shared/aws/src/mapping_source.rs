//! Where a deployment's mapping file lives: an S3 object (`s3://BUCKET/KEY`, what operators
//! change without rebuilding the functions), a file in the function package, or nowhere
//! (the built-in mapping). Read once per cold start and validated exactly as
//! `prmsync mapping check FILE` validates a file, with the location as the origin of the
//! messages.
//!
//! SSM parameters are refused on purpose: a standard parameter holds 4 KB and an advanced
//! one 8 KB, and the built-in mapping alone is 3.6 KB.

use std::fmt;
use std::path::PathBuf;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use prmsync_mapping::{MappingConfig, MappingError};

/// The variable that holds the location (the template's `MappingLocation` parameter).
pub const MAPPING_ENV: &str = "PRMSYNC_MAPPING_FILE";

/// Larger objects are refused before they are read: a mapping file is a few KB.
pub const MAX_MAPPING_BYTES: i64 = 1024 * 1024;

const FORMS: &str = "give s3://BUCKET/KEY (the object holding the mapping file), a path in \
                     the function package, or nothing for the built-in mapping (the stack's \
                     MappingLocation parameter, PRMSYNC_MAPPING_FILE to the functions)";

/// A mapping location that is not the built-in mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingLocation {
    /// An object in S3.
    S3 { bucket: String, key: String },
    /// A file on this machine (in a Lambda: in the function package).
    File(PathBuf),
}

impl fmt::Display for MappingLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The mapping text as read, with the S3 object's version when the bucket keeps versions.
#[derive(Debug, Clone)]
pub struct MappingText {
    pub text: String,
    pub version_id: Option<String>,
}

/// Why the mapping could not be read or used. Each message names the location and the fix.
#[derive(Debug, thiserror::Error)]
pub enum MappingSourceError {
    #[error("mapping location {value}: {reason}\n  fix: {FORMS}")]
    Location { value: String, reason: String },
    #[error("the mapping file {location} does not exist ({code})\n  fix: upload it with `aws s3 cp mapping.toml {location}`, or deploy with MappingLocation set to the object that holds it")]
    NotFound { location: String, code: String },
    #[error("S3 refused to read the mapping file {location} ({code})\n  fix: the function's role (or your credentials) needs s3:GetObject on {arn} — the template grants it to the functions for the MappingLocation they are deployed with; with only s3:GetObject, S3 also answers AccessDenied when the object does not exist, so check it with `aws s3 ls {location}`; an object encrypted with a customer KMS key also needs kms:Decrypt on that key")]
    AccessDenied {
        location: String,
        arn: String,
        code: String,
    },
    #[error("the bucket of the mapping file {location} is in another region than {region} ({code})\n  fix: keep the mapping in a bucket of the stack's region")]
    WrongRegion {
        location: String,
        region: String,
        code: String,
    },
    #[error("the mapping file {location} is archived ({code})\n  fix: restore it or upload it again in the S3 Standard storage class")]
    Archived { location: String, code: String },
    #[error("cannot read the mapping file {location}: {message}\n  fix: check the AWS credentials, AWS_REGION, AWS_ENDPOINT_URL and the network to S3")]
    Read { location: String, message: String },
    #[error("the mapping file {location} is {bytes} bytes: a mapping file is a few KB\n  fix: check that the location names the mapping file (TOML) and not another object")]
    TooLarge { location: String, bytes: i64 },
    #[error("the mapping file {location} is not UTF-8 text\n  fix: upload the TOML file itself (`prmsync mapping default` prints one to start from), not a compressed or encoded copy")]
    NotText { location: String },
    #[error("cannot read the mapping file {location} ({MAPPING_ENV}): {source}\n  fix: put the file in the function package beside the binary and give its path, or {FORMS}")]
    File {
        location: String,
        #[source]
        source: std::io::Error,
    },
    /// Read, but not a valid mapping: the same message `prmsync mapping check` prints.
    #[error(transparent)]
    Invalid(#[from] MappingError),
}

impl MappingLocation {
    /// Parses a location; None for an empty value (the built-in mapping).
    pub fn parse(value: &str) -> Result<Option<Self>, MappingSourceError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let refuse = |reason: &str| MappingSourceError::Location {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(refuse("an S3 location names a bucket and an object key"));
            }
            return Ok(Some(Self::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }));
        }
        if value.starts_with("ssm:") || value.starts_with("arn:") {
            return Err(refuse(
                "mapping files are not read from SSM parameters or ARNs: a parameter holds at most 4 KB (8 KB advanced) and a mapping file outgrows that; put the file in S3",
            ));
        }
        if value.contains("://") {
            return Err(refuse("only s3:// locations are read"));
        }
        Ok(Some(Self::File(PathBuf::from(value))))
    }

    /// Reads the text. `aws` is used only for an S3 location; with an endpoint override
    /// (moto, LocalStack) S3 is addressed path-style.
    pub async fn read(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> Result<MappingText, MappingSourceError> {
        match self {
            Self::File(path) => std::fs::read_to_string(path)
                .map(|text| MappingText {
                    text,
                    version_id: None,
                })
                .map_err(|source| MappingSourceError::File {
                    location: self.to_string(),
                    source,
                }),
            Self::S3 { bucket, key } => {
                let config = aws_sdk_s3::config::Builder::from(aws)
                    .force_path_style(aws.endpoint_url().is_some())
                    .build();
                let client = aws_sdk_s3::Client::from_conf(config);
                let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
                self.read_s3(&client, bucket, key, &region).await
            }
        }
    }

    async fn read_s3(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        region: &str,
    ) -> Result<MappingText, MappingSourceError> {
        let location = self.to_string();
        let out = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                let code = match &e {
                    SdkError::ServiceError(s) => s.err().code().map(str::to_string),
                    _ => None,
                };
                s3_error(
                    &location,
                    bucket,
                    key,
                    region,
                    code.as_deref(),
                    DisplayErrorContext(&e).to_string(),
                )
            })?;
        let bytes = out.content_length().unwrap_or(0);
        if bytes > MAX_MAPPING_BYTES {
            return Err(MappingSourceError::TooLarge { location, bytes });
        }
        let version_id = out.version_id().map(str::to_string);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| MappingSourceError::Read {
                location: location.clone(),
                message: e.to_string(),
            })?
            .into_bytes();
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| MappingSourceError::NotText { location })?;
        Ok(MappingText { text, version_id })
    }

    /// Reads and validates the mapping, the location naming it in every message.
    pub async fn load(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> Result<(MappingConfig, MappingText), MappingSourceError> {
        let text = self.read(aws).await?;
        let config = MappingConfig::parse(&text.text, &self.to_string())?;
        Ok((config, text))
    }
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// What an S3 error code means for the operator.
fn s3_error(
    location: &str,
    bucket: &str,
    key: &str,
    region: &str,
    code: Option<&str>,
    detail: String,
) -> MappingSourceError {
    let location = location.to_string();
    let Some(code) = code else {
        return MappingSourceError::Read {
            location,
            message: detail,
        };
    };
    let code = code.to_string();
    match code.as_str() {
        "NoSuchKey" | "NoSuchBucket" | "NotFound" => {
            MappingSourceError::NotFound { location, code }
        }
        "AccessDenied" | "Forbidden" | "AllAccessDisabled" | "KMS.AccessDeniedException" => {
            MappingSourceError::AccessDenied {
                location,
                arn: format!("arn:{}:s3:::{bucket}/{key}", partition(region)),
                code,
            }
        }
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => MappingSourceError::WrongRegion {
            location,
            region: if region.is_empty() {
                "the configured one".into()
            } else {
                region.to_string()
            },
            code,
        },
        "InvalidObjectState" => MappingSourceError::Archived { location, code },
        _ => MappingSourceError::Read {
            location,
            message: detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, key: &str) -> MappingLocation {
        MappingLocation::S3 {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    #[test]
    fn locations_are_s3_objects_package_files_or_nothing() {
        assert_eq!(MappingLocation::parse("").unwrap(), None);
        assert_eq!(MappingLocation::parse("  ").unwrap(), None);
        assert_eq!(
            MappingLocation::parse("s3://my-bucket/prmsync/mapping.toml").unwrap(),
            Some(s3("my-bucket", "prmsync/mapping.toml"))
        );
        assert_eq!(
            MappingLocation::parse("mapping.toml").unwrap(),
            Some(MappingLocation::File("mapping.toml".into()))
        );
        assert_eq!(
            s3("b", "dir/m.toml").to_string(),
            "s3://b/dir/m.toml",
            "the location reads back as given"
        );
        for bad in ["s3://bucket", "s3://bucket/", "s3:///key", "s3://b/dir/"] {
            let err = MappingLocation::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("mapping location {bad}:"))
                    && err.contains("s3://BUCKET/KEY")
                    && err.contains(MAPPING_ENV),
                "{err}"
            );
        }
        let err = MappingLocation::parse("ssm:/prmsync/mapping")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("4 KB") && err.contains("put the file in S3"),
            "{err}"
        );
        let err = MappingLocation::parse("https://example.com/m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only s3://"), "{err}");
    }

    #[test]
    fn s3_errors_name_the_object_and_the_fix() {
        let at = |code: Option<&str>| {
            s3_error(
                "s3://b/k.toml",
                "b",
                "k.toml",
                "eu-west-1",
                code,
                "dispatch failure: connection refused".into(),
            )
            .to_string()
        };
        let missing = at(Some("NoSuchKey"));
        assert!(
            missing.contains("s3://b/k.toml does not exist")
                && missing.contains("aws s3 cp mapping.toml s3://b/k.toml"),
            "{missing}"
        );
        let denied = at(Some("AccessDenied"));
        assert!(
            denied.contains("s3://b/k.toml")
                && denied.contains("s3:GetObject on arn:aws:s3:::b/k.toml")
                && denied.contains("kms:Decrypt"),
            "{denied}"
        );
        let region = at(Some("PermanentRedirect"));
        assert!(
            region.contains("eu-west-1") && region.contains("fix:"),
            "{region}"
        );
        let unreachable = at(None);
        assert!(
            unreachable.contains("s3://b/k.toml")
                && unreachable.contains("connection refused")
                && unreachable.contains("AWS_ENDPOINT_URL"),
            "{unreachable}"
        );
    }

    #[tokio::test]
    async fn a_package_file_is_read_and_validated_like_the_cli_does() {
        let dir = std::env::temp_dir().join(format!("prmsync-mapping-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();

        let good = dir.join("good.toml");
        std::fs::write(&good, prmsync_mapping::config::DEFAULT_MAPPING).unwrap();
        let (config, _) = MappingLocation::File(good).load(&aws).await.unwrap();
        assert_eq!(config, MappingConfig::default());

        let bad = dir.join("bad.toml");
        let src = "[[people.fields]]\nprm = \"email\"\ncrm = \"Email\"\ndirection = \"upwards\"\n";
        std::fs::write(&bad, src).unwrap();
        let err = MappingLocation::File(bad.clone())
            .load(&aws)
            .await
            .unwrap_err();
        let cli = MappingConfig::parse(src, &bad.display().to_string()).unwrap_err();
        assert_eq!(err.to_string(), cli.to_string());

        let missing = dir.join("missing.toml");
        let err = MappingLocation::File(missing.clone())
            .load(&aws)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("fix:"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
