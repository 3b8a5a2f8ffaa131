//! The CLI as an operator uses it: `prmsync sync --sandbox --json` twice on a fresh state
//! directory, the log, status, pause/resume, and bad input.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn prmsync(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .args(args)
        .arg("--state-dir")
        .arg(dir.join(".prmsync"))
        .current_dir(dir)
        .env_remove("SALESFORCE_LOGIN_URL")
        .env_remove("PRM_API_URL")
        .env_remove("PRMSYNC_STATE_DIR")
        .output()
        .expect("prmsync runs")
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON object: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(lines[0]).expect("valid JSON")
}

fn sum(summary: &Value, path: &[&str]) -> u64 {
    summary["integrations"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| path.iter().fold(i, |v, k| &v[*k]).as_u64().unwrap())
        .sum()
}

#[test]
fn sandbox_sync_creates_on_both_sides_then_settles() {
    let dir = tempfile::tempdir().unwrap();
    let first = prmsync(dir.path(), &["sync", "--sandbox", "--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let s = json_of(&first);
    for key in [
        "run_id",
        "mode",
        "dry_run",
        "integrations",
        "api_calls",
        "duration_ms",
    ] {
        assert!(s.get(key).is_some(), "summary has {key}: {s}");
    }
    assert_eq!(s["mode"], "full");
    assert!(sum(&s, &["created", "crm"]) > 50, "{s}");
    assert!(sum(&s, &["created", "prm"]) > 50, "{s}");
    for name in ["organizations", "people"] {
        let i = &s["integrations"][name];
        for key in [
            "deleted_marked",
            "disconnected",
            "conflicts",
            "unchanged",
            "errors",
        ] {
            assert!(i[key].is_u64(), "{name}.{key}: {s}");
        }
    }
    // the sample data includes records that fail with data errors
    assert!(sum(&s, &["errors"]) >= 3, "{s}");

    let second = prmsync(dir.path(), &["sync", "--sandbox", "--json"]);
    let s2 = json_of(&second);
    assert_eq!(s2["mode"], "incremental");
    assert_eq!(
        sum(&s2, &["created", "crm"]) + sum(&s2, &["created", "prm"]),
        0,
        "{s2}"
    );
    assert_eq!(
        sum(&s2, &["updated", "crm"]) + sum(&s2, &["updated", "prm"]),
        0,
        "{s2}"
    );
    assert!(
        s2["api_calls"]["salesforce"].as_u64().unwrap() <= 4,
        "auth and one query per object (Account, Contact, Opportunity): {s2}"
    );
    assert!(
        s2["api_calls"]["prm"].as_u64().unwrap() <= 3,
        "one list per collection: {s2}"
    );

    // the log lists the rejections with their fix, one JSON object per line
    let log = prmsync(
        dir.path(),
        &["log", "--sandbox", "--level", "error", "--json"],
    );
    assert!(log.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|e| e["code"] == "crm_data_error"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|e| e["code"] == "unmapped_value"));
    for e in &lines {
        assert_eq!(e["level"], "error");
        assert!(!e["fix"].as_str().unwrap().is_empty());
        assert!(e["message"].as_str().unwrap().len() > 20);
    }
    // acknowledging hides them from --unacknowledged
    let ack = prmsync(dir.path(), &["log", "ack", "--all", "--sandbox"]);
    assert!(
        ack.status.success(),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
    let open = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--level",
            "error",
            "--unacknowledged",
            "--json",
        ],
    );
    assert!(String::from_utf8_lossy(&open.stdout).trim().is_empty());

    // deals: every rejection listed with code, message, fix and the Opportunity's link
    let deals = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--integration",
            "deals",
            "--level",
            "error",
            "--json",
        ],
    );
    let deals: Vec<Value> = String::from_utf8_lossy(&deals.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        deals.len() >= 12,
        "acknowledged entries are still listed: {}",
        deals.len()
    );
    let all = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--integration",
            "deals",
            "--code",
            "deal_user_inactive",
            "--json",
        ],
    );
    let entry: Value =
        serde_json::from_str(String::from_utf8_lossy(&all.stdout).lines().next().unwrap()).unwrap();
    assert!(
        entry["link"]
            .as_str()
            .unwrap()
            .contains("/lightning/r/Opportunity/"),
        "{entry}"
    );
    assert!(entry["message"].as_str().unwrap().contains("pending"));

    // status
    let status = prmsync(dir.path(), &["status", "--sandbox", "--json"]);
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    let orgs = st["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"] == "organizations")
        .unwrap();
    assert_eq!(orgs["state"], "active");
    assert_eq!(orgs["last_run"]["status"], "succeeded");
    assert!(orgs["links"]["linked"].as_u64().unwrap() > 20);
}

