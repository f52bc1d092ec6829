//! Configuration from the component's environment, set by the host.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `KVRUN_VAULT_URL` | the vault, `https://HOST[:PORT]` (`http` only for loopback test servers) | required |
//! | `KVRUN_API_VERSION` | the Key Vault `api-version` sent on every request | `7.5` |
//! | `KVRUN_RETRY_MAX_ATTEMPTS` | attempts per request, first one included | `5` |
//! | `KVRUN_RETRY_BASE_DELAY_MS` | first backoff delay; doubles per retry, with jitter | `500` |
//! | `KVRUN_RETRY_MAX_DELAY_MS` | cap on one backoff delay (and on `Retry-After`) | `16000` |
//! | `KVRUN_RETRY_DEADLINE_MS` | overall budget for one operation, retries included | `60000` |

use crate::bindings::kvrun::secrets::types::Error;

/// Where the vault is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Config {
    /// `true` for `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// The `api-version` query parameter.
    pub api_version: String,
    /// Retry budget.
    pub retry: RetryPolicy,
}

/// Bounds on retrying one request.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay in milliseconds.
    pub base_delay_ms: u64,
    /// Largest single delay in milliseconds.
    pub max_delay_ms: u64,
    /// Overall deadline for one operation in milliseconds.
    pub deadline_ms: u64,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Config, Error> {
        let url = std::env::var("KVRUN_VAULT_URL").map_err(|_| {
            Error::InvalidArgument(
                "KVRUN_VAULT_URL is not set in the component's environment: the host must set it to the vault's URL".into(),
            )
        })?;
        let (https, authority) = parse_vault_url(&url)?;
        let api_version = std::env::var("KVRUN_API_VERSION").unwrap_or_else(|_| "7.5".to_string());
        if api_version.is_empty()
            || !api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(Error::InvalidArgument(format!(
                "KVRUN_API_VERSION {api_version:?} is not an api-version such as 7.5 or 2025-07-01"
            )));
        }
        let retry = RetryPolicy {
            max_attempts: env_number("KVRUN_RETRY_MAX_ATTEMPTS", 5)?.clamp(1, 20) as u32,
            base_delay_ms: env_number("KVRUN_RETRY_BASE_DELAY_MS", 500)?,
            max_delay_ms: env_number("KVRUN_RETRY_MAX_DELAY_MS", 16_000)?,
            deadline_ms: env_number("KVRUN_RETRY_DEADLINE_MS", 60_000)?,
        };
        Ok(Config {
            https,
            authority,
            api_version,
            retry,
        })
    }

    /// `scheme://authority`, for messages and for checking `nextLink`.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority
        )
    }
}

fn env_number(key: &str, default: u64) -> Result<u64, Error> {
    match std::env::var(key) {
        Err(_) => Ok(default),
        Ok(text) => text
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("{key}={text:?} is not a whole number"))),
    }
}

/// Splits `https://host[:port][/]` into the scheme flag and the authority.
fn parse_vault_url(url: &str) -> Result<(bool, String), Error> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "KVRUN_VAULT_URL {url:?} is not a vault URL ({why}); expected https://HOST[:PORT]"
        ))
    };
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("the scheme must be https"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.bytes().any(|b| {
        matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\')
            || b.is_ascii_whitespace()
            || b.is_ascii_control()
    }) {
        return Err(bad("it must not have a path, query, or user info"));
    }
    Ok((https, authority.to_string()))
}
