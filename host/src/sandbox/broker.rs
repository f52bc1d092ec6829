//! The host side of `kvrun:secrets/run`: the secret broker of one run.
//!
//! A name that was not granted is refused (and audited) without any request; a granted one is
//! forwarded to the run's vault client (store B), or served by the sandbox's read cache
//! (`read_cache.rs`) when it has one. Every access is audited ([`RunAudit`]),
//! never with a value, within the run's audit budget; batches are deduplicated and capped.
//! Every value handed to the run is added to the masks of its stdout and stderr.
//!
//! A name bound with `--use-secret` ([`RunHandles`]) gets a handle from `get-secret-handle`:
//! the broker reads the value through store B, keeps it on the host and hands the run only
//! the placeholder; `get-secret` of a name that is bound but not granted with `--secret` is
//! refused. A use-only value is *not* added to the output masks: the run never holds it, so
//! it can print it only by guessing, and masking the guess would confirm it (the review
//! recovered a value by printing candidates and reading back which became `***`). A
//! use-only value that is short or guessable ([`guessable`]) gets one warning line on the
//! run's stderr, since a service that echoes what it is sent still lets a run test guesses.

use super::read_cache::{ReadCache, Source};
use super::{training, RunState};
use crate::audit::{RunAudit, ValueSeen};
use crate::bindings::kvrun::secrets::types::Error as WitError;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::handles::RunHandles;
use crate::masking::MaskValues;
use crate::policy::SecretGrant;
use crate::run_output::MaskedOutput;
use crate::secret::SecretString;
use std::sync::Arc;

/// The most names one `get-secrets` call may carry (duplicates included).
pub const MAX_BATCH_NAMES: usize = 1000;

/// The default audit budget of a run: about 25,000 records.
pub const DEFAULT_MAX_AUDIT: u64 = 4 << 20;

/// What a `run` host function returns: the run's answer, or a trap that stops it.
pub(crate) type Served<T> = wasmtime::Result<std::result::Result<T, WitError>>;

/// A value read for a run, with the version it came from when the read said (a batch read
/// does not).
#[derive(Clone)]
pub(crate) struct SecretRead {
    pub(crate) value: SecretString,
    pub(crate) version: Option<String>,
}

impl SecretRead {
    /// What an audit record says of it.
    pub(crate) fn seen(&self) -> ValueSeen<'_> {
        ValueSeen {
            value: &self.value,
            version: self.version.as_deref(),
        }
    }
}

/// Serves `kvrun:secrets/run` for one run.
pub(crate) struct SecretBroker {
    /// The names the run may read (`--secret`).
    pub(super) grant: SecretGrant,
    /// The run's bindings and handles (`--use-secret`), if it has any.
    pub(super) handles: Option<Arc<RunHandles>>,
    /// The run's vault client (store B), shared with its handles' re-reads.
    pub(super) vault: Arc<tokio::sync::Mutex<Client>>,
    /// Its vault URL, which errors name as "the run's vault".
    pub(super) vault_url: String,
    /// The sandbox's shared read cache, when it has one.
    pub(super) cache: Option<Arc<ReadCache<SecretRead>>>,
    pub(super) audit: Arc<RunAudit>,
    /// The values the run's stdout and stderr are masked for.
    pub(super) masks: MaskValues,
    /// The run's stderr, for kvrun's own warnings.
    pub(super) stderr: MaskedOutput,
}

impl SecretBroker {
    /// An error that stops the run if a limit already stopped it (its audit budget spent, its
    /// echo limit reached): the epoch callback stops it at the next tick, and nothing it asks
    /// for in between is served.
    pub(crate) fn check_running(&self) -> wasmtime::Result<()> {
        if self.audit.spent() {
            return Err(crate::audit::AuditLimitReached(self.audit.max()).into());
        }
        if let Some(limit) = self.handles.as_ref().and_then(|h| h.echo_limit()) {
            return Err(limit.into());
        }
        Ok(())
    }