#[test]
fn pause_stops_sync_until_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = prmsync(dir.path(), &["pause", "people", "--sandbox"]);
    assert!(p.status.success());
    assert!(String::from_utf8_lossy(&p.stdout).contains("paused"));
    let s = json_of(&prmsync(dir.path(), &["sync", "--sandbox", "--json"]));
    assert_eq!(s["integrations"]["people"]["status"], "skipped_paused");
    assert_eq!(s["integrations"]["organizations"]["status"], "succeeded");
    assert_eq!(s["integrations"]["people"]["created"]["prm"], 0);
    assert!(
        s["integrations"]["organizations"]["created"]["prm"]
            .as_u64()
            .unwrap()
            > 10
    );
    prmsync(dir.path(), &["resume", "people", "--sandbox"]);
    let s = json_of(&prmsync(dir.path(), &["sync", "--sandbox", "--json"]));
    assert_eq!(s["integrations"]["people"]["status"], "succeeded");
    assert!(
        s["integrations"]["people"]["created"]["prm"]
            .as_u64()
            .unwrap()
            > 50
    );
}

#[test]
fn dry_run_plans_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = json_of(&prmsync(
        dir.path(),
        &[
            "sync",
            "--sandbox",
            "--json",
            "--dry-run",
            "--integration",
            "organizations",
        ],
    ));
    assert_eq!(s["dry_run"], true);
    let planned = s["integrations"]["organizations"]["planned"]
        .as_array()
        .unwrap();
    assert!(planned.len() > 20);
    assert!(
        s["integrations"]["organizations"]["created"]["prm"]
            .as_u64()
            .unwrap()
            > 10
    );
    // nothing was written: a real run still creates everything
    let s = json_of(&prmsync(
        dir.path(),
        &[
            "sync",
            "--sandbox",
            "--json",
            "--integration",
            "organizations",
        ],
    ));
    assert!(
        s["integrations"]["organizations"]["created"]["prm"]
            .as_u64()
            .unwrap()
            > 10
    );
}

#[test]
fn without_a_target_sync_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = prmsync(dir.path(), &["sync"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prmsync sync --sandbox") && err.contains("SALESFORCE_CLIENT_ID"),
        "{err}"
    );
}

#[test]
fn a_config_file_with_plain_http_is_refused_naming_the_url_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prmsync.toml"),
        "[salesforce]\nlogin_url = \"http://acme.my.salesforce.com\"\n\n[prm]\napi_url = \"https://prm.example.com\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .args(["sync", "--config", "prmsync.toml", "--state-dir"])
        .arg(dir.path().join(".prmsync"))
        .current_dir(dir.path())
        .env_remove("SALESFORCE_LOGIN_URL")
        .env_remove("PRM_API_URL")
        .env_remove("SALESFORCE_USERNAME")
        .env_remove("SALESFORCE_JWT_KEY_FILE")
        .env("SALESFORCE_CLIENT_ID", "id")
        .env("SALESFORCE_CLIENT_SECRET", "s3cr3t-value")
        .env("PRM_API_TOKEN", "t0ken-value")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Salesforce login URL http://acme.my.salesforce.com")
            && err.contains("unencrypted")
            && err.contains("https://")
            && err.contains("[salesforce] login_url"),
        "{err}"
    );
    assert!(
        !err.contains("s3cr3t-value") && !err.contains("t0ken-value"),
        "{err}"
    );
}

