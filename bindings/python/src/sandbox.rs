//! `_kvrun.Sandbox` and `_kvrun.Component`: training components run by the host's sandbox.
//!
//! A `Sandbox` has its own engine (a [`Runtime`] sized for `max_runs` concurrent runs of at
//! most `max_memory` each: two instances per run, the training component and its vault
//! client) and reads secrets through the `Vault` it was made from. Everything a run may
//! use is given per run, exactly as `kvrun run` takes it; see `kvrun::sandbox` for the
//! isolation model.

use crate::blocking;
use crate::errors::IntoPyResult;
use crate::sink::{PySink, SharedBuffer};
use crate::vault::{Shared, Vault};
use kvrun::audit::{AuditKey, AuditLog};
use kvrun::python::Script;
use kvrun::sandbox::{DirGrant, PythonKind, RunExit, RunIo, RunOptions, TrainingComponent};
use kvrun::{Error, Runtime, RuntimeOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A sandbox for training components.
#[pyclass(module = "kvrun._kvrun", frozen)]
pub struct Sandbox {
    sandbox: Arc<kvrun::sandbox::Sandbox>,
    max_memory: usize,
    vault: Arc<Shared>,
    /// The key every run's audit records are chained and fingerprinted under.
    audit_key: Arc<AuditKey>,
}

/// A training component, compiled (or loaded from the cache) and linked.
#[pyclass(module = "kvrun._kvrun", frozen)]
pub struct Component {
    component: Arc<TrainingComponent>,
}

/// One of kvrun's Python runtimes, prepared for a sandbox's scripts.
#[pyclass(module = "kvrun._kvrun", frozen)]
pub struct PythonRuntime {
    runtime: Arc<kvrun::sandbox::PythonRuntime>,
}

#[pymethods]
impl PythonRuntime {
    /// `standard` or `scientific`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.runtime.kind().name()
    }
}

/// A progress line of a one-time step (building or preparing a Python runtime, compiling
/// it), as an `INFO` record of the `kvrun` logger.
fn log_progress(line: &str) {
    Python::attach(|py| {
        let logged = py
            .import("logging")
            .and_then(|logging| logging.call_method1("getLogger", ("kvrun",)))
            .and_then(|logger| logger.call_method1("info", (line,)));
        if let Err(e) = logged {
            e.print(py);
        }
    });
}

/// What `Sandbox.run` runs: a component, or a script in a Python runtime.
#[derive(FromPyObject)]
enum Target<'py> {
    Component(PyRef<'py, Component>),
    Python(PyRef<'py, PythonRuntime>),
}

/// The runtime `script` needs by its imports (see `kvrun::python::runtime_for`): `standard` or
/// `scientific`.
#[pyfunction]
#[pyo3(signature = (script, python_path=Vec::new(), site_packages=None))]
pub fn python_runtime_for(
    script: PathBuf,
    python_path: Vec<PathBuf>,
    site_packages: Option<PathBuf>,
) -> PyResult<&'static str> {
    let script = Script {
        path: script,
        python_paths: python_path,
        site_packages,
    };
    Ok(kvrun::python::runtime_for(&script).py()?.name())
}

#[pymethods]
impl Sandbox {
    #[new]
    #[pyo3(signature = (vault, max_runs=32, max_memory=512 << 20, http_ca_pem=None, read_cache_ttl=None, audit_key=None))]
    fn new(
        py: Python<'_>,
        vault: &Vault,
        max_runs: u32,
        max_memory: usize,
        http_ca_pem: Option<Vec<u8>>,
        read_cache_ttl: Option<f64>,
        audit_key: Option<PathBuf>,
    ) -> PyResult<Sandbox> {
        if max_runs == 0 {
            return Err(Error::InvalidArgument("max_runs must be at least 1".into())).py();
        }
        let read_cache_ttl = read_cache_ttl
            .map(|t| positive_seconds("read_cache_ttl", t))
            .transpose()?;
        let options = vault.shared.options.clone();
        let (key, key_file) =
            AuditKey::resolve(audit_key.as_deref(), vault.shared.data_dir.as_deref()).py()?;
        let sandbox = blocking::within(py, || {
            let runtime = Runtime::new(RuntimeOptions {
                cache_dir: RuntimeOptions::default_cache_dir(),
                max_instances: max_runs.saturating_mul(2),
                max_memory: max_memory.max(options.max_memory),
                allocation: None,
            })?;
            let mut sandbox = kvrun::sandbox::Sandbox::new(&runtime, options)?
                .with_unreadable_file(&key_file, "the audit key (audit_key)");
            if let Some(ttl) = read_cache_ttl {
                sandbox = sandbox.with_read_cache(ttl);
            }
            match http_ca_pem {
                Some(pem) => sandbox.with_outbound_ca(pem),
                None => Ok(sandbox),
            }
        })
        .py()?;
        Ok(Sandbox {
            sandbox: Arc::new(sandbox),
            max_memory,
            vault: vault.shared.clone(),
            audit_key: Arc::new(key),
        })
    }

    /// The largest memory limit a run may ask for, in bytes.
    #[getter]
    fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// The requests the vault clients of this sandbox's finished runs have sent.
    #[getter]
    fn vault_requests(&self) -> u64 {
        self.sandbox.vault_requests()
    }

