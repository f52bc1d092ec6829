//! Network policy: which origins a component may reach. Pure logic, no wasmtime.
//!
//! An allow-list is a list of origins. A request is allowed only if its origin (scheme, host
//! and port) matches an entry; **an empty list denies everything**.
//!
//! | entry | matches | does not match |
//! |---|---|---|
//! | `https://myvault.vault.azure.net` | `https://MyVault.vault.azure.net:443` | `https://myvault.vault.azure.net:8443`, `http://myvault.vault.azure.net` |
//! | `https://myvault.vault.azure.net:8443` | that host on port 8443 | the same host on 443 |
//! | `https://*.vault.azure.net` | `https://a.vault.azure.net`, `https://a.b.vault.azure.net` | `https://vault.azure.net`, `https://evil.net` |
//! | `https://localhost:8443.` (trailing dot) | `https://localhost:8443` | |
//! | `http://127.0.0.1:8080` | plain http to that loopback port only | `http://127.0.0.1:8081` |
//!
//! Rules:
//! - Scheme is `https`, or `http` for a loopback host (`localhost`, `127.0.0.0/8`, `::1`)
//!   named explicitly (no wildcard). Any other `http` entry is refused when parsed.
//! - Host names compare case-insensitively, and a trailing dot is ignored.
//! - A missing port means the scheme's default (443 or 80); ports are otherwise exact.
//! - The only wildcard is a leading `*.` label, which matches one or more labels below the
//!   domain and never the domain itself.
//! - Entries have no path, query, or user info (a lone trailing `/` is accepted).
//!
//! ```
//! use kvrun::policy::{AllowList, Origin};
//! let list = AllowList::parse(["https://*.vault.azure.net"]).unwrap();
//! assert!(list.allows(&Origin::parse("https://kv1.vault.azure.net").unwrap()));
//! assert!(!list.allows(&Origin::parse("https://vault.azure.net").unwrap()));
//! assert!(!AllowList::default().allows(&Origin::parse("https://example.com").unwrap()));
//! ```

use std::fmt;
use std::net::IpAddr;

/// Why an origin or allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

impl PolicyError {
    pub(crate) fn new(message: String) -> PolicyError {
        PolicyError(message)
    }
}

impl From<PolicyError> for crate::error::Error {
    fn from(e: PolicyError) -> Self {
        crate::error::Error::Config(e.0)
    }
}

