//! A run's stdout and stderr: masked and bounded.
//!
//! Each stream passes through its own [`Masker`] of the run's one [`MaskValues`]: every
//! secret value the run may read is added there (once, for both streams) before the value
//! reaches the run, so no write can show it. Both streams share one
//! [`OutputBudget`]: past it, writes fail, the rest is dropped, and the run is stopped with
//! the output limit as the reason. [`MaskedOutput::finish`] releases what the masker holds
//! back (masked) when the run ends, however it ends.

use crate::masking::{MaskValues, Masker};
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The output a run may write, stdout and stderr together.
#[derive(Debug)]
pub struct OutputBudget {
    limit: u64,
    used: AtomicU64,
    exceeded: AtomicBool,
}

impl OutputBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<OutputBudget> {
        Arc::new(OutputBudget {
            limit,
            used: AtomicU64::new(0),
            exceeded: AtomicBool::new(false),
        })
    }

    /// Whether a write went past the budget.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    fn take(&self, bytes: usize) -> bool {
        let used = self.used.fetch_add(bytes as u64, Ordering::SeqCst) + bytes as u64;
        if used > self.limit {
            self.exceeded.store(true, Ordering::SeqCst);
        }
        !self.exceeded()
    }
}

struct StreamState {
    masker: Masker,
    sink: Box<dyn Write + Send>,
    budget: Arc<OutputBudget>,
}

impl StreamState {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if !self.budget.take(bytes.len()) {
            return Err(std::io::Error::other("the run's output limit was reached"));
        }
        let mut out = Vec::with_capacity(bytes.len());
        self.masker.write(bytes, &mut out);
        self.sink.write_all(&out)
    }
}

/// One masked, bounded output stream of a run.
#[derive(Clone)]
pub struct MaskedOutput {
    state: Arc<Mutex<StreamState>>,
}

impl MaskedOutput {
    /// Writes to `sink` through a masker of `values`, within `budget`.
    pub fn new(
        sink: Box<dyn Write + Send>,
        values: &MaskValues,
        budget: Arc<OutputBudget>,
    ) -> MaskedOutput {
        MaskedOutput {
            state: Arc::new(Mutex::new(StreamState {
                masker: Masker::of(values),
                sink,
                budget,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one line of kvrun's own to the sink, outside the run's output budget.
    pub fn note(&self, line: &str) {
        let mut state = self.lock();
        let _ = writeln!(state.sink, "{line}");
    }

    /// Releases what is held back, masked, and flushes the sink.
    pub fn finish(&self) {
        let mut state = self.lock();
        let mut out = Vec::new();
        state.masker.finish(&mut out);
        let _ = state.sink.write_all(&out);
        let _ = state.sink.flush();
    }
}

impl IsTerminal for MaskedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for MaskedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for MaskedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.lock().write(buf).map(|_| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.lock().sink.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
