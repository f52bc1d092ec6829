//! The on-disk cache of compiled components and core modules.
//!
//! Compiling the vault client with Cranelift takes ~0.1 s in a release host (more in a debug
//! one); loading a precompiled artifact takes well under a millisecond. Artifacts are stored
//! as `NAME-<key>-<engine compatibility hash>.cwasm`, so a new component or a different
//! engine build or configuration never loads a stale artifact. The key is the wasm's SHA-256
//! ([`load`]), or, for a component built from known inputs such as the Python runtime, a hash
//! of those inputs ([`load_by_key`]): then a cache hit needs neither the wasm nor hashing it.
//!
//! Loading an artifact runs its machine code in the host, so an artifact is loaded only when
//! the cache directory and the file are this user's and nobody else can write them
//! ([`crate::private_files`]); otherwise the component is compiled (and, in an untrusted
//! directory, not cached). Artifacts are written through a randomly named temporary file
//! and renamed into place. A damaged artifact is recompiled and replaced.

use crate::error::{Error, Result};
use crate::private_files;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::Engine;

/// What the cache holds: a component, or a core module (the scientific Python runtime).
pub trait Compiled: Sized {
    /// Compiles `wasm`.
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;
    /// Loads a serialized artifact.
    ///
    /// # Safety
    /// The file must be an artifact this cache wrote (see the module docs).
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
    /// The artifact's bytes.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
}

impl Compiled for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        Component::deserialize_file(engine, path)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
}

impl Compiled for wasmtime::Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        wasmtime::Module::new(engine, wasm)
    }
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        wasmtime::Module::deserialize_file(engine, path)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a cached artifact.
    Hit,
    /// Compiled (and written to the cache, if there is one).
    Compiled,
}

/// A loaded component (or core module) and how long it took.
pub struct Loaded<A = Component> {
    /// The component or module.
    pub component: A,
    /// Cache hit or compile.
    pub outcome: CacheOutcome,
    /// Time spent loading or compiling.
    pub elapsed: Duration,
}

/// The artifact path for `wasm` under `dir`.
pub fn artifact_path(engine: &Engine, dir: &Path, name: &str, wasm: &[u8]) -> PathBuf {
    keyed_artifact_path(engine, dir, name, &hex::encode(&Sha256::digest(wasm)[..16]))
}

/// The artifact path for the component that `key` identifies under `dir`.
fn keyed_artifact_path(engine: &Engine, dir: &Path, name: &str, digest: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{name}-{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Loads `wasm` from the cache in `dir`, or compiles it and stores the artifact there.
pub fn load(engine: &Engine, dir: Option<&Path>, name: &str, wasm: &[u8]) -> Result<Loaded> {
    let key = hex::encode(&Sha256::digest(wasm)[..16]);
    load_by_key(engine, dir, name, &key, || Ok(wasm.into()))
}

/// Loads the component that `key` identifies (a hash of everything that makes its wasm) from
/// the cache in `dir`; on a miss, compiles the wasm that `wasm` gives (called only then) and
/// stores the artifact.
pub fn load_by_key<'a, A: Compiled>(
    engine: &Engine,
    dir: Option<&Path>,
    name: &str,
    key: &str,
    wasm: impl FnOnce() -> Result<std::borrow::Cow<'a, [u8]>>,
) -> Result<Loaded<A>> {
    let start = Instant::now();
    let Some(dir) = dir else {
        let component = A::compile(engine, &wasm()?)?;
        return Ok(Loaded {
            component,
            outcome: CacheOutcome::Compiled,
            elapsed: start.elapsed(),
        });
    };
    if let Err(e) = private_files::private_dir(dir, "the compiled-component cache") {
        tracing::warn!("not using the compiled-component cache: {e}");
        return load_by_key(engine, None, name, key, wasm);
    }
    let path = keyed_artifact_path(engine, dir, name, key);
    let trusted = match std::fs::symlink_metadata(&path) {
        Ok(metadata) if metadata.is_file() => match private_files::trust(&metadata) {
            Ok(()) => true,
            Err(why) => {
                let e = private_files::refusal("the cached component", &path, &why);
                tracing::warn!("recompiling instead of loading: {e}");
                false
            }
        },
        _ => false,
    };
    if trusted {
        // SAFETY: the artifact is a regular file in a directory that only this user can
        // write, owned by this user and writable by nobody else, written by `store` below
        // under a name that pins the component's key and the engine's compatibility hash.
        match unsafe { A::deserialize_file(engine, &path) } {
            Ok(component) => {
                return Ok(Loaded {
                    component,
                    outcome: CacheOutcome::Hit,
                    elapsed: start.elapsed(),
                })
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding a damaged compiled component")
            }
        }
    }
    let compiled = A::compile(engine, &wasm()?)?;
    let component = match store(&path, &compiled) {
        // Run from the file just written, mapped, as a cached artifact runs: one kept only
        // in memory makes wasmtime copy its memory image into a sealed memfd when first
        // instantiated, and the kernel refuses the seal now and then on a busy machine
        // (`EBUSY` while it still holds the new pages), which stops the run.
        // SAFETY: as above; `store` has just written it.
        Ok(()) => unsafe { A::deserialize_file(engine, &path) }.unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "running the compiled component from memory");
            compiled
        }),
        Err(e) => {
            tracing::warn!(error = %e, "could not cache the compiled component; it will be compiled again next time");
            compiled
        }
    };
    Ok(Loaded {
        component,
        outcome: CacheOutcome::Compiled,
        elapsed: start.elapsed(),
    })
}

fn store<A: Compiled>(path: &Path, component: &A) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("could not replace {}", path.display()), e))?;
    }
    private_files::write(path, &component.serialize()?, 0o600, "the cached component")
}
