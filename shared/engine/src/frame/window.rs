//! Where a run reads from: its mode (full on a first run, or when a cursor is older than
//! its side keeps deletes) and each side's change window (sync rule 2).

use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::{Integration, LogCode};
use serde_json::{json, Value};

use crate::context::{entry, RunMode, SyncContext, CRM_SIDE, PRM_SIDE};
use crate::error::EngineError;
use crate::objects::ObjectSpec;
use crate::store::LogEntry;

/// How long Salesforce keeps a deleted record in the recycle bin, where `queryAll` (and
/// getDeleted) still return it with `IsDeleted`. An incremental read from a Salesforce
/// cursor older than this could miss a delete: a full run is read instead.
pub const CRM_DELETE_RETENTION_DAYS: i64 = 15;

/// How long the PRM keeps a deleted record as a tombstone (`deleted_at` set) in its change
/// lists (at least 30 days, `docs/prm-api.yaml`). An incremental read from a PRM cursor
/// older than this could miss a delete: a full run is read instead.
pub const PRM_DELETE_RETENTION_DAYS: i64 = 30;

/// A side's cursor older than the time that side keeps its deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredCursor {
    /// [`CRM_SIDE`] or [`PRM_SIDE`].
    pub side: &'static str,
    pub cursor: DateTime<Utc>,
    /// How old the cursor was when the run started.
    pub age: Duration,
    /// How long the side keeps its deletes.
    pub retention: Duration,
}

/// How a run reads, decided from its cursors: its mode, and the cursors that forced a full
/// run because they are older than their side's delete retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMode {
    pub mode: RunMode,
    pub expired: Vec<ExpiredCursor>,
}

