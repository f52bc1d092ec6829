//! `_kvrun.Vault`: the keyvault operations, each through the vault client component.
//!
//! A `Vault` owns the connection the CLI would make (the same [`VaultChoiceOptions`]: an
//! explicit URL, a workspace config, else the embedded local vault over the data
//! directory) and a small pool of clients, so calls from several Python threads run at
//! once, each in its own component instance.

use crate::blocking;
use crate::clients::Clients;
use crate::convert;
use crate::errors::{to_py, IntoPyResult};
use kvrun::vault_choice::{AuthChoice, VaultChoiceOptions, VaultConnection, VaultSource};
use kvrun::{Client, ClientOptions, Error, NewSecret, Runtime, RuntimeOptions, SecretString};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One entry of `set_secrets`: name, value, content type, tags.
type Entry = (
    String,
    String,
    Option<String>,
    Option<Vec<(String, String)>>,
);

/// Clients (component instances, one per calling thread) a `Vault` keeps, and calls it
/// runs at once.
const CLIENTS: usize = 16;

/// What a `Vault` and the sandboxes made from it share.
pub struct Shared {
    runtime: Runtime,
    /// How to reach the vault: URL, trust, credential.
    pub options: ClientOptions,
    /// `None` once closed; holds the embedded vault, if any.
    connection: Mutex<Option<VaultConnection>>,
    clients: Clients,
    /// Where the vault came from, for `repr`.
    pub source: String,
    /// How messages name the embedded vault instead of its URL (`the local vault (DIR)`).
    local_name: Option<String>,
    /// The data directory given (`data_dir`, `KVRUN_DATA_DIR`), where the audit key lives.
    pub data_dir: Option<PathBuf>,
}

impl Shared {
    /// Runs `f` with the calling thread's client, on that thread, with the GIL released
    /// ([`Clients`]).
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut Client) -> kvrun::Result<T> + Send,
    ) -> kvrun::Result<T> {
        let outcome = self.clients.call(py, &self.runtime, &self.options, f);
        match &self.local_name {
            Some(name) => outcome.map_err(|e| e.naming_vault(&self.options.vault_url, name)),
            None => outcome,
        }
    }

    /// Whether [`Vault::close`] has run.
    pub fn is_closed(&self) -> bool {
        self.clients.is_closed()
    }
}

/// An open connection to one vault.
#[pyclass(module = "kvrun._kvrun", frozen)]
pub struct Vault {
    /// Shared with every sandbox made from this vault.
    pub shared: Arc<Shared>,
}

