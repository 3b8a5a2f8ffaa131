//! One module per command.

pub mod bench;
pub mod console;
pub mod links;
pub mod log;
pub mod mapping;
pub mod reconcile;
pub mod sandbox;
pub mod status;
pub mod sync;
pub mod watch;

use prmsync_mapping::Integration;

use crate::IntegrationArg;

/// The integrations an argument names, in the order they run (organizations before the
/// people who belong to them).
pub fn integrations(arg: IntegrationArg) -> Vec<Integration> {
    match arg {
        IntegrationArg::Organizations => vec![Integration::Organizations],
        IntegrationArg::People => vec![Integration::People],
        IntegrationArg::Deals => vec![Integration::Deals],
        IntegrationArg::All => vec![
            Integration::Organizations,
            Integration::People,
            Integration::Deals,
        ],
    }
}
