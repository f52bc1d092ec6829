//! A small helper over the raw `wasi:http` bindings.
//!
//! [`send_all`] sends a batch of requests concurrently: it starts up to [`MAX_IN_FLIGHT`]
//! requests, waits on their response pollables together (plus one timer for the earliest
//! scheduled retry), and reads each answer as it becomes ready. A request is retried on
//! 408, 429, 500, 502, 503 and 504 and on connection failures, with exponential backoff and
//! jitter, honouring `Retry-After` (seconds or an HTTP date), until its attempts or the
//! batch's deadline run out; then the last answer or failure is returned.
//!
//! A policy denial from the host (`HTTP-request-denied`) is never retried. It can arrive
//! either from `outgoing-handler.handle` or from the response future; both give
//! [`Failure::Denied`].

use crate::config::{Config, RetryPolicy};
use std::time::{Duration, SystemTime};
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{poll, Pollable};
use wasi::io::streams::StreamError;

/// Most requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Largest response body read, in bytes.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Largest chunk `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

/// HTTP methods used against Key Vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Delete,
    Patch,
    Post,
}

impl Verb {
    /// Statuses worth a retry: for `PATCH` and `POST`, which are not idempotent, only those
    /// that say the request was not processed (as the Azure SDKs do).
    fn retries(self, status: u16) -> bool {
        match self {
            Verb::Get | Verb::Put | Verb::Delete => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            Verb::Patch | Verb::Post => matches!(status, 429 | 500 | 503 | 504),
        }
    }
}

/// One request to the vault's origin.
#[derive(Clone, Debug)]
pub struct Request {
    pub verb: Verb,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
}

/// A response read in full.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why no response could be had.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The host's network policy refused the request.
    Denied,
    /// The request could not be sent or its answer not read; worth a retry.
    Transport(String),
    /// The vault cannot be talked to as configured (its TLS certificate is not trusted, the
    /// request is malformed); retrying would not help.
    Fatal(String),
}

/// Sends every request (concurrently) and returns one outcome per request, in order.
pub fn send_all(config: &Config, requests: &[Request]) -> Vec<Result<Response, Failure>> {
    Batch::new(config, requests).run()
}

/// Sends one request (with retries).
pub fn send(config: &Config, request: Request) -> Result<Response, Failure> {
    send_all(config, std::slice::from_ref(&request))
        .pop()
        .expect("one outcome per request")
}

struct InFlight {
    // Field order matters: the pollable is a child of the future and is dropped first.
    pollable: Pollable,
    future: FutureIncomingResponse,
    index: usize,
}

struct Waiting {
    index: usize,
    not_before: u64,
}

struct Batch<'a> {
    config: &'a Config,
    requests: &'a [Request],
    outcomes: Vec<Option<Result<Response, Failure>>>,
    attempts: Vec<u32>,
    ready: Vec<usize>,
    waiting: Vec<Waiting>,
    in_flight: Vec<InFlight>,
    deadline: u64,
}

impl<'a> Batch<'a> {
    fn new(config: &'a Config, requests: &'a [Request]) -> Self {
        let mut ready: Vec<usize> = (0..requests.len()).collect();
        ready.reverse();
        Batch {
            config,
            requests,
            outcomes: requests.iter().map(|_| None).collect(),
            attempts: vec![0; requests.len()],
            ready,
            waiting: Vec::new(),
            in_flight: Vec::new(),
            deadline: monotonic_clock::now()
                .saturating_add(config.retry.deadline_ms.saturating_mul(1_000_000)),
        }
    }

