//! What a function builds once per cold start: clients, state store, queue, mapping.

use std::sync::Arc;

use anyhow::{Context, Result};
use prmsync_aws::dynamo::DynamoStore;
use prmsync_aws::mapping_source::{MappingLocation, MAPPING_ENV};
use prmsync_aws::secrets::{load_webhook_secret, ConnectionSecret, WebhookSecretError};
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

/// What a syncing function (full-sync, sync-worker, deal-import) reads from its
/// environment; the SAM template sets each.
#[derive(Debug, Clone)]
pub struct FunctionEnv {
    /// `PRMSYNC_SECRET_ARN`: the connection secret.
    pub secret_arn: String,
    /// `PRMSYNC_STATE_TABLE`.
    pub state_table: String,
    /// `PRMSYNC_LOG_TABLE`.
    pub log_table: String,
    /// `PRMSYNC_QUEUE_URL`.
    pub queue_url: String,
    /// `PRMSYNC_MAPPING_FILE` (empty: the built-in mapping).
    pub mapping: String,
}

impl FunctionEnv {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            secret_arn: env("PRMSYNC_SECRET_ARN")?,
            state_table: env("PRMSYNC_STATE_TABLE")?,
            log_table: env("PRMSYNC_LOG_TABLE")?,
            queue_url: env("PRMSYNC_QUEUE_URL")?,
            mapping: std::env::var(MAPPING_ENV).unwrap_or_default(),
        })
    }
}

impl Deps {
    /// Reads the [`FunctionEnv`]; AWS endpoints and credentials come from the usual AWS
    /// variables.
    pub async fn from_env() -> Result<Self> {
        Self::from_env_with(|_| None).await
    }

    /// [`from_env`](Self::from_env), with the continuation `relaunch` builds from the same
    /// AWS configuration (full-sync passes [`crate::relaunch::self_relaunch`]; the other
    /// functions do not, so they do not carry the Lambda client).
    pub async fn from_env_with(
        relaunch: impl FnOnce(&aws_config::SdkConfig) -> Option<Arc<dyn Relaunch>>,
    ) -> Result<Self> {
        let settings = FunctionEnv::from_env()?;
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let relaunch = relaunch(&aws);
        Self::load(&aws, &settings, relaunch).await
    }

    /// The dependencies of a function with these settings: the mapping and the connection
    /// secret read, the clients, tables and queue built over `aws`.
    pub async fn load(
        aws: &aws_config::SdkConfig,
        settings: &FunctionEnv,
        relaunch: Option<Arc<dyn Relaunch>>,
    ) -> Result<Self> {
        let mapping = mapping_from(&settings.mapping, aws).await?;
        let secret_arn = &settings.secret_arn;
        let secret =
            ConnectionSecret::load(&aws_sdk_secretsmanager::Client::new(aws), secret_arn).await?;
        let connection = Connection::from(secret);
        let (crm, prm) = connection
            .clients(&mapping)
            .with_context(|| format!("the connection secret {secret_arn} cannot be used"))?;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            settings.state_table.clone(),
            settings.log_table.clone(),
        );
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), settings.queue_url.clone());
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
            relaunch,
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
    async fn load(&self) -> Result<Option<WebhookSecrets>, WebhookSecretError> {
        load_webhook_secret(&self.client, &self.arn).await
    }
}

/// What the webhook function reads from its environment.
#[derive(Debug, Clone)]
pub struct WebhookEnv {
    /// `PRMSYNC_WEBHOOK_SECRET_ARN`: the webhook's own secret.
    pub secret_arn: String,
    /// `PRMSYNC_STATE_TABLE`: where the deliveries taken are kept.
    pub state_table: String,
    /// `PRMSYNC_QUEUE_URL`.
    pub queue_url: String,
}

impl WebhookEnv {
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            secret_arn: env("PRMSYNC_WEBHOOK_SECRET_ARN")?,
            state_table: env("PRMSYNC_STATE_TABLE")?,
            queue_url: env("PRMSYNC_QUEUE_URL")?,
        })
    }
}

impl WebhookDeps {
    /// Reads the [`WebhookEnv`]: nothing of the connection secret or the mapping.
    pub async fn from_env() -> Result<Self> {
        let settings = WebhookEnv::from_env()?;
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::load(&aws, &settings).await
    }

    /// The webhook's dependencies with these settings, over `aws`.
    pub async fn load(aws: &aws_config::SdkConfig, settings: &WebhookEnv) -> Result<Self> {
        let source = WebhookSecretSource {
            client: aws_sdk_secretsmanager::Client::new(aws),
            arn: settings.secret_arn.clone(),
        };
        let keys = WebhookKeys::load(Arc::new(source)).await?;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            settings.state_table.clone(),
            // the webhook writes no Integration Log entries: its lines go to CloudWatch
            String::new(),
        );
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), settings.queue_url.clone());
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
