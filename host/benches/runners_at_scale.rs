//! Many runs reading the same secrets at once, with a sandbox's read cache off and on, in one
//! run: `cargo bench -p kvrun --bench runners_at_scale`.
//!
//! 500 runs of the hostile fixture start together in one [`Sandbox`], each reading the same 3
//! secrets (`ask a b c`, three `get-secret` calls). Key Vault throttles per vault (a few
//! thousand requests per ten seconds), so what a runner fleet costs the vault is the number of
//! requests: printed for each mode, with run start (launch to the run's first output, which
//! comes after its first read) p50 and p99, and the wall time until all 500 ended.

mod common;

use common::chart::{Bar, Chart};
use common::FirstWrite;
use kvrun::audit::AuditLog;
use kvrun::sandbox::{RunIo, RunOptions, Sandbox};
use kvrun::{Client, Runtime, RuntimeOptions, SetOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

static TRAINING: &[u8] = include_bytes!(env!("KVRUN_HOSTILE_TRAINING_WASM"));
const RUNS: usize = 500;
const NAMES: [&str; 3] = ["db-password", "api-token", "tracker-password"];

struct Outcome {
    requests: u64,
    p50: Duration,
    p99: Duration,
    wall: Duration,
}

async fn fleet(sandbox: &Sandbox) -> Outcome {
    let component = sandbox.prepare(TRAINING).unwrap();
    let started = Instant::now();
    let runs = (0..RUNS).map(|_| {
        let first = FirstWrite::default();
        let options = RunOptions {
            args: std::iter::once("ask")
                .chain(NAMES)
                .map(String::from)
                .collect(),
            secrets: NAMES.map(String::from).to_vec(),
            max_memory: 32 << 20,
            timeout: Duration::from_secs(300),
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
        let component = &component;
        async move {
            let exit = sandbox.run(component, options, io).await.unwrap();
            assert_eq!(exit.status(), 0);
            let first = first.0.lock().unwrap().expect("the run printed");
            first - started
        }
    });
    let mut starts = futures::future::join_all(runs).await;
    let wall = started.elapsed();
    starts.sort();
    Outcome {
        requests: sandbox.vault_requests(),
        p50: starts[starts.len() / 2],
        p99: starts[starts.len() * 99 / 100],
        wall,
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        max_instances: 2 * RUNS as u32 + 8,
        max_memory: 32 << 20,
        allocation: None,
    })
    .unwrap();
    let vault = common::spawn_vault(dir.path().join("vault")).options;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (off, on) = rt.block_on(async {
        let mut client = Client::new(&runtime, vault.clone()).await.unwrap();
        for name in NAMES {
            client
                .set_secret(
                    name,
                    &format!("{name}-value").into(),
                    &SetOptions {
                        content_type: None,
                        tags: Vec::new(),
                    },
                )
                .await
                .unwrap();
        }
        let off = fleet(&Sandbox::new(&runtime, vault.clone()).unwrap()).await;
        let cached = Sandbox::new(&runtime, vault.clone())
            .unwrap()
            .with_read_cache(Duration::from_secs(60));
        let on = fleet(&cached).await;
        (off, on)
    });
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "{RUNS} concurrent runs in one sandbox, each reading the same {} secrets",
        NAMES.len()
    );
    println!();
    println!(
        "| read cache | vault requests | run start p50 | run start p99 | all {RUNS} ended after |"
    );
    println!("|---|---|---|---|---|");
    for (mode, o) in [("off", &off), ("on (ttl 60 s)", &on)] {
        println!(
            "| {mode} | {} | {} | {} | {} |",
            o.requests,
            ms(o.p50),
            ms(o.p99),
            ms(o.wall)
        );
    }
    Chart {
        title: format!("{RUNS} concurrent runs reading the same 3 secrets: vault requests (lower is better)"),
        unit: "requests",
        note: format!(
            "cargo bench -p kvrun --bench runners_at_scale; run start p99 {} without the cache, {} with it",
            ms(off.p99),
            ms(on.p99)
        ),
        bars: vec![
            Bar::other("read cache off", off.requests as f64),
            Bar::ours("read cache on (ttl 60 s)", on.requests as f64),
        ],
    }
    .write("runners_at_scale");
}
