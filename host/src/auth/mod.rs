//! Authentication, in one place: the credential a vault request carries, and where its tokens
//! come from. The component never sees any of it.
//!
//! - [`Credential`] (`credential.rs`): a static token, or Azure credentials that follow the
//!   challenge protocol (tokens only to Key Vault hosts, after their `401` challenge,
//!   [`Challenge`] in `challenge.rs`).
//! - `authorize.rs`: the authorizer that [`crate::network`] calls for a request to the vault.
//! - [`TokenProvider`] (`provider.rs`): the chain of sources, the cache and coalesced refreshes.
//!   It gets Entra ID access tokens for the scope a challenge names from these sources, one
//!   file each, tried in this order unless one is chosen (`--auth`):
//!
//! | source | needs | how |
//! |---|---|---|
//! | `client-secret` (`client_secret.rs`) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` | `POST {authority}/{tenant}/oauth2/v2.0/token`, client credentials |
//! | `workload-identity` (`workload_identity.rs`) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` | the same endpoint with the federated token as client assertion |
//! | `managed-identity` (`managed_identity.rs`) | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service, ML compute); else the IMDS endpoint (Azure VMs, AKS) | `GET` with `X-IDENTITY-HEADER`, or IMDS with `Metadata: true` |
//! | `azure-cli` (`azure_cli.rs`) | `az` on `PATH`, logged in | `az account get-access-token --resource …` |
//!
//! The authority host is `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com`;
//! sovereign clouds use their own). `managed_identity.rs` tells how IMDS is probed
//! ([`IMDS_PROBE_TIMEOUT`]). Tokens are cached per tenant and scope, refreshed five minutes
//! before expiry, live in [`crate::SecretString`] and never print.

mod authorize;
mod azure_cli;
mod challenge;
mod client_secret;
mod credential;
mod managed_identity;
mod provider;
mod workload_identity;

pub(crate) use authorize::send_authenticated;
pub use authorize::NoTokenReason;
pub use challenge::Challenge;
pub use credential::{challenge_allowed, is_key_vault_host, Credential, KEY_VAULT_DOMAINS};
pub use provider::{AuthMethod, AuthOptions, TokenProvider, IMDS_PROBE_TIMEOUT};
