//! The vault client component and the types generated from the WIT contract
//! (`wit/kvrun.wit`) for its `vault-client` world. A leaf: nothing here depends on the rest
//! of the crate but the error type, which it converts to and from the contract's.

use crate::error::Error;

/// The vault client component (`wasm32-wasip2`), built from `guest/` by this crate's build
/// script.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("KVRUN_GUEST_WASM"));

wasmtime::component::bindgen!({
    path: "../wit",
    world: "vault-client",
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

impl From<Error> for self::kvrun::secrets::types::Error {
    /// How a host-side failure is reported to a component (never with a value).
    fn from(e: Error) -> Self {
        use self::kvrun::secrets::types::{Error as W, ServiceError};
        match e {
            Error::NotFound(m) => W::NotFound(m),
            Error::Denied(m) => W::Denied(m),
            Error::Conflict(m) => W::Conflict(m),
            Error::Unauthenticated(m) => W::Unauthenticated(m),
            Error::InvalidName(m) => W::InvalidName(m),
            Error::InvalidArgument(m) => W::InvalidArgument(m),
            Error::Unavailable(m) | Error::Timeout(m) => W::Unavailable(m),
            Error::Service {
                status,
                code,
                message,
            } => W::Service(ServiceError {
                status,
                code,
                message,
            }),
            other => W::Transport(other.to_string()),
        }
    }
}

impl From<self::kvrun::secrets::types::Error> for Error {
    fn from(e: self::kvrun::secrets::types::Error) -> Self {
        use self::kvrun::secrets::types::Error as W;
        match e {
            W::NotFound(m) => Error::NotFound(m),
            W::Denied(m) => Error::Denied(m),
            W::Conflict(m) => Error::Conflict(m),
            W::Unauthenticated(m) => Error::Unauthenticated(m),
            W::InvalidName(m) => Error::InvalidName(m),
            W::InvalidArgument(m) => Error::InvalidArgument(m),
            W::Unavailable(m) => Error::Unavailable(m),
            W::Transport(m) => Error::Transport(m),
            W::Service(s) => Error::Service {
                status: s.status,
                code: s.code,
                message: s.message,
            },
        }
    }
}
