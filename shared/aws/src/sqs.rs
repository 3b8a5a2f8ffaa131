//! The work queue in SQS: chunks as JSON messages, sent ten per `SendMessageBatch`.

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::ports::{FailureClass, PortError, Queue, System};

/// Entries in one `SendMessageBatch` call (the SQS maximum).
const BATCH: usize = 10;
/// Attempts for entries SQS did not accept.
const ATTEMPTS: usize = 3;

/// The SQS queue workers read from.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, message: String) -> PortError {
        PortError {
            system: System::Prm,
            class: FailureClass::Transient,
            message: format!("queue {}: {message}; check PRMSYNC_QUEUE_URL and the function's sqs:SendMessage permission", self.url),
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, chunks: &[Chunk]) -> Result<(), PortError> {
        for part in chunks.chunks(BATCH) {
            let mut pending: Vec<(String, String)> = part
                .iter()
                .enumerate()
                .map(|(i, c)| Ok((i.to_string(), serde_json::to_string(c)?)))
                .collect::<Result<_, serde_json::Error>>()
                .map_err(|e| self.error(format!("encoding a chunk: {e}")))?;
            for _ in 0..ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .map_err(|e| self.error(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        self.error(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                    })?;
                let failed: Vec<String> = out.failed().iter().map(|f| f.id().to_string()).collect();
                pending.retain(|(id, _)| failed.contains(id));
            }
            if !pending.is_empty() {
                return Err(self.error(format!("{} messages were not accepted", pending.len())));
            }
        }
        Ok(())
    }

    async fn send_later(&self, chunk: &Chunk, delay: std::time::Duration) -> Result<(), PortError> {
        let body = serde_json::to_string(chunk)
            .map_err(|e| self.error(format!("encoding a chunk: {e}")))?;
        // SQS delays a message by at most 900 seconds.
        let delay = delay.as_secs().min(900) as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}