#[pymethods]
impl Vault {
    #[new]
    #[pyo3(signature = (vault_url=None, data_dir=None, ca_cert=None, token=None, auth=None, api_version=None, unsafe_token_to_any_host=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        vault_url: Option<String>,
        data_dir: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        token: Option<String>,
        auth: Option<String>,
        api_version: Option<String>,
        unsafe_token_to_any_host: bool,
    ) -> PyResult<Vault> {
        let auth: Option<AuthChoice> = auth.map(|a| a.parse()).transpose().py()?;
        let choice = VaultChoiceOptions {
            vault_url: vault_url.or_else(|| std::env::var("KVRUN_VAULT_URL").ok()),
            ca_cert,
            token_file: None,
            token: token.map(SecretString::new),
            data_dir: data_dir.or_else(|| {
                std::env::var_os("KVRUN_DATA_DIR")
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
            }),
            auth,
            management_endpoint: "https://management.azure.com".into(),
            start_dir: std::env::current_dir()
                .map_err(|e| to_py(Error::io("reading the current directory", e)))?,
            cache_dir: RuntimeOptions::default_cache_dir(),
            api_version,
            unsafe_token_to_any_host,
        };
        let connection = blocking::wait(py, VaultConnection::open(&choice)).py()?;
        let data_dir = choice.data_dir.clone();
        let options = connection.options.clone();
        let local_name = connection.local_name();
        let source = match &connection.source {
            VaultSource::Explicit => "given".to_string(),
            VaultSource::Workspace(config, _) => format!("named by {}", config.path.display()),
            VaultSource::Embedded(dir) => format!("embedded, data in {}", dir.display()),
        };
        let runtime = blocking::within(py, || {
            Runtime::new(RuntimeOptions {
                cache_dir: RuntimeOptions::default_cache_dir(),
                max_instances: CLIENTS as u32,
                max_memory: options.max_memory,
                allocation: None,
            })
        })
        .py()?;
        Ok(Vault {
            shared: Arc::new(Shared {
                runtime,
                options,
                connection: Mutex::new(Some(connection)),
                clients: Clients::new(CLIENTS),
                source,
                local_name,
                data_dir,
            }),
        })
    }

    /// The vault's URL.
    #[getter]
    fn vault_url(&self) -> String {
        self.shared.options.vault_url.clone()
    }

    /// Where the vault came from: "given", "named by FILE" or "embedded, data in DIR".
    #[getter]
    fn source(&self) -> String {
        self.shared.source.clone()
    }

    /// The embedded vault's CA certificate (PEM), or `None` for a remote vault.
    #[getter]
    fn ca_pem(&self) -> Option<String> {
        let connection = self
            .shared
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        connection
            .as_ref()
            .and_then(|c| c.embedded())
            .map(|v| String::from_utf8_lossy(v.ca_pem()).into_owned())
    }

    /// Stops the embedded vault, if any; later calls fail with `ConfigError`.
    fn close(&self, py: Python<'_>) {
        self.shared.clients.close();
        let connection = self
            .shared
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(connection) = connection {
            blocking::wait(py, connection.close());
        }
    }

    #[pyo3(signature = (name, value, content_type=None, tags=None))]
    fn set_secret<'py>(
        &self,
        py: Python<'py>,
        name: String,
        value: String,
        content_type: Option<String>,
        tags: Option<Vec<(String, String)>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let value = SecretString::new(value);
        let options = convert::set_options(content_type, tags);
        let props = self
            .shared
            .call(py, async |c| c.set_secret(&name, &value, &options).await)
            .py()?;
        convert::properties(py, &props)
    }

    /// Returns one entry per input, in order: a properties dict or the exception.
    fn set_secrets<'py>(
        &self,
        py: Python<'py>,
        entries: Vec<Entry>,
    ) -> PyResult<Bound<'py, PyList>> {
        let secrets: Vec<NewSecret> = entries
            .into_iter()
            .map(|(name, value, content_type, tags)| NewSecret {
                name,
                value: SecretString::new(value),
                options: convert::set_options(content_type, tags),
            })
            .collect();
        let outcomes = self
            .shared
            .call(py, async |c| c.set_secrets(&secrets).await)
            .py()?;
        let list = PyList::empty(py);
        for outcome in outcomes {
            match outcome {
                Ok(props) => list.append(convert::properties(py, &props)?)?,
                Err(e) => list.append(to_py(e).into_value(py))?,
            }
        }
        Ok(list)
    }

    /// The value and the properties of the latest version, or of `version`.
    #[pyo3(signature = (name, version=None))]
    fn get_secret<'py>(
        &self,
        py: Python<'py>,
        name: String,
        version: Option<String>,
    ) -> PyResult<(String, Bound<'py, PyDict>)> {
        let secret = self
            .shared
            .call(py, async |c| c.get_secret(&name, version.as_deref()).await)
            .py()?;
        Ok((
            secret.value.expose().to_string(),
            convert::properties(py, &secret.properties)?,
        ))
    }

    /// The value of the latest version, or of `version`, without its properties (what
    /// `Keyvault.get_secret` returns).
    #[pyo3(signature = (name, version=None))]
    fn get_secret_value(
        &self,
        py: Python<'_>,
        name: String,
        version: Option<String>,
    ) -> PyResult<String> {
        let secret = self
            .shared
            .call(py, async |c| c.get_secret(&name, version.as_deref()).await)
            .py()?;
        Ok(secret.value.expose().to_string())
    }

    /// For the package's benchmark: `calls` warm `get_secret(names[0])` (or, with `batch`,
    /// `get_secrets(names)`) by this thread's client, each timed in Rust with no Python
    /// between them (seconds), to set beside the same calls made from Python in the same run.
    fn _time_native_calls(
        &self,
        py: Python<'_>,
        names: Vec<String>,
        calls: usize,
        batch: bool,
    ) -> PyResult<Vec<f64>> {
        let first = names
            .first()
            .cloned()
            .ok_or_else(|| Error::InvalidArgument("no names to time".into()))
            .py()?;
        self.shared
            .call(py, async |c| {
                let mut times = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let started = std::time::Instant::now();
                    if batch {
                        c.get_secrets(&names).await?;
                    } else {
                        c.get_secret(&first, None).await?;
                    }
                    times.push(started.elapsed().as_secs_f64());
                }
                Ok(times)
            })
            .py()
    }

    fn get_secrets(&self, py: Python<'_>, names: Vec<String>) -> PyResult<Vec<Option<String>>> {
        let values = self
            .shared
            .call(py, async |c| c.get_secrets(&names).await)
            .py()?;
        Ok(values
            .into_iter()
            .map(|v| v.map(|v| v.expose().to_string()))
            .collect())
    }

    fn list_secrets<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let list = self
            .shared
            .call(py, async |c| c.list_secrets().await)
            .py()?;
        convert::properties_list(py, &list)
    }

    fn list_secret_versions<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let list = self
            .shared
            .call(py, async |c| c.list_secret_versions(&name).await)
            .py()?;
        convert::properties_list(py, &list)
    }

    fn delete_secret<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyDict>> {
        let deleted = self
            .shared
            .call(py, async |c| c.delete_secret(&name).await)
            .py()?;
        convert::deleted(py, &deleted)
    }

    #[pyo3(signature = (name, version=None, enabled=None, content_type=None, tags=None, not_before=None, expires=None))]
    #[allow(clippy::too_many_arguments)]
    fn update_secret_properties<'py>(
        &self,
        py: Python<'py>,
        name: String,
        version: Option<String>,
        enabled: Option<bool>,
        content_type: Option<String>,
        tags: Option<Vec<(String, String)>>,
        not_before: Option<i64>,
        expires: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let update = convert::update(enabled, content_type, tags, not_before, expires);
        let props = self
            .shared
            .call(py, async |c| {
                c.update_secret_properties(&name, version.as_deref(), &update)
                    .await
            })
            .py()?;
        convert::properties(py, &props)
    }

    fn get_deleted_secret<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let deleted = self
            .shared
            .call(py, async |c| c.get_deleted_secret(&name).await)
            .py()?;
        convert::deleted(py, &deleted)
    }

    fn list_deleted_secrets<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let list = self
            .shared
            .call(py, async |c| c.list_deleted_secrets().await)
            .py()?;
        list.iter().map(|d| convert::deleted(py, d)).collect()
    }

    fn recover_deleted_secret<'py>(
        &self,
        py: Python<'py>,
        name: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let props = self
            .shared
            .call(py, async |c| c.recover_deleted_secret(&name).await)
            .py()?;
        convert::properties(py, &props)
    }

    fn purge_deleted_secret(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.shared
            .call(py, async |c| c.purge_deleted_secret(&name).await)
            .py()
    }

    fn backup_secret(&self, py: Python<'_>, name: String) -> PyResult<String> {
        self.shared
            .call(py, async |c| c.backup_secret(&name).await)
            .py()
    }

    fn restore_secret<'py>(&self, py: Python<'py>, backup: String) -> PyResult<Bound<'py, PyDict>> {
        let props = self
            .shared
            .call(py, async |c| c.restore_secret(&backup).await)
            .py()?;
        convert::properties(py, &props)
    }
}
