//! The `kvrun` command line. See the README for every command.

use clap::{Args, Parser, Subcommand, ValueEnum};
use kvrun::audit::AuditLog;
use kvrun::auth::AuthMethod;
use kvrun::sandbox::{DirGrant, RunIo, RunOptions};
use kvrun::vault::{LocalVault, LocalVaultOptions};
use kvrun::vault_choice::{AuthChoice, VaultChoiceOptions, VaultConnection, VaultSource};
use kvrun::{
    DeletedSecret, Error, NewSecret, PropertyUpdate, Result, Runtime, RuntimeOptions,
    SecretProperties, SecretString, SetOptions,
};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Hand secrets to training code: a Key Vault client component in a sandboxing host.
#[derive(Parser)]
#[command(name = "kvrun", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Data directory of the embedded local vault.
    #[arg(long, global = true, env = "KVRUN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Vault URL (https://NAME.vault.azure.net); without it, the embedded local vault.
    #[arg(long, global = true, env = "KVRUN_VAULT_URL")]
    vault: Option<String>,
    /// Extra CA certificate (PEM) to trust for --vault.
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// File holding the access token for --vault (else KVRUN_ACCESS_TOKEN).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Key Vault api-version.
    #[arg(long, global = true, env = "KVRUN_API_VERSION")]
    api_version: Option<String>,
    /// Credential for a remote vault (default: the token if one is given, else the Azure chain).
    #[arg(long, global = true, value_enum, env = "KVRUN_AUTH")]
    auth: Option<Auth>,
    /// Azure Resource Manager endpoint, for resolving a workspace's vault.
    #[arg(
        long,
        global = true,
        env = "KVRUN_MANAGEMENT_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    management_endpoint: String,
    /// DANGEROUS: send an Azure token to a vault that is not a Key Vault host (a test server),
    /// for whatever resource its challenge names.
    #[arg(long, global = true, env = "KVRUN_UNSAFE_TOKEN_TO_ANY_HOST", value_parser = clap::builder::BoolishValueParser::new())]
    unsafe_token_to_any_host: bool,
}

/// `--auth` values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    /// KVRUN_ACCESS_TOKEN or --token-file.
    Token,
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET.
    ClientSecret,
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE.
    WorkloadIdentity,
    /// IDENTITY_ENDPOINT/IDENTITY_HEADER, else the IMDS endpoint (full timeout, no probe).
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
}

