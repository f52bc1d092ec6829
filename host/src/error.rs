//! The crate's one error type, and what the command line shows of it.
//!
//! Every [`Error`] has a stable [`Error::kind`] (the README's table lists them with their exit
//! statuses), a one-line `Display` that says what failed and the true cause, and a
//! [`Error::hint`] that says what to do. Failures to reach or read the vault carry the cause
//! the host saw on the wire ([`NetworkCause`]), not the component's guess. No message holds a
//! secret value or a token, and none is `Debug` formatting of an internal type.

use std::fmt;
use std::time::Duration;

/// Why the vault could not be talked to, as the host's transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkCause {
    /// The vault's host name did not resolve.
    NameResolution,
    /// Nothing accepted the connection.
    ConnectionRefused,
    /// The TCP connection did not open in time.
    ConnectTimeout(Duration),
    /// The server's certificate does not chain to a trusted CA (or is expired).
    TlsUntrusted(String),
    /// The server's certificate is valid for other names only.
    TlsNameMismatch,
    /// The TLS handshake failed otherwise (not TLS, no common version or cipher, an alert).
    TlsProtocol(String),
    /// The connection opened but no answer began in time.
    FirstByteTimeout(Duration),
    /// The answer began, then stopped arriving.
    StalledBody(Duration),
    /// The answer kept arriving, too slowly to be whole within the request's total time.
    SlowAnswer(Duration),
    /// The answer was larger than the cap (refused at the headers when its length was given).
    ResponseTooLarge {
        /// The length the server announced, if it did.
        announced: Option<u64>,
        /// The cap.
        cap: usize,
    },
    /// The server answered with a redirect, which kvrun never follows.
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Where it pointed.
        location: Option<String>,
    },
    /// The connection closed before a whole answer.
    ConnectionClosed,
}

impl NetworkCause {
    /// The stable kind, for `--output json` and the README's table.
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkCause::NameResolution => "name-resolution",
            NetworkCause::ConnectionRefused => "connection-refused",
            NetworkCause::ConnectTimeout(_) => "connect-timeout",
            NetworkCause::TlsUntrusted(_) => "tls-untrusted",
            NetworkCause::TlsNameMismatch => "tls-name-mismatch",
            NetworkCause::TlsProtocol(_) => "tls-protocol",
            NetworkCause::FirstByteTimeout(_) => "first-byte-timeout",
            NetworkCause::StalledBody(_) => "stalled-body",
            NetworkCause::SlowAnswer(_) => "slow-answer",
            NetworkCause::ResponseTooLarge { .. } => "response-too-large",
            NetworkCause::Redirect { .. } => "redirect",
            NetworkCause::ConnectionClosed => "connection-closed",
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>, origin: &str) -> fmt::Result {
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        match self {
            NetworkCause::NameResolution => {
                write!(f, "could not reach {origin}: the host name {host} does not resolve")
            }
            NetworkCause::ConnectionRefused => {
                write!(f, "could not reach {origin}: the connection was refused (nothing listens there)")
            }
            NetworkCause::ConnectTimeout(d) => write!(
                f,
                "could not reach {origin}: the connection did not open within {}",
                seconds(*d)
            ),
            NetworkCause::TlsUntrusted(why) => {
                write!(f, "could not talk to {origin}: its TLS certificate is not trusted ({why})")
            }
            NetworkCause::TlsNameMismatch => write!(
                f,
                "could not talk to {origin}: its TLS certificate is for another name than {host}"
            ),
            NetworkCause::TlsProtocol(why) => {
                write!(f, "could not talk to {origin}: the TLS handshake failed ({why})")
            }
            NetworkCause::FirstByteTimeout(d) => write!(
                f,
                "{origin} accepted the connection but sent no answer within {}",
                seconds(*d)
            ),
            NetworkCause::StalledBody(d) => write!(
                f,
                "{origin} stopped sending its answer midway (nothing for {})",
                seconds(*d)
            ),
            NetworkCause::SlowAnswer(d) => write!(
                f,
                "{origin} sent its answer too slowly: it was not whole after {}",
                seconds(*d)
            ),
            NetworkCause::ResponseTooLarge {
                announced: Some(length),
                cap,
            } => write!(
                f,
                "{origin} announced an answer of {length} bytes, over the limit of {cap}; it was refused unread"
            ),
            NetworkCause::ResponseTooLarge { announced: None, cap } => {
                write!(f, "{origin} sent an answer larger than the limit of {cap} bytes")
            }
            NetworkCause::Redirect { status, location } => write!(
                f,
                "{origin} answered with a redirect (HTTP {status}{}); kvrun does not follow redirects",
                location
                    .as_deref()
                    .map(|l| format!(" to {}", l.chars().take(200).collect::<String>()))
                    .unwrap_or_default()
            ),
            NetworkCause::ConnectionClosed => {
                write!(f, "{origin} closed the connection before a whole answer")
            }
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            NetworkCause::NameResolution => "check the vault URL (--vault, KVRUN_VAULT_URL, the workspace config) and this machine's DNS",
            NetworkCause::ConnectionRefused => "check that the vault is running and that the URL has the right port",
            NetworkCause::ConnectTimeout(_) => "check the network path to the vault (firewall, proxy, private endpoint)",
            NetworkCause::TlsUntrusted(_) => "give the vault's CA with --ca-cert (the local vault's is DATA_DIR/ca.pem)",
            NetworkCause::TlsNameMismatch => "use the host name that the vault's certificate names",
            NetworkCause::TlsProtocol(_) => "check that the URL points at an HTTPS vault (TLS 1.2 or later) and not at a plain HTTP port",
            NetworkCause::FirstByteTimeout(_)
            | NetworkCause::StalledBody(_)
            | NetworkCause::SlowAnswer(_)
            | NetworkCause::ConnectionClosed => {
                "the vault or something on the way is overloaded or broken; try again later"
            }
            NetworkCause::ResponseTooLarge { .. } | NetworkCause::Redirect { .. } => {
                "this is not how Key Vault answers: check that the vault URL is the vault itself"
            }
        }
    }
}

