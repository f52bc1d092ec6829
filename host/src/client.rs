//! [`Client`]: the vault client component in its own store, as a typed Rust API.
//!
//! Isolation model: the component gets a WASI context with nothing but its configuration
//! (`KVRUN_VAULT_URL`, `KVRUN_API_VERSION`, the retry budget) in its environment: no
//! arguments, files, sockets, or inherited stdio, and no credential. Its only way out is
//! `wasi:http`, through [`OutboundHooks`], whose allow-list holds exactly the vault's origin.
//! Each call runs under an epoch deadline and a wall-clock timeout; after a trap or a
//! timeout the instance is discarded and the next call starts a fresh one.

use crate::auth::Credential;
use crate::bindings::kvrun::secrets::types as wit;
use crate::bindings::kvrun::secrets::types::{
    DeletedSecret, PropertyUpdate, SecretProperties, SetOptions,
};
use crate::bindings::VaultClient;
use crate::error::{Error, NetworkCause, Result};
use crate::network::{NetworkStats, OutboundHooks};
use crate::policy::{AllowList, AllowRule, Origin, SecretGrant};
use crate::runtime::{GuestState, Runtime};
use crate::secret::SecretString;
use crate::transport::{Transport, TransportOptions};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;
use zeroize::Zeroize;

/// Retry budget handed to the component.
#[derive(Clone, Copy, Debug)]
pub struct RetryOptions {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay (doubles per retry, with jitter).
    pub base_delay: Duration,
    /// Cap on one delay, `Retry-After` included.
    pub max_delay: Duration,
    /// Overall budget of one operation.
    pub deadline: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(16),
            deadline: Duration::from_secs(60),
        }
    }
}

/// How a [`Client`] reaches its vault.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The vault, `https://HOST[:PORT]` (`http://` only for an explicit loopback host).
    pub vault_url: String,
    /// The credential the host adds to requests for the vault's origin (and no other).
    pub credential: Option<Credential>,
    /// Origins the component may reach; `None` means exactly the vault's origin.
    pub allow: Option<AllowList>,
    /// For a run's client: only `GET`s of these secrets may be sent.
    pub grant: Option<SecretGrant>,
    /// TLS trust, timeouts and size caps.
    pub transport: TransportOptions,
    /// Key Vault `api-version`.
    pub api_version: String,
    /// Retry budget.
    pub retry: RetryOptions,
    /// Wall-clock limit of one call (retries included), enforced by the host.
    pub call_timeout: Duration,
    /// Memory limit of the component's store, in bytes.
    pub max_memory: usize,
}

impl ClientOptions {
    /// Defaults for `vault_url`: api-version 7.5, public roots, 5 attempts, 90 s per call.
    pub fn new(vault_url: impl Into<String>) -> ClientOptions {
        ClientOptions {
            vault_url: vault_url.into(),
            credential: None,
            allow: None,
            grant: None,
            transport: TransportOptions::default(),
            api_version: "7.5".into(),
            retry: RetryOptions::default(),
            call_timeout: Duration::from_secs(90),
            max_memory: 64 << 20,
        }
    }
}

impl ClientOptions {
    /// Options that reach a local vault: its public URL (connecting to its listen address,
    /// whatever the URL's host resolves to), its CA only (no public roots), its token.
    pub fn for_local_vault(vault: &crate::vault::LocalVault) -> Result<ClientOptions> {
        let mut options = ClientOptions::new(vault.url());
        options.transport = TransportOptions {
            ca_pem: Some(vault.ca_pem().to_vec()),
            public_roots: false,
            connect_to: Some(crate::transport::ConnectRoute {
                origin: vault.public_url().origin().clone(),
                to: vault.addr(),
            }),
            ..TransportOptions::default()
        };
        options.credential = Some(Credential::bearer(vault.token())?);
        Ok(options)
    }
}

/// What the host saw of one call's network use, to explain a failure the component reports.
struct Seen<'a> {
    stats: &'a NetworkStats,
    denied_before: u64,
    tried: Duration,
    origin: String,
}

