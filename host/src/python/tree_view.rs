//! The read-only view of a user's directory tree that a Python run sees.
//!
//! A run is given its script's directory (and each `--python-path` and `--site-packages`
//! directory) as a view: a private directory that kvrun fills with hard links to the tree's
//! visible files (a copy where a link is impossible, such as across file systems) and mounts
//! read-only. One rule set decides what a view shows, applied alike to every entry and to the
//! file a symbolic link points at ([`ViewRules::admits`]):
//!
//! - inside the tree, with no component whose name begins with `.` (so no `.git`, `.ssh`,
//!   `.env`, `.venv`, ...) and no `__pycache__` (bytecode the host's Python wrote);
//! - never under one of kvrun's own directories (its data or cache directory), nor under a
//!   writable `--dir` of the same run (the run has it at its mount point);
//! - never one of the files kvrun keeps or writes ([`KeptFiles`]: the vault database, its
//!   token and keys, credential files, the run's redirected output and audit file), matched
//!   by device and inode, so a hard link is caught too;
//! - a symbolic link only as the regular file it points at; links to directories are left
//!   out (invariant 14).
//!
//! Each check is made on the file as opened: the entry is opened without following a link,
//! then `fstat`ed, and the path the kernel gives for the open file (`/proc/self/fd`) is
//! checked against the rules, so a tree that changes while its view is built cannot slip
//! another file in. The view links that open file (`linkat` of its descriptor), or copies
//! from it.
//!
//! A view is bounded: at most [`ViewRules::max_files`] files, each file linked or copied
//! once whatever the number of links to it (de-duplicated by inode), copies of at most
//! [`ViewRules::max_copy`] bytes each (a larger file is left out) and
//! [`ViewRules::max_copied`] in all (past that the tree is refused: data belongs in a
//! `--dir`). What is left out that the user may miss is reported as notes, one line each,
//! file names with control characters escaped. The view is removed when it is dropped.

use crate::error::{Error, Result};
use crate::kept_files::{shown, FileId, KeptFiles};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What a view may hold and where it is made.
#[derive(Clone, Debug)]
pub struct ViewRules {
    /// Directories never shown (kvrun's data and cache directories), canonical.
    pub excluded: Vec<PathBuf>,
    /// Writable `--dir` mounts of the run, canonical, with their guest paths: never shown
    /// in a view (the run has them at their mount points).
    pub mounted: Vec<(PathBuf, String)>,
    /// Files never shown, by identity.
    pub kept: KeptFiles,
    /// The most files one view may hold.
    pub max_files: usize,
    /// The largest file copied when it cannot be linked; larger ones are left out.
    pub max_copy: u64,
    /// The most bytes one view may copy in all; past it the tree is refused.
    pub max_copied: u64,
}

/// Why a path is not shown.
enum Hidden<'a> {
    /// Outside the tree, or under a hidden component.
    NotInView,
    /// Under one of kvrun's own directories.
    Own(&'a Path),
    /// Under a writable `--dir` of the run, mounted at this guest path.
    Mounted(&'a Path, &'a str),
}

impl ViewRules {
    /// The rules with `excluded` directories (canonicalised; those that do not exist are
    /// dropped), at most 100,000 files, copies of at most 64 MiB each and 256 MiB in all.
    pub fn excluding(excluded: impl IntoIterator<Item = PathBuf>) -> ViewRules {
        ViewRules {
            excluded: excluded
                .into_iter()
                .filter_map(|dir| dir.canonicalize().ok())
                .collect(),
            mounted: Vec::new(),
            kept: KeptFiles::default(),
            max_files: 100_000,
            max_copy: 64 << 20,
            max_copied: 256 << 20,
        }
    }

