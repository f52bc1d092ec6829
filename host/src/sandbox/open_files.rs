//! How many files a run may hold open, and the process's budget for all runs together.
//!
//! Every file or directory a run opens (`open-at`) and every directory listing it reads
//! (`read-directory`) holds one of the host's descriptors until the run drops it. Without a
//! bound, a run could open files until the process's limit and starve everything else that
//! needs a descriptor: its own vault client's connection to the vault, and, in a runner that
//! keeps one [`crate::sandbox::Sandbox`], every other run (the review's run made the next
//! `get_secret` fail with "connection refused").
//!
//! So each run has a limit ([`crate::sandbox::RunOptions::max_open_files`], 256 by default),
//! and all runs of the process share a budget of half the process's `RLIMIT_NOFILE` (whose
//! soft limit is raised to the hard one when the first sandbox is made), which leaves the
//! other half to connections and kvrun's own files. An open past either bound fails with the
//! WASI error `quota` (`EDQUOT`, errno 19 under WASI, Python's `errno.EDQUOT`) and the run goes
//! on. A run's `wasi:http` requests are not counted here: they go through the sandbox's
//! shared, pooled connections, and only to the origins the run was allowed.
//!
//! The host functions of `wasi:filesystem` stay wasmtime-wasi's; this module wraps the two
//! that open (`open-at`, `read-directory`) and the destructors of the two resources they make,
//! so that the count goes down again whenever the run drops one.

use super::RunState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, DescriptorFlags, DirectoryEntryStream, ErrorCode, Host, HostDescriptor,
    HostDirectoryEntryStream, OpenFlags, PathFlags,
};

/// The most files a run holds open by default.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;

/// The interface whose functions are wrapped, at the version the training world imports.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// The open files of one run, within its own limit and the process's budget: the resources
/// (by their index in the run's table) that its opens made and it has not dropped yet. The
/// directories kvrun preopens for it are not among them.
pub(crate) struct OpenFiles {
    limit: usize,
    open: std::collections::HashSet<u32>,
    process: Arc<ProcessBudget>,
}

impl OpenFiles {
    /// A run that may hold `limit` files open, within `process`'s budget.
    pub(super) fn new(limit: usize, process: Arc<ProcessBudget>) -> OpenFiles {
        OpenFiles {
            limit,
            open: std::collections::HashSet::new(),
            process,
        }
    }

    /// Whether both budgets have a file left (taken from the process's until [`Self::opened`]
    /// or [`Self::failed`] says what became of it).
    pub(crate) fn reserve(&mut self) -> bool {
        self.open.len() < self.limit && self.process.take()
    }

    /// The reserved file is the resource `rep`.
    pub(crate) fn opened(&mut self, rep: u32) {
        if !self.open.insert(rep) {
            self.process.give_back(1);
        }
    }

    /// The reserved file was not opened.
    pub(crate) fn failed(&mut self) {
        self.process.give_back(1);
    }

    /// The resource `rep` was dropped: if an open made it, its file is given back.
    pub(crate) fn dropped(&mut self, rep: u32) {
        if self.open.remove(&rep) {
            self.process.give_back(1);
        }
    }
}

impl Drop for OpenFiles {
    fn drop(&mut self) {
        self.process.give_back(self.open.len());
    }
}

/// The files all runs of the process may hold open together.
#[derive(Debug)]
pub struct ProcessBudget {
    limit: usize,
    open: AtomicUsize,
}

impl ProcessBudget {
    /// A budget of `limit` files.
    pub fn new(limit: usize) -> ProcessBudget {
        ProcessBudget {
            limit,
            open: AtomicUsize::new(0),
        }
    }

    /// The budget of this process: half its `RLIMIT_NOFILE`, after raising the soft limit to
    /// the hard one (done once).
    pub fn of_this_process() -> Arc<ProcessBudget> {
        static BUDGET: std::sync::OnceLock<Arc<ProcessBudget>> = std::sync::OnceLock::new();
        BUDGET
            .get_or_init(|| Arc::new(ProcessBudget::new(raise_open_file_limit() / 2)))
            .clone()
    }

    fn take(&self) -> bool {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok()
    }

    fn give_back(&self, files: usize) {
        self.open.fetch_sub(files, Ordering::SeqCst);
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit; returns the soft limit now
/// in force (1,024 if it cannot be read).
fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Wraps the filesystem functions that open, and the destructors of what they make, in
/// `linker` (which already has wasmtime-wasi's), so that every run's [`OpenFiles`] counts.
pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.resource(
        "descriptor",
        ResourceType::host::<Descriptor>(),
        |mut store, rep| {
            let state = store.data_mut();
            state.open_files.dropped(rep);
            HostDescriptor::drop(&mut state.filesystem(), Resource::new_own(rep))
        },
    )?;
    types.resource(
        "directory-entry-stream",
        ResourceType::host::<DirectoryEntryStream>(),
        |mut store, rep| {
            let state = store.data_mut();
            state.open_files.dropped(rep);
            HostDirectoryEntryStream::drop(&mut state.filesystem(), Resource::new_own(rep))
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if !state.open_files.reserve() {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let mut view = state.filesystem();
                let opened = view.open_at(fd, path_flags, path, open_flags, flags).await;
                answer(state, opened)
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.read-directory",
        |mut store, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let state = store.data_mut();
                if !state.open_files.reserve() {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let opened = state.filesystem().read_directory(fd).await;
                answer(state, opened)
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The guest's answer to an open: the resource (counted as open), or the error code (the
/// reserved file given back).
fn answer<T: 'static>(
    state: &mut RunState,
    opened: wasmtime_wasi::p2::FsResult<Resource<T>>,
) -> wasmtime::Result<(Result<Resource<T>, ErrorCode>,)> {
    match opened {
        Ok(resource) => {
            state.open_files.opened(resource.rep());
            Ok((Ok(resource),))
        }
        Err(e) => {
            state.open_files.failed();
            Ok((Err(state.filesystem().convert_error_code(e)?),))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stays_within_its_limit_and_the_process_budget() {
        let process = Arc::new(ProcessBudget::new(5));
        let mut first = OpenFiles::new(3, process.clone());
        let mut second = OpenFiles::new(3, process.clone());
        let open = |files: &mut OpenFiles, rep: u32| {
            let reserved = files.reserve();
            if reserved {
                files.opened(rep);
            }
            reserved
        };
        assert!((1..=3).all(|rep| open(&mut first, rep)));
        assert!(!open(&mut first, 4), "the run's own limit");
        assert!(open(&mut second, 1) && open(&mut second, 2));
        assert!(!open(&mut second, 3), "the process's budget");
        first.dropped(2);
        first.dropped(99);
        assert!(open(&mut second, 3), "a file given back is there to take");
        assert!(!second.reserve(), "its own limit again");
        drop(second);
        assert_eq!(
            process.open.load(Ordering::SeqCst),
            2,
            "a run's files return when it ends; dropping what no open made gives nothing back"
        );
    }

    #[test]
    fn the_process_budget_is_half_the_raised_limit() {
        let budget = ProcessBudget::of_this_process();
        assert!(budget.limit >= 512, "{}", budget.limit);
    }
}
