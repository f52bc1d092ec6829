//! One run of a script in the scientific runtime: the snapshot instantiated in a store built
//! from the sandbox's [`RunParts`], entered through `turn`, with the door served by the run's
//! own broker and hooks.
//!
//! The run's open files are counted as a component run's are ([`OpenFiles`]): the two WASI
//! preview 1 functions that make and release descriptors in this module (`path_open`,
//! `fd_close`; it imports no `fd_renumber` and no socket) are wrapped around wasmtime-wasi's
//! own implementations of them.

use super::door::{self, DoorError, DoorRequest, HttpFrame, MAX_ANSWER, MAX_CALLS, MAX_FRAME};
use super::ScientificPython;
use crate::error::Result;
use crate::network::OutboundHooks;
use crate::sandbox::{OpenFiles, SecretBroker, WitError};
use crate::sandbox::{RunExit, RunLimiter, RunParts};
use http_body_util::BodyExt;
use serde_json::json;
use wasmtime::{Caller, Engine, Extern, Linker, Store};
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi_http::{RequestOptions, WasiHttpHooks};

/// WASI preview 1's `EDQUOT`, what an open past the run's limit returns.
const ERRNO_DQUOT: i32 = 19;

/// What the turn that starts a run runs.
const ENTRY: &str = "__import__('kvrun_door_entry').main()";

/// The store of a scientific run.
struct ScienceState {
    wasi: WasiP1Ctx,
    hooks: OutboundHooks,
    broker: SecretBroker,
    limiter: RunLimiter,
    open_files: OpenFiles,
    door: DoorState,
}

/// What the door knows of its run.
struct DoorState {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    calls: u64,
}

/// The linker of scientific runs: wasmtime-wasi's preview 1, with `path_open` and `fd_close`
/// counted, and the door.
pub(super) struct RunLinker {
    linker: Linker<ScienceState>,
}

impl RunLinker {
    pub(super) fn new(engine: &Engine) -> Result<RunLinker> {
        let mut linker = Linker::<ScienceState>::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)?;
        linker.allow_shadowing(true);
        linker.func_wrap_async(
            "wasi_snapshot_preview1",
            "path_open",
            |mut caller: Caller<'_, ScienceState>,
             (fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, out): (
                i32,
                i32,
                i32,
                i32,
                i32,
                i64,
                i64,
                i32,
                i32,
            )| {
                Box::new(async move {
                    if !caller.data_mut().open_files.reserve() {
                        return Ok(ERRNO_DQUOT);
                    }
                    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory)
                    else {
                        caller.data_mut().open_files.failed();
                        wasmtime::bail!("the module exports no memory");
                    };
                    let (bytes, state) = memory.data_and_store_mut(&mut caller);
                    let errno = p1::path_open(
                        &mut state.wasi,
                        &mut wiggle::GuestMemory::Unshared(bytes),
                        fd,
                        dirflags,
                        path,
                        path_len,
                        oflags,
                        base,
                        inheriting,
                        fdflags,
                        out,
                    )
                    .await?;
                    let opened = (errno == 0).then(|| read_u32(&mut caller, out)).flatten();
                    match opened {
                        Some(fd) => caller.data_mut().open_files.opened(fd),
                        None => caller.data_mut().open_files.failed(),
                    }
                    Ok(errno)
                })
            },
        )?;
        linker.func_wrap_async(
            "wasi_snapshot_preview1",
            "fd_close",
            |mut caller: Caller<'_, ScienceState>, (fd,): (i32,)| {
                Box::new(async move {
                    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory)
                    else {
                        wasmtime::bail!("the module exports no memory");
                    };
                    let (bytes, state) = memory.data_and_store_mut(&mut caller);
                    let errno = p1::fd_close(
                        &mut state.wasi,
                        &mut wiggle::GuestMemory::Unshared(bytes),
                        fd,
                    )
                    .await?;
                    if errno == 0 {
                        state.open_files.dropped(fd as u32);
                    }
                    Ok(errno)
                })
            },
        )?;
        linker.allow_shadowing(false);
        linker.func_wrap_async(
            "host",
            "call",
            |mut caller: Caller<'_, ScienceState>,
             (at, len, out_at, out_len): (i32, i32, i32, i32)| {
                Box::new(async move { door_call(&mut caller, at, len, out_at, out_len).await })
            },
        )?;
        Ok(RunLinker { linker })
    }
}

