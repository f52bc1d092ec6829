//! Where a secret's handle may take its value:
//! `--use-secret NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=M+M]`.
//! Pure logic, no wasmtime.
//!
//! The origin is an allow-list entry ([`crate::policy`]: `https`, or plain `http` to a loopback
//! host named explicitly; a leading `*.` wildcard). The path prefix, if any, matches whole
//! segments. A handle is substituted in request headers (and inside `Authorization: Basic`
//! credentials) but never in those that servers reflect and log
//! ([`super::rewrite::reflected_header`]); `,header=NAME` (repeatable) narrows that to exactly
//! the named headers, `Authorization` only when named. In the query string only with `,query`,
//! in the body only with `,body`; never in the path. `,methods=GET+POST` limits every
//! substitution of the binding to those methods.
//!
//! | binding | substitutes for | refuses |
//! |---|---|---|
//! | `api-token=https://api.example.com` | any path of `https://api.example.com:443`, headers only | `http://api.example.com`, `https://api.example.com:8443`, `https://evil.example.com` |
//! | `api-token=https://api.example.com/v1` | `/v1`, `/v1/runs` | `/v10`, `/v1/../admin`, `/v1/%2e%2e/admin`, `/v2` |
//! | `api-token=https://api.example.com/v1/,query` | also `?key=<handle>` | the handle in the body |
//! | `mlflow-password=http://127.0.0.1:5000/api/,body` | plain http to that loopback port; headers and body | any other port |
//! | `api-token=https://api.example.com,header=X-Api-Key` | the `X-Api-Key` header only | the handle in `Authorization` |
//! | `api-token=https://api.example.com,methods=GET+HEAD` | `GET` and `HEAD` requests | `POST`, `DELETE`, ... |
//! | `x=http://tracker.internal` | (refused when parsed: plain http only to loopback) | |
//!
//! ```
//! use kvrun::handles::UseBinding;
//! let b: UseBinding = "api-token=https://api.example.com/v1,query".parse().unwrap();
//! let origin = kvrun::policy::Origin::parse("https://API.example.com").unwrap();
//! assert!(b.covers(&origin, "/v1/runs"));
//! assert!(!b.covers(&origin, "/v10"));
//! assert!(b.in_query() && !b.in_body());
//! let narrow: UseBinding = "api-token=https://api.example.com,header=X-Api-Key,methods=GET".parse().unwrap();
//! assert!(narrow.in_header("x-api-key") && !narrow.in_header("authorization"));
//! assert!(narrow.allows_method("GET") && !narrow.allows_method("POST"));
//! ```

use crate::policy::{AllowRule, Origin, PolicyError};
use std::fmt;
use std::str::FromStr;

/// One `--use-secret` binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseBinding {
    name: String,
    origin: String,
    rule: AllowRule,
    path_prefix: Option<String>,
    in_query: bool,
    in_body: bool,
    headers: Option<Vec<String>>,
    methods: Option<Vec<&'static str>>,
}

/// The methods `,methods=` may name.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl UseBinding {
    /// The secret's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this binding is for `name` (Key Vault names are case-insensitive).
    pub fn is_for(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The allow-list entry of the bound origin.
    pub fn rule(&self) -> &AllowRule {
        &self.rule
    }

    /// The path prefix, `/` when there is none.
    pub fn path_prefix(&self) -> &str {
        self.path_prefix.as_deref().unwrap_or("/")
    }

    /// Whether the handle may be substituted in the query string.
    pub fn in_query(&self) -> bool {
        self.in_query
    }

    /// Whether the handle may be substituted in the body.
    pub fn in_body(&self) -> bool {
        self.in_body
    }

    /// Whether the handle may be substituted in the header `name` (lower case): any header
    /// unless `,header=` named some, then exactly those.
    pub fn in_header(&self, name: &str) -> bool {
        self.headers
            .as_ref()
            .is_none_or(|named| named.iter().any(|n| n == name))
    }

    /// Whether a request with `method` may carry the value: any method unless `,methods=`
    /// named some, then exactly those.
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|named| named.contains(&method))
    }

    /// The methods `,methods=` named, joined by `+`, if it did.
    pub fn methods(&self) -> Option<String> {
        self.methods.as_ref().map(|m| m.join("+"))
    }

    /// Whether a request to `origin` with this path (no query) is one the handle may go to.
    /// A path that some server could resolve to another place is never covered by a prefix
    /// ([`ambiguous_path`]).
    pub fn covers(&self, origin: &Origin, path: &str) -> bool {
        if !self.rule.matches(origin) {
            return false;
        }
        let Some(prefix) = &self.path_prefix else {
            return true;
        };
        !ambiguous_path(path) && under_prefix(prefix, path)
    }
}