impl Auth {
    fn choice(self) -> AuthChoice {
        match self {
            Auth::Token => AuthChoice::Token,
            Auth::ClientSecret => AuthChoice::Azure(AuthMethod::ClientSecret),
            Auth::WorkloadIdentity => AuthChoice::Azure(AuthMethod::WorkloadIdentity),
            Auth::ManagedIdentity => AuthChoice::Azure(AuthMethod::ManagedIdentity),
            Auth::AzureCli => AuthChoice::Azure(AuthMethod::AzureCli),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Set, read, list and delete secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Run the local vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Run an untrusted training component with only the secrets it is granted.
    Run(RunArgs),
    /// Show which vault commands use here, and where that came from.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Print the config file found, the vault it resolves to, and how.
    Show,
}

/// `kvrun run COMPONENT.wasm [options] [-- ARGS...]`.
#[derive(Args)]
struct RunArgs {
    /// The training component (`wasm32-wasip2`, training world).
    component: PathBuf,
    /// Grant the run this secret (repeatable); any other name is refused.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
    /// Let the run reach this origin over wasi:http (repeatable); default: no network.
    #[arg(long = "allow-http", value_name = "ORIGIN")]
    allow_http: Vec<String>,
    /// Set an environment variable, K=V (repeatable); nothing else is inherited.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Make a host directory visible, HOST::GUEST[:ro] (repeatable).
    #[arg(long = "dir", value_name = "HOST::GUEST[:ro]")]
    dirs: Vec<DirGrant>,
    /// Memory limit (e.g. 256MiB, 1GiB).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    max_memory: u64,
    /// Wall-clock limit (e.g. 30s, 10m, 2h).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Limit on stdout and stderr together (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_output: u64,
    /// Limit on the audit records the run's secret accesses produce (e.g. 4MiB); past it the
    /// run is stopped with status 120.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    max_audit: u64,
    /// Append audit records (JSON lines) to this file instead of stderr.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Arguments for the component.
    #[arg(last = true)]
    args: Vec<String>,
}

fn parse_env(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not K=V")),
    }
}

/// Parses `512MiB`, `1GiB`, `100MB`, `64k` or a plain number of bytes.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 512MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set a secret (a new version if it exists). The value comes from --value-from-env,
    /// --value-file, standard input, or a prompt that does not echo; never from argv.
    Set {
        name: String,
        /// Read the value from this environment variable.
        #[arg(long, conflicts_with = "value_file")]
        value_from_env: Option<String>,
        /// Read the value from this file (verbatim).
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// Content type, e.g. application/vnd.ms-password.
        #[arg(long)]
        content_type: Option<String>,
        /// A tag, KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Set many secrets at once.
    SetMany {
        /// A JSON object {"name": "value", ...}; `-` reads standard input.
        #[arg(
            long,
            required_unless_present = "from_env_prefix",
            conflicts_with = "from_env_prefix"
        )]
        from_json: Option<PathBuf>,
        /// Every environment variable PREFIXNAME becomes secret `name` (lower case, `_` → `-`).
        #[arg(long)]
        from_env_prefix: Option<String>,
    },
    /// Print a secret's value.
    Get {
        name: String,
        /// A version id (default: latest).
        #[arg(long)]
        version: Option<String>,
    },
    /// Print a JSON object name -> value (null for a missing name).
    GetMany {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List secret names (--output json for properties).
    List,
    /// List the versions of a secret.
    Versions { name: String },
    /// Delete a secret and all its versions (recoverable until purged).
    Delete { name: String },
    /// Change a secret's properties, never its value (latest version unless --version).
    SetAttributes {
        name: String,
        /// The version to change.
        #[arg(long)]
        version: Option<String>,
        /// Enable (true) or disable (false) reads.
        #[arg(long)]
        enabled: Option<bool>,
        /// New content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Replace the tags with these, KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Expiry: Unix seconds or an RFC 3339 time.
        #[arg(long, value_parser = parse_time)]
        expires: Option<i64>,
        /// Not valid before: Unix seconds or an RFC 3339 time.
        #[arg(long, value_parser = parse_time)]
        not_before: Option<i64>,
    },
    /// Show a deleted secret.
    ShowDeleted { name: String },
    /// List deleted secrets.
    ListDeleted,
    /// Recover a deleted secret.
    Recover { name: String },
    /// Purge a deleted secret for good.
    Purge { name: String },
    /// Back up every version of a secret into a file (only this vault can restore it).
    Backup {
        name: String,
        /// Where to write the backup.
        #[arg(long)]
        file: PathBuf,
    },
    /// Restore a secret from a backup file.
    Restore {
        /// The backup file.
        #[arg(long)]
        file: PathBuf,
    },
}

/// Unix seconds, or an RFC 3339 time such as 2027-01-31T00:00:00Z.
fn parse_time(text: &str) -> std::result::Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("{text:?} is neither Unix seconds nor an RFC 3339 time"))?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| format!("{text:?} is before 1970"))
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Serve the local vault over HTTPS until SIGINT or SIGTERM.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        addr: SocketAddr,
        /// Allow a non-loopback --addr.
        #[arg(long)]
        allow_remote: bool,
    },
}

