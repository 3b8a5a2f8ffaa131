//! `prm-webhook` (Function URL): the PRM's change notifications, checked and queued.
//!
//! In order, each step answering before the next costs anything:
//! 1. a body over [`MAX_BODY_BYTES`] gets 413 (before it is decoded or hashed);
//! 2. an unsigned, malformed, stale (more than 5 minutes from this clock) or badly signed
//!    request gets 401 (signature rule: `prmsync_prm::notification`);
//! 3. a signed body that is not a notification gets 400;
//! 4. an `event_id` already taken in the last 24 h gets 200 and nothing more (the PRM
//!    retries what got no 2xx; a replay inside the 5 minutes lands here too);
//! 5. otherwise the record is queued for a worker (202).
//!
//! The answers are `prmsync_prm::notification`'s ([`notification::check`],
//! [`notification::take`], [`Answer`]), shared with `prmsync watch`'s local receiver.
//!
//! The 401 and 413 answers say only what the status says; why, is in the function's log.
//! The function holds only the webhook secrets, the deliveries table and the queue: no
//! Salesforce or PRM credentials.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use prmsync_aws::secrets::WebhookSecretError;
use prmsync_engine::ports::Queue;
use prmsync_engine::store::Deliveries;
use prmsync_engine::RecordRef;
use prmsync_mapping::Integration;
use prmsync_prm::notification::{
    self, Answer, Notification, Refusal, WebhookSecrets, MAX_BODY_BYTES, NOT_QUEUED,
    SIGNATURE_HEADER,
};
use serde_json::json;
use tokio::sync::Mutex;

/// Where the webhook secrets come from (the function's own secret on AWS).
#[async_trait]
pub trait SecretsSource: Send + Sync {
    /// The current secrets, or an error naming the secret and the fix (never a value).
    async fn load(&self) -> Result<Option<WebhookSecrets>, WebhookSecretError>;
}

/// Secrets that never change (tests, a one-machine listener).
pub struct FixedSecrets(pub Option<WebhookSecrets>);

#[async_trait]
impl SecretsSource for FixedSecrets {
    async fn load(&self) -> Result<Option<WebhookSecrets>, WebhookSecretError> {
        Ok(self.0.clone())
    }
}

/// How long the secrets read are trusted before a signature that matches none of them
/// re-reads them: a secret rotated while the function is warm is picked up within this,
/// and a flood of bad signatures costs at most one read per this per instance.
pub const SECRETS_REFRESH: StdDuration = StdDuration::from_secs(300);

/// The secrets in use, read at cold start and re-read (at most every [`SECRETS_REFRESH`])
/// when a signature matches none of them.
pub struct WebhookKeys {
    source: Arc<dyn SecretsSource>,
    held: Mutex<(Option<WebhookSecrets>, std::time::Instant)>,
    refresh: StdDuration,
}

impl WebhookKeys {
    /// The secrets `source` gives now, re-read at most every [`SECRETS_REFRESH`].
    pub async fn load(source: Arc<dyn SecretsSource>) -> Result<Self, WebhookSecretError> {
        Self::load_with(source, SECRETS_REFRESH).await
    }

    /// [`load`](Self::load), re-read at most every `refresh`.
    pub async fn load_with(
        source: Arc<dyn SecretsSource>,
        refresh: StdDuration,
    ) -> Result<Self, WebhookSecretError> {
        let secrets = source.load().await?;
        Ok(Self {
            source,
            held: Mutex::new((secrets, std::time::Instant::now())),
            refresh,
        })
    }

    /// Secrets that never change.
    pub fn fixed(secrets: Option<WebhookSecrets>) -> Self {
        Self {
            source: Arc::new(FixedSecrets(secrets.clone())),
            held: Mutex::new((secrets, std::time::Instant::now())),
            refresh: StdDuration::MAX,
        }
    }

