//! `kvrun._kvrun`: the native half of the Python package.
//!
//! The Python package (`python/kvrun/`) is the API people call; this extension is the kvrun
//! host underneath it, the same crate the `kvrun` command line uses, so a Python runner gets
//! every guarantee of the Rust host: the vault client component runs in wasmtime behind the
//! host's allow-list and credential hooks, training components run in the sandbox with
//! only their granted secrets, masked output and an audit log.
//!
//! Every call releases the GIL while it waits, so Python threads run calls and sandbox runs
//! concurrently: a keyvault call runs on its own thread with that thread's client
//! ([`clients`]), a sandbox run on the shared runtime ([`blocking`]). The extension returns plain Python values (dicts,
//! lists, `str`); the Python layer turns them into the documented classes. Errors are the
//! exception classes of [`errors`], which the Python layer re-exports.

mod blocking;
mod clients;
mod convert;
mod errors;
mod sandbox;
mod sink;
mod vault;

use pyo3::prelude::*;

/// The module `kvrun._kvrun`.
#[pymodule]
fn _kvrun(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<vault::Vault>()?;
    m.add_class::<sandbox::Sandbox>()?;
    m.add_class::<sandbox::Component>()?;
    m.add_class::<sandbox::PythonRuntime>()?;
    m.add_function(wrap_pyfunction!(sandbox::python_runtime_for, m)?)?;
    errors::register(m)?;
    // `"release"` or `"debug"`: the benches refuse to measure a debug build (the one
    // `tests/compat/run` tests unless told otherwise).
    m.add(
        "BUILD_PROFILE",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    Ok(())
}
