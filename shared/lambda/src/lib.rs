//! The Lambda side of prmsync: configuration from the environment, the handlers of the
//! four functions, and JSON logging. The functions in `functions/` are thin `main`s over
//! these handlers; no sync logic lives here either — it is all in the engine.

pub mod deps;
pub mod handlers;
pub mod logging;
pub mod payload;
pub mod relaunch;

pub use deps::{Deps, FunctionEnv, WebhookEnv};
