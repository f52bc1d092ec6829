//! Credentials held by the host, never by a component.
//!
//! A [`Credential`] gives the `Authorization: Bearer …` header that
//! [`crate::network::OutboundHooks`] adds to requests for the vault's origin, and to nothing
//! else. It is either a static token, from an environment variable (`KVRUN_ACCESS_TOKEN`) or a
//! file (the local vault's `DATA_DIR/token`, or `--token-file`), never from the command line;
//! or Azure credentials ([`TokenProvider`]), refreshed by the host.
//!
//! A static token is the user's explicit choice for an explicit vault, and is sent with every
//! request. Azure credentials follow the challenge protocol, as the Azure SDKs do: the first
//! request to a vault carries no token; the vault's `401` names the resource (and tenant) it
//! wants, and a token is fetched only when that resource is a Key Vault domain
//! ([`KEY_VAULT_DOMAINS`]) that covers the vault's host. The accepted challenge is remembered
//! per host, so later requests carry the token at once. [`Credential::allow_any_host`] lifts
//! the domain check for a test server (the SDKs' `verify_challenge_resource=False`); only a
//! command-line flag or an environment variable turns it on, never a file.

use super::challenge::Challenge;
use super::provider::TokenProvider;
use crate::error::{Error, Result};
use crate::secret::SecretString;
use http::HeaderValue;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The Key Vault domains of the Azure clouds. A vault host must be a subdomain of one of
/// these, and the challenge must name that same domain, before an Azure token is sent.
pub const KEY_VAULT_DOMAINS: &[&str] = &[
    "vault.azure.net",
    "vault.azure.cn",
    "vault.usgovcloudapi.net",
    "vault.microsoftazure.de",
];

/// Whether `host` is in one of the Azure clouds' Key Vault domains ([`KEY_VAULT_DOMAINS`]).
pub fn is_key_vault_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    KEY_VAULT_DOMAINS.iter().any(|domain| {
        host.strip_suffix(domain)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
    })
}

/// A source of bearer tokens. `Debug` never shows a token.
#[derive(Clone)]
pub struct Credential {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Static(HeaderValue),
    Azure(Arc<AzureState>),
}

/// Azure credentials and the challenges they accepted, per vault host.
struct AzureState {
    provider: Arc<TokenProvider>,
    accepted: Mutex<HashMap<String, Challenge>>,
    any_host: bool,
}

impl Credential {
    /// A static bearer token. Leading and trailing whitespace is removed.
    pub fn bearer(token: &SecretString) -> Result<Credential> {
        let token = token.expose().trim();
        if token.is_empty() {
            return Err(Error::Config("the access token is empty".into()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "the access token has characters that an HTTP header cannot carry (spaces or non-ASCII)".into(),
            ));
        }
        Ok(Credential {
            kind: Kind::Static(bearer_header(token)?),
        })
    }

    /// Azure credentials: tokens from `provider`, sent only after the vault's challenge.
    pub fn azure(provider: Arc<TokenProvider>) -> Credential {
        Credential {
            kind: Kind::Azure(Arc::new(AzureState {
                provider,
                accepted: Mutex::new(HashMap::new()),
                any_host: false,
            })),
        }
    }

    /// Answers a challenge whatever host the vault is on and whatever resource the challenge
    /// names: for a test server that is not a Key Vault host. Dangerous: a server that the
    /// vault URL points at receives a token for the resource it asks for. A static token is
    /// unchanged.
    pub fn allow_any_host(self) -> Credential {
        match self.kind {
            Kind::Static(_) => self,
            Kind::Azure(state) => Credential {
                kind: Kind::Azure(Arc::new(AzureState {
                    provider: state.provider.clone(),
                    accepted: Mutex::new(HashMap::new()),
                    any_host: true,
                })),
            },
        }
    }

    /// Whether this is a static token (sent with every request, no challenge).
    pub fn is_static(&self) -> bool {
        matches!(self.kind, Kind::Static(_))
    }

