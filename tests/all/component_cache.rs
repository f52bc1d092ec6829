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

#[test]
fn an_artifact_or_cache_that_others_could_have_planted_is_never_loaded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let options = RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ..RuntimeOptions::default()
    };
    let first = Runtime::new(options.clone()).unwrap();
    let artifact = artifact_path(first.engine(), &cache, "vault-client", kvrun::GUEST_WASM);
    drop(first);
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An artifact another user could write (or owns) is native code someone else chose:
    // compiled again, and replaced by one of ours.
    std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        Runtime::new(options.clone()).unwrap().load_report().0,
        CacheOutcome::Compiled
    );
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        Runtime::new(options.clone()).unwrap().load_report().0,
        CacheOutcome::Hit
    );
    if std::os::unix::fs::chown(&artifact, Some(4242), None).is_ok() {
        assert_eq!(
            Runtime::new(options.clone()).unwrap().load_report().0,
            CacheOutcome::Compiled
        );
    }

    // A cache directory others can write is not used at all.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    for _ in 0..2 {
        assert_eq!(
            Runtime::new(options.clone()).unwrap().load_report().0,
            CacheOutcome::Compiled
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".kvrun-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

/// A component compiled by this process runs from its cached file, mapped, as a cached one
/// does: an artifact kept only in memory makes wasmtime copy its memory image into a sealed
/// memfd at the first instantiation, and sealing fails now and then on a busy machine
/// (`EBUSY` while the kernel still holds the new pages), which stopped a run with "cannot add
/// seals to the memfd".
#[test]
fn a_freshly_compiled_component_runs_from_its_mapped_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    assert_eq!(runtime.load_report().0, CacheOutcome::Compiled);
    let artifact = artifact_path(runtime.engine(), &cache, "vault-client", kvrun::GUEST_WASM);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        maps.contains(artifact.to_str().unwrap()),
        "{} is mapped by the runtime that compiled it",
        artifact.display()
    );
}
