//! prm-webhook: the PRM's change notifications, checked and queued (Function URL).

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use prmsync_lambda::handlers::prm_webhook::{self, WebhookDeps};
use prmsync_lambda::logging;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let deps = WebhookDeps::from_env().await?;
    run(service_fn(
        |event: LambdaEvent<LambdaFunctionUrlRequest>| {
            let deps = &deps;
            async move {
                Ok::<LambdaFunctionUrlResponse, Error>(
                    prm_webhook::handle(deps, event.payload).await,
                )
            }
        },
    ))
    .await
}
