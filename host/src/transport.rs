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

use crate::error::{Error, NetworkCause, Result};
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
    /// Connect to this address for requests to this origin (as curl's `--connect-to`), TLS
    /// still checking the URL's host name: how clients reach the embedded vault at its
    /// public URL while it listens on an ephemeral port.
    pub connect_to: Option<ConnectRoute>,
}

/// Where [`TransportOptions::connect_to`] sends the connections of one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRoute {
    /// The origin whose connections go elsewhere.
    pub origin: crate::policy::Origin,
    /// Where they go instead.
    pub to: std::net::SocketAddr,
}

impl ConnectRoute {
    /// The URL to connect to for `uri`: `uri` with this route's address if it is of this
    /// route's origin (compared as the allow-list compares origins), else `uri` itself.
    fn apply(&self, uri: http::Uri) -> http::Uri {
        if crate::policy::Origin::from_uri(&uri).ok().as_ref() != Some(&self.origin) {
            return uri;
        }
        let mut parts = uri.clone().into_parts();
        match self.to.to_string().parse() {
            Ok(authority) => {
                parts.authority = Some(authority);
                http::Uri::from_parts(parts).unwrap_or(uri)
            }
            Err(_) => uri,
        }
    }
}

/// A connector that applies a [`ConnectRoute`] before `C` connects.
#[derive(Clone)]
pub struct RoutedConnector<C> {
    inner: C,
    route: Option<ConnectRoute>,
}

impl<C: tower_service::Service<http::Uri>> tower_service::Service<http::Uri>
    for RoutedConnector<C>
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let uri = match &self.route {
            Some(route) => route.apply(uri),
            None => uri,
        };
        self.inner.call(uri)
    }
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
            connect_to: None,
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

/// The connector type: HTTPS (and plain HTTP to loopback test servers) over our resolver.
pub type Connector = HttpsConnector<RoutedConnector<HttpConnector<Resolver>>>;

/// The system resolver (`getaddrinfo`), with its failures typed as [`NameNotResolved`] so
/// that a name that does not resolve is told apart from a refused connection.
#[derive(Clone)]
pub struct Resolver(hyper_util::client::legacy::connect::dns::GaiResolver);

impl Default for Resolver {
    fn default() -> Self {
        Resolver(hyper_util::client::legacy::connect::dns::GaiResolver::new())
    }
}

/// A host name did not resolve.
#[derive(Debug)]
pub struct NameNotResolved(std::io::Error);

impl std::fmt::Display for NameNotResolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host name does not resolve: {}", self.0)
    }
}

impl std::error::Error for NameNotResolved {}

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = hyper_util::client::legacy::connect::dns::GaiAddrs;
    type Error = NameNotResolved;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::result::Result<Self::Response, Self::Error>>
                + Send,
        >,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(NameNotResolved)
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let lookup = self.0.call(name);
        Box::pin(async move { lookup.await.map_err(NameNotResolved) })
    }
}

/// Where the transport records why a request or its answer failed, for the caller to explain
/// it ([`NetworkCause`]); put one in the request's extensions.
#[derive(Clone, Default)]
pub struct CauseSlot(Arc<std::sync::Mutex<Option<NetworkCause>>>);

impl CauseSlot {
    /// Records `cause` (the last one wins).
    pub fn record(&self, cause: NetworkCause) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
    }

    /// Takes the recorded cause, leaving none.
    pub fn take(&self) -> Option<NetworkCause> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// An HTTPS (and, for loopback test servers, HTTP) connector with these options.
pub fn connector(options: &TransportOptions) -> Result<Connector> {
    let mut http = HttpConnector::new_with_resolver(Resolver::default());
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(options)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(RoutedConnector {
            inner: http,
            route: options.connect_to.clone(),
        }))
}

/// A pooled client for component requests.
pub struct Transport {
    client: HyperClient<Connector, WasiBody>,
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
        let slot = request.extensions().get::<CauseSlot>().cloned();
        let record = |cause: NetworkCause| {
            if let Some(slot) = &slot {
                slot.record(cause);
            }
        };
        let response = match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Err(_) => {
                record(NetworkCause::FirstByteTimeout(first_byte));
                return Err(HttpError::ConnectionReadTimeout);
            }
            Ok(Err(e)) => {
                let (code, cause) = classify(&e, self.options.connect_timeout);
                if let Some(cause) = cause {
                    record(cause);
                }
                return Err(code);
            }
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
                record(NetworkCause::ResponseTooLarge {
                    announced: Some(length),
                    cap: max,
                });
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
                slot,
                cap: max,
                between_bytes,
                total: self.options.total_timeout,
                idle_deadline: tokio::time::Instant::now() + between_bytes,
                deadline,
                timer: None,
            }
            .boxed_unsync()
        }))
    }
}

