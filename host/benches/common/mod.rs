#![allow(dead_code)] // each benchmark uses a different part of this module
//! Shared by the benchmarks: a local vault on its own thread and runtime, as a separate
//! server would be.

use kvrun::vault::{LocalVault, LocalVaultOptions};
use kvrun::{ClientOptions, SecretString};
use std::path::PathBuf;

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