/// Whether servers could disagree about where `path` leads. After zero, one and two rounds
/// of percent-decoding (proxies that decode twice turn `%252e` into `.`), it must hold no `;`
/// (Tomcat and Spring drop a segment's `;` parameters, so `..;` is `..`), no encoded `%`, `/`,
/// `\`, `.` or `;`, no backslash or NUL, and no `.` or `..` segment.
pub fn ambiguous_path(path: &str) -> bool {
    let mut current = path.to_string();
    for _ in 0..3 {
        let lower = current.to_ascii_lowercase();
        if [";", "%25", "%2f", "%5c", "%2e", "%3b", "%00", "\\", "\0"]
            .iter()
            .any(|bad| lower.contains(bad))
            || current
                .split('/')
                .any(|segment| segment == "." || segment == "..")
        {
            return true;
        }
        current = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
    }
    false
}

/// Whether the path's decoded segments begin with the prefix's; a prefix that ends with `/`
/// covers only what is below it.
fn under_prefix(prefix: &str, path: &str) -> bool {
    let decode = |text: &str| -> Vec<String> {
        text.split('/')
            .map(|segment| {
                percent_encoding::percent_decode_str(segment)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    };
    let (mut prefix, path) = (decode(prefix), decode(path));
    let below = prefix.len() > 1 && prefix.last().is_some_and(String::is_empty);
    if below {
        prefix.pop();
    }
    path.len() >= prefix.len() + usize::from(below) && path[..prefix.len()] == prefix[..]
}

impl fmt::Display for UseBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.origin)?;
        if let Some(prefix) = &self.path_prefix {
            f.write_str(prefix)?;
        }
        if self.in_query {
            f.write_str(",query")?;
        }
        if self.in_body {
            f.write_str(",body")?;
        }
        for header in self.headers.iter().flatten() {
            write!(f, ",header={header}")?;
        }
        if let Some(methods) = self.methods() {
            write!(f, ",methods={methods}")?;
        }
        Ok(())
    }
}

impl FromStr for UseBinding {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "write it as NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=GET+POST], e.g. api-token=https://api.example.com/v1";
        let (name, rest) = text.split_once('=').ok_or_else(|| {
            PolicyError::new(format!("--use-secret {text:?} has no '=': {usage}"))
        })?;
        if !crate::secret_name::is_valid(name) {
            return Err(PolicyError::new(format!(
                "--use-secret {name:?}: secret names use 1 to 127 characters from A-Z, a-z, 0-9 and '-'"
            )));
        }
        let mut parts = rest.split(',');
        let location = parts.next().unwrap_or("");
        let (mut in_query, mut in_body) = (false, false);
        let (mut headers, mut methods) = (None::<Vec<String>>, None::<Vec<&'static str>>);
        for option in parts {
            match option.split_once('=') {
                None if option == "query" => in_query = true,
                None if option == "body" => in_body = true,
                Some(("header", name)) => {
                    let name = parse_header(text, name)?;
                    let named = headers.get_or_insert_with(Vec::new);
                    if !named.contains(&name) {
                        named.push(name);
                    }
                }
                Some(("methods", list)) => {
                    for method in list.split('+') {
                        let method = parse_method(text, method)?;
                        let named = methods.get_or_insert_with(Vec::new);
                        if !named.contains(&method) {
                            named.push(method);
                        }
                    }
                }
                _ => {
                    return Err(PolicyError::new(format!(
                        "--use-secret {text:?}: unknown option {option:?} (the options are query, body, header=NAME and methods=M+M); {usage}"
                    )))
                }
            }
        }
        let after_scheme = location.find("://").map(|i| i + 3).ok_or_else(|| {
            PolicyError::new(format!("--use-secret {text:?}: no scheme; {usage}"))
        })?;
        let (origin, path) = match location[after_scheme..].find('/') {
            Some(slash) => location.split_at(after_scheme + slash),
            None => (location, ""),
        };
        let rule = AllowRule::parse(origin)
            .map_err(|e| PolicyError::new(format!("--use-secret {text:?}: {e}")))?;
        let path_prefix = match path {
            "" | "/" => None,
            path => Some(parse_prefix(text, path)?),
        };
        Ok(UseBinding {
            name: name.to_string(),
            origin: origin.to_string(),
            rule,
            path_prefix,
            in_query,
            in_body,
            headers,
            methods,
        })
    }
}