/// `https` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// TLS.
    Https,
    /// Plain HTTP, for loopback only.
    Http,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// A normalised origin: scheme, lower-case host without trailing dot, explicit port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port][/]`.
    pub fn parse(text: &str) -> Result<Origin, PolicyError> {
        let (scheme, host, port) = split(text)?;
        if host.starts_with("*.") || host == "*" {
            return Err(PolicyError(format!("{text:?} is a pattern, not an origin")));
        }
        Ok(Origin { scheme, host, port })
    }

    /// The origin of an absolute request URI.
    pub fn from_uri(uri: &http::Uri) -> Result<Origin, PolicyError> {
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            other => {
                return Err(PolicyError(format!(
                    "unsupported scheme {:?} in request to {uri}",
                    other.unwrap_or("")
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| PolicyError(format!("request URI {uri} has no host")))?;
        if authority.as_str().contains('@') {
            return Err(PolicyError(
                "request URIs with user info are refused".into(),
            ));
        }
        let host = normalise_host(authority.host())?;
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        Ok(Origin { scheme, host, port })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The normalised host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Subdomains(String),
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

impl AllowRule {
    /// Parses one entry (see the module docs for the accepted forms).
    pub fn parse(text: &str) -> Result<AllowRule, PolicyError> {
        let (scheme, host, port) = split(text)?;
        let pattern = if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') || !domain.contains('.') {
                return Err(PolicyError(format!(
                    "{text:?}: a wildcard must be a leading '*.' before a domain with at least two labels"
                )));
            }
            HostPattern::Subdomains(domain.to_string())
        } else if host.contains('*') {
            return Err(PolicyError(format!(
                "{text:?}: the only wildcard allowed is a leading '*.'"
            )));
        } else {
            HostPattern::Exact(host.clone())
        };
        if scheme == Scheme::Http {
            let loopback = matches!(&pattern, HostPattern::Exact(h) if is_loopback_host(h));
            if !loopback {
                return Err(PolicyError(format!(
                    "{text:?}: plain http is allowed only to an explicitly named loopback host (localhost, 127.0.0.1, [::1]); use https"
                )));
            }
        }
        Ok(AllowRule {
            scheme,
            host: pattern,
            port,
        })
    }

    /// Whether this entry matches the origin.
    pub fn matches(&self, origin: &Origin) -> bool {
        self.scheme == origin.scheme
            && self.port == origin.port
            && match &self.host {
                HostPattern::Exact(h) => *h == origin.host,
                HostPattern::Subdomains(domain) => origin
                    .host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            }
    }
}

/// A list of allowed origins. Empty denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

impl AllowList {
    /// Parses every entry; the first bad one is an error.
    pub fn parse<I, S>(entries: I) -> Result<AllowList, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = entries
            .into_iter()
            .map(|e| AllowRule::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { rules })
    }

    /// A list that allows exactly one origin.
    pub fn only(origin: &Origin) -> AllowList {
        AllowList {
            rules: vec![AllowRule {
                scheme: origin.scheme,
                host: HostPattern::Exact(origin.host.clone()),
                port: origin.port,
            }],
        }
    }

    /// Whether any entry matches.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.rules.iter().any(|r| r.matches(origin))
    }

    /// Whether the list is empty (and so denies everything).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Allows these entries too.
    pub fn extend(&mut self, rules: impl IntoIterator<Item = AllowRule>) {
        self.rules.extend(rules);
    }
}

/// The secrets a run was granted, and the only vault requests its client may make.
///
/// A run's vault client may send exactly `GET /secrets/{name}`, `GET /secrets/{name}/` or
/// `GET /secrets/{name}/{version}` (32 hex digits) for a granted `name` (case-insensitive,
/// as Key Vault names are), with any query. Everything else (other names, listing, `PUT`, `DELETE`,
/// other paths, percent-encoding, dot segments) is refused.
///
/// ```
/// use kvrun::policy::SecretGrant;
/// let grant = SecretGrant::new(["db-password"]).unwrap();
/// assert!(grant.allows_request(&http::Method::GET, "/secrets/DB-Password"));
/// assert!(!grant.allows_request(&http::Method::GET, "/secrets"));
/// assert!(!grant.allows_request(&http::Method::DELETE, "/secrets/db-password"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretGrant {
    keys: std::collections::BTreeSet<String>,
}

impl SecretGrant {
    /// A grant of these names; each must follow `^[0-9A-Za-z-]{1,127}$`.
    pub fn new<I, S>(names: I) -> Result<SecretGrant, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys = std::collections::BTreeSet::new();
        for name in names {
            let name = name.as_ref();
            if !crate::secret_name::is_valid(name) {
                return Err(PolicyError(format!(
                    "{name:?} cannot be granted: secret names use 1 to 127 characters from A-Z, a-z, 0-9 and '-'"
                )));
            }
            keys.insert(name.to_ascii_uppercase());
        }
        Ok(SecretGrant { keys })
    }

    /// Whether `name` was granted.
    pub fn allows_name(&self, name: &str) -> bool {
        crate::secret_name::is_valid(name) && self.keys.contains(&name.to_ascii_uppercase())
    }

    /// Whether a request with this method and path may be sent for the run.
    pub fn allows_request(&self, method: &http::Method, path: &str) -> bool {
        if method != http::Method::GET {
            return false;
        }
        let Some(rest) = path.strip_prefix("/secrets/") else {
            return false;
        };
        let mut segments = rest.split('/');
        let name = segments.next().unwrap_or("");
        let version_ok = match (segments.next(), segments.next()) {
            (None, _) | (Some(""), None) => true,
            (Some(v), None) => v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            _ => false,
        };
        version_ok && self.allows_name(name)
    }

    /// The granted names, upper-cased.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }
}

