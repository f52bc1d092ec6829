//! A small blocking HTTP client over `wasi:http` (the `wasi` crate's raw bindings): one
//! request, the whole answer. The host decides where it may go; with a secret's handle in a
//! header, the host puts the value in on the way out (`kvrun run --use-secret`).

use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

/// An answer: status, headers and body.
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The header lines, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any letter case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Sends `method url` with `headers` and `body` (none when empty) and reads the answer.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Response, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} has no scheme"))?;
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value).map_err(|e| match e {
            HeaderError::Forbidden => {
                format!("forbidden: the host does not let a component set {name}")
            }
            other => format!("header {name}: {other:?}"),
        })?;
    }
    if !body.is_empty() {
        fields
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|e| format!("content-length: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    request.set_method(&method).map_err(|_| "bad method")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("scheme {other:?} is not http or https")),
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|_| format!("bad authority {authority:?}"))?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    request
        .set_path_with_query(Some(&path))
        .map_err(|_| "bad path")?;
    let outgoing = request.body().map_err(|_| "no request body")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|_| "no body stream")?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response.consume().map_err(|_| "no response body")?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|_| "no response body stream")?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("reading the answer: {e:?}")),
            }
        }
    }
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}
