//! `kvrun run`: a training component in the sandbox, with its grants, limits and audit.

use super::args::{Global, RunArgs};
use super::python_script::{self, ScriptOptions};
use super::{connect, runtime};
use kvrun::audit::AuditLog;
use kvrun::sandbox::{RunIo, RunOptions};
use kvrun::RuntimeOptions;
use kvrun::{Error, Result};
use std::io::IsTerminal;
use std::process::ExitCode;

/// `kvrun run`: the exit status is the component's, or one per limit (see the README).
pub(crate) async fn run(args: RunArgs, global: &Global) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let wasm = if args.component.extension().is_some_and(|e| e == "py") {
        let options = ScriptOptions {
            python_paths: args.python_paths,
            site_packages: args.site_packages,
            packages: args.packages,
        };
        let cache = RuntimeOptions::default_cache_dir();
        python_script::component(&args.component, &options, cache.as_deref(), progress)?
    } else {
        std::fs::read(&args.component)
            .map_err(|e| Error::io(format!("could not read {}", args.component.display()), e))?
    };
    let max_memory = usize::try_from(args.max_memory)
        .map_err(|_| Error::InvalidArgument("--max-memory is too large".into()))?;
    let run_id = {
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        hex::encode(bytes)
    };
    let audit = match &args.audit {
        Some(path) => AuditLog::to_file(path, &run_id)?,
        None => AuditLog::to_stderr(&run_id),
    };
    // The training component and its vault client.
    let runtime = runtime(2, max_memory.max(kvrun::ClientOptions::new("").max_memory))?;
    if progress {
        if let Some(dir) = RuntimeOptions::default_cache_dir() {
            let compiled =
                kvrun::component_cache::artifact_path(runtime.engine(), &dir, "training", &wasm);
            if !compiled.exists() {
                eprintln!("kvrun: compiling the component for this machine (first run only; cached in {})…", dir.display());
            }
        }
    }
    let connection = connect(global).await?;
    let options = RunOptions {
        args: args.args,
        secrets: args.secrets,
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
    let outcome =
        kvrun::sandbox::run(&runtime, &wasm, connection.options.clone(), options, io).await;
    connection.close().await;
    let exit = outcome?;
    if let Some(message) = exit.message() {
        eprintln!("kvrun: {message}");
    }
    Ok(ExitCode::from(exit.status()))
}