fn parse_tag(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Vault(_) => "info",
        Command::Secret(_) | Command::Run(_) | Command::Workspace(_) => "warn",
    };
    init_logging(default_log);
    let outcome = match cli.command {
        Command::Vault(VaultCommand::Serve { addr, allow_remote }) => {
            serve(addr, allow_remote, cli.global.data_dir)
        }
        Command::Secret(command) => {
            current_thread().and_then(|rt| rt.block_on(secret(command, &cli.global)))
        }
        Command::Run(args) => current_thread().and_then(|rt| rt.block_on(run(args, &cli.global))),
        Command::Workspace(WorkspaceCommand::Show) => {
            current_thread().and_then(|rt| rt.block_on(workspace_show(&cli.global)))
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            match e.hint() {
                Some(hint) => eprintln!("kvrun: {e} ({hint})"),
                None => eprintln!("kvrun: {e}"),
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Logs to stderr, filtered by `KVRUN_LOG` (else `default`). Whatever the filter, events
/// below `INFO` from the WASI crates never print: they carry a run's raw output and the
/// arguments of its calls (`wasmtime_wasi::p2::write_stream` logs every byte written to
/// stdout before masking), which may hold granted values.
fn init_logging(default: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_guest_data = tracing_subscriber::filter::filter_fn(|metadata| {
        !(metadata.target().starts_with("wasmtime_wasi")
            && *metadata.level() > tracing::Level::INFO)
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(no_guest_data)
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
}

/// Exit statuses, one per kind of failure.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::NotFound(_) => 3,
        Error::InvalidName(_) | Error::InvalidArgument(_) | Error::Config(_) => 4,
        Error::Denied(_) => 5,
        Error::Unauthenticated(_) => 6,
        Error::Unavailable(_) | Error::Transport(_) | Error::Timeout(_) => 7,
        Error::Conflict(_) => 8,
        _ => 1,
    }
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

async fn secret(command: SecretCommand, global: &Global) -> Result<ExitCode> {
    // Read the value before anything starts, so a prompt is not mixed with other output.
    let pending_value = match &command {
        SecretCommand::Set {
            name,
            value_from_env,
            value_file,
            ..
        } => Some(read_value(
            name,
            value_from_env.as_deref(),
            value_file.as_deref(),
        )?),
        _ => None,
    };
    let runtime = runtime()?;
    let connection = connect(global).await?;
    let outcome = match connection.client(&runtime).await {
        Ok(mut client) => run_secret(&mut client, command, pending_value, global.output).await,
        Err(e) => Err(e),
    };
    connection.close().await;
    outcome
}

fn runtime() -> Result<Runtime> {
    Runtime::new(RuntimeOptions {
        cache_dir: RuntimeOptions::default_cache_dir(),
        ..RuntimeOptions::default()
    })
}

async fn connect(global: &Global) -> Result<VaultConnection> {
    let target = VaultChoiceOptions {
        vault_url: global.vault.clone(),
        ca_cert: global.ca_cert.clone(),
        token_file: global.token_file.clone(),
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
    if let VaultSource::Workspace(config, _) = &connection.source {
        eprintln!(
            "kvrun: using the vault {} named by {}",
            connection.options.vault_url,
            config.path.display()
        );
    }
    Ok(connection)
}

/// `kvrun workspace show`.
async fn workspace_show(global: &Global) -> Result<ExitCode> {
    let connection = connect(global).await?;
    let url = connection.options.vault_url.clone();
    let (from, config) = match &connection.source {
        VaultSource::Explicit => ("--vault / KVRUN_VAULT_URL".to_string(), None),
        VaultSource::Workspace(config, how) => (
            format!("workspace config, resolved from {how}"),
            Some(config.path.clone()),
        ),
        VaultSource::Embedded(dir) => (format!("embedded local vault in {}", dir.display()), None),
    };
    let line = match &config {
        Some(path) => format!("vault: {url}\nfrom: {from}\nconfig: {}", path.display()),
        None => format!("vault: {url}\nfrom: {from}"),
    };
    report(
        global.output,
        json!({ "vault": url, "from": from, "config": config }),
        line,
    );
    connection.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `kvrun run`: the exit status is the component's, or one per limit (see the README).
async fn run(args: RunArgs, global: &Global) -> Result<ExitCode> {
    let wasm = std::fs::read(&args.component)
        .map_err(|e| Error::io(format!("could not read {}", args.component.display()), e))?;
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
    let runtime = runtime()?;
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

async fn run_secret(
    client: &mut kvrun::Client,
    command: SecretCommand,
    value: Option<SecretString>,
    output: Output,
) -> Result<ExitCode> {
    match command {
        SecretCommand::Set {
            name,
            content_type,
            tags,
            ..
        } => {
            let value = value.expect("read before the session opened");
            let options = SetOptions { content_type, tags };
            let properties = client.set_secret(&name, &value, &options).await?;
            match output {
                Output::Json => print_json(&properties_json(&properties)),
                Output::Text => println!(
                    "set {} (version {})",
                    properties.name,
                    properties.version.as_deref().unwrap_or("?")
                ),
            }
        }
        SecretCommand::SetMany {
            from_json,
            from_env_prefix,
        } => {
            let secrets = match (from_json, from_env_prefix) {
                (Some(path), _) => secrets_from_json(&path)?,
                (None, Some(prefix)) => secrets_from_env(&prefix)?,
                (None, None) => unreachable!("clap requires one source"),
            };
            let outcomes = client.set_secrets(&secrets).await?;
            let mut failed = 0;
            let mut report = Map::new();
            for (secret, outcome) in secrets.iter().zip(outcomes) {
                match outcome {
                    Ok(p) => {
                        if output == Output::Text {
                            println!(
                                "set {} (version {})",
                                p.name,
                                p.version.as_deref().unwrap_or("?")
                            );
                        }
                        report.insert(secret.name.clone(), properties_json(&p));
                    }
                    Err(e) => {
                        failed += 1;
                        if output == Output::Text {
                            eprintln!("kvrun: {}: {e}", secret.name);
                        }
                        report.insert(secret.name.clone(), json!({ "error": e.to_string() }));
                    }
                }
            }
            if output == Output::Json {
                print_json(&Value::Object(report));
            }
            if failed > 0 {
                eprintln!("kvrun: {failed} of {} secrets were not set", secrets.len());
                return Ok(ExitCode::from(1));
            }
        }
        SecretCommand::Get { name, version } => {
            let secret = client.get_secret(&name, version.as_deref()).await?;
            match output {
                Output::Json => {
                    let mut object = properties_json(&secret.properties);
                    object["value"] = json!(secret.value.expose());
                    print_json(&object);
                }
                Output::Text => println!("{}", secret.value.expose()),
            }
        }
        SecretCommand::GetMany { names } => {
            let values = client.get_secrets(&names).await?;
            let object: Map<String, Value> = names
                .into_iter()
                .zip(values)
                .map(|(n, v)| (n, v.map_or(Value::Null, |v| json!(v.expose()))))
                .collect();
            print_json(&Value::Object(object));
        }
        SecretCommand::List => print_list(&client.list_secrets().await?, output, false),
        SecretCommand::Versions { name } => {
            print_list(&client.list_secret_versions(&name).await?, output, true)
        }
        SecretCommand::Delete { name } => {
            let deleted = client.delete_secret(&name).await?;
            match output {
                Output::Json => print_json(&deleted_json(&deleted)),
                Output::Text => println!("deleted {}", deleted.properties.name),
            }
        }
        SecretCommand::SetAttributes {
            name,
            version,
            enabled,
            content_type,
            tags,
            expires,
            not_before,
        } => {
            let update = PropertyUpdate {
                enabled,
                content_type,
                tags: (!tags.is_empty()).then_some(tags),
                not_before,
                expires,
            };
            let p = client
                .update_secret_properties(&name, version.as_deref(), &update)
                .await?;
            report(
                output,
                properties_json(&p),
                format!(
                    "updated {} (version {})",
                    p.name,
                    p.version.as_deref().unwrap_or("?")
                ),
            );
        }
        SecretCommand::ShowDeleted { name } => {
            let d = client.get_deleted_secret(&name).await?;
            let line = format!(
                "{}\tdeleted {}\tpurge after {}",
                d.properties.name,
                d.deleted_date.unwrap_or(0),
                d.scheduled_purge_date.unwrap_or(0)
            );
            report(output, deleted_json(&d), line);
        }
        SecretCommand::ListDeleted => {
            let deleted = client.list_deleted_secrets().await?;
            match output {
                Output::Json => {
                    print_json(&Value::Array(deleted.iter().map(deleted_json).collect()))
                }
                Output::Text => deleted
                    .iter()
                    .for_each(|d| println!("{}", d.properties.name)),
            }
        }
        SecretCommand::Recover { name } => {
            let p = client.recover_deleted_secret(&name).await?;
            report(output, properties_json(&p), format!("recovered {}", p.name));
        }
        SecretCommand::Purge { name } => {
            client.purge_deleted_secret(&name).await?;
            report(
                output,
                json!({ "name": name, "purged": true }),
                format!("purged {name}"),
            );
        }
        SecretCommand::Backup { name, file } => {
            let blob = client.backup_secret(&name).await?;
            kvrun::private_files::write(&file, blob.as_bytes(), 0o600, "the backup file")?;
            let line = format!("backed up {name} to {}", file.display());
            report(output, json!({ "name": name, "file": file }), line);
        }
        SecretCommand::Restore { file } => {
            let blob = std::fs::read_to_string(&file)
                .map_err(|e| Error::io(format!("could not read {}", file.display()), e))?;
            let p = client.restore_secret(blob.trim()).await?;
            report(output, properties_json(&p), format!("restored {}", p.name));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(items: &[SecretProperties], output: Output, versions: bool) {
    match output {
        Output::Json => print_json(&Value::Array(items.iter().map(properties_json).collect())),
        Output::Text => {
            for p in items {
                if versions {
                    println!(
                        "{}\t{}\t{}",
                        p.version.as_deref().unwrap_or("?"),
                        p.updated.unwrap_or(0),
                        if p.enabled { "enabled" } else { "disabled" }
                    );
                } else {
                    println!("{}", p.name);
                }
            }
        }
    }
}

/// Prints `json` or `line`, as the output format asks.
fn report(output: Output, json: Value, line: String) {
    match output {
        Output::Json => print_json(&json),
        Output::Text => println!("{line}"),
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values print")
    );
}

fn properties_json(p: &SecretProperties) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "id": p.id,
        "contentType": p.content_type,
        "enabled": p.enabled,
        "notBefore": p.not_before,
        "expires": p.expires,
        "created": p.created,
        "updated": p.updated,
        "tags": p.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
    })
}

fn deleted_json(d: &DeletedSecret) -> Value {
    let mut object = properties_json(&d.properties);
    object["recoveryId"] = json!(d.recovery_id);
    object["deletedDate"] = json!(d.deleted_date);
    object["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    object
}

/// The value of `secret set`: env var, file, standard input, or a hidden prompt.
fn read_value(name: &str, from_env: Option<&str>, file: Option<&Path>) -> Result<SecretString> {
    if let Some(var) = from_env {
        return std::env::var(var).map(SecretString::new).map_err(|_| {
            Error::InvalidArgument(format!(
                "environment variable {var} is not set (or not UTF-8)"
            ))
        });
    }
    if let Some(path) = file {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?;
        return String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|_| Error::InvalidArgument(format!("{} is not UTF-8 text", path.display())));
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("value for {name}: "))
            .map(SecretString::new)
            .map_err(|e| Error::io("reading the value from the terminal", e));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::io("reading the value from standard input", e))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(SecretString::new(text))
}

fn secrets_from_json(path: &Path) -> Result<Vec<NewSecret>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("reading standard input", e))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?
    };
    let text = SecretString::new(text);
    // serde's messages can quote the input: report only where it went wrong.
    let object: Map<String, Value> = serde_json::from_str(text.expose()).map_err(|e| {
        Error::InvalidArgument(format!(
            "{} is not a JSON object of names to string values (error at line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok(NewSecret {
                name,
                value: SecretString::new(value),
                options: SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            }),
            _ => Err(Error::InvalidArgument(format!(
                "the value of {name:?} in {} is not a string",
                path.display()
            ))),
        })
        .collect()
}

fn secrets_from_env(prefix: &str) -> Result<Vec<NewSecret>> {
    if prefix.is_empty() {
        return Err(Error::InvalidArgument(
            "--from-env-prefix must not be empty".into(),
        ));
    }
    let mut secrets: Vec<NewSecret> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let key = k.to_str()?;
            let rest = key.strip_prefix(prefix)?;
            Some(NewSecret {
                name: rest.to_ascii_lowercase().replace('_', "-"),
                value: SecretString::new(v.into_string().ok()?),
                options: SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            })
        })
        .collect();
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    if secrets.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no environment variable starts with {prefix:?}"
        )));
    }
    Ok(secrets)
}

fn serve(addr: SocketAddr, allow_remote: bool, data_dir: Option<PathBuf>) -> Result<ExitCode> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(Error::Config(format!(
            "{addr} is not a loopback address; the local vault listens on loopback only unless --allow-remote is given"
        )));
    }
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => LocalVaultOptions::default_data_dir()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    rt.block_on(async move {
        let vault = LocalVault::start(LocalVaultOptions {
            addr,
            ..LocalVaultOptions::ephemeral_port(data_dir)
        })
        .await?;
        eprintln!("kvrun local vault listening on {}", vault.url());
        eprintln!("  trust:  {}", vault.data_dir().join("ca.pem").display());
        eprintln!("  token:  {}", vault.data_dir().join("token").display());
        wait_for_signal().await?;
        eprintln!("kvrun local vault stopping");
        vault.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| Error::io("waiting for SIGINT", e)),
        _ = term.recv() => Ok(()),
    }
}
