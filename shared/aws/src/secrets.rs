//! The secrets, kept in Secrets Manager as JSON: the connection secret (Salesforce and PRM
//! credentials, read by the syncing functions) and the webhook secret (the PRM's signing
//! secrets, read by the webhook function alone).

use prmsync_connect::Connection;
use prmsync_prm::notification::WebhookSecrets;
use serde::Deserialize;

/// The JSON stored in the connection secret. `Debug` shows no secret value. The functions
/// turn it into a [`Connection`] (`Connection::from(secret)`), which builds the clients;
/// which Salesforce flow a secret signs in with is described in `prmsync_connect`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSecret {
    pub salesforce_login_url: String,
    pub salesforce_client_id: String,
    #[serde(default)]
    pub salesforce_client_secret: Option<String>,
    #[serde(default)]
    pub salesforce_username: Option<String>,
    /// PEM private key for the JWT bearer flow.
    #[serde(default)]
    pub salesforce_jwt_key: Option<String>,
    /// JWT `aud` claim of the JWT bearer flow (`https://login.salesforce.com` or
    /// `https://test.salesforce.com`); `salesforce_login_url` when absent.
    #[serde(default)]
    pub salesforce_jwt_audience: Option<String>,
    pub prm_api_url: String,
    pub prm_api_token: String,
    /// Shared secret of the PRM's webhook signatures.
    #[serde(default)]
    pub prm_webhook_secret: Option<String>,
}

impl std::fmt::Debug for ConnectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecret")
            .field("salesforce_login_url", &self.salesforce_login_url)
            .field("salesforce_client_id", &"<redacted>")
            .field("salesforce_jwt_audience", &self.salesforce_jwt_audience)
            .field("prm_api_url", &self.prm_api_url)
            .finish_non_exhaustive()
    }
}

impl From<ConnectionSecret> for Connection {
    /// Field for field: the secret's keys are the connection's settings.
    fn from(s: ConnectionSecret) -> Self {
        Connection {
            salesforce_login_url: s.salesforce_login_url,
            salesforce_client_id: s.salesforce_client_id,
            salesforce_client_secret: s.salesforce_client_secret,
            salesforce_username: s.salesforce_username,
            salesforce_jwt_key: s.salesforce_jwt_key,
            salesforce_jwt_audience: s.salesforce_jwt_audience,
            prm_api_url: s.prm_api_url,
            prm_api_token: s.prm_api_token,
            prm_webhook_secret: s.prm_webhook_secret,
        }
    }
}

/// Why the secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {arn}: {message}; check PRMSYNC_SECRET_ARN and the function's secretsmanager:GetSecretValue permission")]
    Read { arn: String, message: String },
    #[error("secret {arn} is not the connection JSON ({message}); store {{\"salesforce_login_url\", \"salesforce_client_id\", \"salesforce_client_secret\", \"prm_api_url\", \"prm_api_token\", \"prm_webhook_secret\"}} in it, or for the JWT bearer flow salesforce_username, salesforce_jwt_key and optionally salesforce_jwt_audience instead of salesforce_client_secret (see infra/README.md)")]
    Format { arn: String, message: String },
}

impl ConnectionSecret {
    /// Parses the secret's JSON; the error names the problem, never a value.
    pub fn parse(arn: &str, json: &str) -> Result<Self, SecretError> {
        serde_json::from_str(json).map_err(|e| SecretError::Format {
            arn: arn.to_string(),
            // serde's message names the field and position, not the value
            message: e.to_string(),
        })
    }

    /// Reads it from Secrets Manager.
    pub async fn load(
        client: &aws_sdk_secretsmanager::Client,
        arn: &str,
    ) -> Result<Self, SecretError> {
        Self::parse(arn, &secret_string(client, arn).await?)
    }
}

/// The string value of secret `arn`.
async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            arn: arn.to_string(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| SecretError::Format {
            arn: arn.to_string(),
            message: "the secret has no string value".into(),
        })
}

/// The webhook secret's JSON: the secret the PRM signs with, and during a rotation the one
/// it signed with before (see infra/README.md, "Rotating the webhook secret").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSecretJson {
    current: String,
    #[serde(default)]
    previous: Option<String>,
}