impl Seen<'_> {
    /// Replaces the component's account of a failure with the cause the host saw: a policy
    /// denial, the transport's cause (name, connection, TLS, timeouts, size, redirect), or how
    /// long the vault was retried while it throttled or failed.
    fn explain(self, e: Error) -> Error {
        let origin = self.origin;
        match e {
            Error::Denied(m) if self.stats.denied() > self.denied_before => Error::PolicyDenied(m),
            Error::Unauthenticated(m) => {
                Error::Unauthenticated(self.stats.take_no_token().unwrap_or(m))
            }
            Error::Transport(m) => match self.stats.take_cause() {
                Some(cause) => Error::Network { cause, origin },
                None => Error::Transport(m),
            },
            Error::Unavailable(detail) => match (self.stats.take_cause(), self.stats.last_answer())
            {
                (Some(cause), _) => Error::Network { cause, origin },
                (None, Some((429, _))) => Error::Throttled {
                    tried: self.tried,
                    detail,
                },
                (None, _) => Error::Unavailable(format!(
                    "{detail}, for {:.1} s of retries",
                    self.tried.as_secs_f64()
                )),
            },
            Error::Service { status, .. } if (300..400).contains(&status) => {
                let location = self.stats.last_answer().and_then(|(_, location)| location);
                Error::Network {
                    cause: NetworkCause::Redirect { status, location },
                    origin,
                }
            }
            other => other,
        }
    }
}

/// A secret version with its value.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The version's properties.
    pub properties: SecretProperties,
    /// The value.
    pub value: SecretString,
}

/// One entry of a batch set.
#[derive(Clone, Debug)]
pub struct NewSecret {
    /// The name.
    pub name: String,
    /// The value.
    pub value: SecretString,
    /// Content type and tags.
    pub options: SetOptions,
}

/// The vault client component, instantiated, with typed calls.
pub struct Client {
    pre: crate::bindings::VaultClientPre<GuestState>,
    env: Vec<(String, String)>,
    hooks: OutboundHooks,
    options: ClientOptions,
    live: Option<(Store<GuestState>, VaultClient)>,
}

impl Client {
    /// The vault's URL, as messages about it name it.
    pub fn vault_url(&self) -> &str {
        &self.options.vault_url
    }

    /// Checks the options and instantiates the component, with its own connection pool.
    pub async fn new(runtime: &Runtime, options: ClientOptions) -> Result<Client> {
        let transport = Arc::new(Transport::new(options.transport.clone())?);
        Client::with_transport(runtime, options, transport).await
    }

    /// Like [`Client::new`], sending through `transport`: clients that share one reuse its
    /// pooled connections (many runs against one vault). Policy, credential and grant stay
    /// per client, in its own hooks; `options.transport` is not read, since `transport`
    /// already carries the TLS trust, timeouts and size cap.
    pub async fn with_transport(
        runtime: &Runtime,
        options: ClientOptions,
        transport: Arc<Transport>,
    ) -> Result<Client> {
        let vault = vault_origin(&options.vault_url)?;
        let credential = options.credential.clone().map(|c| (vault.clone(), c));
        let allow = options
            .allow
            .clone()
            .unwrap_or_else(|| AllowList::only(&vault));
        let mut hooks = OutboundHooks::new(allow, credential, transport);
        if let Some(grant) = options.grant.clone() {
            hooks = hooks.with_grant(grant);
        }
        let mut client = Client {
            pre: runtime.vault_pre().clone(),
            env: guest_env(&options),
            hooks,
            options,
            live: None,
        };
        client.instance().await?;
        Ok(client)
    }

    /// The counters of the component's network use.
    pub fn network_stats(&self) -> Arc<NetworkStats> {
        self.hooks.stats()
    }

    /// The environment the component is given (its whole configuration).
    pub fn component_env(&self) -> &[(String, String)] {
        &self.env
    }

