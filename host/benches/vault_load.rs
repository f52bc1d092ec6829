//! Throughput and latency of `GET /secrets/{name}` on the local vault under load, next to a
//! minimal hyper + rustls server that answers a fixed body of the same size, in one run:
//! `cargo bench -p kvrun --bench vault_load`.
//!
//! Each server runs on its own 1-worker runtime; the load client runs on another, with one
//! keep-alive connection per concurrent worker, for a fixed time per level (1 and 64
//! connections). All on one 2-core machine, so client and server share the CPU.

mod common;

use bytes::Bytes;
use common::chart::{Bar, Chart};
use common::{fixed_server, runtime};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use kvrun::transport::{connector, TransportOptions};
use std::time::{Duration, Instant};

const SECONDS: u64 = 4;

struct Level {
    requests: usize,
    p50: Duration,
    p99: Duration,
}

fn load(url: &str, ca: &[u8], token: &str, connections: usize) -> Level {
    let options = TransportOptions {
        ca_pem: Some(ca.to_vec()),
        public_roots: false,
        ..TransportOptions::default()
    };
    runtime().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(SECONDS);
        let mut workers = Vec::new();
        for _ in 0..connections {
            let client: HyperClient<_, Full<Bytes>> = HyperClient::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build(connector(&options).unwrap());
            let (url, auth) = (url.to_string(), format!("Bearer {token}"));
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let request = http::Request::get(&url)
                        .header("authorization", &auth)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let start = Instant::now();
                    let response = client.request(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.into_body().collect().await.unwrap();
                    latencies.push(start.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        all.sort();
        Level {
            requests: all.len(),
            p50: all[all.len() / 2],
            p99: all[all.len() * 99 / 100],
        }
    })
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let vault = common::spawn_vault(dir.path().join("vault"));
    let (vault_url, vault_ca, token) = (vault.url, vault.ca_pem, vault.token.expose().to_string());
    let secret_url = format!("{vault_url}/secrets/db-password?api-version=7.5");
    let body = runtime().block_on(async {
        let options = TransportOptions {
            ca_pem: Some(vault_ca.clone()),
            public_roots: false,
            ..TransportOptions::default()
        };
        let client: HyperClient<_, Full<Bytes>> =
            HyperClient::builder(TokioExecutor::new()).build(connector(&options).unwrap());
        let put = http::Request::put(&secret_url)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(
                r#"{"value":"a-typical-database-password-1234"}"#,
            )))
            .unwrap();
        client
            .request(put)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
    });
    let (fixed_url, fixed_ca) = fixed_server(&dir.path().join("fixed"), body);

    println!("local vault GET /secrets/{{name}} under load ({SECONDS} s per level)");
    println!();
    println!("| server | connections | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let mut bars = Vec::new();
    for connections in [1, 64] {
        let vault = load(&secret_url, &vault_ca, &token, connections);
        let fixed = load(
            &format!("{fixed_url}/secrets/db-password"),
            &fixed_ca,
            &token,
            connections,
        );
        for (name, level) in [
            ("kvrun local vault", &vault),
            ("minimal hyper + rustls, fixed body", &fixed),
        ] {
            println!(
                "| {name} | {connections} | {:.0} | {:.0} µs | {:.0} µs |",
                level.requests as f64 / SECONDS as f64,
                level.p50.as_secs_f64() * 1e6,
                level.p99.as_secs_f64() * 1e6
            );
        }
        println!(
            "| ratio vault / minimal | {connections} | {:.2} | {:.2} | {:.2} |",
            vault.requests as f64 / fixed.requests as f64,
            vault.p50.as_secs_f64() / fixed.p50.as_secs_f64(),
            vault.p99.as_secs_f64() / fixed.p99.as_secs_f64()
        );
        let per_second = |level: &Level| level.requests as f64 / SECONDS as f64;
        bars.push(Bar::ours(
            format!("kvrun local vault, {connections} conn."),
            per_second(&vault),
        ));
        bars.push(Bar::other(
            format!("minimal hyper + rustls, {connections} conn."),
            per_second(&fixed),
        ));
    }
    Chart {
        title: "Local vault GET /secrets/{name} throughput (higher is better)".into(),
        unit: "req/s",
        note: format!("cargo bench -p kvrun --bench vault_load; {SECONDS} s per level, client and server on one 2-core machine"),
        bars,
    }
    .write("vault_load");
}
