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

/// Parse a successful token response from the login URL `login_url`, refusing an instance
/// the token must not be sent to ([`check_instance`]).
pub(crate) fn parse_token(body: &[u8], login_url: &str) -> Result<Token, SfError> {
    let t: TokenResponse =
        serde_json::from_slice(body).map_err(|e| SfError::decode("the token request", e))?;
    let instance_url = t.instance_url.trim_end_matches('/').to_string();
    if instance_url.is_empty() {
        return Err(SfError::decode(
            "the token request",
            "instance_url is empty",
        ));
    }
    check_instance(&instance_url, login_url)?;
    Ok(Token {
        access_token: t.access_token,
        instance_url,
    })
}

/// The domains of Salesforce instances (My Domain, sandboxes, Government Cloud Plus,
/// Hyperforce in China, and the older instance names); an instance URL's host is one of
/// them or below one.
pub(crate) const SALESFORCE_DOMAINS: [&str; 8] = [
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "database.com",
    "salesforce.mil",
    "salesforce-setup.com",
    "sfcrmproducts.cn",
    "sfcrmapps.cn",
];

/// Whether the token may be sent to `instance_url`: an https:// Salesforce domain, the
/// login host itself over https://, or this machine when the login is on this machine too
/// (a simulator), otherwise
/// [`SfError::UntrustedInstance`].
pub(crate) fn check_instance(instance_url: &str, login_url: &str) -> Result<(), SfError> {
    let login_host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let untrusted = |instance: String| SfError::UntrustedInstance {
        instance,
        login_host: login_host.clone(),
    };
    let Ok(url) = url::Url::parse(instance_url) else {
        return Err(untrusted("(not a URL)".into()));
    };
    // a simulator on this machine: only when the login is on this machine too
    let login_is_loopback = url::Url::parse(login_url)
        .map(|u| prmsync_transport::is_loopback(&u))
        .unwrap_or(false);
    if login_is_loopback
        && prmsync_transport::is_loopback(&url)
        && matches!(url.scheme(), "http" | "https")
    {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let salesforce = SALESFORCE_DOMAINS.iter().any(|d| {
        host.strip_suffix(d)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    });
    if url.scheme() == "https" && !host.is_empty() && (salesforce || host == login_host) {
        Ok(())
    } else {
        Err(untrusted(prmsync_transport::shown(&url)))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "https://login.salesforce.com";

    #[test]
    fn salesforce_instances_are_trusted() {
        for instance in [
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com/",
            "https://na42.salesforce.com",
            "https://acme.lightning.force.com",
            "https://acme.cloudforce.com",
            "https://acme.my.salesforce.mil",
            "https://acme.my.sfcrmproducts.cn",
            "https://ACME.MY.SALESFORCE.COM",
        ] {
            assert!(check_instance(instance, LOGIN).is_ok(), "{instance}");
        }
    }

    #[test]
    fn the_login_host_and_loopback_are_trusted() {
        assert!(check_instance("https://sf.corp.example", "https://sf.corp.example").is_ok());
        assert!(check_instance("http://127.0.0.1:4010", "http://127.0.0.1:4010").is_ok());
        assert!(check_instance("http://localhost:4010", "http://127.0.0.1:9").is_ok());
        assert!(check_instance("http://[::1]:4010", "http://localhost:9").is_ok());
        // a real login never sends the token to this machine
        assert!(check_instance("http://localhost:4010", LOGIN).is_err());
        assert!(check_instance("https://127.0.0.1:4010", LOGIN).is_err());
    }

    #[test]
    fn other_instances_are_refused_naming_the_host() {
        for (instance, shown) in [
            ("https://evil.example.com", "https://evil.example.com"),
            (
                "https://salesforce.com.evil.example",
                "https://salesforce.com.evil.example",
            ),
            ("https://evilsalesforce.com", "https://evilsalesforce.com"),
            (
                "http://acme.my.salesforce.com",
                "http://acme.my.salesforce.com",
            ),
            ("http://sf.corp.example", "http://sf.corp.example"),
            ("https://10.0.0.8:443/x?y", "https://10.0.0.8"),
        ] {
            let err = check_instance(instance, "https://sf.corp.example").unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::Setup);
            let text = err.to_string();
            assert!(text.contains(&format!("instance {shown},")), "{text}");
            assert!(text.contains("did not send the access token"), "{text}");
            assert!(text.contains("SALESFORCE_LOGIN_URL"), "{text}");
        }
        assert!(check_instance("not a url", LOGIN).is_err());
    }

    #[test]
    fn a_token_for_an_untrusted_instance_is_not_kept() {
        let body = br#"{"access_token":"tok","instance_url":"https://evil.example.com"}"#;
        let err = parse_token(body, LOGIN).unwrap_err();
        assert!(matches!(err, SfError::UntrustedInstance { .. }), "{err:?}");
        assert!(!err.to_string().contains("tok\""));
        let body = br#"{"access_token":"tok","instance_url":"https://acme.my.salesforce.com/"}"#;
        let token = parse_token(body, LOGIN).unwrap();
        assert_eq!(token.instance_url, "https://acme.my.salesforce.com");
    }
}
