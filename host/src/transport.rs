//! The pooled HTTPS client that carries component requests to the vault.
//!
//! wasmtime-wasi-http's stock sender opens a new TCP and TLS connection per request and
//! trusts only the public web roots. The vault needs keep-alive connections (a `get` is one
//! request) and, for the local vault, a private CA. [`Transport`] is a hyper-util pooled
//! client over hyper-rustls with:
//!
//! - trust: the PEM CA given in [`TransportOptions::ca_pem`], and the public roots
//!   (`webpki-roots`) when [`TransportOptions::public_roots`] is set; a certificate given
//!   there that is itself the server's certificate (a self-signed one with `CA:TRUE`, as
//!   `openssl req -x509` makes) is accepted on an exact match, its name and validity still
//!   checked ([`PinnedOrChain`]);
//! - a connect timeout, a time-to-first-byte timeout, a between-bytes timeout (each the
//!   smaller of ours and the component's request options) and a total timeout per request;
//! - a response size cap: a larger body ends with `HTTP-response-body-size`;
//! - no redirects: a 3xx answer is handed to the component as it is, never followed.

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Settings of a [`Transport`].
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// PEM certificates to trust (the local vault's `ca.pem`).
    pub ca_pem: Option<Vec<u8>>,
    /// Also trust the public web PKI (for Azure).
    pub public_roots: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the response head.
    pub response_timeout: Duration,
    /// Longest silence while the body arrives.
    pub between_bytes_timeout: Duration,
    /// Longest time for a whole request, head and body.
    pub total_timeout: Duration,
    /// Largest response body, in bytes.
    pub max_response_bytes: usize,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            ca_pem: None,
            public_roots: true,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
            max_response_bytes: 8 * 1024 * 1024,
            max_idle_per_host: 32,
        }
    }
}

/// Builds the rustls client configuration for these options.
pub fn tls_config(options: &TransportOptions) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if options.public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut pinned = Vec::new();
    if let Some(pem) = &options.ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                Error::Config(format!("the CA certificate file is not valid PEM: {e}"))
            })?;
            roots
                .add(cert.clone())
                .map_err(|e| Error::Config(format!("the CA certificate is not usable: {e}")))?;
            pinned.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(Error::Config(
                "the CA certificate file holds no certificate".into(),
            ));
        }
    }
    if roots.is_empty() {
        return Err(Error::Config(
            "no trusted certificates: give a CA certificate or allow the public roots".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?;
    let verifier = PinnedOrChain { chain, pinned };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The server-certificate check: a chain to the trusted roots, or else an exact match with
/// one of the certificates the user gave (`ca_pem`), valid now and for the server's name.
#[derive(Debug)]
pub struct PinnedOrChain {
    chain: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrChain {
    fn verify_pinned(
        end_entity: &CertificateDer<'_>,
        server_name: &rustls_pki_types::ServerName<'_>,
        now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<(), rustls::Error> {
        use rustls::CertificateError;
        let bad = |e: CertificateError| rustls::Error::InvalidCertificate(e);
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let now = now.as_secs() as i64;
        if now < parsed.validity().not_before.timestamp() {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > parsed.validity().not_after.timestamp() {
            return Err(bad(CertificateError::Expired));
        }
        webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?
            .verify_is_valid_for_subject_name(server_name)
            .map_err(|_| bad(CertificateError::NotValidForName))
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let chained = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match chained {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                PinnedOrChain::verify_pinned(end_entity, server_name, now)
                    .map(|()| rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// An HTTPS (and, for loopback test servers, HTTP) connector with these options.
pub fn connector(options: &TransportOptions) -> Result<HttpsConnector<HttpConnector>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(options)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// A pooled client for component requests.
pub struct Transport {
    client: HyperClient<HttpsConnector<HttpConnector>, WasiBody>,
    options: TransportOptions,
}

impl Transport {
    /// Builds the client.
    pub fn new(options: TransportOptions) -> Result<Transport> {
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(options.max_idle_per_host)
            .build(connector(&options)?);
        Ok(Transport { client, options })
    }

    /// Sends a request that the policy already allowed.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> std::result::Result<http::Response<WasiBody>, HttpError> {
        let limit = |ours: Duration, theirs: Option<Duration>| theirs.map_or(ours, |t| t.min(ours));
        let first_byte = limit(
            self.options
                .response_timeout
                .min(self.options.total_timeout),
            options.and_then(|o| o.first_byte_timeout),
        );
        let between_bytes = limit(
            self.options.between_bytes_timeout,
            options.and_then(|o| o.between_bytes_timeout),
        );
        let deadline = tokio::time::Instant::now() + self.options.total_timeout;
        let response = match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(response)) => response,
        };
        let max = self.options.max_response_bytes;
        if let Some(length) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if length > max as u64 {
                return Err(HttpError::HttpResponseBodySize(Some(length)));
            }
        }
        Ok(response.map(|body| {
            let limited = Limited::new(body.map_err(body_error), max)
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::HttpResponseBodySize(None)
                    } else {
                        match e.downcast::<HttpError>() {
                            Ok(e) => *e,
                            Err(e) => HttpError::InternalError(Some(e.to_string())),
                        }
                    }
                })
                .boxed_unsync();
            TimedBody {
                inner: limited,
                between_bytes,
                idle: Box::pin(tokio::time::sleep(between_bytes)),
                total: Box::pin(tokio::time::sleep_until(deadline)),
            }
            .boxed_unsync()
        }))
    }
}

/// A response body that fails with a read timeout when it goes silent for longer than
/// `between_bytes`, or runs past the request's total deadline.
struct TimedBody {
    inner: WasiBody,
    between_bytes: Duration,
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    total: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Bytes>, HttpError>>> {
        use std::future::Future;
        use std::task::Poll;
        if self.total.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.idle.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn body_error(e: hyper::Error) -> HttpError {
    if e.is_incomplete_message() {
        HttpError::HttpResponseIncomplete
    } else if e.is_timeout() {
        HttpError::ConnectionReadTimeout
    } else {
        HttpError::HttpProtocolError
    }
}

/// Maps a client error onto the `wasi:http` error code that best describes it.
fn classify(e: &hyper_util::client::legacy::Error) -> HttpError {
    match std::error::Error::source(e).and_then(cause) {
        Some(code) => code,
        None if e.is_connect() => HttpError::ConnectionRefused,
        None => HttpError::InternalError(Some(e.to_string())),
    }
}

/// Looks through an error chain (including errors wrapped inside `io::Error`, which
/// `source()` skips) for a TLS, socket or HTTP cause.
fn cause(e: &(dyn std::error::Error + 'static)) -> Option<HttpError> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls_error(tls));
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(code) = io.get_ref().and_then(|inner| cause(inner)) {
            return Some(code);
        }
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return Some(HttpError::ConnectionRefused),
            std::io::ErrorKind::TimedOut => return Some(HttpError::ConnectionTimeout),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                return Some(HttpError::ConnectionTerminated)
            }
            _ => {}
        }
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_incomplete_message() {
            return Some(HttpError::HttpResponseIncomplete);
        }
        if h.is_parse() {
            return Some(HttpError::HttpProtocolError);
        }
    }
    e.source().and_then(cause)
}

fn tls_error(e: &rustls::Error) -> HttpError {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            HttpError::TlsCertificateError
        }
        rustls::Error::AlertReceived(alert) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::TlsProtocolError,
    }
}

/// Bytes of a body that the vault server or tests build.
pub type FullBody = http_body_util::Full<Bytes>;
