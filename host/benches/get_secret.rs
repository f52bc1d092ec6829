//! Side-by-side latency of the vault client component, a native Rust client and the official
//! Python and JS SDKs, against the same local vault, in one run.
//! `cargo bench -p kvrun --bench get_secret`.
//!
//! Measures:
//! - warm `get-secret` through the component vs a native hyper + rustls client with the same
//!   pooled TLS settings doing the same request (and parsing the same JSON), and vs
//!   `SecretClient.get_secret` of `azure-keyvault-secrets` and `getSecret` of
//!   `@azure/keyvault-secrets` (each timed inside its own process, from the copies that
//!   `tests/compat/run` installs under `target/compat`; skipped, with a note, when absent);
//! - `get-secrets` of 100 names (one component call, concurrent requests) vs 100 sequential
//!   `get-secret` calls and vs 100 native GETs at the component's concurrency;
//! - both again in the same component whose requests the host answers at once from memory
//!   (no network): the component's own cost, the floor of the component path;
//! - the component's size, and its cold (compile) and warm (cached artifact) load times.
//!
//! With `KVRUN_BENCH_PROFILE=N` it only makes N warm component gets (to run under a
//! profiler) and prints nothing.
//!
//! The vault runs on its own thread and runtime, as a separate server would; the clients run
//! on a current-thread runtime, as the command line does. Blocks of each client alternate,
//! so drift on the machine hits both alike.

mod common;

