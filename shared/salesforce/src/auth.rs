//! OAuth 2.0: client-credentials and JWT bearer flows.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::error::{OAuthErrorBody, SfError};

/// How the client authenticates. `Debug` never shows the secret or the key.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// OAuth 2.0 client-credentials flow (connected app with a run-as user).
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    /// OAuth 2.0 JWT bearer flow: an RS256 assertion signed with the private key whose
    /// certificate is uploaded to the connected app.
    JwtBearer {
        client_id: String,
        username: String,
        private_key_pem: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            Auth::JwtBearer {
                client_id,
                username,
                ..
            } => f
                .debug_struct("JwtBearer")
                .field("client_id", client_id)
                .field("username", username)
                .field("private_key_pem", &"<redacted>")
                .finish(),
        }
    }
}

/// A cached access token and the instance it is valid for.
#[derive(Clone)]
pub(crate) struct Token {
    pub access_token: String,
    pub instance_url: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("instance_url", &self.instance_url)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

/// JWT bearer claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct JwtClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
}

/// Builds token requests for the configured flow.
pub(crate) struct Authenticator {
    auth: Auth,
    audience: String,
    key: Option<EncodingKey>,
}

impl Authenticator {
    /// Validates the configuration eagerly (bad PEM is a `Config` error at start-up).
    pub fn new(auth: Auth, audience: String) -> Result<Self, SfError> {
        let key = match &auth {
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => {
                if client_id.trim().is_empty() || client_secret.is_empty() {
                    return Err(SfError::Config(
                        "client credentials flow needs SALESFORCE_CLIENT_ID and \
                         SALESFORCE_CLIENT_SECRET (the connected app's consumer key and secret)"
                            .into(),
                    ));
                }
                None
            }
            Auth::JwtBearer {
                client_id,
                username,
                private_key_pem,
            } => {
                if client_id.trim().is_empty() || username.trim().is_empty() {
                    return Err(SfError::Config(
                        "JWT bearer flow needs SALESFORCE_CLIENT_ID (consumer key) and \
                         SALESFORCE_USERNAME (the integration user)"
                            .into(),
                    ));
                }
                Some(
                    EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|_| {
                        SfError::Config(
                            "the JWT bearer private key is not a valid RSA PEM key; provide \
                             the PKCS#1 or PKCS#8 PEM private key whose certificate is \
                             uploaded to the connected app"
                                .into(),
                        )
                    })?,
                )
            }
        };
        Ok(Authenticator {
            auth,
            audience,
            key,
        })
    }

    /// Form fields for the token request.
    pub fn form(&self) -> Result<Vec<(&'static str, String)>, SfError> {
        match &self.auth {
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => Ok(vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ]),
            Auth::JwtBearer {
                client_id,
                username,
                ..
            } => {
                let claims = JwtClaims {
                    iss: client_id.clone(),
                    sub: username.clone(),
                    aud: self.audience.clone(),
                    exp: chrono::Utc::now().timestamp() + 180,
                };
                let key = self
                    .key
                    .as_ref()
                    .ok_or_else(|| SfError::Config("missing JWT signing key".into()))?;
                let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
                    .map_err(|e| {
                        SfError::Config(format!("could not sign the JWT assertion: {e}"))
                    })?;
                Ok(vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
                    ),
                    ("assertion", assertion),
                ])
            }
        }
    }
}

/// Parse a successful token response.
pub(crate) fn parse_token(body: &[u8]) -> Result<Token, SfError> {
    let t: TokenResponse =
        serde_json::from_slice(body).map_err(|e| SfError::decode("the token request", e))?;
    let instance_url = t.instance_url.trim_end_matches('/').to_string();
    if instance_url.is_empty() {
        return Err(SfError::decode(
            "the token request",
            "instance_url is empty",
        ));
    }
    Ok(Token {
        access_token: t.access_token,
        instance_url,
    })
}

/// Build the error for a rejected token request (never includes the request).
pub(crate) fn token_error(status: u16, body: &[u8]) -> SfError {
    match serde_json::from_slice::<OAuthErrorBody>(body) {
        Ok(b) if !b.error.is_empty() => SfError::Auth {
            status,
            error: b.error,
            description: b.error_description,
        },
        _ => SfError::Auth {
            status,
            error: "unknown_error".into(),
            description: String::from_utf8_lossy(body).chars().take(200).collect(),
        },
    }
}