/// A response body that fails with a read timeout when it goes silent for longer than
/// `between_bytes`, or runs past the request's total deadline (a server that drips its
/// answer a byte at a time).
struct TimedBody {
    inner: WasiBody,
    slot: Option<CauseSlot>,
    cap: usize,
    between_bytes: Duration,
    /// The request's whole time, first byte to last.
    total: Duration,
    /// When the body fails if no frame comes first: the last frame's time plus
    /// `between_bytes`.
    idle_deadline: tokio::time::Instant,
    /// When the request's whole time is up.
    deadline: tokio::time::Instant,
    /// A timer for the earlier of the two deadlines, made only when the body has to wait:
    /// an answer already in hyper's buffer is read without touching the timer wheel.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
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
        let timed_out = |body: &Self| {
            body.record(match tokio::time::Instant::now() >= body.deadline {
                true => NetworkCause::SlowAnswer(body.total),
                false => NetworkCause::StalledBody(body.between_bytes),
            });
            Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
        };
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return timed_out(&self);
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.idle_deadline = now + self.between_bytes;
                match &frame {
                    Some(Err(HttpError::HttpResponseBodySize(_))) => {
                        self.record(NetworkCause::ResponseTooLarge {
                            announced: None,
                            cap: self.cap,
                        })
                    }
                    Some(Err(
                        HttpError::HttpResponseIncomplete | HttpError::ConnectionTerminated,
                    )) => self.record(NetworkCause::ConnectionClosed),
                    _ => {}
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let wake_at = self.deadline.min(self.idle_deadline);
                let timer = match &mut self.timer {
                    Some(timer) => {
                        if timer.deadline() != wake_at {
                            timer.as_mut().reset(wake_at);
                        }
                        timer
                    }
                    empty => empty.insert(Box::pin(tokio::time::sleep_until(wake_at))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => timed_out(&self),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl TimedBody {
    fn record(&self, cause: NetworkCause) {
        if let Some(slot) = &self.slot {
            slot.record(cause);
        }
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

/// Maps a client error onto the `wasi:http` error code that best describes it, and the cause
/// the user is told (with the TLS detail that the error code cannot carry).
fn classify(
    e: &hyper_util::client::legacy::Error,
    connect_timeout: Duration,
) -> (HttpError, Option<NetworkCause>) {
    match std::error::Error::source(e).and_then(|e| cause(e, connect_timeout)) {
        Some(found) => found,
        None if e.is_connect() => (
            HttpError::ConnectionRefused,
            Some(NetworkCause::ConnectionRefused),
        ),
        None => (HttpError::InternalError(Some(e.to_string())), None),
    }
}

/// Looks through an error chain (including errors wrapped inside `io::Error`, which
/// `source()` skips) for a name-resolution, TLS, socket or HTTP cause.
fn cause(
    e: &(dyn std::error::Error + 'static),
    connect_timeout: Duration,
) -> Option<(HttpError, Option<NetworkCause>)> {
    if e.downcast_ref::<NameNotResolved>().is_some() {
        let code = HttpError::DnsError {
            rcode: Some("the host name does not resolve".into()),
            info_code: None,
        };
        return Some((code, Some(NetworkCause::NameResolution)));
    }
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls_error(tls));
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(found) = io.get_ref().and_then(|inner| cause(inner, connect_timeout)) {
            return Some(found);
        }
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return Some((
                    HttpError::ConnectionRefused,
                    Some(NetworkCause::ConnectionRefused),
                ))
            }
            std::io::ErrorKind::TimedOut => {
                return Some((
                    HttpError::ConnectionTimeout,
                    Some(NetworkCause::ConnectTimeout(connect_timeout)),
                ))
            }
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                return Some((
                    HttpError::ConnectionTerminated,
                    Some(NetworkCause::ConnectionClosed),
                ))
            }
            _ => {}
        }
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_incomplete_message() {
            return Some((
                HttpError::HttpResponseIncomplete,
                Some(NetworkCause::ConnectionClosed),
            ));
        }
        if h.is_parse() {
            return Some((HttpError::HttpProtocolError, None));
        }
    }
    e.source().and_then(|e| cause(e, connect_timeout))
}

fn tls_error(e: &rustls::Error) -> (HttpError, Option<NetworkCause>) {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => (
            HttpError::TlsCertificateError,
            Some(NetworkCause::TlsNameMismatch),
        ),
        rustls::Error::InvalidCertificate(why) => {
            let why = match why {
                C::UnknownIssuer => "it is not signed by a CA this host trusts".to_string(),
                C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_string(),
                C::BadSignature => "its signature does not verify".to_string(),
                C::Revoked => "it is revoked".to_string(),
                _ => "it failed verification".to_string(),
            };
            (
                HttpError::TlsCertificateError,
                Some(NetworkCause::TlsUntrusted(why)),
            )
        }
        rustls::Error::NoCertificatesPresented => (
            HttpError::TlsCertificateError,
            Some(NetworkCause::TlsUntrusted(
                "the server presented no certificate".into(),
            )),
        ),
        rustls::Error::AlertReceived(alert) => (
            HttpError::TlsAlertReceived {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            },
            Some(NetworkCause::TlsProtocol(format!(
                "the server sent the alert {alert:?}"
            ))),
        ),
        rustls::Error::InvalidMessage(_) => (
            HttpError::TlsProtocolError,
            Some(NetworkCause::TlsProtocol(
                "the server did not answer in TLS (a plain HTTP port?)".into(),
            )),
        ),
        other => (
            HttpError::TlsProtocolError,
            Some(NetworkCause::TlsProtocol(other.to_string())),
        ),
    }
}

/// Bytes of a body that the vault server or tests build.
pub type FullBody = http_body_util::Full<Bytes>;
