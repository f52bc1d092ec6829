//! `kvrun run SCRIPT.py`: an ordinary Python script built into a `training` component.
//!
//! componentize-py (found as `KVRUN_COMPONENTIZE_PY`, a `componentize-py` command on `PATH`,
//! or the `componentize_py` module of `python3`) builds the component from a directory kvrun
//! writes: the script's source and name, the `kvrun` module the script imports
//! (`get_secret`, `get_secrets`), an `azureml.core.Run` for scripts written for the original
//! SDK, and the entry point (`host/python/`). componentize-py keeps only the modules imported
//! while it builds, so the entry point imports the script's own imports then (a missing or
//! native one fails the build with a `kvrun-build-error:` line, shown as the error) and runs
//! the script itself only when the component runs.
//!
//! The component is cached under `CACHE_DIR/python/` by a hash of everything that went into
//! it: the script, the `.py` files of its directory and of each `--python-path`, the named
//! packages, componentize-py's version, the WIT contract and the files above. A second run
//! of an unchanged script reads it from there; any change rebuilds.

use super::args::ScriptOptions;
use kvrun::private_files;
use kvrun::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The files kvrun adds to every script's component, by their path in the build directory.
const SHIM: &[(&str, &str)] = &[
    (
        "kvrun_entry.py",
        include_str!("../../python/kvrun_entry.py"),
    ),
    ("kvrun.py", include_str!("../../python/kvrun.py")),
    (
        "azureml/__init__.py",
        include_str!("../../python/azureml/__init__.py"),
    ),
    (
        "azureml/core/__init__.py",
        include_str!("../../python/azureml/core/__init__.py"),
    ),
    ("wit/kvrun.wit", include_str!("../../../wit/kvrun.wit")),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// Directory names never searched for local modules.
const SKIPPED_DIRS: &[&str] = &["__pycache__", "node_modules", "target", "site-packages"];

/// How to run componentize-py.
struct Componentize {
    program: PathBuf,
    prefix: Vec<String>,
    /// What identifies this componentize-py in the cache key: for a command, its resolved
    /// path, size and modification time (upgrading it rewrites it), so that a cached run
    /// does not start a Python process to ask for its version.
    identity: String,
}

impl Componentize {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix);
        command
    }

    /// `componentize-py --version`, for messages.
    fn version(&self) -> String {
        self.command()
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// Finds componentize-py: `KVRUN_COMPONENTIZE_PY`, a `componentize-py` command on `PATH`,
    /// or the `componentize_py` module of `python3`; else says how to install it.
    fn find() -> Result<Componentize> {
        let command = match std::env::var_os("KVRUN_COMPONENTIZE_PY") {
            Some(program) => Some(PathBuf::from(program)).filter(|p| p.is_file()),
            None => std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("componentize-py"))
                    .find(|p| p.is_file())
            }),
        };
        if let Some(program) = command {
            let metadata = std::fs::metadata(&program)
                .map_err(|e| Error::io(format!("reading {}", program.display()), e))?;
            let modified = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let identity = format!("{}:{}:{modified}", program.display(), metadata.len());
            return Ok(Componentize {
                program,
                prefix: Vec::new(),
                identity,
            });
        }
        if std::env::var_os("KVRUN_COMPONENTIZE_PY").is_none() {
            let module = Componentize {
                program: PathBuf::from("python3"),
                prefix: vec!["-m".into(), "componentize_py".into()],
                identity: String::new(),
            };
            let version = module.version();
            if version.starts_with("componentize-py") {
                return Ok(Componentize {
                    identity: version,
                    ..module
                });
            }
        }
        Err(Error::Config(
            "running a Python script needs componentize-py, which was not found (neither KVRUN_COMPONENTIZE_PY, a componentize-py command on PATH, nor python3 -m componentize_py): install it with `pip install componentize-py`, or set KVRUN_COMPONENTIZE_PY to its path".into(),
        ))
    }
}

