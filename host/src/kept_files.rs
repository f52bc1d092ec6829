//! The files kvrun keeps or writes, known by identity, so that no run sees or rewrites them.
//!
//! A run's script views ([`crate::python::TreeView`]) and its writable `--dir` mounts are
//! checked against a [`KeptFiles`] set: kvrun's data files (the vault database and its
//! `-wal`/`-shm`, its token, keys and backups, every file under a data directory), the files
//! credentials are read from (`--token-file`, `AZURE_FEDERATED_TOKEN_FILE`,
//! `AZURE_CLIENT_CERTIFICATE_PATH`), and the files kvrun writes during the run (its stdout and
//! stderr when they are files, the `--audit` file). A file is matched by device and inode, so
//! a hard link or a symbolic link to it is caught whatever its name; its path, where known,
//! tells whether a directory holds it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file's identity: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file that `metadata` describes.
    pub fn of(metadata: &std::fs::Metadata) -> FileId {
        FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// One file kvrun keeps or writes: its identity, its canonical path where known, and what it
/// is (for messages).
#[derive(Clone, Debug)]
pub struct KeptFile {
    id: FileId,
    path: Option<PathBuf>,
    what: String,
}

impl KeptFile {
    /// The regular file at `path` (links followed), if there is one.
    pub fn at(path: &Path, what: &str) -> Option<KeptFile> {
        let metadata = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(KeptFile {
            id: FileId::of(&metadata),
            path: path.canonicalize().ok(),
            what: what.to_string(),
        })
    }

    /// The regular file that this process's descriptor `fd` (1 for stdout, 2 for stderr)
    /// writes to, if it writes to one; none for a terminal, a pipe or a socket.
    pub fn open_as(fd: std::os::fd::RawFd, what: &str) -> Option<KeptFile> {
        // SAFETY: the descriptor is only borrowed for `fstat`, and not closed.
        let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let file = std::fs::File::from(file.try_clone_to_owned().ok()?);
        let metadata = file.metadata().ok().filter(|m| m.is_file())?;
        Some(KeptFile {
            id: FileId::of(&metadata),
            path: std::fs::read_link(format!("/proc/self/fd/{fd}")).ok(),
            what: what.to_string(),
        })
    }

    /// What the file is, and its path where known.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("{} ({})", self.what, shown(path)),
            None => self.what.clone(),
        }
    }
}

/// The most files taken from one directory by [`KeptFiles::add_dir`].
const MAX_DIR_FILES: usize = 10_000;

/// A set of [`KeptFile`]s.
#[derive(Clone, Debug, Default)]
pub struct KeptFiles {
    files: Vec<KeptFile>,
}

impl KeptFiles {
    /// Adds `file`, if there is one.
    pub fn add(&mut self, file: Option<KeptFile>) {
        self.files.extend(file);
    }

    /// Adds every regular file under `dir` (kvrun's data directory: the vault database, its
    /// WAL, token, keys and backups), at most 10,000, leaving out the directories in `skip` (kvrun's
    /// cache directories: their compiled components hold nothing secret, and the script views
    /// in them hold the user's own files).
    pub fn add_dir(&mut self, dir: &Path, skip: &[PathBuf], what: &str) {
        let mut stack = vec![dir.to_path_buf()];
        let mut taken = 0;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() && !skip.contains(&path) {
                    stack.push(path);
                } else if kind.is_file() && taken < MAX_DIR_FILES {
                    taken += 1;
                    self.add(KeptFile::at(&path, what));
                }
            }
        }
    }

    /// Adds every file of `other`.
    pub fn extend(&mut self, other: &KeptFiles) {
        self.files.extend(other.files.iter().cloned());
    }

    /// The kept file with identity `id`, if there is one.
    pub fn find(&self, id: FileId) -> Option<&KeptFile> {
        self.files.iter().find(|f| f.id == id)
    }

    /// A kept file that lies under `dir` (canonical), if there is one.
    pub fn held_by(&self, dir: &Path) -> Option<&KeptFile> {
        self.files
            .iter()
            .find(|f| f.path.as_deref().is_some_and(|p| p.starts_with(dir)))
    }
}

/// A path for a line kvrun prints: control characters (escape sequences, newlines) escaped,
/// so that a file name cannot forge or hide lines on the user's terminal.
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_known_by_identity_through_any_link_and_by_the_directory_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("data/token");
        std::fs::create_dir_all(token.parent().unwrap()).unwrap();
        std::fs::write(&token, "t").unwrap();
        std::fs::create_dir_all(dir.path().join("data/views/v1")).unwrap();
        std::fs::write(dir.path().join("data/views/v1/user.py"), "").unwrap();
        let mut kept = KeptFiles::default();
        let views = dir.path().join("data/views");
        kept.add_dir(
            &dir.path().join("data"),
            std::slice::from_ref(&views),
            "kvrun's data",
        );
        let hard = dir.path().join("hard");
        std::fs::hard_link(&token, &hard).unwrap();
        let id = FileId::of(&std::fs::metadata(&hard).unwrap());
        assert!(kept.find(id).is_some(), "a hard link is the same file");
        let user = FileId::of(&std::fs::metadata(views.join("v1/user.py")).unwrap());
        assert!(kept.find(user).is_none(), "the views are left out");
        let data = dir.path().join("data").canonicalize().unwrap();
        assert!(kept.held_by(&data).is_some());
        assert!(kept.held_by(&views.canonicalize().unwrap()).is_none());
    }

    #[test]
    fn shown_paths_carry_no_control_characters() {
        let shown = shown(Path::new("job/\u{1b}[2Jfake\nkvrun: ok.py"));
        assert_eq!(shown, "job/\\u{1b}[2Jfake\\nkvrun: ok.py");
        assert!(!shown.chars().any(char::is_control));
    }
}