    async fn instance(&mut self) -> Result<&mut (Store<GuestState>, VaultClient)> {
        if self.live.is_none() {
            let mut wasi = WasiCtxBuilder::new();
            wasi.envs(&self.env);
            let state = GuestState {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                hooks: self.hooks.clone(),
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.options.max_memory)
                    .instances(16)
                    .build(),
            };
            let mut store = Store::new(self.pre.engine(), state);
            store.limiter(|s| &mut s.limits);
            store.set_epoch_deadline(Runtime::ticks(self.options.call_timeout));
            store.epoch_deadline_trap();
            let instance = self.pre.instantiate_async(&mut store).await?;
            self.live = Some((store, instance));
        }
        Ok(self.live.as_mut().expect("instantiated above"))
    }

    /// Runs one export call under the epoch deadline and the wall-clock timeout. A trap or
    /// timeout discards the instance.
    async fn call<T>(
        &mut self,
        what: &str,
        f: impl AsyncFnOnce(
            &VaultClient,
            &mut Store<GuestState>,
        ) -> wasmtime::Result<std::result::Result<T, wit::Error>>,
    ) -> Result<T> {
        let timeout = self.options.call_timeout;
        let stats = self.hooks.stats();
        stats.clear_last();
        let denied_before = stats.denied();
        let started = std::time::Instant::now();
        let vault_url = self.options.vault_url.clone();
        let (store, instance) = self.instance().await?;
        store.set_epoch_deadline(Runtime::ticks(timeout));
        let outcome = tokio::time::timeout(timeout, f(instance, store)).await;
        match outcome {
            Ok(Ok(result)) => result.map_err(|e| {
                let seen = Seen {
                    stats: &stats,
                    denied_before,
                    tried: started.elapsed(),
                    origin: vault_url.trim_end_matches('/').to_string(),
                };
                seen.explain(Error::from(e))
            }),
            Ok(Err(trap)) => {
                self.live = None;
                Err(Error::Component(format!(
                    "the vault client failed during {what}: {trap:#}"
                )))
            }
            Err(_) => {
                self.live = None;
                Err(Error::Timeout(format!(
                    "{what} did not finish within {} s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }

    /// Sets a secret's value; an existing name gets a new version.
    pub async fn set_secret(
        &mut self,
        name: &str,
        value: &SecretString,
        options: &SetOptions,
    ) -> Result<SecretProperties> {
        self.call("set-secret", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_set_secret(s, name, value.expose(), options)
                .await
        })
        .await
    }

    /// Sets many secrets concurrently; one outcome per entry, in order.
    pub async fn set_secrets(
        &mut self,
        secrets: &[NewSecret],
    ) -> Result<Vec<Result<SecretProperties>>> {
        let mut inputs: Vec<wit::SecretInput> = secrets
            .iter()
            .map(|s| wit::SecretInput {
                name: s.name.clone(),
                value: s.value.expose().to_string(),
                options: s.options.clone(),
            })
            .collect();
        let outcome = self
            .call("set-secrets", async |i, s| {
                i.kvrun_secrets_keyvault()
                    .call_set_secrets(s, &inputs)
                    .await
                    .map(Ok)
            })
            .await;
        for input in &mut inputs {
            input.value.zeroize();
        }
        Ok(outcome?
            .into_iter()
            .map(|r| r.map_err(Error::from))
            .collect())
    }

    /// Reads a secret: the latest version, or `version`.
    pub async fn get_secret(&mut self, name: &str, version: Option<&str>) -> Result<Secret> {
        let secret = self
            .call("get-secret", async |i, s| {
                i.kvrun_secrets_keyvault()
                    .call_get_secret(s, name, version)
                    .await
            })
            .await?;
        Ok(Secret {
            properties: secret.properties,
            value: SecretString::new(secret.value),
        })
    }

    /// Reads the latest value of many secrets concurrently; a missing name gives `None`.
    pub async fn get_secrets(&mut self, names: &[String]) -> Result<Vec<Option<SecretString>>> {
        let values = self
            .call("get-secrets", async |i, s| {
                i.kvrun_secrets_keyvault().call_get_secrets(s, names).await
            })
            .await?;
        Ok(wrap_values(values))
    }

    /// Lists every secret's properties.
    pub async fn list_secrets(&mut self) -> Result<Vec<SecretProperties>> {
        self.call("list-secrets", async |i, s| {
            i.kvrun_secrets_keyvault().call_list_secrets(s).await
        })
        .await
    }

    /// Lists every version of a secret.
    pub async fn list_secret_versions(&mut self, name: &str) -> Result<Vec<SecretProperties>> {
        self.call("list-secret-versions", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_list_secret_versions(s, name)
                .await
        })
        .await
    }

    /// Deletes a secret with all its versions.
    pub async fn delete_secret(&mut self, name: &str) -> Result<DeletedSecret> {
        self.call("delete-secret", async |i, s| {
            i.kvrun_secrets_keyvault().call_delete_secret(s, name).await
        })
        .await
    }

    /// Changes a version's properties (the latest when `version` is `None`).
    pub async fn update_secret_properties(
        &mut self,
        name: &str,
        version: Option<&str>,
        update: &PropertyUpdate,
    ) -> Result<SecretProperties> {
        self.call("update-secret-properties", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_update_secret_properties(s, name, version, update)
                .await
        })
        .await
    }

    /// Shows a deleted secret.
    pub async fn get_deleted_secret(&mut self, name: &str) -> Result<DeletedSecret> {
        self.call("get-deleted-secret", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_get_deleted_secret(s, name)
                .await
        })
        .await
    }

    /// Lists every deleted secret.
    pub async fn list_deleted_secrets(&mut self) -> Result<Vec<DeletedSecret>> {
        self.call("list-deleted-secrets", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_list_deleted_secrets(s)
                .await
        })
        .await
    }

    /// Undoes a delete.
    pub async fn recover_deleted_secret(&mut self, name: &str) -> Result<SecretProperties> {
        self.call("recover-deleted-secret", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_recover_deleted_secret(s, name)
                .await
        })
        .await
    }

    /// Removes a deleted secret for good.
    pub async fn purge_deleted_secret(&mut self, name: &str) -> Result<()> {
        self.call("purge-deleted-secret", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_purge_deleted_secret(s, name)
                .await
        })
        .await
    }

    /// Backs up every version of a secret as an opaque blob.
    pub async fn backup_secret(&mut self, name: &str) -> Result<String> {
        self.call("backup-secret", async |i, s| {
            i.kvrun_secrets_keyvault().call_backup_secret(s, name).await
        })
        .await
    }

    /// Restores a backup blob.
    pub async fn restore_secret(&mut self, backup: &str) -> Result<SecretProperties> {
        self.call("restore-secret", async |i, s| {
            i.kvrun_secrets_keyvault()
                .call_restore_secret(s, backup)
                .await
        })
        .await
    }

    /// `run.get-secret`: the training run's read of one secret.
    pub async fn run_get_secret(&mut self, name: &str) -> Result<SecretString> {
        self.call("run.get-secret", async |i, s| {
            i.kvrun_secrets_run().call_get_secret(s, name).await
        })
        .await
        .map(SecretString::new)
    }

    /// `run.get-secrets`: the training run's read of many secrets.
    pub async fn run_get_secrets(&mut self, names: &[String]) -> Result<Vec<Option<SecretString>>> {
        let values = self
            .call("run.get-secrets", async |i, s| {
                i.kvrun_secrets_run().call_get_secrets(s, names).await
            })
            .await?;
        Ok(wrap_values(values))
    }
}

