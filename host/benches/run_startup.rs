//! Start-up cost of `kvrun run`, in one run: `cargo bench -p kvrun --bench run_startup`.
//!
//! - time from calling the sandbox to the training component's first output (components
//!   cached), which includes instantiating the vault client for the run;
//! - 100 sequential runs of a trivial component, each set up from scratch as `kvrun run`
//!   does (`sandbox::run`), and through one shared [`Sandbox`] and [`TrainingComponent`] as a
//!   runner would (linker, `InstancePre` and vault connections reused);
//! - N concurrent runs (1, 8, 32) that each print and then wait: time until all have
//!   printed, and resident memory, giving the cost of each additional run.
//!
//! The vault runs on its own thread and runtime; the runs share one current-thread
//! runtime and one engine, as in a runner process.

mod common;

use common::chart::{Bar, Chart};
use common::FirstWrite;
use kvrun::audit::AuditLog;
use kvrun::sandbox::{RunIo, RunOptions, Sandbox, TrainingComponent};
use kvrun::{ClientOptions, Runtime, RuntimeOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

static TRAINING: &[u8] = include_bytes!(env!("KVRUN_HOSTILE_TRAINING_WASM"));

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// How a run is set up: from scratch, or in a shared sandbox with a prepared component.
#[derive(Clone, Copy)]
enum Setup<'a> {
    Fresh(&'a Runtime, &'a ClientOptions),
    Shared(&'a Sandbox, &'a TrainingComponent),
}

async fn one_run(setup: Setup<'_>, args: &[&str]) -> Instant {
    let first = FirstWrite::default();
    let options = RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        secrets: vec!["db-password".into()],
        timeout: Duration::from_secs(60),
        ..RunOptions::default()
    };
    let io = RunIo {
        stdout: Box::new(first.clone()),
        stderr: Box::new(std::io::sink()),
        audit: Arc::new(AuditLog::to_writer(
            Box::new(std::io::sink()),
            "bench",
            Arc::new(kvrun::audit::AuditKey::ephemeral()),
        )),
        output_files: Default::default(),
    };
    match setup {
        Setup::Fresh(runtime, vault) => {
            kvrun::sandbox::run(runtime, TRAINING, vault.clone(), options, io).await
        }
        Setup::Shared(sandbox, component) => sandbox.run(component, options, io).await,
    }
    .unwrap();
    let first = first.0.lock().unwrap().expect("the run printed");
    first
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    })
    .unwrap();
    runtime.load_component("training", TRAINING).unwrap();

    let vault = common::spawn_vault(dir.path().join("vault")).options;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fresh = Setup::Fresh(&runtime, &vault);
        let sandbox = Sandbox::new(&runtime, vault.clone()).unwrap();
        let component = sandbox.prepare(TRAINING).unwrap();
        let shared = Setup::Shared(&sandbox, &component);
        for _ in 0..5 {
            one_run(fresh, &["env"]).await;
            one_run(shared, &["env"]).await;
        }
        let mut first_output = Vec::new();
        let mut first_output_shared = Vec::new();
        for _ in 0..30 {
            let start = Instant::now();
            let first = one_run(fresh, &["env"]).await;
            first_output.push(first - start);
            let start = Instant::now();
            let first = one_run(shared, &["env"]).await;
            first_output_shared.push(first - start);
        }
        first_output.sort();
        first_output_shared.sort();

        let start = Instant::now();
        for _ in 0..100 {
            one_run(fresh, &["env"]).await;
        }
        let sequential = start.elapsed();
        let start = Instant::now();
        for _ in 0..100 {
            one_run(shared, &["env"]).await;
        }
        let sequential_shared = start.elapsed();

        let mut concurrent = Vec::new();
        for n in [1usize, 8, 32] {
            let before = rss_bytes();
            let start = Instant::now();
            let runs = (0..n).map(|_| one_run(shared, &["hold", "1500"]));
            let sampler = async {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                rss_bytes()
            };
            let (firsts, peak) = tokio::join!(futures::future::join_all(runs), sampler);
            let all_started = firsts.iter().max().unwrap().duration_since(start);
            concurrent.push((n, all_started, peak.saturating_sub(before), peak));
        }

        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!("kvrun run start-up benchmark");
        println!();
        println!("| measurement | result |");
        println!("|---|---|");
        let median_p90 = |d: &[Duration]| format!("{} (p90 {})", ms(d[d.len() / 2]), ms(d[d.len() * 9 / 10]));
        println!("| start to first output, cached components, set up from scratch (median of {}) | {} |", first_output.len(), median_p90(&first_output));
        println!("| start to first output, shared sandbox and prepared component (median of {}) | {} |", first_output_shared.len(), median_p90(&first_output_shared));
        println!("| 100 sequential runs of a trivial component, set up from scratch | {} total, {} per run |", ms(sequential), ms(sequential / 100));
        println!("| 100 sequential runs of a trivial component, shared sandbox | {} total, {} per run |", ms(sequential_shared), ms(sequential_shared / 100));
        for (n, started, grown, peak) in &concurrent {
            println!("| {n} concurrent runs: all printed after | {} (RSS +{:.1} MiB during the runs, {:.1} MiB total) |", ms(*started), *grown as f64 / 1048576.0, *peak as f64 / 1048576.0);
        }
        let (n1, _, g1, _) = concurrent[0];
        let (nn, _, gn, _) = concurrent[concurrent.len() - 1];
        println!("| resident memory per additional concurrent run | {:.2} MiB |", (gn as f64 - g1 as f64) / (nn - n1) as f64 / 1048576.0);
        let median_ms = |d: &[Duration]| d[d.len() / 2].as_secs_f64() * 1e3;
        Chart {
            title: "kvrun run: start to the training component's first output (median)".into(),
            unit: "ms",
            note: "cargo bench -p kvrun --bench run_startup; components cached, vault client included".into(),
            bars: vec![
                Bar::ours("set up from scratch (kvrun run)", median_ms(&first_output)),
                Bar::ours("shared sandbox, prepared component", median_ms(&first_output_shared)),
            ],
        }
        .write("run_startup");
    });
}
