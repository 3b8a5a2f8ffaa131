//! Connection settings of the PRM client.

use std::time::Duration;

/// Where the PRM is and how to talk to it. `Debug` never shows the token.
#[derive(Clone)]
pub struct PrmConfig {
    /// `PRM_API_URL`, e.g. `https://prm.example.com/api` (paths start `/v1` below it);
    /// plain `http://` only on this machine, e.g. the simulator's `http://127.0.0.1:8181`.
    pub base_url: String,
    /// `PRM_API_TOKEN`, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Retries after the first attempt for rate limits, 5xx and transport errors.
    pub max_retries: u32,
    /// Records asked for per page of the engine's reads (`limit`, 1 to 1,000; default
    /// 1,000, the most the contract allows).
    pub page_size: u32,
}

impl PrmConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_RETRIES: u32 = 4;
    pub const DEFAULT_PAGE_SIZE: u32 = 1000;

    /// A configuration with the default timeout (30 s), retries (4) and page size (1,000).
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: token.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            page_size: Self::DEFAULT_PAGE_SIZE,
        }
    }

    /// Reads `PRM_API_URL` and `PRM_API_TOKEN`; the error names the first one missing.
    pub fn from_env() -> Result<Self, &'static str> {
        let url = std::env::var("PRM_API_URL").map_err(|_| "PRM_API_URL")?;
        let token = std::env::var("PRM_API_TOKEN").map_err(|_| "PRM_API_TOKEN")?;
        Ok(Self::new(url, token))
    }
}

impl std::fmt::Debug for PrmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrmConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("page_size", &self.page_size)
            .finish()
    }
}
