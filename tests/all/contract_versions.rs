//! The contract is versioned: components built against `kvrun:secrets@0.1.0` (before
//! `run.get-secret-handle` was added in 0.1.1) and `0.1.1` (before the training world
//! imported `wasi:http` and `egress` in 0.1.2) run unchanged on this host, with the same
//! grants, handles, masking and audit.

use crate::common;

use common::{run_options, run_training, TestVault, TRAINING_V0_1_0_WASM, TRAINING_V0_1_1_WASM};
use kvrun::sandbox::RunExit;

#[tokio::test]
async fn a_component_built_against_0_1_0_runs_unchanged() {
    let imports = imports_of(TRAINING_V0_1_0_WASM);
    assert!(
        imports.iter().any(|i| i == "kvrun:secrets/run@0.1.0"),
        "the fixture imports the 0.1.0 interface: {imports:?}"
    );
    let vault = TestVault::with_secrets(&[("db-password", "v010-secret-value")]).await;
    let ran = run_training(
        TRAINING_V0_1_0_WASM,
        vault.options(),
        run_options(&["db-password", "other"], &["db-password"]),
    )
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "db-password: ok value=***");
    assert!(
        lines[1].contains("was not granted to this run"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("was not granted"), "{}", lines[2]);
    assert!(!ran.output().contains("v010-secret-value"));
    assert_eq!(ran.audit[0]["outcome"], "ok");
}

#[tokio::test]
async fn a_component_built_against_0_1_1_runs_unchanged_with_its_handles() {
    let imports = imports_of(TRAINING_V0_1_1_WASM);
    assert!(
        imports.iter().any(|i| i == "kvrun:secrets/run@0.1.1"),
        "the fixture imports the 0.1.1 interface: {imports:?}"
    );
    let vault = TestVault::with_secrets(&[
        ("db-password", "v011-secret-value"),
        ("api-token", "v011-token-value"),
    ])
    .await;
    let ran = run_training(
        TRAINING_V0_1_1_WASM,
        vault.options(),
        kvrun::sandbox::RunOptions {
            use_secrets: vec!["api-token=https://api.example.com".into()],
            ..run_options(&["db-password", "api-token"], &["db-password"])
        },
    )
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "db-password: ok value=***");
    assert!(
        lines[1].starts_with("db-password: no handle: Error::Denied"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("for use only (--use-secret)"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "api-token: handle true");
    assert!(!ran.output().contains("v011-"));
}

#[test]
fn the_example_is_built_against_the_living_0_1_2_contract() {
    let imports = imports_of(common::EXAMPLE_TRAIN_WASM);
    assert!(
        imports.iter().any(|i| i == "kvrun:secrets/run@0.1.2"),
        "{imports:?}"
    );
}

/// The names of a component's imports.
fn imports_of(wasm: &[u8]) -> Vec<String> {
    let engine = common::runtime().engine();
    let component = wasmtime::component::Component::new(engine, wasm).expect("a component");
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}
