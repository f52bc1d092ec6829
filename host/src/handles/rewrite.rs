//! Checking one outgoing request for handles and putting the values in. Pure logic over
//! `http` types, no wasmtime, no I/O.
//!
//! A request passes only if every handle in it is whole, one of the run's, bound to the
//! request's origin, path and method (`,methods=`), and in a place its binding allows (headers,
//! also the password of `Authorization: Basic`, or exactly those `,header=` names; the query
//! with `,query`; the body with `,body`; the path never). Then each is replaced by its value,
//! written as the place needs it:
//!
//! | place | the value goes in as |
//! |---|---|
//! | a header | the value (a header cannot hold a line break: such a value is refused) |
//! | `Authorization: Basic` | decoded, substituted, base64-encoded again |
//! | the query | percent-encoded (`A-Z a-z 0-9 - . _ ~` kept) |
//! | a JSON body (`application/json`, `+json`) | JSON-string-escaped |
//! | a form body (`application/x-www-form-urlencoded`) | form-encoded |
//! | any other body | the value |
//!
//! `Content-Length` is set to the new body's length. A request may carry `Authorization` only
//! with a handle substituted in it; without one it is refused (a run has no credential of its
//! own to send). A handle in a header that never carries a credential and that servers, proxies
//! and CDNs commonly reflect or log ([`reflected_header`]: `User-Agent`, `Referer`,
//! `X-Request-Id`, `traceparent`, `Accept*`, `Content-*`, ...) refuses the request: the value
//! would end up in access logs and echoed answers. Custom credential headers (`X-Api-Key`,
//! `X-Goog-Api-Key`, `DD-API-KEY`, ...) carry it. Any other finding
//! ([`super::placeholder::Stray`]) refuses the request.

use super::placeholder::{Scan, Scanner, StrayKind};
use super::{IssuedHandle, UseBinding};
use crate::policy::Origin;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Uri};

/// Why a request was refused; `handle` is the index of the run's handle it is about.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The handle concerned, when it is one of the run's.
    pub handle: Option<usize>,
    /// What is wrong, for the audit record and the log (never a value or the request path).
    pub reason: String,
}

/// A request ready to go: its new body, and the handles substituted in it.
#[derive(Debug)]
pub struct Substituted {
    /// The body, with values in it where bound.
    pub body: Bytes,
    /// The indices of the handles whose values are now in the request.
    pub used: Vec<usize>,
}

/// Where in the request a handle was found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place<'a> {
    Path,
    Query,
    HeaderName,
    Header(&'a str),
    Body,
}

impl Place<'_> {
    fn allowed(self, binding: &UseBinding) -> bool {
        match self {
            Place::Header(name) => binding.in_header(name),
            Place::Query => binding.in_query(),
            Place::Body => binding.in_body(),
            Place::Path | Place::HeaderName => false,
        }
    }

    fn describe(self) -> String {
        match self {
            Place::Path => "the URL path (handles are never substituted there)".into(),
            Place::Query => "the query string (allow it with ,query on --use-secret)".into(),
            Place::HeaderName => {
                "a header name (handles are substituted in header values only)".into()
            }
            Place::Header(name) => {
                format!("the header {name}, which its binding's header= options do not name")
            }
            Place::Body => "the body (allow it with ,body on --use-secret)".into(),
        }
    }
}

struct Checker<'a> {
    origin: &'a Origin,
    method: &'a str,
    path: &'a str,
    issued: &'a [IssuedHandle],
    scanner: &'a Scanner,
    used: Vec<usize>,
}

