//! The AWS deployment (infra/template.yaml) checked offline: the SAM template translates and
//! lints clean, the lint catches broken templates, and the worker queue is wired for
//! partial batch failures. Needs python3 (the lint installs aws-sam-translator and cfn-lint
//! with pip when they are missing).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

fn template_text() -> String {
    fs::read_to_string(workspace_root().join("infra/template.yaml"))
        .expect("infra/template.yaml is readable")
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "prmsync-infra-{label}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `bash infra/lint.sh <template>` from the workspace root. The lint's own scratch
/// files go to `scratch` (it keeps the translated template there when cfn-lint fails).
fn lint(template: &Path, scratch: &Path) -> (Output, String) {
    let output = Command::new("bash")
        .arg("infra/lint.sh")
        .arg(template)
        .current_dir(workspace_root())
        .env("TMPDIR", scratch)
        .output()
        .expect("run bash infra/lint.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// The template with `from` replaced by `to` (exactly once), written to `dir/name`.
fn broken_copy(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let template = template_text();
    assert_eq!(
        template.matches(from).count(),
        1,
        "the template should contain `{from}` exactly once"
    );
    let path = dir.join(name);
    fs::write(&path, template.replacen(from, to, 1)).expect("write the broken template");
    path
}

#[test]
fn the_template_lints_clean_after_sam_translation() {
    // GIVEN the template as committed
    let scratch = TempDir::new("clean");

    // WHEN it is translated and linted
    let (output, text) = lint(Path::new("infra/template.yaml"), &scratch.0);

    // THEN the lint passes
    assert!(output.status.success(), "the lint failed:\n{text}");
    assert!(
        text.contains("template OK"),
        "unexpected lint output:\n{text}"
    );
}

#[test]
fn a_broken_template_fails_the_lint() {
    let dir = TempDir::new("broken");

    // GIVEN a template referring to a secret that does not exist
    let missing_ref = broken_copy(
        &dir.0,
        "missing-ref.yaml",
        "PRMSYNC_WEBHOOK_SECRET_ARN: !Ref WebhookSecret",
        "PRMSYNC_WEBHOOK_SECRET_ARN: !Ref MissingWebhookSecret",
    );
    // WHEN it is linted
    let (output, text) = lint(&missing_ref, &dir.0);
    // THEN the lint fails and names the missing resource
    assert!(!output.status.success(), "the lint passed:\n{text}");
    assert!(
        text.contains("MissingWebhookSecret"),
        "the output does not name the missing resource:\n{text}"
    );

    // GIVEN a template whose deal import has an event type SAM does not know
    let bad_event = broken_copy(
        &dir.0,
        "bad-event-type.yaml",
        "          Type: Schedule\n          Properties:\n            Description: Hourly incremental deal",
        "          Type: Scheduled\n          Properties:\n            Description: Hourly incremental deal",
    );
    // WHEN it is linted
    let (output, text) = lint(&bad_event, &dir.0);
    // THEN the SAM translation fails and names the event
    assert!(!output.status.success(), "the lint passed:\n{text}");
    assert!(
        text.contains("Scheduled") && text.contains("SAM translation failed"),
        "the output does not name the bad event type:\n{text}"
    );
}

/// The number after the first `key:` in the template.
fn number_after(template: &str, key: &str) -> u64 {
    let at = template
        .find(key)
        .unwrap_or_else(|| panic!("`{key}` missing"));
    template[at + key.len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("`{key}` is not followed by a number"))
}

#[test]
fn the_worker_queue_is_wired_for_partial_batch_failures() {
    // GIVEN the template as committed
    let template = template_text();

    // THEN the worker reports failures per message, failed messages end in a DLQ, the queue
    // outlives the worker's retries, and the tables can be restored
    for needle in [
        "ReportBatchItemFailures",
        "RedrivePolicy",
        "deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn",
        "maxReceiveCount: 5",
        "MaximumConcurrency: 5",
        "PointInTimeRecoveryEnabled: true",
        "Binary: sync-worker",
    ] {
        assert!(template.contains(needle), "template lacks `{needle}`");
    }
    let worker = &template[template
        .find("  SyncWorkerFunction:")
        .expect("a SyncWorkerFunction resource")..];
    let worker_timeout = number_after(worker, "Timeout:");
    let visibility = number_after(&template, "VisibilityTimeout:");
    assert!(
        visibility >= 6 * worker_timeout,
        "queue visibility timeout {visibility}s < 6 x worker timeout {worker_timeout}s"
    );
}

/// The template text of one resource (or parameter, output): its `  Name:` line and the
/// more indented lines under it.
fn resource<'a>(template: &'a str, name: &str) -> &'a str {
    let header = format!("\n  {name}:\n");
    let start = template
        .find(&header)
        .unwrap_or_else(|| panic!("no `{name}` in the template"))
        + 1;
    let body = start + header.len() - 1;
    let mut end = template.len();
    let mut at = body;
    for line in template[body..].split_inclusive('\n') {
        let sibling =
            line.starts_with("  ") && line[2..].starts_with(|c: char| c.is_ascii_alphanumeric());
        if sibling || line.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            end = at;
            break;
        }
        at += line.len();
    }
    &template[start..end]
}

