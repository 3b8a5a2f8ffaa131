//! The AWS deployment seen from the operator's machine, with the operator's own
//! credentials (`prmsync sync --aws`, `prmsync sync-record --aws`, `prmsync console
//! --aws`): its functions invoked to run an integration, and single records put on its
//! work queue for the workers. Nothing here is deployed.

use aws_sdk_lambda::primitives::Blob;
use prmsync_engine::ports::Queue;
use prmsync_engine::{RecordRef, RunMode, RunStatus};
use prmsync_mapping::Integration;
use serde_json::{json, Value};

use crate::sqs::SqsQueue;

/// The full-sync (planner) function's name: stack output `FullSyncFunctionName`.
pub const FULL_SYNC_FUNCTION_ENV: &str = "PRMSYNC_FULL_SYNC_FUNCTION";
/// The deal-import function's name: stack output `DealImportFunctionName`.
pub const DEAL_IMPORT_FUNCTION_ENV: &str = "PRMSYNC_DEAL_IMPORT_FUNCTION";
/// The work queue's URL: stack output `WorkQueueUrl`.
pub const QUEUE_URL_ENV: &str = "PRMSYNC_QUEUE_URL";

/// The function that runs an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Plans organizations and people (their chunks go to the workers).
    FullSync,
    /// Imports deals, in the invocation.
    DealImport,
}

impl Function {
    fn env(self) -> (&'static str, &'static str) {
        match self {
            Function::FullSync => (FULL_SYNC_FUNCTION_ENV, "FullSyncFunctionName"),
            Function::DealImport => (DEAL_IMPORT_FUNCTION_ENV, "DealImportFunctionName"),
        }
    }
}

