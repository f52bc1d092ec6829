//! The audit log of a run: one JSON line per secret access, never a value.
//!
//! ```text
//! {"time":"2026-11-28T16:20:01.123Z","run":"3f…","operation":"get-secret","name":"db-password","granted":true,"outcome":"ok"}
//! ```
//!
//! Lines go to a file (opened for append, flushed after every line) or to stderr.
//!
//! A run chooses the names it asks for, so a name is written as it is only when it is a valid
//! secret name (1–127 of `0-9 A-Z a-z -`). Any other is recorded cut to its first
//! [`INVALID_NAME_SHOWN`] characters, each outside that set shown as `?`, with
//! `"name_invalid": true` and its length in characters: a run cannot make the host write
//! long or arbitrary text (such as a value it read) under its name. The bytes a run can make
//! the host write are bounded by its audit budget ([`crate::sandbox::RunOptions::max_audit`]).

use crate::error::Result;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// How many characters of an invalid name an audit record shows.
pub const INVALID_NAME_SHOWN: usize = 32;

/// Where audit lines go.
pub struct AuditLog {
    run_id: String,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl AuditLog {
    /// Appends to `path`: created with mode 0600, or an existing file of this user's that
    /// nobody else can write, made 0600 ([`crate::private_files::open_append`]).
    pub fn to_file(path: &Path, run_id: &str) -> Result<AuditLog> {
        let file = crate::private_files::open_append(path, "the audit file")?;
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

    /// Records one access and returns the bytes written. `name` is what the run asked for
    /// (never a value), recorded as the module docs say.
    pub fn record(&self, operation: &str, name: &str, granted: bool, outcome: &str) -> usize {
        let mut line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "run": self.run_id,
            "operation": operation,
            "name": name,
            "granted": granted,
            "outcome": outcome,
        });
        if !crate::secret_name::is_valid(name) {
            let shown: String = name
                .chars()
                .take(INVALID_NAME_SHOWN)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            line["name"] = shown.into();
            line["name_invalid"] = true.into();
            line["name_length"] = name.chars().count().into();
        }
        self.write_line(&line.to_string())
    }

    /// Records that the run was stopped because its audit budget of `budget` bytes is spent.
    pub fn record_budget_spent(&self, budget: u64) -> usize {
        let line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "run": self.run_id,
            "operation": "audit-limit",
            "outcome": format!("run stopped: its audit records reached the limit of {budget} bytes (--max-audit)"),
        });
        self.write_line(&line.to_string())
    }

    fn write_line(&self, line: &str) -> usize {
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if writeln!(sink, "{line}").and_then(|_| sink.flush()).is_err() {
            tracing::error!(run = %self.run_id, "could not write the audit log");
        }
        line.len() + 1
    }
}
