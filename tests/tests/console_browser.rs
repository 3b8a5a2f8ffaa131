//! The web console in a real browser (headless Chromium through chromedriver; the test
//! command installs Debian's `chromium` and `chromium-driver`), over the sandbox: the Sync
//! Manager lists the three integrations; Run Full Sync Now on deals is followed on the
//! page to its counts, and the page charts the runs and the API usage; the Integration Log shows the deal rejections with their fixes and
//! acknowledging one takes it off the open count; a record's page reports what Sync Now
//! did; a paused integration shows as paused and its next run is skipped. With
//! `PRMSYNC_UPDATE_SCREENSHOTS=1` the pages' screenshots are written to docs/screenshots/.

mod common;

use common::browser::Browser;
use common::console::served;

/// Keeps a screenshot of the page shown, as `docs/screenshots/<name>.png` when asked to.
async fn keep(b: &Browser, name: &str) {
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    if std::env::var_os("PRMSYNC_UPDATE_SCREENSHOTS").is_some() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_reads_acknowledges_syncs_and_pauses_in_a_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let s = served(None).await;

    // the Sync Manager lists the three integrations
    b.open(&format!("{}/", s.base)).await;
    assert_eq!(b.all("tbody tr[data-integration]").await.len(), 3);
    keep(&b, "sync-manager").await;

    // organizations and people first (Run Now), each followed to its result on the page
    for i in ["organizations", "people"] {
        b.open(&format!("{}/", s.base)).await;
        b.click(&format!("#select-{i}")).await;
        b.click("button[value=run]").await;
        b.wait_text(&format!("#run-{i}"), |t| t.starts_with("succeeded"))
            .await;
    }
    // WHEN deals are selected and Run Full Sync Now is pressed
    b.open(&format!("{}/", s.base)).await;
    b.click("#select-deals").await;
    b.click("button[value=full]").await;
    // THEN the page follows the run to its counts
    let result = b
        .wait_text("#run-deals", |t| !t.is_empty() && !t.starts_with("running"))
        .await;
    assert!(
        result.starts_with("succeeded: created 0 in Salesforce, ")
            && !result.contains(", 0 in the PRM"),
        "{result}"
    );
    // and, drawn again once the run ended, shows its result from the store and charts
    // each integration's runs and the API usage
    b.wait_text("tr[data-integration=deals] td[data-field=result]", |t| {
        t.starts_with("succeeded")
    })
    .await;
    let deals = b.text("figure[data-integration=deals] figcaption").await;
    assert!(
        deals.starts_with("deals: 1 run in the last 7 days wrote 2 records in all"),
        "{deals}"
    );
    assert_eq!(b.all("figure svg[role=img]").await.len(), 4);
    let usage = b.text("figure[data-chart-kind=api-usage] figcaption").await;
    assert!(
        usage.starts_with("Salesforce API usage: ")
            && usage.contains(" of the daily allocation of "),
        "{usage}"
    );
    keep(&b, "sync-manager-after-runs").await;

    // the Integration Log shows the deals refused, with their fixes
    b.open(&format!("{}/log?integration=deals&level=error", s.base))
        .await;
    let table = b.text("form[action='/log/ack'] table").await;
    assert!(table.contains("deal_no_primary_contact"), "{table}");
    assert!(
        table.contains("Fix: In Salesforce, add a Contact Role to the Opportunity"),
        "{table}"
    );
    keep(&b, "integration-log").await;
    // acknowledging one takes it off the open count
    let open = |t: &str| -> Option<u64> {
        t.split("by reason (")
            .nth(1)?
            .split(')')
            .next()?
            .parse()
            .ok()
    };
    let before = open(&b.text("#groups").await).unwrap();
    b.click("input[name=id]").await;
    b.click("form[action='/log/ack'] button:not([name])").await;
    b.wait_text("#groups", |t| open(t) == Some(before - 1))
        .await;

    // a record's page, from an entry, reports what Sync Now did
    b.open(&format!("{}/log?integration=organizations", s.base))
        .await;
    b.click("a[href^='/record?id=prm:organization:']").await;
    b.click("form[action='/record/sync'] button").await;
    b.wait_text("[data-field=done]", |t| {
        t.starts_with("Sync Now: succeeded")
    })
    .await;
    keep(&b, "record").await;

    // a paused integration shows as paused, and its next run is skipped
    b.open(&format!("{}/", s.base)).await;
    b.click("#select-deals").await;
    b.click("button[value=pause]").await;
    b.wait_text("tr[data-integration=deals] td[data-field=state]", |t| {
        t == "paused"
    })
    .await;
    b.click("#select-deals").await;
    b.click("button[value=run]").await;
    b.wait_text("#run-deals", |t| t.starts_with("skipped_paused"))
        .await;
    b.close().await;
}
