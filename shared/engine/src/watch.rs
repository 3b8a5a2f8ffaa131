//! `prmsync watch`: near-real-time on one machine. Every interval, an incremental run of
//! each integration (as `prmsync sync` does, a reconcile when one is due); in between, the
//! records the PRM notifies are synced one by one as they come. One thing at a time: a
//! cycle or a record in hand is finished before the next, and before the loop stops.
//!
//! The decisions are pure functions here (the interval allowed, when the next cycle is due,
//! what a cycle costs a day, what each line says); [`watch`] is the loop around them.

use std::future::Future;
use std::ops::Add;
use std::time::Duration;

use prmsync_mapping::Integration;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::context::{RunMode, RunOptions, SyncContext};
use crate::report::{RunReport, RunStatus};
use crate::run::{run_integration, sync_record, RecordRef};

/// The shortest interval taken: a quiet cycle costs one query per object on each side,
/// and under 10 s the saving in delay is small beside the API calls spent.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// The interval when none is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest interval taken (a day; the scheduler is the better tool beyond).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Reads `--interval` (`90s`, `5m`, `1h`), refusing one under [`MIN_INTERVAL`] or over
/// [`MAX_INTERVAL`] with the flag and the fix named.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d =
        prmsync_mapping::duration::parse(s).map_err(|e| format!("--interval {}: {e}", s.trim()))?;
    let d = d.to_std().map_err(|_| {
        format!(
            "--interval {}: give a positive duration, like 60s or 5m",
            s.trim()
        )
    })?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "--interval {}: at least {} s between cycles (each costs one query per object on both sides); give 10s or more, like 60s",
            s.trim(),
            MIN_INTERVAL.as_secs()
        ));
    }
    if d > MAX_INTERVAL {
        return Err(format!(
            "--interval {}: at most a day between cycles; for less often, run `prmsync sync` from a scheduler",
            s.trim()
        ));
    }
    Ok(d)
}

/// When the cycle after one that started at `started` and finished at `finished` is due:
/// one interval after the start, or at once when the cycle took longer than the interval
/// (missed ticks are not caught up: cycles never pile up).
pub fn next_due<T>(started: T, finished: T, interval: Duration) -> T
where
    T: Add<Duration, Output = T> + Ord + Copy,
{
    (started + interval).max(finished)
}

/// The cycles in a day at `interval`, and so the calls a quiet day costs on each side
/// for `objects` integrations (one query per object per cycle).
pub fn quiet_calls_per_day(objects: u64, interval: Duration) -> u64 {
    let secs = interval.as_secs().max(1);
    objects * 86_400_u64.div_ceil(secs)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What one run did, in a few words: `no change`, `1 updated in the PRM`, `failed: why`.
pub fn run_words(report: &RunReport) -> String {
    let c = &report.counts;
    let mut parts = Vec::new();
    for (n, what) in [
        (c.created.crm, "created in Salesforce"),
        (c.created.prm, "created in the PRM"),
        (c.updated.crm, "updated in Salesforce"),
        (c.updated.prm, "updated in the PRM"),
        (c.deleted_marked, "marked deleted"),
        (c.disconnected, "disconnected"),
        (c.conflicts, "conflicts"),
        (c.errors, "failed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        parts.push("no change".into());
    }
    let mut words = parts.join(", ");
    if !matches!(report.mode, RunMode::Incremental | RunMode::Record) {
        words.push_str(&format!(" ({})", report.mode.as_str()));
    }
    match report.status {
        RunStatus::Succeeded => {}
        status => {
            words.push_str(&format!(" [{status}"));
            if let Some(m) = &report.message {
                words.push_str(&format!(": {m}"));
            }
            words.push(']');
        }
    }
    words
}

/// The API calls and time something took, as a line ends.
pub fn cost_words(salesforce_calls: u64, prm_calls: u64, took: Duration) -> String {
    format!(
        "{}, {}; {:.1} s",
        plural(salesforce_calls, "Salesforce call", "Salesforce calls"),
        plural(prm_calls, "PRM call", "PRM calls"),
        took.as_secs_f64()
    )
}

/// The line a cycle logs: `cycle 12: organizations no change, people 1 updated in the PRM,
/// deals no change; 3 Salesforce calls, 3 PRM calls; 0.2 s`.
pub fn cycle_line(
    n: u64,
    reports: &[RunReport],
    salesforce_calls: u64,
    prm_calls: u64,
    took: Duration,
) -> String {
    let runs: Vec<String> = reports
        .iter()
        .map(|r| format!("{} {}", r.integration, run_words(r)))
        .collect();
    format!(
        "cycle {n}: {}; {}",
        runs.join(", "),
        cost_words(salesforce_calls, prm_calls, took)
    )
}

/// The line a notified record logs: `notified prm:person:per_1 (people): 1 updated in
/// Salesforce; 2 Salesforce calls, 1 PRM call; 0.1 s`.
pub fn record_line(
    record: &RecordRef,
    report: &RunReport,
    salesforce_calls: u64,
    prm_calls: u64,
    took: Duration,
) -> String {
    format!(
        "notified {} ({}): {}; {}",
        record.text(),
        report.integration,
        run_words(report),
        cost_words(salesforce_calls, prm_calls, took)
    )
}

/// What the loop runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub interval: Duration,
    /// In the order they run (organizations before the people who belong to them).
    pub integrations: Vec<Integration>,
}

/// Something the loop did, as it logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub line: String,
    /// Whether anything was written on either side (a sandbox is saved then).
    pub wrote: bool,
}