fn split(text: &str) -> Result<(Scheme, String, u16), PolicyError> {
    let (scheme_text, rest) = text.split_once("://").ok_or_else(|| {
        PolicyError(format!(
            "{text:?} has no scheme: write it as https://HOST[:PORT]"
        ))
    })?;
    let scheme = if scheme_text.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else if scheme_text.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else {
        return Err(PolicyError(format!(
            "{text:?}: scheme {scheme_text:?} is not supported; use https"
        )));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(PolicyError(format!("{text:?} has no host")));
    }
    if authority.contains(['/', '?', '#', '@', '\\']) || authority.chars().any(char::is_whitespace)
    {
        return Err(PolicyError(format!(
            "{text:?}: an origin has no path, query, or user info"
        )));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| PolicyError(format!("{text:?}: unclosed '[' in IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                PolicyError(format!("{text:?}: expected ':PORT' after the IPv6 address"))
            })?),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => scheme.default_port(),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PolicyError(format!("{text:?}: {p:?} is not a port (1-65535)")))?,
    };
    Ok((scheme, normalise_host(&host)?, port))
}

fn normalise_host(host: &str) -> Result<String, PolicyError> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let addr: std::net::Ipv6Addr = v6
            .parse()
            .map_err(|_| PolicyError(format!("{host:?} is not an IPv6 address")))?;
        return Ok(format!("[{addr}]"));
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
        && !host.contains("..");
    if valid {
        Ok(host)
    } else {
        Err(PolicyError(format!("{host:?} is not a host name")))
    }
}

fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(list: &[&str], origin: &str) -> bool {
        AllowList::parse(list)
            .unwrap()
            .allows(&Origin::parse(origin).unwrap())
    }

    #[test]
    fn empty_list_denies_all() {
        assert!(!allows(&[], "https://example.com"));
        assert!(AllowList::default().is_empty());
    }

    #[test]
    fn exact_origin_with_default_port() {
        assert!(allows(
            &["https://kv.vault.azure.net"],
            "https://kv.vault.azure.net:443"
        ));
        assert!(allows(
            &["https://kv.vault.azure.net:443"],
            "https://kv.vault.azure.net"
        ));
        assert!(!allows(
            &["https://kv.vault.azure.net"],
            "https://kv.vault.azure.net:8443"
        ));
        assert!(!allows(
            &["https://kv.vault.azure.net"],
            "https://other.vault.azure.net"
        ));
    }

    #[test]
    fn case_and_trailing_dot_are_normalised() {
        assert!(allows(
            &["https://KV.Vault.Azure.NET."],
            "https://kv.vault.azure.net"
        ));
        assert!(allows(
            &["https://kv.vault.azure.net"],
            "HTTPS://KV.VAULT.AZURE.NET."
        ));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let list = ["https://*.vault.azure.net"];
        assert!(allows(&list, "https://a.vault.azure.net"));
        assert!(allows(&list, "https://a.b.vault.azure.net"));
        assert!(!allows(&list, "https://vault.azure.net"));
        assert!(!allows(&list, "https://evilvault.azure.net"));
        assert!(!allows(&list, "https://a.vault.azure.net.evil.com"));
        assert!(!allows(&list, "https://a.vault.azure.net:444"));
    }

    #[test]
    fn scheme_must_match() {
        assert!(!allows(
            &["https://localhost:8443"],
            "http://localhost:8443"
        ));
        assert!(!allows(
            &["http://127.0.0.1:8080"],
            "https://127.0.0.1:8080"
        ));
        assert!(allows(&["http://127.0.0.1:8080"], "http://127.0.0.1:8080"));
    }

    #[test]
    fn plain_http_only_to_named_loopback() {
        assert!(AllowRule::parse("http://example.com").is_err());
        assert!(AllowRule::parse("http://10.0.0.1:80").is_err());
        assert!(AllowRule::parse("http://*.localhost").is_err());
        assert!(AllowRule::parse("http://localhost:8080").is_ok());
        assert!(AllowRule::parse("http://[::1]:8080").is_ok());
        assert!(AllowRule::parse("http://127.0.0.2:8080").is_ok());
    }

    #[test]
    fn ipv6_origins() {
        assert!(allows(
            &["https://[::1]:8443"],
            "https://[0:0:0:0:0:0:0:1]:8443"
        ));
        assert!(!allows(&["https://[::1]:8443"], "https://127.0.0.1:8443"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "kv.vault.azure.net",
            "ftp://kv.vault.azure.net",
            "https://kv.vault.azure.net/secrets",
            "https://kv.vault.azure.net?x=1",
            "https://user@kv.vault.azure.net",
            "https://kv.*.net",
            "https://*.net",
            "https://*",
            "https://kv.vault.azure.net:0",
            "https://kv.vault.azure.net:99999",
            "https://",
            "https://[::1",
            "https://a..b",
        ] {
            assert!(AllowRule::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(AllowRule::parse("https://kv.vault.azure.net/").is_ok());
    }

    #[test]
    fn origin_from_request_uri() {
        let uri: http::Uri = "https://KV.vault.azure.net/secrets/x?api-version=7.5"
            .parse()
            .unwrap();
        let origin = Origin::from_uri(&uri).unwrap();
        assert_eq!(origin.to_string(), "https://kv.vault.azure.net:443");
        let uri: http::Uri = "https://u:p@kv.vault.azure.net/".parse().unwrap();
        assert!(Origin::from_uri(&uri).is_err());
        let uri: http::Uri = "/relative".parse().unwrap();
        assert!(Origin::from_uri(&uri).is_err());
    }

    #[test]
    fn a_grant_allows_only_gets_of_granted_names() {
        let grant = SecretGrant::new(["db-password", "api-key"]).unwrap();
        let get = http::Method::GET;
        for ok in [
            "/secrets/db-password",
            "/secrets/DB-PASSWORD",
            "/secrets/db-password/",
            "/secrets/api-key/0123456789abcdef0123456789abcdef",
        ] {
            assert!(grant.allows_request(&get, ok), "{ok}");
        }
        for denied in [
            "/secrets",
            "/secrets/",
            "/secrets/other",
            "/secrets/db-password/versions",
            "/secrets/db-password/versions/x",
            "/secrets/db-password/backup",
            "/secrets/db-password/../other",
            "/secrets/db-password%2F..%2Fother",
            "/secrets/db-password/a%2Fb",
            "/secrets/..",
            "/deletedsecrets/db-password",
            "/secrets/db-password/backup/x",
            "//secrets/db-password",
        ] {
            assert!(!grant.allows_request(&get, denied), "{denied}");
        }
        for method in [
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::POST,
            http::Method::PATCH,
        ] {
            assert!(
                !grant.allows_request(&method, "/secrets/db-password"),
                "{method}"
            );
        }
        assert!(SecretGrant::new(["a/b"]).is_err());
        assert!(SecretGrant::new([".."]).is_err());
        assert!(!SecretGrant::default().allows_request(&get, "/secrets/db-password"));
    }

    #[test]
    fn only_allows_exactly_one_origin() {
        let vault = Origin::parse("https://127.0.0.1:8443").unwrap();
        let list = AllowList::only(&vault);
        assert!(list.allows(&vault));
        assert!(!list.allows(&Origin::parse("https://127.0.0.1:8444").unwrap()));
        assert!(!list.allows(&Origin::parse("https://localhost:8443").unwrap()));
    }
}
