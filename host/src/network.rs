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
//!    added only if the origin is the vault's. The component cannot set `Authorization`
//!    itself either: it is a forbidden header, so `fields.append` fails with `forbidden`.
//! 3. **Transport**: the request goes through the pooled TLS client ([`crate::transport`]).
//!
//! [`NetworkStats`] counts what was sent and what was denied, for audits and tests.

use crate::credential::Credential;
use crate::policy::{AllowList, Origin, SecretGrant};
use crate::transport::Transport;
use http::header::AUTHORIZATION;
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
        let headers = request.headers_mut();
        headers.remove(AUTHORIZATION);
        if let Some((vault, credential)) = &self.credential {
            if *vault == origin {
                headers.insert(AUTHORIZATION, credential.authorization());
            }
        }
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%origin, method = %request.method(), path = request.uri().path(), "component request");
        let transport = self.transport.clone();
        Box::new(async move {
            let response = transport.send(request, options).await?;
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}
