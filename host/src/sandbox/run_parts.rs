//! The seam every runtime's run goes through: what a run has besides its instance.
//!
//! A training component (`wasi:cli/run` in store A) and a script in the scientific Python
//! runtime ([`crate::scientific`], a WASI preview 1 module) differ only in how they are
//! instantiated and entered. Everything else is made here, once, for both: the run's WASI
//! configuration (arguments, `--env`, masked stdout and stderr, `--dir` preopens), its
//! `wasi:http` hooks (allow-list, handles, echo masking and limits), its secret broker (grants,
//! vault client, read cache, audit), its memory limiter and open-file count, the epoch
//! callback that enforces the wall-clock, audit and echo limits, and the reading of how the
//! run ended. A runtime takes [`RunParts`], builds its store from them, and hands the outcome
//! back to [`RunEnding::end`].

use super::broker::SecretBroker;
use super::open_files::OpenFiles;
use super::{RunExit, RunOptions};
use crate::audit::{AuditLimitReached, RunAudit};
use crate::handles::{EchoLimitReached, RunHandles};
use crate::network::{NetworkStats, OutboundHooks};
use crate::run_output::{MaskedOutput, OutputBudget};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{ResourceLimiter, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// What a run has besides its instance (see the module docs).
pub(crate) struct RunParts {
    /// Arguments, environment, masked output and `--dir` preopens; a runtime adds its own
    /// preopens and builds it.
    pub(crate) wasi: WasiCtxBuilder,
    /// The run's `wasi:http` hooks: every request the run makes goes through them.
    pub(crate) hooks: OutboundHooks,
    /// The run's `kvrun:secrets/run`.
    pub(crate) broker: SecretBroker,
    /// The memory limit.
    pub(crate) limiter: RunLimiter,
    /// The open-file count.
    pub(crate) open_files: OpenFiles,
    /// What reads how the run ended.
    pub(crate) ending: RunEnding,
}

/// Tracks the memory limit and whether a run hit it.
pub(crate) struct RunLimiter {
    pub(super) max_memory: usize,
    pub(super) hit: bool,
}

impl RunLimiter {
    /// Whether the run asked for more memory than its limit.
    pub(crate) fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.max_memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The limits a run's ending is read against.
#[derive(Clone, Copy)]
pub(crate) struct EndLimits {
    pub(crate) timeout: Duration,
    pub(crate) max_memory: usize,
    pub(crate) max_output: u64,
    pub(crate) max_echoes: u32,
}

impl From<&RunOptions> for EndLimits {
    fn from(options: &RunOptions) -> Self {
        EndLimits {
            timeout: options.timeout,
            max_memory: options.max_memory,
            max_output: options.max_output,
            max_echoes: options.max_echoes,
        }
    }
}

/// What reads how a run ended, and closes its output.
pub(crate) struct RunEnding {
    pub(super) stdout: MaskedOutput,
    pub(super) stderr: MaskedOutput,
    pub(super) budget: Arc<OutputBudget>,
    pub(super) handles: Option<Arc<RunHandles>>,
    pub(super) audit: Arc<RunAudit>,
    pub(super) vault_stats: Arc<NetworkStats>,
    pub(super) vault_requests: Arc<AtomicU64>,
    pub(super) limits: EndLimits,
}

impl RunEnding {
    /// The run's wall-clock limit.
    pub(crate) fn timeout(&self) -> Duration {
        self.limits.timeout
    }

    /// The store's epoch callback: stops the run when its audit budget is spent, its echo
    /// limit reached, or its deadline passed; otherwise it yields every tick.
    pub(crate) fn epoch_watch<T>(
        &self,
    ) -> impl FnMut(StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static
    {
        let audit = self.audit.clone();
        let handles = self.handles.clone();
        let deadline = Instant::now() + self.limits.timeout;
        move |_| {
            if audit.spent() {
                return Err(AuditLimitReached(audit.max()).into());
            }
            if let Some(limit) = handles.as_ref().and_then(|h| h.echo_limit()) {
                return Err(limit.into());
            }
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        }
    }

    /// How the run ended, given its outcome (the exit status its entry returned, an error, or
    /// the wall-clock limit) and whether it hit its memory limit; flushes its output.
    pub(crate) fn end(
        self,
        outcome: std::result::Result<wasmtime::Result<i32>, tokio::time::error::Elapsed>,
        memory_hit: bool,
    ) -> RunExit {
        let exit = how_it_ended(
            outcome,
            memory_hit,
            self.budget.exceeded(),
            self.handles
                .as_ref()
                .is_some_and(|h| h.echo_limit().is_some()),
            self.limits,
        );
        self.stdout.finish();
        self.stderr.finish();
        // After the run's output is out: on a shared stderr, the last record comes last.
        let outcome = exit
            .message()
            .unwrap_or_else(|| format!("exited with status {}", exit.status()));
        self.audit.end(exit.status(), &outcome);
        self.vault_requests
            .fetch_add(self.vault_stats.sent(), Ordering::Relaxed);
        exit
    }
}

/// What the run's result means, given which limits were hit; an exceeded output budget, then
/// a reached echo limit, wins over an exit or a trap it caused.
fn how_it_ended(
    outcome: std::result::Result<wasmtime::Result<i32>, tokio::time::error::Elapsed>,
    memory_hit: bool,
    output_exceeded: bool,
    echo_limit_hit: bool,
    limits: EndLimits,
) -> RunExit {
    let exit = match outcome {
        Err(_) => RunExit::Timeout(limits.timeout),
        Ok(Ok(code)) => RunExit::Code(code),
        Ok(Err(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                RunExit::Code(exit.0)
            } else if let Some(limit) = e.downcast_ref::<AuditLimitReached>() {
                RunExit::AuditLimit(limit.0)
            } else if let Some(limit) = e.downcast_ref::<EchoLimitReached>() {
                RunExit::EchoLimit(limit.0)
            } else if memory_hit {
                RunExit::MemoryLimit(limits.max_memory)
            } else if output_exceeded {
                RunExit::OutputLimit(limits.max_output)
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                RunExit::Timeout(limits.timeout)
            } else {
                RunExit::Trap(format!("{e:#}"))
            }
        }
    };
    match exit {
        RunExit::Code(_) | RunExit::Trap(_) if output_exceeded => {
            RunExit::OutputLimit(limits.max_output)
        }
        // Past the echo limit every request was refused; a run that ended before the next
        // epoch tick stopped it was still stopped by the limit.
        RunExit::Code(_) | RunExit::Trap(_) if echo_limit_hit => {
            RunExit::EchoLimit(limits.max_echoes)
        }
        other => other,
    }
}
