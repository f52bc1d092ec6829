//! Python scripts in the sandbox: one runtime component, the script mounted read-only.
//!
//! `kvrun run SCRIPT.py` (and [`crate::sandbox::Sandbox::run_script`]) runs an ordinary
//! Python script as untrusted training code. No code of the user's ever runs outside the
//! sandbox, at build time or otherwise:
//!
//! - **One runtime component** (`runtime_build.rs`): CPython from componentize-py, kvrun's
//!   `kvrun` and `azureml.core` modules and an entry point (`host/python/`), with the standard
//!   library imported while componentize-py pre-initialises it. It is built once per
//!   (componentize-py, kvrun's Python files, WIT) from kvrun's own files only, with
//!   componentize-py run as an isolated tool, then cached and compiled like any component
//!   ([`build_runtime`], `kvrun compile --python`). A run takes the latest runtime built from
//!   kvrun's current Python files ([`load_runtime`]) without needing componentize-py.
//! - **The script runs inside the run** (`tree_view.rs`): its directory, each `--python-path`
//!   directory and the `--site-packages` directory are mounted read-only as views without
//!   hidden entries, links out of the tree or kvrun's own directories, at [`SCRIPT_DIR`],
//!   `/python-path/N` and `/site-packages`. The entry point puts them on `sys.path`, makes the
//!   script's directory the working directory and runs the script as `__main__`: import-time
//!   code included, every line runs with the run's grants, limits, masking and audit, and a
//!   new or edited script needs no build.

mod imports;
mod runtime_build;
mod tree_view;

pub use imports::{imported_modules, runtime_for, SCIENTIFIC_ONLY};
pub(crate) use runtime_build::{absolute_path_entries, on_path};
pub use tree_view::{TreeView, ViewRules};

use crate::component_cache::Loaded;
use crate::error::{Error, Result};
use crate::private_files;
use crate::runtime::Runtime;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the script's directory is mounted in the run.
pub const SCRIPT_DIR: &str = "/script";

/// The guest directories kvrun mounts for a script; a `--dir` may not use them.
pub const RESERVED_GUEST_DIRS: &[&str] = &[SCRIPT_DIR, "/python-path", "/site-packages"];

/// A Python script to run, and where its imports come from besides its own directory.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// The script (`.py`); its directory tree is visible to the run, read-only.
    pub path: PathBuf,
    /// More directories of modules and packages (`--python-path`), read-only, in order.
    pub python_paths: Vec<PathBuf>,
    /// A directory of pure-Python packages (`--site-packages`), read-only, searched last.
    pub site_packages: Option<PathBuf>,
}

impl Script {
    /// The script at `path`, importing from its own directory only.
    pub fn new(path: impl Into<PathBuf>) -> Script {
        Script {
            path: path.into(),
            ..Script::default()
        }
    }

    /// The script's file name and directory, checked to be a readable `.py` file.
    pub(crate) fn location(&self) -> Result<(String, PathBuf)> {
        let metadata = std::fs::metadata(&self.path).map_err(|e| {
            Error::io(
                format!("could not read the script {}", self.path.display()),
                e,
            )
        })?;
        if !metadata.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a file: give the path of a Python script",
                self.path.display()
            )));
        }
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.'))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: the script's name must be UTF-8 and not hidden",
                    self.path.display()
                ))
            })?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok((name.to_string(), dir))
    }
}

/// The read-only views a script's run mounts, and the script's path in the run.
pub(crate) struct ScriptMounts {
    /// `(view, guest directory)`, the script's directory first.
    pub(crate) views: Vec<(TreeView, String)>,
    /// The script's path in the run (its `argv[0]`).
    pub(crate) program: String,
}

impl ScriptMounts {
    /// Makes the views of `script`'s directories in a private directory under `parent`.
    pub(crate) fn new(script: &Script, parent: &Path, rules: &ViewRules) -> Result<ScriptMounts> {
        let (name, dir) = script.location()?;
        let mut views = vec![(
            TreeView::build(&dir, parent, rules)?,
            SCRIPT_DIR.to_string(),
        )];
        for (index, path) in script.python_paths.iter().enumerate() {
            views.push((
                TreeView::build(path, parent, rules)
                    .map_err(|e| Error::InvalidArgument(format!("--python-path: {e}")))?,
                format!("/python-path/{index}"),
            ));
        }
        if let Some(path) = &script.site_packages {
            views.push((
                TreeView::build(path, parent, rules)
                    .map_err(|e| Error::InvalidArgument(format!("--site-packages: {e}")))?,
                "/site-packages".to_string(),
            ));
        }
        Ok(ScriptMounts {
            views,
            program: format!("{SCRIPT_DIR}/{name}"),
        })
    }

    /// Every view's notes, one line each.
    pub(crate) fn notes(&self) -> impl Iterator<Item = &String> {
        self.views.iter().flat_map(|(view, _)| view.notes())
    }
}

