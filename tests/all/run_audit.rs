//! Invariant 6: every secret access of a run is audited (time, run id, operation, name,
//! granted, outcome), one JSON line each, never with the value, between a first record that
//! names what ran and a last that says how it ended; a value handed out or used is named by
//! its version and its keyed fingerprint; each run's records are chained under the audit key
//! (`kvrun audit verify`). Invariant 11: a run cannot make the host write unbounded audit
//! data or send unbounded requests (invalid names cut, a byte budget per run that keeps room
//! for the last record, batches deduplicated and capped).

use crate::common;

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
        let log = kvrun::audit::AuditLog::to_file(&path, run, common::audit_key()).unwrap();
        kvrun::audit::RunAudit::new(std::sync::Arc::new(log), u64::MAX)
            .record("get-secret", "db-password", true, "ok", None)
            .unwrap();
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

    // An existing file others could read is made private; one they can write is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(kvrun::audit::AuditLog::to_file(&path, "run-3", common::audit_key()).unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = kvrun::audit::AuditLog::to_file(&path, "run-4", common::audit_key())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("audit file") && err.contains("group or others"),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_cannot_write_unbounded_or_arbitrary_audit_data() {
    let t = TestVault::with_secrets(&[("db-password", "audit-canary-99")]).await;
    let mut options = run_options(&["audit-spam"], &["db-password"]);
    options.max_audit = 64 << 10;
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.exit, kvrun::sandbox::RunExit::AuditLimit(64 << 10));
    assert_eq!(ran.exit.status(), 120);
    let written: usize = ran.audit_lines.iter().map(|l| l.len() + 1).sum();
    assert!(written <= 64 << 10, "bounded: {written} bytes");
    let last: serde_json::Value = serde_json::from_str(ran.audit_lines.last().unwrap()).unwrap();
    assert_eq!(
        last["operation"], "run-end",
        "the budget kept room for the last record"
    );
    assert_eq!(last["status"], 120);
    assert!(last["outcome"].as_str().unwrap().contains("--max-audit"));
    let verdicts = kvrun::audit::verify::verify(
        &common::audit_key(),
        ran.audit_lines.iter().map(String::as_str),
    );
    assert_eq!(
        verdicts[0].verdict,
        kvrun::audit::verify::Verdict::Whole {
            records: ran.audit_lines.len() as u64
        }
    );
    let asks = &ran.audit;
    assert!(asks.len() > 100, "the budget holds hundreds of records");
    for record in asks {
        assert_eq!(record["name"], "x".repeat(kvrun::audit::INVALID_NAME_SHOWN));
        assert_eq!(record["name_invalid"], true);
        assert_eq!(record["name_length"], 120 * 1024);
    }

    // A name that is not a valid secret name shows at most a few characters of it.
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["ask", "audit-canary-99 is the value"], &["db-password"]),
    )
    .await;
    assert_eq!(ran.audit[0]["name"], "audit-canary-99?is?the?value");
    assert_eq!(ran.audit[0]["name_invalid"], true);
}

#[tokio::test]
async fn batches_are_deduplicated_and_capped() {
    let vault = common::RawServer::start(|_, request| {
        let host = request.header("host").unwrap();
        common::http_reply(
            "200 OK",
            &[],
            &common::bundle_json(&host, "db-password", "audit-canary-99"),
        )
    })
    .await;
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        vault.options("t"),
        run_options(&["ask-repeat", "db-password", "1000"], &["db-password"]),
    )
    .await;
    assert_eq!(ran.stdout.trim(), "ok 1000", "every copy gets the value");
    assert_eq!(ran.audit.len(), 1, "one access, one record");
    assert_eq!(vault.requests().len(), 1, "one request to the vault");

    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        vault.options("t"),
        run_options(&["ask-repeat", "db-password", "20000"], &["db-password"]),
    )
    .await;
    assert!(
        ran.stdout.contains("InvalidArgument") && ran.stdout.contains("at most 1000"),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.audit.len(), 1);
    assert_eq!(ran.audit[0]["name"], "db-password");
    assert_eq!(
        ran.audit[0]["outcome"],
        "refused: 20000 names, more than 1000"
    );
    assert_eq!(
        vault.requests().len(),
        1,
        "no request for the refused batch"
    );
}
