//! One wiring of the Salesforce and PRM clients and the [`SyncContext`], used by the CLI and
//! by the Lambda functions alike.
//!
//! Each reads "a connection" its own way (the CLI from its config file and the environment,
//! the functions from the connection secret in Secrets Manager) into a [`Connection`]; from
//! there on everything is built here, from the connection and the [`MappingConfig`]:
//!
//! - [`Connection::clients`]: the [`SalesforceClient`] and the [`PrmClient`];
//! - [`Connection::sync_context`] / [`sync_context`]: the engine's context, with the one
//!   lease duration [`LEASE_TTL`].
//!
//! # Salesforce sign-in: one precedence
//!
//! 1. A username **and** a JWT private key: the JWT bearer flow (a client secret, if also
//!    given, is not used).
//! 2. Otherwise a client secret: the client-credentials flow (a username alone is not used).
//! 3. Otherwise an error naming what is missing. A JWT key without a username is an error
//!    even when a client secret is given: a key is only ever given for the JWT flow, so half
//!    of that flow is missing, and falling back to the client secret would hide it.
//!
//! The JWT audience (`aud`) is the login URL unless the connection names another one (an
//! org whose login URL is its My Domain signs JWTs for `https://login.salesforce.com` or
//! `https://test.salesforce.com`).
//!
//! A setting that is empty or only whitespace counts as absent.
//!
//! # Transport
//!
//! The login URL and the PRM API URL must be `https://`; plain `http://` is accepted only on
//! this machine (`localhost`, `127.0.0.0/8`, `::1`, where the simulators run), by the one
//! rule of [`prmsync_transport::secure_url`]. The instance URL a Salesforce token names is
//! checked by the Salesforce client before the token is sent there.
//!
//! # From the mapping
//!
//! The Salesforce API version (`[salesforce] api_version`) and the Bulk API query threshold
//! (`[salesforce] bulk_query_threshold`) come from the mapping file.

use std::fmt;
use std::sync::Arc;

use prmsync_engine::{Crm, Prm, Store, SyncContext};
use prmsync_mapping::MappingConfig;
use prmsync_prm::{PrmClient, PrmConfig, PrmError};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig, SfError};
use prmsync_transport::InsecureUrl;

/// How long a run's lease lasts before another run may take it over, on one machine and on
/// AWS alike. Longer than any Lambda invocation (15 minutes at most), so a live planner
/// never loses its lease; longer than the one-machine runs seen so far; and shorter than
/// the hourly schedule, so a lease left by a crashed run never costs more than one run.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// The Salesforce org and the PRM to sync, with their credentials. `Debug` shows no
/// secret (client id and secret, JWT key, PRM token, webhook secret).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or the My Domain URL
    /// (plain `http://` only on this machine, for the simulator).
    pub salesforce_login_url: String,
    /// The connected app's consumer key.
    pub salesforce_client_id: String,
    /// The connected app's consumer secret (client-credentials flow).
    pub salesforce_client_secret: Option<String>,
    /// The integration user (JWT bearer flow).
    pub salesforce_username: Option<String>,
    /// The PEM private key whose certificate is uploaded to the connected app (JWT bearer
    /// flow): the key itself, not a file name.
    pub salesforce_jwt_key: Option<String>,
    /// The JWT `aud` claim; the login URL when absent.
    pub salesforce_jwt_audience: Option<String>,
    /// The PRM API base URL, `https://` (plain `http://` only on this machine).
    pub prm_api_url: String,
    /// The PRM API token.
    pub prm_api_token: String,
    /// Shared secret of the PRM's webhook signatures (the prm-webhook function).
    pub prm_webhook_secret: Option<String>,
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whether a secret is given, never its value.
        let hidden = |v: &Option<String>| given(v).map(|_| REDACTED);
        f.debug_struct("Connection")
            .field("salesforce_login_url", &self.salesforce_login_url)
            .field("salesforce_client_id", &REDACTED)
            .field(
                "salesforce_client_secret",
                &hidden(&self.salesforce_client_secret),
            )
            .field("salesforce_username", &self.salesforce_username)
            .field("salesforce_jwt_key", &hidden(&self.salesforce_jwt_key))
            .field("salesforce_jwt_audience", &self.salesforce_jwt_audience)
            .field("prm_api_url", &self.prm_api_url)
            .field("prm_api_token", &REDACTED)
            .field("prm_webhook_secret", &hidden(&self.prm_webhook_secret))
            .finish()
    }
}