#[test]
fn the_syncing_functions_read_the_mapping_location_and_only_that_object() {
    // GIVEN the template as committed
    let template = template_text();

    // THEN the parameter reaches full-sync, the worker and deal-import, not the webhook
    for (f, role) in [
        ("FullSyncFunction", "FullSyncRole"),
        ("SyncWorkerFunction", "SyncWorkerRole"),
        ("DealImportFunction", "DealImportRole"),
    ] {
        let r = resource(&template, f);
        assert!(
            r.contains("PRMSYNC_MAPPING_FILE: !Ref MappingLocation"),
            "{f} does not get the mapping location"
        );
        // whose role has s3:GetObject on the one object, only when the location is an S3
        // object
        let r = resource(&template, role);
        let grant = r
            .find("- !If\n          - HasMappingObject")
            .unwrap_or_else(|| panic!("{role} has no conditional mapping grant"));
        let statement = &r[grant..];
        assert!(
            statement.contains("Action: s3:GetObject")
                && statement.contains("arn:${AWS::Partition}:s3:::${Object}")
                && statement.contains("- !Ref AWS::NoValue"),
            "{role}: {statement}"
        );
    }
    let webhook = resource(&template, "PrmWebhookFunction");
    assert!(!webhook.contains("MappingLocation") && !webhook.contains("s3:"));
    assert!(!resource(&template, "PrmWebhookRole").contains("s3:"));
    let globals = &template[template.find("\nGlobals:").expect("Globals")
        ..template.find("\nResources:").expect("Resources")];
    assert!(
        !globals.contains("PRMSYNC_MAPPING_FILE"),
        "the mapping location is given to the syncing functions only"
    );
    // no other S3 permission anywhere, and no wildcard object
    assert_eq!(template.matches("Action: s3:").count(), 3);
    assert!(!template.contains("s3:*") && !template.contains("s3:::*"));
    assert!(template.contains(
        r#"HasMappingObject: !Equals [!Select [0, !Split ["://", !Ref MappingLocation]], "s3"]"#
    ));
}

#[test]
fn each_function_binary_stays_thin() {
    // The handlers live in shared/lambda and the rules in the engine: a function's main
    // only wires them to the Lambda runtime.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in ["full-sync", "sync-worker", "deal-import", "prm-webhook"] {
        let main =
            std::fs::read_to_string(root.join("functions").join(f).join("src/main.rs")).unwrap();
        let lines = main.lines().filter(|l| !l.trim().is_empty()).count();
        assert!(lines <= 30, "functions/{f}/src/main.rs has {lines} lines");
        assert!(
            main.contains("prmsync_lambda::"),
            "functions/{f} delegates to the shared handlers"
        );
        assert!(
            !main.contains("run_pass") && !main.contains("merge_field"),
            "no sync logic in functions/{f}"
        );
    }
}

