//! What a scheduled or manual invocation asks for.

use prmsync_engine::RunMode;
use prmsync_mapping::Integration;
use serde::Deserialize;
use serde_json::Value;

/// A run request: which integrations, which mode, dry run or not.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub integrations: Vec<Integration>,
    pub mode: RunMode,
    pub dry_run: bool,
    /// Set on a continuation: the run it carries on (from that run's checkpoint).
    pub continue_run: Option<String>,
    /// The operator lets a mass change through the breaker.
    pub allow_mass_change: bool,
    /// The run id to use, from a caller that follows the run in the store (the console's
    /// Run Now); a new one when absent.
    pub run_id: Option<String>,
}

/// A payload that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid payload: {0}; send {{\"integration\": \"organizations|people|deals|all\", \"mode\": \"incremental|full|reconcile\", \"dry_run\": false, \"allow_mass_change\": false, \"run_id\": optional}} (or nothing for all, incremental)")]
pub struct PayloadError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    integration: Option<String>,
    mode: Option<String>,
    dry_run: Option<bool>,
    continue_run: Option<String>,
    allow_mass_change: Option<bool>,
    run_id: Option<String>,
}

/// Reads a payload: empty, an EventBridge scheduled event (all, incremental), or a manual
/// `{"integration", "mode", "dry_run"}`. `all` means every integration `allowed` lists.
pub fn parse(payload: &Value, allowed: &[Integration]) -> Result<RunRequest, PayloadError> {
    let all = RunRequest {
        integrations: allowed.to_vec(),
        mode: RunMode::Incremental,
        dry_run: false,
        continue_run: None,
        allow_mass_change: false,
        run_id: None,
    };
    match payload {
        Value::Null => return Ok(all),
        Value::Object(m) if m.is_empty() => return Ok(all),
        Value::Object(m) if m.get("source").and_then(Value::as_str) == Some("aws.events") => {
            return Ok(all)
        }
        Value::Object(_) => {}
        other => return Err(PayloadError(format!("expected a JSON object, got {other}"))),
    }
    let manual: Manual =
        serde_json::from_value(payload.clone()).map_err(|e| PayloadError(e.to_string()))?;
    let integrations = match manual.integration.as_deref() {
        None | Some("all") => allowed.to_vec(),
        Some(name) => match Integration::parse(name) {
            Some(i) if allowed.contains(&i) => vec![i],
            _ => {
                return Err(PayloadError(format!(
                    "unknown integration `{name}` (this function runs {})",
                    allowed
                        .iter()
                        .map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        },
    };
    let mode = match manual.mode.as_deref() {
        None | Some("incremental") => RunMode::Incremental,
        Some("full") => RunMode::Full,
        Some("reconcile") => RunMode::Reconcile,
        Some(other) => return Err(PayloadError(format!("unknown mode `{other}`"))),
    };
    Ok(RunRequest {
        integrations,
        mode,
        dry_run: manual.dry_run.unwrap_or(false),
        continue_run: manual.continue_run.filter(|r| !r.is_empty()),
        allow_mass_change: manual.allow_mass_change.unwrap_or(false),
        run_id: match manual.run_id {
            Some(id) if !is_run_id(&id) => {
                return Err(PayloadError(format!(
                    "`run_id` must be 1 to 64 letters, digits, `-` or `_` (got {} characters)",
                    id.chars().count()
                )))
            }
            id => id,
        },
    })
}

/// A run id a caller may choose: it becomes part of store keys and log entries.
fn is_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[Integration] = &[
        Integration::Organizations,
        Integration::People,
        Integration::Deals,
    ];

    #[test]
    fn scheduled_empty_and_manual_payloads() {
        let scheduled: Value =
            serde_json::from_str(include_str!("../tests/fixtures/scheduled-event.json")).unwrap();
        assert_eq!(parse(&scheduled, ALL).unwrap().integrations.len(), 3);
        assert_eq!(parse(&json!({}), ALL).unwrap().mode, RunMode::Incremental);
        let r = parse(
            &json!({"integration": "people", "mode": "full", "dry_run": true}),
            ALL,
        )
        .unwrap();
        assert_eq!(
            (r.integrations, r.mode, r.dry_run),
            (vec![Integration::People], RunMode::Full, true)
        );
    }

    #[test]
    fn the_daily_reconcile_payload_asks_for_a_reconcile_of_all() {
        let r = parse(&json!({"integration": "all", "mode": "reconcile"}), ALL).unwrap();
        assert_eq!(
            (r.integrations.len(), r.mode, r.dry_run),
            (3, RunMode::Reconcile, false)
        );
        let e = parse(&json!({"mode": "sometimes"}), ALL)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reconcile"), "{e}");
    }

    #[test]
    fn bad_payloads_say_what_to_send() {
        let e = parse(&json!({"integration": "widgets"}), ALL)
            .unwrap_err()
            .to_string();
        assert!(e.contains("widgets") && e.contains("\"mode\""), "{e}");
        assert!(parse(&json!({"mode": "sometimes"}), ALL).is_err());
        assert!(parse(&json!({"integraton": "people"}), ALL)
            .unwrap_err()
            .to_string()
            .contains("integraton"));
        assert!(parse(&json!([1]), ALL).is_err());
        assert!(parse(&json!({"integration": "people"}), &[Integration::Deals]).is_err());
    }

    #[test]
    fn a_caller_may_name_the_run_it_follows() {
        let r = parse(
            &json!({"integration": "deals", "run_id": "console-1a2b"}),
            ALL,
        )
        .unwrap();
        assert_eq!(r.run_id.as_deref(), Some("console-1a2b"));
        assert_eq!(parse(&json!({}), ALL).unwrap().run_id, None);
        for bad in ["", "a b", "RUN#1", &"x".repeat(65)] {
            let e = parse(&json!({"run_id": bad}), ALL).unwrap_err().to_string();
            assert!(e.contains("run_id"), "{bad:?}: {e}");
        }
    }
}
