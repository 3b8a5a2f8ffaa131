//! Builds what a command needs: the state store, and for commands that talk to the systems,
//! the Salesforce and PRM clients (real ones from a config file and the environment, or the
//! sandbox's simulators).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use prmsync_engine::{Store, SyncContext};
use prmsync_mapping::MappingConfig;
use prmsync_prm::PrmClient;
use prmsync_salesforce::SalesforceClient;
use prmsync_simulators::sandbox::{self, Sandbox};
use prmsync_state_sqlite::SqliteStore;
use serde::Deserialize;

use crate::Target;

/// What `prmsync` prints when it does not know what to connect to.
pub const GETTING_STARTED: &str = "\
prmsync needs to know which Salesforce org and PRM to sync.

  Try it on sample data first (a simulated Salesforce org and PRM, nothing leaves this machine):
      prmsync sync --sandbox

  Connect a real org and PRM:
      1. set SALESFORCE_LOGIN_URL, SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET
         (or SALESFORCE_USERNAME and SALESFORCE_JWT_KEY_FILE for the JWT bearer flow),
         PRM_API_URL and PRM_API_TOKEN;
      2. optionally write a config file (see README.md) with your mapping file, then
      prmsync sync --config prmsync.toml";

/// What a build without the `aws` feature says to `--aws`.
#[cfg_attr(feature = "aws", allow(dead_code))]
pub const NO_AWS: &str = "this prmsync was built without AWS support: build it with `cargo build --release --features aws --bin prmsync` to use --aws";

/// The connection file (`--config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Mapping file, relative to the config file; the built-in mapping when absent.
    pub mapping: Option<PathBuf>,
    #[serde(default)]
    pub salesforce: SalesforceSection,
    #[serde(default)]
    pub prm: PrmSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSection {
    pub login_url: Option<String>,
    /// The JWT `aud` claim (JWT bearer flow); the login URL when absent.
    pub jwt_audience: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrmSection {
    pub api_url: Option<String>,
}

/// A ready connection.
pub struct Connection {
    pub ctx: SyncContext,
    /// The sandbox and the folder its data is kept in, saved after the command.
    pub sandbox: Option<(Sandbox, PathBuf)>,
    /// The PRM's webhook signing secret (`PRM_WEBHOOK_SECRET`; the sandbox has its own),
    /// for `prmsync watch --webhook-listen`.
    pub webhook_secret: Option<String>,
}

impl Connection {
    /// Keeps the sandbox's data for the next run.
    pub fn save(&self) -> Result<()> {
        if let Some((sandbox, dir)) = &self.sandbox {
            sandbox
                .save(dir)
                .with_context(|| format!("saving the sandbox data in {}", dir.display()))?;
        }
        Ok(())
    }
}

/// The state directory of a target: the sandbox keeps its own, beside its data.
pub fn state_dir(target: &Target) -> PathBuf {
    if target.sandbox {
        target.state_dir.join("sandbox")
    } else {
        target.state_dir.clone()
    }
}

/// Opens the state store of a target without connecting to anything: the SQLite file of
/// the state directory, or with `--aws` the deployment's DynamoDB tables
/// (`PRMSYNC_STATE_TABLE`, `PRMSYNC_LOG_TABLE` and the usual AWS credentials).
pub async fn open_store(target: &Target) -> Result<Arc<dyn Store>> {
    if target.aws {
        if target.sandbox || target.config.is_some() {
            bail!("--aws reads the deployment's tables; drop --sandbox and --config");
        }
        #[cfg(feature = "aws")]
        {
            let store = prmsync_aws::dynamo::DynamoStore::from_env()
                .await
                .context("opening the deployment's DynamoDB tables (set PRMSYNC_STATE_TABLE and PRMSYNC_LOG_TABLE from the stack outputs, and AWS credentials)")?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "aws"))]
        bail!("{NO_AWS}");
    }
    let dir = state_dir(target);
    Ok(Arc::new(SqliteStore::open(&dir)?))
}

/// The operator's AWS configuration (credentials, region, `AWS_ENDPOINT_URL`).
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// Reads the mapping named by the config file, or the built-in one.
pub fn load_mapping(target: &Target) -> Result<MappingConfig> {
    let Some(config_path) = &target.config else {
        return Ok(MappingConfig::default());
    };
    let config = read_config(config_path)?;
    match config.mapping {
        None => Ok(MappingConfig::default()),
        Some(m) => read_mapping(&relative_to(config_path, &m)),
    }
}

pub fn read_mapping(path: &Path) -> Result<MappingConfig> {
    let src = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping file {}", path.display()))?;
    Ok(MappingConfig::parse(&src, &path.display().to_string())?)
}

fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let src = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the config file {}: check the path given to --config",
            path.display()
        )
    })?;
    toml::from_str(&src).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}\n  fix: the config file takes `mapping = \"FILE\"`, [salesforce] login_url and jwt_audience, and [prm] api_url (see README.md)",
            path.display(),
            e.to_string().trim_end()
        )
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether a real connection is configured (config file or environment).
pub fn has_real_target(target: &Target) -> bool {
    target.config.is_some()
        || (env("SALESFORCE_LOGIN_URL").is_some() && env("PRM_API_URL").is_some())
}

