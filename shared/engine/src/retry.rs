//! The retry set (sync rule 10 in `docs/sync-rules.md`), one rule for both deployments: a
//! record whose write failed for a passing reason is kept in the store with its attempts
//! and the time it is due again. A worker also hands it out again on its own after that
//! delay; a one-machine run's next run picks it up. After `[sync] retry_attempts` it is
//! parked: tried again only when it changes, on a full run, or on demand (`prmsync
//! sync-record`). Whatever the cursors say, later runs read the due records of the retry
//! set.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use prmsync_mapping::{Integration, LogCode, ObjectKind};
use serde_json::json;

use crate::chunk::Chunk;
use crate::context::{entry, SyncContext};
use crate::ports::Queue;
use crate::store::{LogFilter, RetryEntry, StoreError};

/// A record whose write failed for a passing reason (a lock, an outage, a call that
/// failed after the client's own retries).
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRecord {
    pub crm_id: Option<String>,
    pub prm_id: Option<String>,
    /// What failed, in plain words (no record values).
    pub message: String,
}

/// The records a pass could not write because of the setup, with the first refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupFailure {
    /// The Salesforce object (or PRM collection) written.
    pub object: String,
    /// The refusal: error code, message and fields, as the system gave them.
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// Every record held back, in the retry set's terms.
    pub records: Vec<FailedRecord>,
}

impl SetupFailure {
    /// What happened and what to do, in plain words, naming the object and fields but
    /// no record value.
    pub fn summary(&self) -> String {
        let object = &self.object;
        let fields = if self.fields.is_empty() {
            String::new()
        } else {
            format!(" field {}", self.fields.join(", "))
        };
        let fix = if self.code == "INVALID_FIELD_FOR_INSERT_UPDATE"
            || self.code.starts_with("INSUFFICIENT_ACCESS")
        {
            format!(
                "give the integration user's profile or permission set Edit access to{fields} on {object} \
                 (Setup > Object Manager > {object} > Fields & Relationships > the field > Set Field-Level Security), \
                 or make the field one-way to the PRM in the mapping"
            )
        } else {
            format!(
                "create{fields} on {object} in Salesforce (or restore it from Deleted Fields), or correct \
                 its API name in the mapping, and check that the integration user can edit it"
            )
        };
        format!(
            "Salesforce refused to write{fields} on {object} for {n} record(s) ({code}: {message}). \
             The sync of this object stopped; no record was rejected. Fix: {fix}. The records wait \
             in the retry set and the next run syncs them, no full run needed.",
            n = self.records.len(),
            code = self.code,
            message = self.message,
        )
    }
}

/// SQS delays a message by at most 15 minutes.
pub const MAX_DELAY_SECONDS: i64 = 900;

/// The delay before attempt `attempts + 1`: `first`, doubling, at most 15 minutes.
pub fn backoff(first: u32, attempts: u32) -> Duration {
    let secs = i64::from(first).saturating_mul(1i64 << attempts.saturating_sub(1).min(16));
    Duration::seconds(secs.min(MAX_DELAY_SECONDS))
}

/// Attempts before a record (or a chunk) that fails for a passing reason is parked
/// (`[sync] retry_attempts`).
pub fn max_attempts(ctx: &SyncContext) -> u32 {
    ctx.mapping.sync.retry_attempts.max(1)
}

/// The delay before attempt `attempts + 1` (`[sync] retry_delay_seconds`, doubling).
pub fn delay(ctx: &SyncContext, attempts: u32) -> Duration {
    backoff(ctx.mapping.sync.retry_delay_seconds, attempts)
}

pub async fn send_later(
    queue: &dyn Queue,
    chunk: &Chunk,
    delay: Duration,
) -> Result<(), StoreError> {
    let delay = delay.num_seconds().clamp(0, MAX_DELAY_SECONDS) as u64;
    queue
        .send_later(chunk, std::time::Duration::from_secs(delay))
        .await
        .map_err(|e| StoreError::Backend(format!("could not hand the chunk out again: {e}")))
}

/// The retry set's key of a failed record: the PRM id when it has one (a linked pair, or
/// a PRM record to create), else the Salesforce Id.
fn retry_key(f: &FailedRecord) -> Option<(&'static str, &str)> {
    f.prm_id
        .as_deref()
        .map(|p| ("prm", p))
        .or_else(|| f.crm_id.as_deref().map(|c| ("crm", c)))
}

/// What [`hold_failed`] did.
#[derive(Debug, Default)]
pub struct Held {
    /// Every id of the failed records (both sides).
    pub ids: HashSet<String>,
    /// Records handed out again (or due again), and records parked.
    pub retried: u64,
    pub parked: u64,
}