    /// Compiles (or loads from the cache) and links a `training` component.
    fn prepare(&self, py: Python<'_>, wasm: Vec<u8>) -> PyResult<Component> {
        let sandbox = self.sandbox.clone();
        let compiling = !sandbox.is_compiled(&wasm);
        if compiling {
            log_progress(kvrun::sandbox::COMPILING_COMPONENT);
        }
        let started = std::time::Instant::now();
        let component = py.detach(move || sandbox.prepare(&wasm)).py()?;
        if compiling {
            log_progress(&format!(
                "kvrun: compiled the component in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(Component {
            component: Arc::new(component),
        })
    }

    /// Loads (building, or preparing, and compiling it on first use) kvrun's Python runtime
    /// `kind` (`standard` or `scientific`), in which `run` runs scripts.
    fn prepare_python(&self, py: Python<'_>, kind: &str) -> PyResult<PythonRuntime> {
        let kind = match kind {
            "standard" => PythonKind::Standard,
            "scientific" => PythonKind::Scientific,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "python_runtime={other:?}: it is \"standard\" or \"scientific\""
                )))
                .py()
            }
        };
        let sandbox = self.sandbox.clone();
        let runtime = py
            .detach(move || sandbox.prepare_python(kind, &log_progress))
            .py()?;
        Ok(PythonRuntime {
            runtime: Arc::new(runtime),
        })
    }

    /// Runs `component`, or, with `script`, the Python script at that path in `component`
    /// (the Python runtime) with `python_path` and `site_packages` visible; returns a dict
    /// with `status`, `exit_code`, `stop_reason`, `message`, `run_id` and `audit` (the audit
    /// log's JSON lines).
    #[pyo3(signature = (component, stdout, stderr, secrets, args, env, dirs, allow_http, use_secrets, max_memory=None, timeout=None, max_output=None, max_audit=None, script=None, python_path=Vec::new(), site_packages=None, max_echoes=None, max_open_files=None))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        component: Target<'py>,
        stdout: Py<PyAny>,
        stderr: Py<PyAny>,
        secrets: Vec<String>,
        args: Vec<String>,
        env: Vec<(String, String)>,
        dirs: Vec<String>,
        allow_http: Vec<String>,
        use_secrets: Vec<String>,
        max_memory: Option<usize>,
        timeout: Option<f64>,
        max_output: Option<u64>,
        max_audit: Option<u64>,
        script: Option<PathBuf>,
        python_path: Vec<PathBuf>,
        site_packages: Option<PathBuf>,
        max_echoes: Option<u32>,
        max_open_files: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if self.vault.is_closed() {
            return Err(Error::Config(
                "the Keyvault of this sandbox is closed".into(),
            ))
            .py();
        }
        let defaults = RunOptions::default();
        let dirs = dirs
            .iter()
            .map(|d| {
                d.parse::<DirGrant>()
                    .map_err(|e| Error::InvalidArgument(format!("dirs: {e}")))
            })
            .collect::<kvrun::Result<Vec<_>>>()
            .py()?;
        let timeout = match timeout {
            None => defaults.timeout,
            Some(t) => positive_seconds("timeout", t)?,
        };
        let options = RunOptions {
            args,
            secrets,
            use_secrets,
            allow_http,
            env,
            dirs,
            max_memory: max_memory.unwrap_or(match &component {
                Target::Python(python) if python.runtime.kind() == PythonKind::Scientific => {
                    kvrun::scientific::DEFAULT_MAX_MEMORY
                }
                _ => defaults.max_memory.min(self.max_memory),
            }),
            timeout,
            max_output: max_output.unwrap_or(defaults.max_output),
            max_audit: max_audit.unwrap_or(defaults.max_audit),
            max_echoes: max_echoes.unwrap_or(defaults.max_echoes),
            max_open_files: max_open_files.unwrap_or(defaults.max_open_files),
            handle_lifetime: defaults.handle_lifetime,
        };
        let run_id = {
            let mut bytes = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            hex::encode(bytes)
        };
        let audit = SharedBuffer::default();
        let io = RunIo {
            stdout: Box::new(PySink::new(stdout)),
            stderr: Box::new(PySink::new(stderr)),
            audit: Arc::new(AuditLog::to_writer(
                Box::new(audit.clone()),
                &run_id,
                self.audit_key.clone(),
            )),
            output_files: Default::default(),
        };
        let sandbox = &self.sandbox;
        let exit = match (component, script) {
            (Target::Python(python), Some(path)) => {
                let script = Script {
                    path,
                    python_paths: python_path,
                    site_packages,
                };
                let python = python.runtime.clone();
                blocking::wait(py, sandbox.run_script(&python, &script, options, io))
            }
            (Target::Component(component), None) => {
                let component = component.component.clone();
                blocking::wait(py, sandbox.run(&component, options, io))
            }
            _ => Err(Error::InvalidArgument(
                "a script runs in a Python runtime, and a component alone".into(),
            )),
        }
        .py()?;
        let result = PyDict::new(py);
        let (exit_code, stop_reason) = match &exit {
            RunExit::Code(code) => (Some(*code), None),
            RunExit::Timeout(_) => (None, Some("timeout")),
            RunExit::MemoryLimit(_) => (None, Some("memory")),
            RunExit::OutputLimit(_) => (None, Some("output")),
            RunExit::Trap(_) => (None, Some("trap")),
            RunExit::AuditLimit(_) => (None, Some("audit")),
            RunExit::EchoLimit(_) => (None, Some("echo")),
            _ => (None, Some("other")),
        };
        result.set_item("status", exit.status())?;
        result.set_item("exit_code", exit_code)?;
        result.set_item("stop_reason", stop_reason)?;
        result.set_item("message", exit.message())?;
        result.set_item("run_id", run_id)?;
        result.set_item(
            "audit",
            String::from_utf8_lossy(&audit.contents()).into_owned(),
        )?;
        Ok(result)
    }
}

/// `seconds` as a duration, if it is a positive finite number; else an `InvalidArgument`
/// that names the argument.
fn positive_seconds(argument: &str, seconds: f64) -> PyResult<Duration> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Error::InvalidArgument(format!(
            "{argument} must be a positive number of seconds, not {seconds}"
        )))
        .py()
    }
}
