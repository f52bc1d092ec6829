//! Building kvrun's Python runtime component with componentize-py, run as a tool.
//!
//! componentize-py pre-initialises what it builds: it runs the entry module's import-time code
//! natively (in its own wasmtime, with the given directories mounted read-write) and keeps
//! the result. So it is only ever given kvrun's own files, copied into a fresh private
//! directory, and it runs as a tool, never as a host for anything of the user's:
//!
//! - found by absolute path: `KVRUN_COMPONENTIZE_PY`, else a `componentize-py` command in an
//!   absolute `PATH` directory, else `python3 -I -m componentize_py` (isolated mode: neither
//!   the working directory nor user site-packages nor `PYTHON*` variables count);
//! - in a fresh private working directory that is also its `HOME` and `TMPDIR`;
//! - with a cleared environment: `PATH` (absolute entries only), the locale, and the
//!   variables that keep Python from reading user site-packages; no `KVRUN_*`, `AZURE_*`,
//!   `IDENTITY_*` or anything else of kvrun's.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// kvrun's files in the runtime component, by their path in the build directory.
const BUNDLE: &[(&str, &str)] = &[
    (
        "kvrun_entry.py",
        include_str!("../../python/kvrun_entry.py"),
    ),
    (
        "kvrun/__init__.py",
        include_str!("../../python/kvrun/__init__.py"),
    ),
    ("kvrun/http.py", include_str!("../../python/kvrun/http.py")),
    (
        "kvrun/_failures.py",
        include_str!("../../python/kvrun/_failures.py"),
    ),
    (
        "kvrun/_transport.py",
        include_str!("../../python/kvrun/_transport.py"),
    ),
    (
        "kvrun/_component.py",
        include_str!("../../python/kvrun/_component.py"),
    ),
    (
        "kvrun/_script.py",
        include_str!("../../python/kvrun/_script.py"),
    ),
    (
        "azureml/__init__.py",
        include_str!("../../python/azureml/__init__.py"),
    ),
    (
        "azureml/core/__init__.py",
        include_str!("../../python/azureml/core/__init__.py"),
    ),
    ("wit/kvrun.wit", include_str!("../../../wit/kvrun.wit")),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// The environment variables componentize-py keeps (besides `PATH`, `HOME` and `TMPDIR`,
/// which kvrun sets): the locale only.
const KEPT_ENV: &[&str] = &["LANG", "LC_ALL", "LC_CTYPE"];

/// How componentize-py is started.
#[derive(Debug)]
pub(crate) struct Componentize {
    program: PathBuf,
    prefix: Vec<&'static str>,
    /// What identifies this componentize-py in the runtime's key: for a command, its path,
    /// size and modification time (an upgrade rewrites it); for the module, its version.
    identity: String,
}

impl Componentize {
    /// Finds componentize-py (see the module docs), or says how to install it.
    pub(crate) fn find() -> Result<Componentize> {
        if let Some(program) = std::env::var_os("KVRUN_COMPONENTIZE_PY") {
            let program = std::path::absolute(PathBuf::from(&program))
                .ok()
                .filter(|p| p.is_file())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "KVRUN_COMPONENTIZE_PY={} is not a file: point it at a componentize-py command (`pip install componentize-py`), or unset it",
                        Path::new(&program).display()
                    ))
                })?;
            return Componentize::command(program);
        }
        if let Some(program) = on_path("componentize-py") {
            return Componentize::command(program);
        }
        if let Some(python) = on_path("python3") {
            let module = Componentize {
                program: python,
                prefix: vec!["-I", "-m", "componentize_py"],
                identity: String::new(),
            };
            if let Some(version) = module.version() {
                return Ok(Componentize {
                    identity: version,
                    ..module
                });
            }
        }
        Err(Error::Config(
            "running a Python script needs kvrun's Python runtime, built once with componentize-py, which was not found (neither KVRUN_COMPONENTIZE_PY, a componentize-py command on PATH, nor python3 -I -m componentize_py): install it with `pip install componentize-py`, or set KVRUN_COMPONENTIZE_PY to its path".into(),
        ))
    }

    fn command(program: PathBuf) -> Result<Componentize> {
        let metadata = std::fs::metadata(&program)
            .map_err(|e| Error::io(format!("reading {}", program.display()), e))?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity = format!("{}:{}:{modified}", program.display(), metadata.len());
        Ok(Componentize {
            program,
            prefix: Vec::new(),
            identity,
        })
    }

    /// `componentize-py --version`, if it answers like componentize-py.
    pub(crate) fn version(&self) -> Option<String> {
        let work = tempfile::tempdir().ok()?;
        let output = self.isolated(work.path()).arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        version.starts_with("componentize-py").then_some(version)
    }

    /// A command for componentize-py in `work`, with a cleared environment.
    fn isolated(&self, work: &Path) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix).current_dir(work).env_clear();
        for name in KEPT_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("PATH", absolute_path_entries())
            .env("HOME", work)
            .env("TMPDIR", work)
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONSAFEPATH", "1");
        command
    }
}

/// `name` in an absolute `PATH` directory (relative entries, which mean the working
/// directory, are skipped).
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `PATH` with only its absolute entries.
pub(crate) fn absolute_path_entries() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::env::split_paths(&path).filter(|dir| dir.is_absolute()))
        .unwrap_or_default()
}

/// The runtime component's key: a hash of everything that goes into it; without
/// `componentize`, of kvrun's own part only (what a run looks the last build up by).
pub(crate) fn runtime_key(componentize: Option<&Componentize>) -> String {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(b"kvrun python runtime v2");
    part(env!("CARGO_PKG_VERSION").as_bytes());
    if let Some(componentize) = componentize {
        part(componentize.identity.as_bytes());
    }
    for (path, contents) in BUNDLE {
        part(path.as_bytes());
        part(contents.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// Builds the runtime component: kvrun's files in a fresh private directory, componentize-py
/// run there (see the module docs).
pub(crate) fn build(componentize: &Componentize) -> Result<Vec<u8>> {
    let work = tempfile::tempdir().map_err(|e| Error::io("creating a build directory", e))?;
    let dir = work.path();
    let bundle = dir.join("bundle");
    for (path, contents) in BUNDLE {
        let path = bundle.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, contents)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    let out = dir.join("python-runtime.wasm");
    let output = componentize
        .isolated(dir)
        .arg("-d")
        .arg(bundle.join("wit"))
        .args(["-w", "training", "componentize", "-p"])
        .arg(&bundle)
        .arg("kvrun_entry")
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| Error::io(format!("running {}", componentize.program.display()), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(Error::Component(format!(
            "componentize-py ({}) could not build kvrun's Python runtime; its last lines:\n{}",
            componentize.program.display(),
            lines[lines.len().saturating_sub(12)..].join("\n")
        )));
    }
    std::fs::read(&out).map_err(|e| Error::io(format!("reading {}", out.display()), e))
}
