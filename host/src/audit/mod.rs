//! The audit log of a run: one JSON line per secret access, never a value; each run's lines
//! chained under the audit key so that they prove themselves.
//!
//! ```text
//! {"time":"…","run":"3f…","seq":0,"operation":"run-start","program":"component","sha256":"…","secrets":["db-password"],"use_secrets":[],"prev":"","mac":"…"}
//! {"time":"…","run":"3f…","seq":1,"operation":"get-secret","name":"db-password","granted":true,"outcome":"ok","version":"4b…","fingerprint":"9c…","prev":"…","mac":"…"}
//! {"time":"…","run":"3f…","seq":2,"operation":"use-secret","name":"mlflow-password","origin":"https://mlflow.internal:443","method":"POST","path_prefix":"/api/","outcome":"substituted","version":"…","fingerprint":"…","prev":"…","mac":"…"}
//! {"time":"…","run":"3f…","seq":3,"operation":"run-end","status":0,"outcome":"exited with status 0","prev":"…","mac":"…"}
//! ```
//!
//! - A run's first record (`run-start`) names what ran (the component's or the script's
//!   SHA-256, the Python runtime and its version) and its grants and bindings; its last
//!   (`run-end`) its exit status and how it ended. The audit budget keeps room for the last
//!   record, so a run stopped by its budget still ends its log with it.
//! - A record that hands out or uses a value carries the secret's `version` (when the read
//!   says it) and the value's `fingerprint` under the audit key ([`AuditKey::fingerprint`]):
//!   `kvrun audit match` traces a leaked string to its runs, and the log holds no value.
//! - Every record carries its place in the run (`seq`), the mac of the run's record before it
//!   (`prev`) and its own `mac` under the audit key ([`key`]); [`verify`] checks them. A line
//!   is written with one `write` to a file opened for append, so runs sharing a file (several
//!   processes) interleave whole lines, and each run's chain verifies on its own.
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

pub mod key;
pub mod verify;

pub use key::AuditKey;

use crate::error::Result;
use crate::policy::Origin;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many characters of an invalid name an audit record shows.
pub const INVALID_NAME_SHOWN: usize = 32;

/// The most bytes of a run's end record the budget keeps room for: its outcome is cut to
/// fit.
pub const END_RECORD_ROOM: u64 = 1024;

/// Where audit lines go.
pub struct AuditLog {
    run_id: String,
    key: Arc<AuditKey>,
    sink: Mutex<Sink>,
    file: Option<crate::kept_files::KeptFile>,
    python_runtime: std::sync::OnceLock<&'static str>,
}

/// The writer and the run's chain so far.
struct Sink {
    out: Box<dyn Write + Send>,
    seq: u64,
    prev: String,
}

/// A value a record says was handed out or used: its fingerprint goes in the record, never
/// the value.
pub struct ValueSeen<'a> {
    /// The value.
    pub value: &'a crate::SecretString,
    /// The version it was read from, when the read said.
    pub version: Option<&'a str>,
}

/// What a run is, for its first record.
pub struct RunStart<'a> {
    /// `component` or `script`.
    pub program: &'static str,
    /// The SHA-256 of the component's or the script's bytes, in hex.
    pub sha256: &'a str,
    /// The Python runtime and its version, for a script.
    pub python: Option<(&'a str, &'a str)>,
    /// The names granted with `--secret`.
    pub secrets: &'a [String],
    /// The `--use-secret` bindings, as written back ([`crate::handles::UseBinding`]).
    pub use_secrets: Vec<String>,
}

impl AuditLog {
    /// Appends to `path`: created with mode 0600, or an existing file of this user's that
    /// nobody else can write, made 0600 ([`crate::private_files::open_append`]).
    /// Records are chained under `key`.
    pub fn to_file(path: &Path, run_id: &str, key: Arc<AuditKey>) -> Result<AuditLog> {
        let file = crate::private_files::open_append(path, "the audit file")?;
        let kept = crate::kept_files::KeptFile::at(path, "the run's audit file (--audit)");
        Ok(AuditLog {
            file: kept,
            ..AuditLog::to_writer(Box::new(file), run_id, key)
        })
    }

    /// Writes to standard error.
    pub fn to_stderr(run_id: &str, key: Arc<AuditKey>) -> AuditLog {
        AuditLog::to_writer(Box::new(std::io::stderr()), run_id, key)
    }

