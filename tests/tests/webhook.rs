//! The PRM webhook (the prm-webhook function's handler) against the PRM simulator's own
//! signed notifications: a signed notification is queued once, a replay or a retry of it
//! is answered 200 and dropped, and stale, future, unsigned, wrong-secret, malformed and
//! oversized requests are refused with answers that reveal nothing, queueing nothing. A
//! rotated secret is still accepted. The deliveries are kept in SQLite here and in
//! DynamoDB with the queue on SQS (moto) in the last test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use common::ListQueue;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::ports::{PortError, Queue, System};
use prmsync_engine::FailureClass;
use prmsync_lambda::handlers::prm_webhook::{self, SecretsSource, WebhookDeps, WebhookKeys};
use prmsync_mapping::Integration;
use prmsync_prm::notification::WebhookSecrets;
use prmsync_simulators::prm::notify::SignedNotification;
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_state_sqlite::SqliteStore;
use serde_json::{json, Value};

const SECRET: &str = "whsec-current";
const OLD_SECRET: &str = "whsec-previous";

/// A Function URL request as Lambda delivers it, with `body` and the signature header.
fn request(body: &str, signature: Option<&str>) -> LambdaFunctionUrlRequest {
    let mut raw: Value = serde_json::from_str(include_str!(
        "../../shared/lambda/tests/fixtures/webhook.json"
    ))
    .unwrap();
    raw["body"] = json!(body);
    match signature {
        Some(s) => raw["headers"]["x-prm-signature"] = json!(s),
        None => {
            raw["headers"]
                .as_object_mut()
                .unwrap()
                .remove("x-prm-signature");
        }
    }
    serde_json::from_value(raw).unwrap()
}

fn delivered(n: &SignedNotification) -> LambdaFunctionUrlRequest {
    request(&n.body, Some(&n.signature))
}

fn receiver(queue: Arc<dyn Queue>, secrets: Option<WebhookSecrets>) -> WebhookDeps {
    WebhookDeps {
        keys: WebhookKeys::fixed(secrets),
        deliveries: Arc::new(SqliteStore::in_memory()),
        queue,
    }
}

fn current() -> Option<WebhookSecrets> {
    WebhookSecrets::new(SECRET, None)
}

/// A PRM with notifications on, signed with `secrets`, and one changed person.
fn prm_with_a_change(secrets: &[&str]) -> (PrmSim, SignedNotification) {
    let prm = PrmSim::new("t");
    let org = prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Hooked"}),
    );
    let person = prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "contact", "first_name": "Hal", "last_name": "Hook", "email": "hal@hooked.example"}),
    );
    prm.enable_notifications(secrets);
    prm.update(Collection::People, &person, json!({"phone": "+1 555 0100"}));
    let mut sent = prm.take_notifications();
    assert_eq!(sent.len(), 1);
    (prm, sent.remove(0))
}

fn status_and_body(r: &LambdaFunctionUrlResponse) -> (i64, Value) {
    (
        r.status_code,
        serde_json::from_str(r.body.as_deref().unwrap_or("null")).unwrap(),
    )
}

#[tokio::test]
async fn a_signed_notification_is_queued_once_and_its_replay_is_answered_200_and_dropped() {
    let (_prm, note) = prm_with_a_change(&[SECRET]);
    let queue = Arc::new(ListQueue::default());
    let deps = receiver(queue.clone(), current());

    let first = prm_webhook::handle(&deps, delivered(&note)).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let queued = queue.take();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].integration, Integration::People);
    assert_eq!(queued[0].prm_ids, vec![note.event.id.clone()]);

    // the same request again (a replay within the five minutes, or the PRM's retry)
    for _ in 0..3 {
        let again = prm_webhook::handle(&deps, delivered(&note)).await;
        assert_eq!(
            status_and_body(&again),
            (200, json!({"queued": false, "repeat": true}))
        );
    }
    // a fresh signature over the same event is still the same event
    let (prm2, _) = prm_with_a_change(&[SECRET]);
    let resigned = prm2.sign(note.event.clone(), chrono::Utc::now().timestamp());
    assert_eq!(
        prm_webhook::handle(&deps, delivered(&resigned))
            .await
            .status_code,
        200
    );
    assert!(queue.take().is_empty(), "a repeat queues nothing");
}

