//! The on-disk cache of compiled components.
//!
//! Compiling the vault client with Cranelift takes ~0.1 s in a release host (more in a debug
//! one); loading a precompiled artifact takes well under a millisecond. Artifacts are stored
//! as `NAME-<sha256 of the wasm>-<engine compatibility hash>.cwasm`, so a new component or a
//! different engine build or configuration never loads a stale artifact.
//!
//! Loading an artifact runs its machine code, so the cache directory is created with mode
//! 0700 and only artifacts that this process's user wrote there are loaded. A damaged
//! artifact is recompiled and replaced.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::Engine;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a cached artifact.
    Hit,
    /// Compiled (and written to the cache, if there is one).
    Compiled,
}

/// A loaded component and how long it took.
pub struct Loaded {
    /// The component.
    pub component: Component,
    /// Cache hit or compile.
    pub outcome: CacheOutcome,
    /// Time spent loading or compiling.
    pub elapsed: Duration,
}

/// The artifact path for `wasm` under `dir`.
pub fn artifact_path(engine: &Engine, dir: &Path, name: &str, wasm: &[u8]) -> PathBuf {
    let digest = hex::encode(&Sha256::digest(wasm)[..16]);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{name}-{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Loads `wasm` from the cache in `dir`, or compiles it and stores the artifact there.
pub fn load(engine: &Engine, dir: Option<&Path>, name: &str, wasm: &[u8]) -> Result<Loaded> {
    let start = Instant::now();
    let Some(dir) = dir else {
        let component = Component::new(engine, wasm)?;
        return Ok(Loaded {
            component,
            outcome: CacheOutcome::Compiled,
            elapsed: start.elapsed(),
        });
    };
    let path = artifact_path(engine, dir, name, wasm);
    if path.is_file() {
        // SAFETY: the artifact was written by `store` below into a 0700 directory of ours,
        // under a name that pins the wasm digest and the engine's compatibility hash.
        match unsafe { Component::deserialize_file(engine, &path) } {
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
    let component = Component::new(engine, wasm)?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::warn!(error = %e, "could not cache the compiled component; it will be compiled again next time");
    }
    Ok(Loaded {
        component,
        outcome: CacheOutcome::Compiled,
        elapsed: start.elapsed(),
    })
}

fn store(dir: &Path, path: &Path, component: &Component) -> Result<()> {
    create_private_dir(dir)?;
    let bytes = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::io(
            format!("could not create the directory {}", dir.display()),
            e,
        )
    })
}
