//! Who may use the console, and which requests change state.
//!
//! - It listens on a loopback address unless `PRMSYNC_CONSOLE_TOKEN` is set: any other
//!   address without a token is refused before it binds ([`check_listen`]).
//! - With a token, every request carries it (`Authorization: Bearer <token>` or the
//!   `prmsync_console` cookie the page sets after `?token=<token>`), compared in constant
//!   time.
//! - Every state-changing request is a POST whose form carries the console's CSRF token
//!   (random per process, in each form); a POST without it is 403.

use std::net::SocketAddr;

use subtle::ConstantTimeEq;

/// The environment variable holding the console's access token.
pub const TOKEN_ENV: &str = "PRMSYNC_CONSOLE_TOKEN";
/// The cookie that carries the access token after the first visit.
pub const TOKEN_COOKIE: &str = "prmsync_console";
/// The shortest access token taken.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Why the console will not listen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("the console listens on {addr}, which other machines can reach, only with an access token: set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_CHARS} characters, or listen on 127.0.0.1")]
    NeedsToken { addr: SocketAddr },
    #[error("{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters: use a longer random secret (e.g. `openssl rand -hex 24`)")]
    ShortToken,
}

/// Whether the console may listen on `addr` with this access token (None: no token).
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), ListenError> {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() < MIN_TOKEN_CHARS => Err(ListenError::ShortToken),
        Some(_) => Ok(()),
        None if addr.ip().is_loopback() => Ok(()),
        None => Err(ListenError::NeedsToken { addr }),
    }
}

/// `given` equals `expected`, compared in constant time (for equal lengths).
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// A fresh random token (hex, 32 bytes).
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The access token a request carries: the bearer header, else the cookie.
pub fn request_token<'a>(
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(t) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        return Some(t.trim());
    }
    cookie?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_and_anything_else_does() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(check_listen(lo, None), Ok(()));
        assert_eq!(check_listen(lo6, None), Ok(()));
        assert_eq!(
            check_listen(any, None),
            Err(ListenError::NeedsToken { addr: any })
        );
        assert_eq!(
            check_listen(any, Some("  ")),
            Err(ListenError::NeedsToken { addr: any })
        );
        assert_eq!(
            check_listen(any, Some("short")),
            Err(ListenError::ShortToken)
        );
        assert_eq!(check_listen(any, Some(&"x".repeat(16))), Ok(()));
        let msg = check_listen(any, None).unwrap_err().to_string();
        assert!(
            msg.contains(TOKEN_ENV) && msg.contains("127.0.0.1"),
            "{msg}"
        );
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_cookie() {
        assert_eq!(request_token(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(
            request_token(None, Some("a=b; prmsync_console=tok; c=d")),
            Some("tok")
        );
        assert_eq!(request_token(None, Some("other=tok")), None);
        assert!(
            same_secret("abc", "abc") && !same_secret("abd", "abc") && !same_secret("ab", "abc")
        );
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
