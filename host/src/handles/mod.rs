//! Secret handles: a run can *use* a secret it can never *read*.
//!
//! Masking stops accidental prints; it cannot stop training code that wants to leak a value
//! it was granted. Most secrets a job holds are credentials for HTTP services (a tracker, a
//! registry, a data API), so the run gets a placeholder instead and the host puts the value
//! in on the way out, only where the operator bound it.
//!
//! Isolation model:
//!
//! - **Binding** ([`UseBinding`], `kvrun run --use-secret NAME=ORIGIN[/PATH-PREFIX][,query][,body][,header=NAME]...[,methods=M+M]`):
//!   the operator says where a secret may go; its origins are added to the run's allow-list.
//!   A name granted only this way is refused (and audited) by `get-secret`/`get-secrets`.
//! - **Handle** (`run.get-secret-handle`, [`RunHandles::issue`]): the host reads the value
//!   through the run's vault client (store B) and gives the run a random placeholder
//!   ([`placeholder`]) that means something only inside this run.
//! - **Egress** ([`RunHandles::guard`], called by [`crate::network::OutboundHooks`] for every
//!   request of a run that has bindings, after the allow-list): the whole request (headers,
//!   URL, a body of up to [`MAX_SCANNED_BODY`] bytes) is scanned; a handle that is split,
//!   encoded, another run's, or headed anywhere its binding does not cover refuses the
//!   request with nothing sent ([`rewrite`]); a bound one is replaced by the value.
//! - **The way back** ([`echo`]): the answer to a request that carried values is masked for
//!   those values before the run sees it. They are not added to the run's output masks: a
//!   run can print a value it never held only by guessing it, and masking the guess would
//!   confirm it.
//! - **Rotation** ([`rotation`]): a handle's value is read again when it is older than the
//!   run's handle lifetime (60 s by default), through a vault client of its own
//!   ([`rotation::Rereader`]); a secret deleted or disabled meanwhile stops its substitutions,
//!   a passing failure keeps the last value for a bounded time.
//! - **Audit**: every substitution and every refusal is a `use-secret` record
//!   ([`crate::audit::RunAudit::record_use`]), every re-read a `reread-secret` record, within
//!   the run's audit budget.
//!
//! What this does not do: a bound service is trusted with the value; one that stores what
//! it receives and lets anyone read it (a paste bin, an issue tracker) is a way out if bound.
//! Bodies over [`MAX_SCANNED_BODY`] are refused for runs with bindings, not streamed.

mod binding;
mod echo;
pub mod placeholder;
mod rewrite;
pub mod rotation;

pub use binding::UseBinding;
pub use echo::{mask_response, EchoReport};

use crate::audit::{HandleTarget, RunAudit};
use crate::masking::Masker;
use crate::policy::{AllowRule, Origin};
use crate::secret::SecretString;
use http_body_util::{BodyExt, Full, Limited};
use placeholder::Scanner;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiBody;

/// The largest request body the host scans for handles; a run with bindings cannot send a
/// larger one.
pub const MAX_SCANNED_BODY: usize = 8 << 20;

/// A handle a run holds: the secret's name, the placeholder, the value, its bindings, and a
/// masker for the value, built once (answers are masked with a copy).
#[derive(Clone)]
pub(crate) struct IssuedHandle {
    pub(crate) name: String,
    pub(crate) handle: String,
    pub(crate) value: SecretString,
    /// The version the value was read from, when the read said.
    pub(crate) version: Option<String>,
    pub(crate) bindings: Vec<UseBinding>,
    /// Masks every value the handle has carried, the current one and those it replaced.
    pub(crate) echo_mask: Masker,
    /// The values it carried before the current one (re-read since).
    former: Vec<SecretString>,
    /// When the value was last read successfully.
    read_at: Instant,
    /// When it was last read or tried.
    checked_at: Instant,
    /// Why the handle no longer carries a value, once a re-read said so.
    stopped: Option<String>,
}