    /// Writes to any writer (tests capture it this way). Give it whole lines at once: each
    /// line is one `write_all`.
    pub fn to_writer(out: Box<dyn Write + Send>, run_id: &str, key: Arc<AuditKey>) -> AuditLog {
        AuditLog {
            run_id: run_id.to_string(),
            key,
            sink: Mutex::new(Sink {
                out,
                seq: 0,
                prev: String::new(),
            }),
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

    /// The record of one access. `name` is what the run asked for (never a value), recorded
    /// as the module docs say; `seen` the value handed out.
    fn access(
        &self,
        operation: &str,
        name: &str,
        granted: bool,
        outcome: &str,
        seen: Option<&ValueSeen>,
    ) -> serde_json::Value {
        let mut line = self.line(operation, Some(name));
        line["granted"] = granted.into();
        line["outcome"] = outcome.into();
        self.add_value(&mut line, seen);
        line
    }

    /// The record of a secret handle's use in an outgoing request: substituted (with the
    /// value `seen`), or refused. `name` is none when the handle is not one of the run's.
    fn usage(
        &self,
        name: Option<&str>,
        target: &HandleTarget,
        outcome: &str,
        seen: Option<&ValueSeen>,
    ) -> serde_json::Value {
        let mut line = self.line("use-secret", name);
        line["origin"] = target.origin.to_string().into();
        line["method"] = target.method.into();
        line["path_prefix"] = target.path_prefix.into();
        line["outcome"] = outcome.into();
        self.add_value(&mut line, seen);
        line
    }

    /// The run's first record: what ran, its grants and bindings.
    fn start(&self, start: &RunStart) -> serde_json::Value {
        let mut line = self.line("run-start", None);
        line.as_object_mut().map(|fields| fields.remove("name"));
        line["program"] = start.program.into();
        line["sha256"] = start.sha256.into();
        if let Some((runtime, version)) = start.python {
            line["python_runtime_version"] = format!("{runtime} ({version})").into();
        }
        line["secrets"] = start.secrets.into();
        line["use_secrets"] = start.use_secrets.clone().into();
        line
    }

    /// The run's last record: its exit status and how it ended, the outcome cut to
    /// [`END_RECORD_ROOM`] with the rest of the record.
    fn end(&self, status: u8, outcome: &str) -> serde_json::Value {
        let mut line = self.line("run-end", None);
        line.as_object_mut().map(|fields| fields.remove("name"));
        line["status"] = status.into();
        line["outcome"] = outcome.chars().take(600).collect::<String>().into();
        line
    }

    fn add_value(&self, line: &mut serde_json::Value, seen: Option<&ValueSeen>) {
        if let Some(seen) = seen {
            line["version"] = seen.version.into();
            line["fingerprint"] = self.key.fingerprint(seen.value.expose().as_bytes()).into();
        }
    }

    /// The fields every record has; `name` as the module docs say.
    fn line(&self, operation: &str, name: Option<&str>) -> serde_json::Value {
        let mut line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "run": self.run_id,
            "seq": 0,
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

    /// Chains `line` (its place, the previous record's mac, its own mac; after the Python
    /// runtime when the run is a script's) and writes it in one `write_all` if `admit` takes
    /// its length in bytes; returns that length, or none when refused.
    fn append(
        &self,
        mut line: serde_json::Value,
        admit: impl FnOnce(u64) -> bool,
    ) -> Option<usize> {
        if let Some(runtime) = self.python_runtime.get() {
            line["python_runtime"] = (*runtime).into();
        }
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        line["seq"] = sink.seq.into();
        line["prev"] = sink.prev.as_str().into();
        let mut text = line.to_string();
        text.pop();
        let mac = self.key.mac(text.as_bytes());
        text.push_str(&format!(",\"mac\":\"{mac}\"}}\n"));
        if !admit(text.len() as u64) {
            return None;
        }
        if sink
            .out
            .write_all(text.as_bytes())
            .and_then(|_| sink.out.flush())
            .is_err()
        {
            tracing::error!(run = %self.run_id, "could not write the audit log");
        }
        sink.seq += 1;
        sink.prev = mac;
        Some(text.len())
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
/// secret broker and its handle guard). The budget keeps [`END_RECORD_ROOM`] for the run's
/// last record: a record that would eat into it is not written, every later one is refused,
/// and [`RunAudit::spent`] tells the sandbox to stop the run, whose end record says why.
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

    /// Writes the run's first record ([`RunStart`]), within the budget.
    pub fn start(&self, start: &RunStart) -> std::result::Result<(), AuditLimitReached> {
        self.charge(self.log.start(start))
    }

    /// Writes the run's last record: always, in the room the budget kept for it.
    pub fn end(&self, status: u8, outcome: &str) {
        let written = self.log.append(self.log.end(status, outcome), |_| true);
        self.written
            .fetch_add(written.unwrap_or(0) as u64, Ordering::SeqCst);
    }

    /// Records one access within the budget. `name` is what the run asked for (never a value),
    /// recorded as the module docs say; `seen` the value handed out.
    pub fn record(
        &self,
        operation: &str,
        name: &str,
        granted: bool,
        outcome: &str,
        seen: Option<&ValueSeen>,
    ) -> std::result::Result<(), AuditLimitReached> {
        self.charge(self.log.access(operation, name, granted, outcome, seen))
    }

    /// Records a handle's use in an outgoing request, substituted (with the value `seen`) or
    /// refused, within the budget. `name` is none when the handle is not one of the run's.
    pub fn record_use(
        &self,
        name: Option<&str>,
        target: &HandleTarget,
        outcome: &str,
        seen: Option<&ValueSeen>,
    ) -> std::result::Result<(), AuditLimitReached> {
        self.charge(self.log.usage(name, target, outcome, seen))
    }

    fn charge(&self, line: serde_json::Value) -> std::result::Result<(), AuditLimitReached> {
        if self.spent() {
            return Err(AuditLimitReached(self.max));
        }
        let room = self.max.saturating_sub(END_RECORD_ROOM);
        // Under the log's lock: concurrent records are admitted one at a time.
        let admitted = self.log.append(line, |bytes| {
            let fits = self.written.load(Ordering::SeqCst) + bytes <= room;
            if fits {
                self.written.fetch_add(bytes, Ordering::SeqCst);
            }
            fits
        });
        match admitted {
            Some(_) => Ok(()),
            None => {
                self.spent.store(true, Ordering::SeqCst);
                Err(AuditLimitReached(self.max))
            }
        }
    }
}
