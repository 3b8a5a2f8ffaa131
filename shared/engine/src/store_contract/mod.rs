//! Contract tests every Store implementation passes.
//!
//! Each function takes a fresh (empty) store and panics with a message naming the broken
//! rule. The functions use disjoint keys (objects, integrations, ids), so [`all`] may run
//! them one after another on the same store. An implementation's own tests call them:
//!
//! ```ignore
//! #[tokio::test]
//! async fn contract() {
//!     prmsync_engine::store_contract::all(&MyStore::new()).await;
//! }
//! ```
//!
//! By role, as the stores are: [`links`](links()) and what hangs off them (children
//! pending, rejections), runs (cursors, plan checkpoints, runs, run chunks), state (leases,
//! pauses, the API hold, the retry set, webhook deliveries) and the Integration [`log`](log()).

mod links;
mod log;
mod runs;
mod state;

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::store::Store;

pub use links::{children_pending, linked_ids, links, links_in_batches, rejections};
pub use log::log;
pub use runs::{checkpoints, cursors, run_chunks, runs, runs_since, take_checkpoint};
pub use state::{api_hold, deliveries, leases, pauses, retry_set};

/// Every contract, one after another.
pub async fn all(store: &dyn Store) {
    links(store).await;
    links_in_batches(store).await;
    children_pending(store).await;
    linked_ids(store).await;
    cursors(store).await;
    checkpoints(store).await;
    leases(store).await;
    pauses(store).await;
    runs(store).await;
    runs_since(store).await;
    log(store).await;
    rejections(store).await;
    take_checkpoint(store).await;
    run_chunks(store).await;
    retry_set(store).await;
    api_hold(store).await;
    deliveries(store).await;
}

/// `t` truncated to microseconds: what every store keeps of a time.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1))
        .expect("time truncates to microseconds")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
