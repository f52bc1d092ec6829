//! A small blocking HTTP client over `wasi:http` (the `wasi` crate's raw bindings): one
//! request, the whole answer. The host decides where it may go; with a secret's handle in a
//! header, the host puts the value in on the way out (`kvrun run --use-secret`).

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FieldSizePayload, Fields, HeaderError, IncomingBody, Method, OutgoingBody,
    OutgoingRequest, Scheme,
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
    let future = outgoing_handler::handle(request, None).map_err(|e| described(&e))?;
    {
        let stream = outgoing.write().map_err(|_| "no body stream")?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the body: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| described(&e))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(described(&code)),
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

/// A `wasi:http` error in words, one line, for every code the host can give.
pub fn described(code: &ErrorCode) -> String {
    let size = |what: &str, bytes: Option<u64>| match bytes {
        Some(bytes) => format!("{what} is too large ({bytes} bytes)"),
        None => format!("{what} is too large"),
    };
    let field = |what: &str, payload: &FieldSizePayload| match &payload.field_name {
        Some(name) => format!("the {what} {name:?} is too large"),
        None => format!("a {what} is too large"),
    };
    match code {
        ErrorCode::DnsTimeout => "the host name could not be resolved in time".into(),
        ErrorCode::DnsError(payload) => match &payload.rcode {
            // A DNS response code (NXDOMAIN, SERVFAIL) says more; a sentence would repeat this.
            Some(rcode) if !rcode.contains(' ') => {
                format!("the host name could not be resolved ({rcode})")
            }
            _ => "the host name could not be resolved".into(),
        },
        ErrorCode::DestinationNotFound => "the destination was not found".into(),
        ErrorCode::DestinationUnavailable => "the destination is unavailable".into(),
        ErrorCode::DestinationIpProhibited => "the destination's IP address is prohibited".into(),
        ErrorCode::DestinationIpUnroutable => "the destination's IP address is unroutable".into(),
        ErrorCode::ConnectionRefused => {
            "the connection was refused (is the server running?)".into()
        }
        ErrorCode::ConnectionTerminated => "the connection was closed before the answer".into(),
        ErrorCode::ConnectionTimeout => "connecting timed out".into(),
        ErrorCode::ConnectionReadTimeout => "reading from the connection timed out".into(),
        ErrorCode::ConnectionWriteTimeout => "writing to the connection timed out".into(),
        ErrorCode::ConnectionLimitReached => "too many connections are open".into(),
        ErrorCode::TlsProtocolError => "the TLS handshake failed".into(),
        ErrorCode::TlsCertificateError => {
            "the server's TLS certificate is not trusted (give its CA with --http-ca-cert)".into()
        }
        ErrorCode::TlsAlertReceived(payload) => match &payload.alert_message {
            Some(message) => format!("the server sent a TLS alert: {message}"),
            None => "the server sent a TLS alert".into(),
        },
        ErrorCode::HttpRequestDenied => {
            "the kvrun host refused the request (this run may not send it there)".into()
        }
        ErrorCode::HttpRequestLengthRequired => "the request needs a content length".into(),
        ErrorCode::HttpRequestBodySize(bytes) => size("the request body", *bytes),
        ErrorCode::HttpRequestMethodInvalid => "the request method is invalid".into(),
        ErrorCode::HttpRequestUriInvalid => "the request URL is invalid".into(),
        ErrorCode::HttpRequestUriTooLong => "the request URL is too long".into(),
        ErrorCode::HttpRequestHeaderSectionSize(_) => "the request's headers are too large".into(),
        ErrorCode::HttpRequestHeaderSize(payload) => match payload {
            Some(payload) => field("request header", payload),
            None => "a request header is too large".into(),
        },
        ErrorCode::HttpRequestTrailerSectionSize(_) => {
            "the request's trailers are too large".into()
        }
        ErrorCode::HttpRequestTrailerSize(payload) => field("request trailer", payload),
        ErrorCode::HttpResponseIncomplete => "the answer broke off".into(),
        ErrorCode::HttpResponseHeaderSectionSize(_) => "the answer's headers are too large".into(),
        ErrorCode::HttpResponseHeaderSize(payload) => field("answer header", payload),
        ErrorCode::HttpResponseBodySize(bytes) => size("the answer body", *bytes),
        ErrorCode::HttpResponseTrailerSectionSize(_) => {
            "the answer's trailers are too large".into()
        }
        ErrorCode::HttpResponseTrailerSize(payload) => field("answer trailer", payload),
        ErrorCode::HttpResponseTransferCoding(coding) => format!(
            "the answer came in a transfer coding that cannot be read ({})",
            coding.as_deref().unwrap_or("unknown")
        ),
        ErrorCode::HttpResponseContentCoding(coding) => format!(
            "the answer came in a content coding that cannot be read ({})",
            coding.as_deref().unwrap_or("unknown")
        ),
        ErrorCode::HttpResponseTimeout => "the answer did not come in time".into(),
        ErrorCode::HttpUpgradeFailed => "the protocol upgrade failed".into(),
        ErrorCode::HttpProtocolError => "the server broke the HTTP protocol".into(),
        ErrorCode::LoopDetected => "a request loop was detected".into(),
        ErrorCode::ConfigurationError => "the HTTP client is misconfigured".into(),
        ErrorCode::InternalError(Some(detail)) => format!("the request failed: {detail}"),
        ErrorCode::InternalError(None) => "the request failed".into(),
    }
}
