//! When a reconcile is due (sync rule 14 in `docs/sync-rules.md`). A reconcile is a run
//! in [`RunMode::Reconcile`]: it reads both sides of every selected record as a full run
//! does and repairs what the incremental runs missed, reporting it as drift. On AWS a
//! daily schedule asks for one; on one machine `prmsync sync` runs one instead of an
//! incremental run when `[sync] reconcile = "daily"` and the integration's last run that
//! read everything (a reconcile or a full run) started a day ago or more.

use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::Integration;

use crate::context::{RunMode, SyncContext, CRM_SIDE};
use crate::frame::READ_ALL_MARK;
use crate::store::StoreError;

/// How early a reconcile may come: a run scheduled every hour that took a few minutes
/// longer yesterday still reconciles at the same hour today.
pub const EARLY_MINUTES: i64 = 15;

/// Is a reconcile due (no I/O)? `every_hours` is the schedule (None: `off`);
/// `last_read_all` when the last run that read everything started; `ran_before` whether
/// the integration has run (its cursors are set). An integration that never ran gets a
/// full run anyway, so none is due; one that ran but never read everything since the
/// setting existed is due.
pub fn reconcile_due(
    every_hours: Option<u32>,
    last_read_all: Option<DateTime<Utc>>,
    ran_before: bool,
    now: DateTime<Utc>,
) -> bool {
    let Some(hours) = every_hours else {
        return false;
    };
    if !ran_before {
        return false;
    }
    match last_read_all {
        None => true,
        Some(last) => {
            now - last >= Duration::hours(i64::from(hours)) - Duration::minutes(EARLY_MINUTES)
        }
    }
}

/// The mode a scheduled run of `integration` takes: a reconcile when one is due
/// ([`reconcile_due`] with `[sync] reconcile`), otherwise incremental.
pub async fn scheduled_mode(
    ctx: &SyncContext,
    integration: Integration,
) -> Result<RunMode, StoreError> {
    let every = ctx.mapping.sync.reconcile_every_hours();
    if every.is_none() {
        return Ok(RunMode::Incremental);
    }
    let last = ctx.store.cursor(integration, READ_ALL_MARK).await?;
    let ran_before = ctx.store.cursor(integration, CRM_SIDE).await?.is_some();
    Ok(if reconcile_due(every, last, ran_before, Utc::now()) {
        RunMode::Reconcile
    } else {
        RunMode::Incremental
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
    }

    fn ago(hours: i64, minutes: i64) -> Option<DateTime<Utc>> {
        Some(now() - Duration::hours(hours) - Duration::minutes(minutes))
    }

    #[test]
    fn a_daily_reconcile_is_due_a_day_after_the_last_read_of_everything() {
        assert!(!reconcile_due(Some(24), ago(1, 0), true, now()));
        assert!(!reconcile_due(Some(24), ago(23, 0), true, now()));
        assert!(reconcile_due(Some(24), ago(24, 0), true, now()));
        assert!(reconcile_due(Some(24), ago(30, 0), true, now()));
    }

    #[test]
    fn an_hourly_schedule_that_ran_late_yesterday_still_reconciles_today() {
        // yesterday's reconcile started at 12:10, today's run starts at 12:00
        assert!(reconcile_due(Some(24), ago(23, 50), true, now()));
        assert!(!reconcile_due(Some(24), ago(23, 44), true, now()));
    }

    #[test]
    fn off_never_reconciles() {
        assert!(!reconcile_due(None, ago(100, 0), true, now()));
        assert!(!reconcile_due(None, None, true, now()));
    }

    #[test]
    fn a_first_run_is_full_not_a_reconcile_and_a_run_never_reconciled_is_due() {
        assert!(!reconcile_due(Some(24), None, false, now()));
        assert!(reconcile_due(Some(24), None, true, now()));
    }
}
