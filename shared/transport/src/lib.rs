//! The one rule for the addresses prmsync sends credentials and personal data to: the
//! Salesforce login URL, the Salesforce instance URL and the PRM API URL.
//!
//! An address must be `https://`; plain `http://` is accepted only on this machine's
//! loopback (`localhost`, `127.0.0.0/8`, `::1`), where the simulators run. Anywhere else
//! plain HTTP would send the credentials and the records unencrypted.
//!
//! [`secure_url`] applies the rule; [`is_loopback`] says whether a URL names this machine.

use url::{Host, Url};

/// An address refused by [`secure_url`]. The message names the address (scheme, host and
/// port only: never a user, password, path or query) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsecureUrl {
    #[error("the {what} is not a URL: give its https:// address")]
    NotUrl { what: String },
    #[error("the {what} {shown} is neither https:// nor http://: give its https:// address")]
    Scheme { what: String, shown: String },
    #[error(
        "the {what} {shown} uses plain http://, which would send credentials and personal \
         data unencrypted: use its https:// address (plain http:// is accepted only on this \
         machine: localhost, 127.0.0.0/8, ::1)"
    )]
    PlainHttp { what: String, shown: String },
}

/// `raw` as a URL when it is `https://`, or `http://` on a loopback host; `what` names the
/// setting in the error (e.g. "Salesforce login URL").
pub fn secure_url(what: &str, raw: &str) -> Result<Url, InsecureUrl> {
    let url = Url::parse(raw.trim()).map_err(|_| InsecureUrl::NotUrl {
        what: what.to_string(),
    })?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(InsecureUrl::PlainHttp {
            what: what.to_string(),
            shown: shown(&url),
        }),
        _ => Err(InsecureUrl::Scheme {
            what: what.to_string(),
            shown: shown(&url),
        }),
    }
}

/// Whether the URL's host is this machine: `localhost`, an address of `127.0.0.0/8`, or
/// `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Scheme, host and port of a URL: what an error may show of it.
pub fn shown(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        (None, _) => format!("{}:", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "PRM API URL";

    #[test]
    fn https_is_accepted_anywhere() {
        for raw in [
            "https://login.salesforce.com",
            "https://prm.example.com/api",
            " https://acme.my.salesforce.com/ ",
            "https://127.0.0.1:8443",
        ] {
            assert!(secure_url(WHAT, raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn plain_http_is_accepted_on_loopback_only() {
        for raw in [
            "http://127.0.0.1:8181",
            "http://127.10.0.3",
            "http://localhost:3000/v1",
            "http://LOCALHOST",
            "http://[::1]:9000",
        ] {
            assert!(secure_url(WHAT, raw).is_ok(), "{raw}");
        }
        for raw in [
            "http://prm.example.com",
            "http://login.salesforce.com",
            "http://10.0.0.5:8181",
            "http://128.0.0.1",
            "http://[::2]",
            "http://localhost.example.com",
            "http://0.0.0.0:8181",
        ] {
            match secure_url(WHAT, raw) {
                Err(InsecureUrl::PlainHttp { .. }) => {}
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn plain_http_error_says_why_and_the_fix_without_credentials() {
        let err = secure_url(WHAT, "http://user:s3cret@prm.example.com:8080/v1?token=abc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PRM API URL http://prm.example.com:8080"),
            "{err}"
        );
        assert!(err.contains("unencrypted"), "{err}");
        assert!(err.contains("use its https:// address"), "{err}");
        assert!(
            !err.contains("s3cret") && !err.contains("abc") && !err.contains("user"),
            "{err}"
        );
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        assert!(matches!(
            secure_url(WHAT, "ftp://prm.example.com"),
            Err(InsecureUrl::Scheme { .. })
        ));
        assert!(matches!(
            secure_url(WHAT, "prm.example.com"),
            Err(InsecureUrl::NotUrl { .. })
        ));
        assert!(matches!(
            secure_url(WHAT, ""),
            Err(InsecureUrl::NotUrl { .. })
        ));
    }
}