#[test]
fn a_malformed_mapping_file_is_rejected_with_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mapping.toml"),
        "[[people.fields]]\nprm = \"email\"\ncrm = \"Email\"\ndirection = \"upwards\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prmsync.toml"),
        "mapping = \"mapping.toml\"\n",
    )
    .unwrap();
    let out = prmsync(dir.path(), &["sync", "--config", "prmsync.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mapping.toml") && err.contains("line 4") && err.contains("fix:"),
        "{err}"
    );
    let check = prmsync(dir.path(), &["mapping", "check", "mapping.toml"]);
    assert!(!check.status.success());
    // secrets never appear in errors
    let out = Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .args(["sync", "--state-dir"])
        .arg(dir.path().join("s"))
        .env("SALESFORCE_LOGIN_URL", "http://127.0.0.1:9")
        .env("SALESFORCE_CLIENT_ID", "id")
        .env("SALESFORCE_CLIENT_SECRET", "s3cr3t-value")
        .env("PRM_API_URL", "http://127.0.0.1:9")
        .env("PRM_API_TOKEN", "t0ken-value")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("s3cr3t-value") && !all.contains("t0ken-value"),
        "{all}"
    );
}

#[test]
fn deal_rejections_are_listed_counted_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = json_of(&prmsync(
        dir.path(),
        &["sync", "--sandbox", "--json", "--integration", "deals"],
    ));
    assert_eq!(
        s["integrations"]["deals"]["created"]["prm"], 2,
        "the two valid Opportunities: {s}"
    );
    let out = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--integration",
            "deals",
            "--level",
            "error",
            "--json",
        ],
    );
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    for code in [
        "deal_no_account",
        "deal_no_primary_contact",
        "deal_partner_email_missing",
        "deal_user_not_found",
        "deal_user_inactive",
        "deal_user_is_contact",
        "deal_user_lacks_deal_registration",
        "deal_user_in_distributor_org",
        "deal_distributor_email_missing",
        "deal_user_in_partner_org",
        "deal_owner_type_unknown",
        "deal_value_unmapped",
    ] {
        assert!(codes.contains(code), "{code} missing from {codes:?}");
    }
    for e in &entries {
        for key in [
            "time",
            "run_id",
            "integration",
            "level",
            "code",
            "object",
            "crm_id",
            "prm_id",
            "link",
            "message",
            "fix",
            "details",
        ] {
            assert!(e.get(key).is_some(), "{key} in {e}");
        }
        assert!(e["link"].as_str().unwrap().ends_with("/view"));
    }
    let status: Value =
        serde_json::from_slice(&prmsync(dir.path(), &["status", "--sandbox", "--json"]).stdout)
            .unwrap();
    let deals = status["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"] == "deals")
        .unwrap()
        .clone();
    assert_eq!(
        deals["unacknowledged_errors"].as_u64().unwrap(),
        entries.len() as u64
    );
    // acknowledge one by id
    let id = entries[0]["id"].as_str().unwrap();
    assert!(prmsync(dir.path(), &["log", "ack", id, "--sandbox"])
        .status
        .success());
    let open = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--integration",
            "deals",
            "--level",
            "error",
            "--unacknowledged",
            "--json",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&open.stdout).lines().count(),
        entries.len() - 1
    );
    // sync-record on a rejected Opportunity says why, with the fix
    let opp = entries
        .iter()
        .find(|e| e["code"] == "deal_no_primary_contact")
        .unwrap()["crm_id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = prmsync(dir.path(), &["sync-record", &opp, "--sandbox"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("deal_no_primary_contact") && text.contains("fix:"),
        "{text}"
    );
}

#[test]
fn bench_reports_every_phase_with_the_agreed_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .args([
            "bench",
            "--accounts",
            "40",
            "--contacts",
            "160",
            "--opportunities",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let phases = v["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first_import", "unchanged", "one_percent_changed"]);
    for p in phases {
        for key in [
            "name",
            "records",
            "wall_ms",
            "records_per_s",
            "salesforce_calls",
            "salesforce_min_calls",
            "prm_calls",
            "peak_rss_mb",
        ] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
    }
    assert!(phases[0]["records"].as_u64().unwrap() >= 205);
    assert_eq!(
        phases[1]["salesforce_writes"], 0,
        "an unchanged run writes nothing: {}",
        phases[1]
    );
    assert!(
        phases[2]["salesforce_writes"].as_u64().unwrap() >= 1,
        "the 1% change is written: {}",
        phases[2]
    );
}

