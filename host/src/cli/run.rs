//! `kvrun run`: a training component in the sandbox, with its grants, limits and audit; and
//! `kvrun compile`, which fills the same caches ahead of the first run.

use super::args::{CompileArgs, Global, RunArgs, ScriptOptions};
use super::python_script;
use super::{connect, runtime};
use kvrun::audit::AuditLog;
use kvrun::sandbox::{RunIo, RunOptions, Sandbox};
use kvrun::RuntimeOptions;
use kvrun::{Error, Result};
use std::io::IsTerminal;
use std::process::ExitCode;

/// `kvrun run`: the exit status is the component's, or one per limit (see the README).
pub(crate) async fn run(args: RunArgs, global: &Global) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let wasm = component_bytes(&args.component, &args.script, progress)?;
    let max_memory = max_memory(args.max_memory)?;
    let run_id = {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        hex::encode(bytes)
    };
    let audit = match &args.audit {
        Some(path) => AuditLog::to_file(path, &run_id)?,
        None => AuditLog::to_stderr(&run_id),
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
    };
    let io = RunIo {
        stdout: Box::new(std::io::stdout()),
        stderr: Box::new(std::io::stderr()),
        audit: std::sync::Arc::new(audit),
    };
    let outcome = async {
        let mut sandbox = Sandbox::new(&runtime, connection.options.clone())?;
        if let Some(pem) = http_ca {
            sandbox = sandbox.with_outbound_ca(pem)?;
        }
        let component = {
            let _notice = progress.then(|| SlowNotice::after(NOTICE_AFTER, COMPILING));
            sandbox.prepare(&wasm)?
        };
        sandbox.run(&component, options, io).await
    }
    .await;
    connection.close().await;
    let exit = outcome?;
    if let Some(message) = exit.message() {
        eprintln!("kvrun: {message}");
    }
    Ok(ExitCode::from(exit.status()))
}

/// `kvrun compile`: builds a script (if it is one) and compiles the component with the engine
/// `kvrun run --max-memory` would use, so that the first run loads both from the caches.
pub(crate) fn compile(args: CompileArgs) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let Some(cache) = RuntimeOptions::default_cache_dir() else {
        return Err(Error::Config(
            "there is no cache directory to compile into: set KVRUN_CACHE_DIR".into(),
        ));
    };
    let wasm = component_bytes(&args.component, &args.script, progress)?;
    let runtime = run_runtime(max_memory(args.max_memory)?)?;
    let loaded = {
        let _notice = progress.then(|| SlowNotice::after(NOTICE_AFTER, COMPILING));
        runtime.load_component("training", &wasm)?
    };
    let what = match loaded.outcome {
        kvrun::component_cache::CacheOutcome::Hit => "was already compiled",
        kvrun::component_cache::CacheOutcome::Compiled => "compiled",
    };
    println!(
        "{} {what} ({:.1} s), cached in {}",
        args.component.display(),
        loaded.elapsed.as_secs_f64(),
        cache.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// How long loading a component may take before a terminal is told it is being compiled (a
/// cached one loads in milliseconds).
const NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
const COMPILING: &str =
    "kvrun: compiling the component for this machine (once; later runs load it from the cache)…";

/// Prints a line on stderr if it is still alive after a delay: progress for a step that is
/// slow only sometimes (compiling, which a cache hit skips), known only by how long it takes.
struct SlowNotice {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowNotice {
    fn after(delay: std::time::Duration, line: &'static str) -> SlowNotice {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(delay) {
                eprintln!("{line}");
            }
        });
        SlowNotice {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for SlowNotice {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The component's bytes: read from a `.wasm`, or built from a `.py` script.
fn component_bytes(
    path: &std::path::Path,
    script: &ScriptOptions,
    progress: bool,
) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "py") {
        let cache = RuntimeOptions::default_cache_dir();
        return python_script::component(path, script, cache.as_deref(), progress);
    }
    std::fs::read(path).map_err(|e| Error::io(format!("could not read {}", path.display()), e))
}

fn max_memory(bytes: u64) -> Result<usize> {
    usize::try_from(bytes).map_err(|_| Error::InvalidArgument("--max-memory is too large".into()))
}

/// The runtime of one run: the training component and its vault client.
fn run_runtime(max_memory: usize) -> Result<kvrun::Runtime> {
    runtime(2, max_memory.max(kvrun::ClientOptions::new("").max_memory))
}