    /// Reads a token from a file (such as the local vault's `DATA_DIR/token`).
    pub fn from_file(path: &Path) -> Result<Credential> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                format!("could not read the token file {}", path.display()),
                e,
            )
        })?;
        Credential::bearer(&SecretString::new(text))
    }

    /// Reads a token from an environment variable, if it is set.
    pub fn from_env(var: &str) -> Result<Option<Credential>> {
        match std::env::var(var) {
            Ok(text) => Credential::bearer(&SecretString::new(text))
                .map(Some)
                .map_err(|e| Error::Config(format!("{var}: {e}"))),
            Err(_) => Ok(None),
        }
    }

    /// The `Authorization` header for a request to a vault on `host` before any challenge
    /// of this request: the static token; for Azure credentials, a token for the challenge
    /// this host already answered with, or none (the first request goes without a token).
    pub async fn authorization(&self, host: &str) -> Result<Option<HeaderValue>> {
        match &self.kind {
            Kind::Static(header) => Ok(Some(header.clone())),
            Kind::Azure(state) => {
                let accepted = state.accepted(host);
                match accepted {
                    Some(challenge) => state.header(&challenge, false).await.map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// Answers the `401` challenge of a vault on `host`: a header with a token for the
    /// challenge's tenant and scope if the challenge may be answered for this host, an
    /// [`Error::Unauthenticated`] saying why if it may not, and `None` for a static token.
    /// `refused_token` says whether the request that got the challenge carried a token (which
    /// is then fetched anew rather than taken from the cache).
    pub async fn answer(
        &self,
        host: &str,
        challenge: &Challenge,
        refused_token: bool,
    ) -> Result<Option<HeaderValue>> {
        let Kind::Azure(state) = &self.kind else {
            return Ok(None);
        };
        if !state.any_host && !challenge_allowed(challenge, host) {
            return Err(Error::Unauthenticated(format!(
                "the vault on {host} asked for a token and none was sent: no token was given (--token-file, KVRUN_ACCESS_TOKEN), and an Azure credential answers only a Key Vault host in the domain its challenge names ({host} is not one, the challenge names {}; for a test server, --unsafe-token-to-any-host)",
                challenge.resource_host
            )));
        }
        let header = state.header(challenge, refused_token).await?;
        state
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_ascii_lowercase(), challenge.clone());
        Ok(Some(header))
    }
}

impl AzureState {
    fn accepted(&self, host: &str) -> Option<Challenge> {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host.to_ascii_lowercase())
            .cloned()
    }

    async fn header(&self, challenge: &Challenge, force: bool) -> Result<HeaderValue> {
        let token = self
            .provider
            .token(&challenge.scope, challenge.tenant.as_deref(), force)
            .await?;
        bearer_header(token.expose())
    }
}

/// Whether a token for `challenge` may go to a vault on `host`: the challenge's resource is a
/// Key Vault domain and the host is in it.
pub fn challenge_allowed(challenge: &Challenge, host: &str) -> bool {
    KEY_VAULT_DOMAINS.contains(&challenge.resource_host.as_str()) && challenge.covers(host)
}

fn bearer_header(token: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Config("the access token is not a valid header value".into()))?;
    header.set_sensitive(true);
    Ok(header)
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Static(_) => f.write_str("Credential(Bearer ***)"),
            Kind::Azure(_) => f.write_str("Credential(Azure)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_vault_hosts_and_domains_are_answered() {
        assert!(is_key_vault_host("kv.vault.azure.net"));
        assert!(is_key_vault_host("KV.Vault.UsGovCloudApi.net."));
        assert!(!is_key_vault_host("vault.azure.net"));
        assert!(!is_key_vault_host("evilvault.azure.net"));
        assert!(!is_key_vault_host("kv.vault.azure.net.evil.com"));
        assert!(!is_key_vault_host("127.0.0.1"));
        let challenge = |resource: &str| {
            Challenge::parse(&format!(
                r#"Bearer authorization="https://login.microsoftonline.com/t", resource="{resource}""#
            ))
            .unwrap()
        };
        let public = challenge("https://vault.azure.net");
        assert!(challenge_allowed(&public, "kv.vault.azure.net"));
        assert!(
            !challenge_allowed(&public, "kv.vault.azure.cn"),
            "another cloud's vault"
        );
        assert!(!challenge_allowed(&public, "127.0.0.1"));
        assert!(!challenge_allowed(
            &challenge("https://evil.example"),
            "kv.evil.example"
        ));
        assert!(!challenge_allowed(&challenge("https://0.1"), "127.0.0.1"));
        assert!(!challenge_allowed(
            &challenge("https://azure.net"),
            "kv.vault.azure.net"
        ));
    }

    #[test]
    fn refuses_bad_tokens_and_never_prints_them() {
        assert!(Credential::bearer(&"".into()).is_err());
        assert!(Credential::bearer(&"a b".into()).is_err());
        assert!(Credential::bearer(&"tök".into()).is_err());
        let c = Credential::bearer(&" tok-123\n".into()).unwrap();
        let header = futures::executor::block_on(c.authorization("kv.vault.azure.net"))
            .unwrap()
            .unwrap();
        assert_eq!(header, "Bearer tok-123");
        assert!(header.is_sensitive());
        assert!(c.is_static());
        assert!(!format!("{c:?}").contains("tok-123"));
    }
}