use bytes::Bytes;
use common::chart::{Bar, Chart};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use kvrun::{Client, NewSecret, Runtime, RuntimeOptions, SetOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const PER_ROUND: usize = 400;
const BATCH_ROUNDS: usize = 20;
const ONE_SHOTS: usize = 10;
/// Requests the component keeps in flight in a batch (`guest/src/http.rs`, `MAX_IN_FLIGHT`).
const GUEST_IN_FLIGHT: usize = 16;
/// GNU time, which reports a child's peak resident memory.
const GNU_TIME: &str = "/usr/bin/time";

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..3 {
        let fresh = dir.path().join(format!("cold-{i}"));
        let rt = Runtime::new(RuntimeOptions {
            cache_dir: Some(fresh),
            ..RuntimeOptions::default()
        })
        .unwrap();
        cold.push(rt.load_report().1);
    }
    let _prime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let mut runtime = None;
    for _ in 0..5 {
        let rt = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.clone()),
            ..RuntimeOptions::default()
        })
        .unwrap();
        assert_eq!(
            rt.load_report().0,
            kvrun::component_cache::CacheOutcome::Hit
        );
        warm.push(rt.load_report().1);
        runtime = Some(rt);
    }
    let runtime = runtime.unwrap();

    let common::BenchVault {
        options,
        url,
        ca_pem,
        token,
    } = common::spawn_vault(dir.path().join("vault"));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let transport = options.transport.clone();
        let mut client = Client::new(&runtime, options).await.unwrap();
        let names: Vec<String> = (0..100).map(|i| format!("bench-{i:03}")).collect();
        let secrets: Vec<NewSecret> = names
            .iter()
            .map(|n| NewSecret {
                name: n.clone(),
                value: format!("value-of-{n}-{}", "x".repeat(32)).into(),
                options: SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            })
            .collect();
        for outcome in client.set_secrets(&secrets).await.unwrap() {
            outcome.unwrap();
        }

        let connector = kvrun::transport::connector(&kvrun::transport::TransportOptions {
            ca_pem: Some(ca_pem),
            ..transport
        })
        .unwrap();
        let native: HyperClient<_, Full<Bytes>> = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(32)
            .build(connector);
        let auth = format!("Bearer {}", token.expose());
        let host_transport = kvrun::transport::Transport::new(kvrun::transport::TransportOptions {
            ca_pem: Some(std::fs::read(dir.path().join("vault").join("ca.pem")).unwrap()),
            public_roots: false,
            ..kvrun::transport::TransportOptions::default()
        })
        .unwrap();
        // The same GET through the host's transport (timeouts, size cap, boxed bodies) without
        // the component: what the component adds is the rest.
        let transport_get = async |name: &str| {
            let request = http::Request::get(format!("{url}/secrets/{name}?api-version=7.5"))
                .header("authorization", &auth)
                .header("accept", "application/json")
                .body(
                    http_body_util::Empty::<Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .unwrap();
            let response = host_transport.send(request, None).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let bundle: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(bundle["value"].is_string());
        };
        // Returns the answer's body (the bench times the whole GET, JSON parsing included).
        let native_get = async |name: &str| -> Bytes {
            let request = http::Request::get(format!("{url}/secrets/{name}?api-version=7.5"))
                .header("authorization", &auth)
                .header("accept", "application/json")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = native.request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let bundle: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(bundle["value"].is_string());
            body
        };

        let recorded = native_get("bench-000").await;
        let mut in_host =
            common::answered_in_host::AnsweredInHost::new(&runtime, client.component_env(), recorded)
                .await;

        // `KVRUN_BENCH_PROFILE=N`: only N warm component gets, for a profiler
        // (`perf record -g target/release/deps/get_secret-*`).
        if let Some(n) = std::env::var("KVRUN_BENCH_PROFILE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            for _ in 0..n {
                client.get_secret("bench-000", None).await.unwrap();
            }
            return;
        }

        let sdk_env = SdkEnv {
            url: url.clone(),
            token: token.expose().to_string(),
            ca: dir.path().join("vault").join("ca.pem"),
        };
        let mut sdks: Vec<(&str, Result<Sdk, String>)> = vec![
            (
                "azure-keyvault-secrets (Python SDK)",
                Sdk::start(sdk_env.python()),
            ),
            (
                "@azure/keyvault-secrets (JS SDK)",
                Sdk::start(sdk_env.node()),
            ),
        ];
        let mut sdk_samples = vec![Vec::new(); sdks.len()];

        // Warm every path up.
        for _ in 0..100 {
            client.get_secret("bench-000", None).await.unwrap();
            native_get("bench-000").await;
            transport_get("bench-000").await;
            in_host.get_secret("bench-000").await;
        }
        for (_, sdk) in &mut sdks {
            if let Ok(sdk) = sdk {
                sdk.block("warm", 100);
            }
        }
        let mut component = Vec::new();
        let mut baseline = Vec::new();
        let mut through_transport = Vec::new();
        let mut no_request = Vec::new();
        let mut answered_in_host = Vec::new();
        for _ in 0..ROUNDS {
            for ((_, sdk), samples) in sdks.iter_mut().zip(&mut sdk_samples) {
                if let Ok(sdk) = sdk {
                    samples.extend(sdk.block("time", PER_ROUND));
                }
            }
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                client.get_secret("bench-000", None).await.unwrap();
                component.push(start.elapsed());
            }
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                native_get("bench-000").await;
                baseline.push(start.elapsed());
            }
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                transport_get("bench-000").await;
                through_transport.push(start.elapsed());
            }
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                let refused = client.get_secret("not a name", None).await;
                no_request.push(start.elapsed());
                assert!(matches!(refused, Err(kvrun::Error::InvalidName(_))));
            }
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                in_host.get_secret("bench-000").await;
                answered_in_host.push(start.elapsed());
            }
        }

        let mut batch = Vec::new();
        let mut sequential = Vec::new();
        let mut native_sequential = Vec::new();
        let mut native_concurrent = Vec::new();
        let mut batch_in_host = Vec::new();
        for _ in 0..BATCH_ROUNDS {
            let start = Instant::now();
            let values = client.get_secrets(&names).await.unwrap();
            batch.push(start.elapsed());
            assert!(values.iter().all(Option::is_some));
            let start = Instant::now();
            for name in &names {
                client.get_secret(name, None).await.unwrap();
            }
            sequential.push(start.elapsed());
            let start = Instant::now();
            for name in &names {
                native_get(name).await;
            }
            native_sequential.push(start.elapsed());
            let start = Instant::now();
            futures::stream::iter(&names)
                .map(|name| native_get(name))
                .buffer_unordered(GUEST_IN_FLIGHT)
                .collect::<Vec<Bytes>>()
                .await;
            native_concurrent.push(start.elapsed());
            let start = Instant::now();
            in_host.get_secrets(&names).await;
            batch_in_host.push(start.elapsed());
        }

        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
        let (c50, c99) = (pct(&mut component, 50), pct(&mut component, 99));
        let (n50, n99) = (pct(&mut baseline, 50), pct(&mut baseline, 99));
        println!(
            "kvrun get-secret benchmark ({} samples per client, {} rounds alternating)",
            ROUNDS * PER_ROUND,
            ROUNDS
        );
        println!();
        println!("| measurement | median | p99 |");
        println!("|---|---|---|");
        println!(
            "| get-secret through the component | {} | {} |",
            us(c50),
            us(c99)
        );
        println!(
            "| same GET, native hyper + rustls (same pool/TLS settings) | {} | {} |",
            us(n50),
            us(n99)
        );
        println!(
            "| ratio component / native (median) | {:.2}x | |",
            c50.as_secs_f64() / n50.as_secs_f64()
        );
        let t50 = pct(&mut through_transport, 50);
        println!(
            "| same GET through kvrun's transport, no component | {} | {} |",
            us(t50),
            us(pct(&mut through_transport, 99))
        );
        println!(
            "| a component call that sends no request (a bad name, refused in the guest) | {} | {} |",
            us(pct(&mut no_request, 50)),
            us(pct(&mut no_request, 99))
        );
        println!(
            "| the same get in the component, answered by the host from memory (no network) | {} | {} |",
            us(pct(&mut answered_in_host, 50)),
            us(pct(&mut answered_in_host, 99))
        );
        for ((label, sdk), samples) in sdks.iter().zip(&mut sdk_samples) {
            match sdk {
                Ok(_) => {
                    let s50 = pct(samples, 50);
                    println!(
                        "| get_secret, {label} | {} | {} |",
                        us(s50),
                        us(pct(samples, 99))
                    );
                    println!(
                        "| ratio component / {label} (median) | {:.2}x | |",
                        c50.as_secs_f64() / s50.as_secs_f64()
                    );
                }
                Err(why) => println!("| get_secret, {label} | skipped: {why} | |"),
            }
        }
        let (b50, s50, ns50) = (
            pct(&mut batch, 50),
            pct(&mut sequential, 50),
            pct(&mut native_sequential, 50),
        );
        println!(
            "| get-secrets of 100 names (one call) | {} | {} |",
            ms(b50),
            ms(pct(&mut batch, 99))
        );
        println!(
            "| 100 sequential get-secret calls | {} | {} |",
            ms(s50),
            ms(pct(&mut sequential, 99))
        );
        println!(
            "| 100 sequential native GETs | {} | {} |",
            ms(ns50),
            ms(pct(&mut native_sequential, 99))
        );
        let nc50 = pct(&mut native_concurrent, 50);
        println!(
            "| 100 native GETs, {GUEST_IN_FLIGHT} in flight (the component's batch concurrency) | {} | {} |",
            ms(nc50),
            ms(pct(&mut native_concurrent, 99))
        );
        println!(
            "| ratio get-secrets / native at the same concurrency (median) | {:.2}x | |",
            b50.as_secs_f64() / nc50.as_secs_f64()
        );
        println!(
            "| the same get-secrets in the component, answered by the host from memory (no network) | {} | {} |",
            ms(pct(&mut batch_in_host, 50)),
            ms(pct(&mut batch_in_host, 99))
        );
        println!(
            "| speed-up of get-secrets over sequential | {:.2}x | |",
            s50.as_secs_f64() / b50.as_secs_f64()
        );
        println!("| guest .wasm size | {} bytes | |", kvrun::GUEST_WASM.len());
        println!(
            "| cold component load (Cranelift compile + cache write), {} runs | {} | |",
            cold.len(),
            ms(pct(&mut cold, 50))
        );
        println!(
            "| warm component load (cached artifact), {} runs | {} | |",
            warm.len(),
            ms(pct(&mut warm, 50))
        );

        println!();
        println!(
            "One process that reads one secret and exits ({ONE_SHOTS} runs each, alternating):"
        );
        println!();
        println!("| process | median wall time | median CPU time (user + system) | peak RSS (max of runs) |");
        println!("|---|---|---|---|");
        let kvrun = || Ok(sdk_env.kvrun(&cache));
        let python = || sdk_env.python();
        let node = || sdk_env.node();
        let clients: [(&str, &MakeCommand); 3] = [
            ("`kvrun secret get` (component cached)", &kvrun),
            ("Python SDK `get_secret`", &python),
            ("JS SDK `getSecret`", &node),
        ];
        if !Path::new(GNU_TIME).exists() {
            println!("(skipped: {GNU_TIME} is not installed; Debian's package `time` has it)");
            return;
        }
        let rss_file = dir.path().join("rss");
        let mut runs = vec![(Vec::new(), Vec::new(), None::<u64>); clients.len()];
        for _ in 0..ONE_SHOTS {
            for ((_, command), (times, cpu, peak)) in clients.iter().zip(&mut runs) {
                if let Ok(command) = command() {
                    let shot = one_shot(&command, "time 1\n", &rss_file);
                    times.push(shot.wall);
                    cpu.push(shot.cpu);
                    *peak = (*peak).max(shot.peak_rss);
                }
            }
        }
        let mut process_bars = Vec::new();
        for ((label, command), (times, cpu, peak)) in clients.iter().zip(&mut runs) {
            match command() {
                Ok(_) => {
                    let wall = pct(times, 50);
                    println!(
                        "| {label} | {} | {} | {} |",
                        ms(wall),
                        ms(pct(cpu, 50)),
                        peak.map_or("?".to_string(), |b| format!(
                            "{:.1} MiB",
                            b as f64 / 1048576.0
                        ))
                    );
                    let bar = label.trim_matches('`').replace('`', "");
                    process_bars.push(if label.contains("kvrun") {
                        Bar::ours(bar, wall.as_secs_f64() * 1e3)
                    } else {
                        Bar::other(bar, wall.as_secs_f64() * 1e3)
                    });
                }
                Err(why) => println!("| {label} | skipped: {why} | | |"),
            }
        }
        let mut warm_bars = vec![
            Bar::ours("kvrun, through the component", c50.as_secs_f64() * 1e6),
            Bar::other("native hyper + rustls", n50.as_secs_f64() * 1e6),
        ];
        for ((label, sdk), samples) in sdks.iter().zip(&mut sdk_samples) {
            if sdk.is_ok() {
                warm_bars.push(Bar::other(*label, pct(samples, 50).as_secs_f64() * 1e6));
            }
        }
        Chart {
            title: "Warm get_secret against the local vault (median, lower is better)".into(),
            unit: "µs",
            note: format!("cargo bench -p kvrun --bench get_secret; {} samples each, 2-core machine", ROUNDS * PER_ROUND),
            bars: warm_bars,
        }
        .write("get_secret_warm");
        Chart {
            title: "One process that reads one secret and exits (median wall time, lower is better)".into(),
            unit: "ms",
            note: format!("cargo bench -p kvrun --bench get_secret; {ONE_SHOTS} runs each, component cached"),
            bars: process_bars,
        }
        .write("get_secret_process");
    });
}