#[test]
fn release_binaries_start_and_name_what_is_missing() {
    // `scripts/test.sh` builds the functions with the release profile and points
    // PRMSYNC_RELEASE_BINARIES at them.
    let Some(dir) = std::env::var_os("PRMSYNC_RELEASE_BINARIES") else {
        assert!(
            std::env::var_os("PRMSYNC_REQUIRE_AWS").is_none(),
            "PRMSYNC_RELEASE_BINARIES is not set: run ./scripts/test.sh, which builds them"
        );
        eprintln!("NOT CHECKED: release binaries (run ./scripts/test.sh, which builds them first)");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for f in ["full-sync", "sync-worker", "deal-import", "prm-webhook"] {
        let bin = dir.join(f);
        let size = std::fs::metadata(&bin)
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
            .len();
        assert!(size > 1_000_000, "{f} is {size} bytes");
        // Outside Lambda, with no configuration: it stops at once and names the variable.
        let out = std::process::Command::new(&bin)
            .env_clear()
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{f} started without configuration");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // the webhook reads a secret of its own
        let first = if f == "prm-webhook" {
            "PRMSYNC_WEBHOOK_SECRET_ARN is not set"
        } else {
            "PRMSYNC_SECRET_ARN is not set"
        };
        assert!(text.contains(first), "{f} printed: {text}");
        assert!(!text.contains("panicked"), "{f} panicked: {text}");
    }
}

#[test]
fn a_daily_reconcile_is_scheduled_for_every_integration() {
    // GIVEN the template as committed
    let template = template_text();
    let full_sync = resource(&template, "FullSyncFunction");
    let deal_import = resource(&template, "DealImportFunction");

    // THEN full-sync reconciles `all` (organizations, then people) once a day and
    // deal-import reconciles deals once a day, each beside its hourly run
    for (function, input) in [
        (
            full_sync,
            r#"Input: '{"integration":"all","mode":"reconcile"}'"#,
        ),
        (
            deal_import,
            r#"Input: '{"integration":"deals","mode":"reconcile"}'"#,
        ),
    ] {
        assert_eq!(function.matches(input).count(), 1, "{function}");
        let at = function.find(input).unwrap();
        let event = &function[function[..at].rfind("Type: Schedule").unwrap()..at];
        assert!(event.contains("Schedule: cron("), "a daily cron: {event}");
        assert!(event.contains(" * * ? *)"), "every day: {event}");
        assert!(function.contains("Schedule: rate(1 hour)"), "{function}");
    }
    assert_eq!(template.matches(r#""mode":"reconcile""#).count(), 2);
}

#[test]
fn the_public_webhook_is_bounded_and_holds_no_connection_credentials() {
    // GIVEN the template as committed
    let template = template_text();
    let webhook = resource(&template, "PrmWebhookFunction");
    let role = resource(&template, "PrmWebhookRole");

    // THEN the webhook has reserved concurrency, its own secret and none of the connection
    assert!(
        webhook.contains("ReservedConcurrentExecutions: !Ref WebhookConcurrency"),
        "{webhook}"
    );
    assert!(
        number_after(
            &template,
            "WebhookConcurrency:\n    Type: Number\n    Default:"
        ) <= 10
    );
    assert!(
        webhook.contains("PRMSYNC_WEBHOOK_SECRET_ARN: !Ref WebhookSecret")
            && !webhook.contains("ConnectionSecret"),
        "{webhook}"
    );
    assert!(
        role.contains("Resource: !Ref WebhookSecret") && !role.contains("ConnectionSecret"),
        "{role}"
    );
    let globals = &template[template.find("\nGlobals:").expect("Globals")
        ..template.find("\nResources:").expect("Resources")];
    assert!(
        !globals.contains("PRMSYNC_SECRET_ARN") && !globals.contains("PRMSYNC_LOG_TABLE"),
        "the connection secret and the log table are given to the syncing functions only"
    );
    // and its deliveries expire with the state table's TTL
    let state = resource(&template, "StateTable");
    assert!(state.contains("AttributeName: expires_at"), "{state}");
}

#[test]
fn each_integration_has_one_owner_and_people_follow_organizations() {
    // GIVEN the template as committed
    let template = template_text();
    let full_sync = resource(&template, "FullSyncFunction");
    let deal_import = resource(&template, "DealImportFunction");
    let worker = resource(&template, "SyncWorkerFunction");

    // THEN full-sync's schedule runs `all` (organizations, then people) and deal-import's
    // runs deals: nothing else schedules deals
    assert!(
        full_sync.contains(r#"Input: '{"integration":"all","mode":"incremental"}'"#),
        "{full_sync}"
    );
    assert!(
        deal_import.contains(r#"Input: '{"integration":"deals","mode":"incremental"}'"#),
        "{deal_import}"
    );
    assert_eq!(
        template.matches(r#""integration":"deals""#).count(),
        deal_import.matches(r#""integration":"deals""#).count(),
        "deals are scheduled by deal-import only"
    );
    // and the worker that closes an organizations run may start its people run: it knows
    // the planner and may invoke it, and that function only
    assert!(
        worker.contains("PRMSYNC_FULL_SYNC_FUNCTION: !Ref FullSyncFunction"),
        "{worker}"
    );
    let policy = resource(&template, "SyncWorkerPlanPolicy");
    assert!(policy.contains("- !Ref SyncWorkerRole"), "{policy}");
    assert!(policy.contains("Action: lambda:InvokeFunction"), "{policy}");
    assert!(
        policy.contains("Resource: !GetAtt FullSyncFunction.Arn"),
        "{policy}"
    );
    assert!(!policy.contains("Resource: \"*\""), "{policy}");
}

#[test]
fn salesforce_change_events_reach_the_work_queue_from_their_rule_only_when_asked_for() {
    // GIVEN the template as committed
    let template = template_text();
    let parameter = resource(&template, "SalesforceEventSource");
    let bus = resource(&template, "ChangeEventBus");
    let rule = resource(&template, "ChangeEventRule");
    let policy = resource(&template, "ChangeEventQueuePolicy");

    // THEN it is off unless the Event Relay's partner event source is given
    assert!(parameter.contains("Default: \"\""), "{parameter}");
    assert!(template.contains("HasChangeEvents: !Not [!Equals [!Ref SalesforceEventSource, \"\"]]"));
    for r in [bus, rule, policy] {
        assert!(r.contains("Condition: HasChangeEvents"), "{r}");
    }
    // the partner event bus is named after its source
    assert!(
        bus.contains("Name: !Ref SalesforceEventSource")
            && bus.contains("EventSourceName: !Ref SalesforceEventSource"),
        "{bus}"
    );
    // the three change events, whole, to the work queue; undeliverable ones rest with the
    // work queue's dead letters
    assert!(
        rule.contains(
            "detail-type: [AccountChangeEvent, ContactChangeEvent, OpportunityChangeEvent]"
        ),
        "{rule}"
    );
    assert!(rule.contains("Arn: !GetAtt WorkQueue.Arn"), "{rule}");
    assert!(
        !rule.contains("InputTransformer") && !rule.contains("InputPath"),
        "{rule}"
    );
    assert!(
        rule.contains("DeadLetterConfig:\n            Arn: !GetAtt WorkDeadLetterQueue.Arn"),
        "{rule}"
    );
    // and only that rule may send to the queues
    assert!(
        policy.contains("Service: events.amazonaws.com")
            && policy.contains("Action: sqs:SendMessage")
            && policy.contains("aws:SourceArn: !GetAtt ChangeEventRule.Arn"),
        "{policy}"
    );
}
