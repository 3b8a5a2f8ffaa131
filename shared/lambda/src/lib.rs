//! The Lambda side of prmsync: configuration from the environment, the handlers of the
//! four functions, and JSON logging. The functions in `functions/` are thin `main`s over
//! these handlers; no sync logic lives here either — it is all in the engine.

/// The allocator of the four functions (they all link this crate): a sync allocates and
/// frees many small strings and maps per record, where mimalloc spends a fraction of glibc
/// malloc's time (`docs/benchmarks.md`, "Large imports").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod deps;
pub mod handlers;
pub mod logging;
pub mod payload;
pub mod relaunch;

pub use deps::{Deps, FunctionEnv, WebhookEnv};