impl IssuedHandle {
    /// The handle `handle` of `name`, holding `value` read just now from `version`.
    pub(crate) fn new(
        name: &str,
        handle: &str,
        value: SecretString,
        version: Option<String>,
        bindings: Vec<UseBinding>,
    ) -> IssuedHandle {
        let now = Instant::now();
        let mut echo_mask = Masker::new();
        echo_mask.add(value.expose().as_bytes());
        IssuedHandle {
            name: name.to_string(),
            handle: handle.to_string(),
            value,
            version,
            bindings,
            echo_mask,
            former: Vec::new(),
            read_at: now,
            checked_at: now,
            stopped: None,
        }
    }
}

/// The handles issued so far and a scanner for exactly them, replaced as a whole when a
/// handle is added (requests in flight keep the one they started with).
struct Issued {
    handles: Vec<IssuedHandle>,
    scanner: Arc<Scanner>,
}

/// A request the guard refused; the refusal is already audited and logged, and nothing was
/// sent.
#[derive(Debug)]
pub struct Refused {
    /// Why, as the audit records it (secret names and origins, never a value).
    pub reason: String,
}

/// One run's bindings and handles.
pub struct RunHandles {
    bindings: Vec<UseBinding>,
    issued: Mutex<Arc<Issued>>,
    audit: Arc<RunAudit>,
    max_echoes: u32,
    echoes: AtomicU32,
    rereads: OnceLock<(Arc<dyn rotation::Rereader>, Duration)>,
    /// Held while stale values are read again, so that concurrent requests read once.
    refreshing: tokio::sync::Mutex<()>,
}

/// How many answers may carry a bound value back before the run is stopped, by default: a
/// service that quotes a credential in an error page now and then is tolerated; one that
/// echoes every request (a reflection endpoint, a debugging proxy) is a way to probe the
/// value, and such a run ends after a few requests.
pub const DEFAULT_MAX_ECHOES: u32 = 8;

/// A run's answers carried bound values back more than its limit allows; the run is stopped
/// with this as its trap.
#[derive(Debug)]
pub struct EchoLimitReached(pub u32);

impl std::fmt::Display for EchoLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "answers to the run's requests carried a bound secret back more than {} times",
            self.0
        )
    }
}

impl std::error::Error for EchoLimitReached {}

/// A request that may go: the request with values in it, and what its answer is masked for.
pub struct Guarded {
    /// The request to send.
    pub request: http::Request<WasiBody>,
    /// A masker for the values substituted into it; none when it carries none.
    pub echo_mask: Option<Masker>,
    /// The names of the secrets substituted into it, in the order their values were added to
    /// `echo_mask` (for the echo's audit records).
    pub substituted: Vec<String>,
    /// The request's method, as audited.
    pub method: &'static str,
}