impl ScientificPython {
    /// Runs the entry point in a fresh instance of the snapshot, with `parts` from the sandbox's
    /// seam; `argv` and `env` are what the door's `start` gives the script.
    pub(crate) async fn run(
        &self,
        mut parts: RunParts,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<RunExit> {
        self.stdlib.preopen(&mut parts.wasi)?;
        let ending = parts.ending;
        let state = ScienceState {
            wasi: parts.wasi.build_p1(),
            hooks: parts.hooks,
            broker: parts.broker,
            limiter: parts.limiter,
            open_files: parts.open_files,
            door: DoorState {
                argv,
                env,
                calls: 0,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(ending.epoch_watch());
        let outcome = tokio::time::timeout(ending.timeout(), async {
            let instance = self
                .linker
                .linker
                .instantiate_async(&mut store, &self.module)
                .await?;
            let status = super::turn(&mut store, &instance, ENTRY).await?;
            wasmtime::Result::<i32>::Ok(status & 0xFF)
        })
        .await;
        Ok(ending.end(outcome, store.data().limiter.hit()))
    }
}

/// Reads a little-endian `u32` of the caller's memory at `at`.
fn read_u32(caller: &mut Caller<'_, ScienceState>, at: i32) -> Option<u32> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    let at = at as u32 as usize;
    let bytes = memory.data(&caller).get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// `host.call`: reads the frame, serves it, hands the answer back; 0, or -2 when the frame's
/// or the answer's place is not in the guest's memory (a host fault, as the module defines it).
async fn door_call(
    caller: &mut Caller<'_, ScienceState>,
    at: i32,
    len: i32,
    out_at: i32,
    out_len: i32,
) -> wasmtime::Result<i32> {
    const HOST_FAULT: i32 = -2;
    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory) else {
        return Ok(HOST_FAULT);
    };
    caller.data().broker.check_running()?;
    let (at, len) = (at as u32 as usize, len as u32 as usize);
    caller.data_mut().door.calls += 1;
    let answer = if caller.data().door.calls > MAX_CALLS {
        door::error(&DoorError::new(
            "too-many-calls",
            format!("a run may call the host at most {MAX_CALLS} times"),
        ))
    } else if len > MAX_FRAME {
        door::error(&DoorError::new(
            "invalid-frame",
            format!("a frame of {len} bytes is over the door's limit of {MAX_FRAME}"),
        ))
    } else {
        let Some(frame) = at
            .checked_add(len)
            .and_then(|end| memory.data(&caller).get(at..end))
            .map(<[u8]>::to_vec)
        else {
            return Ok(HOST_FAULT);
        };
        match DoorRequest::parse(&frame) {
            Ok(request) => serve(caller.data_mut(), request).await?,
            Err(e) => door::error(&e),
        }
    };
    let Ok(size) = i32::try_from(answer.len()) else {
        return Ok(HOST_FAULT);
    };
    let Some(alloc) = caller
        .get_export("host_alloc")
        .and_then(Extern::into_func)
        .and_then(|f| f.typed::<i32, i32>(&caller).ok())
    else {
        return Ok(HOST_FAULT);
    };
    let place = alloc.call_async(&mut *caller, size).await? as u32 as usize;
    let mut pointers = Vec::with_capacity(8);
    pointers.extend_from_slice(&(place as u32).to_le_bytes());
    pointers.extend_from_slice(&(size as u32).to_le_bytes());
    let written = place != 0
        && memory.write(&mut *caller, place, &answer).is_ok()
        && memory
            .write(&mut *caller, out_at as u32 as usize, &pointers[..4])
            .is_ok()
        && memory
            .write(&mut *caller, out_len as u32 as usize, &pointers[4..])
            .is_ok();
    Ok(if written { 0 } else { HOST_FAULT })
}

/// The answer to one frame. A wasmtime error (the audit budget spent, say) stops the run.
async fn serve(state: &mut ScienceState, request: DoorRequest) -> wasmtime::Result<Vec<u8>> {
    let served = match request {
        DoorRequest::Start => {
            let env: serde_json::Map<String, serde_json::Value> = state
                .door
                .env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            return Ok(door::ok(json!({ "argv": state.door.argv, "env": env })));
        }
        DoorRequest::GetSecret(name) => state.broker.get_secret(name).await?.map(|v| json!(v)),
        DoorRequest::GetSecretHandle(name) => state
            .broker
            .get_secret_handle(name)
            .await?
            .map(|v| json!(v)),
        DoorRequest::GetSecrets(names) => state.broker.get_secrets(names).await?.map(|v| json!(v)),
        DoorRequest::Http(frame) => {
            return Ok(match send(&mut state.hooks, frame).await {
                Ok(answer) => door::ok(answer),
                Err(e) => door::error(&e),
            })
        }
    };
    Ok(match served {
        Ok(value) => door::ok(value),
        Err(e) => door::error(&secret_error(e)),
    })
}

/// A broker's error as the door says it (the kinds `kvrun.SecretError` names).
fn secret_error(error: WitError) -> DoorError {
    match error {
        WitError::NotFound(m) => DoorError::new("not-found", m),
        WitError::Denied(m) => DoorError::new("denied", m),
        WitError::Conflict(m) => DoorError::new("conflict", m),
        WitError::Unauthenticated(m) => DoorError::new("unauthenticated", m),
        WitError::InvalidName(m) => DoorError::new("invalid-name", m),
        WitError::InvalidArgument(m) => DoorError::new("invalid-argument", m),
        WitError::Unavailable(m) => DoorError::new("unavailable", m),
        WitError::Transport(m) => DoorError::new("transport", m),
        WitError::Service(e) => DoorError::new(
            "service",
            format!("HTTP {} {}: {}", e.status, e.code, e.message),
        ),
    }
}

/// Sends an `http` frame through the run's own hooks: the path a component's `wasi:http`
/// request takes, from the same forbidden-header rule to the same `send_request`.
async fn send(
    hooks: &mut OutboundHooks,
    frame: HttpFrame,
) -> std::result::Result<serde_json::Value, DoorError> {
    let bad = |m: String| DoorError::new("bad-header", m);
    let method = http::Method::from_bytes(frame.method.as_bytes())
        .map_err(|_| DoorError::new("invalid-frame", "the method is not an HTTP method"))?;
    let uri: http::Uri = frame
        .url
        .parse()
        .map_err(|_| DoorError::new("invalid-frame", "the URL cannot be sent"))?;
    let mut request = http::Request::builder().method(method).uri(uri);
    let filter = hooks.forbidden_header_filter();
    for (name, value) in frame.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad("it is not a valid header name or value".into()))?;
        if filter(&name) {
            return Err(bad("the host does not let a run set it".into()));
        }
        let value = http::HeaderValue::from_bytes(&value)
            .map_err(|_| bad("it is not a valid header name or value".into()))?;
        request = request.header(name, value);
    }
    let body = http_body_util::Full::new(bytes::Bytes::from(frame.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = request
        .body(body)
        .map_err(|_| DoorError::new("invalid-frame", "the request cannot be built"))?;
    let options = frame.timeout.map(|t| RequestOptions {
        connect_timeout: Some(t),
        first_byte_timeout: Some(t),
        between_bytes_timeout: Some(t),
    });
    let stats = hooks.stats();
    let sent = Box::into_pin(hooks.send_request(request, options, Box::new(async { Ok(()) })));
    let (response, _) = sent.await.map_err(|e| match e {
        wasmtime_wasi_http::Error::HttpRequestDenied => DoorError::new(
            "refused",
            stats
                .last_refusal()
                .unwrap_or_else(|| "the run's network policy does not allow it".into()),
        ),
        other => failed(&other),
    })?;
    let (parts, body) = response.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_ANSWER);
    let body =
        limited
            .collect()
            .await
            .map_err(|e| match e.downcast::<wasmtime_wasi_http::Error>() {
                Ok(e) => failed(&e),
                Err(_) => DoorError::new(
                    "failed",
                    format!("answer-too-large: the answer is over {MAX_ANSWER} bytes"),
                ),
            })?;
    Ok(door::http_answer(
        parts.status.as_u16(),
        &parts.headers,
        &body.to_bytes(),
    ))
}

/// A `wasi:http` error as the door says it: its code, then its words.
fn failed(error: &wasmtime_wasi_http::Error) -> DoorError {
    let debug = format!("{error:?}");
    let name: String = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("error")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let dash = (i > 0 && c.is_ascii_uppercase()).then_some('-');
            dash.into_iter()
                .chain(std::iter::once(c.to_ascii_lowercase()))
        })
        .collect();
    DoorError::new("failed", format!("{name}: {error}"))
}
