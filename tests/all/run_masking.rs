//! Invariant 5 in runs: a granted value the run has read never appears in its stdout or
//! stderr, whole, in pieces, on both streams, encoded (JSON, base64, hex, percent, line by
//! line), or when the run traps or times out.

use crate::common;

use common::{run_options, run_training, TestVault, EXAMPLE_TRAIN_WASM, HOSTILE_TRAINING_WASM};
use kvrun::sandbox::{DirGrant, RunExit};
use std::time::Duration;

const VALUE: &str = "Tr4in-Pa55word-42";

/// A value whose encodings all differ from it: quotes, a backslash, non-ASCII, a slash, a
/// space and two lines.
const ENCODED: &str = "s3cr\"et\\pä/ss word\nsecond-line-0f-it";

async fn vault() -> TestVault {
    TestVault::with_secrets(&[
        ("db-password", VALUE),
        ("multi-line", "line-one\nline-two"),
        ("api-key", "Pa55word-42-extra"),
        ("encoded", ENCODED),
    ])
    .await
}

#[tokio::test]
async fn a_value_printed_whole_in_pieces_or_on_both_streams_is_masked() {
    let t = vault().await;
    for mode in ["whole", "pieces", "both"] {
        let ran = run_training(
            HOSTILE_TRAINING_WASM,
            t.options(),
            run_options(&["print", "db-password", mode], &["db-password"]),
        )
        .await;
        assert_eq!(ran.exit, RunExit::Code(0), "{mode}: {}", ran.stderr);
        assert!(
            !ran.output().contains(VALUE),
            "{mode} leaked: {}",
            ran.output()
        );
        assert!(
            !ran.output().contains("Pa55"),
            "{mode} leaked a piece: {}",
            ran.output()
        );
        assert!(ran.output().contains("***"), "{mode}: {}", ran.output());
    }
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["print", "multi-line", "pieces"], &["multi-line"]),
    )
    .await;
    assert!(!ran.output().contains("line-one"), "{}", ran.output());
}

#[tokio::test]
async fn overlapping_values_are_masked_together() {
    let t = vault().await;
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["ask", "api-key"], &["api-key", "db-password"]),
    )
    .await;
    assert_eq!(ran.stdout.trim(), "api-key: ok");
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["print", "db-password", "whole"], &["db-password"]),
    )
    .await;
    assert_eq!(ran.stdout.trim(), "value=***");
}

#[tokio::test]
async fn nothing_unmasked_is_written_on_a_timeout_or_a_trap() {
    let t = vault().await;
    let mut options = run_options(&["print", "db-password", "then-loop"], &["db-password"]);
    options.timeout = Duration::from_millis(700);
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert!(matches!(ran.exit, RunExit::Timeout(_)), "{:?}", ran.exit);
    assert!(!ran.output().contains("Tr4in-Pa"), "{}", ran.output());
    assert!(ran.stdout.starts_with("partial=***"), "{}", ran.stdout);

    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["print", "db-password", "then-trap"], &["db-password"]),
    )
    .await;
    assert!(matches!(ran.exit, RunExit::Trap(_)), "{:?}", ran.exit);
    assert_eq!(ran.exit.status(), 123);
    assert!(
        !ran.output().contains("Tr4in-Pa55word-4"),
        "{}",
        ran.output()
    );
}

#[tokio::test]
async fn the_example_job_reads_its_password_and_trains() {
    let t = vault().await;
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    let mut options = run_options(&[], &["db-password"]);
    options.dirs = vec![DirGrant {
        host: data,
        guest: "/data".into(),
        read_only: true,
    }];
    let ran = run_training(EXAMPLE_TRAIN_WASM, t.options(), options).await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
    assert!(
        ran.stdout.contains("postgres://trainer:***@db.internal"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("train: fitted y = 2.50"),
        "{}",
        ran.stdout
    );
    assert!(!ran.output().contains(VALUE));

    let ran = run_training(EXAMPLE_TRAIN_WASM, t.options(), run_options(&[], &[])).await;
    assert_eq!(
        ran.exit,
        RunExit::Code(2),
        "without the grant the job stops with its own status"
    );
    assert!(ran.stderr.contains("not granted"), "{}", ran.stderr);
}

#[tokio::test]
async fn a_value_printed_encoded_is_masked_in_every_form() {
    use base64::Engine as _;
    let t = vault().await;
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["print", "encoded", "encoded"], &["encoded"]),
    )
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
    let output = ran.output();
    // Fourteen forms, but the last two lines together are the value itself: one mask.
    assert_eq!(
        output.lines().count(),
        13,
        "every form was printed: {output}"
    );
    let json = serde_json::to_string(ENCODED).unwrap();
    let mut leaks = vec![
        json[1..json.len() - 1].to_string(),
        hex::encode(ENCODED),
        hex::encode_upper(ENCODED),
        "second-line-0f-it".to_string(),
        "s3cr\"et\\pä/ss word".to_string(),
        "p%C3%A4%2Fss%20word".to_string(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        let core = engine.encode(ENCODED);
        leaks.push(core[..core.len() - 4].to_string());
    }
    for leak in leaks {
        assert!(!output.contains(&leak), "{leak} shows in {output}");
    }
    for line in output.lines() {
        assert!(line.contains("***"), "a form was left unmasked: {line}");
        assert!(line.len() < 24, "only a few edge characters remain: {line}");
    }
}