#[tokio::test]
async fn stale_future_unsigned_wrong_secret_malformed_and_oversized_requests_are_refused() {
    let (prm, note) = prm_with_a_change(&[SECRET]);
    let queue = Arc::new(ListQueue::default());
    let deps = receiver(queue.clone(), current());
    let now = chrono::Utc::now().timestamp();
    let unauthorized = (401, json!({"error": "unauthorized"}));

    let stale = prm.sign(note.event.clone(), now - 6 * 60);
    let future = prm.sign(note.event.clone(), now + 6 * 60);
    let wrong = PrmSim::new("t");
    wrong.enable_notifications(&["not-the-secret"]);
    let wrong_secret = wrong.sign(note.event.clone(), now);
    let v1 = note.signature.split_once(",v1=").unwrap().1;
    for (what, req) in [
        ("stale", delivered(&stale)),
        ("future", delivered(&future)),
        ("unsigned", request(&note.body, None)),
        ("wrong secret", delivered(&wrong_secret)),
        (
            "old scheme",
            request(&note.body, Some(&format!("sha256={v1}"))),
        ),
        ("garbled header", request(&note.body, Some("t=now,v1=zz"))),
        (
            "another body",
            request(
                &note.body.replace(&note.event.id, "per_other"),
                Some(&note.signature),
            ),
        ),
    ] {
        let r = prm_webhook::handle(&deps, req).await;
        assert_eq!(status_and_body(&r), unauthorized, "{what}");
    }

    // over 64 KiB: 413 before anything is checked, plain or base64
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(70 * 1024));
    let r = prm_webhook::handle(&deps, request(&big, Some(&note.signature))).await;
    assert_eq!(
        status_and_body(&r),
        (413, json!({"error": "payload too large"}))
    );
    use base64::Engine;
    let mut b64 = request(
        &base64::engine::general_purpose::STANDARD.encode(big.as_bytes()),
        Some(&note.signature),
    );
    b64.is_base64_encoded = true;
    assert_eq!(prm_webhook::handle(&deps, b64).await.status_code, 413);

    // signed but not a notification: 400, naming what is wrong
    let odd = PrmSim::new("t");
    odd.enable_notifications(&[SECRET]);
    for body in [
        r#"{"event_id": "e-1", "type": "widget.updated", "id": "x"}"#,
        r#"{"event_id": "", "type": "person.updated", "id": "x"}"#,
        "not json",
    ] {
        let sig = prmsync_simulators::prm::notify::signature(&[SECRET.into()], now, body);
        let r = prm_webhook::handle(&deps, request(body, Some(&sig))).await;
        assert_eq!(r.status_code, 400, "{body}");
    }
    // no secret configured: everything is refused
    let none = receiver(queue.clone(), None);
    assert_eq!(
        status_and_body(&prm_webhook::handle(&none, delivered(&note)).await),
        unauthorized
    );

    assert!(queue.take().is_empty(), "nothing refused was queued");
    // and the good request still goes through after all that
    assert_eq!(
        prm_webhook::handle(&deps, delivered(&note))
            .await
            .status_code,
        202
    );
    assert_eq!(queue.take().len(), 1);
}

/// A secret in a store that an operator rotates.
struct Rotating(Mutex<(String, Option<String>)>);

#[async_trait]
impl SecretsSource for Rotating {
    async fn load(&self) -> Result<Option<WebhookSecrets>, String> {
        let s = self.0.lock().unwrap().clone();
        Ok(WebhookSecrets::new(&s.0, s.1.as_deref()))
    }
}

