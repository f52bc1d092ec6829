#![allow(dead_code)] // each benchmark uses a different part of this module
//! Shared by the benchmarks: a local vault, and a minimal hyper + rustls server that answers
//! a fixed body, each on its own thread and runtime, as a separate server would be; a writer
//! that records when a run first printed.

pub mod answered_in_host;
pub mod chart;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kvrun::vault::{LocalVault, LocalVaultOptions};
use kvrun::{ClientOptions, SecretString};
use std::path::PathBuf;
use std::sync::Arc;

/// What a benchmark needs to reach the vault.
pub struct BenchVault {
    /// Client options (URL, CA, token) for a component client.
    pub options: ClientOptions,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA to trust.
    pub ca_pem: Vec<u8>,
    /// The access token.
    pub token: SecretString,
}

/// Starts a local vault over `data_dir` on a thread with a 1-worker runtime; it serves until
/// the process ends.
pub fn spawn_vault(data_dir: PathBuf) -> BenchVault {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(data_dir))
                .await
                .unwrap();
            tx.send(BenchVault {
                options: kvrun::ClientOptions::for_local_vault(&vault).unwrap(),
                url: vault.url(),
                ca_pem: vault.ca_pem().to_vec(),
                token: vault.token().clone(),
            })
            .unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// A multi-thread runtime with one worker.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A server that answers every request with `body`, over the same kind of TLS identity.
pub fn fixed_server(dir: &std::path::Path, body: Bytes) -> (String, Vec<u8>) {
    let identity = kvrun::vault::identity::load_or_create(dir).unwrap();
    let ca = identity.ca_pem.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain, identity.key)
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let _ = tcp.set_nodelay(true);
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |_req| {
                        let body = body.clone();
                        async move {
                            let mut response = http::Response::new(Full::new(body));
                            response.headers_mut().insert(
                                "content-type",
                                "application/json; charset=utf-8".parse().unwrap(),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    (format!("https://{}", rx.recv().unwrap()), ca)
}

/// A run's output that records when its first byte was written.
#[derive(Clone, Default)]
pub struct FirstWrite(pub Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl std::io::Write for FirstWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .get_or_insert_with(std::time::Instant::now);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
