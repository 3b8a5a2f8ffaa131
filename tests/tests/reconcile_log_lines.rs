//! The JSON log lines of a reconcile carry its drift per object. In a test binary of its
//! own: the tracing subscriber it installs must not race with other tests emitting the
//! same events.

mod common;

use common::drift::*;
use common::log_lines::Lines;
use common::*;

#[tokio::test]
async fn the_json_log_lines_of_a_reconcile_carry_its_drift_per_object() {
    // GIVEN drift the incremental runs missed, and the Lambda's JSON log lines
    let h = Harness::new().await;
    let l = linked(&h).await;
    drift(&h, &l);
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(lines.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // WHEN a reconcile runs
    assert_succeeded(&reconcile(&h, false).await);

    // THEN its end, per object, is a run_finished line and a reconcile_drift line with the
    // drift as a field of its own
    let json = lines.json();
    for i in BOTH {
        for (code, level) in [("run_finished", "INFO"), ("reconcile_drift", "WARN")] {
            let line = json
                .iter()
                .find(|j| j["code"] == code && j["integration"] == i.as_str())
                .unwrap_or_else(|| panic!("no {code} line for {i}: {json:?}"));
            assert_eq!(line["drift"], 2, "{line}");
            assert_eq!(line["level"], level, "{line}");
        }
    }
    // AND the lines of other entries carry no drift
    assert!(json
        .iter()
        .filter(|j| j["code"] == "run_started")
        .all(|j| j.get("drift").is_none()));
}
