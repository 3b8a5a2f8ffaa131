//! The AWS half of the test kit: fresh DynamoDB tables and SQS queues on moto, the Lambda
//! handlers' dependencies over them, and the queue drained the way Lambda's SQS event
//! source drains it (batches of up to ten, two worker invocations at once, failures made
//! visible again, the full-sync invocations the workers ask for made once it is empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use prmsync_aws::dynamo::DynamoStore;
use prmsync_aws::sqs::SqsQueue;
use prmsync_engine::SyncContext;
use prmsync_lambda::handlers::{full_sync, sync_worker};
use prmsync_lambda::Deps;
use serde_json::{json, Value};

/// The moto endpoint, or None (loudly) when a plain `cargo test` has none; with
/// `PRMSYNC_REQUIRE_AWS` set (the test command) a missing endpoint fails the test.
pub fn endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PRMSYNC_REQUIRE_AWS").is_ok() => {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto")
        }
        _ => {
            eprintln!("WARNING: AWS tests did NOT run: AWS_ENDPOINT_URL is not set (./scripts/test.sh starts moto)");
            None
        }
    }
}

/// Fresh state and log tables, and a work queue with its dead-letter queue.
pub struct Moto {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub store: Arc<DynamoStore>,
    /// The DynamoDB client and the tables' names, to read their items as stored.
    pub dynamo: aws_sdk_dynamodb::Client,
    pub state_table: String,
    pub log_table: String,
}

impl Moto {
    /// Tables and queues of their own; a message goes to the dead-letter queue after
    /// `max_receive` deliveries.
    pub async fn new(max_receive: u32) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let log_table = format!("log-{suffix}");
        let state_table = format!("state-{suffix}");
        let store = DynamoStore::new(dynamo.clone(), state_table.clone(), log_table.clone());
        store.create_tables().await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("dlq-{suffix}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("work-{suffix}"))
            .attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.to_string()})
                    .to_string(),
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Moto {
            sqs,
            queue_url,
            dlq_url,
            store: Arc::new(store),
            dynamo,
            state_table,
            log_table,
        }
    }

    /// The functions' dependencies: `ctx` (its store replaced by these tables) and this
    /// queue; the full-sync invocations the workers ask for are kept in the second value.
    pub fn deps(&self, ctx: SyncContext) -> (Deps, Arc<Invocations>) {
        let invocations = Arc::new(Invocations::default());
        let deps = Deps {
            ctx: SyncContext {
                store: self.store.clone(),
                ..ctx
            },
            queue: Arc::new(SqsQueue::new(self.sqs.clone(), self.queue_url.clone())),
            relaunch: Some(invocations.clone()),
        };
        (deps, invocations)
    }

    /// Works the queue until it is empty, the full-sync invocations the workers asked
    /// for included. With `twice`, every message is delivered a second time (at-least-once
    /// delivery). Returns the bodies delivered.
    pub async fn drain(&self, deps: &Deps, invocations: &Invocations, twice: bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut delivered = Vec::new();
        let mut resent = std::collections::HashSet::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "the queue did not drain within 120 s"
            );
            let (a, b) = tokio::join!(self.worker_batch(deps), self.worker_batch(deps));
            let bodies: Vec<String> = a.into_iter().chain(b).collect();
            if bodies.is_empty() {
                let next = std::mem::take(&mut *invocations.0.lock().unwrap());
                if next.is_empty() {
                    return delivered;
                }
                for payload in next {
                    full_sync::handle(deps, payload).await.unwrap();
                }
                continue;
            }
            if twice {
                for body in bodies.iter().filter(|b| resent.insert((*b).clone())) {
                    self.send(body).await;
                }
            }
            delivered.extend(bodies);
        }
    }

    /// Every item of the log table as stored (a raw Scan, every page).
    pub async fn log_items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.log_table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return items,
            }
        }
    }

    /// The queue worked in the background, as Lambda's event source works it, with the
    /// full-sync invocations the workers ask for, until the [`Workers`] is dropped.
    pub fn workers(self: &Arc<Self>, deps: Arc<Deps>, invocations: Arc<Invocations>) -> Workers {
        let moto = self.clone();
        Workers(tokio::spawn(async move {
            loop {
                let got = moto.worker_batch(&deps).await;
                let next = std::mem::take(&mut *invocations.0.lock().unwrap());
                for payload in next {
                    full_sync::handle(&deps, payload).await.unwrap();
                }
                if got.is_empty() {
                    // an empty receive: poll again shortly, as the event source does
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }))
    }

    /// One sync-worker invocation over a batch of up to ten messages, with their receive
    /// counts: done messages are deleted, reported failures made visible again. Returns
    /// the bodies delivered.
    pub async fn worker_batch(&self, deps: &Deps) -> Vec<String> {
        self.worker_batch_of(deps, 10).await
    }

    /// [`worker_batch`](Self::worker_batch) over at most `max` messages.
    pub async fn worker_batch_of(&self, deps: &Deps, max: i32) -> Vec<String> {
        let messages = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Vec::new();
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": count}})
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({"Records": records})).unwrap();
        let response = sync_worker::handle(deps, event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            let handle = m.receipt_handle().unwrap();
            if failed.contains(&m.message_id().unwrap_or_default()) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
        messages
            .iter()
            .map(|m| m.body().unwrap_or_default().to_string())
            .collect()
    }

    /// Every message waiting in the work queue (received until a receive comes back empty,
    /// so they stay invisible for the rest of the test).
    pub async fn receive_all(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return bodies;
            }
            bodies.extend(got.iter().map(|m| m.body().unwrap_or_default().to_string()));
        }
    }

    /// Sends a message body to the work queue.
    pub async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Messages in the dead-letter queue.
    pub async fn dead_letters(&self) -> Vec<String> {
        self.sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
            .iter()
            .map(|m| m.body().unwrap_or_default().to_string())
            .collect()
    }

    /// SQS's count of the work queue's messages waiting out a delay.
    pub async fn delayed(&self) -> String {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesDelayed]
            .clone()
    }
}

/// Workers started by [`Moto::workers`]; they stop when this is dropped.
pub struct Workers(tokio::task::JoinHandle<()>);

impl Drop for Workers {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Full-sync invocations the workers asked for (a closed run's follow-up integrations),
/// made by [`Moto::drain`] as Lambda would make them.
pub use super::Relaunches as Invocations;
