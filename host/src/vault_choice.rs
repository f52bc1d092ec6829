//! Choosing the vault a command talks to, and the connection that reaches it.
//!
//! Order: `--vault URL`, then `KVRUN_VAULT_URL`, then a workspace config found from the
//! current directory upwards ([`crate::workspace`]), then the embedded local vault, started
//! in-process on `127.0.0.1:0` over the data directory (`--data-dir`, `KVRUN_DATA_DIR`,
//! else the platform data dir).
//!
//! A remote vault's credential: with `--auth token` (or by default when one is there) the
//! static token from `KVRUN_ACCESS_TOKEN` or `--token-file`; with `--auth METHOD` that Azure
//! source; by default otherwise the Azure chain ([`crate::auth`]). `--ca-cert` adds a
//! CA to trust (the public roots are always trusted for a remote vault).
//!
//! Azure tokens go only to Key Vault hosts, after their challenge ([`crate::auth`]). A
//! vault chosen by a config file must be an `https` Key Vault URL ([`crate::workspace`]), so
//! a static token, the user's explicit choice for an explicit vault, never reaches a host
//! that a file named.

use crate::auth::Credential;
use crate::auth::{AuthMethod, AuthOptions, TokenProvider};
use crate::client::{Client, ClientOptions};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::secret::SecretString;
use crate::transport::TransportOptions;
use crate::vault::{LocalVault, LocalVaultOptions};
use crate::workspace::{self, Resolved, WorkspaceConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// The environment variable that holds a remote vault's access token.
pub const TOKEN_ENV: &str = "KVRUN_ACCESS_TOKEN";

/// How to authenticate to a remote vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthChoice {
    /// A static token (`KVRUN_ACCESS_TOKEN` or `--token-file`).
    Token,
    /// One Azure source.
    Azure(AuthMethod),
}

impl std::str::FromStr for AuthChoice {
    type Err = Error;

    /// The names `--auth` takes: `token`, `client-secret`, `workload-identity`,
    /// `managed-identity`, `azure-cli`.
    fn from_str(text: &str) -> Result<AuthChoice> {
        Ok(match text {
            "token" => AuthChoice::Token,
            "client-secret" => AuthChoice::Azure(AuthMethod::ClientSecret),
            "workload-identity" => AuthChoice::Azure(AuthMethod::WorkloadIdentity),
            "managed-identity" => AuthChoice::Azure(AuthMethod::ManagedIdentity),
            "azure-cli" => AuthChoice::Azure(AuthMethod::AzureCli),
            other => {
                return Err(Error::Config(format!(
                    "unknown auth method {other:?}; use token, client-secret, workload-identity, managed-identity or azure-cli"
                )))
            }
        })
    }
}

/// Everything that decides the vault and its credential.
#[derive(Clone, Debug, Default)]
pub struct VaultChoiceOptions {
    /// `--vault` or `KVRUN_VAULT_URL`.
    pub vault_url: Option<String>,
    /// `--ca-cert`.
    pub ca_cert: Option<PathBuf>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// A static token given by an embedding program (the Python `token=` argument); it
    /// wins over `KVRUN_ACCESS_TOKEN` and `--token-file`.
    pub token: Option<SecretString>,
    /// `--data-dir` or `KVRUN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--auth`.
    pub auth: Option<AuthChoice>,
    /// Azure Resource Manager endpoint for workspace resolution.
    pub management_endpoint: String,
    /// Where the workspace config search starts.
    pub start_dir: PathBuf,
    /// Where resolved workspaces are cached.
    pub cache_dir: Option<PathBuf>,
    /// `--api-version`.
    pub api_version: Option<String>,
    /// `--unsafe-token-to-any-host`: answer a vault's challenge with an Azure token even when
    /// the vault is not a Key Vault host ([`Credential::allow_any_host`]). Never read from a
    /// file.
    pub unsafe_token_to_any_host: bool,
}

