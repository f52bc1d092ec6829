//! The host side of `kvrun:secrets/run`: the secret broker of one run.
//!
//! A name that was not granted is refused (and audited) without any request; a granted one is
//! forwarded to the run's vault client (store B). Every access is audited ([`AuditLog`]),
//! never with a value, within the run's audit budget; batches are deduplicated and capped.
//! Every value handed to the run is added to the masks of its stdout and stderr.

use super::{training, RunState};
use crate::audit::AuditLog;
use crate::bindings::kvrun::secrets::types::Error as WitError;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::policy::SecretGrant;
use crate::run_output::MaskedOutput;
use crate::secret::SecretString;
use std::sync::Arc;

/// The most names one `get-secrets` call may carry (duplicates included).
pub const MAX_BATCH_NAMES: usize = 1000;

/// The default audit budget of a run: about 25,000 records.
pub const DEFAULT_MAX_AUDIT: u64 = 4 << 20;

/// A run's audit records reached its budget; the run is stopped with this as its trap.
#[derive(Debug)]
pub(super) struct AuditLimitReached(pub(super) u64);

impl std::fmt::Display for AuditLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the run's audit records reached {} bytes", self.0)
    }
}

impl std::error::Error for AuditLimitReached {}

/// What a `run` host function returns: the run's answer, or a trap that stops it.
pub(super) type Served<T> = wasmtime::Result<std::result::Result<T, WitError>>;

/// Serves `kvrun:secrets/run` for one run.
pub(super) struct SecretBroker {
    pub(super) grant: SecretGrant,
    pub(super) vault: Client,
    pub(super) audit: Arc<AuditLog>,
    pub(super) max_audit: u64,
    pub(super) audit_written: u64,
    pub(super) outputs: [MaskedOutput; 2],
}

impl SecretBroker {
    fn remember(&self, value: &SecretString) {
        for output in &self.outputs {
            output.add_secret(value.expose().as_bytes());
        }
    }

    /// Writes one audit record; past the budget, a last record says why and the run stops.
    fn audit(
        &mut self,
        operation: &str,
        name: &str,
        granted: bool,
        outcome: &str,
    ) -> wasmtime::Result<()> {
        if self.audit_written > self.max_audit {
            return Err(AuditLimitReached(self.max_audit).into());
        }
        self.audit_written += self.audit.record(operation, name, granted, outcome) as u64;
        if self.audit_written > self.max_audit {
            self.audit.record_budget_spent(self.max_audit);
            return Err(AuditLimitReached(self.max_audit).into());
        }
        Ok(())
    }

    async fn get_secret(&mut self, name: String) -> Served<String> {
        if !self.grant.allows_name(&name) {
            self.audit("get-secret", &name, false, "denied: not granted")?;
            return Ok(Err(not_granted(&name)));
        }
        let outcome = self.vault.run_get_secret(&name).await;
        self.audit("get-secret", &name, true, outcome_label(&outcome))?;
        let value = match outcome {
            Ok(value) => value,
            Err(e) => return Ok(Err(e.into())),
        };
        self.remember(&value);
        Ok(Ok(value.expose().to_string()))
    }

    /// Reads a batch: at most [`MAX_BATCH_NAMES`] names; each distinct name (Key Vault names
    /// are case-insensitive) is fetched and audited once, and its answer given for every
    /// copy.
    async fn get_secrets(&mut self, names: Vec<String>) -> Served<Vec<Option<String>>> {
        if names.len() > MAX_BATCH_NAMES {
            let outcome = format!(
                "refused: {} names, more than {MAX_BATCH_NAMES}",
                names.len()
            );
            self.audit("get-secrets", &names[0], false, &outcome)?;
            return Ok(Err(WitError::InvalidArgument(format!(
                "get-secrets takes at most {MAX_BATCH_NAMES} names, not {}; split the batch",
                names.len()
            ))));
        }
        let mut distinct: Vec<&String> = Vec::new();
        let mut slot = Vec::with_capacity(names.len());
        let mut seen = std::collections::HashMap::new();
        for name in &names {
            let index = *seen.entry(name.to_ascii_uppercase()).or_insert_with(|| {
                distinct.push(name);
                distinct.len() - 1
            });
            slot.push(index);
        }
        if let Some(refused) = distinct.iter().find(|n| !self.grant.allows_name(n)) {
            let refused = refused.to_string();
            let records: Vec<(String, bool)> = distinct
                .iter()
                .map(|n| (n.to_string(), self.grant.allows_name(n)))
                .collect();
            for (name, granted) in records {
                let outcome = if granted {
                    "skipped: another name was not granted"
                } else {
                    "denied: not granted"
                };
                self.audit("get-secrets", &name, granted, outcome)?;
            }
            return Ok(Err(not_granted(&refused)));
        }
        let distinct: Vec<String> = distinct.into_iter().cloned().collect();
        match self.vault.run_get_secrets(&distinct).await {
            Ok(values) => {
                for (name, value) in distinct.iter().zip(&values) {
                    let label = if value.is_some() { "ok" } else { "not-found" };
                    self.audit("get-secrets", name, true, label)?;
                }
                values.iter().flatten().for_each(|v| self.remember(v));
                Ok(Ok(slot
                    .into_iter()
                    .map(|i| values[i].as_ref().map(|v| v.expose().to_string()))
                    .collect()))
            }
            Err(e) => {
                for name in &distinct {
                    self.audit("get-secrets", name, true, error_label(&e))?;
                }
                Ok(Err(e.into()))
            }
        }
    }
}

pub(super) fn not_granted(name: &str) -> WitError {
    let shown: String = name.chars().take(130).collect();
    WitError::Denied(format!(
        "secret {shown:?} was not granted to this run (grant it with --secret)"
    ))
}

/// The audit outcome of one access.
pub(super) fn outcome_label<T>(outcome: &Result<T>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(e) => error_label(e),
    }
}

/// The audit outcome of a failed access: its kind, never its message.
pub(super) fn error_label(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) => "not-found",
        Error::Denied(_) => "error: denied",
        Error::Unauthenticated(_) => "error: unauthenticated",
        Error::Unavailable(_) | Error::Timeout(_) => "error: unavailable",
        Error::Transport(_) => "error: transport",
        _ => "error",
    }
}

impl training::kvrun::secrets::run::Host for RunState {
    async fn get_secret(&mut self, name: String) -> Served<String> {
        self.broker.get_secret(name).await
    }

    async fn get_secrets(&mut self, names: Vec<String>) -> Served<Vec<Option<String>>> {
        self.broker.get_secrets(names).await
    }
}
