//! Lambda's Invoke API for the deployment's functions, served in this process: moto's
//! Lambda needs Docker, so the kit answers `POST /2015-03-31/functions/{name}/invocations`
//! itself by running the real handlers (full-sync, deal-import) over the moto-backed
//! dependencies, as Lambda would run them, and keeps every payload it was given. With it
//! the operator's side (`prmsync_aws::deployment`) is tested through the AWS SDK unchanged.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use prmsync_lambda::handlers::{deal_import, full_sync};
use prmsync_lambda::Deps;
use serde_json::{json, Value};

/// The function names the kit answers to.
pub const FULL_SYNC: &str = "prmsync-full-sync";
pub const DEAL_IMPORT: &str = "prmsync-deal-import";

#[derive(Clone)]
struct Functions {
    deps: Arc<Deps>,
    invoked: Arc<Mutex<Vec<(String, Value)>>>,
}

/// The Invoke API on a free loopback port.
pub struct LambdaApi {
    pub url: String,
    invoked: Arc<Mutex<Vec<(String, Value)>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LambdaApi {
    pub async fn serve(deps: Arc<Deps>) -> Self {
        let invoked = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/2015-03-31/functions/:name/invocations", post(invoke))
            .with_state(Functions {
                deps,
                invoked: invoked.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        LambdaApi {
            url,
            invoked,
            _stop: stop,
        }
    }

    /// A Lambda client that reaches this API.
    pub async fn client(&self) -> aws_sdk_lambda::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&config)
                .endpoint_url(&self.url)
                .build(),
        )
    }

    /// Every invocation so far: the function's name and its payload.
    pub fn invoked(&self) -> Vec<(String, Value)> {
        self.invoked.lock().unwrap().clone()
    }
}

async fn invoke(
    State(f): State<Functions>,
    Path(name): Path<String>,
    _headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    f.invoked
        .lock()
        .unwrap()
        .push((name.clone(), payload.clone()));
    let answer = match name.as_str() {
        FULL_SYNC => full_sync::handle(&f.deps, payload)
            .await
            .map_err(|e| (e.error_type(), e.to_string())),
        DEAL_IMPORT => deal_import::handle(&f.deps, payload)
            .await
            .map_err(|e| ("Prmsync.Payload".to_string(), e.to_string())),
        other => {
            return (
                StatusCode::NOT_FOUND,
                [("x-amzn-errortype", "ResourceNotFoundException")],
                json!({"Type": "User", "message": format!("Function not found: {other}")})
                    .to_string(),
            )
                .into_response()
        }
    };
    match answer {
        Ok(v) => (StatusCode::OK, v.to_string()).into_response(),
        // as Lambda answers a function error: 200, the header, the Diagnostic as the body
        Err((error_type, message)) => (
            StatusCode::OK,
            [("x-amz-function-error", "Unhandled")],
            json!({"errorType": error_type, "errorMessage": message}).to_string(),
        )
            .into_response(),
    }
}