    fn run(mut self) -> Vec<Result<Response, Failure>> {
        loop {
            let now = monotonic_clock::now();
            let (due, later): (Vec<Waiting>, Vec<Waiting>) =
                self.waiting.drain(..).partition(|w| w.not_before <= now);
            self.waiting = later;
            self.ready.extend(due.into_iter().map(|w| w.index));

            while self.in_flight.len() < MAX_IN_FLIGHT {
                let Some(index) = self.ready.pop() else { break };
                self.attempts[index] += 1;
                match start(self.config, &self.requests[index]) {
                    Ok(future) => self.in_flight.push(InFlight {
                        pollable: future.subscribe(),
                        future,
                        index,
                    }),
                    Err(failure) => self.finish_attempt(index, Err(failure), None),
                }
            }

            let timer = self
                .waiting
                .iter()
                .map(|w| w.not_before)
                .min()
                .map(monotonic_clock::subscribe_instant);
            if self.in_flight.is_empty() {
                match timer {
                    Some(timer) => {
                        timer.block();
                        continue;
                    }
                    None if self.ready.is_empty() => break,
                    None => continue,
                }
            }
            let mut pollables: Vec<&Pollable> =
                self.in_flight.iter().map(|f| &f.pollable).collect();
            if let Some(timer) = &timer {
                pollables.push(timer);
            }
            let mut ready_slots = poll(&pollables);
            drop(pollables);
            ready_slots.retain(|&slot| (slot as usize) < self.in_flight.len());
            ready_slots.sort_unstable_by(|a, b| b.cmp(a));
            for slot in ready_slots {
                let flight = self.in_flight.swap_remove(slot as usize);
                let (outcome, retry_after) = complete(flight.future, flight.pollable);
                self.finish_attempt(flight.index, outcome, retry_after);
            }
        }
        self.outcomes
            .into_iter()
            .map(|o| o.expect("every request has an outcome"))
            .collect()
    }

    /// Records an attempt's outcome, or schedules a retry when it is worth one.
    fn finish_attempt(
        &mut self,
        index: usize,
        outcome: Result<Response, Failure>,
        retry_after: Option<Duration>,
    ) {
        let retryable = match &outcome {
            Ok(response) => self.requests[index].verb.retries(response.status),
            Err(Failure::Transport(_)) => true,
            Err(Failure::Denied | Failure::Fatal(_)) => false,
        };
        if retryable && self.attempts[index] < self.config.retry.max_attempts {
            let delay = retry_after
                .unwrap_or_else(|| backoff(&self.config.retry, self.attempts[index]))
                .min(Duration::from_millis(self.config.retry.max_delay_ms));
            let not_before = monotonic_clock::now().saturating_add(delay.as_nanos() as u64);
            if not_before < self.deadline {
                self.waiting.push(Waiting { index, not_before });
                return;
            }
        }
        self.outcomes[index] = Some(outcome);
    }
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, scaled by a random 50–100 %.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(policy.max_delay_ms);
    let jitter = wasi::random::random::get_random_u64() % (exp / 2 + 1);
    Duration::from_millis(exp / 2 + jitter)
}

/// Builds and hands one request to the host; writes its body.
fn start(config: &Config, request: &Request) -> Result<FutureIncomingResponse, Failure> {
    let mut headers: Vec<(String, Vec<u8>)> = vec![("accept".into(), b"application/json".to_vec())];
    if let Some(body) = &request.body {
        headers.push(("content-type".into(), b"application/json".to_vec()));
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| Failure::Transport(format!("could not build request headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.verb {
        Verb::Get => Method::Get,
        Verb::Put => Method::Put,
        Verb::Delete => Method::Delete,
        Verb::Patch => Method::Patch,
        Verb::Post => Method::Post,
    };
    let scheme = if config.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = outgoing
        .set_method(&method)
        .and_then(|_| outgoing.set_scheme(Some(&scheme)))
        .and_then(|_| outgoing.set_authority(Some(&config.authority)))
        .and_then(|_| outgoing.set_path_with_query(Some(&request.path_and_query)));
    if set.is_err() {
        return Err(Failure::Transport(format!(
            "the host refused the request line for {}",
            config.origin()
        )));
    }
    let body = outgoing
        .body()
        .map_err(|_| Failure::Transport("the request body was already taken".into()))?;
    let options = RequestOptions::new();
    // A host may not support timeouts; its own limits then apply.
    let _ = options.set_connect_timeout(Some(10_000_000_000));
    let _ = options.set_first_byte_timeout(Some(30_000_000_000));
    let _ = options.set_between_bytes_timeout(Some(30_000_000_000));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failure_from_code)?;
    // If the body cannot be written (the host denied the request, or the peer went away),
    // the response future says why; that is the outcome to report, not the write error.
    let _ = write_body(body, request.body.as_deref());
    Ok(future)
}

fn write_body(body: OutgoingBody, contents: Option<&[u8]>) -> Result<(), Failure> {
    if let Some(contents) = contents {
        let stream = body
            .write()
            .map_err(|_| Failure::Transport("the request body stream was already taken".into()))?;
        for chunk in contents.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| match e {
                    StreamError::LastOperationFailed(e) => Failure::Transport(format!(
                        "sending the request body failed: {}",
                        e.to_debug_string()
                    )),
                    // The host closed the body early: the response future reports why.
                    StreamError::Closed => {
                        Failure::Transport("the request body was closed early".into())
                    }
                })?;
        }
    }
    OutgoingBody::finish(body, None).map_err(failure_from_code)
}

