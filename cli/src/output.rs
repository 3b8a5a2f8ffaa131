//! Human-readable output.

use prmsync_engine::RunReport;
use serde_json::Value;

pub fn print_sync(summary: &Value, reports: &[RunReport]) {
    let dry = summary["dry_run"].as_bool().unwrap_or(false);
    println!(
        "{} run {} ({} ms){}",
        summary["mode"].as_str().unwrap_or(""),
        summary["run_id"].as_str().unwrap_or(""),
        summary["duration_ms"],
        if dry {
            " — dry run, nothing was written"
        } else {
            ""
        }
    );
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}  status",
        "integration",
        "new in SF",
        "new in PRM",
        "upd in SF",
        "upd in PRM",
        "deleted",
        "discon.",
        "conflicts",
        "unchanged",
        "errors"
    );
    for r in reports {
        let c = &r.counts;
        println!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}  {}",
            r.integration.as_str(),
            c.created.crm,
            c.created.prm,
            c.updated.crm,
            c.updated.prm,
            c.deleted_marked,
            c.disconnected,
            c.conflicts,
            c.unchanged,
            c.errors,
            r.status
        );
        if let Some(m) = &r.message {
            println!("  {m}");
        }
        if r.mode == prmsync_engine::RunMode::Reconcile {
            println!(
                "  reconcile: drift {} ({} pairs out of step or records not created or linked since the incremental runs)",
                r.counts.drift,
                if dry { "would repair" } else { "repaired" }
            );
        }
        if dry {
            for w in &r.planned {
                println!(
                    "  would {} {} {} {}: {}",
                    w.action,
                    if w.side == "crm" { "Salesforce" } else { "PRM" },
                    w.object,
                    w.id.as_deref()
                        .or(w.source_id.as_deref().map(|_| "(new)"))
                        .unwrap_or(""),
                    serde_json::to_string(&w.fields).unwrap_or_default()
                );
            }
        }
    }
    println!(
        "API calls: Salesforce {}, PRM {}",
        summary["api_calls"]["salesforce"], summary["api_calls"]["prm"]
    );
    let errors: u64 = reports.iter().map(|r| r.counts.errors).sum();
    if errors > 0 {
        println!(
            "{errors} records need attention: `prmsync log --level error` lists them with the fix"
        );
    }
}

/// Cuts a text to a column width.
pub fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
