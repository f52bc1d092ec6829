//! Invariant 6: every secret access of a run is audited (time, run id, operation, name,
//! granted, outcome), one JSON line each, never with the value.

mod common;

use common::{run_options, run_training, TestVault, HOSTILE_TRAINING_WASM};

#[tokio::test]
async fn every_access_is_one_audit_line_without_the_value() {
    let t = TestVault::with_secrets(&[("db-password", "audit-canary-99")]).await;

    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(
            &["ask", "db-password", "missing", "not-granted"],
            &["db-password", "missing"],
        ),
    )
    .await;
    assert_eq!(ran.audit.len(), 3);
    let expect = [
        ("db-password", true, "ok"),
        ("missing", true, "not-found"),
        ("not-granted", false, "denied: not granted"),
    ];
    for (record, (name, granted, outcome)) in ran.audit.iter().zip(expect) {
        assert_eq!(record["run"], "test-run");
        assert_eq!(record["operation"], "get-secret");
        assert_eq!(record["name"], name);
        assert_eq!(record["granted"], granted);
        assert_eq!(record["outcome"], outcome);
        assert!(record["time"].as_str().unwrap().ends_with('Z'));
        assert!(!record.to_string().contains("audit-canary"));
    }
}

#[test]
fn the_audit_file_is_appended_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    for run in ["run-1", "run-2"] {
        let log = kvrun::audit::AuditLog::to_file(&path, run).unwrap();
        log.record("get-secret", "db-password", true, "ok");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let runs: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["run"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(runs, ["run-1", "run-2"]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