/// `1.5 s`, `30 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", (d.as_secs_f64() * 10.0).round() / 10.0)
}

/// Everything that can go wrong in kvrun. No variant ever holds a secret value or a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The secret, or the version, does not exist.
    NotFound(String),
    /// The vault refused the request (HTTP 403).
    Denied(String),
    /// The host's network policy refused the request; nothing was sent.
    PolicyDenied(String),
    /// The operation conflicts with the secret's state.
    Conflict(String),
    /// The vault did not accept the credential.
    Unauthenticated(String),
    /// A secret name breaks `^[0-9A-Za-z-]{1,127}$`.
    InvalidName(String),
    /// Another argument is out of bounds, or the vault answered 400.
    InvalidArgument(String),
    /// The vault kept failing (408, 5xx) until the retry budget ran out.
    Unavailable(String),
    /// The vault kept throttling (429) until the retry budget ran out.
    Throttled {
        /// How long the requests and retries took.
        tried: Duration,
        /// What the vault said last.
        detail: String,
    },
    /// The vault could not be reached or read, for the cause the host saw on the wire.
    Network {
        /// The cause.
        cause: NetworkCause,
        /// The vault's origin.
        origin: String,
    },
    /// The vault's answer could not be read or understood (no cause seen on the wire).
    Transport(String),
    /// Any other error answer from the vault.
    Service {
        /// HTTP status.
        status: u16,
        /// Key Vault error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The configuration is wrong (vault URL, CA file, token, allow-list entry, …).
    Config(String),
    /// A file or socket operation failed.
    Io {
        /// What kvrun was doing.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The local vault's storage failed.
    Storage(String),
    /// Compiling, instantiating or running a component failed (including traps).
    Component(String),
    /// A component call ran past its deadline.
    Timeout(String),
    /// The engine's instance pool is full: too many clients or runs at once.
    Capacity(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The same error with the vault's URL `url` in its message replaced by `name`: "the
    /// local vault (DIR)" for the embedded vault, which serves its URL only while its process
    /// runs, and "the run's vault" inside a run, which is told no host path.
    pub fn naming_vault(self, url: &str, name: &str) -> Error {
        let url = url.trim_end_matches('/');
        if url.is_empty() {
            return self;
        }
        let named = |text: String| text.replace(url, name);
        match self {
            Error::NotFound(m) => Error::NotFound(named(m)),
            Error::Denied(m) => Error::Denied(named(m)),
            Error::Conflict(m) => Error::Conflict(named(m)),
            Error::Unauthenticated(m) => Error::Unauthenticated(named(m)),
            Error::InvalidArgument(m) => Error::InvalidArgument(named(m)),
            Error::Unavailable(m) => Error::Unavailable(named(m)),
            Error::Transport(m) => Error::Transport(named(m)),
            Error::Throttled { tried, detail } => Error::Throttled {
                tried,
                detail: named(detail),
            },
            Error::Network { cause, origin } => Error::Network {
                cause,
                origin: named(origin),
            },
            other => other,
        }
    }

    /// An [`Error::Io`] with what kvrun was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A short advice line for the user, if there is one.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::NotFound(_) => "check the name with `kvrun secret list`",
            Error::Denied(_) => {
                "the vault refused: check that the identity has the data-plane permission for this operation and that the secret is enabled"
            }
            Error::PolicyDenied(_) => {
                "the request was blocked before it was sent: check the vault URL, the run's --secret grants and --allow-http origins"
            }
            Error::Unauthenticated(_) => {
                "give a token the vault accepts (KVRUN_ACCESS_TOKEN, --token-file) or check the Azure credential (--auth)"
            }
            Error::Conflict(_) => {
                "a deleted secret keeps its name until purged: `kvrun secret recover NAME` or `kvrun secret purge NAME`"
            }
            Error::Throttled { .. } => "the vault is rate-limiting this identity; wait a minute and try again",
            Error::Unavailable(_) => "the vault kept failing; try again later",
            Error::Network { cause, .. } => cause.hint(),
            Error::Transport(_) => {
                "check that the vault URL points at a Key Vault (or the local vault) and not at another service"
            }
            Error::Timeout(_) => "the vault did not answer in time; check that it is reachable",
            Error::Capacity(_) => {
                "wait for running clients or runs to end, or raise RuntimeOptions::max_instances"
            }
            _ => return None,
        })
    }

    /// The outcome an audit record gives a failed access: its kind, never its message.
    pub fn audit_outcome(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::Denied(_) => "error: denied",
            Error::Unauthenticated(_) => "error: unauthenticated",
            Error::Unavailable(_) | Error::Timeout(_) => "error: unavailable",
            Error::Transport(_) => "error: transport",
            _ => "error",
        }
    }

    /// The stable kind of this error: what `--output json` reports, and the README's table.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::Denied(_) => "denied-by-vault",
            Error::PolicyDenied(_) => "denied-by-policy",
            Error::Conflict(_) => "conflict",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::InvalidName(_) => "invalid-name",
            Error::InvalidArgument(_) => "invalid-argument",
            Error::Unavailable(_) => "unavailable",
            Error::Throttled { .. } => "throttled",
            Error::Network { cause, .. } => cause.kind(),
            Error::Transport(_) => "bad-answer",
            Error::Service { .. } => "service",
            Error::Config(_) => "config",
            Error::Io { .. } => "io",
            Error::Storage(_) => "storage",
            Error::Component(_) => "component",
            Error::Timeout(_) => "timeout",
            Error::Capacity(_) => "capacity",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(m)
            | Error::Denied(m)
            | Error::PolicyDenied(m)
            | Error::Conflict(m)
            | Error::Unauthenticated(m) => write!(f, "{m}"),
            Error::InvalidName(m) => write!(f, "{m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unavailable(m) => write!(f, "{m}"),
            Error::Throttled { tried, detail } => {
                write!(f, "{detail}, for {} of retries", seconds(*tried))
            }
            Error::Network { cause, origin } => cause.describe(f, origin),
            Error::Transport(m) => write!(f, "{m}"),
            Error::Service {
                status,
                code,
                message,
            } => {
                write!(f, "the vault answered HTTP {status}")?;
                let message = message.trim();
                match (
                    code.is_empty(),
                    message.is_empty() || message == format!("HTTP {status}"),
                ) {
                    (true, true) => Ok(()),
                    (false, true) => write!(f, " {code}"),
                    (true, false) => write!(f, ": {message}"),
                    (false, false) => write!(f, " {code}: {message}"),
                }
            }
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Storage(m) => write!(f, "local vault storage error: {m}"),
            Error::Component(m) => write!(f, "component error: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Capacity(m) => write!(f, "at capacity: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
