//! full-sync: the hourly (or manual) planner. Reads what changed and queues chunks.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use prmsync_lambda::{handlers::full_sync, logging, Deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move { Ok::<_, Error>(full_sync::handle(deps, event.payload).await?) }
    }))
    .await
}