/// What the loop did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSummary {
    pub cycles: u64,
    pub records: u64,
}

/// Runs a cycle at once and then every `options.interval`, syncs each record that comes
/// on `notified` as soon as nothing else is in hand, and returns once `shutdown` is ready
/// (the cycle or record in hand is finished first). Each cycle and record is reported to
/// `on_event`.
pub async fn watch(
    ctx: &SyncContext,
    options: &WatchOptions,
    mut notified: mpsc::Receiver<RecordRef>,
    shutdown: impl Future<Output = ()>,
    mut on_event: impl FnMut(WatchEvent),
) -> WatchSummary {
    tokio::pin!(shutdown);
    let mut summary = WatchSummary::default();
    let mut due = Instant::now();
    let mut notes_open = true;
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            record = notified.recv(), if notes_open => match record {
                Some(record) => {
                    let crm0 = ctx.crm.calls();
                    let prm0 = ctx.prm.calls();
                    let started = Instant::now();
                    let report = sync_record(ctx, &record, false).await;
                    summary.records += 1;
                    on_event(WatchEvent {
                        line: record_line(
                            &record,
                            &report,
                            ctx.crm.calls().saturating_sub(crm0),
                            ctx.prm.calls().saturating_sub(prm0),
                            started.elapsed(),
                        ),
                        wrote: report.counts.writes() > 0,
                    });
                }
                None => notes_open = false,
            },
            _ = tokio::time::sleep_until(due) => {
                let started = Instant::now();
                summary.cycles += 1;
                let event = cycle(ctx, options, summary.cycles).await;
                on_event(event);
                due = next_due(started, Instant::now(), options.interval);
            }
        }
    }
    summary
}