    /// Whether the canonical `path` may be shown in the view of `root`: inside it, without
    /// a hidden component, not under kvrun's directories or a writable mount.
    fn admits<'a>(&'a self, root: &Path, path: &Path) -> std::result::Result<(), Hidden<'a>> {
        let inside = path.strip_prefix(root).map_err(|_| Hidden::NotInView)?;
        if !inside.components().all(|c| visible(c.as_os_str())) {
            return Err(Hidden::NotInView);
        }
        if let Some(own) = self.excluded.iter().find(|dir| path.starts_with(dir)) {
            return Err(Hidden::Own(own));
        }
        if let Some((dir, guest)) = self.mounted.iter().find(|(dir, _)| path.starts_with(dir)) {
            return Err(Hidden::Mounted(dir, guest));
        }
        Ok(())
    }
}

/// A private directory that mirrors the visible part of a tree; removed on drop.
#[derive(Debug)]
pub struct TreeView {
    dir: tempfile::TempDir,
    notes: Vec<String>,
    files: usize,
    copied: u64,
    /// Each file linked or copied so far, by identity: its path in the view.
    placed: HashMap<FileId, PathBuf>,
}

impl TreeView {
    /// Makes the view of `source` inside `parent` (a private directory of kvrun's).
    pub fn build(source: &Path, parent: &Path, rules: &ViewRules) -> Result<TreeView> {
        let root = source
            .canonicalize()
            .map_err(|e| Error::io(format!("could not open the directory {}", shown(source)), e))?;
        if !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a directory",
                shown(source)
            )));
        }
        if let Some(own) = rules.excluded.iter().find(|dir| root.starts_with(dir)) {
            return Err(Error::InvalidArgument(format!(
                "{} is inside kvrun's own directory {}, which a run never sees: move the script elsewhere",
                shown(source),
                shown(own)
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(format!("creating a view in {}", shown(parent)), e))?;
        let mut view = TreeView {
            dir,
            notes: Vec::new(),
            files: 0,
            copied: 0,
            placed: HashMap::new(),
        };
        let mut links_left_out = 0usize;
        let mut stack = vec![(root.clone(), view.dir.path().to_path_buf())];
        while let Some((from, to)) = stack.pop() {
            let entries = std::fs::read_dir(&from)
                .map_err(|e| Error::io(format!("reading {}", shown(&from)), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(format!("reading {}", shown(&from)), e))?;
                let name = entry.file_name();
                if !visible(&name) {
                    continue;
                }
                let path = entry.path();
                let target = to.join(&name);
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io(format!("reading {}", shown(&path)), e))?;
                if kind.is_dir() {
                    match rules.admits(&root, &path) {
                        Ok(()) => {
                            std::fs::create_dir(&target).map_err(|e| {
                                Error::io(format!("creating {}", shown(&target)), e)
                            })?;
                            stack.push((path, target));
                        }
                        Err(hidden) => view.note_hidden(&path, hidden),
                    }
                } else if kind.is_file() {
                    view.add_file(&root, &path, &target, rules, false)?;
                } else if kind.is_symlink() {
                    let shown_file = match path.canonicalize() {
                        Ok(file) if file.is_file() => {
                            view.add_file(&root, &file, &target, rules, true)?
                        }
                        _ => false,
                    };
                    links_left_out += usize::from(!shown_file);
                }
            }
        }
        if links_left_out > 0 {
            view.notes.push(format!(
                "left out {links_left_out} symbolic link(s) under {} that point at a directory, out of it, or at a file a run never sees",
                shown(source)
            ));
        }
        Ok(view)
    }

    /// The view's directory, to mount read-only.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// One line for each thing left out that the user may miss.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn note_hidden(&mut self, path: &Path, hidden: Hidden<'_>) {
        match hidden {
            Hidden::NotInView => {}
            Hidden::Own(own) => self.notes.push(format!(
                "left out {}: kvrun's own directory {} is never visible to a run",
                shown(path),
                shown(own)
            )),
            Hidden::Mounted(dir, guest) => self.notes.push(format!(
                "left out {}: the run has it writable at {guest} (--dir {})",
                shown(path),
                shown(dir)
            )),
        }
    }

    /// Puts the file at `from` (canonical for a link's target) into the view at `to`, if the
    /// rules admit the file as opened; returns whether it is shown. A file kvrun keeps is
    /// left out with a note, unless it was reached through a link (counted with the links).
    fn add_file(
        &mut self,
        root: &Path,
        from: &Path,
        to: &Path,
        rules: &ViewRules,
        through_link: bool,
    ) -> Result<bool> {
        let Some((file, id, size)) = open_in_view(root, from, rules) else {
            return Ok(false);
        };
        if let Some(kept) = rules.kept.find(id) {
            if !through_link {
                self.notes.push(format!(
                    "left out {}: it is {}, which a run never sees",
                    shown(from),
                    kept.describe()
                ));
            }
            return Ok(false);
        }
        self.files += 1;
        if self.files > rules.max_files {
            return Err(Error::InvalidArgument(format!(
                "{} holds more than {} files, and a Python run sees its whole directory tree: put the script in a directory of its own",
                shown(root),
                rules.max_files
            )));
        }
        let linked = match self.placed.get(&id) {
            Some(placed) => std::fs::hard_link(placed, to).is_ok(),
            None => link_open_file(&file, to).is_ok(),
        };
        if linked {
            self.placed.entry(id).or_insert_with(|| to.to_path_buf());
            return Ok(true);
        }
        self.copy(file, size, from, root, to, rules)?;
        self.placed.entry(id).or_insert_with(|| to.to_path_buf());
        Ok(true)
    }

    /// Copies the open `file` to `to`, within the view's copy budget.
    fn copy(
        &mut self,
        mut file: File,
        size: u64,
        from: &Path,
        root: &Path,
        to: &Path,
        rules: &ViewRules,
    ) -> Result<()> {
        if size > rules.max_copy {
            self.notes.push(format!(
                "left out {} ({} MiB): it could not be linked into the run's view and is too large to copy; mount its directory with --dir",
                shown(from),
                size >> 20
            ));
            return Ok(());
        }
        self.copied += size;
        if self.copied > rules.max_copied {
            return Err(Error::InvalidArgument(format!(
                "{} would need more than {} MiB copied into the run's view (its files cannot be linked from where kvrun keeps views): move data out of the script's tree and mount it with --dir",
                shown(root),
                rules.max_copied >> 20
            )));
        }
        let mut out =
            File::create(to).map_err(|e| Error::io(format!("creating {}", shown(to)), e))?;
        std::io::copy(&mut (&mut file).take(size), &mut out)
            .map(drop)
            .map_err(|e| Error::io(format!("copying {}", shown(from)), e))
    }
}

