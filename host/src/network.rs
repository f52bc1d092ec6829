//! The `wasi:http` hooks of the vault client component: the only way out of its store.
//!
//! Isolation model: the component builds requests, the host decides. For every outgoing
//! request [`VaultHooks::send_request`] does, in this order:
//!
//! 1. **Policy**: the request's origin must match the allow-list ([`crate::policy`]), and,
//!    for a run's vault client, the request must be a `GET` of a granted secret
//!    ([`SecretGrant`]); otherwise the component gets `HTTP-request-denied` and nothing
//!    leaves the machine.
//! 2. **Credential**: any `Authorization` header is removed, and the host's bearer token is
//!    added only if the origin is the vault's (Azure tokens only after the vault's challenge
//!    named a Key Vault resource covering its host, [`crate::credential`]). The component cannot set `Authorization`
//!    itself either: it is a forbidden header, so `fields.append` fails with `forbidden`.
//! 3. **Transport**: the request goes through the pooled TLS client ([`crate::transport`]).
//!
//! [`NetworkStats`] counts what was sent and what was denied, for audits and tests.

use crate::azure_auth::Challenge;
use crate::credential::Credential;
use crate::policy::{AllowList, Origin, SecretGrant};
use crate::transport::Transport;
use http::header::AUTHORIZATION;
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime_wasi_http::{
    Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
    DEFAULT_FORBIDDEN_HEADERS,
};

/// Counters of one component's network use.
#[derive(Debug, Default)]
pub struct NetworkStats {
    sent: AtomicU64,
    denied: AtomicU64,
}

impl NetworkStats {
    /// Requests that passed the policy and were handed to the transport.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Requests refused by the policy.
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }
}

/// The hooks: allow-list, credential injection and transport.
#[derive(Clone)]
pub struct VaultHooks {
    allow: Arc<AllowList>,
    grant: Option<Arc<SecretGrant>>,
    credential: Option<(Origin, Credential)>,
    transport: Arc<Transport>,
    stats: Arc<NetworkStats>,
}

impl VaultHooks {
    /// Hooks that allow `allow`, add `credential` to requests for its origin, and send
    /// through `transport`.
    pub fn new(
        allow: AllowList,
        credential: Option<(Origin, Credential)>,
        transport: Arc<Transport>,
    ) -> VaultHooks {
        VaultHooks {
            allow: Arc::new(allow),
            grant: None,
            credential,
            transport,
            stats: Arc::new(NetworkStats::default()),
        }
    }

    /// Restricts every request to a `GET` of a secret in `grant` (a run's vault client).
    pub fn with_grant(mut self, grant: SecretGrant) -> VaultHooks {
        self.grant = Some(Arc::new(grant));
        self
    }

    /// The counters.
    pub fn stats(&self) -> Arc<NetworkStats> {
        self.stats.clone()
    }

    /// Whether the component may set this header itself.
    pub fn forbidden(name: &http::HeaderName) -> bool {
        *name == AUTHORIZATION || DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for VaultHooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        VaultHooks::forbidden(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(VaultHooks::forbidden)
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let origin = match Origin::from_uri(request.uri()) {
            Ok(origin)
                if self.grant.as_ref().is_some_and(|grant| {
                    !grant.allows_request(request.method(), request.uri().path())
                }) =>
            {
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%origin, method = %request.method(), "denied a run's vault request: not a GET of a granted secret");
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
            Ok(origin) if self.allow.allows(&origin) => origin,
            Ok(origin) => {
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%origin, method = %request.method(), "denied a component request: origin not in the allow-list");
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
            Err(why) => {
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%why, "denied a component request");
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        request.headers_mut().remove(AUTHORIZATION);
        let credential = self
            .credential
            .as_ref()
            .filter(|(vault, _)| *vault == origin)
            .map(|(_, credential)| credential.clone());
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%origin, method = %request.method(), path = request.uri().path(), "component request");
        let transport = self.transport.clone();
        Box::new(async move {
            let response = match credential {
                None => transport.send(request, options).await?,
                Some(credential) => {
                    send_authenticated(&transport, request, options, &credential, origin.host())
                        .await?
                }
            };
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// Sends a vault request with the credential. A static token is added and the request sent
/// as it is. Azure credentials follow the challenge protocol ([`crate::credential`]): the
/// request goes without a token until this host's challenge has been accepted; a `401`
/// challenge is answered once, only where [`Credential::answer`] allows it, so the body is
/// kept for that second attempt. When no token can be had, the component gets a `401` whose
/// message says why.
async fn send_authenticated(
    transport: &Transport,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    credential: &Credential,
    host: &str,
) -> Result<http::Response<WasiBody>, HttpError> {
    let first = match credential.authorization(host).await {
        Ok(header) => header,
        Err(e) => return Ok(credential_failure(&e)),
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
        Err(e) => Ok(credential_failure(&e)),
    }
}

/// A `401` in the Key Vault error shape that carries why no token could be had.
fn credential_failure(e: &crate::Error) -> http::Response<WasiBody> {
    tracing::warn!(error = %e, "no token for the vault");
    let body = serde_json::json!({ "error": { "code": "CredentialUnavailable", "message": e.to_string() } });
    let mut response = http::Response::new(
        http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
}
