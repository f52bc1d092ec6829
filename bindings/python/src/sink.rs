//! Where a run's (already masked) output goes: a Python callable that takes `bytes`.
//!
//! The Python layer turns a file, a text stream or `None` (the process's own
//! `sys.stdout`/`sys.stderr`) into such a callable, so this side has one shape to call.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::io::{self, Write};

/// Calls `emit(bytes)` for every write, taking the GIL for the call.
pub struct PySink {
    emit: Py<PyAny>,
}

impl PySink {
    /// A sink that hands every chunk to `emit`.
    pub fn new(emit: Py<PyAny>) -> PySink {
        PySink { emit }
    }
}

impl Write for PySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Python::attach(|py| {
            self.emit
                .call1(py, (PyBytes::new(py, buf),))
                .map(|_| buf.len())
                .map_err(|e| io::Error::other(format!("the run's output callable failed: {e}")))
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A buffer several owners write to and one reads at the end (the run's audit records).
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
