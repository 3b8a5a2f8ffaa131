//! The sync use cases of prmsync over small ports. The modules, from the bottom up:
//!
//! - [`ports`]: what the engine needs of Salesforce ([`ports::Crm`]), the PRM
//!   ([`ports::Prm`]) and the work queue ([`ports::Queue`]), and how a failure is classed.
//! - [`store`]: links, cursors, leases, runs, chunks, the retry set and the Integration Log.
//! - [`report`]: what a run did (counts, status, failure class).
//! - [`objects`]: what differs between object pairs (fields read, selection, Record Status).
//! - [`context`]: the [`SyncContext`] every use case runs with, and shared reads.
//! - [`error`]: [`EngineError`], why a run, plan or chunk stopped; it keeps the failure
//!   class, which becomes the Lambda error type and the CLI's exit status.
//! - [`chunk`]: the unit of work on AWS, the records of one integration that sync together.
//! - [`frame`]: the frame of every run (pause flag, lease, run record, cursors, log).
//! - [`pairing`]: which records of the two sides sync together (links, named ids, match
//!   keys), the same for both deployments.
//! - [`pass`]: one sync pass over the records in hand: three-way merge, matching, creates,
//!   deletes, hierarchy, batched writes; and the Deal Registration import.
//! - [`run`] and [`sweep`]: a one-machine run, page by page.
//! - [`planner`], [`worker`] and [`retry`]: a run on AWS: the planner queues chunks,
//!   workers sync them, the retry set holds the records that failed for a passing reason
//!   (for both deployments), and the worker that finishes the last chunk closes the run.
//! - [`check`]: the mapping checked against Salesforce's describe before a full run.
//! - `store_contract` (feature `testing`): the tests every [`Store`] implementation passes.

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