/// Decides a run's mode (no I/O): the first run of an integration (a cursor missing) is
/// full; an incremental run whose Salesforce cursor is older than
/// [`CRM_DELETE_RETENTION_DAYS`] or whose PRM cursor is older than
/// [`PRM_DELETE_RETENTION_DAYS`] becomes full, since the deletes made since the cursor may
/// no longer be in that side's change lists; otherwise the mode asked for.
pub fn window_mode(
    requested: RunMode,
    crm_cursor: Option<DateTime<Utc>>,
    prm_cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> WindowMode {
    let (Some(crm), Some(prm)) = (crm_cursor, prm_cursor) else {
        return WindowMode {
            mode: RunMode::Full,
            expired: Vec::new(),
        };
    };
    if requested.reads_all() {
        // A full run or a reconcile reads everything anyway.
        return WindowMode {
            mode: requested,
            expired: Vec::new(),
        };
    }
    let expired: Vec<ExpiredCursor> = [
        (CRM_SIDE, crm, CRM_DELETE_RETENTION_DAYS),
        (PRM_SIDE, prm, PRM_DELETE_RETENTION_DAYS),
    ]
    .into_iter()
    .filter_map(|(side, cursor, days)| {
        let retention = Duration::days(days);
        let age = now - cursor;
        (age > retention).then_some(ExpiredCursor {
            side,
            cursor,
            age,
            retention,
        })
    })
    .collect();
    WindowMode {
        mode: if expired.is_empty() {
            requested
        } else {
            RunMode::Full
        },
        expired,
    }
}

/// The `cursor_expired` entry of a run made full by expired cursors.
fn expired_entry(run_id: &str, integration: Integration, expired: &[ExpiredCursor]) -> LogEntry {
    let sides: Vec<String> = expired
        .iter()
        .map(|e| {
            let (name, keeps) = if e.side == CRM_SIDE {
                ("Salesforce", "its recycle bin keeps deleted records")
            } else {
                ("PRM", "it keeps tombstones of deleted records")
            };
            format!(
                "the {name} cursor ({}) is {} days old and {keeps} {} days",
                e.cursor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.age.num_days(),
                e.retention.num_days()
            )
        })
        .collect();
    let details: Vec<Value> = expired
        .iter()
        .map(|e| {
            json!({
                "side": e.side,
                "cursor": e.cursor,
                "age_days": e.age.num_days(),
                "retention_days": e.retention.num_days(),
            })
        })
        .collect();
    entry(
        run_id,
        integration,
        LogCode::CursorExpired,
        format!(
            "{integration}: {}; an incremental run could miss deletes, so this run is full: it reads everything",
            sides.join(", and ")
        ),
        json!({ "expired": details }),
    )
}

/// Where a run reads from: its mode (the first run of an integration is full, so is one
/// whose cursor is older than its side keeps deletes, and a full run first checks the
/// mapping against Salesforce) and each side's change window (its cursor less the
/// overlap; None reads everything).
pub(crate) struct Window {
    pub mode: RunMode,
    pub crm_cursor: Option<DateTime<Utc>>,
    pub prm_cursor: Option<DateTime<Utc>>,
    pub crm_since: Option<DateTime<Utc>>,
    pub prm_since: Option<DateTime<Utc>>,
    /// The `cursor_expired` entry when expired cursors made the run full ([`window_mode`]),
    /// for the caller to write once the run has started.
    pub expired: Option<LogEntry>,
}

/// Reads the cursors and decides the run's [`Window`] ([`window_mode`]); `run_id` names
/// the run in its `cursor_expired` entry.
pub(crate) async fn read_window(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    spec: &ObjectSpec,
    requested: RunMode,
) -> Result<Window, EngineError> {
    let crm_cursor = ctx.store.cursor(integration, CRM_SIDE).await?;
    let prm_cursor = ctx.store.cursor(integration, PRM_SIDE).await?;
    let decided = window_mode(requested, crm_cursor, prm_cursor, Utc::now());
    let mode = decided.mode;
    let expired =
        (!decided.expired.is_empty()).then(|| expired_entry(run_id, integration, &decided.expired));
    if let Some(e) = &expired {
        tracing::warn!(run_id, integration = integration.as_str(), "{}", e.message);
    }
    if mode.reads_all() {
        crate::check::check_mapping(ctx, spec).await?;
    }
    let overlap = Duration::seconds(i64::from(ctx.mapping.sync.overlap_seconds));
    let (crm_since, prm_since) = match mode {
        RunMode::Full | RunMode::Reconcile => (None, None),
        RunMode::Incremental | RunMode::Record => (
            crm_cursor.map(|c| c - overlap),
            prm_cursor.map(|c| c - overlap),
        ),
    };
    Ok(Window {
        mode,
        crm_cursor,
        prm_cursor,
        crm_since,
        prm_since,
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
    }

    fn days_ago(days: i64) -> Option<DateTime<Utc>> {
        Some(now() - Duration::days(days))
    }

    #[test]
    fn recent_cursors_keep_the_mode_asked_for() {
        let d = window_mode(RunMode::Incremental, days_ago(1), days_ago(1), now());
        assert_eq!(d.mode, RunMode::Incremental);
        assert!(d.expired.is_empty());
        // just inside both windows
        let d = window_mode(RunMode::Incremental, days_ago(15), days_ago(30), now());
        assert_eq!(d.mode, RunMode::Incremental);
        assert!(d.expired.is_empty());
    }

    #[test]
    fn a_missing_cursor_is_a_first_run_not_an_expired_one() {
        for (crm, prm) in [(None, days_ago(1)), (days_ago(40), None), (None, None)] {
            let d = window_mode(RunMode::Incremental, crm, prm, now());
            assert_eq!(d.mode, RunMode::Full);
            assert!(d.expired.is_empty());
        }
    }

    #[test]
    fn a_salesforce_cursor_older_than_the_recycle_bin_forces_a_full_run() {
        let d = window_mode(RunMode::Incremental, days_ago(16), days_ago(16), now());
        assert_eq!(d.mode, RunMode::Full);
        assert_eq!(
            d.expired,
            vec![ExpiredCursor {
                side: CRM_SIDE,
                cursor: days_ago(16).unwrap(),
                age: Duration::days(16),
                retention: Duration::days(CRM_DELETE_RETENTION_DAYS),
            }],
            "the PRM keeps tombstones 30 days: its cursor is not expired"
        );
        let just = now() - Duration::days(15) - Duration::seconds(1);
        let d = window_mode(RunMode::Incremental, Some(just), days_ago(1), now());
        assert_eq!(d.mode, RunMode::Full);
    }

    #[test]
    fn a_prm_cursor_older_than_its_tombstones_forces_a_full_run() {
        let d = window_mode(RunMode::Incremental, days_ago(1), days_ago(31), now());
        assert_eq!(d.mode, RunMode::Full);
        assert_eq!(d.expired.len(), 1);
        assert_eq!(d.expired[0].side, PRM_SIDE);
        let d = window_mode(RunMode::Incremental, days_ago(31), days_ago(31), now());
        assert_eq!(
            d.expired.iter().map(|e| e.side).collect::<Vec<_>>(),
            vec![CRM_SIDE, PRM_SIDE]
        );
    }

    #[test]
    fn a_full_run_asked_for_needs_no_reason() {
        let d = window_mode(RunMode::Full, days_ago(40), days_ago(40), now());
        assert_eq!(d.mode, RunMode::Full);
        assert!(d.expired.is_empty());
    }

    #[test]
    fn a_reconcile_reads_everything_but_a_first_run_is_full() {
        let d = window_mode(RunMode::Reconcile, days_ago(40), days_ago(1), now());
        assert_eq!(d.mode, RunMode::Reconcile);
        assert!(d.expired.is_empty());
        let d = window_mode(RunMode::Reconcile, None, days_ago(1), now());
        assert_eq!(d.mode, RunMode::Full);
    }

    #[test]
    fn the_entry_names_the_side_its_age_and_why_the_run_is_full() {
        let d = window_mode(RunMode::Incremental, days_ago(16), days_ago(2), now());
        let e = expired_entry("r1", Integration::People, &d.expired);
        assert_eq!(e.code, LogCode::CursorExpired);
        assert_eq!(e.level, prmsync_mapping::Level::Warning);
        assert!(e.message.contains("Salesforce cursor"), "{}", e.message);
        assert!(e.message.contains("16 days old"), "{}", e.message);
        assert!(e.message.contains("15 days"), "{}", e.message);
        assert!(e.message.contains("reads everything"), "{}", e.message);
        assert!(e.message.contains("deletes"), "{}", e.message);
        assert_eq!(e.details["expired"][0]["side"], "crm");
        assert_eq!(e.details["expired"][0]["age_days"], 16);
    }
}
