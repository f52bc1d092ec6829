//! The kvrun vault client component.
//!
//! It implements `kvrun:secrets/keyvault` (the operator's view) and `kvrun:secrets/run` (the
//! training run's view) by speaking the Azure Key Vault secrets REST API over `wasi:http`.
//!
//! Design:
//! - [`config`] reads the vault URL, api-version and retry budget from the component's
//!   environment, which the host sets. The component never sees a credential: the host adds
//!   `Authorization` to requests for the vault's origin, and forbids the component to set it.
//! - [`rules`] checks names, values, tags and versions before any request is built, so a
//!   bad name can never turn into another path.
//! - [`http`] is a small helper over the raw `wasi:http` bindings: it sends a batch of
//!   requests concurrently (at most [`http::MAX_IN_FLIGHT`]), polling the pending responses'
//!   pollables together, and retries 408/429/5xx and connection failures with exponential
//!   backoff and jitter, honouring `Retry-After`, bounded by attempts and a deadline.
//! - [`keyvault`] maps each operation onto REST requests and the answers onto WIT types;
//!   [`wire`] holds the JSON shapes. No error message ever includes a secret value.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "vault-client",
        with: {
            "wasi:http/outgoing-handler@0.2.12": wasi::http::outgoing_handler,
            "wasi:http/types@0.2.12": wasi::http::types,
            "wasi:io/poll@0.2.12": wasi::io::poll,
            "wasi:io/error@0.2.12": wasi::io::error,
            "wasi:io/streams@0.2.12": wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
        },
    });
}

mod config;
mod http;
mod keyvault;
mod rules;
mod wire;

use bindings::exports::kvrun::secrets::keyvault::Guest as KeyvaultGuest;
use bindings::exports::kvrun::secrets::run::Guest as RunGuest;
use bindings::kvrun::secrets::types::{
    DeletedSecret, Error, PropertyUpdate, Secret, SecretInput, SecretProperties, SetOptions,
};

/// The component: every export builds a [`keyvault::Vault`] from the environment and calls it.
struct Component;

impl KeyvaultGuest for Component {
    fn set_secret(
        name: String,
        value: String,
        options: SetOptions,
    ) -> Result<SecretProperties, Error> {
        keyvault::Vault::from_env()?.set_secret(&name, &value, &options)
    }

    fn set_secrets(secrets: Vec<SecretInput>) -> Vec<Result<SecretProperties, Error>> {
        match keyvault::Vault::from_env() {
            Ok(vault) => vault.set_secrets(&secrets),
            Err(e) => secrets.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn get_secret(name: String, version: Option<String>) -> Result<Secret, Error> {
        keyvault::Vault::from_env()?.get_secret(&name, version.as_deref())
    }

    fn get_secrets(names: Vec<String>) -> Result<Vec<Option<String>>, Error> {
        keyvault::Vault::from_env()?.get_secrets(&names)
    }

    fn list_secrets() -> Result<Vec<SecretProperties>, Error> {
        keyvault::Vault::from_env()?.list_secrets()
    }

    fn list_secret_versions(name: String) -> Result<Vec<SecretProperties>, Error> {
        keyvault::Vault::from_env()?.list_secret_versions(&name)
    }

    fn delete_secret(name: String) -> Result<DeletedSecret, Error> {
        keyvault::Vault::from_env()?.delete_secret(&name)
    }

    fn update_secret_properties(
        name: String,
        version: Option<String>,
        update: PropertyUpdate,
    ) -> Result<SecretProperties, Error> {
        keyvault::Vault::from_env()?.update_secret_properties(&name, version.as_deref(), &update)
    }

    fn get_deleted_secret(name: String) -> Result<DeletedSecret, Error> {
        keyvault::Vault::from_env()?.get_deleted_secret(&name)
    }

    fn list_deleted_secrets() -> Result<Vec<DeletedSecret>, Error> {
        keyvault::Vault::from_env()?.list_deleted_secrets()
    }

    fn recover_deleted_secret(name: String) -> Result<SecretProperties, Error> {
        keyvault::Vault::from_env()?.recover_deleted_secret(&name)
    }

    fn purge_deleted_secret(name: String) -> Result<(), Error> {
        keyvault::Vault::from_env()?.purge_deleted_secret(&name)
    }

    fn backup_secret(name: String) -> Result<String, Error> {
        keyvault::Vault::from_env()?.backup_secret(&name)
    }

    fn restore_secret(backup: String) -> Result<SecretProperties, Error> {
        keyvault::Vault::from_env()?.restore_secret(&backup)
    }
}

impl RunGuest for Component {
    fn get_secret(name: String) -> Result<String, Error> {
        let secret = keyvault::Vault::from_env()?.get_secret(&name, None)?;
        Ok(secret.value)
    }

    fn get_secrets(names: Vec<String>) -> Result<Vec<Option<String>>, Error> {
        keyvault::Vault::from_env()?.get_secrets(&names)
    }

    /// A handle only means something to a host that owns the training component's egress
    /// and substitutes values there (`kvrun run`, which implements `run` itself); this
    /// component only reaches the vault, so it refuses, as the contract says.
    fn get_secret_handle(name: String) -> Result<String, Error> {
        Err(Error::Denied(format!(
            "no handle for {:?}: secret handles are issued by the host that runs the training component and substitutes them on its outgoing requests (kvrun run --use-secret), not by the vault client",
            name.chars().take(130).collect::<String>()
        )))
    }
}

bindings::export!(Component with_types_in bindings);