/// Loads kvrun's Python runtime component for a run: the last one built from kvrun's
/// current Python files, from the compile cache or compiled from its cached wasm, without
/// looking for componentize-py (a runner image may drop it after `kvrun compile --python`);
/// else as [`build_runtime`] does. `progress` gets a line before each slow step.
pub fn load_runtime(runtime: &Runtime, progress: &dyn Fn(&str)) -> Result<Loaded> {
    let cached = latest_build(runtime.cache_dir())
        .and_then(|key| Some((wasm_path(runtime.cache_dir()?, &key), key)))
        .filter(|(wasm, _)| wasm.exists());
    match cached {
        Some((wasm, key)) => {
            let loaded = runtime.load_component_by_key("python-runtime", &key, || {
                private_files::check_file(&wasm, "the cached Python runtime")?;
                let bytes = std::fs::read(&wasm)
                    .map_err(|e| Error::io(format!("could not read {}", wasm.display()), e))?;
                compiling(progress, &bytes);
                Ok(Cow::Owned(bytes))
            })?;
            compiled(progress, &loaded);
            Ok(loaded)
        }
        None => build_runtime(runtime, progress),
    }
}

/// Loads kvrun's Python runtime component for the componentize-py found now (see
/// `runtime_build.rs`): from the compile cache, else compiled from the cached runtime wasm,
/// else built first (about half a minute; compiling takes about as long), and remembers it
/// as the latest build for runs. `progress` gets a line before each slow step.
pub fn build_runtime(runtime: &Runtime, progress: &dyn Fn(&str)) -> Result<Loaded> {
    let componentize = runtime_build::Componentize::find()?;
    let key = runtime_build::runtime_key(Some(&componentize));
    let loaded = runtime.load_component_by_key("python-runtime", &key, || {
        let wasm = runtime_wasm(runtime.cache_dir(), &componentize, &key, progress)?;
        compiling(progress, &wasm);
        Ok(Cow::Owned(wasm))
    })?;
    compiled(progress, &loaded);
    if let Some(pointer) = latest_build_path(runtime.cache_dir()) {
        if let Err(e) =
            private_files::write(&pointer, key.as_bytes(), 0o600, "the Python runtime's key")
        {
            tracing::warn!("the Python runtime was not recorded as the latest build ({e})");
        }
    }
    Ok(loaded)
}

/// The end line of a compile, when there was one.
fn compiled(progress: &dyn Fn(&str), loaded: &Loaded) {
    if loaded.outcome == crate::component_cache::CacheOutcome::Compiled {
        progress(&format!(
            "kvrun: compiled the Python runtime in {:.1} s",
            loaded.elapsed.as_secs_f64()
        ));
    }
}

fn compiling(progress: &dyn Fn(&str), wasm: &[u8]) {
    progress(&format!(
        "kvrun: compiling the Python runtime ({} MB) for this machine (once)…",
        wasm.len() >> 20
    ));
}

/// `CACHE_DIR/python/runtime-KEY.wasm`.
fn wasm_path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("python").join(format!("runtime-{key}.wasm"))
}

/// Where the key of the latest runtime built from kvrun's current Python files is kept.
fn latest_build_path(cache_dir: Option<&Path>) -> Option<PathBuf> {
    let files = runtime_build::runtime_key(None);
    cache_dir.map(|dir| dir.join("python").join(format!("latest-{files}")))
}

/// The key of the latest runtime built from kvrun's current Python files, if it is recorded
/// in a file of this user's that nobody else can write.
fn latest_build(cache_dir: Option<&Path>) -> Option<String> {
    private_files::read_key(&latest_build_path(cache_dir)?, "the Python runtime's key")
}

/// The runtime component's wasm: from `CACHE_DIR/python/`, else built and stored there.
fn runtime_wasm(
    cache_dir: Option<&Path>,
    componentize: &runtime_build::Componentize,
    key: &str,
    progress: &dyn Fn(&str),
) -> Result<Vec<u8>> {
    let cached = cache_dir.map(|dir| wasm_path(dir, key));
    if let Some(path) = cached.as_ref().filter(|p| p.exists()) {
        private_files::check_file(path, "the cached Python runtime")?;
        return std::fs::read(path)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e));
    }
    progress(&format!(
        "kvrun: building kvrun's Python runtime with {} (once per machine)…",
        componentize
            .version()
            .as_deref()
            .unwrap_or("componentize-py")
    ));
    let started = Instant::now();
    let wasm = runtime_build::build(componentize)?;
    progress(&format!(
        "kvrun: built the Python runtime ({} MB) in {:.1} s",
        wasm.len() >> 20,
        started.elapsed().as_secs_f64()
    ));
    if let Some(path) = cached {
        let stored = path
            .parent()
            .map_or(Ok(()), |dir| {
                private_files::private_dir(dir, "the Python runtime cache")
            })
            .and_then(|()| private_files::write(&path, &wasm, 0o600, "the cached Python runtime"));
        if let Err(e) = stored {
            tracing::warn!("the Python runtime was not cached ({e})");
        }
    }
    Ok(wasm)
}
