//! OAuth 2.0 token endpoint (client credentials and JWT bearer) and bearer-token checks.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

/// Org id of the simulated org.
pub const ORG_ID: &str = "00DSm0000000001AAA";

/// An OAuth error answered with HTTP 400 `{error, error_description}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

/// Connected-app credentials and the access tokens issued so far.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub client_id: String,
    pub client_secret: String,
    tokens: HashSet<String>,
    issued: u64,
}

impl AuthState {
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        AuthState {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            tokens: HashSet::new(),
            issued: 0,
        }
    }

    /// Invalidates every issued token.
    pub fn expire_all(&mut self) {
        self.tokens.clear();
    }

    /// Whether an `Authorization` header value carries a valid bearer token.
    pub fn check_header(&self, header: Option<&str>) -> bool {
        header
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
                    .then(|| token.trim())
            })
            .is_some_and(|t| self.tokens.contains(t))
    }

    /// Handles a token request: form fields plus an optional HTTP Basic `Authorization`
    /// header. Returns the token response body.
    pub fn token(
        &mut self,
        form: &HashMap<String, String>,
        basic: Option<&str>,
        instance_url: &str,
        now_secs: i64,
    ) -> Result<Value, OAuthError> {
        let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
        match grant {
            "client_credentials" => {
                let (id, secret) = match (form.get("client_id"), form.get("client_secret")) {
                    (Some(id), Some(secret)) => (id.clone(), secret.clone()),
                    _ => basic_credentials(basic).unwrap_or_default(),
                };
                if id != self.client_id || secret != self.client_secret {
                    return Err(OAuthError::new(
                        "invalid_client",
                        "invalid client credentials",
                    ));
                }
            }
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                let assertion = form
                    .get("assertion")
                    .ok_or_else(|| OAuthError::new("invalid_grant", "missing assertion"))?;
                self.check_jwt(assertion, now_secs)?;
            }
            _ => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "grant type not supported",
                ))
            }
        }
        self.issued += 1;
        let token = format!(
            "{}!SIM{:08}{}",
            &ORG_ID[..15],
            self.issued,
            uuid::Uuid::new_v4().simple()
        );
        self.tokens.insert(token.clone());
        Ok(json!({
            "access_token": token,
            "instance_url": instance_url,
            "id": format!("{instance_url}/id/{ORG_ID}/005Sm0000000001AAA"),
            "token_type": "Bearer",
            "issued_at": (now_secs * 1000).to_string(),
            "signature": "c2ltdWxhdGVk",
            "scope": "api",
        }))
    }

    /// Decodes the JWT payload (the signature is not verified) and checks iss, sub and exp.
    fn check_jwt(&self, jwt: &str, now_secs: i64) -> Result<(), OAuthError> {
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return Err(OAuthError::new("invalid_grant", "invalid assertion"));
        }
        let claims: Value = base64_decode(parts[1])
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| OAuthError::new("invalid_grant", "invalid assertion"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.client_id.as_str()) {
            return Err(OAuthError::new(
                "invalid_grant",
                "invalid client identifier (iss)",
            ));
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(OAuthError::new(
                "invalid_grant",
                "user hasn't approved this consumer",
            ));
        }
        let exp = claims.get("exp").and_then(Value::as_i64);
        if exp.is_none_or(|exp| exp <= now_secs) {
            return Err(OAuthError::new(
                "invalid_grant",
                "expired authorization code",
            ));
        }
        Ok(())
    }
}

fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, value) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(value.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Base64 decoding accepting both the standard and the URL-safe alphabet, padded or not.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let data = input.trim_end_matches('=').as_bytes();
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut buf = [0u8; 3];
            buf[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"iss\":\"x?>\"}"] {
            assert_eq!(base64_decode(&b64url(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_decode("YTpi").unwrap(), b"a:b");
        assert!(base64_decode("a").is_none());
    }

    #[test]
    fn jwt_checks() {
        let auth = AuthState::new("cid", "secret");
        let jwt = |claims: &str| format!("e30.{}.sig", b64url(claims.as_bytes()));
        assert!(auth
            .check_jwt(&jwt(r#"{"iss":"cid","sub":"u@x","exp":200}"#), 100)
            .is_ok());
        assert!(auth
            .check_jwt(&jwt(r#"{"iss":"other","sub":"u@x","exp":200}"#), 100)
            .is_err());
        assert!(auth
            .check_jwt(&jwt(r#"{"iss":"cid","sub":"u@x","exp":50}"#), 100)
            .is_err());
        assert!(auth
            .check_jwt(&jwt(r#"{"iss":"cid","exp":200}"#), 100)
            .is_err());
        assert!(auth.check_jwt("garbage", 100).is_err());
    }
}
