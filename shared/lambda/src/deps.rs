//! What a function builds once per cold start: clients, state store, queue, mapping.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prmsync_aws::dynamo::DynamoStore;
use prmsync_aws::secrets::ConnectionSecret;
use prmsync_aws::sqs::SqsQueue;
use prmsync_engine::ports::Queue;
use prmsync_engine::SyncContext;
use prmsync_mapping::MappingConfig;
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};

use crate::relaunch::Relaunch;

/// Everything a handler needs.
#[derive(Clone)]
pub struct Deps {
    pub ctx: SyncContext,
    pub queue: Arc<dyn Queue>,
    /// Shared secret of the PRM's webhook signatures.
    pub webhook_secret: Option<String>,
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

/// The mapping named by `PRMSYNC_MAPPING_FILE` (a file in the function package), or the
/// built-in one when it is empty.
pub fn mapping_from_env() -> Result<MappingConfig> {
    match std::env::var("PRMSYNC_MAPPING_FILE").ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(MappingConfig::default()),
        Some(path) if path.starts_with("s3://") => bail!(
            "PRMSYNC_MAPPING_FILE={path}: mapping files are read from the function package; put the file beside the binary and give its path, or leave it empty for the built-in mapping"
        ),
        Some(path) => {
            let src = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the mapping file {path} (PRMSYNC_MAPPING_FILE)"))?;
            Ok(MappingConfig::parse(&src, &path)?)
        }
    }
}

/// Clients for the connection in the secret.
pub fn clients(
    secret: &ConnectionSecret,
    mapping: &MappingConfig,
) -> Result<(SalesforceClient, PrmClient)> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let auth = match (
        given(&secret.salesforce_client_secret),
        given(&secret.salesforce_username),
        given(&secret.salesforce_jwt_key),
    ) {
        (_, Some(username), Some(key)) => Auth::JwtBearer {
            client_id: secret.salesforce_client_id.clone(),
            username,
            private_key_pem: key,
        },
        (Some(client_secret), _, _) => Auth::ClientCredentials {
            client_id: secret.salesforce_client_id.clone(),
            client_secret,
        },
        _ => bail!("the connection secret has neither salesforce_client_secret nor salesforce_username with salesforce_jwt_key: add one of them"),
    };
    let mut cfg = SalesforceConfig::new(secret.salesforce_login_url.clone(), auth);
    cfg.api_version = mapping.salesforce.api_version.clone();
    cfg.bulk_query_threshold = mapping.salesforce.bulk_query_threshold;
    let crm = SalesforceClient::new(cfg)?;
    let prm = PrmClient::new(PrmConfig::new(
        secret.prm_api_url.clone(),
        secret.prm_api_token.clone(),
    ))?;
    Ok((crm, prm))
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
        let mapping = mapping_from_env()?;
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let secret_arn = env("PRMSYNC_SECRET_ARN")?;
        let secret =
            ConnectionSecret::load(&aws_sdk_secretsmanager::Client::new(&aws), &secret_arn).await?;
        let (crm, prm) = clients(&secret, &mapping)?;
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            env("PRMSYNC_STATE_TABLE")?,
            env("PRMSYNC_LOG_TABLE")?,
        );
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), env("PRMSYNC_QUEUE_URL")?);
        let holder = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
            .unwrap_or_else(|_| format!("local-{}", std::process::id()));
        Ok(Self {
            ctx: SyncContext {
                crm: Arc::new(crm),
                prm: Arc::new(prm),
                store: Arc::new(store),
                mapping: Arc::new(mapping),
                holder,
                lease_ttl: chrono::Duration::minutes(15),
            },
            queue: Arc::new(queue),
            webhook_secret: secret.prm_webhook_secret.clone(),
            relaunch: relaunch(&aws),
        })
    }
}