#[tokio::test]
async fn a_rotated_secret_is_accepted_during_and_after_the_rotation() {
    let queue = Arc::new(ListQueue::default());
    // the function holds the new secret as current and the old one as previous
    let deps = receiver(queue.clone(), WebhookSecrets::new(SECRET, Some(OLD_SECRET)));
    for signing in [&[OLD_SECRET][..], &[SECRET, OLD_SECRET], &[SECRET]] {
        let (_prm, note) = prm_with_a_change(signing);
        let r = prm_webhook::handle(&deps, delivered(&note)).await;
        assert_eq!(r.status_code, 202, "signed with {signing:?}");
    }
    assert_eq!(queue.take().len(), 3);

    // a warm function whose secret is rotated under it reads the secret again when a
    // signature matches none of the ones it holds
    let source = Arc::new(Rotating(Mutex::new((OLD_SECRET.into(), None))));
    let warm = WebhookDeps {
        keys: WebhookKeys::load_with(source.clone(), Duration::ZERO)
            .await
            .unwrap(),
        deliveries: Arc::new(SqliteStore::in_memory()),
        queue: queue.clone(),
    };
    *source.0.lock().unwrap() = (SECRET.into(), Some(OLD_SECRET.into()));
    let (_prm, note) = prm_with_a_change(&[SECRET]);
    assert_eq!(
        prm_webhook::handle(&warm, delivered(&note))
            .await
            .status_code,
        202
    );
    assert_eq!(queue.take().len(), 1);
}

/// A queue that refuses the first `n` sends.
struct Flaky {
    refuse: Mutex<u32>,
    inner: Arc<ListQueue>,
}

#[async_trait]
impl Queue for Flaky {
    async fn send(&self, chunks: &[Chunk]) -> Result<(), PortError> {
        {
            let mut left = self.refuse.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(PortError {
                    system: System::Prm,
                    class: FailureClass::Transient,
                    message: "the queue is unavailable".into(),
                });
            }
        }
        self.inner.send(chunks).await
    }

    async fn send_later(&self, chunk: &Chunk, delay: Duration) -> Result<(), PortError> {
        self.inner.send_later(chunk, delay).await
    }
}

#[tokio::test]
async fn a_notification_that_could_not_be_queued_is_taken_when_the_prm_retries() {
    let (_prm, note) = prm_with_a_change(&[SECRET]);
    let list = Arc::new(ListQueue::default());
    let deps = receiver(
        Arc::new(Flaky {
            refuse: Mutex::new(1),
            inner: list.clone(),
        }),
        current(),
    );
    let r = prm_webhook::handle(&deps, delivered(&note)).await;
    assert_eq!(r.status_code, 503, "the PRM is told to retry");
    let retry = prm_webhook::handle(&deps, delivered(&note)).await;
    assert_eq!(retry.status_code, 202, "the retry is not taken as a repeat");
    assert_eq!(list.take().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_aws_a_replay_is_dropped_by_the_deliveries_table_and_nothing_more_reaches_sqs() {
    if common::aws::endpoint().is_none() {
        return;
    }
    let aws = common::aws::Moto::new(2).await;
    let deps = WebhookDeps {
        keys: WebhookKeys::fixed(current()),
        deliveries: aws.store.clone(),
        queue: Arc::new(prmsync_aws::sqs::SqsQueue::new(
            aws.sqs.clone(),
            aws.queue_url.clone(),
        )),
    };
    let (prm, note) = prm_with_a_change(&[SECRET]);
    assert_eq!(
        prm_webhook::handle(&deps, delivered(&note))
            .await
            .status_code,
        202
    );
    let stale = prm.sign(note.event.clone(), chrono::Utc::now().timestamp() - 600);
    assert_eq!(
        prm_webhook::handle(&deps, delivered(&stale))
            .await
            .status_code,
        401
    );
    // two replays at once: the conditional put takes the event once
    let (a, b) = tokio::join!(
        prm_webhook::handle(&deps, delivered(&note)),
        prm_webhook::handle(&deps, delivered(&note))
    );
    assert_eq!((a.status_code, b.status_code), (200, 200));
    let messages = aws.receive_all().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let chunk: Chunk = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(chunk.prm_ids, vec![note.event.id.clone()]);
}