impl Checker<'_> {
    /// Scans `text` found in `place`; refuses strays and unbound handles.
    fn check(&mut self, text: &[u8], place: Place) -> Result<Scan, Refusal> {
        let scan = self.scanner.scan(text);
        if let Some(stray) = scan.strays.first() {
            let what = match stray.kind {
                StrayKind::Fragment => "a piece of a handle (a handle split up)",
                StrayKind::Encoded => "an encoded handle (percent, base64 or hex)",
                StrayKind::Unknown => "a handle that is not one of this run's",
            };
            return Err(Refusal {
                handle: stray.handle,
                reason: format!("the request carries {what}; only whole handles are substituted"),
            });
        }
        for (_, i) in &scan.literals {
            let handle = &self.issued[*i];
            let covering: Vec<&UseBinding> = handle
                .bindings
                .iter()
                .filter(|b| b.covers(self.origin, self.path))
                .collect();
            if covering.is_empty() {
                let bound: Vec<String> = handle.bindings.iter().map(|b| b.to_string()).collect();
                return Err(Refusal {
                    handle: Some(*i),
                    reason: format!(
                        "the handle of {:?} may go only where it is bound ({}), not to {} at this path",
                        handle.name,
                        bound.join(" "),
                        self.origin
                    ),
                });
            }
            let covering: Vec<&UseBinding> = covering
                .into_iter()
                .filter(|b| b.allows_method(self.method))
                .collect();
            if covering.is_empty() {
                let named: Vec<String> = handle
                    .bindings
                    .iter()
                    .filter_map(UseBinding::methods)
                    .collect();
                return Err(Refusal {
                    handle: Some(*i),
                    reason: format!(
                        "the handle of {:?} may go to {} only with the methods its binding names ({}), not {}",
                        handle.name,
                        self.origin,
                        named.join(", "),
                        self.method
                    ),
                });
            }
            if !covering.iter().any(|b| place.allowed(b)) {
                return Err(Refusal {
                    handle: Some(*i),
                    reason: format!("the handle of {:?} is in {}", handle.name, place.describe()),
                });
            }
            if !self.used.contains(i) {
                self.used.push(*i);
            }
        }
        Ok(scan)
    }
}

/// Checks `parts` and `body` (the whole request) for handles, and substitutes the values
/// of bound ones in place. `issued` are the run's handles, `scanner` built from them in that
/// order.
pub fn substitute(
    origin: &Origin,
    parts: &mut http::request::Parts,
    body: Bytes,
    issued: &[IssuedHandle],
    scanner: &Scanner,
) -> Result<Substituted, Refusal> {
    let path = parts.uri.path().to_string();
    let method = parts.method.to_string();
    let mut checker = Checker {
        origin,
        method: &method,
        path: &path,
        issued,
        scanner,
        used: Vec::new(),
    };
    checker.check(path.as_bytes(), Place::Path)?;
    if let Some(query) = parts.uri.query().map(str::to_string) {
        let scan = checker.check(query.as_bytes(), Place::Query)?;
        if !scan.literals.is_empty() {
            let query = replace(query.as_bytes(), &scan, issued, |v| {
                percent_encoding::utf8_percent_encode(v, QUERY_VALUE)
                    .to_string()
                    .into_bytes()
            });
            parts.uri = with_query(&parts.uri, &query)?;
        }
    }
    for name in parts.headers.keys() {
        checker.check(name.as_str().as_bytes(), Place::HeaderName)?;
    }
    let mut authorization_carries_handle = false;
    for (name, value) in parts.headers.iter_mut() {
        let basic = (*name == AUTHORIZATION)
            .then(|| basic_credentials(value.as_bytes()))
            .flatten();
        let (text, rewrap): (Vec<u8>, bool) = match basic {
            Some(decoded) => (decoded, true),
            None => (value.as_bytes().to_vec(), false),
        };
        let scan = checker.check(&text, Place::Header(name.as_str()))?;
        if scan.literals.is_empty() {
            continue;
        }
        if reflected_header(name) {
            let handle = scan.literals[0].1;
            return Err(Refusal {
                handle: Some(handle),
                reason: format!(
                    "the handle of {:?} is in the header {name}, which never carries a credential and which servers reflect and log; send it in Authorization or the service's own credential header",
                    issued[handle].name
                ),
            });
        }
        if *name == AUTHORIZATION {
            authorization_carries_handle = true;
        }
        let replaced = replace(&text, &scan, issued, |v| v.as_bytes().to_vec());
        let bytes = if rewrap {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&replaced);
            format!("Basic {encoded}").into_bytes()
        } else {
            replaced
        };
        let mut new_value = HeaderValue::from_bytes(&bytes).map_err(|_| Refusal {
            handle: scan.literals.first().map(|(_, i)| *i),
            reason: format!(
                "the value of {:?} cannot go in a header (it holds a line break or another control character)",
                issued[scan.literals[0].1].name
            ),
        })?;
        new_value.set_sensitive(true);
        *value = new_value;
    }
    if parts.headers.contains_key(AUTHORIZATION) && !authorization_carries_handle {
        return Err(Refusal {
            handle: None,
            reason: format!("a run may set Authorization only to carry a handle bound to {origin}"),
        });
    }
    let mut body = body;
    if !body.is_empty() {
        let scan = checker.check(&body, Place::Body)?;
        if !scan.literals.is_empty() {
            let kind = BodyKind::of(parts.headers.get(CONTENT_TYPE));
            body = Bytes::from(replace(&body, &scan, issued, |v| kind.escape(v)));
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }
    Ok(Substituted {
        body,
        used: checker.used,
    })
}

