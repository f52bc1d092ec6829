//! The local vault: a Key Vault–compatible HTTPS server on loopback.
//!
//! It is the embedded default when no vault is configured (started in-process on
//! `127.0.0.1:0`), the backend of kvrun's tests, and `kvrun vault serve`.
//!
//! Isolation model: it listens on loopback, speaks only TLS (a private CA generated into its
//! data directory, see [`identity`]), and answers 401 to any request without its bearer
//! token (`DATA_DIR/token`, mode 0600). Writes are durable before they are acknowledged
//! ([`storage`]); the latest version of each secret is also kept in memory, invalidated by
//! every write, so a plain read needs neither SQLite nor a blocking thread (`latest.rs`). The routes it serves are listed in [`api`]. Deleted secrets past their
//! scheduled purge date are purged at start and then every [`PURGE_SWEEP`]. It keeps
//! connections that proved they hold the token before the others (`admission.rs`): at most
//! `max_connections` of those, and up to half the open-file limit of others (at most 4,096),
//! the oldest of which is closed when a new connection needs room; a 401 closes its connection. It gives a client 3 s for the
//! TLS handshake, 30 s for a request's headers and `body_timeout` for its body
//! ([`LocalVaultOptions`]). Ids, `recoveryId`s and `nextLink`s start with its one public
//! URL ([`public_url`]), never the listen address or a client's `Host` header.

mod admission;
pub mod api;
pub mod backup;
pub mod identity;
mod latest;
pub mod public_url;
pub mod storage;

use crate::error::{Error, Result};
use crate::secret::SecretString;
use admission::Admission;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
pub use public_url::PublicUrl;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How often the server purges deleted secrets whose scheduled purge date has passed.
pub const PURGE_SWEEP: Duration = Duration::from_secs(3600);

/// Where and how to run a local vault.
#[derive(Clone, Debug)]
pub struct LocalVaultOptions {
    /// Listen address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Data directory (identity, token, database).
    pub data_dir: PathBuf,
    /// Connections served at once (default 256); more wait in the listen backlog until one
    /// closes.
    pub max_connections: usize,
    /// How long a client may take to send a request body once its headers are in (default
    /// 30 s); past it the request gets `408`.
    pub body_timeout: Duration,
    /// The URL its clients use, which ids and `nextLink`s start with (default
    /// `https://localhost:PORT`); the vault's certificate must cover its host.
    pub public_url: Option<PublicUrl>,
}

impl LocalVaultOptions {
    /// Options for `data_dir` on `127.0.0.1:0`.
    pub fn ephemeral_port(data_dir: impl Into<PathBuf>) -> LocalVaultOptions {
        LocalVaultOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            max_connections: 256,
            body_timeout: Duration::from_secs(30),
            public_url: None,
        }
    }

    /// Options for the embedded vault of `data_dir`: an ephemeral loopback port, and ids that
    /// name [`public_url::EMBEDDED_URL`] whatever the port, so they are the same in every
    /// command (and under `kvrun vault serve` of the same directory on its default port).
    pub fn embedded(data_dir: impl Into<PathBuf>) -> LocalVaultOptions {
        LocalVaultOptions {
            public_url: Some(
                PublicUrl::parse(public_url::EMBEDDED_URL).expect("the embedded URL parses"),
            ),
            ..LocalVaultOptions::ephemeral_port(data_dir)
        }
    }

    /// The data directory: `KVRUN_DATA_DIR` (unless empty), else the platform data dir +
    /// `kvrun`.
    pub fn default_data_dir() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("KVRUN_DATA_DIR").filter(|dir| !dir.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        dirs::data_dir().map(|d| d.join("kvrun")).ok_or_else(|| {
            Error::Config("no data directory: set KVRUN_DATA_DIR or pass --data-dir".into())
        })
    }
}

/// A running local vault. Dropping it stops accepting connections.
pub struct LocalVault {
    addr: SocketAddr,
    url: PublicUrl,
    data_dir: PathBuf,
    ca_pem: Vec<u8>,
    token: SecretString,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LocalVault {
    /// Loads or creates the data directory, binds, and starts serving.
    pub async fn start(options: LocalVaultOptions) -> Result<LocalVault> {
        let identity = identity::load_or_create(&options.data_dir)?;
        let leaf = identity.cert_chain.first().cloned().ok_or_else(|| {
            Error::Config("the local vault's server.pem holds no certificate".into())
        })?;
        let storage = Arc::new(storage::Storage::open(&options.data_dir.join("vault.db"))?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(identity.cert_chain, identity.key)
            })
            .map_err(|e| {
                Error::Config(format!("the local vault's TLS identity is unusable: {e}"))
            })?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind(options.addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (the port is taken: stop the other process or choose another --addr)"
            } else {
                ""
            };
            Error::io(format!("could not listen on {}{hint}", options.addr), e)
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listen address", e))?;
        let url = options
            .public_url
            .clone()
            .unwrap_or_else(|| PublicUrl::localhost(addr.port()));
        let server_pem = options.data_dir.join("server.pem");
        url.check_covered_by(&leaf, &server_pem.display().to_string())?;
        let backup_key = backup::BackupKey::from_hex(&identity.backup_key)?;
        storage.purge_expired(storage::now())?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(sweep(storage.clone(), stopped.clone()));
        let api = Arc::new(api::Api::new(
            storage,
            identity.token.clone(),
            backup_key,
            url.authority(),
            options.body_timeout,
        ));
        let task = tokio::spawn(serve(
            options.max_connections,
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            api,
            stopped,
        ));
        Ok(LocalVault {
            addr,
            url,
            data_dir: options.data_dir,
            ca_pem: identity.ca_pem,
            token: identity.token,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL its clients use and its ids start with (see [`LocalVaultOptions::public_url`]).
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// The public URL, parsed.
    pub fn public_url(&self) -> &PublicUrl {
        &self.url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The CA certificate that clients must trust (`DATA_DIR/ca.pem`).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The access token.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LocalVault {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Purges expired deletions every [`PURGE_SWEEP`] until the vault stops.
async fn sweep(storage: Arc<storage::Storage>, mut stopped: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PURGE_SWEEP);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = every.tick() => {}
        }
        let storage = storage.clone();
        match tokio::task::spawn_blocking(move || storage.purge_expired(storage::now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(purged)) => tracing::info!(
                purged,
                "purged deleted secrets past their scheduled purge date"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the purge sweep failed; it runs again in an hour")
            }
            Err(e) => tracing::warn!(error = %e, "the purge sweep task failed"),
        }
    }
}

async fn serve(
    max_connections: usize,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    api: Arc<api::Api>,
    mut stopped: watch::Receiver<bool>,
) {
    let admission = Admission::new(max_connections, admission::unproven_capacity());
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let ticket = Arc::new(admission.admit());
        let acceptor = acceptor.clone();
        let api = api.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = ticket.evicted() => return,
            };
            let standing = ticket.clone();
            let service = service_fn(move |request| {
                let keep = api.authorized(&request) && standing.prove();
                let answer = api.clone().handle(request);
                async move {
                    let mut reply = answer.await?;
                    if !keep {
                        // A 401, or a token holder past max_connections: this answer is the
                        // connection's last.
                        reply.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(reply)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = ticket.evicted() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
        });
    }
}
