//! The authorizer: how a vault request gets its `Authorization` header.
//!
//! [`crate::network`] calls [`send_authenticated`] for a request to the vault's origin, after
//! the policy check and with any component-set `Authorization` already removed. A static token
//! is added and the request sent as it is; Azure credentials follow the challenge protocol of
//! [`Credential`].

use super::challenge::Challenge;
use super::credential::Credential;
use crate::transport::Transport;
use http::header::AUTHORIZATION;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Why the host sent the vault no token when it asked for one, in the host's words: the
/// last reason, kept until taken. The network layer keeps one per component
/// (`NetworkStats::take_no_token`).
#[derive(Default)]
pub struct NoTokenReason(std::sync::Mutex<Option<String>>);

impl NoTokenReason {
    /// Records why no token was sent.
    fn record(&self, why: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The last reason, taken.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Sends a vault request with the credential. A static token is added and the request sent
/// as it is. Azure credentials follow the challenge protocol ([`crate::auth`]): the
/// request goes without a token until this host's challenge has been accepted; a `401`
/// challenge is answered once, only where [`Credential::answer`] allows it, so the body is
/// kept for that second attempt. When no token can be had, or the challenge may not be
/// answered, the component gets a `401` whose message says why, and `no_token` records it for
/// the host's own account of the failure.
pub(crate) async fn send_authenticated(
    transport: &Transport,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    credential: &Credential,
    host: &str,
    no_token: &NoTokenReason,
) -> Result<http::Response<WasiBody>, HttpError> {
    let first = match credential.authorization(host).await {
        Ok(header) => header,
        Err(e) => return Ok(credential_failure(&e, no_token)),
    };
    if credential.is_static() {
        // A static token cannot answer a challenge: no need to keep the body for a retry.
        let mut request = request;
        if let Some(header) = first {
            request.headers_mut().insert(AUTHORIZATION, header);
        }
        return transport.send(request, options).await;
    }
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, 1 << 20)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(None))?
        .to_bytes();
    let build = |authorization: Option<http::HeaderValue>| {
        let mut request = http::Request::new(
            http_body_util::Full::new(body.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        if let Some(slot) = parts.extensions.get::<crate::transport::CauseSlot>() {
            request.extensions_mut().insert(slot.clone());
        }
        if let Some(authorization) = authorization {
            request.headers_mut().insert(AUTHORIZATION, authorization);
        }
        request
    };
    let sent_token = first.is_some();
    let response = transport.send(build(first), options).await?;
    if response.status() != http::StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let Some(challenge) = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse)
    else {
        return Ok(response);
    };
    match credential.answer(host, &challenge, sent_token).await {
        Ok(Some(header)) => transport.send(build(Some(header)), options).await,
        Ok(None) => Ok(response),
        Err(e) => Ok(credential_failure(&e, no_token)),
    }
}

/// A `401` in the Key Vault error shape that carries why no token was sent, also recorded in
/// `no_token`.
fn credential_failure(
    e: &crate::error::Error,
    no_token: &NoTokenReason,
) -> http::Response<WasiBody> {
    no_token.record(e.to_string());
    let body = serde_json::json!({ "error": { "code": "CredentialUnavailable", "message": e.to_string() } });
    let mut response = http::Response::new(
        http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
}
