//! What the CLI's AWS tests share.
#![allow(dead_code)]

/// The moto endpoint, or None (loudly) when a plain `cargo test` has none; with
/// `PRMSYNC_REQUIRE_AWS` set (the test command) a missing endpoint fails the test.
pub fn endpoint(tests: &str) -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PRMSYNC_REQUIRE_AWS").is_ok() => {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "WARNING: {tests} tests did NOT run: AWS_ENDPOINT_URL is not set (./scripts/test.sh starts moto)");
            None
        }
    }
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
