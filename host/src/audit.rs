//! The audit log of a run: one JSON line per secret access, never a value.
//!
//! ```text
//! {"time":"2026-11-28T16:20:01.123Z","run":"3f…","operation":"get-secret","name":"db-password","granted":true,"outcome":"ok"}
//! ```
//!
//! Lines go to a file (opened for append, flushed after every line) or to stderr.

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Where audit lines go.
pub struct AuditLog {
    run_id: String,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl AuditLog {
    /// Appends to `path` (created with mode 0600 if missing).
    pub fn to_file(path: &Path, run_id: &str) -> Result<AuditLog> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|e| {
            Error::io(
                format!("could not open the audit file {}", path.display()),
                e,
            )
        })?;
        Ok(AuditLog::to_writer(Box::new(file), run_id))
    }

    /// Writes to standard error.
    pub fn to_stderr(run_id: &str) -> AuditLog {
        AuditLog::to_writer(Box::new(std::io::stderr()), run_id)
    }

    /// Writes to any writer (tests capture it this way).
    pub fn to_writer(sink: Box<dyn Write + Send>, run_id: &str) -> AuditLog {
        AuditLog {
            run_id: run_id.to_string(),
            sink: Mutex::new(sink),
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Records one access. `name` is what the run asked for (never a value).
    pub fn record(&self, operation: &str, name: &str, granted: bool, outcome: &str) {
        let line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "run": self.run_id,
            "operation": operation,
            "name": name,
            "granted": granted,
            "outcome": outcome,
        });
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if writeln!(sink, "{line}").and_then(|_| sink.flush()).is_err() {
            tracing::error!(run = %self.run_id, "could not write the audit log");
        }
    }
}
