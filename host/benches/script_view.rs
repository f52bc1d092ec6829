//! Building a script's view: `cargo bench -p kvrun --bench script_view`.
//!
//! The view of `examples/` (the example scripts, their data and the Rust example's sources:
//! the tree `kvrun run examples/train-py/train.py` would show if the script lay at its top)
//! made in a temporary directory on the same file system (hard links) and removed again,
//! 200 times; the median and the 10th and 90th percentiles.

use kvrun::python::{TreeView, ViewRules};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let parent = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory for views");
    let rules = ViewRules::excluding([]);
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            let view = TreeView::build(&tree, parent.path(), &rules).expect("the view builds");
            drop(view);
            started.elapsed()
        })
        .collect();
    times.sort();
    let files = count_files(&tree);
    println!("view of examples/ ({files} files), build and remove, 200 times");
    println!(
        "| median | p10 | p90 |\n|---|---|---|\n| {:.2} ms | {:.2} ms | {:.2} ms |",
        times[100].as_secs_f64() * 1e3,
        times[20].as_secs_f64() * 1e3,
        times[180].as_secs_f64() * 1e3
    );
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => count_files(&entry.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}
