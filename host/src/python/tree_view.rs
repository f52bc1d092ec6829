//! The read-only view of a user's directory tree that a Python run sees.
//!
//! A run is given its script's directory (and each `--python-path` and `--site-packages`
//! directory) as a view: a private directory that kvrun fills with hard links to the tree's
//! visible files (a copy where a link is impossible, such as across file systems) and mounts
//! read-only. The view holds:
//!
//! - regular files and directories whose names do not begin with `.` (so no `.git`, `.ssh`,
//!   `.env`, `.local`, `.venv`, ...), and no `__pycache__` (bytecode the host's Python wrote);
//! - a symbolic link only when it points at a visible regular file inside the same tree (as
//!   that file); links to directories or out of the tree are left out;
//! - never one of kvrun's own directories (its data or cache directory): those are left out
//!   with a note, and a tree inside one is refused.
//!
//! What is left out that the user may miss (kvrun's directories, links, files too large to
//! copy) is reported as notes, one line each. The view is removed when it is dropped.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What a view may hold and where it is made.
#[derive(Clone, Debug)]
pub struct ViewRules {
    /// Directories never shown (kvrun's data and cache directories), canonical.
    pub excluded: Vec<PathBuf>,
    /// The most files one view may hold.
    pub max_files: usize,
    /// The largest file copied when it cannot be linked; larger ones are left out.
    pub max_copy: u64,
}

impl ViewRules {
    /// The rules with `excluded` directories (canonicalised; those that do not exist are
    /// dropped), at most 100,000 files, and copies of at most 64 MiB.
    pub fn excluding(excluded: impl IntoIterator<Item = PathBuf>) -> ViewRules {
        ViewRules {
            excluded: excluded
                .into_iter()
                .filter_map(|dir| dir.canonicalize().ok())
                .collect(),
            max_files: 100_000,
            max_copy: 64 << 20,
        }
    }

    fn excluded(&self, canonical: &Path) -> Option<&Path> {
        self.excluded
            .iter()
            .find(|dir| canonical.starts_with(dir))
            .map(PathBuf::as_path)
    }
}

/// A private directory that mirrors the visible part of a tree; removed on drop.
#[derive(Debug)]
pub struct TreeView {
    dir: tempfile::TempDir,
    notes: Vec<String>,
    files: usize,
}

impl TreeView {
    /// Makes the view of `source` inside `parent` (a private directory of kvrun's).
    pub fn build(source: &Path, parent: &Path, rules: &ViewRules) -> Result<TreeView> {
        let root = source.canonicalize().map_err(|e| {
            Error::io(
                format!("could not open the directory {}", source.display()),
                e,
            )
        })?;
        if !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a directory",
                source.display()
            )));
        }
        if let Some(own) = rules.excluded(&root) {
            return Err(Error::InvalidArgument(format!(
                "{} is inside kvrun's own directory {}, which a run never sees: move the script elsewhere",
                source.display(),
                own.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(format!("creating a view in {}", parent.display()), e))?;
        let mut view = TreeView {
            dir,
            notes: Vec::new(),
            files: 0,
        };
        let mut links_left_out = 0usize;
        let mut stack = vec![(root.clone(), view.dir.path().to_path_buf())];
        while let Some((from, to)) = stack.pop() {
            let entries = std::fs::read_dir(&from)
                .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
                let name = entry.file_name();
                if !visible(&name) {
                    continue;
                }
                let path = entry.path();
                let target = to.join(&name);
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                if kind.is_dir() {
                    if let Some(own) = rules.excluded(&path) {
                        view.notes.push(format!(
                            "left out {}: kvrun's own directory {} is never visible to a run",
                            path.display(),
                            own.display()
                        ));
                        continue;
                    }
                    std::fs::create_dir(&target)
                        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
                    stack.push((path, target));
                } else if kind.is_file() {
                    view.add_file(&path, &target, rules)?;
                } else if kind.is_symlink() {
                    match linked_file(&root, &path) {
                        Some(file) => view.add_file(&file, &target, rules)?,
                        None => links_left_out += 1,
                    }
                }
            }
        }
        if links_left_out > 0 {
            view.notes.push(format!(
                "left out {links_left_out} symbolic link(s) under {} that point at a directory or out of it",
                source.display()
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

    fn add_file(&mut self, from: &Path, to: &Path, rules: &ViewRules) -> Result<()> {
        self.files += 1;
        if self.files > rules.max_files {
            return Err(Error::InvalidArgument(format!(
                "{} holds more than {} files, and a Python run sees its whole directory tree: put the script in a directory of its own",
                from.parent().unwrap_or(from).display(),
                rules.max_files
            )));
        }
        if std::fs::hard_link(from, to).is_ok() {
            return Ok(());
        }
        let size = std::fs::metadata(from)
            .map_err(|e| Error::io(format!("reading {}", from.display()), e))?
            .len();
        if size > rules.max_copy {
            self.notes.push(format!(
                "left out {} ({} MiB): it could not be linked into the run's view and is too large to copy; mount its directory with --dir",
                from.display(),
                size >> 20
            ));
            return Ok(());
        }
        std::fs::copy(from, to)
            .map(drop)
            .map_err(|e| Error::io(format!("copying {}", from.display()), e))
    }
}

/// Whether an entry with this name is shown: not hidden, not bytecode the host wrote.
fn visible(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.') && name != "__pycache__"
}

/// The file a symbolic link at `link` stands for, if it is a visible regular file in `root`.
fn linked_file(root: &Path, link: &Path) -> Option<PathBuf> {
    let target = link.canonicalize().ok()?;
    let inside = target.strip_prefix(root).ok()?;
    let shown = inside.components().all(|c| visible(c.as_os_str()));
    (shown && target.is_file()).then_some(target)
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
}
