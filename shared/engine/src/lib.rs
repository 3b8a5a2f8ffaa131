//! The sync use cases of prmsync over small ports. The modules, from the bottom up (a
//! module uses only those above it in this list or beside it in its item):
//!
//! - [`chunk`]: the unit of work on AWS, the records of one integration that sync together.
//! - [`ports`]: what the engine needs of Salesforce ([`ports::Crm`]), the PRM
//!   ([`ports::Prm`]) and the work queue ([`ports::Queue`]), and how a failure is classed.
//! - [`objects`]: what differs between object pairs (fields read, selection, Record Status).
//! - [`report`]: what a run did (counts, status, failure class).
//! - [`store`]: links, cursors, leases, runs, chunks, the retry set and the Integration Log.
//! - [`context`]: the [`SyncContext`] every use case runs with, and shared reads.
//! - [`change_events`]: Salesforce change events (Change Data Capture on AWS): the
//!   records a batch names, read fresh and synced as chunks; prmsync's own dropped.
//! - [`retry`]: the retry set, for both deployments: records whose write failed for a
//!   passing reason, retried alone, parked after their last attempt.
//! - [`pairing`]: which records of the two sides sync together (links, named ids, match
//!   keys), the same for both deployments.
//! - [`pass`]: one sync pass over the records in hand: three-way merge, matching, creates,
//!   deletes, hierarchy, batched writes; and the Deal Registration import.
//! - [`error`]: [`EngineError`], why a run, plan or chunk stopped; it keeps the failure
//!   class, which becomes the Lambda error type and the CLI's exit status.
//! - [`check`]: the mapping checked against Salesforce's describe before a full run.
//! - [`frame`]: the frame of every run (pause flag, lease, run record, cursors, log).
//! - [`run`] and [`sweep`]: a one-machine run, page by page.
//! - [`reconcile`]: when a scheduled run is a reconcile (everything re-read, drift repaired).
//! - [`relink`]: links repaired by hand (unlink, relink), for the CLI and the console.
//! - [`inspect`]: one record as the operator sees it: both sides read live beside the
//!   link's snapshot, and people found by email.
//! - [`watch`]: `prmsync watch`, a run every interval and notified records between.
//! - [`planner`] and [`worker`]: a run on AWS: the planner queues chunks, workers sync
//!   them, and the worker that finishes the last chunk closes the run.
//! - `store_contract` (feature `testing`): the tests every [`Store`] implementation passes.

pub mod breaker;
pub mod change_events;
pub mod check;
pub mod chunk;
pub mod context;
pub mod error;
pub mod frame;
pub mod inspect;
pub mod objects;
pub mod pairing;
pub mod pass;
pub mod planner;
pub mod ports;
pub mod reconcile;
pub mod relink;
pub mod report;
pub mod retry;
pub mod run;
pub mod store;
#[cfg(feature = "testing")]
pub mod store_contract;
pub mod sweep;
pub mod watch;
pub mod worker;

pub use context::{RunMode, RunOptions, SyncContext};
pub use error::EngineError;
pub use ports::{Crm, FailureClass, PortError, Prm, RecordFailure};
pub use report::{Counts, RunReport, RunStatus};
pub use run::{run_integration, sync_record, RecordRef, RecordRefError};
pub use store::{Link, LinkState, LogEntry, LogFilter, RunRecord, Store};
