//! Credentials held by the host, never by a component.
//!
//! A [`Credential`] is a bearer token that [`crate::network::VaultHooks`] adds as
//! `Authorization: Bearer …` to requests for the vault's origin, and to nothing else. The
//! token can come from an environment variable (`KVRUN_ACCESS_TOKEN`) or a file (the local
//! vault's `DATA_DIR/token`, or `--token-file`); never from the command line.

use crate::{Error, Result, SecretString};
use http::HeaderValue;
use std::fmt;
use std::path::Path;

/// A bearer token. `Debug` never shows it.
#[derive(Clone)]
pub struct Credential {
    header: HeaderValue,
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
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Config("the access token is not a valid header value".into()))?;
        header.set_sensitive(true);
        Ok(Credential { header })
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

    /// The `Authorization` header value, marked sensitive.
    pub fn authorization(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(Bearer ***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_tokens_and_never_prints_them() {
        assert!(Credential::bearer(&"".into()).is_err());
        assert!(Credential::bearer(&"a b".into()).is_err());
        assert!(Credential::bearer(&"tök".into()).is_err());
        let c = Credential::bearer(&" tok-123\n".into()).unwrap();
        assert_eq!(c.authorization(), "Bearer tok-123");
        assert!(c.authorization().is_sensitive());
        assert!(!format!("{c:?}").contains("tok-123"));
    }
}