    /// The shared checks ([`notification::check`]) with the secrets held, and once more
    /// with the secrets re-read when no signature matched and the last read is old enough.
    async fn check(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(Notification, Integration), Answer> {
        let mut held = self.held.lock().await;
        let first = notification::check(held.0.as_ref(), header, body, now);
        if !matches!(first, Err(Answer::Unauthorized(Refusal::BadSignature)))
            || held.1.elapsed() < self.refresh
        {
            return first;
        }
        // A rotation may have happened since the last read.
        held.1 = std::time::Instant::now();
        match self.source.load().await {
            Ok(fresh) => held.0 = fresh,
            Err(e) => {
                tracing::error!(code = "webhook_secret_unreadable", message = %e);
                return first;
            }
        }
        notification::check(held.0.as_ref(), header, body, now)
    }
}

/// What the webhook function needs, and nothing more.
pub struct WebhookDeps {
    pub keys: WebhookKeys,
    pub deliveries: Arc<dyn Deliveries>,
    pub queue: Arc<dyn Queue>,
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

/// Why a body is refused before its signature is checked.
enum BodyRefusal {
    TooLarge,
    NotBase64,
}

impl BodyRefusal {
    fn answer(&self) -> LambdaFunctionUrlResponse {
        match self {
            BodyRefusal::TooLarge => answer(&Answer::TooLarge),
            BodyRefusal::NotBase64 => {
                respond(400, json!({"error": "the body is not valid base64"}))
            }
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            BodyRefusal::TooLarge => "too_large",
            BodyRefusal::NotBase64 => "not_base64",
        }
    }
}

/// The raw body, refusing one over the limit before decoding it.
fn body_of(request: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, BodyRefusal> {
    let raw = request.body.as_deref().unwrap_or_default();
    if request.is_base64_encoded {
        // base64 is 4 characters per 3 bytes
        if raw.len() / 4 * 3 > MAX_BODY_BYTES + 3 {
            return Err(BodyRefusal::TooLarge);
        }
        let body = base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .map_err(|_| BodyRefusal::NotBase64)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(BodyRefusal::TooLarge);
        }
        Ok(body)
    } else if raw.len() > MAX_BODY_BYTES {
        Err(BodyRefusal::TooLarge)
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

pub async fn handle(
    deps: &WebhookDeps,
    request: LambdaFunctionUrlRequest,
) -> LambdaFunctionUrlResponse {
    handle_at(deps, request, Utc::now()).await
}

fn answer(a: &Answer) -> LambdaFunctionUrlResponse {
    respond(i64::from(a.status()), a.body())
}

/// [`handle`] with this clock.
pub async fn handle_at(
    deps: &WebhookDeps,
    request: LambdaFunctionUrlRequest,
    now: DateTime<Utc>,
) -> LambdaFunctionUrlResponse {
    let body = match body_of(&request) {
        Ok(b) => b,
        Err(refusal) => {
            tracing::warn!(
                code = "webhook_rejected",
                reason = refusal.reason(),
                message = "the body is over the webhook's 64 KiB limit, or not base64"
            );
            return refusal.answer();
        }
    };
    let header = request
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let (note, integration) = match deps.keys.check(header, &body, now.timestamp()).await {
        Ok(n) => n,
        Err(refused) => {
            tracing::warn!(
                code = "webhook_rejected",
                reason = refused.reason(),
                message = %refused.explained()
            );
            return answer(&refused);
        }
    };
    if let Err(a) = notification::take(deps.deliveries.as_ref(), &note, now).await {
        return answer(&a);
    }
    let chunk = RecordRef::Prm(integration.object(), note.id.clone())
        .chunk(&format!("webhook-{}", note.event_id));
    if let Err(e) = deps.queue.send(std::slice::from_ref(&chunk)).await {
        tracing::error!(code = "webhook_queue_failed", prm_id = note.id.as_str(), message = %e);
        // the PRM's retry must be taken, not dropped as a repeat
        notification::release(deps.deliveries.as_ref(), &note.event_id).await;
        return answer(&Answer::Unavailable(NOT_QUEUED));
    }
    tracing::info!(
        run_id = chunk.run_id.as_str(),
        integration = integration.as_str(),
        prm_id = note.id.as_str(),
        code = "webhook_queued"
    );
    answer(&Answer::Accepted {
        integration,
        id: note.id,
    })
}