/// Where a client process finds the vault; builds the command of each client.
struct SdkEnv {
    url: String,
    token: String,
    ca: PathBuf,
}

impl SdkEnv {
    fn compat_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compat")
    }

    fn script(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/sdk")
            .join(name)
    }

    /// The Python SDK client (`benches/sdk/get_secret.py`), if `tests/compat/run` installed it.
    fn python(&self) -> Result<Command, String> {
        let python = SdkEnv::compat_dir().join("venv/bin/python");
        if !python.exists() {
            return Err("no target/compat/venv (run tests/compat/run once)".into());
        }
        let mut command = Command::new(python);
        command.arg(SdkEnv::script("get_secret.py"));
        Ok(self.client(command))
    }

    /// The JS SDK client (`benches/sdk/get_secret.cjs`), if `tests/compat/run` installed it.
    fn node(&self) -> Result<Command, String> {
        let modules = SdkEnv::compat_dir().join("js/node_modules");
        if !modules.join("@azure/keyvault-secrets").exists() {
            return Err("no target/compat/js/node_modules (run tests/compat/run once)".into());
        }
        let mut command = Command::new("node");
        command
            .arg(SdkEnv::script("get_secret.cjs"))
            .env("NODE_PATH", modules)
            .env("NODE_EXTRA_CA_CERTS", &self.ca);
        Ok(self.client(command))
    }

    fn client(&self, mut command: Command) -> Command {
        command
            .arg("bench-000")
            .env("KVRUN_BENCH_URL", &self.url)
            .env("KVRUN_BENCH_TOKEN", &self.token)
            .env("KVRUN_BENCH_CA", &self.ca);
        command
    }

    /// `kvrun secret get bench-000` against the vault, with the component cache in `cache`.
    fn kvrun(&self, cache: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvrun"));
        command
            .arg("--vault")
            .arg(&self.url)
            .arg("--ca-cert")
            .arg(&self.ca)
            .args(["secret", "get", "bench-000"])
            .env("KVRUN_ACCESS_TOKEN", &self.token)
            .env("KVRUN_CACHE_DIR", cache)
            .env_remove("KVRUN_LOG");
        command
    }
}