/// The component for `script`, from the cache or built now. `progress` says what is
/// happening on stderr (a terminal).
pub(crate) fn component(
    script: &Path,
    options: &ScriptOptions,
    cache_dir: Option<&Path>,
    progress: bool,
) -> Result<Vec<u8>> {
    let source = std::fs::read(script)
        .map_err(|e| Error::io(format!("could not read {}", script.display()), e))?;
    let source = String::from_utf8(source)
        .map_err(|_| Error::InvalidArgument(format!("{} is not UTF-8 text", script.display())))?;
    let file_name = script
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("script.py")
        .to_string();
    let script_dir = match script.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let packages = package_dirs(options)?;
    let componentize = Componentize::find()?;
    let mut local_dirs = vec![script_dir];
    local_dirs.extend(options.python_paths.iter().cloned());
    let key = build_key(
        &componentize.identity,
        &file_name,
        &source,
        &local_dirs,
        &packages,
    )?;
    let cached = cache_dir.map(|dir| dir.join("python").join(format!("{key}.wasm")));
    if let Some(path) = &cached {
        if path.exists() {
            private_files::check_file(path, "the cached script component")?;
            return std::fs::read(path)
                .map_err(|e| Error::io(format!("could not read {}", path.display()), e));
        }
    }
    if progress {
        eprintln!("kvrun: building {file_name} into a component with {} (once per change of the script; about 20 s)…", componentize.version());
    }
    let started = Instant::now();
    let wasm = build(&componentize, &file_name, &source, &local_dirs, options)?;
    if progress {
        eprintln!(
            "kvrun: built {file_name} ({} MB) in {:.1} s",
            wasm.len() >> 20,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(path) = cached {
        let stored = path
            .parent()
            .map_or(Ok(()), |dir| {
                private_files::private_dir(dir, "the script component cache")
            })
            .and_then(|()| {
                private_files::write(&path, &wasm, 0o600, "the cached script component")
            });
        if let Err(e) = stored {
            tracing::warn!("the built component was not cached ({e})");
        }
    }
    Ok(wasm)
}

/// The named packages' directories (or single-file modules), refusing native extensions.
fn package_dirs(options: &ScriptOptions) -> Result<Vec<PathBuf>> {
    let Some(site) = &options.site_packages else {
        return Ok(Vec::new());
    };
    options
        .packages
        .iter()
        .map(|name| {
            let dir = site.join(name);
            let module = site.join(format!("{name}.py"));
            let found = if dir.is_dir() {
                dir
            } else if module.is_file() {
                module
            } else {
                return Err(Error::InvalidArgument(format!(
                    "--package {name}: there is no {name}/ or {name}.py in {}",
                    site.display()
                )));
            };
            if let Some(native) = native_file(&found) {
                return Err(Error::InvalidArgument(format!(
                    "--package {name} has native extensions ({}): native extensions (numpy, pandas, torch, ...) do not run in the WebAssembly sandbox; only pure-Python packages can be bundled",
                    native.display()
                )));
            }
            Ok(found)
        })
        .collect()
}

/// A compiled extension module under `path`, if there is one.
fn native_file(path: &Path) -> Option<PathBuf> {
    files_under(path, |_| true).into_iter().find(|p| {
        p.extension()
            .is_some_and(|e| e == "so" || e == "pyd" || e == "dylib")
    })
}

/// The `.py` files under `root` (not in hidden, cache or environment directories).
fn python_files(root: &Path) -> Vec<PathBuf> {
    let local = |dir: &Path| {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        !name.starts_with('.')
            && !SKIPPED_DIRS.contains(&name.as_ref())
            && !dir.join("pyvenv.cfg").exists()
    };
    let mut found = files_under(root, local);
    found.retain(|p| p.extension().is_some_and(|e| e == "py"));
    found
}

/// Every file under `root` (or `root` itself, a file), sorted, entering only the
/// directories `descend` accepts.
fn files_under(root: &Path, descend: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                if descend(&path) {
                    stack.push(path);
                }
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The cache key: a hash of everything that goes into the component.
fn build_key(
    componentize: &str,
    file_name: &str,
    source: &str,
    local_dirs: &[PathBuf],
    packages: &[PathBuf],
) -> Result<String> {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part(b"kvrun python script v1");
    part(env!("CARGO_PKG_VERSION").as_bytes());
    part(componentize.as_bytes());
    for (path, contents) in SHIM {
        part(path.as_bytes());
        part(contents.as_bytes());
    }
    part(file_name.as_bytes());
    part(source.as_bytes());
    for root in local_dirs.iter().chain(packages) {
        for file in python_files(root) {
            let contents = std::fs::read(&file)
                .map_err(|e| Error::io(format!("could not read {}", file.display()), e))?;
            part(
                file.strip_prefix(root)
                    .unwrap_or(&file)
                    .to_string_lossy()
                    .as_bytes(),
            );
            part(&contents);
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// Runs componentize-py over a fresh build directory.
fn build(
    componentize: &Componentize,
    file_name: &str,
    source: &str,
    local_dirs: &[PathBuf],
    options: &ScriptOptions,
) -> Result<Vec<u8>> {
    let work = tempfile::tempdir().map_err(|e| Error::io("creating a build directory", e))?;
    let dir = work.path();
    let write = |path: &Path, contents: &[u8]| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(path, contents)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    for (path, contents) in SHIM {
        write(&dir.join("bundle").join(path), contents.as_bytes())?;
    }
    write(&dir.join("bundle/kvrun_script.txt"), source.as_bytes())?;
    let settings = serde_json::json!({ "filename": file_name, "packages": options.packages });
    write(
        &dir.join("bundle/kvrun_script.json"),
        settings.to_string().as_bytes(),
    )?;
    let out = dir.join("script.wasm");
    let mut command = componentize.command();
    command
        .arg("-d")
        .arg(dir.join("bundle/wit"))
        .args(["-w", "training", "componentize", "-p"])
        .arg(dir.join("bundle"));
    for path in local_dirs.iter().chain(&options.site_packages) {
        command.arg("-p").arg(path);
    }
    command.arg("kvrun_entry").arg("-o").arg(&out);
    let output = command
        .output()
        .map_err(|e| Error::io("running componentize-py", e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The entry point's own message, however componentize-py wraps it (it repeats it,
        // after "AssertionError: ").
        const MARK: &str = "kvrun-build-error: ";
        let mut ours: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]))
            .collect();
        ours.dedup();
        if !ours.is_empty() {
            return Err(Error::InvalidArgument(ours.join("; ")));
        }
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Error::Component(format!(
            "componentize-py could not build {file_name}:\n{}",
            tail.join("\n")
        )));
    }
    std::fs::read(&out).map_err(|e| Error::io(format!("reading {}", out.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_follows_every_local_module_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("helper.py"), "X = 1\n").unwrap();
        std::fs::create_dir_all(root.join(".venv")).unwrap();
        std::fs::write(root.join(".venv/ignored.py"), "Y = 1\n").unwrap();
        std::fs::write(root.join("notes.txt"), "not code").unwrap();
        let key = || {
            build_key(
                "componentize-py 0.25.1",
                "train.py",
                "print(1)",
                std::slice::from_ref(&root),
                &[],
            )
            .unwrap()
        };
        let first = key();
        assert_eq!(first, key());
        std::fs::write(root.join("notes.txt"), "still not code").unwrap();
        std::fs::write(root.join(".venv/ignored.py"), "Y = 2\n").unwrap();
        assert_eq!(
            first,
            key(),
            "only .py files outside hidden directories count"
        );
        std::fs::write(root.join("helper.py"), "X = 2\n").unwrap();
        assert_ne!(first, key(), "a changed local module rebuilds");
        let other = build_key(
            "componentize-py 0.26.0",
            "train.py",
            "print(1)",
            std::slice::from_ref(&root),
            &[],
        )
        .unwrap();
        assert_ne!(key(), other, "another componentize-py rebuilds");
    }

    #[test]
    fn named_packages_must_exist_and_be_pure_python() {
        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("purelib")).unwrap();
        std::fs::write(site.path().join("purelib/__init__.py"), "").unwrap();
        std::fs::create_dir_all(site.path().join("fastlib/core")).unwrap();
        std::fs::write(
            site.path()
                .join("fastlib/core/_speedups.cpython-311-x86_64-linux-gnu.so"),
            "",
        )
        .unwrap();
        std::fs::write(site.path().join("single.py"), "").unwrap();
        let options = |packages: &[&str]| ScriptOptions {
            python_paths: Vec::new(),
            site_packages: Some(site.path().to_path_buf()),
            packages: packages.iter().map(|p| p.to_string()).collect(),
        };
        assert_eq!(
            package_dirs(&options(&["purelib", "single"]))
                .unwrap()
                .len(),
            2
        );
        let native = package_dirs(&options(&["fastlib"]))
            .unwrap_err()
            .to_string();
        assert!(
            native.contains("native extensions") && native.contains("_speedups"),
            "{native}"
        );
        let missing = package_dirs(&options(&["absent"])).unwrap_err().to_string();
        assert!(
            missing.contains("there is no absent/ or absent.py"),
            "{missing}"
        );
    }
}