/// One cycle: each integration once, as `prmsync sync` runs it.
async fn cycle(ctx: &SyncContext, options: &WatchOptions, n: u64) -> WatchEvent {
    let crm0 = ctx.crm.calls();
    let prm0 = ctx.prm.calls();
    let started = std::time::Instant::now();
    let run_id = format!("watch-{}", uuid::Uuid::new_v4());
    let mut reports = Vec::new();
    for &integration in &options.integrations {
        let mode = crate::reconcile::scheduled_mode(ctx, integration)
            .await
            .unwrap_or(RunMode::Incremental);
        let run = RunOptions {
            mode,
            dry_run: false,
            run_id: Some(run_id.clone()),
            allow_mass_change: false,
        };
        reports.push(run_integration(ctx, integration, run).await);
    }
    WatchEvent {
        line: cycle_line(
            n,
            &reports,
            ctx.crm.calls().saturating_sub(crm0),
            ctx.prm.calls().saturating_sub(prm0),
            started.elapsed(),
        ),
        wrote: reports.iter().any(|r| r.counts.writes() > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Counts, PerSide};

    fn report(integration: Integration, counts: Counts) -> RunReport {
        RunReport {
            run_id: "run-1".into(),
            integration,
            mode: RunMode::Incremental,
            dry_run: false,
            status: RunStatus::Succeeded,
            counts,
            message: None,
            failure: None,
            planned: Vec::new(),
        }
    }

    #[test]
    fn an_interval_under_ten_seconds_zero_or_garbage_is_refused_naming_the_flag() {
        assert_eq!(parse_interval("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("10s"), Ok(MIN_INTERVAL));
        assert_eq!(parse_interval("24h"), Ok(MAX_INTERVAL));
        for bad in ["0", "0s", "9s", "soon", "", "-5s", "1m30s", "2d"] {
            let e = parse_interval(bad).unwrap_err();
            assert!(e.starts_with("--interval"), "{bad}: {e}");
        }
        assert!(parse_interval("9s").unwrap_err().contains("10s or more"));
        assert!(parse_interval("soon").unwrap_err().contains("like 30m"));
        assert!(parse_interval("2d").unwrap_err().contains("prmsync sync"));
    }

    #[test]
    fn the_next_cycle_is_one_interval_after_the_last_start_or_at_once_when_it_overran() {
        let i = Duration::from_secs(60);
        let t0 = std::time::Instant::now();
        let s = Duration::from_secs;
        // a 2 s cycle: the next starts 60 s after the last one started
        assert_eq!(next_due(t0, t0 + s(2), i), t0 + s(60));
        // a 90 s cycle: the next starts as it ends, not twice to catch up
        assert_eq!(next_due(t0, t0 + s(90), i), t0 + s(90));
        assert_eq!(next_due(t0, t0 + s(60), i), t0 + s(60));
    }

    #[test]
    fn a_quiet_day_costs_one_query_per_object_per_cycle() {
        assert_eq!(quiet_calls_per_day(3, Duration::from_secs(60)), 4_320);
        assert_eq!(quiet_calls_per_day(3, Duration::from_secs(300)), 864);
        assert_eq!(quiet_calls_per_day(3, Duration::from_secs(10)), 25_920);
        // a day that does not divide evenly counts its last, partial cycle
        assert_eq!(quiet_calls_per_day(1, Duration::from_secs(7 * 3600)), 4);
    }

    #[test]
    fn a_cycle_line_says_what_each_integration_did_and_what_it_cost() {
        let quiet = report(Integration::Organizations, Counts::default());
        let people = report(
            Integration::People,
            Counts {
                updated: PerSide { crm: 0, prm: 1 },
                ..Default::default()
            },
        );
        let mut deals = report(
            Integration::Deals,
            Counts {
                errors: 2,
                ..Default::default()
            },
        );
        deals.status = RunStatus::Failed;
        deals.message = Some("the PRM did not answer".into());
        let line = cycle_line(
            12,
            &[quiet, people, deals],
            3,
            1,
            Duration::from_millis(240),
        );
        assert_eq!(
            line,
            "cycle 12: organizations no change, people 1 updated in the PRM, deals 2 failed [failed: the PRM did not answer]; 3 Salesforce calls, 1 PRM call; 0.2 s"
        );
    }

    #[test]
    fn a_record_line_names_the_record_and_a_full_run_says_so() {
        let mut r = report(
            Integration::People,
            Counts {
                updated: PerSide { crm: 1, prm: 0 },
                ..Default::default()
            },
        );
        let record = RecordRef::Prm(prmsync_mapping::ObjectKind::Person, "per_1".into());
        assert_eq!(
            record_line(&record, &r, 2, 1, Duration::from_millis(50)),
            "notified prm:person:per_1 (people): 1 updated in Salesforce; 2 Salesforce calls, 1 PRM call; 0.1 s"
        );
        r.mode = RunMode::Full;
        assert_eq!(run_words(&r), "1 updated in Salesforce (full)");
    }
}
