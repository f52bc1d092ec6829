//! The one URL a local vault is known by: ids, `recoveryId`s and `nextLink`s start with it.
//!
//! Key Vault's ids always start with the vault URL its clients were given, and SDKs rely on
//! it (the Python SDK compares `KeyVaultSecretIdentifier(id).vault_url` with its own; paging
//! follows `nextLink` with the client's TLS name checks). So the served vault names one
//! public URL, chosen by its operator: by default `https://localhost:PORT`, the name its
//! certificate is for. Neither the listen address nor a client's `Host` header decides it.
//! A URL whose host the vault's certificate does not cover is refused at start: its clients
//! could not connect under that name.

use crate::error::{Error, Result};
use crate::policy::{Origin, Scheme};
use rustls_pki_types::{CertificateDer, ServerName};

/// The URL the embedded vault's ids name: the one `kvrun vault serve` serves the same data
/// directory under by default, so that ids do not change from one command to the next.
pub const EMBEDDED_URL: &str = "https://localhost:8443";

/// A checked public URL: an https [`Origin`], shown as `https://HOST[:PORT]` with the port
/// left out when it is 443.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(Origin);

impl PublicUrl {
    /// `https://localhost:PORT`.
    pub fn localhost(port: u16) -> PublicUrl {
        PublicUrl::parse(&format!("https://localhost:{port}")).expect("a localhost URL parses")
    }

    /// Parses `https://HOST[:PORT][/]` as the allow-list parses an origin; anything else
    /// (another scheme, a path, a query, user information) is refused with what to give
    /// instead.
    pub fn parse(text: &str) -> Result<PublicUrl> {
        let bad = |why: String| {
            Error::Config(format!(
                "the public URL {why}; give https://HOST[:PORT], e.g. https://localhost:8443"
            ))
        };
        let origin = Origin::parse(text).map_err(|e| bad(e.to_string()))?;
        if origin.scheme() != Scheme::Https {
            return Err(bad(format!("{text:?} is not an https URL")));
        }
        Ok(PublicUrl(origin))
    }

    /// The origin, as requests to it name it.
    pub fn origin(&self) -> &Origin {
        &self.0
    }

    /// `HOST[:PORT]`, as ids name it.
    pub fn authority(&self) -> String {
        match self.0.port() {
            443 => self.0.host().to_string(),
            port => format!("{}:{port}", self.0.host()),
        }
    }

    /// The host, as TLS checks it (no brackets around an IPv6 address).
    pub fn host(&self) -> &str {
        self.0.host().trim_start_matches('[').trim_end_matches(']')
    }

    /// Refuses a URL whose host `certificate` (the vault's end-entity certificate) is not
    /// valid for, naming the certificate's file.
    pub fn check_covered_by(&self, certificate: &CertificateDer<'_>, file: &str) -> Result<()> {
        let name = ServerName::try_from(self.host())
            .map_err(|_| Error::Config(format!("{:?} is not a host name", self.host())))?;
        let covered = webpki::EndEntityCert::try_from(certificate)
            .map_err(|e| Error::Config(format!("{file} holds no usable certificate: {e}")))?
            .verify_is_valid_for_subject_name(&name)
            .is_ok();
        if covered {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "the local vault's certificate ({file}) is not valid for {:?}, so its clients could not connect under {self}; serve under localhost, 127.0.0.1 or ::1, or put a name it covers in front of it",
                self.host()
            )))
        }
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_to_scheme_host_and_port() {
        for (given, shown) in [
            ("https://localhost:8443", "https://localhost:8443"),
            ("https://LocalHost:8443/", "https://localhost:8443"),
            ("https://kv.example:443", "https://kv.example"),
            ("https://kv.example", "https://kv.example"),
            ("https://127.0.0.1:9000", "https://127.0.0.1:9000"),
            ("https://[::1]:9000", "https://[::1]:9000"),
            ("https://[::1]", "https://[::1]"),
        ] {
            assert_eq!(
                PublicUrl::parse(given).unwrap().to_string(),
                shown,
                "{given}"
            );
        }
        assert_eq!(PublicUrl::parse("https://[::1]:9").unwrap().host(), "::1");
    }

    #[test]
    fn anything_but_https_host_and_port_is_refused() {
        for bad in [
            "http://localhost:8443",
            "localhost:8443",
            "https://",
            "https://localhost:0",
            "https://localhost:99999",
            "https://localhost:x",
            "https://localhost/vault",
            "https://localhost?x=1",
            "https://user@localhost",
            "https://bad host",
            "https://[::1]x",
            "https://[::1",
        ] {
            let err = PublicUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("give https://HOST[:PORT]"), "{bad}: {err}");
        }
    }
}
