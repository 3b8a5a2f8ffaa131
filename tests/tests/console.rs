//! The web console (`prmsync console`) over the sandbox, driven over HTTP: the Sync
//! Manager lists the three integrations and runs one from the page, following it to its
//! counts; the Integration Log shows the deal rejections with their fixes and
//! acknowledging one takes it off the open count; a paused integration shows as paused and
//! its next run is skipped; a record's page shows its link and history, and syncs or
//! unlinks it; a POST without the CSRF token is 403 and changes nothing; and
//! a console on an address other machines can reach needs its access token.

mod common;

use std::sync::Arc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::console::{served, served_on, served_with, Engine};
use common::CrmHooks;
use prmsync_console::{Console, ListenError};
use prmsync_engine::store::Store;
use prmsync_engine::RunStatus;
use prmsync_mapping::{Integration, MappingConfig};
use prmsync_simulators::sandbox::{PRM_TOKEN, SF_CLIENT_SECRET};
use prmsync_state_sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_manager_runs_deals_and_the_log_shows_their_rejections_with_fixes() {
    let s = served(None).await;
    let (status, page) = s.get("/").await;
    assert_eq!(status, 200);
    for i in ["organizations", "people", "deals"] {
        assert!(page.contains(&format!(r#"data-integration="{i}""#)), "{i}");
    }
    // organizations and people first, so the deals find their partners
    let csrf = s.csrf().await;
    for i in ["organizations", "people"] {
        assert_eq!(
            s.post(
                "/actions",
                &[("csrf", &csrf), ("action", "run"), ("integration", i)]
            )
            .await,
            303
        );
        assert_eq!(s.finished_run(i).await["status"], "succeeded");
    }
    // WHEN Run Full Sync Now is chosen for deals
    assert_eq!(
        s.post(
            "/actions",
            &[
                ("csrf", &csrf),
                ("action", "full"),
                ("integration", "deals")
            ]
        )
        .await,
        303
    );
    let run = s.finished_run("deals").await;
    // THEN the run ends with its counts, which the page shows
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["mode"], "full");
    let imported = run["counts"]["created"]["prm"].as_u64().unwrap();
    assert!(imported > 0, "{run}");
    let (_, page) = s.get("/").await;
    assert!(
        page.contains(&format!(
            "succeeded: created 0 in Salesforce, {imported} in the PRM"
        )),
        "{page}"
    );
    // and the Integration Log shows the deals refused, each with its fix
    let (_, log) = s.get("/log?integration=deals&level=error").await;
    assert!(log.contains("deal_no_primary_contact"), "{log}");
    assert!(log.contains("Fix: </strong>In Salesforce, add a Contact Role to the Opportunity"));
    // acknowledging one takes it off the open count
    let before = s.open_count().await;
    assert!(before > 0);
    assert_eq!(s.acknowledge_an_open_deal_error(&csrf).await, 303);
    assert_eq!(s.open_count().await, before - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_page_shows_its_link_and_history_and_syncs_or_unlinks_it() {
    let s = served(None).await;
    let csrf = s.csrf().await;
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "run"),
            ("integration", "organizations"),
        ],
    )
    .await;
    assert_eq!(s.finished_run("organizations").await["status"], "succeeded");
    // an organization the run linked, found by its PRM reference and by its Salesforce Id
    let org = s
        ._sandbox
        .prm
        .list(prmsync_simulators::prm::Collection::Organizations)
        .into_iter()
        .find(|o| o["crm_id"].is_string() && o["deleted_at"].is_null())
        .expect("a linked organization");
    let (prm_id, crm_id) = (
        org["id"].as_str().unwrap().to_string(),
        org["crm_id"].as_str().unwrap().to_string(),
    );
    let reference = format!("prm:organization:{prm_id}");
    for id in [reference.as_str(), crm_id.as_str()] {
        let (status, page) = s.get(&format!("/record?id={id}")).await;
        assert_eq!(status, 200);
        assert!(
            page.contains(&format!(r#"data-field="crm-id">{crm_id}"#))
                && page.contains(&format!(r#"data-field="prm-id">{prm_id}"#)),
            "{page}"
        );
        // the snapshot's values are masked as the log's are
        assert!(!page.contains(org["name"].as_str().unwrap()), "{page}");
    }
    // Sync Now reports what happened
    let r = s
        .http
        .post(format!("{}/record/sync", s.base))
        .form(&[("csrf", csrf.as_str()), ("id", reference.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let (_, page) = s.get(&back).await;
    assert!(
        page.contains(
            r#"data-field="done">Sync Now: succeeded; created 0 in Salesforce, 0 in the PRM"#
        ),
        "{page}"
    );
    // Unlink removes the link
    assert_eq!(
        s.post("/record/unlink", &[("csrf", &csrf), ("id", &reference)])
            .await,
        303
    );
    let (_, page) = s.get(&format!("/record?id={reference}")).await;
    assert!(page.contains(r#"data-field="no-link""#), "{page}");
    assert!(s
        .store
        .find_links(prmsync_mapping::ObjectKind::Organization, &[], &[prm_id])
        .await
        .unwrap()
        .is_empty());
    // and a text that names no record says why
    let (status, page) = s.get("/record?id=hello").await;
    assert_eq!(status, 400);
    assert!(page.contains("neither a Salesforce Id"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_page_reads_both_records_beside_the_snapshot_finds_people_by_email_and_relinks() {
    let s = served(None).await;
    let csrf = s.csrf().await;
    for i in ["organizations", "people"] {
        s.post(
            "/actions",
            &[("csrf", &csrf), ("action", "run"), ("integration", i)],
        )
        .await;
        assert_eq!(s.finished_run(i).await["status"], "succeeded");
    }
    let person = s
        ._sandbox
        .prm
        .list(prmsync_simulators::prm::Collection::People)
        .into_iter()
        .find(|p| p["crm_id"].is_string() && p["deleted_at"].is_null() && p["email"].is_string())
        .expect("a linked person with an email");
    let (prm_id, crm_id) = (
        person["id"].as_str().unwrap().to_string(),
        person["crm_id"].as_str().unwrap().to_string(),
    );
    // an edit in Salesforce since the last run: the page shows it beside the snapshot
    let mut edit = serde_json::Map::new();
    edit.insert("Title".into(), "Chief Edited Officer".into());
    s._sandbox.salesforce.update("Contact", &crm_id, edit);
    let (status, page) = s.get(&format!("/record?id=prm:person:{prm_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-field="fields""#), "{page}");
    let row = |key: &str| {
        let at = page
            .find(&format!(r#"data-key="{key}""#))
            .unwrap_or_else(|| panic!("a row for {key}: {page}"));
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(
        row("title").contains("differs: the next run merges it"),
        "{}",
        row("title")
    );
    assert!(row("last_name").contains("in step"), "{}", row("last_name"));
    // values are masked as the log's are: the edit itself is not on the page
    assert!(!page.contains("Chief Edited Officer"), "{page}");

    // found by email: one person on each side, linked: a list of both
    let email = person["email"].as_str().unwrap();
    let (status, found) = s
        .get(&format!("/record?id={}", email.replace('@', "%40")))
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.contains(&format!("?id={crm_id}"))
            && found.contains(&format!("?id=prm%3Aperson%3A{prm_id}")),
        "{found}"
    );
    let (status, none) = s.get("/record?id=nobody%40nowhere.example").await;
    assert_eq!(status, 200);
    assert!(
        none.contains("no Contact or PRM person has this email"),
        "{none}"
    );
    let (status, bad) = s.get("/record?id=not%40an%40email").await;
    assert_eq!(status, 400);
    assert!(bad.contains("is not an email address"), "{bad}");

    // Relink: the PRM person to another Contact; the old link goes, the new one waits
    // for the next run's first-link merge
    let other = s
        ._sandbox
        .salesforce
        .records("Contact")
        .into_iter()
        .filter_map(|c| c["Id"].as_str().map(str::to_string))
        .find(|id| *id != crm_id)
        .expect("another Contact");
    let (status, done) = s
        .post_to(
            "/record/relink",
            &[
                ("csrf", &csrf),
                ("id", &format!("prm:person:{prm_id}")),
                ("other", &other),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert!(
        done.contains(&format!("Relinked person {prm_id} to Salesforce {other}")),
        "{done}"
    );
    let links = s
        .store
        .find_links(
            prmsync_mapping::ObjectKind::Person,
            &[],
            std::slice::from_ref(&prm_id),
        )
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].crm_id.as_str(), links[0].retry),
        (other.as_str(), true)
    );
    assert!(s
        .store
        .find_links(
            prmsync_mapping::ObjectKind::Person,
            std::slice::from_ref(&crm_id),
            &[]
        )
        .await
        .unwrap()
        .is_empty());
    // a relink across kinds is refused and changes nothing
    let (_, refused) = s
        .post_to(
            "/record/relink",
            &[
                ("csrf", &csrf),
                ("id", &format!("prm:person:{prm_id}")),
                ("other", "001Sm0000000001IAA"),
            ],
        )
        .await;
    assert!(
        refused.contains("link records of the same kind"),
        "{refused}"
    );
    let after = s
        .store
        .find_links(prmsync_mapping::ObjectKind::Person, &[], &[prm_id])
        .await
        .unwrap();
    assert_eq!(after[0].crm_id, other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_read_and_change_the_aws_deployments_tables() {
    if common::aws::endpoint().is_none() {
        return;
    }
    // the console over the DynamoDB tables (moto), as `--aws` reads them
    let moto = common::aws::Moto::new(5).await;
    let s = served_on(moto.store.clone(), None).await;
    let (status, page) = s.get("/").await;
    assert_eq!(status, 200);
    for i in ["organizations", "people", "deals"] {
        assert!(page.contains(&format!(r#"data-integration="{i}""#)), "{i}");
    }
    let csrf = s.csrf().await;
    for (i, action) in [
        ("organizations", "run"),
        ("people", "run"),
        ("deals", "full"),
    ] {
        s.post(
            "/actions",
            &[("csrf", &csrf), ("action", action), ("integration", i)],
        )
        .await;
        assert_eq!(s.finished_run(i).await["status"], "succeeded");
    }
    // the log is read from the log table, grouped and acknowledged there
    let (_, log) = s.get("/log?integration=deals&level=error").await;
    assert!(log.contains("deal_no_primary_contact"), "{log}");
    let before = s.open_count().await;
    assert_eq!(s.acknowledge_an_open_deal_error(&csrf).await, 303);
    assert_eq!(s.open_count().await, before - 1);
    // and pausing writes the pause flag to the state table
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "pause"),
            ("integration", "people"),
        ],
    )
    .await;
    assert!(s.store.is_paused(Integration::People).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_integration_shows_as_paused_and_its_next_run_is_skipped() {
    let s = served(None).await;
    let csrf = s.csrf().await;
    assert_eq!(
        s.post(
            "/actions",
            &[
                ("csrf", &csrf),
                ("action", "pause"),
                ("integration", "deals")
            ]
        )
        .await,
        303
    );
    let (_, page) = s.get("/").await;
    let row = &page[page.find(r#"data-integration="deals""#).unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains(r#"data-field="state">paused"#),
        "{row}"
    );
    assert!(s.store.is_paused(Integration::Deals).await.unwrap());
    s.post(
        "/actions",
        &[("csrf", &csrf), ("action", "run"), ("integration", "deals")],
    )
    .await;
    assert_eq!(s.finished_run("deals").await["status"], "skipped_paused");
    // resumed, it runs
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "resume"),
            ("integration", "deals"),
        ],
    )
    .await;
    assert!(!s.store.is_paused(Integration::Deals).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_csrf_token_is_403_and_changes_nothing() {
    let s = served(None).await;
    for form in [
        &[("action", "pause"), ("integration", "deals")][..],
        &[
            (
                "csrf",
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
            ("action", "pause"),
            ("integration", "deals"),
        ],
    ] {
        assert_eq!(s.post("/actions", form).await, 403);
    }
    assert_eq!(s.post("/log/ack", &[("all", "1")]).await, 403);
    assert!(!s.store.is_paused(Integration::Deals).await.unwrap());
    // a GET changes nothing either: there is no GET route for an action
    assert_eq!(
        s.get("/actions?action=pause&integration=deals").await.0,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_other_machines_can_reach_needs_its_token() {
    // without a token, an address other than loopback is refused before binding
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory());
    let h = common_runner();
    let console = Console::new(
        store,
        Arc::new(MappingConfig::default()),
        h,
        "sandbox",
        None,
    );
    let addr = "0.0.0.0:0".parse().unwrap();
    match console.bind(addr).await {
        Err(prmsync_console::ConsoleError::Listen(ListenError::NeedsToken { .. })) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the console listened on 0.0.0.0 without a token"),
    }

    // with one, every request carries it
    let token = "a-long-console-token-for-tests";
    let s = served(Some(token)).await;
    assert_eq!(s.get("/").await.0, 401);
    assert_eq!(s.get("/log").await.0, 401);
    let with_header = s
        .http
        .get(format!("{}/", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_header.status().as_u16(), 200);
    let page = with_header.text().await.unwrap();
    // and no secret is rendered
    for secret in [token, SF_CLIENT_SECRET, PRM_TOKEN] {
        assert!(!page.contains(secret), "the page shows a secret");
    }
    // the first visit may carry it in the address: it moves to a cookie
    let first = s.get(&format!("/?token={token}")).await;
    assert_eq!(first.0, 303);
    let wrong = s.get("/?token=not-the-token-at-all").await;
    assert_eq!(wrong.0, 401);
}

/// A runner for a console that never runs anything.
fn common_runner() -> Arc<dyn prmsync_console::Runner> {
    struct Never;
    #[async_trait::async_trait]
    impl prmsync_console::Runner for Never {
        async fn run(
            &self,
            _: Integration,
            _: prmsync_engine::report::RunMode,
            _: String,
        ) -> prmsync_engine::report::RunReport {
            unreachable!("nothing runs in this test")
        }

        async fn sync_record(&self, _: &prmsync_engine::RecordRef) -> prmsync_console::RecordSync {
            unreachable!("nothing runs in this test")
        }
    }
    Arc::new(Never)
}

/// Salesforce whose change reads after the first wait until the test opens the gate: a
/// run syncs its first page of records, then waits for its second.
struct SecondPageGate {
    reads: AtomicUsize,
    gate: Semaphore,
}

#[async_trait]
impl CrmHooks for SecondPageGate {
    async fn before_change_read(&self) {
        if self.reads.fetch_add(1, Ordering::SeqCst) > 0 {
            drop(self.gate.acquire().await.expect("the gate stays open"));
        }
    }
}

/// Runs organizations from the page over `store` with two pages of Salesforce changes,
/// the second held back: `/runs.json` shows the records done so far (as the run's record
/// in the store has them) while the run waits, then its final counts; and the Sync
/// Manager charts the run and the API usage it saw.
async fn a_run_shows_its_records_done_while_it_runs(store: Arc<dyn Store>) {
    let gate = Arc::new(SecondPageGate {
        reads: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let mut mapping = MappingConfig::default();
    // The breaker lets every change through (it would read the pages ahead).
    mapping.sync.mass_change_percent = 100;
    let s = served_with(
        store,
        None,
        Engine {
            crm_hooks: Some(gate.clone()),
            query_batch_size: Some(200),
            mapping: Some(mapping),
        },
    )
    .await;
    // GIVEN 250 more Accounts flagged for the PRM: with the sandbox's, two pages of 200
    for n in 0..250 {
        let fields = json!({
            "Name": format!("Progress {n} Ltd"),
            "PRM_Sync__c": true,
            "PRM_Organization_Status__c": "Active Partner",
        });
        s._sandbox
            .salesforce
            .insert("Account", fields.as_object().unwrap().clone());
    }
    let flagged = s
        ._sandbox
        .salesforce
        .records("Account")
        .iter()
        .filter(|a| a["PRM_Sync__c"] == true)
        .count() as u64;
    assert!((201..=400).contains(&flagged), "two pages: {flagged}");
    // WHEN organizations runs from the page
    let csrf = s.csrf().await;
    s.post(
        "/actions",
        &[
            ("csrf", &csrf),
            ("action", "run"),
            ("integration", "organizations"),
        ],
    )
    .await;
    // THEN while it waits for its second page, /runs.json shows it running with the
    // records of its first page done
    let deadline = Instant::now() + Duration::from_secs(240);
    let running = loop {
        let (_, body) = s.get("/runs.json").await;
        let runs: Value = serde_json::from_str(&body).unwrap();
        let run = &runs["organizations"];
        assert!(
            run["finished_at"].is_null(),
            "the run ended before its second page was let through: {runs}"
        );
        if run["records_done"].as_u64().unwrap_or(0) > 0 {
            break run.clone();
        }
        assert!(Instant::now() < deadline, "no progress shown: {runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = running["records_done"].as_u64().unwrap();
    let record = s
        .store
        .last_run(Integration::Organizations)
        .await
        .unwrap()
        .expect("the run's record");
    assert_eq!(record.run_id, running["run_id"].as_str().unwrap());
    assert_eq!(record.status, RunStatus::Running);
    assert_eq!(record.finished_at, None);
    assert_eq!(
        record.counts.records_done(),
        done,
        "what the store has: {record:?}"
    );
    assert!(
        done <= 2 * 200,
        "one page of 200 done (each written at most both ways): {done}"
    );
    assert_eq!(
        gate.reads.load(Ordering::SeqCst),
        2,
        "the second page waits"
    );
    // and once the second page is let through, the run ends with every record done
    gate.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let finished = s.finished_run("organizations").await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let total = finished["records_done"].as_u64().unwrap();
    assert!(total > done && total >= flagged, "{finished}");
    let record = s
        .store
        .last_run(Integration::Organizations)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.counts.records_done(), total);
    // the Sync Manager charts the run, and the API usage it saw last
    let usage = record
        .api_usage
        .expect("the run record keeps Salesforce's API usage");
    assert!(usage.used > 0 && usage.max >= usage.used, "{usage:?}");
    let (_, page) = s.get("/").await;
    assert!(
        page.contains(&format!(
            "organizations: 1 run in the last 7 days wrote {} records in all",
            record.counts.writes()
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"data-chart="runs-organizations""#),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "Salesforce API usage: {} of the daily allocation of {} calls",
            usage.used, usage.max
        )),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_the_page_shows_its_records_done_as_it_goes() {
    a_run_shows_its_records_done_while_it_runs(Arc::new(SqliteStore::in_memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_the_page_shows_its_records_done_as_it_goes_on_aws() {
    if common::aws::endpoint().is_none() {
        return;
    }
    let moto = common::aws::Moto::new(5).await;
    a_run_shows_its_records_done_while_it_runs(moto.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_filtered_by_time() {
    let s = served(None).await;
    let entry = |id: &str, age: chrono::Duration| prmsync_engine::LogEntry {
        id: id.into(),
        time: chrono::Utc::now() - age,
        run_id: "run-time".into(),
        integration: Integration::Deals,
        level: prmsync_mapping::Level::Error,
        code: prmsync_mapping::LogCode::DealNoPrimaryContact,
        object: None,
        crm_id: Some(format!("006{id}")),
        prm_id: None,
        link: None,
        message: format!("entry {id}"),
        fix: "a fix".into(),
        details: Value::Null,
        acknowledged: false,
    };
    s.store
        .append(&[
            entry("recent", chrono::Duration::minutes(10)),
            entry("yesterday", chrono::Duration::hours(30)),
            entry("lastmonth", chrono::Duration::days(20)),
        ])
        .await
        .unwrap();
    let shown = |page: &str| {
        ["recent", "yesterday", "lastmonth"]
            .into_iter()
            .filter(|id| page.contains(&format!("entry {id}")))
            .collect::<Vec<_>>()
    };
    let (_, all) = s.get("/log?run=run-time").await;
    assert_eq!(shown(&all), ["recent", "yesterday", "lastmonth"]);
    let (_, day) = s.get("/log?run=run-time&since=24h").await;
    assert_eq!(shown(&day), ["recent"]);
    let (_, week) = s.get("/log?run=run-time&since=7d").await;
    assert_eq!(shown(&week), ["recent", "yesterday"]);
    assert!(week.contains(r#"<option value="7d" selected>"#), "{week}");
    // acknowledging all that match acknowledges only those of the time asked for
    let csrf = s.csrf().await;
    s.post(
        "/log/ack",
        &[
            ("csrf", &csrf),
            ("all", "1"),
            ("run", "run-time"),
            ("since", "24h"),
        ],
    )
    .await;
    let (_, open) = s.get("/log?run=run-time&open=1").await;
    assert_eq!(shown(&open), ["yesterday", "lastmonth"]);
    let (status, bad) = s.get("/log?since=soon").await;
    assert_eq!(status, 400);
    assert!(bad.contains("30m, 2h or 7d"), "{bad}");
}
