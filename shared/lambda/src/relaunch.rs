//! Continuation: a planner that runs out of time invokes its own function again, without
//! waiting, to carry the run on from its checkpoint.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use prmsync_engine::planner::InvocationLimit;
use serde_json::Value;

/// Starts another invocation of the running function with `payload`.
#[async_trait]
pub trait Relaunch: Send + Sync {
    async fn relaunch(&self, payload: &Value) -> Result<(), String>;
}

/// [`Relaunch`] through the Lambda API: an asynchronous (`Event`) invocation of the
/// function named by `AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets.
pub struct LambdaRelaunch {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaRelaunch {
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

#[async_trait]
impl Relaunch for LambdaRelaunch {
    async fn relaunch(&self, payload: &Value) -> Result<(), String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot invoke {} to continue the run ({}); the next scheduled run carries it on \
                     from its checkpoint. Check that the function's role may call lambda:InvokeFunction on itself",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })
    }
}

/// The running function's own [`LambdaRelaunch`], when it runs in Lambda (which sets
/// `AWS_LAMBDA_FUNCTION_NAME`).
pub fn self_relaunch(aws: &aws_config::SdkConfig) -> Option<std::sync::Arc<dyn Relaunch>> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|f| !f.is_empty())?;
    Some(std::sync::Arc::new(LambdaRelaunch::new(
        aws_sdk_lambda::Client::new(aws),
        function,
    )))
}

/// The planner function named by `PRMSYNC_FULL_SYNC_FUNCTION`, for a worker that closes
/// a run and starts the integrations planned after it (an `all` run's people).
pub fn planner_relaunch(aws: &aws_config::SdkConfig) -> Option<std::sync::Arc<dyn Relaunch>> {
    let function = std::env::var("PRMSYNC_FULL_SYNC_FUNCTION")
        .ok()
        .filter(|f| !f.trim().is_empty())?;
    Some(std::sync::Arc::new(LambdaRelaunch::new(
        aws_sdk_lambda::Client::new(aws),
        function,
    )))
}

/// Time kept in hand when a planner stops reading: enough to queue the last page, store
/// the checkpoint and invoke the continuation. `PRMSYNC_PLAN_MARGIN_SECONDS` overrides it.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);

/// The margin from `PRMSYNC_PLAN_MARGIN_SECONDS`, or [`DEFAULT_MARGIN`] when it is unset.
pub fn margin_from_env() -> Result<Duration, String> {
    match std::env::var("PRMSYNC_PLAN_MARGIN_SECONDS") {
        Err(_) => Ok(DEFAULT_MARGIN),
        Ok(s) if s.trim().is_empty() => Ok(DEFAULT_MARGIN),
        Ok(s) => s.trim().parse().map(Duration::from_secs).map_err(|_| {
            format!("PRMSYNC_PLAN_MARGIN_SECONDS={s:?} is not a whole number of seconds; set it to e.g. 60, or remove it")
        }),
    }
}

/// A planner's limit for an invocation with this deadline (ms since the Unix epoch).
pub fn invocation_limit(deadline_ms: u64, margin: Duration) -> InvocationLimit {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    InvocationLimit {
        deadline: Some(plan_deadline(deadline_ms, now_ms, margin)),
        max_pages: None,
    }
}

/// The instant a planner stops reading new pages, from the invocation's deadline
/// (milliseconds since the Unix epoch, as the Lambda context gives it): the deadline less
/// the margin, or less a fifth of the time left when that is shorter.
pub fn plan_deadline(deadline_ms: u64, now_ms: u64, margin: Duration) -> Instant {
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    let margin = margin.min(left / 5);
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planner_stops_a_margin_before_the_deadline() {
        let now = 1_000_000;
        // 15 minutes left: stop 60 s before the end.
        let d = plan_deadline(now + 900_000, now, DEFAULT_MARGIN);
        let left = d.duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(840) && left > Duration::from_secs(835),
            "{left:?}"
        );
        // 100 s left: a fifth is kept (20 s), not 60.
        let d = plan_deadline(now + 100_000, now, DEFAULT_MARGIN);
        let left = d.duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(80) && left > Duration::from_secs(75),
            "{left:?}"
        );
        // Past the deadline: stop at once.
        assert!(plan_deadline(now - 5, now, DEFAULT_MARGIN) <= Instant::now());
    }
}
