//! The `wasi:http` hooks of every component the host runs: the only way out of its store.
//!
//! [`OutboundHooks`] guard the vault client component (allowed: the vault's origin, with the
//! credential) and the training component's own outbound traffic (allowed: the run's
//! `--allow-http` origins, never a credential) alike.
//!
//! Isolation model: the component builds requests, the host decides. For every outgoing
//! request [`OutboundHooks::send_request`] does, in this order:
//!
//! 1. **Policy**: the request's origin must match the allow-list ([`crate::policy`]), and,
//!    for a run's vault client, the request must be a `GET` of a granted secret
//!    ([`SecretGrant`]); otherwise the component gets `HTTP-request-denied` and nothing
//!    leaves the machine.
//! 2. **Authorization**: any `Authorization` header is removed, and the host's credential is
//!    added only if the origin is the vault's ([`crate::auth`]: Azure tokens only after the
//!    vault's challenge named a Key Vault resource covering its host). The component cannot set
//!    `Authorization` itself either: it is a forbidden header, so `fields.append` fails with
//!    `forbidden`.
//!    **Handles** instead, for a training run with `--use-secret` bindings ([`crate::handles`]):
//!    the run may set `Authorization`, but only to carry a handle; the whole request is
//!    checked, bound handles are replaced by their values, anything else about a handle
//!    refuses the request, and the answer is masked for the values that went out. Such a
//!    run never has a credential of the host's.
//! 3. **Transport**: the request goes through the pooled TLS client ([`crate::transport`]).
//!
//! [`NetworkStats`] counts what was sent and what was denied, for audits and tests.

use crate::auth::{send_authenticated, Credential, NoTokenReason};
use crate::error::NetworkCause;
use crate::handles::RunHandles;
use crate::policy::{AllowList, Origin, SecretGrant};
use crate::transport::{CauseSlot, Transport};
use http::header::AUTHORIZATION;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime_wasi_http::{
    Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
    DEFAULT_FORBIDDEN_HEADERS,
};

/// Counters of one component's network use, and what its last request met on the wire.
#[derive(Default)]
pub struct NetworkStats {
    sent: AtomicU64,
    denied: AtomicU64,
    cause: CauseSlot,
    answer: std::sync::Mutex<Option<(u16, Option<String>)>>,
    no_token: NoTokenReason,
    refusal: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for NetworkStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkStats")
            .field("sent", &self.sent())
            .field("denied", &self.denied())
            .finish_non_exhaustive()
    }
}

impl NetworkStats {
    /// Forgets what earlier requests met, before a new call.
    pub fn clear_last(&self) {
        self.cause.take();
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.take_no_token();
    }

    /// Why the host sent the vault no token when it asked for one (no credential would
    /// answer its challenge, or none could be had), in the host's words (taken).
    pub fn take_no_token(&self) -> Option<String> {
        self.no_token.take()
    }

