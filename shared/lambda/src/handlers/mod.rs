//! One module per function.

pub mod deal_import;
pub mod full_sync;
pub mod prm_webhook;
pub mod sync_worker;