/// Moves the component's answer into zeroizing strings.
fn wrap_values(values: Vec<Option<String>>) -> Vec<Option<SecretString>> {
    values
        .into_iter()
        .map(|v| v.map(SecretString::new))
        .collect()
}

/// Parses and checks the vault URL: https, or http to an explicitly named loopback host.
fn vault_origin(url: &str) -> Result<Origin> {
    let origin = Origin::parse(url).map_err(|e| Error::Config(format!("vault URL: {e}")))?;
    AllowRule::parse(url).map_err(|e| Error::Config(format!("vault URL: {e}")))?;
    Ok(origin)
}

/// The component's whole configuration, as environment variables. Never a credential.
fn guest_env(options: &ClientOptions) -> Vec<(String, String)> {
    let retry = &options.retry;
    vec![
        (
            "KVRUN_VAULT_URL".into(),
            options.vault_url.trim_end_matches('/').into(),
        ),
        ("KVRUN_API_VERSION".into(), options.api_version.clone()),
        (
            "KVRUN_RETRY_MAX_ATTEMPTS".into(),
            retry.max_attempts.to_string(),
        ),
        (
            "KVRUN_RETRY_BASE_DELAY_MS".into(),
            retry.base_delay.as_millis().to_string(),
        ),
        (
            "KVRUN_RETRY_MAX_DELAY_MS".into(),
            retry.max_delay.as_millis().to_string(),
        ),
        (
            "KVRUN_RETRY_DEADLINE_MS".into(),
            retry.deadline.as_millis().to_string(),
        ),
    ]
}
