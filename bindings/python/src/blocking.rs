//! One tokio runtime for the whole extension, and the bridge from a Python call to it.
//!
//! Every Python thread that calls into kvrun blocks on its own future with the GIL
//! released; the runtime's worker threads serve the embedded vault and the connections.

use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kvrun")
            .build()
            .expect("the tokio runtime could not start (out of threads or memory?)")
    })
}

/// Runs `future` to completion on the extension's runtime with the GIL released.
pub fn wait<F>(py: Python<'_>, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| runtime().block_on(future))
}

/// Runs `f` inside the runtime's context (for constructors that spawn tasks or build
/// connection pools), with the GIL released.
pub fn within<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        let _guard = runtime().enter();
        f()
    })
}
