//! The cost of a secret handle per request, in one run: `cargo bench -p kvrun --bench
//! handle_substitution`.
//!
//! The same `GET` goes through a training run's outbound hooks (`kvrun::network::OutboundHooks`,
//! the code every `wasi:http` request of a run passes) to a loopback HTTPS server that answers
//! a fixed 1 KiB JSON body, in three ways, alternating in blocks:
//!
//! - **no bindings**: a run without `--use-secret` (allow-list only);
//! - **bindings, no handle**: a run with a binding whose request carries no handle (the whole
//!   request is scanned for handles);
//! - **handle**: `Authorization: Bearer <handle>` (scanned, the value substituted, the answer's
//!   headers and body masked for the value).
//!
//! Median and p99 of each, and the difference from the first.

mod common;

use bytes::Bytes;
use common::chart::{Bar, Chart};
use common::fixed_server;
use http_body_util::BodyExt;
use kvrun::audit::{AuditLog, RunAudit};
use kvrun::handles::{RunHandles, UseBinding};
use kvrun::network::OutboundHooks;
use kvrun::policy::AllowList;
use kvrun::transport::{Transport, TransportOptions};
use kvrun::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiHttpHooks;

const BLOCKS: usize = 20;
const PER_BLOCK: usize = 100;

/// One way of sending.
struct Mode {
    name: &'static str,
    hooks: OutboundHooks,
    authorization: Option<String>,
    times: Vec<Duration>,
}

async fn send(hooks: &mut OutboundHooks, url: &str, authorization: Option<&str>) -> Duration {
    let mut request = http::Request::get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let request = request
        .body(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap();
    let started = Instant::now();
    let sent = Box::into_pin(hooks.send_request(request, None, Box::new(async { Ok(()) })));
    let (response, _) = sent.await.expect("the request is allowed");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 1024);
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = vec![b' '; 1024];
    body[..2].copy_from_slice(b"{}");
    let (url, ca) = fixed_server(&dir.path().join("server"), Bytes::from(body));
    let url = format!("{url}/api/2.0/mlflow/runs/log-metric");
    let transport = Arc::new(
        Transport::new(TransportOptions {
            ca_pem: Some(ca),
            public_roots: false,
            ..TransportOptions::default()
        })
        .unwrap(),
    );
    let origin = url.split("/api").next().unwrap().to_string();
    let allow = || AllowList::parse([&origin]).unwrap();
    let binding: UseBinding = format!("api-token={origin}/api").parse().unwrap();
    let audit = RunAudit::new(
        Arc::new(AuditLog::to_writer(
            Box::new(std::io::sink()),
            "bench",
            Arc::new(kvrun::audit::AuditKey::ephemeral()),
        )),
        u64::MAX,
    );
    let handles = Arc::new(RunHandles::new(vec![binding], audit, u32::MAX));
    let handle = handles.issue(
        "api-token",
        SecretString::from("bench-token-0123456789-abcdef"),
        None,
    );
    let mut modes = [
        Mode {
            name: "no bindings",
            hooks: OutboundHooks::new(allow(), None, transport.clone()),
            authorization: None,
            times: Vec::new(),
        },
        Mode {
            name: "bindings, no handle",
            hooks: OutboundHooks::new(allow(), None, transport.clone())
                .with_handles(handles.clone()),
            authorization: None,
            times: Vec::new(),
        },
        Mode {
            name: "handle in Authorization",
            hooks: OutboundHooks::new(allow(), None, transport.clone()).with_handles(handles),
            authorization: Some(format!("Bearer {handle}")),
            times: Vec::new(),
        },
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for mode in modes.iter_mut() {
            for _ in 0..PER_BLOCK {
                send(&mut mode.hooks, &url, mode.authorization.as_deref()).await;
            }
        }
        for _ in 0..BLOCKS {
            for mode in modes.iter_mut() {
                for _ in 0..PER_BLOCK {
                    let took = send(&mut mode.hooks, &url, mode.authorization.as_deref()).await;
                    mode.times.push(took);
                }
            }
        }
    });
    println!(
        "one GET with a 1 KiB answer through a run's outbound hooks, {} requests each, alternating blocks of {PER_BLOCK}",
        BLOCKS * PER_BLOCK
    );
    println!("| request | median | p99 | median over no bindings |");
    println!("|---|---|---|---|");
    let mut base = None;
    let mut bars = Vec::new();
    for mode in modes.iter_mut() {
        mode.times.sort();
        let median = percentile(&mode.times, 0.5);
        let p99 = percentile(&mode.times, 0.99);
        let base = *base.get_or_insert(median);
        let extra = median.as_secs_f64() * 1e6 - base.as_secs_f64() * 1e6;
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:+.1} µs |",
            mode.name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            extra
        );
        bars.push(Bar::ours(mode.name, median.as_secs_f64() * 1e6));
    }
    Chart {
        title: "A run's GET through its outbound hooks, with and without a handle (median)".into(),
        unit: "µs",
        note: format!(
            "cargo bench -p kvrun --bench handle_substitution; {} requests each to a loopback HTTPS server",
            BLOCKS * PER_BLOCK
        ),
        bars,
    }
    .write("handle_substitution");
}
