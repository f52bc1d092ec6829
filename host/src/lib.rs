//! kvrun: hand secrets to training code, and nothing else.
//!
//! This crate is the host side of kvrun:
//!
//! - [`Runtime`] owns one wasmtime [`Engine`](wasmtime::Engine) (pooling allocator, epoch
//!   interruption) and the vault client component, compiled once and cached on disk
//!   ([`component_cache`]).
//! - [`Client`] runs that component in its own store. Everything it sends over `wasi:http`
//!   goes through [`network::OutboundHooks`]: the [`policy`] check first (only allowed origins),
//!   then the [`auth`] credential (added by the host, only for the vault's origin; the component
//!   may not set `Authorization` itself), then the pooled TLS [`transport`].
//! - [`vault`] is the local Key Vault–compatible HTTPS server: the embedded default when no
//!   vault is configured, and the backend of the tests.
//! - [`vault_choice`] decides which vault a command talks to.
//! - [`sandbox`] runs untrusted training components with exactly their granted secrets,
//!   masked output and an audit log ([`audit`]); with [`handles`], a run can use a secret in
//!   requests to bound origins without ever reading it.
//!
//! Secret values live in [`SecretString`], which zeroizes on drop and never prints.
//!
//! This file only declares modules and chooses the public API: the types a runner embeds
//! (re-exported here), and the modules whose own types a runner or the `kvrun` command line
//! uses. The rest is `pub(crate)`.

#![warn(missing_docs)]

pub mod address_space;
pub mod audit;
pub mod auth;
mod bindings;
pub mod client;
pub mod component_cache;
pub mod encoded_forms;
mod error;
pub mod handles;
pub mod kept_files;
pub mod masking;
pub mod network;
pub mod policy;
pub mod private_files;
pub mod python;
pub(crate) mod run_output;
pub mod runtime;
pub mod sandbox;
pub mod scientific;
mod secret;
pub mod secret_name;
pub mod transport;
pub mod vault;
pub mod vault_choice;
pub mod workspace;

pub use bindings::kvrun::secrets::types::{
    DeletedSecret, PropertyUpdate, SecretProperties, SetOptions,
};
pub use bindings::GUEST_WASM;
pub use client::{Client, ClientOptions, NewSecret, Secret};
pub use error::{Error, NetworkCause, Result};
pub use runtime::{Runtime, RuntimeOptions};
pub use secret::SecretString;