/// Where the vault came from.
#[derive(Clone, Debug)]
pub enum VaultSource {
    /// `--vault` or `KVRUN_VAULT_URL`.
    Explicit,
    /// A workspace config, resolved as described.
    Workspace(WorkspaceConfig, &'static str),
    /// The embedded local vault.
    Embedded(PathBuf),
}

/// How to reach the chosen vault; owns the embedded vault when there is one.
pub struct VaultConnection {
    /// Client options for that vault (URL, trust, credential, api-version).
    pub options: ClientOptions,
    /// Where the vault came from.
    pub source: VaultSource,
    embedded: Option<LocalVault>,
}

impl VaultConnection {
    /// Picks the vault, starts the embedded one if that is the choice, and builds the client
    /// options with the credential.
    pub async fn open(choice: &VaultChoiceOptions) -> Result<VaultConnection> {
        let ca_pem = match &choice.ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::io(
                    format!("could not read the CA certificate {}", path.display()),
                    e,
                )
            })?),
            None => None,
        };
        let explicit = choice.vault_url.clone().filter(|u| !u.is_empty());
        let found = match explicit {
            Some(_) => None,
            None => workspace::find(&choice.start_dir)?,
        };
        // One provider for the workspace resolution and the vault: one cache, one IMDS probe.
        let mut azure: Option<Arc<TokenProvider>> = None;
        let (url, source) = match (explicit, found) {
            (Some(url), _) => (url, VaultSource::Explicit),
            (None, Some(config)) => {
                let provider = azure.get_or_insert(azure_provider(choice, ca_pem.clone())?);
                let Resolved { vault_url, source } = workspace::resolve(
                    &config,
                    provider,
                    &choice.management_endpoint,
                    choice.cache_dir.as_deref(),
                )
                .await?;
                (vault_url, VaultSource::Workspace(config, source))
            }
            (None, None) => {
                let data_dir = match &choice.data_dir {
                    Some(dir) => dir.clone(),
                    None => LocalVaultOptions::default_data_dir()?,
                };
                let vault =
                    LocalVault::start(LocalVaultOptions::embedded(data_dir.clone())).await?;
                let mut options = ClientOptions::for_local_vault(&vault)?;
                if let Some(version) = &choice.api_version {
                    options.api_version = version.clone();
                }
                return Ok(VaultConnection {
                    options,
                    source: VaultSource::Embedded(data_dir),
                    embedded: Some(vault),
                });
            }
        };
        let mut options = ClientOptions::new(url);
        options.transport = TransportOptions {
            ca_pem: ca_pem.clone(),
            public_roots: true,
            ..TransportOptions::default()
        };
        let credential = remote_credential(choice, ca_pem, azure)?;
        options.credential = Some(if choice.unsafe_token_to_any_host {
            credential.allow_any_host()
        } else {
            credential
        });
        if let Some(version) = &choice.api_version {
            options.api_version = version.clone();
        }
        Ok(VaultConnection {
            options,
            source,
            embedded: None,
        })
    }

    /// A client component for this vault.
    pub async fn client(&self, runtime: &Runtime) -> Result<Client> {
        Client::new(runtime, self.options.clone()).await
    }

    /// How messages name this vault instead of its URL: "the local vault (DIR)" for the
    /// embedded one (its URL means nothing once the command has ended); else `None`.
    pub fn local_name(&self) -> Option<String> {
        match &self.source {
            VaultSource::Embedded(dir) => Some(format!("the local vault ({})", dir.display())),
            _ => None,
        }
    }

    /// The embedded vault, when one was started.
    pub fn embedded(&self) -> Option<&LocalVault> {
        self.embedded.as_ref()
    }

    /// Stops the embedded vault, if any.
    pub async fn close(self) {
        if let Some(vault) = self.embedded {
            vault.shutdown().await;
        }
    }
}

fn static_token(choice: &VaultChoiceOptions) -> Result<Option<Credential>> {
    if let Some(token) = &choice.token {
        return Credential::bearer(token).map(Some);
    }
    match Credential::from_env(TOKEN_ENV)? {
        Some(credential) => Ok(Some(credential)),
        None => choice
            .token_file
            .as_deref()
            .map(Credential::from_file)
            .transpose(),
    }
}

fn azure_provider(
    choice: &VaultChoiceOptions,
    ca_pem: Option<Vec<u8>>,
) -> Result<Arc<TokenProvider>> {
    let method = match choice.auth {
        Some(AuthChoice::Azure(method)) => Some(method),
        _ => None,
    };
    let mut options = AuthOptions::from_env(method);
    options.ca_pem = ca_pem;
    Ok(Arc::new(TokenProvider::new(options)?))
}

/// The credential for a remote vault; `azure` is the provider workspace resolution already
/// made, if any.
fn remote_credential(
    choice: &VaultChoiceOptions,
    ca_pem: Option<Vec<u8>>,
    azure: Option<Arc<TokenProvider>>,
) -> Result<Credential> {
    let azure_credential = || -> Result<Credential> {
        let provider = match azure.clone() {
            Some(provider) => provider,
            None => azure_provider(choice, ca_pem.clone())?,
        };
        Ok(Credential::azure(provider))
    };
    match choice.auth {
        Some(AuthChoice::Token) => static_token(choice)?.ok_or_else(|| {
            Error::Config(format!("--auth token needs {TOKEN_ENV} or --token-file"))
        }),
        Some(AuthChoice::Azure(_)) => azure_credential(),
        None => match static_token(choice)? {
            Some(credential) => Ok(credential),
            None => azure_credential(),
        },
    }
}
