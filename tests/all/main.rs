//! The integration tests that share no process-global state, in one binary (wasmtime links
//! once, and the component is compiled once for all of them): one module per behaviour, as
//! wasmtime's own `tests/all` does. `tests/no_value_leaks.rs` (it installs a global tracing
//! subscriber) and `tests/run_isolation.rs` (it sets an environment variable that a run must
//! not see) stay binaries of their own.

#[path = "../common/mod.rs"]
mod common;

mod allowed_hosts;
mod azure_credentials;
mod bad_responses;
mod cli;
mod component_cache;
mod constrained;
mod contract_versions;
mod credential_isolation;
mod failure_messages;
mod faults;
mod keyvault_ops;
mod local_vault;
mod read_cache;
mod run_audit;
mod run_grants;
mod run_masking;
mod secret_handles;
mod vault_durability;
mod workspace_config;
