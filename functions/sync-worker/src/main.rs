//! sync-worker: syncs the chunks SQS hands it, reporting partial batch failures.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use prmsync_lambda::{handlers::sync_worker, logging, relaunch, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let deps = Deps::from_env_with(relaunch::planner_relaunch).await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move { Ok::<SqsBatchResponse, Error>(sync_worker::handle(deps, event.payload).await) }
    }))
    .await
}
