//! Builds the vault client component (`guest/`) for `wasm32-wasip2` with a nested cargo, so
//! that `cargo build` and `cargo test` need nothing else, and hands its path to the crate as
//! `KVRUN_GUEST_WASM`. The same invocation builds the example training component
//! (`examples/train`, `KVRUN_EXAMPLE_TRAIN_WASM`) and the test fixture components under
//! `tests/fixtures/` (`KVRUN_HOSTILE_WASM`, `KVRUN_HOSTILE_TRAINING_WASM`,
//! `KVRUN_TRAINING_V0_1_0_WASM`, `KVRUN_TRAINING_V0_1_1_WASM`), which only the integration
//! tests use.
//!
//! The nested build uses its own `--target-dir` (`target/guest-build`): the outer cargo
//! holds the lock on its own target directory, and sharing it would deadlock.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("guest-build");
    for path in [
        "guest/src",
        "guest/Cargo.toml",
        "examples/train",
        "tests/fixtures",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=KVRUN_GUEST_PROFILE");
    let profile = std::env::var("KVRUN_GUEST_PROFILE").unwrap_or_else(|_| "guest-release".into());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-p", "kvrun-guest", "-p", "kvrun-example-train"])
        .args(["-p", "kvrun-hostile-guest", "-p", "kvrun-hostile-training"])
        .args(["-p", "kvrun-training-v0_1_0", "-p", "kvrun-training-v0_1_1"])
        .args(["--target", "wasm32-wasip2", "--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .expect("running cargo for the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed; if the error says the wasm32-wasip2 target \
             is missing, run `rustup target add wasm32-wasip2`"
        );
    }
    let out = target_dir.join("wasm32-wasip2").join(&profile);
    for (var, file) in [
        ("KVRUN_GUEST_WASM", "kvrun_guest.wasm"),
        ("KVRUN_EXAMPLE_TRAIN_WASM", "kvrun-example-train.wasm"),
        ("KVRUN_HOSTILE_WASM", "kvrun_hostile_guest.wasm"),
        ("KVRUN_HOSTILE_TRAINING_WASM", "kvrun-hostile-training.wasm"),
        ("KVRUN_TRAINING_V0_1_0_WASM", "kvrun-training-v0_1_0.wasm"),
        ("KVRUN_TRAINING_V0_1_1_WASM", "kvrun-training-v0_1_1.wasm"),
    ] {
        let wasm = out.join(file);
        assert!(
            wasm.is_file(),
            "the guest build did not produce {}",
            wasm.display()
        );
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
