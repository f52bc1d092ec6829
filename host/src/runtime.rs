//! [`Runtime`]: one wasmtime engine and the pre-linked vault client component.
//!
//! The engine uses the pooling allocator (instantiation in microseconds) and epoch
//! interruption: a background thread advances the epoch every [`EPOCH_TICK`], and every
//! store sets a deadline in ticks, so no component can run forever. The vault client is
//! loaded through [`crate::component_cache`] and linked once into an `InstancePre`, so a new
//! [`crate::Client`] only instantiates.

use crate::address_space::{self, Allocation, Plan};
use crate::bindings::VaultClientPre;
use crate::component_cache::{self, CacheOutcome};
use crate::error::{Error, Result};
use crate::network::OutboundHooks;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The state of a vault client component's store: its WASI context (configuration only),
/// its `wasi:http` hooks and its memory limits. [`crate::Client`] fills one per instance.
pub(crate) struct GuestState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: OutboundHooks,
    pub(crate) limits: StoreLimits,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Options of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Component instances that may be live at once: one per [`crate::Client`], two per
    /// training run. When all are in use, instantiating fails with
    /// [`crate::Error::Capacity`].
    pub max_instances: u32,
    /// The largest linear memory any instance may grow to (a run's `max_memory` must not be
    /// larger). Each pooled slot reserves this much address space, rounded up to a power of
    /// two, plus a guard ([`crate::address_space`]).
    pub max_memory: usize,
    /// Whether to pool instances: `None` decides by the address-space limit (a pool that
    /// would take more than half of `RLIMIT_AS` becomes on-demand allocation, with a note).
    pub allocation: Option<Allocation>,
}

impl Default for RuntimeOptions {
    /// No cache, [`DEFAULT_MAX_INSTANCES`], memories up to 4 GiB, pooled unless the
    /// address-space limit says otherwise.
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory: 4 << 30,
            allocation: None,
        }
    }
}

/// The default of [`RuntimeOptions::max_instances`]: 128 concurrent training runs.
pub const DEFAULT_MAX_INSTANCES: u32 = 256;

impl RuntimeOptions {
    /// The default cache directory: `KVRUN_CACHE_DIR` (unless empty), else the platform cache
    /// dir; never a relative empty path, which would put the cache in the working directory.
    pub fn default_cache_dir() -> Option<PathBuf> {
        std::env::var_os("KVRUN_CACHE_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("kvrun")))
    }
}

/// The engine, the epoch ticker and the linked vault client component. Clones are cheap
/// and share all three; the ticker stops when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    vault_pre: VaultClientPre<GuestState>,
    load: (CacheOutcome, Duration),
    max_memory: usize,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Builds the engine and loads the vault client component (from the cache if possible).
    pub fn new(options: RuntimeOptions) -> Result<Runtime> {
        Runtime::with_vault_component(options, crate::bindings::GUEST_WASM)
    }

    /// Like [`Runtime::new`], with another implementation of the `vault-client` world (a
    /// different build of the client, or a test double). It runs under the same sandbox.
    pub fn with_vault_component(options: RuntimeOptions, wasm: &[u8]) -> Result<Runtime> {
        let limit = crate::address_space::current_limit();
        let mut plan = address_space::plan(options.max_instances, options.max_memory as u64, limit);
        if let Some(chosen) = options.allocation {
            plan.allocation = chosen;
        } else if plan.allocation == Allocation::OnDemand {
            tracing::warn!(
                "the address-space limit ({} MiB) is too small for a pool of {} instances of {} MiB; instances are allocated on demand instead",
                limit.unwrap_or(0) >> 20,
                options.max_instances,
                plan.memory_reservation >> 20
            );
        }
        let engine = Engine::new(&engine_config(
            options.max_instances,
            options.max_memory,
            &plan,
        ))?;
        let loaded =
            component_cache::load(&engine, options.cache_dir.as_deref(), "vault-client", wasm)?;
        let mut linker = Linker::<GuestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let vault_pre = VaultClientPre::new(linker.instantiate_pre(&loaded.component)?)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Runtime {
            engine,
            cache_dir: options.cache_dir,
            vault_pre,
            load: (loaded.outcome, loaded.elapsed),
            max_memory: options.max_memory,
            _ticker: Arc::new(ticker),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The largest linear memory an instance may have ([`RuntimeOptions::max_memory`]).
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Whether the vault client came from the cache, and how long loading it took.
    pub fn load_report(&self) -> (CacheOutcome, Duration) {
        self.load
    }

    /// Loads another component (a training component) through the same cache.
    pub fn load_component(&self, name: &str, wasm: &[u8]) -> Result<component_cache::Loaded> {
        component_cache::load(&self.engine, self.cache_dir.as_deref(), name, wasm)
    }

    /// Loads the component that `key` identifies (a hash of everything its wasm is made
    /// from) through the same cache; `wasm` is asked for only when it must be compiled.
    pub fn load_component_by_key<'a>(
        &self,
        name: &str,
        key: &str,
        wasm: impl FnOnce() -> Result<std::borrow::Cow<'a, [u8]>>,
    ) -> Result<component_cache::Loaded> {
        component_cache::load_by_key(&self.engine, self.cache_dir.as_deref(), name, key, wasm)
    }

    /// The directory of the compiled-component cache, if there is one.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    pub(crate) fn vault_pre(&self) -> &VaultClientPre<GuestState> {
        &self.vault_pre
    }

    /// Epoch ticks that make up `duration` (at least one).
    pub fn ticks(duration: Duration) -> u64 {
        (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

fn engine_config(max_instances: u32, max_memory: usize, plan: &Plan) -> Config {
    let mut config = Config::new();
    // Exceptions and GC are compiled in for the scientific Python runtime's engine only.
    config
        .wasm_exceptions(false)
        .wasm_gc(false)
        .epoch_interruption(true)
        .memory_reservation(plan.memory_reservation)
        .memory_guard_size(address_space::GUARD)
        .memory_reservation_for_growth(0);
    let strategy = match plan.allocation {
        Allocation::Pooled => {
            let mut pool = PoolingAllocationConfig::default();
            // A wasip2 component holds several core instances (its module, the WASI adapter,
            // shims) and tables, but one linear memory; those slots cost only address space.
            pool.total_component_instances(max_instances)
                .total_core_instances(max_instances * address_space::CORE_PER_COMPONENT)
                .total_memories(max_instances)
                .total_tables(max_instances * address_space::CORE_PER_COMPONENT)
                .total_stacks(max_instances)
                .max_memory_size(max_memory.min(plan.memory_reservation as usize));
            InstanceAllocationStrategy::Pooling(pool)
        }
        Allocation::OnDemand => InstanceAllocationStrategy::OnDemand,
    };
    config.allocation_strategy(strategy);
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kvrun-epoch".into())
            .spawn(move || {
                // Parked rather than asleep, so that dropping the ticker wakes it at once
                // instead of waiting out the tick (a one-shot command exits ~5 ms sooner).
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A wasmtime failure: a full instance pool is [`Error::Capacity`], anything else
/// [`Error::Component`].
impl From<wasmtime::Error> for Error {
    fn from(e: wasmtime::Error) -> Self {
        match e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            Some(full) => Error::Capacity(full.to_string()),
            None => Error::Component(format!("{e:#}")),
        }
    }
}