impl RunHandles {
    /// A run's handle state, auditing to `audit`; the run is stopped once more than
    /// `max_echoes` answers carried a bound value back.
    pub fn new(bindings: Vec<UseBinding>, audit: Arc<RunAudit>, max_echoes: u32) -> RunHandles {
        RunHandles {
            bindings,
            issued: Mutex::new(Arc::new(Issued {
                handles: Vec::new(),
                scanner: Arc::new(Scanner::new::<&str>(&[])),
            })),
            audit,
            max_echoes,
            echoes: AtomicU32::new(0),
            rereads: OnceLock::new(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads handles' values again through `reader` once they are older than `lifetime`
    /// (see [`rotation`]); without it a value is read once, when its handle is issued. Set
    /// once.
    pub fn reread_with(&self, reader: Arc<dyn rotation::Rereader>, lifetime: Duration) {
        let _ = self.rereads.set((reader, lifetime));
    }

    /// Reads again every value older than the lifetime, and records what came of it.
    async fn refresh(&self) {
        let Some((reader, lifetime)) = self.rereads.get() else {
            return;
        };
        let stale = |issued: &Issued| -> Vec<usize> {
            (0..issued.handles.len())
                .filter(|&i| issued.handles[i].checked_at.elapsed() >= *lifetime)
                .collect()
        };
        if stale(&self.current()).is_empty() {
            return;
        }
        let _refreshing = self.refreshing.lock().await;
        for i in stale(&self.current()) {
            let name = self.current().handles[i].name.clone();
            let outcome = reader.reread(&name).await;
            let mut slot = self.issued.lock().unwrap_or_else(|p| p.into_inner());
            let mut handles = slot.handles.clone();
            let handle = &mut handles[i];
            handle.checked_at = Instant::now();
            let (label, seen) = match outcome {
                Ok((value, version)) => {
                    handle.echo_mask.add(value.expose().as_bytes());
                    let former = std::mem::replace(&mut handle.value, value);
                    if former != handle.value {
                        handle.former.push(former);
                    }
                    handle.version = version;
                    handle.read_at = handle.checked_at;
                    handle.stopped = None;
                    ("ok".to_string(), true)
                }
                Err(e) => match rotation::after_failure(&e, handle.read_at.elapsed()) {
                    rotation::AfterFailure::Keep(outcome) => (outcome, false),
                    rotation::AfterFailure::Stop(why) => {
                        let outcome = format!("{}: substitutions stop", e.audit_outcome());
                        handle.stopped = Some(why);
                        (outcome, false)
                    }
                },
            };
            let recorded = handle.clone();
            *slot = Arc::new(Issued {
                handles,
                scanner: slot.scanner.clone(),
            });
            drop(slot);
            let value_seen = crate::audit::ValueSeen {
                value: &recorded.value,
                version: recorded.version.as_deref(),
            };
            let _ = self.audit.record(
                "reread-secret",
                &recorded.name,
                true,
                &label,
                seen.then_some(&value_seen),
            );
        }
    }

    /// Whether the run's answers carried values back more than `max_echoes` times (the
    /// sandbox then stops it; no further request of the run is sent).
    pub fn echo_limit(&self) -> Option<EchoLimitReached> {
        (self.echoes.load(Ordering::SeqCst) > self.max_echoes)
            .then_some(EchoLimitReached(self.max_echoes))
    }

    /// Records that the answer to a request to `origin` carrying `names` was not passed on to
    /// the run, and why.
    pub fn answer_refused(
        &self,
        names: &[String],
        origin: &Origin,
        method: &'static str,
        reason: &str,
    ) {
        let target = HandleTarget {
            origin,
            method,
            path_prefix: None,
        };
        tracing::warn!(%origin, method, "refused an answer to a run's request: {reason}");
        for name in names {
            let _ = self
                .audit
                .record_use(Some(name), &target, &format!("refused: {reason}"), None);
        }
    }

    /// Records that the answer to a request to `origin` carried a form of the values of
    /// `names` back (it reached the run masked); `counts` for the first such record of an
    /// answer, which counts it as one echo towards the run's limit.
    pub fn echoed(&self, names: &[String], origin: &Origin, method: &'static str, counts: bool) {
        let target = HandleTarget {
            origin,
            method,
            path_prefix: None,
        };
        for name in names {
            let _ = self
                .audit
                .record_use(Some(name), &target, "echo-masked", None);
        }
        if counts {
            let seen = self.echoes.fetch_add(1, Ordering::SeqCst) + 1;
            tracing::warn!(%origin, echoes = seen, "an answer carried a bound secret back (masked)");
        }
    }

    /// The allow-list entries the bindings add to the run's outbound `wasi:http`.
    pub fn allow_rules(&self) -> impl Iterator<Item = AllowRule> + '_ {
        self.bindings.iter().map(|b| b.rule().clone())
    }

    /// Whether `name` is bound to any origin.
    pub fn is_bound(&self, name: &str) -> bool {
        self.bindings.iter().any(|b| b.is_for(name))
    }

    fn current(&self) -> Arc<Issued> {
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The handle already issued for `name` in this run, if any.
    pub fn existing(&self, name: &str) -> Option<String> {
        self.current()
            .handles
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.handle.clone())
    }

    /// Issues the handle of `name` (bound) holding `value`, read from `version` (for its
    /// audit records); the same name keeps its handle.
    pub fn issue(&self, name: &str, value: SecretString, version: Option<String>) -> String {
        let mut slot = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = slot
            .handles
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
        {
            return h.handle.clone();
        }
        let handle = placeholder::new_handle();
        let mut handles = slot.handles.clone();
        handles.push(IssuedHandle::new(
            name,
            &handle,
            value,
            version,
            self.bindings
                .iter()
                .filter(|b| b.is_for(name))
                .cloned()
                .collect(),
        ));
        let scanner = Scanner::new(
            &handles
                .iter()
                .map(|h| h.handle.as_str())
                .collect::<Vec<_>>(),
        );
        *slot = Arc::new(Issued {
            handles,
            scanner: Arc::new(scanner),
        });
        handle
    }

    /// Checks an outgoing request to `origin` (already allowed) and puts the values of bound
    /// handles in; [`Refused`] means nothing may be sent.
    pub async fn guard(
        &self,
        origin: &Origin,
        request: http::Request<WasiBody>,
    ) -> Result<Guarded, Refused> {
        let method = standard_method(request.method());
        if let Some(limit) = self.echo_limit() {
            return Err(self.refuse(
                None,
                origin,
                method,
                &format!("{limit}; the run is being stopped"),
            ));
        }
        self.refresh().await;
        let (mut parts, body) = request.into_parts();
        let issued = self.current();
        let body = match Limited::new(body, MAX_SCANNED_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                let reason = format!(
                    "the request body broke off or is over {} MiB, the most the host scans for handles",
                    MAX_SCANNED_BODY >> 20
                );
                return Err(self.refuse(None, origin, method, &reason));
            }
        };
        match rewrite::substitute(origin, &mut parts, body, &issued.handles, &issued.scanner) {
            Ok(done) => {
                if let Some(&i) = done
                    .used
                    .iter()
                    .find(|&&i| issued.handles[i].stopped.is_some())
                {
                    let handle = &issued.handles[i];
                    let why = handle.stopped.clone().unwrap_or_default();
                    return Err(self.refuse(Some(handle), origin, method, &why));
                }
                let path = parts.uri.path().to_string();
                for &i in &done.used {
                    let handle = &issued.handles[i];
                    let prefix = handle
                        .bindings
                        .iter()
                        .find(|b| b.covers(origin, &path))
                        .map(UseBinding::path_prefix);
                    let target = HandleTarget {
                        origin,
                        method,
                        path_prefix: prefix,
                    };
                    if let Err(e) = self.audit.record_use(
                        Some(&handle.name),
                        &target,
                        "substituted",
                        Some(&crate::audit::ValueSeen {
                            value: &handle.value,
                            version: handle.version.as_deref(),
                        }),
                    ) {
                        return Err(Refused {
                            reason: e.to_string(),
                        });
                    }
                }
                tracing::debug!(%origin, method, substituted = done.used.len(), "run request");
                let echo_mask = match done.used.as_slice() {
                    [] => None,
                    [one] => Some(issued.handles[*one].echo_mask.clone()),
                    several => {
                        let mut masker = Masker::new();
                        for &i in several {
                            let handle = &issued.handles[i];
                            for value in std::iter::once(&handle.value).chain(&handle.former) {
                                masker.add(value.expose().as_bytes());
                            }
                        }
                        Some(masker)
                    }
                };
                let body = Full::new(done.body)
                    .map_err(|never| match never {})
                    .boxed_unsync();
                Ok(Guarded {
                    request: http::Request::from_parts(parts, body),
                    echo_mask,
                    substituted: done
                        .used
                        .iter()
                        .map(|&i| issued.handles[i].name.clone())
                        .collect(),
                    method,
                })
            }
            Err(refusal) => {
                let handle = refusal.handle.map(|i| &issued.handles[i]);
                Err(self.refuse(handle, origin, method, &refusal.reason))
            }
        }
    }

    /// Audits and logs a refusal.
    fn refuse(
        &self,
        handle: Option<&IssuedHandle>,
        origin: &Origin,
        method: &'static str,
        reason: &str,
    ) -> Refused {
        tracing::warn!(%origin, method, secret = handle.map(|h| h.name.as_str()), "refused a run's request: {reason}");
        let target = HandleTarget {
            origin,
            method,
            path_prefix: handle
                .and_then(|h| h.bindings.first())
                .map(UseBinding::path_prefix),
        };
        let _ = self.audit.record_use(
            handle.map(|h| h.name.as_str()),
            &target,
            &format!("refused: {reason}"),
            None,
        );
        Refused {
            reason: match handle {
                Some(h) => format!("{reason} (secret {:?}, to {origin})", h.name),
                None => format!("{reason} (to {origin})"),
            },
        }
    }
}

/// The method as the audit writes it: a standard one, else `OTHER` (a run chooses it).
fn standard_method(method: &http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("OTHER")
}