/// A setting of the connection, by the names the CLI and the connection secret give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    SalesforceLoginUrl,
    SalesforceClientId,
    SalesforceClientSecret,
    SalesforceUsername,
    SalesforceJwtKey,
    PrmApiUrl,
    PrmApiToken,
}

impl Setting {
    /// What it is, in words.
    pub fn what(self) -> &'static str {
        match self {
            Setting::SalesforceLoginUrl => "Salesforce login URL",
            Setting::SalesforceClientId => {
                "Salesforce client id (the connected app's consumer key)"
            }
            Setting::SalesforceClientSecret => {
                "Salesforce client secret (the connected app's consumer secret)"
            }
            Setting::SalesforceUsername => "Salesforce username (the integration user)",
            Setting::SalesforceJwtKey => "Salesforce JWT private key",
            Setting::PrmApiUrl => "PRM API URL",
            Setting::PrmApiToken => "PRM API token",
        }
    }

    /// Where the CLI reads it.
    pub fn cli(self) -> &'static str {
        match self {
            Setting::SalesforceLoginUrl => {
                "SALESFORCE_LOGIN_URL or [salesforce] login_url in the config file"
            }
            Setting::SalesforceClientId => "SALESFORCE_CLIENT_ID",
            Setting::SalesforceClientSecret => "SALESFORCE_CLIENT_SECRET",
            Setting::SalesforceUsername => "SALESFORCE_USERNAME",
            Setting::SalesforceJwtKey => "SALESFORCE_JWT_KEY_FILE",
            Setting::PrmApiUrl => "PRM_API_URL or [prm] api_url in the config file",
            Setting::PrmApiToken => "PRM_API_TOKEN",
        }
    }

    /// Its key in the Lambda functions' connection secret.
    pub fn secret(self) -> &'static str {
        match self {
            Setting::SalesforceLoginUrl => "salesforce_login_url",
            Setting::SalesforceClientId => "salesforce_client_id",
            Setting::SalesforceClientSecret => "salesforce_client_secret",
            Setting::SalesforceUsername => "salesforce_username",
            Setting::SalesforceJwtKey => "salesforce_jwt_key",
            Setting::PrmApiUrl => "prm_api_url",
            Setting::PrmApiToken => "prm_api_token",
        }
    }
}

