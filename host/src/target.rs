//! Which vault a command talks to, and the connection that reaches it.
//!
//! Order: `--vault URL`, then `KVRUN_VAULT_URL`, then the embedded local vault, started
//! in-process on `127.0.0.1:0` over the data directory (`--data-dir`, `KVRUN_DATA_DIR`,
//! else the platform data dir). A remote vault's token comes from `KVRUN_ACCESS_TOKEN` or
//! `--token-file`, its CA from `--ca-cert` (added to the public roots).

use crate::client::{Client, ClientOptions};
use crate::credential::Credential;
use crate::runtime::Runtime;
use crate::transport::TransportOptions;
use crate::vault::{LocalVault, LocalVaultOptions};
use crate::{Error, Result};
use std::path::PathBuf;

/// The environment variable that holds a remote vault's access token.
pub const TOKEN_ENV: &str = "KVRUN_ACCESS_TOKEN";

/// A resolved vault.
#[derive(Clone, Debug)]
pub enum VaultTarget {
    /// A vault at a URL (Azure Key Vault, or `kvrun vault serve`).
    Remote {
        /// `https://HOST[:PORT]`.
        url: String,
        /// An extra CA to trust.
        ca_cert: Option<PathBuf>,
        /// Where to read the token, if not from [`TOKEN_ENV`].
        token_file: Option<PathBuf>,
    },
    /// The embedded local vault over this data directory.
    Embedded {
        /// Its data directory.
        data_dir: PathBuf,
    },
}

impl VaultTarget {
    /// Picks the vault: an explicit URL (flag or `KVRUN_VAULT_URL`, already merged by the
    /// caller), else the embedded vault in `data_dir` or the default data directory.
    pub fn resolve(
        url: Option<String>,
        ca_cert: Option<PathBuf>,
        token_file: Option<PathBuf>,
        data_dir: Option<PathBuf>,
    ) -> Result<VaultTarget> {
        match url.filter(|u| !u.is_empty()) {
            Some(url) => Ok(VaultTarget::Remote {
                url,
                ca_cert,
                token_file,
            }),
            None => Ok(VaultTarget::Embedded {
                data_dir: match data_dir {
                    Some(dir) => dir,
                    None => LocalVaultOptions::default_data_dir()?,
                },
            }),
        }
    }
}

/// How to reach the chosen vault; owns the embedded vault when there is one.
pub struct VaultConnection {
    /// Client options for that vault (URL, trust, credential, api-version).
    pub options: ClientOptions,
    embedded: Option<LocalVault>,
}

impl VaultConnection {
    /// Starts the embedded vault if the target is embedded, and builds the client options.
    pub async fn open(target: VaultTarget, api_version: Option<String>) -> Result<VaultConnection> {
        let (mut options, embedded) = match target {
            VaultTarget::Embedded { data_dir } => {
                let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(data_dir)).await?;
                (vault.client_options()?, Some(vault))
            }
            VaultTarget::Remote {
                url,
                ca_cert,
                token_file,
            } => {
                let mut options = ClientOptions::new(url);
                let ca_pem = match &ca_cert {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        Error::io(
                            format!("could not read the CA certificate {}", path.display()),
                            e,
                        )
                    })?),
                    None => None,
                };
                options.transport = TransportOptions {
                    ca_pem,
                    public_roots: true,
                    ..TransportOptions::default()
                };
                options.credential = match Credential::from_env(TOKEN_ENV)? {
                    Some(credential) => Some(credential),
                    None => token_file
                        .as_deref()
                        .map(Credential::from_file)
                        .transpose()?,
                };
                (options, None)
            }
        };
        if let Some(version) = api_version {
            options.api_version = version;
        }
        Ok(VaultConnection { options, embedded })
    }

    /// A client component for this vault.
    pub async fn client(&self, runtime: &Runtime) -> Result<Client> {
        Client::new(runtime, self.options.clone()).await
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
