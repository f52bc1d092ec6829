//! The `kvrun` command line, by job: [`args`] (what can be typed), one module per command
//! family ([`secret`], [`run`], [`vault`], [`workspace`], [`audit`]), [`output`] (the one path every
//! answer is printed through), [`value_input`] (where secret values come from, never argv).
//! See the README for every command.

mod args;
mod audit;
mod failure;
mod output;
mod run;
mod secret;
mod value_input;
mod vault;
mod warning;
mod workspace;

use args::{Auth, Cli, Command, Global, VaultCommand, WorkspaceCommand};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use kvrun::vault_choice::{VaultChoiceOptions, VaultConnection, VaultSource};
use kvrun::{Error, Result, Runtime, RuntimeOptions};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Parses the arguments, runs the command, and maps a failure to one line and a status.
pub fn main() -> ExitCode {
    forget_empty_option_variables(&Cli::command());
    // Built anew: clap reads an option's variable when the command is built, not when it
    // parses, so the command that parses must come after the empty ones are gone.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let default_log = match cli.command {
        Command::Vault(_) => "info",
        Command::Secret(_)
        | Command::Run(_)
        | Command::Compile(_)
        | Command::Workspace(_)
        | Command::Audit(_) => "warn",
    };
    init_logging(default_log);
    if let Some(e) = unused_options(&cli.command, &matches) {
        let shown = failure::render(&e, cli.global.output);
        eprintln!("{}", shown.text);
        return ExitCode::from(shown.status);
    }
    let outcome = match cli.command {
        Command::Vault(VaultCommand::Serve {
            addr,
            allow_remote,
            public_url,
        }) => vault::serve(addr, allow_remote, public_url, cli.global.data_dir),
        Command::Secret(command) => {
            current_thread().and_then(|rt| rt.block_on(secret::secret(command, &cli.global)))
        }
        Command::Run(args) => {
            current_thread().and_then(|rt| rt.block_on(run::run(*args, &cli.global)))
        }
        Command::Compile(args) => run::compile(args, &cli.global),
        Command::Audit(command) => audit::audit(command, &cli.global),
        Command::Workspace(WorkspaceCommand::Show) => {
            current_thread().and_then(|rt| rt.block_on(workspace::workspace_show(&cli.global)))
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            let shown = failure::render(&e, cli.global.output);
            eprintln!("{}", shown.text);
            ExitCode::from(shown.status)
        }
    }
}

/// Unsets every option's environment variable that is set but empty (`KVRUN_DATA_DIR=`), in
/// this process, before clap reads them: an empty variable means unset, as the library
/// treats `KVRUN_CACHE_DIR` and `KVRUN_DATA_DIR`, where clap would refuse an empty
/// `--data-dir` or `--auth` in the user's name. Runs first in `main`, before any thread.
fn forget_empty_option_variables(command: &clap::Command) {
    for name in command.get_arguments().filter_map(|arg| arg.get_env()) {
        if std::env::var_os(name).is_some_and(|value| value.is_empty()) {
            std::env::remove_var(name);
        }
    }
    for subcommand in command.get_subcommands() {
        forget_empty_option_variables(subcommand);
    }
}

/// The global options that choose and reach a remote vault (ids of [`Global`]'s fields).
const VAULT_OPTIONS: [&str; 7] = [
    "vault",
    "ca_cert",
    "token_file",
    "api_version",
    "auth",
    "management_endpoint",
    "unsafe_token_to_any_host",
];

