//! The audit log of a run: one JSON line per secret access, never a value.
//!
//! ```text
//! {"time":"2026-11-28T16:20:01.123Z","run":"3f…","operation":"get-secret","name":"db-password","granted":true,"outcome":"ok"}
//! {"time":"2026-11-28T16:20:02.456Z","run":"3f…","operation":"use-secret","name":"mlflow-password","origin":"https://mlflow.internal:443","method":"POST","path_prefix":"/api/","outcome":"substituted"}
//! ```
//!
//! A `use-secret` record is written for every request in which the host substituted a
//! handle's value ([`crate::handles`]) and for every request it refused for a handle; it
//! names the request's origin and method (a method outside the standard ones is written as
//! `OTHER`) and the bound path prefix, never the request's own path or a value.
//!
//! A script's records also name the Python runtime it ran in (`"python_runtime":
//! "scientific"`).
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
use crate::policy::Origin;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many characters of an invalid name an audit record shows.
pub const INVALID_NAME_SHOWN: usize = 32;

/// Where audit lines go.
pub struct AuditLog {
    run_id: String,
    sink: Mutex<Box<dyn Write + Send>>,
    file: Option<crate::kept_files::KeptFile>,
    python_runtime: std::sync::OnceLock<&'static str>,
}

impl AuditLog {
    /// Appends to `path`: created with mode 0600, or an existing file of this user's that
    /// nobody else can write, made 0600 ([`crate::private_files::open_append`]).
    pub fn to_file(path: &Path, run_id: &str) -> Result<AuditLog> {
        let file = crate::private_files::open_append(path, "the audit file")?;
        let kept = crate::kept_files::KeptFile::at(path, "the run's audit file (--audit)");
        Ok(AuditLog {
            file: kept,
            ..AuditLog::to_writer(Box::new(file), run_id)
        })
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
            file: None,
            python_runtime: std::sync::OnceLock::new(),
        }
    }

    /// The file the records go to, when they go to a file: a run never sees or mounts it.
    pub fn file(&self) -> Option<&crate::kept_files::KeptFile> {
        self.file.as_ref()
    }

    /// Names the Python runtime a script ran in (`standard`, `scientific`): every record of
    /// the run says it as `"python_runtime"`. Set once.
    pub fn set_python_runtime(&self, name: &'static str) {
        let _ = self.python_runtime.set(name);
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Records one access and returns the bytes written. `name` is what the run asked for
    /// (never a value), recorded as the module docs say.
    pub fn record(&self, operation: &str, name: &str, granted: bool, outcome: &str) -> usize {
        let mut line = self.line(operation, Some(name));
        line["granted"] = granted.into();
        line["outcome"] = outcome.into();
        self.write_line(line)
    }

    /// Records the use of a secret's handle in an outgoing request: substituted, or refused.
    /// `name` is none when the handle is not one of the run's.
    pub fn record_use(&self, name: Option<&str>, target: &HandleTarget, outcome: &str) -> usize {
        let mut line = self.line("use-secret", name);
        line["origin"] = target.origin.to_string().into();
        line["method"] = target.method.into();
        line["path_prefix"] = target.path_prefix.into();
        line["outcome"] = outcome.into();
        self.write_line(line)
    }

    /// The fields every record has; `name` as the module docs say.
    fn line(&self, operation: &str, name: Option<&str>) -> serde_json::Value {
        let mut line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "run": self.run_id,
            "operation": operation,
            "name": name,
        });
        if let Some(name) = name.filter(|n| !crate::secret_name::is_valid(n)) {
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
        line
    }

    /// Records that the run was stopped because its audit budget of `budget` bytes is spent.
    pub fn record_budget_spent(&self, budget: u64) -> usize {
        let mut line = self.line("audit-limit", None);
        line.as_object_mut().map(|fields| fields.remove("name"));
        line["outcome"] = format!(
            "run stopped: its audit records reached the limit of {budget} bytes (--max-audit)"
        )
        .into();
        self.write_line(line)
    }

    /// Writes `line`, after the Python runtime when the run is a script's.
    fn write_line(&self, mut line: serde_json::Value) -> usize {
        if let Some(runtime) = self.python_runtime.get() {
            line["python_runtime"] = (*runtime).into();
        }
        let line = line.to_string();
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if writeln!(sink, "{line}").and_then(|_| sink.flush()).is_err() {
            tracing::error!(run = %self.run_id, "could not write the audit log");
        }
        line.len() + 1
    }
}

/// Where a handle went, as its audit record shows it.
pub struct HandleTarget<'a> {
    /// The request's origin.
    pub origin: &'a Origin,
    /// The request's method, if a standard one; else `OTHER`.
    pub method: &'static str,
    /// The bound path prefix, when the handle is one of the run's.
    pub path_prefix: Option<&'a str>,
}

/// A run's audit records reached its budget; the run is stopped with this as its trap.
#[derive(Debug)]
pub struct AuditLimitReached(pub u64);

impl std::fmt::Display for AuditLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the run's audit records reached {} bytes", self.0)
    }
}

impl std::error::Error for AuditLimitReached {}

/// A run's audit log and its byte budget, shared by everything that audits for the run (its
/// secret broker and its handle guard). Past the budget, a last record says why, every
/// later record is refused, and [`RunAudit::spent`] tells the sandbox to stop the run.
pub struct RunAudit {
    log: Arc<AuditLog>,
    max: u64,
    written: AtomicU64,
    spent: AtomicBool,
}

impl RunAudit {
    /// A budget of `max` bytes on `log`.
    pub fn new(log: Arc<AuditLog>, max: u64) -> Arc<RunAudit> {
        Arc::new(RunAudit {
            log,
            max,
            written: AtomicU64::new(0),
            spent: AtomicBool::new(false),
        })
    }

    /// Whether the budget is spent.
    pub fn spent(&self) -> bool {
        self.spent.load(Ordering::SeqCst)
    }

    /// The budget, in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Records one access ([`AuditLog::record`]) within the budget.
    pub fn record(
        &self,
        operation: &str,
        name: &str,
        granted: bool,
        outcome: &str,
    ) -> std::result::Result<(), AuditLimitReached> {
        self.charge(|log| log.record(operation, name, granted, outcome))
    }

    /// Records a handle's use ([`AuditLog::record_use`]) within the budget.
    pub fn record_use(
        &self,
        name: Option<&str>,
        target: &HandleTarget,
        outcome: &str,
    ) -> std::result::Result<(), AuditLimitReached> {
        self.charge(|log| log.record_use(name, target, outcome))
    }

    fn charge(
        &self,
        write: impl FnOnce(&AuditLog) -> usize,
    ) -> std::result::Result<(), AuditLimitReached> {
        if self.spent() {
            return Err(AuditLimitReached(self.max));
        }
        let bytes = write(&self.log) as u64;
        if self.written.fetch_add(bytes, Ordering::SeqCst) + bytes > self.max
            && !self.spent.swap(true, Ordering::SeqCst)
        {
            self.log.record_budget_spent(self.max);
        }
        if self.spent() {
            return Err(AuditLimitReached(self.max));
        }
        Ok(())
    }
}