/// Takes a ready response future apart: the outcome and any `Retry-After`.
fn complete(
    future: FutureIncomingResponse,
    pollable: Pollable,
) -> (Result<Response, Failure>, Option<Duration>) {
    drop(pollable);
    let outcome = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return (Err(failure_from_code(code)), None),
        Some(Err(())) => {
            return (
                Err(Failure::Transport("the response was already taken".into())),
                None,
            )
        }
        None => {
            return (
                Err(Failure::Transport("the response was not ready".into())),
                None,
            )
        }
    };
    drop(future);
    let status = outcome.status();
    // Only a status worth a retry looks at `Retry-After` (reading headers copies them all).
    let retry_after = matches!(status, 408 | 429 | 500..=599)
        .then(|| retry_after(&outcome))
        .flatten();
    let body = read_body(&outcome);
    drop(outcome);
    (body.map(|body| Response { status, body }), retry_after)
}

fn retry_after(response: &IncomingResponse) -> Option<Duration> {
    let headers = response.headers();
    let values = headers.get("retry-after");
    let text = std::str::from_utf8(values.first()?).ok()?.trim();
    parse_retry_after(text, SystemTime::now())
}

/// Parses `Retry-After`: whole seconds, or an HTTP date (a date in the past means now).
pub fn parse_retry_after(text: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, Failure> {
    let body = response
        .consume()
        .map_err(|_| Failure::Transport("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|_| Failure::Transport("the response body stream was already taken".into()))?;
    let mut contents = Vec::new();
    let result = loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                contents.extend_from_slice(&chunk);
                if contents.len() > MAX_RESPONSE_BYTES {
                    break Err(Failure::Transport(format!(
                        "the vault's answer is larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
            }
            Err(StreamError::Closed) => break Ok(contents),
            Err(StreamError::LastOperationFailed(e)) => {
                break Err(Failure::Transport(format!(
                    "reading the vault's answer failed (truncated or broken response): {}",
                    e.to_debug_string()
                )))
            }
        }
    };
    drop(stream);
    let _trailers = IncomingBody::finish(body);
    result
}

fn failure_from_code(code: ErrorCode) -> Failure {
    match code {
        ErrorCode::HttpRequestDenied => Failure::Denied,
        ErrorCode::DnsError(_) => Failure::Fatal("the vault's host name does not resolve".into()),
        ErrorCode::ConnectionRefused => Failure::Transport("connection refused".into()),
        ErrorCode::ConnectionTimeout => Failure::Transport("connection timed out".into()),
        ErrorCode::ConnectionReadTimeout => {
            Failure::Transport("timed out waiting for the answer".into())
        }
        ErrorCode::ConnectionTerminated => {
            Failure::Transport("the connection was closed before a full answer".into())
        }
        ErrorCode::TlsCertificateError => {
            Failure::Fatal("the vault's TLS certificate is not trusted by the host".into())
        }
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Failure::Fatal("the TLS handshake with the vault failed".into())
        }
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            Failure::Fatal("the host refused the request as malformed".into())
        }
        ErrorCode::HttpResponseIncomplete => {
            Failure::Transport("the vault's answer was truncated".into())
        }
        ErrorCode::HttpResponseBodySize(_) => {
            Failure::Fatal("the vault's answer is larger than the host accepts".into())
        }
        ErrorCode::HttpProtocolError => {
            Failure::Transport("the vault's answer is not valid HTTP".into())
        }
        _ => Failure::Transport("the host could not complete the request".into()),
    }
}
