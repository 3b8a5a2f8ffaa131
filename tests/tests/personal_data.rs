//! Personal data in logs: a sync that meets conflicts, deals the PRM refuses, Salesforce
//! per-record errors and faults writes no seeded email, phone, name or secret to a JSON
//! log line, an Integration Log entry (SQLite and DynamoDB, read back as stored), the CLI's
//! output or a dry run's planned writes; the entries still say what happened, with the
//! values masked. With `[log] values = true` a conflict entry shows the values in full.
//!
//! In a test binary of its own: each test installs a tracing subscriber for its thread
//! (current-thread runtimes, so every event of the run reaches it).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::aws::{endpoint, Invocations, Moto};
use common::log_lines::Lines;
use common::*;
use prmsync_engine::store::IntegrationLog;
use prmsync_engine::store::LogEntry;
use prmsync_engine::{run_integration, LogFilter, RunMode, RunOptions};
use prmsync_lambda::handlers::{deal_import, full_sync};
use prmsync_lambda::Deps;
use prmsync_mapping::config::DEFAULT_MAPPING;
use prmsync_mapping::{Integration, LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;
use prmsync_state_sqlite::SqliteStore;
use serde_json::json;

const PRM_TOKEN: &str = "prm-token-S3CR3T-7781";
const SF_SECRET: &str = "sf-client-secret-S3CR3T-4410";
const EMAIL: &str = "zed.secretperson@pii-seed.example";
/// Refused by the PRM (no dot in the domain), stored as is in Salesforce.
const BAD_EMAIL: &str = "zed.secretperson@pii-seed";
const PHONE: &str = "+1 555 0199 4321";
const FIRST: &str = "Zebulon";
const LAST: &str = "Quintavius";

/// Every fragment that would give a seeded person or a secret away.
const FORBIDDEN: &[&str] = &[
    "secretperson",
    "Zebulon",
    "Quintavius",
    "555 0199",
    "0199 4321",
    "01994321",
    PRM_TOKEN,
    SF_SECRET,
    "S3CR3T",
];

/// The built-in mapping with the PRM winning conflicts (so the conflict run writes to
/// Salesforce, where a fault waits) and `[log] values` as given.
fn mapping(values: bool) -> MappingConfig {
    let src = DEFAULT_MAPPING
        .replace(
            "default_conflict = \"newest\"",
            "default_conflict = \"prm\"",
        )
        .replace("values = false", &format!("values = {values}"));
    let m = MappingConfig::parse(&src, "test mapping").unwrap();
    assert_eq!(m.log.values, values);
    m
}

/// Where the runs go: the one-machine engine on SQLite, or the Lambda handlers on moto.
enum Runner {
    Local,
    Aws(Box<OnAws>),
}

struct OnAws {
    aws: Moto,
    deps: Deps,
    invocations: Arc<Invocations>,
}

impl Runner {
    async fn sync(&self, h: &Harness) {
        match self {
            Runner::Local => {
                h.sync().await;
            }
            Runner::Aws(on) => {
                let OnAws {
                    aws,
                    deps,
                    invocations,
                } = on.as_ref();
                full_sync::handle(deps, json!({"integration": "all"}))
                    .await
                    .unwrap();
                aws.drain(deps, invocations, false).await;
            }
        }
    }

    async fn deals(&self, h: &Harness) {
        match self {
            Runner::Local => {
                h.sync_deals().await;
            }
            Runner::Aws(on) => {
                deal_import::handle(&on.deps, json!({})).await.unwrap();
            }
        }
    }

    fn log(&self, h: &Harness) -> Arc<dyn IntegrationLog> {
        match self {
            Runner::Local => h.store.clone(),
            Runner::Aws(on) => on.aws.store.clone(),
        }
    }
}

/// The ids of what [`seed`] put in.
struct Seeded {
    contact: String,
    opportunity: String,
}

/// A customer Account with the seeded person and a deal contact whose email the PRM
/// refuses; a PRM partner with a user who registers the deal; a PRM organization whose
/// street is too long for Salesforce.
fn seed(h: &Harness) -> Seeded {
    let p = &h.prm;
    let dr = p.insert(
        Collection::Groups,
        json!({"kind": "partner", "name": "Partner DR", "modules": ["deal_registration"]}),
    );
    let partner = p.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Partner Org"}),
    );
    p.insert(
        Collection::People,
        json!({"organization_id": partner, "kind": "user", "status": "active", "first_name": "Alice",
               "last_name": "Partner", "email": "alice@partner.example", "group_ids": [dr]}),
    );
    let street = format!("{FIRST} {LAST} Lane ").repeat(12);
    assert!(street.len() > 255);
    p.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Long Street Partners", "street": street}),
    );
    let customer = h.account("Seed Customer Co", Some("Active Partner"), json!({}));
    let contact = h.sf.insert(
        "Contact",
        obj(
            json!({"AccountId": customer, "FirstName": FIRST, "LastName": LAST,
                   "Email": EMAIL, "Phone": PHONE}),
        ),
    );
    let deal_contact = h.sf.insert(
        "Contact",
        obj(
            json!({"AccountId": customer, "FirstName": FIRST, "LastName": format!("{LAST}-Deal"),
                   "Email": BAD_EMAIL, "Phone": PHONE}),
        ),
    );
    let opportunity = h.sf.insert(
        "Opportunity",
        obj(json!({
            "Name": format!("{FIRST} {LAST} renewal"), "StageName": "Prospecting", "Amount": 5000,
            "CloseDate": "2026-12-31", "AccountId": customer, "PRM_Sync__c": true,
            "PRM_Export_Deal__c": true, "PRM_Partner_Email__c": "alice@partner.example",
        })),
    );
    h.sf.insert(
        "OpportunityContactRole",
        obj(
            json!({"OpportunityId": opportunity, "ContactId": deal_contact, "IsPrimary": true,
                   "Role": "Decision Maker"}),
        ),
    );
    Seeded {
        contact,
        opportunity,
    }
}