/// Connects to the sandbox or the real systems of a target.
pub async fn connect(target: &Target) -> Result<Connection> {
    let holder = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "prmsync".into()),
        std::process::id()
    );
    if target.aws {
        bail!("with --aws, prmsync reads and writes the deployment's tables (status, log, log ack, pause, resume, unlink, relink) and `sync --aws` invokes its full-sync function; this command runs against the sandbox or a --config connection");
    }
    let dir = state_dir(target);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir)?);
    if target.sandbox {
        if target.config.is_some() {
            bail!("--sandbox and --config cannot be used together: the sandbox has its own connection; drop one of them");
        }
        let data_dir = dir.join("data");
        let sandbox = Sandbox::load_or_seed(&data_dir).with_context(|| {
            format!(
                "loading the sandbox data from {} (`prmsync sandbox reset` starts over)",
                data_dir.display()
            )
        })?;
        let sf_url = sandbox
            .salesforce
            .start()
            .await
            .context("starting the Salesforce simulator")?;
        let prm_url = sandbox
            .prm
            .start()
            .await
            .context("starting the PRM simulator")?;
        let mapping = MappingConfig::default();
        let connection = prmsync_connect::Connection {
            salesforce_login_url: sf_url,
            salesforce_client_id: sandbox::SF_CLIENT_ID.into(),
            salesforce_client_secret: Some(sandbox::SF_CLIENT_SECRET.into()),
            prm_api_url: prm_url,
            prm_api_token: sandbox::PRM_TOKEN.into(),
            prm_webhook_secret: Some(sandbox::PRM_WEBHOOK_SECRET.into()),
            ..Default::default()
        };
        let mut sf_config = connection.salesforce_config(&mapping)?;
        // the simulator answers at once: retries need not wait long
        sf_config.retry_base = Duration::from_millis(50);
        let crm = SalesforceClient::new(sf_config)?;
        let prm = PrmClient::new(connection.prm_config()?)?;
        let ctx =
            prmsync_connect::sync_context(Arc::new(crm), Arc::new(prm), store, mapping, holder);
        return Ok(Connection {
            ctx,
            sandbox: Some((sandbox, data_dir)),
            webhook_secret: connection.webhook_secret(),
        });
    }
    if !has_real_target(target) {
        bail!("{GETTING_STARTED}");
    }
    let config = match &target.config {
        Some(p) => read_config(p)?,
        None => ConfigFile::default(),
    };
    let mapping = match (&target.config, &config.mapping) {
        (Some(c), Some(m)) => read_mapping(&relative_to(c, m))?,
        _ => MappingConfig::default(),
    };
    let connection = connection_of(&config)?;
    let ctx = connection.sync_context(mapping, store, holder)?;
    Ok(Connection {
        ctx,
        sandbox: None,
        webhook_secret: connection.webhook_secret(),
    })
}

/// The Salesforce client of the connection file `config_path` (and the environment), for
/// `mapping`: what a check against Salesforce's describe needs, without the PRM's settings.
pub fn salesforce_client(config_path: &Path, mapping: &MappingConfig) -> Result<SalesforceClient> {
    let config = read_config(config_path)?;
    let connection = connection_of(&config)?;
    Ok(SalesforceClient::new(
        connection.salesforce_config(mapping)?,
    )?)
}

/// The connection of a real target: each setting from its environment variable, else from
/// the config file (the login URL, the JWT audience and the PRM API URL can be in either).
/// What is missing or contradictory is reported by [`prmsync_connect`], naming the variable.
fn connection_of(config: &ConfigFile) -> Result<prmsync_connect::Connection> {
    let salesforce_jwt_key = match env("SALESFORCE_JWT_KEY_FILE") {
        None => None,
        Some(key_file) => Some(
            std::fs::read_to_string(&key_file)
                .with_context(|| format!("cannot read SALESFORCE_JWT_KEY_FILE ({key_file}): give the path of the PEM private key of the connected app's certificate"))?,
        ),
    };
    Ok(prmsync_connect::Connection {
        salesforce_login_url: env("SALESFORCE_LOGIN_URL")
            .or(config.salesforce.login_url.clone())
            .unwrap_or_default(),
        salesforce_client_id: env("SALESFORCE_CLIENT_ID").unwrap_or_default(),
        salesforce_client_secret: env("SALESFORCE_CLIENT_SECRET"),
        salesforce_username: env("SALESFORCE_USERNAME"),
        salesforce_jwt_key,
        salesforce_jwt_audience: env("SALESFORCE_JWT_AUDIENCE")
            .or(config.salesforce.jwt_audience.clone()),
        prm_api_url: env("PRM_API_URL")
            .or(config.prm.api_url.clone())
            .unwrap_or_default(),
        prm_api_token: env("PRM_API_TOKEN").unwrap_or_default(),
        // `prmsync watch --webhook-listen` checks the PRM's notifications with it
        prm_webhook_secret: env("PRM_WEBHOOK_SECRET"),
    })
}