    /// Masks `values` in the run's output, with their secret parts (a JSON secret's password
    /// member, a connection string's key: [`crate::masking::secret_parts`]).
    fn remember<'a>(&self, values: impl IntoIterator<Item = &'a SecretString>) {
        let values: Vec<&SecretString> = values.into_iter().collect();
        let parts: Vec<SecretString> = values
            .iter()
            .flat_map(|value| crate::masking::secret_parts(value.expose()))
            .collect();
        self.masks.add_all(
            values
                .into_iter()
                .chain(&parts)
                .map(|value| value.expose().as_bytes()),
        );
    }

    /// Writes one audit record; past the budget the run stops (the trap says why).
    fn audit(
        &mut self,
        operation: &str,
        name: &str,
        granted: bool,
        outcome: &str,
    ) -> wasmtime::Result<()> {
        Ok(self.audit.record(operation, name, granted, outcome, None)?)
    }

    /// Why `name` cannot be read, for a name that was not granted with `--secret`.
    /// The vault client's error as the run is told it: the vault is "the run's vault", never
    /// its URL (for the embedded vault, a loopback address that means nothing to the run and
    /// stands for a host directory).
    fn in_the_runs_words(&self, error: Error) -> Error {
        error.naming_vault(&self.vault_url, "the run's vault")
    }

    fn refusal(&self, name: &str) -> (&'static str, WitError) {
        if self.handles.as_ref().is_some_and(|h| h.is_bound(name)) {
            let shown: String = name.chars().take(130).collect();
            let error = WitError::Denied(format!(
                "secret {shown:?} is granted to this run for use only (--use-secret): ask for its handle with get-secret-handle; its value cannot be read"
            ));
            ("denied: use only (--use-secret)", error)
        } else {
            ("denied: not granted", not_granted(name))
        }
    }

    pub(crate) async fn get_secret(&mut self, name: String) -> Served<String> {
        if !self.grant.allows_name(&name) {
            let (outcome, error) = self.refusal(&name);
            self.audit("get-secret", &name, false, outcome)?;
            return Ok(Err(error));
        }
        Ok(self.fetch("get-secret", &name).await?.map(|read| {
            self.remember([&read.value]);
            read.value.expose().to_string()
        }))
    }

    /// Reads a granted `name`'s latest version through store B (or the sandbox's read cache)
    /// and audits the access as `operation`, with the version and the value's fingerprint;
    /// the caller masks the value in the run's output if the run may read it.
    async fn fetch(&mut self, operation: &str, name: &str) -> Served<SecretRead> {
        let read = async || {
            let secret = self.vault.lock().await.get_secret(name, None).await?;
            Ok(SecretRead {
                value: secret.value,
                version: secret.properties.version,
            })
        };
        let (outcome, source) = match self.cache.clone() {
            Some(cache) => cache.get(name, read).await,
            None => (read().await, Source::Vault),
        };
        let label = match (&outcome, source) {
            (Ok(_), Source::Cache) => "ok (cached)",
            _ => outcome_label(&outcome),
        };
        let seen = outcome.as_ref().ok().map(SecretRead::seen);
        self.audit
            .record(operation, name, true, label, seen.as_ref())?;
        Ok(outcome.map_err(|e| self.in_the_runs_words(e).into()))
    }

    /// Reads a batch: at most [`MAX_BATCH_NAMES`] names; each distinct name (Key Vault names
    /// are case-insensitive) is fetched and audited once, and its answer given for every
    /// copy.
    pub(crate) async fn get_secrets(&mut self, names: Vec<String>) -> Served<Vec<Option<String>>> {
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
                    self.refusal(&name).0
                };
                self.audit("get-secrets", &name, granted, outcome)?;
            }
            return Ok(Err(self.refusal(&refused).1));
        }
        let distinct: Vec<String> = distinct.into_iter().cloned().collect();
        let cached: Vec<Option<SecretRead>> = distinct
            .iter()
            .map(|name| self.cache.as_ref().and_then(|cache| cache.fresh(name)))
            .collect();
        let missing: Vec<String> = distinct
            .iter()
            .zip(&cached)
            .filter(|(_, hit)| hit.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        let fetched = if missing.is_empty() {
            Ok(Vec::new())
        } else {
            self.vault.lock().await.run_get_secrets(&missing).await
        };
        let mut fetched = match fetched {
            Ok(values) => values.into_iter(),
            Err(e) => {
                for name in &missing {
                    self.audit("get-secrets", name, true, e.audit_outcome())?;
                }
                return Ok(Err(self.in_the_runs_words(e).into()));
            }
        };
        let mut values = Vec::with_capacity(distinct.len());
        for (name, hit) in distinct.iter().zip(cached) {
            let (value, label) = match hit {
                Some(value) => (Some(value), "ok (cached)"),
                None => match fetched.next().flatten() {
                    Some(value) => {
                        let read = SecretRead {
                            value,
                            version: None,
                        };
                        if let Some(cache) = &self.cache {
                            cache.put(name, &read);
                        }
                        (Some(read), "ok")
                    }
                    None => (None, "not-found"),
                },
            };
            let seen = value.as_ref().map(SecretRead::seen);
            self.audit
                .record("get-secrets", name, true, label, seen.as_ref())?;
            values.push(value);
        }
        self.remember(values.iter().flatten().map(|read| &read.value));
        Ok(Ok(slot
            .into_iter()
            .map(|i| values[i].as_ref().map(|v| v.value.expose().to_string()))
            .collect()))
    }

    /// Issues the handle of a bound name: the value is read through store B and stays on the
    /// host (not masked in the run's output, see the module docs); the run gets the
    /// placeholder.
    pub(crate) async fn get_secret_handle(&mut self, name: String) -> Served<String> {
        let Some(handles) = self.handles.clone().filter(|h| h.is_bound(&name)) else {
            self.audit("get-secret-handle", &name, false, "denied: not bound")?;
            let shown: String = name.chars().take(130).collect();
            return Ok(Err(WitError::Denied(format!(
                "secret {shown:?} is not bound to any origin for this run (bind it with --use-secret NAME=ORIGIN)"
            ))));
        };
        if let Some(handle) = handles.existing(&name) {
            self.audit("get-secret-handle", &name, true, "ok")?;
            return Ok(Ok(handle));
        }
        Ok(self.fetch("get-secret-handle", &name).await?.map(|read| {
            if guessable(read.value.expose()) {
                self.stderr.note(&format!(
                    "kvrun: warning: the use-only secret {name:?} is short or guessable (fewer than {MIN_USE_ONLY_CHARS} characters, or fewer than {MIN_USE_ONLY_DISTINCT} distinct ones): a bound service that echoes what it is sent lets a run test guesses of it; use a generated token"
                ));
            }
            handles.issue(&name, read.value, read.version)
        }))
    }
}

