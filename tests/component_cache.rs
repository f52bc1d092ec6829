//! The compiled component is cached on disk: a warm start does not compile, and a damaged
//! artifact is compiled again instead of being loaded.

use kvrun::component_cache::{artifact_path, CacheOutcome};
use kvrun::{Runtime, RuntimeOptions};

#[test]
fn a_warm_start_loads_the_cached_artifact_and_a_damaged_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    };
    let cold = Runtime::new(options.clone()).unwrap();
    assert_eq!(cold.load_report().0, CacheOutcome::Compiled);
    let artifact = artifact_path(
        cold.engine(),
        &dir.path().join("cache"),
        "vault-client",
        kvrun::GUEST_WASM,
    );
    assert!(artifact.is_file(), "{} was written", artifact.display());
    let name = artifact.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("vault-client-") && name.ends_with(".cwasm"),
        "{name}"
    );

    let warm = Runtime::new(options.clone()).unwrap();
    assert_eq!(warm.load_report().0, CacheOutcome::Hit);

    // Artifacts are memory-mapped: replace the file (as kvrun itself does), never truncate
    // it under a live runtime.
    drop((cold, warm));
    let damaged = artifact.with_extension("damaged");
    std::fs::write(&damaged, b"not a compiled component").unwrap();
    std::fs::rename(&damaged, &artifact).unwrap();
    let repaired = Runtime::new(options.clone()).unwrap();
    assert_eq!(repaired.load_report().0, CacheOutcome::Compiled);
    assert_eq!(
        Runtime::new(options).unwrap().load_report().0,
        CacheOutcome::Hit
    );
}

#[test]
fn another_component_gets_its_own_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let engine = wasmtime::Engine::default();
    let a = artifact_path(&engine, dir.path(), "vault-client", b"one");
    let b = artifact_path(&engine, dir.path(), "vault-client", b"two");
    assert_ne!(a, b);
}