/// Keeps records that failed for a passing reason in the retry set, with their
/// `record_retried` or `record_parked` entries; with a queue, each record not parked is
/// handed out again on its own after its delay.
pub async fn hold_failed(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    run_id: &str,
    integration: Integration,
    failed: &[FailedRecord],
) -> Result<Held, StoreError> {
    let object = integration.object();
    let mut held = Held::default();
    if failed.is_empty() {
        return Ok(held);
    }
    let ids = &mut held.ids;
    let now = Utc::now();
    let mut entries = Vec::new();
    let mut log_entries = Vec::new();
    for f in failed {
        let Some((side, id)) = retry_key(f) else {
            continue;
        };
        if !ids.insert(id.to_string()) {
            continue;
        }
        ids.extend(f.crm_id.iter().chain(&f.prm_id).cloned());
        let before = ctx
            .store
            .retry_entries(object, side, &[id.to_string()])
            .await?
            .into_iter()
            .next();
        let attempts = before.map_or(0, |e| e.attempts) + 1;
        let max = max_attempts(ctx);
        let parked = attempts >= max;
        let delay = delay(ctx, attempts);
        entries.push(RetryEntry {
            object,
            side: side.into(),
            id: id.to_string(),
            attempts,
            next_at: now + delay,
            parked,
            error: f.message.clone(),
            updated_at: now,
        });
        let mut e = entry(
            run_id,
            integration,
            if parked {
                LogCode::RecordParked
            } else {
                LogCode::RecordRetried
            },
            if parked {
                format!(
                    "{object} {id} failed {attempts} times for a passing reason (last: {}); it is parked until it changes or is synced by hand",
                    f.message
                )
            } else if queue.is_some() {
                format!(
                    "{object} {id} failed for a passing reason ({}); attempt {} of {max} follows on its own in {} s",
                    f.message,
                    attempts + 1,
                    delay.num_seconds()
                )
            } else {
                format!(
                    "{object} {id} failed for a passing reason ({}); the next run tries it again (attempt {} of {max})",
                    f.message,
                    attempts + 1
                )
            },
            json!({"attempts": attempts}),
        );
        e.object = Some(object);
        e.crm_id = f.crm_id.clone();
        e.prm_id = f.prm_id.clone();
        e.link = f
            .crm_id
            .as_deref()
            .and_then(|c| ctx.crm.record_url(object.crm_object(), c));
        log_entries.push(e);
        if parked {
            held.parked += 1;
            continue;
        }
        held.retried += 1;
        if let Some(queue) = queue {
            let mut again = Chunk::refs(
                run_id,
                integration,
                f.crm_id.iter().cloned().collect(),
                f.prm_id.iter().cloned().collect(),
            );
            again.attempt = attempts;
            again.retrying = vec![id.to_string()];
            send_later(queue, &again, delay).await?;
        }
    }
    ctx.store.hold_retries(&entries).await?;
    crate::store::record_log(ctx.store.as_ref(), &log_entries).await?;
    Ok(held)
}

/// What a pass's failures leave in the retry set, in one place for every caller: the
/// records that failed for a passing reason ([`hold_failed`]), those the setup refused
/// ([`hold_setup_failed`]), and the entries of `retrying` that synced, cleared.
#[allow(clippy::too_many_arguments)]
pub async fn keep_failed(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    run_id: &str,
    integration: Integration,
    failed: &[FailedRecord],
    setup: Option<&SetupFailure>,
    retrying: &[String],
) -> Result<Held, StoreError> {
    let mut held = hold_failed(ctx, queue, run_id, integration, failed).await?;
    if let Some(setup) = setup {
        held.ids
            .extend(hold_setup_failed(ctx, run_id, integration, setup).await?);
    }
    clear_synced(ctx, integration.object(), retrying, &held.ids).await?;
    Ok(held)
}

/// Clears the retry-set entries of these ids (either side) that did not fail again.
pub async fn clear_synced(
    ctx: &SyncContext,
    object: ObjectKind,
    retrying: &[String],
    failed: &HashSet<String>,
) -> Result<(), StoreError> {
    let synced: Vec<String> = retrying
        .iter()
        .filter(|i| !failed.contains(*i))
        .cloned()
        .collect();
    if synced.is_empty() {
        return Ok(());
    }
    // An id is a Salesforce Id or a PRM id; clearing both sides is cheaper than asking.
    ctx.store.clear_retries(object, "crm", &synced).await?;
    ctx.store.clear_retries(object, "prm", &synced).await
}