/// The fewest characters a use-only value should have.
pub const MIN_USE_ONLY_CHARS: usize = 16;

/// The fewest distinct characters a use-only value should have.
pub const MIN_USE_ONLY_DISTINCT: usize = 8;

/// Whether a use-only value is short or guessable: fewer than [`MIN_USE_ONLY_CHARS`]
/// characters, or fewer than [`MIN_USE_ONLY_DISTINCT`] distinct ones.
pub(super) fn guessable(value: &str) -> bool {
    let distinct: std::collections::HashSet<char> = value.chars().collect();
    value.chars().count() < MIN_USE_ONLY_CHARS || distinct.len() < MIN_USE_ONLY_DISTINCT
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
        Err(e) => e.audit_outcome(),
    }
}

impl training::kvrun::secrets::egress::Host for RunState {
    async fn last_refusal(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.hooks.stats().last_refusal())
    }
}

impl training::kvrun::secrets::run::Host for RunState {
    async fn get_secret(&mut self, name: String) -> Served<String> {
        self.broker.get_secret(name).await
    }

    async fn get_secrets(&mut self, names: Vec<String>) -> Served<Vec<Option<String>>> {
        self.broker.get_secrets(names).await
    }

    async fn get_secret_handle(&mut self, name: String) -> Served<String> {
        self.broker.get_secret_handle(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::guessable;

    #[test]
    fn short_or_repetitive_use_only_values_are_guessable() {
        assert!(guessable("hunter2"));
        assert!(guessable("correcthorse"));
        assert!(guessable("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!guessable("k7Q2-x9vLpR4mZ8tW"));
        assert!(!guessable("3f9a1c07be52d48e6a1f"));
    }
}
