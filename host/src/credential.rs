//! Credentials held by the host, never by a component.
//!
//! A [`Credential`] gives the `Authorization: Bearer …` header that
//! [`crate::network::VaultHooks`] adds to requests for the vault's origin, and to nothing
//! else. It is either a static token, from an environment variable (`KVRUN_ACCESS_TOKEN`) or a
//! file (the local vault's `DATA_DIR/token`, or `--token-file`), never from the command line;
//! or Azure credentials ([`crate::azure_auth`]), refreshed by the host and answering the
//! vault's challenge.

use crate::azure_auth::{Challenge, TokenProvider, VAULT_SCOPE};
use crate::{Error, Result, SecretString};
use http::HeaderValue;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A source of bearer tokens. `Debug` never shows a token.
#[derive(Clone)]
pub struct Credential {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Static(HeaderValue),
    Azure(Arc<TokenProvider>),
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

    /// Azure credentials: tokens from `provider`, refreshed before they expire.
    pub fn azure(provider: Arc<TokenProvider>) -> Credential {
        Credential {
            kind: Kind::Azure(provider),
        }
    }

    /// Whether a refused token can be replaced (and a challenge answered).
    pub fn refreshable(&self) -> bool {
        matches!(self.kind, Kind::Azure(_))
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

    /// The `Authorization` header for a vault on `host`: for Azure credentials, a token
    /// for the challenge's tenant and scope when there is one, else for the vault's cloud.
    pub async fn authorization(
        &self,
        host: &str,
        challenge: Option<&Challenge>,
    ) -> Result<HeaderValue> {
        match &self.kind {
            Kind::Static(header) => Ok(header.clone()),
            Kind::Azure(provider) => {
                let token = match challenge {
                    Some(c) => provider.token(&c.scope, c.tenant.as_deref(), true).await?,
                    None => provider.token(&default_scope(host), None, false).await?,
                };
                bearer_header(token.expose())
            }
        }
    }
}

/// The Key Vault scope of the cloud a vault host belongs to.
pub fn default_scope(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    for domain in [
        "vault.azure.cn",
        "vault.usgovcloudapi.net",
        "vault.microsoftazure.de",
    ] {
        if host.ends_with(&format!(".{domain}")) {
            return format!("https://{domain}/.default");
        }
    }
    VAULT_SCOPE.to_string()
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
    #[test]
    fn sovereign_clouds_get_their_own_scope() {
        assert_eq!(
            super::default_scope("kv.vault.azure.net"),
            "https://vault.azure.net/.default"
        );
        assert_eq!(
            super::default_scope("kv.vault.azure.cn"),
            "https://vault.azure.cn/.default"
        );
        assert_eq!(
            super::default_scope("KV.Vault.UsGovCloudApi.net"),
            "https://vault.usgovcloudapi.net/.default"
        );
    }

    use super::*;

    #[test]
    fn refuses_bad_tokens_and_never_prints_them() {
        assert!(Credential::bearer(&"".into()).is_err());
        assert!(Credential::bearer(&"a b".into()).is_err());
        assert!(Credential::bearer(&"tök".into()).is_err());
        let c = Credential::bearer(&" tok-123\n".into()).unwrap();
        let header =
            futures::executor::block_on(c.authorization("kv.vault.azure.net", None)).unwrap();
        assert_eq!(header, "Bearer tok-123");
        assert!(header.is_sensitive());
        assert!(!c.refreshable());
        assert!(!format!("{c:?}").contains("tok-123"));
    }
}
