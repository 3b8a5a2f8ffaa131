//! The sync use cases of prmsync over small ports.
//!
//! - [`ports`]: what the engine needs of Salesforce ([`ports::Crm`]) and the PRM
//!   ([`ports::Prm`]).
//! - [`store`]: links, cursors, leases, runs, pause flags and the Integration Log.
//! - [`pass`]: one sync pass of an object pair: change detection, three-way merge,
//!   matching, creates, deletes, hierarchy, batched writes.
//! - [`run`]: a run of an integration: pause flag, lease, cursors, run record, report.
//! - [`sweep`]: a one-machine run's pass, page by page.

pub mod check;
pub mod distributed;
pub mod objects;
pub mod pass;
pub mod ports;
pub mod report;
pub mod run;
pub mod store;
#[cfg(feature = "testing")]
pub mod store_contract;
pub mod sweep;

pub use ports::{Crm, FailureClass, PortError, Prm, RecordFailure};
pub use report::{Counts, RunReport};
pub use run::{run_integration, sync_record, RecordRef, RunMode, RunOptions, SyncContext};
pub use store::{Link, LinkState, LogEntry, LogFilter, RunRecord, Store};
