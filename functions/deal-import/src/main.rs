//! deal-import: the hourly (or manual) Deal Registration import.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use prmsync_lambda::{handlers::deal_import, logging, Deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let deps = Deps::from_env().await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move { Ok::<_, Error>(deal_import::handle(deps, event.payload).await?) }
    }))
    .await
}
