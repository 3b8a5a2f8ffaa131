//! The sync use cases of prmsync over small ports.
//!
//! - [`ports`]: what the engine needs of Salesforce ([`ports::Crm`]), the PRM
//!   ([`ports::Prm`]) and the work queue ([`ports::Queue`]).
//! - [`store`]: links, cursors, leases, runs, chunks, the retry set and the Integration Log.
//! - [`context`]: the [`SyncContext`] every use case runs with, and shared reads.
//! - [`frame`]: the frame of every run (pause flag, lease, run record, cursors, log).
//! - [`pass`]: one sync pass of an object pair: three-way merge, matching, creates,
//!   deletes, hierarchy, batched writes.
//! - [`pairing`]: which records of the two sides sync together (links, named ids, match
//!   keys), the same for both deployments.
//! - [`run`] and [`sweep`]: a one-machine run, page by page.
//! - [`planner`], [`chunk`] and [`worker`]: a run on AWS: the planner queues chunks,
//!   workers sync them, and the last one closes the run.

pub mod check;
pub mod chunk;
pub mod context;
pub mod error;
pub mod frame;
pub mod objects;
pub mod pairing;
pub mod pass;
pub mod planner;
pub mod ports;
pub mod report;
pub mod retry;
pub mod run;
pub mod store;
#[cfg(feature = "testing")]
pub mod store_contract;
pub mod sweep;
pub mod worker;

pub use context::{RunMode, RunOptions, SyncContext};
pub use error::EngineError;
pub use ports::{Crm, FailureClass, PortError, Prm, RecordFailure};
pub use report::{Counts, RunReport, RunStatus};
pub use run::{run_integration, sync_record, RecordRef};
pub use store::{Link, LinkState, LogEntry, LogFilter, RunRecord, Store};