/// The seeded person edited on both sides between runs (the PRM last, and it wins).
fn edit_both_sides(h: &Harness, contact: &str) -> String {
    let person = h.prm_by_crm(Collection::People, contact);
    assert_eq!(person.len(), 1, "the seeded contact is linked: {person:?}");
    let person = person[0]["id"].as_str().unwrap().to_string();
    h.sf.update(
        "Contact",
        contact,
        obj(json!({"LastName": format!("{LAST}-Sf"), "Email": "zed.secretperson.sf@pii-seed.example",
                   "Phone": "+1 555 0199 4388"})),
    );
    h.prm.update(
        Collection::People,
        &person,
        json!({"last_name": format!("{LAST}-Prm"), "email": "zed.secretperson.prm@pii-seed.example",
               "phone": "+1 555 0199 4377"}),
    );
    person
}

/// The whole scenario: a first sync and deal import (rejections of both systems), then
/// conflicts met by a Salesforce validation error, a duplicate and passing faults.
async fn scenario(h: &Harness, runner: &Runner) -> Seeded {
    let s = seed(h);
    runner.sync(h).await;
    runner.deals(h).await;

    edit_both_sides(h, &s.contact);
    // Salesforce refuses the update the PRM's win makes, echoing the values in its message
    h.sf.faults().fail_record_write(
        &s.contact,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        &format!(
            "{FIRST} {LAST}-Prm cannot be reached at +1 555 0199 4377 or zed.secretperson.prm@pii-seed.example"
        ),
    );
    runner.sync(h).await;

    // the Salesforce update tried again meets a duplicate, then the PRM fails for a while
    h.sf.update(
        "Contact",
        &s.contact,
        obj(json!({"Title": format!("{FIRST} the buyer")})),
    );
    h.sf.faults().fail_record_write(
        &s.contact,
        "DUPLICATE_VALUE",
        &format!(
            "duplicate value found: Email duplicates value on record with id: {}",
            s.contact
        ),
    );
    h.prm
        .faults()
        .fail_nth(Some("people.update"), 1, 503, "internal");
    runner.sync(h).await;
    runner.sync(h).await;
    s
}

