//! The PRM's change notifications received on this machine (`prmsync watch
//! --webhook-listen`): the same answers as the prm-webhook function
//! ([`notification::check`], [`notification::take`]), and each accepted record handed to
//! the watch loop, which syncs it as soon as it is free.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use prmsync_engine::store::Deliveries;
use prmsync_engine::RecordRef;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::notification::{
    self, Answer, WebhookSecrets, MAX_BODY_BYTES, NOT_QUEUED, SIGNATURE_HEADER,
};

/// What the receiver checks with and where accepted records go.
#[derive(Clone)]
pub struct Receiver {
    pub secrets: Option<WebhookSecrets>,
    pub deliveries: Arc<dyn Deliveries>,
    pub records: mpsc::Sender<RecordRef>,
    /// Where a line goes for each notification not taken (refused, repeated, or not
    /// handed on); those taken are logged by the loop that syncs them.
    pub log: Option<Arc<dyn Fn(String) + Send + Sync>>,
}

impl Receiver {
    /// The answer to one request at `now`: checked, taken once, handed on; logged unless
    /// taken.
    pub async fn receive(&self, header: Option<&str>, body: &[u8], now: DateTime<Utc>) -> Answer {
        let answer = self.answer(header, body, now).await;
        if !matches!(answer, Answer::Accepted { .. }) {
            tracing::warn!(code = "webhook_rejected", reason = answer.reason(), message = %answer.explained());
            if let Some(log) = &self.log {
                log(refused_line(&answer));
            }
        }
        answer
    }

    async fn answer(&self, header: Option<&str>, body: &[u8], now: DateTime<Utc>) -> Answer {
        let (note, integration) =
            match notification::check(self.secrets.as_ref(), header, body, now.timestamp()) {
                Ok(n) => n,
                Err(refused) => return refused,
            };
        if let Err(a) = notification::take(self.deliveries.as_ref(), &note, now).await {
            return a;
        }
        let record = RecordRef::Prm(integration.object(), note.id.clone());
        if self.records.try_send(record).is_err() {
            // the loop is stopping or far behind: the PRM's retry must be taken
            notification::release(self.deliveries.as_ref(), &note.event_id).await;
            return Answer::Unavailable(NOT_QUEUED);
        }
        Answer::Accepted {
            integration,
            id: note.id,
        }
    }

    /// The receiver's routes: `POST /` (and any path) takes a notification.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", post(handle))
            .route("/*path", post(handle))
            // the body is read up to the limit by hand, to answer 413 as the function does
            .layer(DefaultBodyLimit::disable())
            .with_state(self)
    }
}

/// The line a notification not taken logs: `notification answered 401 (bad_signature): no
/// v1 signature matches ...`.
pub fn refused_line(answer: &Answer) -> String {
    format!(
        "notification answered {} ({}): {}",
        answer.status(),
        answer.reason(),
        answer.explained()
    )
}

async fn handle(State(receiver): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    let answer = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => Answer::TooLarge,
        Ok(body) => {
            let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
            receiver.receive(header, &body, Utc::now()).await
        }
    };
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(answer.body())).into_response()
}

/// Binds `addr` (port 0 picks one), saying which address could not be taken and why.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for PRM notifications on {addr}: {e}; give another --webhook-listen address"),
        )
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `receiver` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    receiver: Receiver,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, receiver.router())
        .with_graceful_shutdown(shutdown)
        .await
}
