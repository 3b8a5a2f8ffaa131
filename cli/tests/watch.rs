//! `prmsync watch` as an operator runs it: it starts on the sandbox, logs its first cycle,
//! refuses a stale notification and syncs a signed one at once, stops on Ctrl-C (SIGINT)
//! with exit 0 and keeps the sandbox; a bad `--interval` is refused naming the flag. (`tests/tests/watch.rs` drives the loop in-process.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn prmsync(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_prmsync"));
    c.current_dir(dir)
        .env("PRMSYNC_STATE_DIR", dir.join(".prmsync"))
        .env_remove("SALESFORCE_LOGIN_URL")
        .env_remove("PRM_API_URL")
        .env_remove("PRM_WEBHOOK_SECRET");
    c
}

#[test]
fn watch_logs_its_first_cycle_and_stops_on_ctrl_c_keeping_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = prmsync(dir.path())
        .args([
            "watch",
            "--sandbox",
            "--interval",
            "1h",
            "--webhook-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prmsync starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l: &String| l.starts_with("cycle 1:")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no first cycle within 60 s: {lines:?}");
            }
        }
    }
    assert!(
        lines[0].starts_with("prmsync watch: organizations, people, deals every 3600 s;")
            && lines[0].contains("PRM notifications on http://127.0.0.1:"),
        "{lines:?}"
    );
    let cycle = lines.iter().find(|l| l.starts_with("cycle 1:")).unwrap();
    assert!(
        cycle.contains("organizations ") && cycle.contains("Salesforce calls"),
        "{cycle}"
    );

    // The PRM's notifications reach the loop through the binary's receiver: a stale
    // signature is refused, a signed one is synced at once (an hour before the next cycle).
    let address = lines[0]
        .split("PRM notifications on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the listening address")
        .to_string();
    let body = r#"{"event_id":"evt_cli_1","type":"organization.updated","id":"org_not_there"}"#;
    assert_eq!(post(&address, body, "t=1,v1=00"), 401);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = prmsync_prm::notification::sign(
        &[prmsync_simulators::sandbox::PRM_WEBHOOK_SECRET],
        now,
        body.as_bytes(),
    );
    assert_eq!(post(&address, body, &signed), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("notified prm:organization:org_not_there (organizations):"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the notified record was not synced within 30 s: {lines:?}");
            }
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("notification answered 401 (stale):")),
        "{lines:?}"
    );

    // Ctrl-C
    #[allow(unsafe_code)]
    // SAFETY: a signal to the child this test started, by its pid.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 30 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(status.success(), "{status:?}: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "prmsync watch stopped: 1 cycle, 1 notified record"),
        "{lines:?}"
    );

    // The sandbox was kept: the next sync finds every record linked and creates nothing.
    let out = prmsync(dir.path())
        .args(["sync", "--sandbox", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, i) in summary["integrations"].as_object().unwrap() {
        assert_eq!(
            i["created"],
            serde_json::json!({"crm": 0, "prm": 0}),
            "{name}: {i}"
        );
    }
}

/// POSTs `body` with `signature` to the receiver at `address`; the status answered.
fn post(address: &str, body: &str, signature: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nX-PRM-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

#[test]
fn a_bad_interval_is_refused_naming_the_flag_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (interval, says) in [
        ("5s", "give 10s or more"),
        ("0", "give 10s or more"),
        ("often", "like 30m"),
    ] {
        let out = prmsync(dir.path())
            .args(["watch", "--sandbox", "--interval", interval])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{interval}: {stderr}");
        assert!(
            stderr.contains(&format!("--interval {interval}")) && stderr.contains(says),
            "{interval}: {stderr}"
        );
    }
    // refused before anything was opened
    assert!(!dir.path().join(".prmsync").exists());
}
