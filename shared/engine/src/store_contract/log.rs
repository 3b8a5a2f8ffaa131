//! The Integration Log: idempotent append, newest first, every filter, acknowledgement,
//! prune.

use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use serde_json::json;

use super::{micros, s};
use crate::store::{LogEntry, LogFilter, Store};

#[allow(clippy::too_many_arguments)]
fn entry(
    id: &str,
    time: DateTime<Utc>,
    integration: Integration,
    code: LogCode,
    run_id: &str,
    object: Option<ObjectKind>,
    crm_id: Option<&str>,
    prm_id: Option<&str>,
) -> LogEntry {
    LogEntry {
        id: id.into(),
        time: micros(time),
        run_id: run_id.into(),
        integration,
        level: code.level(),
        code,
        object,
        crm_id: crm_id.map(Into::into),
        prm_id: prm_id.map(Into::into),
        link: crm_id.map(|c| format!("https://example.my.salesforce.com/{c}")),
        message: format!("entry {id}"),
        fix: code.fix().into(),
        details: json!({"status": 400, "errors": [{"field": "Name", "message": "too long"}]}),
        acknowledged: false,
    }
}

async fn listed(store: &dyn Store, filter: LogFilter) -> Vec<String> {
    store
        .entries(&filter)
        .await
        .unwrap_or_else(|e| panic!("entries({filter:?}): {e}"))
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Integration Log: idempotent append, newest first, every filter, acknowledgement by id
/// and of all errors and warnings, prune.
pub async fn log(store: &dyn Store) {
    let now = Utc::now();
    let org = Some(ObjectKind::Organization);
    let mut e5 = entry(
        "log-5",
        now - Duration::hours(1),
        Integration::Organizations,
        LogCode::RecordUpdated,
        "run-b",
        org,
        Some("001X"),
        Some("org_9"),
    );
    e5.details = serde_json::Value::Null;
    e5.link = None;
    let entries = vec![
        entry(
            "log-1",
            now - Duration::days(30),
            Integration::Organizations,
            LogCode::CrmDataError,
            "run-a",
            org,
            Some("001X"),
            None,
        ),
        entry(
            "log-2",
            now - Duration::days(2),
            Integration::People,
            LogCode::Conflict,
            "run-a",
            Some(ObjectKind::Person),
            None,
            Some("per_9"),
        ),
        entry(
            "log-3",
            now - Duration::hours(3),
            Integration::Deals,
            LogCode::DealImported,
            "run-b",
            Some(ObjectKind::Deal),
            Some("006B"),
            Some("deal_1"),
        ),
        entry(
            "log-4",
            now - Duration::hours(2),
            Integration::Deals,
            LogCode::DealNoAccount,
            "run-b",
            Some(ObjectKind::Deal),
            Some("006A"),
            None,
        ),
        e5,
    ];
    assert!(
        listed(store, LogFilter::default()).await.is_empty(),
        "the log is empty at first"
    );
    store.append(&entries).await.expect("append");
    store.append(&[]).await.expect("append nothing");
    let every = s(&["log-5", "log-4", "log-3", "log-2", "log-1"]);
    assert_eq!(
        listed(store, LogFilter::default()).await,
        every,
        "entries are listed newest first"
    );
    store
        .append(&entries[1..3])
        .await
        .expect("append the same entries again");
    assert_eq!(
        listed(store, LogFilter::default()).await,
        every,
        "append is idempotent by entry id"
    );
    let got = store.entries(&LogFilter::default()).await.expect("entries");
    let mut want = entries.clone();
    want.reverse();
    assert_eq!(got, want, "log entries round-trip every field");

    let f = LogFilter::default;
    assert_eq!(
        listed(
            store,
            LogFilter {
                integration: Some(Integration::Deals),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-3"]),
        "filter by integration"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Warning),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-2", "log-1"]),
        "min_level warning lists warnings and errors"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Error),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-1"]),
        "min_level error lists errors"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Info),
                ..f()
            }
        )
        .await,
        every,
        "min_level info lists everything"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                code: Some(LogCode::DealNoAccount),
                ..f()
            }
        )
        .await,
        s(&["log-4"]),
        "filter by code"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                run_id: Some("run-a".into()),
                ..f()
            }
        )
        .await,
        s(&["log-2", "log-1"]),
        "filter by run id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                record_id: Some("001X".into()),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-1"]),
        "record_id matches the Salesforce Id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                record_id: Some("per_9".into()),
                ..f()
            }
        )
        .await,
        s(&["log-2"]),
        "record_id matches the PRM id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                since: Some(now - Duration::days(1)),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4", "log-3"]),
        "since lists entries at or after the time"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                since: Some(micros(now - Duration::hours(2))),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4"]),
        "since includes an entry at exactly that time"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                integration: Some(Integration::Deals),
                since: Some(now - Duration::minutes(150)),
                ..f()
            }
        )
        .await,
        s(&["log-4"]),
        "filters combine"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                limit: Some(2),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4"]),
        "limit keeps the newest entries"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                limit: Some(2),
                min_level: Some(Level::Warning),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-2"]),
        "limit applies after the filters"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                unacknowledged: true,
                ..f()
            }
        )
        .await,
        every,
        "every entry is unacknowledged at first"
    );
    let open = || LogFilter {
        unacknowledged: true,
        min_level: Some(Level::Warning),
        ..f()
    };
    assert_eq!(
        listed(store, open()).await,
        s(&["log-4", "log-2", "log-1"]),
        "unacknowledged warnings and errors"
    );

    // Acknowledge by id.
    assert_eq!(
        store
            .acknowledge(Some(&s(&["log-4"])))
            .await
            .expect("acknowledge"),
        1,
        "acknowledging one open error by id returns 1"
    );
    assert_eq!(
        store
            .acknowledge(Some(&s(&["log-4", "log-unknown"])))
            .await
            .expect("acknowledge again"),
        0,
        "acknowledging an acknowledged or unknown entry returns 0"
    );
    assert_eq!(
        listed(store, open()).await,
        s(&["log-2", "log-1"]),
        "an acknowledged entry is no longer unacknowledged"
    );
    store
        .append(&entries[3..4])
        .await
        .expect("append an acknowledged entry again");
    assert_eq!(
        listed(store, open()).await,
        s(&["log-2", "log-1"]),
        "appending an entry again (a redelivery) does not reopen it once acknowledged"
    );
    let e4 = store
        .entries(&LogFilter {
            code: Some(LogCode::DealNoAccount),
            ..f()
        })
        .await
        .expect("entries");
    assert!(
        e4.len() == 1 && e4[0].acknowledged,
        "an acknowledged entry is listed with acknowledged = true"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                unacknowledged: true,
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-3", "log-2", "log-1"]),
        "unacknowledged without a level excludes acknowledged entries only"
    );

    // Acknowledge every open warning and error; info entries stay as they are.
    assert_eq!(
        store.acknowledge(None).await.expect("acknowledge all"),
        2,
        "acknowledge(None) acknowledges every open warning and error and returns how many"
    );
    assert!(
        listed(store, open()).await.is_empty(),
        "no open warnings or errors after acknowledge(None)"
    );
    let all_now = store.entries(&LogFilter::default()).await.expect("entries");
    for e in &all_now {
        assert_eq!(
            e.acknowledged,
            e.level != Level::Info,
            "after acknowledge(None), {} ({:?}) acknowledged = {}",
            e.id,
            e.level,
            e.acknowledged
        );
    }
    assert_eq!(
        store
            .acknowledge(None)
            .await
            .expect("acknowledge all again"),
        0,
        "acknowledge(None) with nothing open returns 0"
    );

    // Prune.
    assert_eq!(
        store.prune(now - Duration::days(20)).await.expect("prune"),
        1,
        "prune deletes the entries older than `before` and returns how many"
    );
    assert_eq!(
        listed(store, LogFilter::default()).await,
        s(&["log-5", "log-4", "log-3", "log-2"]),
        "pruned entries are gone, newer ones stay"
    );
    assert_eq!(
        store
            .prune(now - Duration::days(20))
            .await
            .expect("prune again"),
        0,
        "prune with nothing older returns 0"
    );
}