/// Opens `path` without following a link and checks the file as opened: a regular file,
/// whose path as the kernel names it the rules admit. Returns it with its identity and size.
fn open_in_view(root: &Path, path: &Path, rules: &ViewRules) -> Option<(File, FileId, u64)> {
    rules.admits(root, path).ok()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let metadata = file.metadata().ok().filter(|m| m.is_file())?;
    if let Some(opened) = opened_path(&file) {
        rules.admits(root, &opened).ok()?;
    }
    Some((file, FileId::of(&metadata), metadata.len()))
}

/// The path the kernel gives for an open file, where it tells one.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_: &File) -> Option<PathBuf> {
    None
}

/// Hard-links the open `file` (not whatever its path names now) at `to`.
#[cfg(target_os = "linux")]
fn link_open_file(file: &File, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_open_file(_: &File, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Whether an entry with this name is shown: not hidden, not bytecode the host wrote.
fn visible(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.') && name != "__pycache__"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                    found.push(format!("{relative}/"));
                } else {
                    found.push(relative);
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_view_shows_visible_files_and_links_inside_the_tree_only() {
        let home = tempfile::tempdir().unwrap();
        let job = home.path().join("job");
        write(&job.join("train.py"), "print(1)");
        write(&job.join("pkg/util.py"), "X = 1");
        write(&job.join("data/rows.csv"), "x,y");
        write(&job.join(".git/config"), "[core]");
        write(&job.join(".env"), "TOKEN=1");
        write(&job.join("pkg/.secret"), "s");
        write(&job.join("__pycache__/train.cpython-311.pyc"), "");
        write(&home.path().join(".ssh/id_ed25519"), "KEY");
        symlink(home.path().join(".ssh/id_ed25519"), job.join("key")).unwrap();
        symlink(job.join(".env"), job.join("env-link")).unwrap();
        symlink(job.join("pkg/util.py"), job.join("util_link.py")).unwrap();
        symlink(home.path(), job.join("up")).unwrap();
        let parent = tempfile::tempdir().unwrap();
        let view = TreeView::build(&job, parent.path(), &ViewRules::excluding([])).unwrap();
        assert_eq!(
            listing(view.path()),
            [
                "data/",
                "data/rows.csv",
                "pkg/",
                "pkg/util.py",
                "train.py",
                "util_link.py"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(view.path().join("util_link.py")).unwrap(),
            "X = 1"
        );
        assert_eq!(view.notes().len(), 1, "{:?}", view.notes());
        assert!(view.notes()[0].contains("left out 3 symbolic link(s)"));
        let path = view.path().to_path_buf();
        drop(view);
        assert!(!path.exists(), "the view is removed when dropped");
        assert_eq!(
            std::fs::read_to_string(job.join("train.py")).unwrap(),
            "print(1)"
        );
    }

    #[test]
    fn kvrun_directories_are_left_out_or_refused() {
        let top = tempfile::tempdir().unwrap();
        let job = top.path().join("job");
        write(&job.join("train.py"), "print(1)");
        write(&job.join("kvdata/vault.db"), "db");
        write(&job.join("kvdata/token"), "t");
        let parent = tempfile::tempdir().unwrap();
        let rules = ViewRules::excluding([job.join("kvdata"), top.path().join("absent")]);
        let view = TreeView::build(&job, parent.path(), &rules).unwrap();
        assert_eq!(listing(view.path()), ["train.py"]);
        assert!(
            view.notes()[0].contains("kvrun's own directory"),
            "{:?}",
            view.notes()
        );
        let inside = TreeView::build(&job.join("kvdata"), parent.path(), &rules).unwrap_err();
        assert!(inside.to_string().contains("never sees"), "{inside}");
    }

    #[test]
    fn a_tree_over_the_file_limit_is_refused_with_advice() {
        let job = tempfile::tempdir().unwrap();
        for i in 0..5 {
            write(&job.path().join(format!("m{i}.py")), "");
        }
        let parent = tempfile::tempdir().unwrap();
        let rules = ViewRules {
            max_files: 4,
            ..ViewRules::excluding([])
        };
        let error = TreeView::build(job.path(), parent.path(), &rules).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("put the script in a directory of its own"),
            "{error}"
        );
    }

    /// The review's reproduction: with the data directory inside the script's tree, a link
    /// committed in the tree (`committed-link.txt -> kvdata/token`) and one a run wrote into
    /// a writable mount inside the tree (`out/notes.txt -> ../kvdata/vault.db`) showed kvrun's
    /// files; a hard link to a kept file elsewhere is caught by its inode.
    #[test]
    fn no_link_or_hard_link_shows_kvruns_files() {
        let top = tempfile::tempdir().unwrap();
        let job = top.path().join("job");
        write(&job.join("train.py"), "print(1)");
        write(&job.join("kvdata/vault.db"), "db");
        write(&job.join("kvdata/token"), "t");
        write(&top.path().join("audit.log"), "{}");
        symlink("kvdata/token", job.join("committed-link.txt")).unwrap();
        std::fs::create_dir_all(job.join("out")).unwrap();
        symlink("../kvdata/vault.db", job.join("out/notes.txt")).unwrap();
        std::fs::hard_link(
            top.path().join("audit.log"),
            job.join("evil\n\u{1b}[2J.log"),
        )
        .unwrap();
        let mut rules = ViewRules::excluding([job.join("kvdata")]);
        rules.kept.add(crate::kept_files::KeptFile::at(
            &top.path().join("audit.log"),
            "the run's audit file",
        ));
        let parent = tempfile::tempdir().unwrap();
        let view = TreeView::build(&job, parent.path(), &rules).unwrap();
        assert_eq!(listing(view.path()), ["out/", "train.py"]);
        let notes = view.notes().join("\n");
        assert!(notes.contains("left out 2 symbolic link(s)"), "{notes}");
        assert!(
            notes.contains("evil\\n\\u{1b}[2J.log: it is the run's audit file"),
            "{notes}"
        );
        assert!(
            !notes.chars().any(|c| c.is_control() && c != '\n'),
            "{notes:?}"
        );
        assert_eq!(view.notes().len(), 3, "{notes}");
    }

    #[test]
    fn a_writable_mount_inside_the_tree_is_left_out_with_a_line() {
        let job = tempfile::tempdir().unwrap();
        write(&job.path().join("train.py"), "");
        write(&job.path().join("out/result.txt"), "r");
        symlink("out/result.txt", job.path().join("result-link.txt")).unwrap();
        let mut rules = ViewRules::excluding([]);
        rules.mounted = vec![(
            job.path().join("out").canonicalize().unwrap(),
            "/out".to_string(),
        )];
        let parent = tempfile::tempdir().unwrap();
        let view = TreeView::build(job.path(), parent.path(), &rules).unwrap();
        assert_eq!(listing(view.path()), ["train.py"]);
        assert!(
            view.notes()[0].contains("the run has it writable at /out"),
            "{:?}",
            view.notes()
        );
    }

    /// An entry that is a link when it is opened is not followed, whatever `read_dir` said.
    #[test]
    fn a_file_is_checked_as_opened() {
        let job = tempfile::tempdir().unwrap();
        let root = job.path().canonicalize().unwrap();
        write(&root.join("a.py"), "");
        symlink("a.py", root.join("b.py")).unwrap();
        let rules = ViewRules::excluding([]);
        assert!(open_in_view(&root, &root.join("a.py"), &rules).is_some());
        assert!(open_in_view(&root, &root.join("b.py"), &rules).is_none());
    }

    /// The review's reproduction: 40 links to one file, the tree on another file system than
    /// the view (so files are copied), made 40 copies. Now one copy, linked 40 times; and the
    /// bytes copied are capped.
    #[test]
    fn copies_are_made_once_per_file_and_bounded() {
        let shm = Path::new("/dev/shm");
        let parent = tempfile::tempdir().unwrap();
        let device = |p: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
        if !shm.is_dir() || device(shm) == device(parent.path()) {
            eprintln!("skipped: no /dev/shm on another file system than the temporary directory");
            return;
        }
        let job = tempfile::tempdir_in(shm).unwrap();
        let data = vec![7u8; 1 << 20];
        std::fs::write(job.path().join("data.bin"), &data).unwrap();
        for i in 0..40 {
            symlink("data.bin", job.path().join(format!("link{i}.bin"))).unwrap();
        }
        let rules = ViewRules::excluding([]);
        let view = TreeView::build(job.path(), parent.path(), &rules).unwrap();
        assert_eq!(view.copied, 1 << 20, "one copy");
        let copy = std::fs::metadata(view.path().join("link7.bin")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&copy), 41);
        assert_eq!(std::fs::read(view.path().join("link39.bin")).unwrap(), data);
        drop(view);
        std::fs::write(job.path().join("more.bin"), vec![1u8; 1 << 20]).unwrap();
        std::fs::write(job.path().join("most.bin"), vec![2u8; 1 << 20]).unwrap();
        let rules = ViewRules {
            max_copied: 2 << 20,
            ..ViewRules::excluding([])
        };
        let error = TreeView::build(job.path(), parent.path(), &rules).unwrap_err();
        assert!(
            error.to_string().contains("more than 2 MiB copied"),
            "{error}"
        );
        assert!(error.to_string().contains("--dir"), "{error}");
    }
}