/// Global options given on the command line that `command` does not use, refused in one line
/// (`kvrun --vault URL vault serve` would otherwise serve the local vault as if it were
/// heeded). Values from the environment are not refused: they are there for other commands.
fn unused_options(command: &Command, matches: &ArgMatches) -> Option<Error> {
    let (name, also, why): (&str, &[&str], &str) = match command {
        Command::Vault(_) => (
            "vault serve",
            &[],
            "the vault options are for the commands that talk to a vault",
        ),
        Command::Compile(_) => (
            "compile",
            &["data_dir"],
            "it talks to no vault, it only compiles into the cache",
        ),
        Command::Audit(_) => (
            "audit",
            &[],
            "it reads audit files and the audit key, it talks to no vault",
        ),
        Command::Secret(_) | Command::Run(_) | Command::Workspace(_) => return None,
    };
    let mut levels = vec![matches];
    while let Some((_, sub)) = levels.last().and_then(|m| m.subcommand()) {
        levels.push(sub);
    }
    let given: Vec<String> = VAULT_OPTIONS
        .iter()
        .chain(also)
        .filter(|id| {
            levels
                .iter()
                .any(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        })
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    (!given.is_empty()).then(|| {
        Error::InvalidArgument(format!(
            "`kvrun {name}` does not use {}: {why}; leave {} out",
            given.join(", "),
            if given.len() == 1 { "it" } else { "them" }
        ))
    })
}

/// Logs to stderr. Without `KVRUN_LOG`, warnings and errors print as plain lines in the
/// command line's voice (`kvrun: warning: …`), with `default` as the filter (`vault serve`
/// keeps its request log, in the log format); with `KVRUN_LOG` (a `tracing` filter), every
/// event prints in the log format. Whatever the filter, events below `INFO` from the WASI
/// crates never print: they carry a run's raw output and the arguments of its calls
/// (`wasmtime_wasi::p2::write_stream` logs every byte written to stdout before masking),
/// which may hold granted values.
pub(crate) fn init_logging(default: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let asked = tracing_subscriber::EnvFilter::try_from_env("KVRUN_LOG").ok();
    let plain = asked.is_none() && default == "warn";
    let filter = asked.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let no_guest_data = tracing_subscriber::filter::filter_fn(|metadata| {
        !(metadata.target().starts_with("wasmtime_wasi")
            && *metadata.level() > tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = if plain {
        layer.event_format(warning::PlainLine).boxed()
    } else {
        layer.boxed()
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(no_guest_data).with_filter(filter))
        .init();
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// The runtime of one command: `instances` pooled slots whose memories may grow to
/// `max_memory` (the pool follows the work, and the address-space limit).
pub(crate) fn runtime(instances: u32, max_memory: usize) -> Result<Runtime> {
    Runtime::new(RuntimeOptions {
        cache_dir: RuntimeOptions::default_cache_dir(),
        max_instances: instances,
        max_memory,
        allocation: None,
    })
}

pub(crate) async fn connect(global: &Global) -> Result<VaultConnection> {
    let target = VaultChoiceOptions {
        vault_url: global.vault.clone(),
        ca_cert: global.ca_cert.clone(),
        token_file: global.token_file.clone(),
        token: None,
        data_dir: global.data_dir.clone(),
        auth: global.auth.map(Auth::choice),
        management_endpoint: global.management_endpoint.clone(),
        start_dir: std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?,
        cache_dir: RuntimeOptions::default_cache_dir(),
        api_version: global.api_version.clone(),
        unsafe_token_to_any_host: global.unsafe_token_to_any_host,
    };
    let connection = VaultConnection::open(&target).await?;
    if let Some(name) = connection.local_name() {
        failure::remember_local_vault(&connection.options.vault_url, name);
    }
    if let VaultSource::Workspace(config, _) = &connection.source {
        eprintln!(
            "kvrun: using the vault {} named by {}",
            connection.options.vault_url,
            config.path.display()
        );
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vault_option_names_a_global_argument() {
        let command = Cli::command();
        for id in VAULT_OPTIONS.iter().chain(&["data_dir"]) {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == *id)
                .unwrap_or_else(|| panic!("{id} is not an argument"));
            assert!(arg.is_global_set(), "{id} is a global option");
            assert_eq!(
                arg.get_long(),
                Some(id.replace('_', "-").as_str()),
                "the refusal names it as --{id}"
            );
        }
    }
}