/// The invocations that run `integration` (None: all of them): full-sync plans
/// organizations and people (`all` plans people after organizations), deal-import runs
/// deals.
pub fn invocations(integration: Option<Integration>) -> Vec<(Function, &'static str)> {
    match integration {
        Some(Integration::Organizations) => vec![(Function::FullSync, "organizations")],
        Some(Integration::People) => vec![(Function::FullSync, "people")],
        Some(Integration::Deals) => vec![(Function::DealImport, "deals")],
        None => vec![(Function::FullSync, "all"), (Function::DealImport, "deals")],
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunAsk {
    pub mode: RunMode,
    pub dry_run: bool,
    pub allow_mass_change: bool,
    /// The run id to use (a caller that follows the run in the store); the function
    /// picks one when None.
    pub run_id: Option<String>,
}

/// The payload a function reads (`prmsync_lambda::payload`).
pub fn payload(integration: &str, ask: &RunAsk) -> Value {
    let mut p = json!({
        "integration": integration,
        "mode": ask.mode.as_str(),
        "dry_run": ask.dry_run,
        "allow_mass_change": ask.allow_mass_change,
    });
    if let Some(id) = &ask.run_id {
        p["run_id"] = json!(id);
    }
    p
}

/// How a run asked of the deployment stands once its function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// The workers sync its chunks: its run record in the state table shows how it goes
    /// and closes when the last chunk is done.
    Queued { run_id: String },
    /// It ended in the invocation (deal-import, a run with nothing to do, a dry run, or one
    /// skipped): its status, counts and message.
    Ended {
        run_id: String,
        status: RunStatus,
        counts: Value,
        message: Option<String>,
    },
}

/// Reads a function's answer for `integration` (pure): the planner's
/// `{"integrations": {name: {"status", "run_id", "message"}}}` or deal-import's
/// `{"run_id", "status", "counts", "message"}`.
pub fn started(integration: Integration, answer: &Value) -> Result<Started, String> {
    let name = integration.as_str();
    let part = answer
        .get("integrations")
        .and_then(|i| i.get(name))
        .unwrap_or(answer);
    let text = |k: &str| part.get(k).and_then(Value::as_str).map(str::to_string);
    let run_id = text("run_id")
        .or_else(|| {
            answer
                .get("run_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let message = text("message");
    let status = text("status").ok_or_else(|| format!("the answer names no status for {name}"))?;
    let ended = |status| Started::Ended {
        run_id: run_id.clone(),
        status,
        counts: part.get("counts").cloned().unwrap_or(Value::Null),
        message: message.clone(),
    };
    Ok(match status.as_str() {
        // the planner: chunks are queued, or the run goes on in another invocation
        "queued" | "continues" | "continues_on_next_run" | "after_organizations" => {
            Started::Queued { run_id }
        }
        "finished" | "planned" => ended(RunStatus::Succeeded),
        // another run of the integration is still being synced
        "waiting" => ended(RunStatus::SkippedLeaseHeld),
        "skipped" => ended(match &message {
            Some(m) if m.contains("paused") => RunStatus::SkippedPaused,
            Some(m) if m.contains("reserve") => RunStatus::Stopped,
            _ => RunStatus::SkippedLeaseHeld,
        }),
        // deal-import reports the run's own status
        other => match RunStatus::parse(other) {
            Some(s) => ended(s),
            None => return Err(format!("unknown status `{other}` for {name}")),
        },
    })
}

/// Why the deployment could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{var} is not set: give the {output} value from the stack outputs")]
    Missing {
        var: &'static str,
        output: &'static str,
    },
    #[error("cannot invoke {function}: {message}; check the name (stack output {output}) and that your AWS credentials may call lambda:InvokeFunction on it")]
    Invoke {
        function: String,
        output: &'static str,
        message: String,
    },
    #[error("{function} failed ({error_type}): {body}")]
    Function {
        function: String,
        error_type: String,
        body: String,
    },
    #[error("the answer of {function} cannot be read: {message}")]
    Answer { function: String, message: String },
    #[error("cannot queue {record}: {message}; check {QUEUE_URL_ENV} (stack output WorkQueueUrl) and that your AWS credentials may call sqs:SendMessage on it")]
    Queue { record: String, message: String },
}

impl DeploymentError {
    /// The failure class: a name or permission to fix, or an outage to wait out.
    pub fn class(&self) -> prmsync_engine::FailureClass {
        use prmsync_engine::FailureClass;
        match self {
            DeploymentError::Missing { .. } | DeploymentError::Answer { .. } => FailureClass::Setup,
            DeploymentError::Function { error_type, .. } if error_type.contains("Setup") => {
                FailureClass::Setup
            }
            _ => FailureClass::Transient,
        }
    }
}

/// The deployment's functions and work queue.
pub struct Deployment {
    lambda: aws_sdk_lambda::Client,
    sqs: aws_sdk_sqs::Client,
    full_sync: Option<String>,
    deal_import: Option<String>,
    queue_url: Option<String>,
}

impl Deployment {
    /// Names from the environment ([`FULL_SYNC_FUNCTION_ENV`], [`DEAL_IMPORT_FUNCTION_ENV`],
    /// [`QUEUE_URL_ENV`]); a missing one is reported when it is needed.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::new(
            aws_sdk_lambda::Client::new(aws),
            aws_sdk_sqs::Client::new(aws),
            var(FULL_SYNC_FUNCTION_ENV),
            var(DEAL_IMPORT_FUNCTION_ENV),
            var(QUEUE_URL_ENV),
        )
    }

    pub fn new(
        lambda: aws_sdk_lambda::Client,
        sqs: aws_sdk_sqs::Client,
        full_sync: Option<String>,
        deal_import: Option<String>,
        queue_url: Option<String>,
    ) -> Self {
        Self {
            lambda,
            sqs,
            full_sync,
            deal_import,
            queue_url,
        }
    }

    fn name(&self, f: Function) -> Result<&str, DeploymentError> {
        let name = match f {
            Function::FullSync => &self.full_sync,
            Function::DealImport => &self.deal_import,
        };
        let (var, output) = f.env();
        name.as_deref()
            .ok_or(DeploymentError::Missing { var, output })
    }

    /// Invokes `function` with `payload` and waits for its answer.
    pub async fn invoke(&self, f: Function, payload: &Value) -> Result<Value, DeploymentError> {
        let function = self.name(f)?.to_string();
        let out = self
            .lambda
            .invoke()
            .function_name(&function)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| DeploymentError::Invoke {
                function: function.clone(),
                output: f.env().1,
                message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
            })?;
        let body = out
            .payload()
            .map(|p| String::from_utf8_lossy(p.as_ref()).to_string())
            .unwrap_or_default();
        if let Some(error_type) = out.function_error() {
            // the function's own error message (its Diagnostic), never a secret
            let body = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| {
                    let t = v.get("errorType").and_then(Value::as_str)?.to_string();
                    let m = v.get("errorMessage").and_then(Value::as_str)?.to_string();
                    Some(format!("{t}: {m}"))
                })
                .unwrap_or(body);
            return Err(DeploymentError::Function {
                function,
                error_type: error_type.to_string(),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| DeploymentError::Answer {
            function,
            message: e.to_string(),
        })
    }

    /// Runs `integration` (None: all) as `ask` says: each function's answer, in order.
    pub async fn run(
        &self,
        integration: Option<Integration>,
        ask: &RunAsk,
    ) -> Result<Vec<(Function, Value)>, DeploymentError> {
        let mut out = Vec::new();
        for (f, name) in invocations(integration) {
            let answer = self.invoke(f, &payload(name, ask)).await?;
            out.push((f, answer));
        }
        Ok(out)
    }

    /// Puts `record` on the work queue: a worker reads it and its partner fresh and syncs
    /// them. Returns the run id the worker logs it under.
    pub async fn queue_record(&self, record: &RecordRef) -> Result<String, DeploymentError> {
        let url = self.queue_url.clone().ok_or(DeploymentError::Missing {
            var: QUEUE_URL_ENV,
            output: "WorkQueueUrl",
        })?;
        let run_id = format!("record-{}", uuid::Uuid::new_v4());
        let queue = SqsQueue::new(self.sqs.clone(), url);
        queue
            .send(&[record.chunk(&run_id)])
            .await
            .map_err(|e| DeploymentError::Queue {
                record: record.text(),
                message: e.message,
            })?;
        Ok(run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_integration_goes_to_the_function_that_owns_it() {
        assert_eq!(
            invocations(Some(Integration::People)),
            vec![(Function::FullSync, "people")]
        );
        assert_eq!(
            invocations(Some(Integration::Deals)),
            vec![(Function::DealImport, "deals")]
        );
        assert_eq!(
            invocations(None),
            vec![(Function::FullSync, "all"), (Function::DealImport, "deals")]
        );
    }

    #[test]
    fn the_payload_carries_the_run_id_only_when_chosen() {
        let mut ask = RunAsk {
            mode: RunMode::Full,
            dry_run: false,
            allow_mass_change: false,
            run_id: None,
        };
        let p = payload("deals", &ask);
        assert_eq!(p["mode"], "full");
        assert!(p.get("run_id").is_none());
        ask.run_id = Some("console-1".into());
        assert_eq!(payload("deals", &ask)["run_id"], "console-1");
    }

    #[test]
    fn answers_say_whether_the_workers_carry_the_run_on() {
        let planner = json!({"run_id": "r1", "integrations": {"organizations": {"status": "queued", "run_id": "r1"}}});
        assert_eq!(
            started(Integration::Organizations, &planner),
            Ok(Started::Queued {
                run_id: "r1".into()
            })
        );
        let paused = json!({"run_id": "r2", "integrations": {"people": {"status": "skipped", "run_id": "r2", "message": "people is paused"}}});
        assert!(matches!(
            started(Integration::People, &paused),
            Ok(Started::Ended {
                status: RunStatus::SkippedPaused,
                ..
            })
        ));
        let deals = json!({"run_id": "r3", "status": "succeeded", "counts": {"errors": 2}, "message": null});
        let Ok(Started::Ended { status, counts, .. }) = started(Integration::Deals, &deals) else {
            panic!("deal-import ends in its invocation");
        };
        assert_eq!(
            (status, counts["errors"].as_u64()),
            (RunStatus::Succeeded, Some(2))
        );
        assert!(started(Integration::Deals, &json!({"run_id": "x"})).is_err());
        assert!(started(Integration::Deals, &json!({"status": "exploded"})).is_err());
    }
}
