//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in kvrun. No variant ever holds a secret value or a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The secret, or the version, does not exist.
    NotFound(String),
    /// The network policy or the vault refused the request.
    Denied(String),
    /// The operation conflicts with the secret's state.
    Conflict(String),
    /// The vault did not accept the credential.
    Unauthenticated(String),
    /// A secret name breaks `^[0-9A-Za-z-]{1,127}$`.
    InvalidName(String),
    /// Another argument is out of bounds, or the vault answered 400.
    InvalidArgument(String),
    /// The vault kept failing (408, 429, 5xx) until the retry budget ran out.
    Unavailable(String),
    /// The vault could not be reached, or its answer could not be read.
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
                "the request was blocked: check that the vault URL is the vault you meant and that access is granted"
            }
            Error::Unauthenticated(_) => {
                "set KVRUN_ACCESS_TOKEN or --token-file to a token the vault accepts"
            }
            Error::Unavailable(_) | Error::Transport(_) => {
                "check that the vault is running and reachable (--vault, KVRUN_VAULT_URL) and that --ca-cert names its CA"
            }
            Error::Timeout(_) => "the vault did not answer in time; check that it is reachable",
            Error::Capacity(_) => {
                "wait for running clients or runs to end, or raise RuntimeOptions::max_instances"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Denied(m) => write!(f, "denied: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Unauthenticated(m) => write!(f, "unauthenticated: {m}"),
            Error::InvalidName(m) => write!(f, "{m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Unavailable(m) => write!(f, "vault unavailable: {m}"),
            Error::Transport(m) => write!(f, "vault unreachable: {m}"),
            Error::Service {
                status,
                code,
                message,
            } => write!(f, "the vault answered HTTP {status} {code}: {message}"),
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
