//! Shared test helpers, by job: the shared runtimes (here), a real local vault ([`vault`]), a
//! raw scripted server ([`raw_server`]), and captured training runs ([`run`]).
#![allow(dead_code, unused_imports)]

mod raw_server;
mod run;
mod vault;

pub use raw_server::*;
pub use run::*;
pub use vault::*;

use kvrun::client::RetryOptions;
use kvrun::{Runtime, RuntimeOptions};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The hostile stand-in for the vault client component (`tests/fixtures/hostile-vault-client`).
pub static HOSTILE_WASM: &[u8] = include_bytes!(env!("KVRUN_HOSTILE_WASM"));

/// Compiled components are cached here, shared by every test binary.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("kvrun-test-cache")
}

/// One runtime per test binary (compiling the component once).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeOptions {
            cache_dir: Some(cache_dir()),
            ..RuntimeOptions::default()
        })
        .expect("runtime")
    })
}

/// A runtime whose vault client is the hostile fixture.
pub fn hostile_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::with_vault_component(
            RuntimeOptions {
                cache_dir: Some(cache_dir()),
                ..RuntimeOptions::default()
            },
            HOSTILE_WASM,
        )
        .expect("hostile runtime")
    })
}

/// A fast retry budget for tests.
pub fn quick_retry() -> RetryOptions {
    RetryOptions {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        deadline: Duration::from_secs(10),
    }
}

/// Makes `command`'s process start under an address-space limit of `kib` KiB, as
/// `ulimit -v KIB` does (`setrlimit(RLIMIT_AS)` between fork and exec).
pub fn limit_address_space(command: &mut std::process::Command, kib: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: kib * 1024,
                rlim_max: kib * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Asserts that a command succeeded (showing its stderr if not) and returns its stdout.
pub fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}