/// Where a fragment that must not be there was found.
fn leaks(what: &str, text: &str) -> Vec<String> {
    FORBIDDEN
        .iter()
        .filter(|f| text.contains(*f))
        .map(|f| {
            let at = text.find(f).unwrap();
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            let to = (at + f.len() + 80).min(text.len());
            let to = (to..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap();
            format!("{what} holds `{f}`: …{}…", &text[from..to])
        })
        .collect()
}

async fn entries(log: &dyn IntegrationLog) -> Vec<LogEntry> {
    log.entries(&LogFilter {
        limit: Some(10_000),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Asserts that the entries recorded what happened, with the values masked.
fn assert_recorded(entries: &[LogEntry], s: &Seeded, store: &str) {
    let of =
        |code: LogCode| -> Vec<&LogEntry> { entries.iter().filter(|e| e.code == code).collect() };
    let codes: Vec<&str> = entries.iter().map(|e| e.code.as_str()).collect();

    // conflicts: the field names, and the values masked
    let conflicts = of(LogCode::Conflict);
    let fields: Vec<&str> = conflicts
        .iter()
        .filter_map(|e| e.details["field"].as_str())
        .collect();
    for field in ["last_name", "email", "phone"] {
        assert!(
            fields.contains(&field),
            "{store}: a conflict on {field}: {conflicts:?}"
        );
    }
    let email = conflicts
        .iter()
        .find(|e| e.details["field"] == "email")
        .unwrap();
    assert_eq!(email.details["prm"], "z***@pii-seed.example", "{store}");
    assert_eq!(email.details["crm"], "z***@pii-seed.example", "{store}");
    assert!(
        email.message.contains("\"z***@pii-seed.example\""),
        "{store}: {}",
        email.message
    );
    let phone = conflicts
        .iter()
        .find(|e| e.details["field"] == "phone")
        .unwrap();
    assert_eq!(
        (&phone.details["prm"], &phone.details["crm"]),
        (&json!("***77"), &json!("***88")),
        "{store}"
    );
    assert!(conflicts
        .iter()
        .all(|e| e.crm_id.as_deref() == Some(s.contact.as_str())));

    // the deal the PRM refused: its code and field, the echoed email masked, no body
    let refused = of(LogCode::DealRejectedByPrm);
    assert_eq!(refused.len(), 1, "{store}: {codes:?}");
    let d = refused[0];
    assert_eq!(d.crm_id.as_deref(), Some(s.opportunity.as_str()));
    assert_eq!(
        d.details["code"], "validation_failed",
        "{store}: {}",
        d.details
    );
    assert!(d.details.get("body").is_none(), "{store}: {}", d.details);
    let fields = d.details["fields"].to_string();
    assert!(
        fields.contains("customer.email") && fields.contains("z***@pii-seed"),
        "{store}: {fields}"
    );
    assert!(d.message.contains("Opportunity Z*** ("), "{}", d.message);

    // the PRM refused the deal contact as a person: the field named, the value masked
    let prm_refused: Vec<String> = of(LogCode::PrmValidationFailed)
        .iter()
        .map(|e| format!("{} {}", e.message, e.details))
        .collect();
    assert!(
        prm_refused
            .iter()
            .any(|t| t.contains("email") && t.contains("'z***@pii-seed'")),
        "{store}: {prm_refused:?}"
    );

    // Salesforce's per-record errors: codes and fields kept, echoed values masked
    let crm_errors: Vec<String> = of(LogCode::CrmDataError)
        .iter()
        .map(|e| format!("{} {}", e.message, e.details))
        .collect();
    let has = |needle: &[&str]| {
        crm_errors
            .iter()
            .any(|t| needle.iter().all(|n| t.contains(n)))
    };
    assert!(
        has(&[
            "STRING_TOO_LONG",
            "BillingStreet",
            "data value too large: Z***"
        ]),
        "{store}: {crm_errors:?}"
    );
    assert!(
        has(&[
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "***77",
            "z***@pii-seed.example"
        ]),
        "{store}: {crm_errors:?}"
    );
    assert!(
        has(&["DUPLICATE_VALUE", "Email", &s.contact]),
        "{store}: {crm_errors:?}"
    );
}

/// `prmsync log` (JSON lines and the table) over a SQLite state directory, when the CLI
/// binary is built beside this test (`cargo test --workspace` builds it).
fn cli_log(state_dir: &Path) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("prmsync");
    if !bin.exists() {
        assert!(
            std::env::var_os("PRMSYNC_REQUIRE_AWS").is_none(),
            "the prmsync binary is not built at {}: run ./scripts/test.sh",
            bin.display()
        );
        eprintln!(
            "WARNING: `prmsync log` was NOT checked: build it with `cargo build -p prmsync-cli`"
        );
        return None;
    }
    let mut out = String::new();
    for args in [
        &["log", "--json", "--limit", "10000"][..],
        &["log", "--limit", "10000"],
    ] {
        let o = std::process::Command::new(&bin)
            .args(args)
            .arg("--state-dir")
            .arg(state_dir)
            .env_remove("PRMSYNC_STATE_DIR")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out.push_str(&String::from_utf8_lossy(&o.stdout));
        out.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    Some(out)
}

#[tokio::test]
async fn no_seeded_personal_data_or_secret_reaches_a_log_line_an_entry_or_the_output() {
    let (lines, _guard) = Lines::capture();
    let mut found = Vec::new();

    // GIVEN seeded people, a deal and secrets, synced on one machine into a SQLite state
    // directory
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::with_secrets(mapping(false), 2000, PRM_TOKEN, SF_SECRET).await;
    h.store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    // WHEN the scenario runs: conflicts, rejections of both systems, faults
    let s = scenario(&h, &Runner::Local).await;

    // THEN the entries say what happened, with the values masked
    let local = entries(h.store.as_ref()).await;
    assert_recorded(&local, &s, "SQLite");
    found.extend(leaks(
        "the SQLite log",
        &serde_json::to_string(&local).unwrap(),
    ));
    // and `prmsync log` prints no value
    if let Some(out) = cli_log(dir.path()) {
        assert!(
            out.contains("conflict") && out.contains("z***@pii-seed.example"),
            "{out}"
        );
        found.extend(leaks("`prmsync log`", &out));
    }
    // and a dry run's planned writes, as the CLI prints them, show no value
    h.sf.update(
        "Contact",
        &s.contact,
        obj(json!({"LastName": format!("{LAST}-Dry"), "Email": "zed.secretperson.dry@pii-seed.example"})),
    );
    let dry = run_integration(
        &h.ctx(),
        Integration::People,
        RunOptions {
            mode: RunMode::Incremental,
            dry_run: true,
            run_id: None,
            allow_mass_change: false,
        },
    )
    .await;
    let planned: Vec<_> = dry
        .planned
        .iter()
        .map(|w| w.shown(h.mapping.log.values()))
        .collect();
    let planned_text = serde_json::to_string(&planned).unwrap();
    assert!(
        planned_text.contains("z***@pii-seed.example") && planned_text.contains("Q***"),
        "{planned_text}"
    );
    found.extend(leaks("a dry run's planned writes", &planned_text));

    // AND the same scenario through the Lambda handlers leaves no value in DynamoDB
    if endpoint().is_some() {
        let h = Harness::with_secrets(mapping(false), 2000, PRM_TOKEN, SF_SECRET).await;
        let aws = Moto::new(3).await;
        let (deps, invocations) = aws.deps(h.ctx());
        let runner = Runner::Aws(Box::new(OnAws {
            aws,
            deps,
            invocations,
        }));
        let s = scenario(&h, &runner).await;
        let remote = entries(runner.log(&h).as_ref()).await;
        assert_recorded(&remote, &s, "DynamoDB");
        let Runner::Aws(on) = &runner else {
            unreachable!()
        };
        let items = on.aws.log_items().await;
        assert_eq!(items.len(), remote.len());
        found.extend(leaks("the DynamoDB log items", &format!("{items:?}")));
    }

    // AND no JSON log line holds a value, though the lines tell of the conflicts
    let json = lines.json();
    assert!(
        json.iter().any(|l| l["code"] == "conflict"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("z***@pii-seed.example"))),
        "no conflict line: {json:?}"
    );
    assert!(json.iter().any(|l| l["code"] == "deal_rejected_by_prm"));
    // and of the PRM fault the client waited out
    assert!(
        json.iter()
            .any(|l| l["message"] == "PRM call failed, retrying"),
        "no retry line: {json:?}"
    );
    for l in &json {
        found.extend(leaks("a JSON log line", &l.to_string()));
    }
    assert!(
        found.is_empty(),
        "personal data or secrets leaked:\n{}",
        found.join("\n")
    );
}

#[tokio::test]
async fn with_log_values_on_a_conflict_entry_shows_the_values_in_full() {
    let (lines, _guard) = Lines::capture();
    // GIVEN `[log] values = true` and the seeded person linked
    let h = Harness::with_secrets(mapping(true), 2000, PRM_TOKEN, SF_SECRET).await;
    let s = seed(&h);
    h.sync().await;

    // WHEN both sides edit them between runs
    edit_both_sides(&h, &s.contact);
    h.sync().await;

    // THEN the conflict entry and its log line show both values in full
    let conflicts = h.log(LogCode::Conflict).await;
    let email = conflicts
        .iter()
        .find(|e| e.details["field"] == "email")
        .unwrap_or_else(|| panic!("an email conflict: {conflicts:?}"));
    assert_eq!(
        email.details["prm"],
        "zed.secretperson.prm@pii-seed.example"
    );
    assert_eq!(email.details["crm"], "zed.secretperson.sf@pii-seed.example");
    assert!(email
        .message
        .contains("\"zed.secretperson.prm@pii-seed.example\""));
    assert!(lines.json().iter().any(|l| l["code"] == "conflict"
        && l["message"]
            .as_str()
            .is_some_and(|m| m.contains("zed.secretperson.sf@pii-seed.example"))));
    // and still no secret anywhere
    let all = serde_json::to_string(&entries(h.store.as_ref()).await).unwrap() + &lines.text();
    for secret in [PRM_TOKEN, SF_SECRET] {
        assert!(!all.contains(secret));
    }
}
