//! full-sync: the hourly (or manual) planner. Reads what changed and queues chunks; a run
//! that would outlast the invocation continues in a new one.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use prmsync_lambda::{handlers::full_sync, logging, relaunch, Deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let deps = Deps::from_env_with(relaunch::self_relaunch).await?;
    let margin = relaunch::margin_from_env()?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let limit = relaunch::invocation_limit(event.context.deadline, margin);
            full_sync::handle_within(deps, event.payload, limit).await
        }
    }))
    .await
}