    /// Why the most recent refused request was refused (policy, a handle's binding, a
    /// limit), as the component may be told: origins and secret names, never a value.
    pub fn last_refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a refused request and records why (see [`NetworkStats::last_refusal`]).
    fn refused(&self, why: String) {
        self.denied.fetch_add(1, Ordering::Relaxed);
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Why the last failed request or answer failed, as the transport saw it (taken).
    pub fn take_cause(&self) -> Option<NetworkCause> {
        self.cause.take()
    }

    /// The status and `Location` of the last answer.
    pub fn last_answer(&self) -> Option<(u16, Option<String>)> {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

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
pub struct OutboundHooks {
    allow: Arc<AllowList>,
    grant: Option<Arc<SecretGrant>>,
    credential: Option<(Origin, Credential)>,
    handles: Option<Arc<RunHandles>>,
    transport: Arc<Transport>,
    stats: Arc<NetworkStats>,
}

impl OutboundHooks {
    /// Hooks that allow `allow`, add `credential` to requests for its origin, and send
    /// through `transport`.
    pub fn new(
        allow: AllowList,
        credential: Option<(Origin, Credential)>,
        transport: Arc<Transport>,
    ) -> OutboundHooks {
        OutboundHooks {
            allow: Arc::new(allow),
            grant: None,
            credential,
            handles: None,
            transport,
            stats: Arc::new(NetworkStats::default()),
        }
    }

    /// Restricts every request to a `GET` of a secret in `grant` (a run's vault client).
    pub fn with_grant(mut self, grant: SecretGrant) -> OutboundHooks {
        self.grant = Some(Arc::new(grant));
        self
    }

    /// Guards every request with a training run's handles ([`RunHandles::guard`]), and lets
    /// the run set `Authorization` to carry one. Only for hooks without a credential.
    pub fn with_handles(mut self, handles: Arc<RunHandles>) -> OutboundHooks {
        debug_assert!(
            self.credential.is_none(),
            "a run's hooks never hold a credential"
        );
        self.handles = Some(handles);
        self
    }

    /// The counters.
    pub fn stats(&self) -> Arc<NetworkStats> {
        self.stats.clone()
    }

    /// Whether the component may set this header itself (`Authorization` only when it can
    /// carry a handle).
    pub fn forbidden(name: &http::HeaderName, handles: bool) -> bool {
        (*name == AUTHORIZATION && !handles) || DEFAULT_FORBIDDEN_HEADERS.contains(name)
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

impl WasiHttpHooks for OutboundHooks {
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        OutboundHooks::forbidden(name, self.handles.is_some())
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let handles = self.handles.is_some();
        Arc::new(move |name| OutboundHooks::forbidden(name, handles))
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
                tracing::warn!(%origin, method = %request.method(), "denied a run's vault request: not a GET of a granted secret");
                self.stats.refused(format!(
                    "only a GET of a granted secret may go to the vault {origin}"
                ));
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
            Ok(origin) if self.allow.allows(&origin) => origin,
            Ok(origin) => {
                tracing::warn!(%origin, method = %request.method(), "denied a component request: origin not in the allow-list");
                self.stats.refused(format!(
                    "{origin} is not an origin this run may reach (an operator allows one with --allow-http, or binds a secret to it with --use-secret)"
                ));
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
            Err(why) => {
                tracing::warn!(%why, "denied a component request");
                self.stats.refused(why.to_string());
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        if self.handles.is_none() {
            request.headers_mut().remove(AUTHORIZATION);
        }
        // The cause slot speaks of the last request only.
        self.stats.cause.take();
        request.extensions_mut().insert(self.stats.cause.clone());
        let credential = self
            .credential
            .as_ref()
            .filter(|(vault, _)| *vault == origin)
            .map(|(_, credential)| credential.clone());
        tracing::debug!(%origin, method = %request.method(), "component request");
        let transport = self.transport.clone();
        let stats = self.stats.clone();
        let handles = self.handles.clone();
        Box::new(async move {
            let (mut request, echo) = match &handles {
                None => (request, None),
                Some(handles) => match handles.guard(&origin, request).await {
                    Ok(guarded) => {
                        let echo = guarded.echo_mask.map(|masker| {
                            let handles = handles.clone();
                            let origin = origin.clone();
                            let names = guarded.substituted.clone();
                            let mut first = true;
                            let report: crate::handles::EchoReport = Box::new(move |matched| {
                                let echoed: Vec<String> = matched
                                    .iter()
                                    .filter_map(|&i| names.get(i).cloned())
                                    .collect();
                                let counts = std::mem::take(&mut first);
                                handles.echoed(&echoed, &origin, guarded.method, counts);
                            });
                            (masker, report, guarded.substituted, guarded.method)
                        });
                        (guarded.request, echo)
                    }
                    Err(crate::handles::Refused { reason }) => {
                        stats.refused(reason);
                        return Err(HttpError::HttpRequestDenied);
                    }
                },
            };
            if echo.is_some() {
                // The answer is masked for the values sent; it must come in a form the masker
                // reads, whatever encodings the run asked for.
                request.headers_mut().insert(
                    http::header::ACCEPT_ENCODING,
                    http::HeaderValue::from_static("identity"),
                );
            }
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let response = match credential {
                None => transport.send(request, options).await?,
                Some(credential) => {
                    send_authenticated(
                        &transport,
                        request,
                        options,
                        &credential,
                        origin.host(),
                        &stats.no_token,
                    )
                    .await?
                }
            };
            let response = match (echo, &handles) {
                (Some((masker, report, names, method)), Some(handles)) => {
                    if let Some(coding) = compressed(&response) {
                        handles.answer_refused(&names, &origin, method, &format!(
                            "the answer came compressed ({}) although identity was asked for; it was not passed on",
                            coding.unwrap_or("an unknown coding")
                        ));
                        return Err(HttpError::HttpResponseContentCoding(
                            coding.map(str::to_string),
                        ));
                    }
                    crate::handles::mask_response(response, masker, report)
                }
                _ => response,
            };
            let location = response
                .status()
                .is_redirection()
                .then(|| response.headers().get(http::header::LOCATION))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            *stats.answer.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((response.status().as_u16(), location));
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The content or transfer coding of an answer that is neither `identity` nor `chunked`
/// (which hyper has already undone), if it has one: a registered name (`gzip`, `br`, ...),
/// else `None` inside. `Transfer-Encoding: gzip, chunked` counts as much as
/// `Content-Encoding: gzip`: the body the run gets is compressed either way. The header's own
/// text is never repeated: a service that was sent a value may echo it there.
fn compressed<B>(response: &http::Response<B>) -> Option<Option<&'static str>> {
    const KNOWN: [&str; 6] = ["gzip", "x-gzip", "deflate", "br", "compress", "zstd"];
    let headers = response.headers();
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .chain(headers.get_all(http::header::TRANSFER_ENCODING))
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .find(|c| {
            !c.is_empty()
                && !c.eq_ignore_ascii_case(b"identity")
                && !c.eq_ignore_ascii_case(b"chunked")
        })
        .map(|c| {
            KNOWN
                .into_iter()
                .find(|k| c.eq_ignore_ascii_case(k.as_bytes()))
        })
}