/// Builds a client's command, or says why the client is not there.
type MakeCommand<'a> = dyn Fn() -> Result<Command, String> + 'a;

/// What one process cost.
struct Shot {
    wall: Duration,
    cpu: Duration,
    peak_rss: Option<u64>,
}

/// Runs `command` to its end with `input` on stdin: wall time, CPU time, and peak resident
/// memory as GNU time reports it. (`wait4`'s `ru_maxrss` would count this big process's
/// pages, which a child holds between fork and exec; `time` forks from a small process.)
fn one_shot(command: &Command, input: &str, rss_file: &Path) -> Shot {
    let mut timed = Command::new(GNU_TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(rss_file)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by `wait4` below, for its resource usage
    let mut child = timed
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {timed:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    // `wait4` rather than `Child::wait`: its resource usage, to the microsecond, covers
    // `time` and the client it waited for (`time` itself prints only centiseconds).
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert!(
        reaped > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed"
    );
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let kib = std::fs::read_to_string(rss_file)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    Shot {
        wall: elapsed,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss: kib.map(|k| k * 1024),
    }
}

/// An official SDK's client in its own process, timing blocks of `get_secret` on request
/// (the protocol is in `benches/sdk/`).
struct Sdk {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Sdk {
    fn start(command: Result<Command, String>) -> Result<Sdk, String> {
        let mut command = command?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {command:?}: {e}"))?;
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        output.read_line(&mut ready).map_err(|e| e.to_string())?;
        if ready.trim() != "ready" {
            return Err(format!("the SDK client did not start ({ready:?})"));
        }
        Ok(Sdk {
            child,
            input,
            output,
        })
    }

    /// Times `n` calls (`mode` "time") or only makes them ("warm").
    fn block(&mut self, mode: &str, n: usize) -> Vec<Duration> {
        writeln!(self.input, "{mode} {n}").unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        let nanos: Vec<u64> = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the SDK client failed: {line:?}"));
        nanos.into_iter().map(Duration::from_nanos).collect()
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pct(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) * p) / 100]
}
