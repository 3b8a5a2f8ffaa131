//! What a function builds once per cold start: clients, state store, queue, mapping.

use std::sync::Arc;

use anyhow::{Context, Result};
use prmsync_aws::dynamo::DynamoStore;
use prmsync_aws::mapping_source::{MappingLocation, MAPPING_ENV};
use prmsync_aws::secrets::{load_webhook_secret, ConnectionSecret};
use prmsync_aws::sqs::SqsQueue;
use prmsync_connect::{sync_context, Connection};
use prmsync_engine::ports::Queue;
use prmsync_engine::SyncContext;
use prmsync_mapping::MappingConfig;

use crate::handlers::prm_webhook::{SecretsSource, WebhookDeps, WebhookKeys};
use crate::relaunch::Relaunch;
use prmsync_prm::notification::WebhookSecrets;

/// Everything a handler needs.
#[derive(Clone)]
pub struct Deps {
    pub ctx: SyncContext,
    pub queue: Arc<dyn Queue>,
    /// How a planner that runs out of time continues (its own function, invoked again);
    /// None outside Lambda, where a run finishes in one invocation.
    pub relaunch: Option<Arc<dyn Relaunch>>,
}

fn env(name: &str) -> Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .with_context(|| {
            format!("{name} is not set: the SAM template sets it; set it by hand for a local run")
        })
}

/// The mapping named by `PRMSYNC_MAPPING_FILE`: an S3 object (`s3://BUCKET/KEY`, what the
/// template's `MappingLocation` sets), a file in the function package, or the built-in
/// mapping when it is empty. Read once per cold start; an invalid mapping stops the function
/// with the message `prmsync mapping check` prints, naming the object.
pub async fn mapping_from_env(aws: &aws_config::SdkConfig) -> Result<MappingConfig> {
    mapping_from(&std::env::var(MAPPING_ENV).unwrap_or_default(), aws).await
}

/// [`mapping_from_env`] for a given location (empty = the built-in mapping).
pub async fn mapping_from(location: &str, aws: &aws_config::SdkConfig) -> Result<MappingConfig> {
    let Some(location) = MappingLocation::parse(location)? else {
        tracing::info!(
            code = "mapping_loaded",
            location = "built-in",
            message = "using the built-in mapping"
        );
        return Ok(MappingConfig::default());
    };
    let (mapping, text) = location.load(aws).await.inspect_err(|e| {
        // also one JSON line, so that Logs Insights finds why the function did not start
        tracing::error!(code = "mapping_unusable", location = %location, message = %e);
    })?;
    tracing::info!(
        code = "mapping_loaded",
        location = %location,
        version_id = text.version_id.as_deref().unwrap_or(""),
        message = "mapping file read and valid"
    );
    Ok(mapping)
}

impl Deps {
    /// Reads `PRMSYNC_STATE_TABLE`, `PRMSYNC_LOG_TABLE`, `PRMSYNC_QUEUE_URL`,
    /// `PRMSYNC_SECRET_ARN` and `PRMSYNC_MAPPING_FILE`; AWS endpoints and credentials come
    /// from the usual AWS variables.
    pub async fn from_env() -> Result<Self> {
        Self::from_env_with(|_| None).await
    }

    /// [`from_env`](Self::from_env), with the continuation `relaunch` builds from the same
    /// AWS configuration (full-sync passes [`crate::relaunch::self_relaunch`]; the other
    /// functions do not, so they do not carry the Lambda client).
    pub async fn from_env_with(
        relaunch: impl FnOnce(&aws_config::SdkConfig) -> Option<Arc<dyn Relaunch>>,
    ) -> Result<Self> {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let mapping = mapping_from_env(&aws).await?;
        let secret_arn = env("PRMSYNC_SECRET_ARN")?;
        let secret =
            ConnectionSecret::load(&aws_sdk_secretsmanager::Client::new(&aws), &secret_arn).await?;
        let connection = Connection::from(secret);
        let (crm, prm) = connection
            .clients(&mapping)
            .with_context(|| format!("the connection secret {secret_arn} cannot be used"))?;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            env("PRMSYNC_STATE_TABLE")?,
            env("PRMSYNC_LOG_TABLE")?,
        );
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), env("PRMSYNC_QUEUE_URL")?);
        let holder = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
            .unwrap_or_else(|_| format!("local-{}", std::process::id()));
        Ok(Self {
            ctx: sync_context(
                Arc::new(crm),
                Arc::new(prm),
                Arc::new(store),
                mapping,
                holder,
            ),
            queue: Arc::new(queue),
            relaunch: relaunch(&aws),
        })
    }
}

/// The webhook secret in Secrets Manager, read again when a rotation may have happened.
struct WebhookSecretSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

#[async_trait::async_trait]
impl SecretsSource for WebhookSecretSource {
    async fn load(&self) -> Result<Option<WebhookSecrets>, String> {
        load_webhook_secret(&self.client, &self.arn).await
    }
}

impl WebhookDeps {
    /// Reads `PRMSYNC_WEBHOOK_SECRET_ARN` (the webhook's own secret), `PRMSYNC_STATE_TABLE`
    /// (the deliveries taken) and `PRMSYNC_QUEUE_URL`; nothing of the connection secret
    /// or the mapping.
    pub async fn from_env() -> Result<Self> {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let source = WebhookSecretSource {
            client: aws_sdk_secretsmanager::Client::new(&aws),
            arn: env("PRMSYNC_WEBHOOK_SECRET_ARN")?,
        };
        let keys = WebhookKeys::load(Arc::new(source))
            .await
            .map_err(anyhow::Error::msg)?;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            env("PRMSYNC_STATE_TABLE")?,
            // the webhook writes no log entries: its lines go to CloudWatch
            String::new(),
        );
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), env("PRMSYNC_QUEUE_URL")?);
        Ok(Self {
            keys,
            deliveries: Arc::new(store),
            queue: Arc::new(queue),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_aws() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    #[tokio::test]
    async fn an_empty_location_is_the_built_in_mapping() {
        let m = mapping_from("", &offline_aws()).await.unwrap();
        assert_eq!(m, MappingConfig::default());
    }

    #[tokio::test]
    async fn a_package_file_still_works_and_an_ssm_parameter_is_refused_with_the_fix() {
        let path = std::env::temp_dir().join(format!("prmsync-deps-{}.toml", std::process::id()));
        let src = prmsync_mapping::config::DEFAULT_MAPPING.replacen(
            "bulk_query_threshold = 10000",
            "bulk_query_threshold = 0",
            1,
        );
        std::fs::write(&path, src).unwrap();
        let m = mapping_from(&path.display().to_string(), &offline_aws())
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(m.salesforce.bulk_query_threshold, 0);

        let err = mapping_from("ssm:/prmsync/mapping", &offline_aws())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mapping location ssm:/prmsync/mapping")
                && err.contains("s3://BUCKET/KEY"),
            "{err}"
        );
    }
}