/// Why the webhook secret could not be used.
#[derive(Debug, thiserror::Error)]
#[error("webhook secret {arn} is not {{\"current\": \"...\", \"previous\": \"...\"}} ({message}); put the PRM's signing secret in `current` (and, while rotating, the old one in `previous`), see infra/README.md")]
pub struct WebhookSecretError {
    arn: String,
    message: String,
}

/// Parses the webhook secret's JSON; None when `current` is blank (then every notification
/// is refused). The error names the problem, never a value.
pub fn parse_webhook_secret(
    arn: &str,
    json: &str,
) -> Result<Option<WebhookSecrets>, WebhookSecretError> {
    let s: WebhookSecretJson = serde_json::from_str(json).map_err(|e| WebhookSecretError {
        arn: arn.to_string(),
        message: e.to_string(),
    })?;
    Ok(WebhookSecrets::new(&s.current, s.previous.as_deref()))
}

/// Reads the webhook secret from Secrets Manager.
pub async fn load_webhook_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<Option<WebhookSecrets>, String> {
    let json = secret_string(client, arn)
        .await
        .map_err(|e| e.to_string())?;
    parse_webhook_secret(arn, &json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_show_no_secret() {
        let s = ConnectionSecret::parse(
            "arn:x",
            r#"{"salesforce_login_url":"https://login.salesforce.com","salesforce_client_id":"cid-123","salesforce_client_secret":"very-secret","prm_api_url":"https://prm","prm_api_token":"tok-456"}"#,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("very-secret")
                && !shown.contains("tok-456")
                && !shown.contains("cid-123"),
            "{shown}"
        );
        let err = ConnectionSecret::parse("arn:x", r#"{"prm_api_token":"tok-456"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("tok-456") && err.contains("arn:x"), "{err}");
    }

    #[test]
    fn the_webhook_secret_holds_a_current_and_a_previous_secret_and_errors_show_neither() {
        let s = parse_webhook_secret("arn:w", r#"{"current":"new-one","previous":"old-one"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(s, WebhookSecrets::new("new-one", Some("old-one")).unwrap());
        assert_eq!(
            parse_webhook_secret("arn:w", r#"{"current":"  "}"#).unwrap(),
            None,
            "a blank current secret refuses everything"
        );
        let err = parse_webhook_secret("arn:w", r#"{"curent":"new-one"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("arn:w") && err.contains("current") && !err.contains("new-one"),
            "{err}"
        );
    }

    #[test]
    fn the_secret_becomes_the_connection_with_its_jwt_audience() {
        let s = ConnectionSecret::parse(
            "arn:x",
            r#"{"salesforce_login_url":"https://acme.my.salesforce.com","salesforce_client_id":"cid","salesforce_username":"u@example.com","salesforce_jwt_key":"KEY","salesforce_jwt_audience":"https://test.salesforce.com","prm_api_url":"https://prm","prm_api_token":"tok","prm_webhook_secret":"hook"}"#,
        )
        .unwrap();
        let c = Connection::from(s);
        assert_eq!(c.salesforce_login_url, "https://acme.my.salesforce.com");
        assert_eq!(c.salesforce_client_id, "cid");
        assert_eq!(c.salesforce_client_secret, None);
        assert_eq!(c.salesforce_username.as_deref(), Some("u@example.com"));
        assert_eq!(c.salesforce_jwt_key.as_deref(), Some("KEY"));
        assert_eq!(
            c.salesforce_jwt_audience.as_deref(),
            Some("https://test.salesforce.com")
        );
        assert_eq!(c.prm_api_url, "https://prm");
        assert_eq!(c.prm_api_token, "tok");
        assert_eq!(c.prm_webhook_secret.as_deref(), Some("hook"));
        // the audience is optional
        let s = ConnectionSecret::parse(
            "arn:x",
            r#"{"salesforce_login_url":"https://login.salesforce.com","salesforce_client_id":"cid","salesforce_client_secret":"s","prm_api_url":"https://prm","prm_api_token":"tok"}"#,
        )
        .unwrap();
        assert_eq!(Connection::from(s).salesforce_jwt_audience, None);
    }
}