/// Records a pass could not write because of the setup ([`SetupFailure`]): kept in the
/// retry set, due at once and never parked (the next run after the fix syncs them, with
/// no full run), with one `crm_setup_error` entry per run however many passes or workers
/// met the refusal. Returns their ids (both sides), which the retry set keeps.
pub async fn hold_setup_failed(
    ctx: &SyncContext,
    run_id: &str,
    integration: Integration,
    setup: &SetupFailure,
) -> Result<HashSet<String>, StoreError> {
    let object = integration.object();
    let now = Utc::now();
    let mut ids = HashSet::new();
    let mut entries = Vec::new();
    for f in &setup.records {
        let Some((side, id)) = retry_key(f) else {
            continue;
        };
        ids.extend(f.crm_id.iter().chain(&f.prm_id).cloned());
        entries.push(RetryEntry {
            object,
            side: side.into(),
            id: id.to_string(),
            attempts: 0,
            next_at: now,
            parked: false,
            error: f.message.clone(),
            updated_at: now,
        });
    }
    ctx.store.hold_retries(&entries).await?;
    let logged = ctx
        .store
        .entries(&LogFilter {
            integration: Some(integration),
            code: Some(LogCode::CrmSetupError),
            run_id: Some(run_id.to_string()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    if logged.is_empty() {
        let mut e = entry(
            run_id,
            integration,
            LogCode::CrmSetupError,
            setup.summary(),
            json!({"errorCode": setup.code, "message": setup.message, "fields": setup.fields}),
        );
        e.object = Some(object);
        crate::store::record_log(ctx.store.as_ref(), &[e]).await?;
    }
    Ok(ids)
}

/// A chunk that failed every attempt (or that its run stopped waiting for): its records go
/// to the retry set, due now (the next run picks them up), so the run can close without
/// losing them.
pub async fn hold_chunk(ctx: &SyncContext, chunk: &Chunk, why: &str) -> Result<(), StoreError> {
    let object = chunk.integration.object();
    let now = Utc::now();
    let entries: Vec<RetryEntry> = chunk
        .crm_ids
        .iter()
        .map(|i| ("crm", i))
        .chain(chunk.prm_ids.iter().map(|i| ("prm", i)))
        .map(|(side, id)| RetryEntry {
            object,
            side: side.into(),
            id: id.clone(),
            attempts: max_attempts(ctx),
            next_at: now,
            parked: false,
            error: why.to_string(),
            updated_at: now,
        })
        .collect();
    ctx.store.hold_retries(&entries).await?;
    let e = entry(
        &chunk.run_id,
        chunk.integration,
        LogCode::ChunkRetried,
        format!(
            "a chunk of {} records failed {} times ({why}); its records are kept in the retry set and the next run syncs them",
            chunk.len(),
            max_attempts(ctx)
        ),
        json!({"chunk": chunk.number, "attempt": chunk.attempt}),
    );
    crate::store::record_log(ctx.store.as_ref(), &[e]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_queue_limit() {
        let secs: Vec<i64> = (1..=7).map(|a| backoff(30, a).num_seconds()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(backoff(30, 40).num_seconds(), 900);
        assert_eq!(
            backoff(0, 3).num_seconds(),
            0,
            "no delay when the first is 0"
        );
    }

    #[test]
    fn a_failed_record_is_kept_by_its_prm_id_when_it_has_one() {
        let pair = FailedRecord {
            crm_id: Some("001A".into()),
            prm_id: Some("org-1".into()),
            message: String::new(),
        };
        assert_eq!(retry_key(&pair), Some(("prm", "org-1")));
        let account = FailedRecord {
            crm_id: Some("001A".into()),
            prm_id: None,
            message: String::new(),
        };
        assert_eq!(retry_key(&account), Some(("crm", "001A")));
    }

    #[test]
    fn a_setup_failure_names_the_object_the_fields_and_the_fix_and_no_value() {
        let setup = SetupFailure {
            object: "Account".into(),
            code: "INVALID_FIELD_FOR_INSERT_UPDATE".into(),
            message: "Unable to create/update fields: Phone.".into(),
            fields: vec!["Phone".into()],
            records: vec![
                FailedRecord {
                    crm_id: Some("001000000000001AAA".into()),
                    prm_id: Some("org-1".into()),
                    message: String::new(),
                };
                3
            ],
        };
        let s = setup.summary();
        assert!(s.starts_with("Salesforce refused to write field Phone on Account for 3 record(s) (INVALID_FIELD_FOR_INSERT_UPDATE"), "{s}");
        assert!(s.contains("Set Field-Level Security"), "{s}");
        assert!(s.contains("no full run needed"), "{s}");
        assert!(
            !s.contains("org-1") && !s.contains("001000000000001AAA"),
            "{s}"
        );
        let gone = SetupFailure {
            code: "INVALID_FIELD".into(),
            ..setup
        };
        assert!(gone.summary().contains("Deleted Fields"));
    }
}
