//! Client of the PRM API v1 (`docs/prm-api.yaml`): list with paging and filters, get,
//! idempotent create, optimistic update, delete, groups and settings, with retries on
//! rate limits, server errors and transport errors.
//!
//! ```no_run
//! # async fn demo() -> Result<(), prmsync_prm::PrmError> {
//! use prmsync_prm::{Collection, ListQuery, PrmClient, PrmConfig};
//! let client = PrmClient::new(PrmConfig::new("http://127.0.0.1:8181", "token"))?;
//! let changed = client.list(Collection::People, &ListQuery::default()).await?;
//! # let _ = changed; Ok(()) }
//! ```

mod client;
mod config;
mod error;
mod model;
pub mod notification;
pub mod port;
pub mod receiver;
mod retry;

pub use client::{BatchWrite, ListPage, PrmClient};
pub use config::PrmConfig;
pub use error::{FieldError, PrmError};
pub use model::{
    read_records, Collection, DistributorModule, FieldSpec, Group, ListQuery, Malformed, PrmRecord,
    Settings, MAX_IDS,
};
