//! A raw TLS (or plain HTTP) server on loopback that answers with whatever bytes a test
//! scripts, for broken, slow and hostile answers, and records what it was sent.

use super::quick_retry;
use kvrun::transport::TransportOptions;
use kvrun::ClientOptions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request as the raw server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

/// One step of a scripted answer.
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Wait this long.
    Sleep(Duration),
    /// Drop the connection with a TCP reset.
    Reset,
}

type Responder = dyn Fn(usize, &Seen) -> Vec<Step> + Send + Sync;

/// A TLS server (trusted through its own `ca.pem`) that answers request N with the raw
/// bytes `respond(N, request)` and then closes the connection.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    pub ca_pem: Vec<u8>,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

impl RawServer {
    pub async fn start(
        respond: impl Fn(usize, &Seen) -> Vec<u8> + Send + Sync + 'static,
    ) -> RawServer {
        RawServer::scripted(move |n, seen| vec![Step::Write(respond(n, seen))]).await
    }

    /// A server whose answers are scripted step by step.
    pub async fn scripted(
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let dir = tempfile::tempdir().unwrap();
        let identity = kvrun::vault::identity::load_or_create(dir.path()).unwrap();
        RawServer::with_certificate(
            dir,
            identity.ca_pem,
            identity.cert_chain,
            identity.key,
            respond,
        )
        .await
    }

    /// A server with a certificate for `names` only (under a CA the client trusts).
    pub async fn for_names(
        names: &[&str],
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let chain = vec![cert.der().clone()];
        let dir = tempfile::tempdir().unwrap();
        RawServer::with_certificate(dir, ca.pem().into_bytes(), chain, der, respond).await
    }

    /// A server whose certificate is self-signed with `CA:TRUE` (as `openssl req -x509`
    /// makes), for `names`, valid until the start of `until_year`; its `ca_pem` is that
    /// certificate.
    pub async fn self_signed(
        names: &[&str],
        until_year: i32,
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let chain = vec![cert.der().clone()];
        let dir = tempfile::tempdir().unwrap();
        RawServer::with_certificate(dir, cert.pem().into_bytes(), chain, der, respond).await
    }

    async fn with_certificate(
        dir: tempfile::TempDir,
        ca_pem: Vec<u8>,
        chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        RawServer::listen(Some(acceptor), dir, ca_pem, respond).await
    }

    /// A plain-HTTP server on loopback (as the App Service identity endpoint and IMDS are).
    pub async fn plain(
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        RawServer::listen(None, tempfile::tempdir().unwrap(), Vec::new(), respond).await
    }

    async fn listen(
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        dir: tempfile::TempDir,
        ca_pem: Vec<u8>,
        respond: impl Fn(usize, &Seen) -> Vec<Step> + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let (c, s) = (connections.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (acceptor, respond, seen) = (acceptor.clone(), respond.clone(), s.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(mut tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            if answer(&mut tls, &*respond, &seen).await {
                                let _ = tls.get_ref().0.set_zero_linger();
                            } else {
                                let _ = tls.shutdown().await;
                            }
                        }
                        None => {
                            let mut tcp = tcp;
                            if answer(&mut tcp, &*respond, &seen).await {
                                let _ = tcp.set_zero_linger();
                            } else {
                                let _ = tcp.shutdown().await;
                            }
                        }
                    }
                });
            }
        });
        RawServer {
            addr,
            ca_pem,
            connections,
            seen,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Client options for a vault at this server (trusting its CA, with `token`).
    pub fn options(&self, token: &str) -> ClientOptions {
        let mut options = ClientOptions::new(self.url());
        options.transport = TransportOptions {
            ca_pem: Some(self.ca_pem.clone()),
            public_roots: false,
            ..TransportOptions::default()
        };
        options.credential = Some(kvrun::auth::Credential::bearer(&token.into()).unwrap());
        options.retry = quick_retry();
        options
    }
}

/// Reads one request from `stream`, records it, and plays the scripted answer. Returns
/// whether the script ends with a reset.
async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    respond: &Responder,
    seen: &Mutex<Vec<Seen>>,
) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut request = Seen {
        head,
        body: buf[head_end..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.body.extend_from_slice(&chunk[..n]),
        }
    }
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(request.clone());
        seen.len() - 1
    };
    for step in respond(index, &request) {
        match step {
            Step::Write(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Reset => return true,
        }
    }
    false
}

/// A raw HTTP/1.1 answer with a JSON body and `Connection: close`.
pub fn http_reply(status: &str, extra_headers: &[&str], body: &str) -> Vec<u8> {
    let mut reply = format!("HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in extra_headers {
        reply.push_str(h);
        reply.push_str("\r\n");
    }
    reply.push_str("\r\n");
    reply.push_str(body);
    reply.into_bytes()
}

/// A SecretBundle body for `name` on `authority` with `value`.
pub fn bundle_json(authority: &str, name: &str, value: &str) -> String {
    serde_json::json!({
        "value": value,
        "id": format!("https://{authority}/secrets/{name}/0123456789abcdef0123456789abcdef"),
        "attributes": {"enabled": true, "created": 1, "updated": 1, "recoveryLevel": "Purgeable"}
    })
    .to_string()
}