/// Why a connection cannot be wired. Each message names the setting, on the CLI and in
/// the connection secret, and never shows a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the connection has no {}: set {} (CLI) / {} (Lambda connection secret)", .0.what(), .0.cli(), .0.secret())]
    Missing(Setting),
    #[error("the connection has neither a Salesforce client secret nor a username with a JWT key: set SALESFORCE_CLIENT_SECRET (CLI) / salesforce_client_secret (Lambda connection secret) for the client-credentials flow, or SALESFORCE_USERNAME and SALESFORCE_JWT_KEY_FILE (CLI) / salesforce_username and salesforce_jwt_key (Lambda connection secret) for the JWT bearer flow")]
    NoSalesforceCredentials,
    #[error("the connection has a Salesforce JWT key but no username: set SALESFORCE_USERNAME (CLI) / salesforce_username (Lambda connection secret) to the integration user for the JWT bearer flow, or remove the key (SALESFORCE_JWT_KEY_FILE / salesforce_jwt_key) to sign in with the client secret")]
    JwtKeyWithoutUsername,
    #[error("the connection has a Salesforce username but neither a JWT key nor a client secret: set SALESFORCE_JWT_KEY_FILE (CLI) / salesforce_jwt_key (Lambda connection secret) for the JWT bearer flow, or SALESFORCE_CLIENT_SECRET / salesforce_client_secret for the client-credentials flow")]
    JwtUsernameWithoutKey,
    #[error("{source}; set {} (CLI) / {} (Lambda connection secret)", .setting.cli(), .setting.secret())]
    Insecure {
        setting: Setting,
        #[source]
        source: InsecureUrl,
    },
    #[error("{0}; check the Salesforce settings of the connection (SALESFORCE_* for the CLI, salesforce_* in the Lambda connection secret) and [salesforce] in the mapping file")]
    Salesforce(#[source] SfError),
    #[error("{0}; check PRM_API_URL (CLI) / prm_api_url (Lambda connection secret)")]
    Prm(#[source] PrmError),
}

/// A value that is given: not absent, not empty, not only whitespace.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

/// A URL setting that is given and secure by [`prmsync_transport::secure_url`].
fn secure(v: &str, setting: Setting) -> Result<&str, ConnectError> {
    let v = required(v, setting)?;
    prmsync_transport::secure_url(setting.what(), v)
        .map_err(|source| ConnectError::Insecure { setting, source })?;
    Ok(v)
}

fn required(v: &str, setting: Setting) -> Result<&str, ConnectError> {
    if v.trim().is_empty() {
        Err(ConnectError::Missing(setting))
    } else {
        Ok(v)
    }
}

impl Connection {
    /// How Salesforce is signed in to, by the precedence in the crate documentation.
    pub fn auth(&self) -> Result<Auth, ConnectError> {
        let client_id = required(&self.salesforce_client_id, Setting::SalesforceClientId)?;
        let client_id = client_id.to_string();
        match (
            given(&self.salesforce_username),
            given(&self.salesforce_jwt_key),
            given(&self.salesforce_client_secret),
        ) {
            (Some(username), Some(key), _) => Ok(Auth::JwtBearer {
                client_id,
                username: username.to_string(),
                private_key_pem: key.to_string(),
            }),
            (None, Some(_), _) => Err(ConnectError::JwtKeyWithoutUsername),
            (_, None, Some(secret)) => Ok(Auth::ClientCredentials {
                client_id,
                client_secret: secret.to_string(),
            }),
            (Some(_), None, None) => Err(ConnectError::JwtUsernameWithoutKey),
            (None, None, None) => Err(ConnectError::NoSalesforceCredentials),
        }
    }

    /// The Salesforce client's configuration: the connection's login URL, sign-in and JWT
    /// audience, the mapping's API version and Bulk API query and ingest thresholds, the client's
    /// defaults otherwise.
    pub fn salesforce_config(
        &self,
        mapping: &MappingConfig,
    ) -> Result<SalesforceConfig, ConnectError> {
        let login_url = secure(&self.salesforce_login_url, Setting::SalesforceLoginUrl)?;
        let mut cfg = SalesforceConfig::new(login_url, self.auth()?);
        cfg.api_version = mapping.salesforce.api_version.clone();
        cfg.bulk_query_threshold = mapping.salesforce.bulk_query_threshold;
        cfg.bulk_ingest_threshold = mapping.salesforce.bulk_ingest_threshold;
        cfg.client_name = mapping.salesforce.client_name.clone();
        cfg.jwt_audience = given(&self.salesforce_jwt_audience).map(str::to_string);
        Ok(cfg)
    }

    /// The PRM client's configuration (its default timeout and retries).
    pub fn prm_config(&self) -> Result<PrmConfig, ConnectError> {
        let url = secure(&self.prm_api_url, Setting::PrmApiUrl)?;
        let token = required(&self.prm_api_token, Setting::PrmApiToken)?;
        Ok(PrmConfig::new(url, token))
    }

    /// The Salesforce and PRM clients. No network call is made: the settings are checked
    /// (URLs, credentials present, the PEM key readable), and the first request signs in.
    pub fn clients(
        &self,
        mapping: &MappingConfig,
    ) -> Result<(SalesforceClient, PrmClient), ConnectError> {
        let crm = SalesforceClient::new(self.salesforce_config(mapping)?)
            .map_err(ConnectError::Salesforce)?;
        let prm = PrmClient::new(self.prm_config()?).map_err(ConnectError::Prm)?;
        Ok((crm, prm))
    }

    /// The engine's context on this connection: its [`clients`](Self::clients), the
    /// mapping, the state store, the lease holder and [`LEASE_TTL`].
    pub fn sync_context(
        &self,
        mapping: MappingConfig,
        store: Arc<dyn Store>,
        holder: impl Into<String>,
    ) -> Result<SyncContext, ConnectError> {
        let (crm, prm) = self.clients(&mapping)?;
        Ok(sync_context(
            Arc::new(crm),
            Arc::new(prm),
            store,
            mapping,
            holder,
        ))
    }

    /// The webhook secret, when given (an empty one counts as absent).
    pub fn webhook_secret(&self) -> Option<String> {
        given(&self.prm_webhook_secret).map(str::to_string)
    }
}

/// The engine's context from clients already built (the CLI's sandbox builds its own, on
/// the simulators), with [`LEASE_TTL`].
pub fn sync_context(
    crm: Arc<dyn Crm>,
    prm: Arc<dyn Prm>,
    store: Arc<dyn Store>,
    mapping: MappingConfig,
    holder: impl Into<String>,
) -> SyncContext {
    SyncContext {
        crm,
        prm,
        store,
        mapping: Arc::new(mapping),
        holder: holder.into(),
        lease_ttl: LEASE_TTL,
    }
}

#[cfg(test)]
mod tests;
