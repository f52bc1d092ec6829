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
//!   masked output ([`masking`], [`run_output`]) and an audit log ([`audit`]).
//!
//! Secret values live in [`SecretString`], which zeroizes on drop and never prints.

pub mod audit;
pub mod auth;
pub mod client;
pub mod component_cache;
pub mod encoded_forms;
mod error;
pub mod masking;
pub mod network;
pub mod policy;
pub mod private_files;
pub mod run_output;
pub mod runtime;
pub mod sandbox;
mod secret;
pub mod transport;
pub mod vault;
pub mod vault_choice;
pub mod workspace;

pub use client::{Client, ClientOptions, NewSecret, Secret};
pub use error::{Error, Result};
pub use runtime::{Runtime, RuntimeOptions};
pub use secret::SecretString;

/// The vault client component (`wasm32-wasip2`), built from `guest/` by this crate's build
/// script.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("KVRUN_GUEST_WASM"));

/// Types generated from the WIT contract (`wit/kvrun.wit`) for the `vault-client` world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "vault-client",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use bindings::kvrun::secrets::types::{
    DeletedSecret, PropertyUpdate, SecretProperties, SetOptions,
};
