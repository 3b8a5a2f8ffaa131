//! A real connection from the environment and the config file: what is missing or
//! contradictory stops `prmsync sync` before any call, naming the variable to set.

use std::path::Path;
use std::process::{Command, Output};

const VARS: [&str; 9] = [
    "SALESFORCE_LOGIN_URL",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_USERNAME",
    "SALESFORCE_JWT_KEY_FILE",
    "SALESFORCE_JWT_AUDIENCE",
    "PRM_API_URL",
    "PRM_API_TOKEN",
    "PRMSYNC_STATE_DIR",
];

fn key_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/connect/tests/fixtures/test_rsa_private.pem")
        .display()
        .to_string()
}

/// `prmsync sync --config prmsync.toml` with only the given variables set.
fn sync(dir: &Path, config: &str, vars: &[(&str, &str)]) -> (Output, String) {
    std::fs::write(dir.join("prmsync.toml"), config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prmsync"));
    cmd.args(["sync", "--config", "prmsync.toml", "--state-dir"])
        .arg(dir.join(".prmsync"))
        .current_dir(dir);
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("prmsync runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, all)
}

const CONFIG: &str = "[salesforce]\nlogin_url = \"http://127.0.0.1:9\"\njwt_audience = \"https://test.salesforce.com\"\n\n[prm]\napi_url = \"http://127.0.0.1:9\"\n";

#[test]
fn a_jwt_key_without_a_username_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file();
    let (out, all) = sync(
        dir.path(),
        CONFIG,
        &[
            ("SALESFORCE_CLIENT_ID", "id"),
            ("SALESFORCE_CLIENT_SECRET", "s3cr3t-value"),
            ("SALESFORCE_JWT_KEY_FILE", &key),
            ("PRM_API_TOKEN", "t0ken-value"),
        ],
    );
    assert!(!out.status.success());
    assert!(all.contains("SALESFORCE_USERNAME"), "{all}");
    assert!(
        !all.contains("s3cr3t-value") && !all.contains("t0ken-value") && !all.contains("PRIVATE"),
        "{all}"
    );
}

#[test]
fn each_missing_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (out, all) = sync(
        dir.path(),
        CONFIG,
        &[
            ("SALESFORCE_CLIENT_SECRET", "s3cr3t-value"),
            ("PRM_API_TOKEN", "t0ken-value"),
        ],
    );
    assert!(!out.status.success());
    assert!(all.contains("SALESFORCE_CLIENT_ID"), "{all}");

    let (out, all) = sync(
        dir.path(),
        CONFIG,
        &[("SALESFORCE_CLIENT_ID", "id"), ("PRM_API_TOKEN", "t")],
    );
    assert!(!out.status.success());
    assert!(
        all.contains("SALESFORCE_CLIENT_SECRET") && all.contains("SALESFORCE_JWT_KEY_FILE"),
        "{all}"
    );

    let (out, all) = sync(
        dir.path(),
        CONFIG,
        &[
            ("SALESFORCE_CLIENT_ID", "id"),
            ("SALESFORCE_CLIENT_SECRET", "s"),
        ],
    );
    assert!(!out.status.success());
    assert!(all.contains("PRM_API_TOKEN"), "{all}");

    // the login URL from neither the environment nor the config file
    let (out, all) = sync(
        dir.path(),
        "[prm]\napi_url = \"http://127.0.0.1:9\"\n",
        &[
            ("SALESFORCE_CLIENT_ID", "id"),
            ("SALESFORCE_CLIENT_SECRET", "s"),
            ("PRM_API_TOKEN", "t"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        all.contains("SALESFORCE_LOGIN_URL") && all.contains("login_url"),
        "{all}"
    );
}

#[test]
fn an_unreadable_jwt_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (out, all) = sync(
        dir.path(),
        CONFIG,
        &[
            ("SALESFORCE_CLIENT_ID", "id"),
            ("SALESFORCE_USERNAME", "u@example.com"),
            ("SALESFORCE_JWT_KEY_FILE", "no-such-key.pem"),
            ("PRM_API_TOKEN", "t"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        all.contains("SALESFORCE_JWT_KEY_FILE") && all.contains("no-such-key.pem"),
        "{all}"
    );
}
