//! `prm-webhook` (Function URL): checks the PRM's `X-PRM-Signature` (HMAC-SHA256 of the raw
//! body with the shared secret) and queues the changed record for a worker. Unsigned or
//! badly signed calls get 401 and change nothing.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use prmsync_engine::chunk::Chunk;
use prmsync_mapping::Integration;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::Deps;

#[derive(Deserialize)]
struct Notification {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

fn respond(status: i64, body: serde_json::Value) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.headers.insert(
        "content-type",
        "application/json".parse().expect("valid header"),
    );
    r.body = Some(body.to_string());
    r
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn signature_valid(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

pub async fn handle(deps: &Deps, request: LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
    let raw = request.body.unwrap_or_default();
    let body = if request.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()) {
            Ok(b) => b,
            Err(_) => return respond(400, json!({"error": "body is not valid base64"})),
        }
    } else {
        raw.into_bytes()
    };
    let signature = request
        .headers
        .get("x-prm-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let valid = deps
        .webhook_secret
        .as_deref()
        .is_some_and(|secret| signature_valid(secret, &body, signature));
    if !valid {
        tracing::warn!(
            code = "webhook_rejected",
            message = "missing or invalid X-PRM-Signature"
        );
        return respond(401, json!({"error": "missing or invalid signature"}));
    }
    let note: Notification = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return respond(
                400,
                json!({"error": format!("not a PRM change notification: {e}")}),
            )
        }
    };
    let integration = match note.kind.split('.').next() {
        Some("organization") => Integration::Organizations,
        Some("person") => Integration::People,
        Some("deal") => Integration::Deals,
        _ => {
            return respond(
                400,
                json!({"error": format!("unknown notification type `{}`", note.kind)}),
            )
        }
    };
    let chunk = Chunk::refs(
        &format!("webhook-{}", note.event_id),
        integration,
        Vec::new(),
        vec![note.id.clone()],
    );
    if let Err(e) = deps.queue.send(std::slice::from_ref(&chunk)).await {
        tracing::error!(code = "webhook_queue_failed", prm_id = note.id.as_str(), message = %e);
        return respond(
            503,
            json!({"error": "could not queue the change; the PRM should retry"}),
        );
    }
    tracing::info!(
        run_id = chunk.run_id.as_str(),
        integration = integration.as_str(),
        prm_id = note.id.as_str(),
        code = "webhook_queued"
    );
    respond(
        202,
        json!({"queued": true, "integration": integration.as_str(), "id": note.id}),
    )
}
