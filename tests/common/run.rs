//! Training runs in the sandbox with everything they write captured.

use super::runtime;
use kvrun::ClientOptions;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The example training component (`examples/train`).
pub static EXAMPLE_TRAIN_WASM: &[u8] = include_bytes!(env!("KVRUN_EXAMPLE_TRAIN_WASM"));
/// The hostile training component (`tests/fixtures/hostile-training`).
pub static HOSTILE_TRAINING_WASM: &[u8] = include_bytes!(env!("KVRUN_HOSTILE_TRAINING_WASM"));
/// A training component built against `kvrun:secrets@0.1.0` (`tests/fixtures/training-v0_1_0`).
pub static TRAINING_V0_1_0_WASM: &[u8] = include_bytes!(env!("KVRUN_TRAINING_V0_1_0_WASM"));
/// A training component built against `kvrun:secrets@0.1.1` (`tests/fixtures/training-v0_1_1`).
pub static TRAINING_V0_1_1_WASM: &[u8] = include_bytes!(env!("KVRUN_TRAINING_V0_1_1_WASM"));

/// A writer into shared memory, for capturing a run's output and audit log.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

/// The audit key of every test run: fixed, so that tests can verify and match records.
pub fn audit_key() -> Arc<kvrun::audit::AuditKey> {
    Arc::new(kvrun::audit::AuditKey::from_bytes(&[42; 32]))
}

/// What a run left behind.
pub struct Ran {
    pub exit: kvrun::sandbox::RunExit,
    pub stdout: String,
    pub stderr: String,
    /// The records of the run's secret accesses (its `run-start` and `run-end` left out).
    pub audit: Vec<serde_json::Value>,
    /// Every audit line, as written.
    pub audit_lines: Vec<String>,
}

impl Ran {
    /// Everything the run wrote, both streams.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs a training component against `vault` and captures everything.
pub async fn run_training(
    wasm: &[u8],
    vault: ClientOptions,
    options: kvrun::sandbox::RunOptions,
) -> Ran {
    let capture = RunCapture::default();
    let exit = kvrun::sandbox::run(runtime(), wasm, vault, options, capture.io())
        .await
        .expect("the run starts");
    capture.ran(exit)
}

/// Runs a prepared component in `sandbox` and captures everything.
pub async fn run_in(
    sandbox: &kvrun::sandbox::Sandbox,
    component: &kvrun::sandbox::TrainingComponent,
    options: kvrun::sandbox::RunOptions,
) -> Ran {
    let capture = RunCapture::default();
    let exit = sandbox
        .run(component, options, capture.io())
        .await
        .expect("the run starts");
    capture.ran(exit)
}

/// Run I/O that throws everything away (for runs whose output does not matter).
pub fn discarded_io() -> kvrun::sandbox::RunIo {
    kvrun::sandbox::RunIo {
        stdout: Box::new(std::io::sink()),
        stderr: Box::new(std::io::sink()),
        audit: Arc::new(kvrun::audit::AuditLog::to_writer(
            Box::new(std::io::sink()),
            "discarded",
            audit_key(),
        )),
        output_files: Default::default(),
    }
}

/// Where a run's stdout, stderr and audit records are collected.
#[derive(Default)]
struct RunCapture {
    stdout: Capture,
    stderr: Capture,
    audit: Capture,
}

impl RunCapture {
    fn io(&self) -> kvrun::sandbox::RunIo {
        kvrun::sandbox::RunIo {
            stdout: Box::new(self.stdout.clone()),
            stderr: Box::new(self.stderr.clone()),
            audit: Arc::new(kvrun::audit::AuditLog::to_writer(
                Box::new(self.audit.clone()),
                "test-run",
                audit_key(),
            )),
            output_files: Default::default(),
        }
    }

    fn ran(&self, exit: kvrun::sandbox::RunExit) -> Ran {
        let audit_lines: Vec<String> = self.audit.text().lines().map(String::from).collect();
        Ran {
            exit,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
            audit: audit_lines
                .iter()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).expect("audit lines are JSON")
                })
                .filter(|r| r["operation"] != "run-start" && r["operation"] != "run-end")
                .collect(),
            audit_lines,
        }
    }
}

/// Run options with `args` and the given grants.
pub fn run_options(args: &[&str], secrets: &[&str]) -> kvrun::sandbox::RunOptions {
    kvrun::sandbox::RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(30),
        ..Default::default()
    }
}