/// `prmsync bench` with these arguments (state kept in SQLite: no AWS_ENDPOINT_URL).
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .arg("bench")
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&out)
}

#[test]
fn bench_measures_the_lambda_path_through_the_planner_and_workers() {
    let v = bench(&[
        "--accounts",
        "20",
        "--contacts",
        "40",
        "--deployment",
        "lambda",
        "--json",
    ]);
    assert_eq!(v["deployment"], "lambda", "{v}");
    assert_eq!(v["store"], "sqlite (in memory)", "{v}");
    let phases = v["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first_import", "unchanged", "one_percent_changed"]);
    for p in phases {
        for key in [
            "records",
            "records_per_s",
            "salesforce_calls",
            "salesforce_reads",
            "salesforce_writes",
            "prm_calls",
            "peak_rss_mb",
            "chunks",
            "plan_ms",
            "salesforce_by_kind",
        ] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
        assert_eq!(p["records"], 60, "every record goes through a chunk: {p}");
        assert!(p["chunks"].as_u64().unwrap() >= 2, "{p}");
    }
    assert_eq!(phases[1]["salesforce_writes"], 0, "{}", phases[1]);
}

#[test]
fn bench_of_both_deployments_gives_the_ratio_of_salesforce_calls() {
    let v = bench(&[
        "--accounts",
        "20",
        "--contacts",
        "40",
        "--deployment",
        "both",
        "--json",
    ]);
    for d in ["one_machine", "lambda"] {
        assert_eq!(
            v["deployments"][d]["phases"].as_array().map(Vec::len),
            Some(3),
            "{v}"
        );
    }
    let rows = v["comparison"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    for r in rows {
        let (one, lambda) = (
            r["one_machine_salesforce_calls"].as_f64().unwrap(),
            r["lambda_salesforce_calls"].as_f64().unwrap(),
        );
        assert_eq!(r["ratio"], ((lambda / one * 100.0).round() / 100.0), "{r}");
        assert!(r["salesforce_kinds_that_differ"].is_object(), "{r}");
    }
    // An unchanged run reads the same pages either way (below the Bulk API threshold).
    assert!(rows[1]["ratio"].as_f64().unwrap() <= 1.10, "{}", rows[1]);
}

/// The target of the Lambda path's first import: within 1.10x the Salesforce calls of the
/// one-machine run.
#[test]
fn bench_lambda_first_import_is_within_1_10x_of_one_machine() {
    let v = bench(&[
        "--accounts",
        "20",
        "--contacts",
        "40",
        "--deployment",
        "both",
        "--json",
    ]);
    let first = &v["comparison"][0];
    assert!(first["ratio"].as_f64().unwrap() <= 1.10, "{first}");
}

#[test]
fn sandbox_serve_prints_reachable_ports_and_reset_starts_over() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prmsync"))
        .args(["sandbox", "serve", "--state-dir"])
        .arg(dir.path().join(".prmsync"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    while urls.len() < 2 {
        let line = lines.next().expect("serve prints both addresses").unwrap();
        if let Some(url) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
        {
            urls.push(url.to_string());
        }
    }
    // both answer on loopback: the PRM asks for its token, Salesforce for a session
    for url in &urls {
        let hostport = url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(hostport).unwrap();
        write!(
            stream,
            "GET /v1/settings HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{url}: {answer}");
    }
    child.kill().unwrap();
    let _ = child.wait();

    // a sync keeps its data under the state directory; reset removes it
    assert!(prmsync(
        dir.path(),
        &[
            "sync",
            "--sandbox",
            "--json",
            "--integration",
            "organizations"
        ]
    )
    .status
    .success());
    assert!(dir
        .path()
        .join(".prmsync/sandbox/data/salesforce.json")
        .exists());
    let reset = prmsync(dir.path(), &["sandbox", "reset"]);
    assert!(reset.status.success());
    assert!(!dir.path().join(".prmsync/sandbox").exists());
    let again = json_of(&prmsync(
        dir.path(),
        &[
            "sync",
            "--sandbox",
            "--json",
            "--integration",
            "organizations",
        ],
    ));
    assert_eq!(
        again["mode"], "full",
        "after a reset the sandbox starts over"
    );
}

/// `status --json` of one integration.
fn status_of(dir: &Path, integration: &str) -> Value {
    let out = prmsync(dir, &["status", "--sandbox", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&out)["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["integration"] == integration)
        .unwrap_or_else(|| panic!("{integration} in the status"))
        .clone()
}

#[test]
fn status_after_a_sync_of_every_integration_shows_each_ones_own_run() {
    let dir = tempfile::tempdir().unwrap();
    // GIVEN one sync of every integration (one run id)
    let sync = json_of(&prmsync(dir.path(), &["sync", "--sandbox", "--json"]));
    let run_id = sync["run_id"].as_str().unwrap();
    let created = |i: &str| sync["integrations"][i]["created"]["prm"].as_u64().unwrap();
    assert_ne!(
        created("organizations"),
        created("people"),
        "the integrations' counts differ, so that they cannot be mistaken for one another"
    );
    // WHEN status is asked
    // THEN each integration shows its own record of the run
    for i in ["organizations", "people", "deals"] {
        let last = &status_of(dir.path(), i)["last_run"];
        assert_eq!(last["run_id"], run_id, "{i}: {last}");
        assert_eq!(last["status"], sync["integrations"][i]["status"], "{i}");
        let counts = &last["counts"];
        for key in ["created", "updated"] {
            assert_eq!(counts[key], sync["integrations"][i][key], "{i} {key}");
        }
        for key in ["unchanged", "errors", "conflicts"] {
            assert_eq!(counts[key], sync["integrations"][i][key], "{i} {key}");
        }
    }
    let text = prmsync(dir.path(), &["status", "--sandbox"]);
    let text = String::from_utf8_lossy(&text.stdout);
    for i in ["organizations", "people", "deals"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(i))
            .unwrap_or_else(|| panic!("a row for {i}: {text}"));
        assert!(!row.contains("never"), "{i} ran: {row}");
    }
}

#[test]
fn status_shows_where_an_unfinished_run_stands() {
    use prmsync_engine::ports::ChangeFrom;
    use prmsync_engine::report::Counts;
    use prmsync_engine::store::{ChunkRecord, Cursors, PlanCheckpoint, RunChunks, SideProgress};
    use prmsync_mapping::Integration;

    let dir = tempfile::tempdir().unwrap();
    let started = chrono::Utc::now() - chrono::Duration::minutes(4);
    let checkpoint = |run_id: &str, planned: bool| PlanCheckpoint {
        run_id: run_id.into(),
        mode: prmsync_engine::RunMode::Full,
        started_at: started,
        crm: SideProgress {
            from: ChangeFrom::default(),
            newest: None,
            done: planned,
            page: None,
        },
        prm: SideProgress::default(),
        records: 500,
        chunks: 3,
        invocations: 2,
        planned,
        then: Vec::new(),
        allow_mass_change: false,
    };
    // GIVEN organizations planned (3 chunks queued, 1 done) and people still planning
    {
        let store =
            prmsync_state_sqlite::SqliteStore::open(&dir.path().join(".prmsync").join("sandbox"))
                .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let orgs = Integration::Organizations;
            store
                .set_checkpoint(orgs, Some(&checkpoint("run-drain", true)))
                .await
                .unwrap();
            let chunks: Vec<ChunkRecord> = (0..3)
                .map(|number| ChunkRecord {
                    integration: orgs,
                    run_id: "run-drain".into(),
                    number,
                    crm_ids: vec![format!("001D{number}")],
                    prm_ids: Vec::new(),
                    done: false,
                    counts: Counts::default(),
                    held: Vec::new(),
                })
                .collect();
            store.add_chunks(&chunks).await.unwrap();
            store
                .finish_chunk(orgs, "run-drain", 1, &Counts::default(), &[])
                .await
                .unwrap();
            store
                .set_checkpoint(Integration::People, Some(&checkpoint("run-plan", false)))
                .await
                .unwrap();
        });
    }
    // WHEN status is asked
    let orgs = status_of(dir.path(), "organizations");
    let people = status_of(dir.path(), "people");
    // THEN it shows each unfinished run
    let p = &orgs["run_in_progress"];
    assert_eq!(p["run_id"], "run-drain", "{orgs}");
    assert_eq!(p["planned"], true);
    assert_eq!(
        (p["chunks_done"].as_u64(), p["chunks_queued"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(p["records_queued"], 500);
    assert!(p["started_at"].as_str().is_some());
    let p = &people["run_in_progress"];
    assert_eq!(
        (p["run_id"].as_str(), p["planned"].as_bool()),
        (Some("run-plan"), Some(false))
    );
    assert!(p["chunks_done"].is_null(), "{p}");
    assert!(status_of(dir.path(), "deals")["run_in_progress"].is_null());
    let text = prmsync(dir.path(), &["status", "--sandbox"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let line = |i: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(i) && l.contains("run "))
            .unwrap_or_else(|| panic!("a progress line for {i}: {text}"))
            .to_string()
    };
    let orgs_line = line("organizations");
    assert!(
        orgs_line.contains("run-drain")
            && orgs_line.contains("1 of 3 chunks done")
            && orgs_line.contains("500 records queued"),
        "{orgs_line}"
    );
    let people_line = line("people");
    assert!(
        people_line.contains("run-plan") && people_line.contains("planning under way"),
        "{people_line}"
    );
}

/// Account's or Contact's PRM Id as a hand-made field might be: External ID and Unique, but
/// matching values ignoring case.
fn case_insensitive_prm_id() -> prmsync_simulators::salesforce::FieldDef {
    use prmsync_simulators::salesforce::{FieldDef, FieldType};
    FieldDef::new("PRM_Id__c", FieldType::String)
        .label("PRM Id")
        .external_id()
}

#[test]
fn mapping_check_against_the_sandbox_names_a_case_insensitive_prm_id_field_and_sync_stops_on_it() {
    use prmsync_simulators::sandbox::Sandbox;

    // GIVEN the sandbox as seeded: its PRM Id fields are right
    let dir = tempfile::tempdir().unwrap();
    let ok = prmsync(dir.path(), &["mapping", "check", "--sandbox"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("the built-in mapping: valid"), "{stdout}");
    for object in ["Account", "Contact", "Opportunity"] {
        assert!(stdout.contains(&format!("{object}: fits")), "{stdout}");
    }

    // WHEN its Account PRM Id field matches values ignoring case
    let data = dir.path().join(".prmsync").join("sandbox").join("data");
    let sandbox = Sandbox::load_or_seed(&data).unwrap();
    sandbox
        .salesforce
        .add_field("Account", case_insensitive_prm_id());
    sandbox.save(&data).unwrap();

    // THEN the check names the object, the field, what is missing and the fix, and exits
    // with the setup status
    let out = prmsync(dir.path(), &["mapping", "check", "--sandbox"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("Account field PRM_Id__c is not Case-sensitive")
            && stdout
                .contains("Setup > Object Manager > Account > Fields & Relationships > PRM Id")
            && stdout.contains("Treat \"ABC\" and \"abc\" as different values (case sensitive)"),
        "{stdout}"
    );
    assert!(stdout.contains("Contact: fits"), "{stdout}");
    // and the first sync stops on it before writing anything
    let sync = prmsync(dir.path(), &["sync", "--sandbox", "--json"]);
    assert_eq!(
        sync.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let summary = json_of(&sync);
    let orgs = &summary["integrations"]["organizations"];
    assert_eq!(orgs["status"], "failed", "{summary}");
    assert!(
        orgs["message"]
            .as_str()
            .is_some_and(|m| m.contains("Account field PRM_Id__c is not Case-sensitive")),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_check_against_a_connection_file_needs_no_prm_settings() {
    use prmsync_simulators::salesforce::{SalesforceSim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

    // GIVEN a Salesforce org whose Contact PRM Id field is neither Unique nor
    // case-sensitive, and a connection file naming no mapping
    let sf = SalesforceSim::new();
    sf.add_field("Contact", case_insensitive_prm_id().not_unique());
    let url = sf.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prmsync.toml"), "").unwrap();

    // WHEN the built-in mapping is checked against it
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_prmsync"))
            .args(["mapping", "check", "--config", "prmsync.toml"])
            .current_dir(&cwd)
            .env("SALESFORCE_LOGIN_URL", &url)
            .env("SALESFORCE_CLIENT_ID", DEFAULT_CLIENT_ID)
            .env("SALESFORCE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
            .env_remove("SALESFORCE_USERNAME")
            .env_remove("SALESFORCE_JWT_KEY_FILE")
            .env_remove("PRM_API_URL")
            .env_remove("PRM_API_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    // THEN it names what Contact's field lacks
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the mapping of prmsync.toml: valid"),
        "{stdout}"
    );
    assert!(stdout.contains("Account: fits"), "{stdout}");
    assert!(
        stdout.contains("Contact field PRM_Id__c is not Unique/Case-sensitive")
            && stdout
                .contains("Setup > Object Manager > Contact > Fields & Relationships > PRM Id"),
        "{stdout}"
    );
}

#[test]
fn reconcile_runs_now_reports_drift_per_object_and_a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(prmsync(dir.path(), &["sync", "--sandbox", "--json"])
        .status
        .success());

    // a dry run: every integration reconciled, its drift counted, nothing written
    let dry = prmsync(
        dir.path(),
        &["reconcile", "--sandbox", "--json", "--dry-run"],
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let s = json_of(&dry);
    assert_eq!(
        (&s["mode"], &s["dry_run"]),
        (&Value::from("reconcile"), &Value::from(true))
    );
    for name in ["organizations", "people", "deals"] {
        let i = &s["integrations"][name];
        assert_eq!(i["mode"], "reconcile", "{name}: {s}");
        assert!(i["drift"].is_u64(), "{name}.drift: {s}");
        assert!(i["planned"].is_array(), "{name}.planned: {s}");
    }

    // for real, one integration
    let out = prmsync(
        dir.path(),
        &[
            "reconcile",
            "--sandbox",
            "--json",
            "--integration",
            "organizations",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json_of(&out);
    assert_eq!(s["dry_run"], false);
    let names: Vec<&String> = s["integrations"].as_object().unwrap().keys().collect();
    assert_eq!(names, vec!["organizations"]);
    assert!(s["integrations"]["organizations"]["drift"].is_u64(), "{s}");
    let log = prmsync(
        dir.path(),
        &[
            "log",
            "--sandbox",
            "--json",
            "--code",
            "reconcile_drift",
            "--integration",
            "organizations",
        ],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one entry per reconcile, the dry one included: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| l["code"] == "reconcile_drift"),
        "{lines:?}"
    );

    // the Sync Manager shows the setting and when everything was last read
    let status = json_of(&prmsync(dir.path(), &["status", "--sandbox", "--json"]));
    for row in status["integrations"].as_array().unwrap() {
        assert_eq!(row["reconcile"]["setting"], "daily", "{row}");
        assert!(row["reconcile"]["last"].is_string(), "{row}");
    }

    // the scheduled sync stays incremental: the last reconcile is not a day old
    let next = json_of(&prmsync(dir.path(), &["sync", "--sandbox", "--json"]));
    assert_eq!(next["mode"], "incremental", "{next}");
    assert!(next["integrations"]["organizations"].get("drift").is_none());

    // the table says what drift is
    let text = prmsync(
        dir.path(),
        &[
            "reconcile",
            "--sandbox",
            "--integration",
            "people",
            "--dry-run",
        ],
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.starts_with("reconcile run"), "{stdout}");
    assert!(stdout.contains("reconcile: drift "), "{stdout}");
}
