//! What the client's tests against the simulator share.

use std::time::Duration;

use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::salesforce::{SalesforceSim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::{Map, Value};

/// A simulated org and a client of it, retrying within milliseconds.
pub async fn setup() -> (SalesforceSim, SalesforceClient) {
    let sim = SalesforceSim::new();
    let url = sim.start().await.unwrap();
    let mut cfg = SalesforceConfig::new(
        url,
        Auth::ClientCredentials {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
        },
    );
    cfg.retry_base = Duration::from_millis(2);
    cfg.retry_max = Duration::from_millis(10);
    cfg.timeout = Duration::from_secs(10);
    (sim, SalesforceClient::new(cfg).unwrap())
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
