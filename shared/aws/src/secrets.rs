//! The connection secret: Salesforce and PRM credentials, kept in Secrets Manager as JSON.

use serde::Deserialize;

/// The JSON stored in the connection secret. `Debug` shows no secret value.
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
            .field("prm_api_url", &self.prm_api_url)
            .finish_non_exhaustive()
    }
}

/// Why the secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {arn}: {message}; check PRMSYNC_SECRET_ARN and the function's secretsmanager:GetSecretValue permission")]
    Read { arn: String, message: String },
    #[error("secret {arn} is not the connection JSON ({message}); store {{\"salesforce_login_url\", \"salesforce_client_id\", \"salesforce_client_secret\", \"prm_api_url\", \"prm_api_token\", \"prm_webhook_secret\"}} in it (see infra/README.md)")]
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
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretError::Read {
                arn: arn.to_string(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let json = out.secret_string().ok_or_else(|| SecretError::Format {
            arn: arn.to_string(),
            message: "the secret has no string value".into(),
        })?;
        Self::parse(arn, json)
    }
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
}