/// A `,header=` name, lower case; a header that servers reflect and log is refused here, where
/// the operator reads the reason, rather than at every request.
fn parse_header(text: &str, name: &str) -> Result<String, PolicyError> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        PolicyError::new(format!(
            "--use-secret {text:?}: header={name:?} is not a header name"
        ))
    })?;
    if super::rewrite::reflected_header(&parsed) {
        return Err(PolicyError::new(format!(
            "--use-secret {text:?}: header={name}: servers and proxies reflect and log that header, so a handle is never substituted there; name the header that carries the credential (Authorization, X-Api-Key, ...)"
        )));
    }
    Ok(parsed.as_str().to_string())
}

/// A `,methods=` method, upper case.
fn parse_method(text: &str, method: &str) -> Result<&'static str, PolicyError> {
    METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .ok_or_else(|| {
            PolicyError::new(format!(
                "--use-secret {text:?}: methods= names {method:?}, not one of {}",
                METHODS.join(", ")
            ))
        })
}

fn parse_prefix(text: &str, path: &str) -> Result<String, PolicyError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~!$&'()*+;:@".contains(c);
    if !path.chars().all(allowed) {
        return Err(PolicyError::new(format!(
            "--use-secret {text:?}: the path prefix {path:?} may use only letters, digits, '/' and -._~!$&'()*+;:@ (no '%', '?' or '#')"
        )));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") || path.contains("//") {
        return Err(PolicyError::new(format!(
            "--use-secret {text:?}: the path prefix {path:?} has an empty, '.' or '..' segment"
        )));
    }
    Ok(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(text: &str) -> UseBinding {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn covers(text: &str, origin: &str, path: &str) -> bool {
        binding(text).covers(&Origin::parse(origin).unwrap(), path)
    }

    #[test]
    fn origin_forms_are_the_allow_lists() {
        assert!(covers(
            "t=https://api.example.com",
            "https://API.example.com:443",
            "/x"
        ));
        assert!(!covers(
            "t=https://api.example.com",
            "http://api.example.com",
            "/x"
        ));
        assert!(!covers(
            "t=https://api.example.com",
            "https://api.example.com:8443",
            "/"
        ));
        assert!(covers(
            "t=https://*.example.com",
            "https://a.example.com",
            "/"
        ));
        assert!(!covers(
            "t=https://*.example.com",
            "https://example.com",
            "/"
        ));
        assert!(covers(
            "t=http://127.0.0.1:5000",
            "http://127.0.0.1:5000",
            "/api"
        ));
        assert!(!covers(
            "t=http://127.0.0.1:5000",
            "http://127.0.0.1:5001",
            "/api"
        ));
    }

    #[test]
    fn path_prefixes_match_whole_segments_and_refuse_tricks() {
        let b = "t=https://api.example.com/v1";
        let o = "https://api.example.com";
        assert!(covers(b, o, "/v1"));
        assert!(covers(b, o, "/v1/runs"));
        assert!(!covers(b, o, "/v10"));
        assert!(!covers(b, o, "/v2/v1"));
        assert!(!covers(b, o, "/v1/../admin"));
        assert!(!covers(b, o, "/v1/%2E%2E/admin"));
        assert!(!covers(b, o, "/v1%2fx"));
        assert!(!covers(b, o, "/v1/./x"));
        assert!(covers("t=https://api.example.com/v1/", o, "/v1/x"));
        assert!(!covers("t=https://api.example.com/v1/", o, "/v1"));
        assert!(covers("t=https://api.example.com/", o, "/anything"));
    }

    #[test]
    fn options_and_display() {
        let b = binding("db-token=https://api.example.com/v1,query,body");
        assert!(b.in_query() && b.in_body());
        assert_eq!(b.path_prefix(), "/v1");
        assert_eq!(
            b.to_string(),
            "db-token=https://api.example.com/v1,query,body"
        );
        let plain = binding("db-token=https://api.example.com");
        assert!(!plain.in_query() && !plain.in_body());
        assert_eq!(plain.path_prefix(), "/");
        assert!(plain.is_for("DB-TOKEN"));
        assert!(plain.in_header("authorization") && plain.allows_method("DELETE"));
        assert_eq!(plain.methods(), None);

        let narrow = binding(
            "db-token=https://api.example.com,header=Authorization,header=X-Api-Key,header=x-api-key,methods=get+POST",
        );
        assert!(narrow.in_header("authorization") && narrow.in_header("x-api-key"));
        assert!(!narrow.in_header("x-goog-api-key"));
        assert!(narrow.allows_method("GET") && narrow.allows_method("POST"));
        assert!(!narrow.allows_method("PUT") && !narrow.allows_method("get"));
        assert_eq!(
            narrow.to_string(),
            "db-token=https://api.example.com,header=authorization,header=x-api-key,methods=GET+POST"
        );
        assert_eq!(narrow.to_string().parse::<UseBinding>().unwrap(), narrow);
    }

    #[test]
    fn bad_bindings_say_what_is_wrong() {
        for (text, says) in [
            ("api-token", "no '='"),
            ("bad_name=https://a.example.com", "secret names"),
            ("t=api.example.com", "no scheme"),
            ("t=http://api.example.com", "plain http"),
            ("t=ftp://api.example.com", "not supported"),
            ("t=https://api.example.com,headers", "unknown option"),
            ("t=https://api.example.com,header=", "not a header name"),
            (
                "t=https://api.example.com,header=X Api",
                "not a header name",
            ),
            (
                "t=https://api.example.com,header=User-Agent",
                "reflect and log",
            ),
            (
                "t=https://api.example.com,header=X-Forwarded-For",
                "reflect and log",
            ),
            (
                "t=https://api.example.com,methods=GET+FETCH",
                "not one of GET",
            ),
            ("t=https://api.example.com,methods=", "not one of GET"),
            ("t=https://api.example.com,query=1", "unknown option"),
            ("t=https://api.example.com/v1?x=1", "path prefix"),
            ("t=https://api.example.com/v1/%2e", "path prefix"),
            ("t=https://api.example.com/a/../b", "'..' segment"),
            ("t=https://user@api.example.com", "user info"),
        ] {
            let err = text.parse::<UseBinding>().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// Where the most lenient server would send `path`: percent-decoded until it no longer
    /// changes, backslashes as slashes, `;` parameters dropped from each segment, dot segments
    /// resolved.
    fn lenient_resolution(path: &str) -> String {
        let mut current = path.to_string();
        loop {
            let decoded = percent_encoding::percent_decode_str(&current)
                .decode_utf8_lossy()
                .into_owned();
            if decoded == current {
                break;
            }
            current = decoded;
        }
        let mut out: Vec<&str> = Vec::new();
        let current = current.replace('\\', "/");
        for segment in current.split('/').skip(1) {
            match segment.split(';').next().unwrap_or("") {
                "." => {}
                ".." => {
                    out.pop();
                }
                _ => out.push(segment),
            }
        }
        format!("/{}", out.join("/"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// No path that a normalising server resolves outside the prefix is covered; plain
        /// paths inside it are.
        #[test]
        fn paths_a_lenient_server_resolves_outside_the_prefix_are_never_covered(
            segments in proptest::collection::vec(proptest::sample::select(vec![
                "admin", "x", "v1", ".", "..", "..;", ".;", "..;x", "%2e%2e", "%252e%252e",
                "%2e", "%25252e%25252e", "..%2f", "a%5c..", "a\\..", "%2E%2E;", "v1;p",
            ]), 1..6),
            plain in proptest::collection::vec("[a-z0-9_-]{1,8}", 0..4),
        ) {
            let origin = Origin::parse("https://api.example.com").unwrap();
            let bound = binding("t=https://api.example.com/v1");
            let path = format!("/v1/{}", segments.join("/"));
            let resolved = lenient_resolution(&path);
            if bound.covers(&origin, &path) {
                proptest::prop_assert!(
                    resolved == "/v1" || resolved.starts_with("/v1/"),
                    "{path} resolves to {resolved}"
                );
            }
            let inside = format!("/v1/{}", plain.join("/"));
            proptest::prop_assert!(bound.covers(&origin, inside.trim_end_matches('/')) || plain.is_empty());
        }
    }

    #[test]
    fn the_reviews_paths_are_not_covered() {
        for path in [
            "/v1/..;/admin",
            "/v1/.;/admin",
            "/v1/%252e%252e/admin",
            "/v1/%2e%2e/admin",
            "/v1/x/..;a/../../admin",
        ] {
            assert!(
                !covers(
                    "t=https://api.example.com/v1",
                    "https://api.example.com",
                    path
                ),
                "{path}"
            );
        }
        for path in ["/v1/runs;jsessionid=1", "/v1/%25", "/v1/a%3b/x", "/v%31/x"] {
            let covered = covers(
                "t=https://api.example.com/v1",
                "https://api.example.com",
                path,
            );
            assert_eq!(
                covered,
                path == "/v%31/x",
                "{path}: whole decoded segments are compared"
            );
        }
    }
}
