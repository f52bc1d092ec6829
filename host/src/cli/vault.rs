//! `kvrun vault serve`: the local vault in the foreground until SIGINT or SIGTERM.

use kvrun::vault::{LocalVault, LocalVaultOptions, PublicUrl};
use kvrun::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) fn serve(
    addr: SocketAddr,
    allow_remote: bool,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<ExitCode> {
    let public_url = public_url.as_deref().map(PublicUrl::parse).transpose()?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(Error::Config(format!(
            "{addr} is not a loopback address; the local vault listens on loopback only unless --allow-remote is given"
        )));
    }
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => LocalVaultOptions::default_data_dir()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    rt.block_on(async move {
        let vault = LocalVault::start(LocalVaultOptions {
            addr,
            public_url,
            ..LocalVaultOptions::ephemeral_port(data_dir)
        })
        .await?;
        eprintln!("kvrun local vault serving {}", vault.url());
        eprintln!("  listen: {}", vault.addr());
        eprintln!("  trust:  {}", vault.data_dir().join("ca.pem").display());
        eprintln!("  token:  {}", vault.data_dir().join("token").display());
        wait_for_signal().await?;
        eprintln!("kvrun local vault stopping");
        vault.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::io("installing a SIGTERM handler", e))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| Error::io("waiting for SIGINT", e)),
        _ = term.recv() => Ok(()),
    }
}
