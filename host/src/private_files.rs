//! Files that hold secrets, or code the host runs: created private, trusted only while private.
//!
//! Isolation model: another local user must neither choose what kvrun reads (the local vault's
//! token, its database, a compiled component that runs as native code) nor read what it
//! writes (values, audit records, backups). So every such file is created with its final mode
//! before a byte is written, and an existing one is used only if this user owns it and nobody
//! else can write to it or to the directory that holds it:
//!
//! | what | created with | an existing one is refused when |
//! |---|---|---|
//! | directory (data, cache) | 0700 | another user owns it, or group/others can write it |
//! | file (token, keys, database, audit, backup, workspace cache) | 0600 | another user owns it, or group/others can write it; one they can read is made 0600, with a warning |
//!
//! Files are replaced atomically through a temporary file with a random name created with
//! `O_EXCL` in the same directory, never through a predictable path.

use crate::error::{Error, Result};
use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why an existing file or directory is not private to this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// Another user owns it.
    Owner(u32),
    /// Group or others can write it (the mode).
    Writable(u32),
}

/// This process's effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `metadata` describes something this user owns and nobody else can write.
pub fn trust(metadata: &Metadata) -> std::result::Result<(), Untrusted> {
    if metadata.uid() != current_uid() {
        return Err(Untrusted::Owner(metadata.uid()));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable(mode));
    }
    Ok(())
}

/// The user-facing error for `path` (`what` names it, e.g. "the data directory").
pub fn refusal(what: &str, path: &Path, why: &Untrusted) -> Error {
    let shown = path.display();
    Error::Config(match why {
        Untrusted::Owner(uid) => format!(
            "{what} {shown} is owned by uid {uid}, not by this user (uid {}): another user could choose or read its contents; use one you own, or `chown` it to yourself",
            current_uid()
        ),
        Untrusted::Writable(mode) => format!(
            "{what} {shown} can be written by group or others (mode {mode:04o}): another user could choose its contents; run `chmod go-rwx {shown}`"
        ),
    })
}

/// Creates `dir` (and missing parents) with mode 0700, or checks an existing one: refused
/// when another user owns it or can write it. A directory others can only read is accepted:
/// the files that matter in it are 0600, so a listing shows no secret.
pub fn private_dir(dir: &Path, what: &str) -> Result<()> {
    if let Ok(metadata) = std::fs::metadata(dir) {
        if metadata.is_dir() {
            return trust(&metadata).map_err(|why| refusal(what, dir, &why));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::io(
                format!("could not create the directory {} ({what})", dir.display()),
                e,
            )
        })
}

/// Checks an existing private file: refused when another user owns it or can write it, made
/// 0600 when others could read it. A missing file is fine.
pub fn check_file(path: &Path, what: &str) -> Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io(
                format!("could not inspect {what} {}", path.display()),
                e,
            ))
        }
    };
    if !metadata.is_file() {
        return Err(Error::Config(format!(
            "{what} {} is not a regular file (a link or a device); give a plain file",
            path.display()
        )));
    }
    trust(&metadata).map_err(|why| refusal(what, path, &why))?;
    if metadata.mode() & 0o077 != 0 {
        tracing::warn!(
            "{what} {} could be read by group or others (mode {:04o}); it is now 0600",
            path.display(),
            metadata.mode() & 0o7777
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            Error::io(
                format!("could not make {what} {} private", path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Opens `path` for appending, created 0600; an existing file is checked ([`check_file`])
/// and made 0600.
pub fn open_append(path: &Path, what: &str) -> Result<File> {
    check_file(path, what)?;
    open_private(path)
        .map_err(|e| Error::io(format!("could not open {what} {}", path.display()), e))
}

/// Creates `path` empty with mode 0600 if it is missing (an existing file is left as it is:
/// check it first with [`check_file`]), so that whatever later fills it starts private.
pub fn create(path: &Path, what: &str) -> Result<()> {
    open_private(path)
        .map(drop)
        .map_err(|e| Error::io(format!("could not create {what} {}", path.display()), e))
}

/// Opens `path` for appending, creating it 0600, never through a symbolic link.
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Replaces `path` with `contents` atomically and durably, mode 0600 (or `mode`), through a
/// randomly named temporary file in the same directory. An existing file is checked first.
pub fn write(path: &Path, contents: &[u8], mode: u32, what: &str) -> Result<()> {
    check_file(path, what)?;
    let failed = failed_to_write(path, what);
    staged(path, contents, mode, what)?
        .persist(path)
        .map_err(|e| failed(e.error))?;
    Ok(())
}

/// Writes `contents` to `path` (mode 0600) as [`write`] does, unless a file is there already,
/// which stays as it is (two processes that make it at once keep the first).
pub fn write_new(path: &Path, contents: &[u8], what: &str) -> Result<()> {
    match staged(path, contents, 0o600, what)?.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed_to_write(path, what)(e.error)),
    }
}

/// `contents` in a randomly named temporary file beside `path`, with `mode`, synced.
fn staged(path: &Path, contents: &[u8], mode: u32, what: &str) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let failed = failed_to_write(path, what);
    let mut tmp = tempfile::Builder::new()
        .prefix(".kvrun-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(failed)?;
    tmp.write_all(contents).map_err(failed)?;
    tmp.as_file().sync_all().map_err(failed)?;
    Ok(tmp)
}

fn failed_to_write<'a>(
    path: &'a Path,
    what: &'a str,
) -> impl Fn(std::io::Error) -> Error + Copy + 'a {
    move |e| Error::io(format!("could not write {what} {}", path.display()), e)
}

/// The cache key (32 hex digits) recorded in `path`, if the file is this user's and nobody
/// else can write it (a key names which cached artifact a run loads as native code).
pub fn read_key(path: &Path, what: &str) -> Option<String> {
    check_file(path, what).ok()?;
    let key = std::fs::read_to_string(path).ok()?;
    let key = key.trim();
    (key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_written_once_and_the_first_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_new(&path, b"first", "the key").unwrap();
        write_new(&path, b"second", "the key").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn created_private_and_checked_when_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        private_dir(&data, "the data directory").unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(&data, "the data directory")
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod go-rwx"), "{err}");

        let file = dir.path().join("audit.log");
        std::fs::write(&file, b"old\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_append(&file, "the audit file").unwrap());
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(open_append(&file, "the audit file").is_err());

        let backup = dir.path().join("backup");
        write(&backup, b"blob", 0o600, "the backup file").unwrap();
        assert_eq!(std::fs::metadata(&backup).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&backup).unwrap(), b"blob");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&backup, &link).unwrap();
        assert!(open_append(&link, "the audit file").is_err());
    }
}