/// Headers that never carry a credential and that servers, proxies and CDNs commonly reflect
/// or log: a handle in one refuses the request.
pub fn reflected_header(name: &http::HeaderName) -> bool {
    const NAMES: &[&str] = &[
        "user-agent",
        "referer",
        "origin",
        "via",
        "forwarded",
        "x-request-id",
        "x-correlation-id",
        "idempotency-key",
        "traceparent",
        "tracestate",
        "cache-control",
        "host",
    ];
    const PREFIXES: &[&str] = &["x-forwarded-", "accept", "content-"];
    let name = name.as_str();
    NAMES.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Percent-encode everything but the unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The decoded credentials of `Basic <base64>`, if the header is one.
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

/// `text` with every whole handle of `scan` replaced by `write(value)`.
fn replace(
    text: &[u8],
    scan: &Scan,
    issued: &[IssuedHandle],
    write: impl Fn(&str) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut cursor = 0;
    for (range, i) in &scan.literals {
        if range.start < cursor {
            continue;
        }
        out.extend_from_slice(&text[cursor..range.start]);
        out.extend_from_slice(&write(issued[*i].value.expose()));
        cursor = range.end;
    }
    out.extend_from_slice(&text[cursor..]);
    out
}

fn with_query(uri: &Uri, query: &[u8]) -> Result<Uri, Refusal> {
    let query = String::from_utf8_lossy(query);
    let mut builder = Uri::builder().path_and_query(format!("{}?{query}", uri.path()));
    if let Some(scheme) = uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = uri.authority() {
        builder = builder.authority(authority.clone());
    }
    builder.build().map_err(|_| Refusal {
        handle: None,
        reason: "the query string could not be rebuilt with the value in it".into(),
    })
}

/// How a body is written, from its `Content-Type`.
enum BodyKind {
    Json,
    Form,
    Other,
}

impl BodyKind {
    fn of(content_type: Option<&HeaderValue>) -> BodyKind {
        let essence = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if essence == "application/json" || essence.ends_with("+json") {
            BodyKind::Json
        } else if essence == "application/x-www-form-urlencoded" {
            BodyKind::Form
        } else {
            BodyKind::Other
        }
    }

    fn escape(&self, value: &str) -> Vec<u8> {
        match self {
            BodyKind::Json => {
                let quoted = serde_json::to_string(value).expect("a string serialises");
                quoted.as_bytes()[1..quoted.len() - 1].to_vec()
            }
            BodyKind::Form => form_urlencoded::byte_serialize(value.as_bytes())
                .collect::<String>()
                .into_bytes(),
            BodyKind::Other => value.as_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::placeholder::new_handle;
    use super::*;
    use crate::SecretString;

    struct Case {
        issued: Vec<IssuedHandle>,
        scanner: Scanner,
    }

    fn case(value: &str, bindings: &[&str]) -> Case {
        let handle = new_handle();
        let issued = vec![IssuedHandle::new(
            "api-token",
            &handle,
            SecretString::from(value),
            None,
            bindings.iter().map(|b| b.parse().unwrap()).collect(),
        )];
        Case {
            scanner: Scanner::new(&[&handle]),
            issued,
        }
    }

    impl Case {
        fn h(&self) -> &str {
            &self.issued[0].handle
        }

        fn send(
            &self,
            request: http::request::Builder,
            body: &str,
        ) -> Result<(http::request::Parts, Substituted), Refusal> {
            let (mut parts, ()) = request.body(()).unwrap().into_parts();
            let origin = Origin::from_uri(&parts.uri).unwrap();
            let done = substitute(
                &origin,
                &mut parts,
                Bytes::from(body.to_string()),
                &self.issued,
                &self.scanner,
            )?;
            Ok((parts, done))
        }
    }

    fn get(uri: &str) -> http::request::Builder {
        http::Request::get(uri)
    }

    #[test]
    fn a_handle_in_a_header_servers_reflect_and_log_refuses_the_request() {
        let c = case("s3cr3t value", &["api-token=https://api.example.com"]);
        for name in [
            "user-agent",
            "referer",
            "origin",
            "via",
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-request-id",
            "x-correlation-id",
            "idempotency-key",
            "traceparent",
            "tracestate",
            "accept",
            "accept-language",
            "content-type",
            "content-disposition",
            "cache-control",
        ] {
            let refused = c
                .send(
                    get("https://api.example.com/v1").header(name, format!("x {} y", c.h())),
                    "",
                )
                .unwrap_err();
            assert_eq!(refused.handle, Some(0), "{name}");
            assert_eq!(
                refused.reason,
                format!("the handle of \"api-token\" is in the header {name}, which never carries a credential and which servers reflect and log; send it in Authorization or the service's own credential header")
            );
        }
        for name in [
            "x-api-key",
            "x-goog-api-key",
            "dd-api-key",
            "api-key",
            "x-auth-token",
        ] {
            let (parts, _) = c
                .send(get("https://api.example.com/v1").header(name, c.h()), "")
                .unwrap_or_else(|e| panic!("{name}: {}", e.reason));
            assert_eq!(parts.headers[name], "s3cr3t value");
        }
    }

    #[test]
    fn headers_and_basic_credentials_get_the_value_where_bound() {
        let c = case("s3cr3t value", &["api-token=https://api.example.com/v1"]);
        let (parts, done) = c
            .send(
                get("https://api.example.com/v1/runs")
                    .header("x-api-key", c.h())
                    .header("authorization", format!("Bearer {}", c.h())),
                "",
            )
            .unwrap();
        assert_eq!(parts.headers["x-api-key"], "s3cr3t value");
        assert_eq!(parts.headers["authorization"], "Bearer s3cr3t value");
        assert!(parts.headers["authorization"].is_sensitive());
        assert_eq!(done.used, [0]);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("trainer:{}", c.h()));
        let (parts, _) = c
            .send(
                get("https://api.example.com/v1").header("authorization", format!("Basic {basic}")),
                "",
            )
            .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("trainer:s3cr3t value");
        assert_eq!(
            parts.headers["authorization"],
            format!("Basic {expected}").as_str()
        );
    }

    #[test]
    fn header_options_narrow_substitution_to_the_named_headers() {
        let c = case(
            "s3cr3t value",
            &["api-token=https://api.example.com,header=X-Api-Key"],
        );
        let (parts, _) = c
            .send(
                get("https://api.example.com/v1").header("X-API-KEY", c.h()),
                "",
            )
            .unwrap();
        assert_eq!(parts.headers["x-api-key"], "s3cr3t value");
        for name in ["authorization", "x-goog-api-key"] {
            let refused = c
                .send(
                    get("https://api.example.com/v1").header(name, format!("Bearer {}", c.h())),
                    "",
                )
                .unwrap_err();
            assert_eq!(
                refused.reason,
                format!("the handle of \"api-token\" is in the header {name}, which its binding's header= options do not name")
            );
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("u:{}", c.h()));
        assert!(c
            .send(
                get("https://api.example.com/v1").header("authorization", format!("Basic {basic}")),
                "",
            )
            .is_err());

        let authorization = case(
            "s3cr3t value",
            &["api-token=https://api.example.com,header=Authorization"],
        );
        let (parts, _) = authorization
            .send(
                get("https://api.example.com/v1")
                    .header("authorization", format!("Bearer {}", authorization.h())),
                "",
            )
            .unwrap();
        assert_eq!(parts.headers["authorization"], "Bearer s3cr3t value");
    }

    #[test]
    fn methods_limit_every_substitution_of_the_binding() {
        let c = case(
            "s3cr3t value",
            &["api-token=https://api.example.com,body,methods=GET+POST"],
        );
        for method in ["GET", "POST"] {
            let request = http::Request::builder()
                .method(method)
                .uri("https://api.example.com/v1")
                .header("x-api-key", c.h());
            assert!(c.send(request, "").is_ok(), "{method}");
        }
        for (method, header, body) in [("DELETE", true, ""), ("PUT", false, "x"), ("get", true, "")]
        {
            let mut request = http::Request::builder()
                .method(method)
                .uri("https://api.example.com/v1");
            if header {
                request = request.header("x-api-key", c.h());
            }
            let body = if body.is_empty() {
                String::new()
            } else {
                c.h().to_string()
            };
            let refused = c.send(request, &body).unwrap_err();
            assert_eq!(refused.handle, Some(0));
            assert_eq!(
                refused.reason,
                format!("the handle of \"api-token\" may go to https://api.example.com:443 only with the methods its binding names (GET+POST), not {method}")
            );
        }
    }

    #[test]
    fn query_and_body_only_with_their_option() {
        let c = case(
            "p&w \"x\"",
            &["api-token=https://api.example.com,query,body"],
        );
        let (parts, _) = c
            .send(
                get(&format!("https://api.example.com/q?key={}&n=1", c.h())),
                "",
            )
            .unwrap();
        assert_eq!(parts.uri.query(), Some("key=p%26w%20%22x%22&n=1"));
        let json = format!("{{\"password\":\"{}\"}}", c.h());
        let (parts, done) = c
            .send(
                http::Request::post("https://api.example.com/login")
                    .header("content-type", "application/json"),
                &json,
            )
            .unwrap();
        assert_eq!(&done.body[..], br#"{"password":"p&w \"x\""}"#);
        assert_eq!(
            parts.headers["content-length"],
            done.body.len().to_string().as_str()
        );
        let form = format!("user=a&password={}", c.h());
        let (_, done) = c
            .send(
                http::Request::post("https://api.example.com/login")
                    .header("content-type", "application/x-www-form-urlencoded"),
                &form,
            )
            .unwrap();
        assert_eq!(&done.body[..], b"user=a&password=p%26w+%22x%22");

        let headers_only = case("v", &["api-token=https://api.example.com"]);
        let query = headers_only
            .send(
                get(&format!("https://api.example.com/?k={}", headers_only.h())),
                "",
            )
            .unwrap_err();
        assert!(query.reason.contains(",query"), "{}", query.reason);
        let body = headers_only
            .send(
                http::Request::post("https://api.example.com/"),
                headers_only.h(),
            )
            .unwrap_err();
        assert!(body.reason.contains(",body"), "{}", body.reason);
        let path = headers_only
            .send(
                get(&format!("https://api.example.com/{}", headers_only.h())),
                "",
            )
            .unwrap_err();
        assert!(path.reason.contains("URL path"), "{}", path.reason);
    }

    #[test]
    fn unbound_origins_paths_and_schemes_are_refused() {
        let c = case("v", &["api-token=https://api.example.com/v1"]);
        for uri in [
            "https://evil.example.com/v1",
            "http://api.example.com/v1",
            "https://api.example.com:8443/v1",
            "https://api.example.com/v2",
            "https://api.example.com/v1/../admin",
        ] {
            let refusal = c.send(get(uri).header("x-key", c.h()), "").unwrap_err();
            assert_eq!(refusal.handle, Some(0), "{uri}");
            assert!(
                refusal.reason.contains("bound"),
                "{uri}: {}",
                refusal.reason
            );
        }
    }

    #[test]
    fn strays_a_bare_authorization_and_bad_header_values_are_refused() {
        let c = case("line\nbreak", &["api-token=https://api.example.com"]);
        let uri = "https://api.example.com/";
        let (a, b) = c.h().split_at(20);
        let split = c
            .send(get(uri).header("x-a", a).header("x-b", b), "")
            .unwrap_err();
        assert!(split.reason.contains("split"), "{}", split.reason);
        let encoded = base64::engine::general_purpose::STANDARD.encode(c.h());
        let refusal = c.send(get(uri).header("x-a", encoded), "").unwrap_err();
        assert!(refusal.reason.contains("encoded"), "{}", refusal.reason);
        let other = c
            .send(get(uri).header("x-a", new_handle()), "")
            .unwrap_err();
        assert!(other.reason.contains("not one of this run's"));
        let named = c
            .send(get(uri).header(format!("x-{}", c.h()).as_str(), "1"), "")
            .unwrap_err();
        assert!(named.reason.contains("a header name"), "{}", named.reason);
        let bare = c
            .send(get(uri).header("authorization", "Bearer mine"), "")
            .unwrap_err();
        assert!(bare.reason.contains("Authorization"), "{}", bare.reason);
        let control = c.send(get(uri).header("x-a", c.h()), "").unwrap_err();
        assert!(control.reason.contains("line break"), "{}", control.reason);
        assert!(!control.reason.contains("line\nbreak"));
        assert!(c
            .send(get(uri).header("x-a", "no handle"), "body")
            .unwrap()
            .1
            .used
            .is_empty());
    }
}
