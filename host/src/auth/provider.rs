//! The token provider: the chain of sources, the cache, coalesced refreshes, and the HTTP
//! exchange with token endpoints that the sources share.
//!
//! Tokens are cached per tenant and scope and refreshed five minutes before expiry; one lock
//! around fetching coalesces concurrent refreshes into one request. When every source fails,
//! the error lists each source and why it failed. Tokens live in [`SecretString`] and never
//! print.

use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::transport::{connector, TransportOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Refresh a token this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long the automatic chain waits for IMDS to answer the first time (as the Azure SDKs).
pub const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The Azure Instance Metadata Service.
pub(super) const IMDS_DEFAULT: &str = "http://169.254.169.254";

/// One way to get a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Service principal with a client secret.
    ClientSecret,
    /// Workload identity federation (Kubernetes).
    WorkloadIdentity,
    /// Managed identity (App Service / ML compute endpoint, else IMDS).
    ManagedIdentity,
    /// The Azure CLI's login.
    AzureCli,
}

impl AuthMethod {
    /// The name used in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::ClientSecret => "client-secret",
            AuthMethod::WorkloadIdentity => "workload-identity",
            AuthMethod::ManagedIdentity => "managed-identity",
            AuthMethod::AzureCli => "azure-cli",
        }
    }
}

/// Where the sources live; the defaults come from the environment. `Debug` shows which
/// variables are set, never their values (a client secret is one of them).
#[derive(Clone)]
pub struct AuthOptions {
    /// The sources to try, in order.
    pub methods: Vec<AuthMethod>,
    /// Entra authority host.
    pub authority_host: String,
    /// The IMDS base URL.
    pub imds_endpoint: String,
    /// `Some(timeout)`: IMDS is probed with this timeout first and skipped from then on if
    /// nothing answered (the automatic chain); `None`: IMDS gets the full `timeout`.
    pub imds_probe: Option<Duration>,
    /// The Azure CLI command.
    pub az_command: PathBuf,
    /// An extra CA to trust for token endpoints (tests, private clouds).
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of one token request.
    pub timeout: Duration,
    /// The `AZURE_*` and `IDENTITY_*` variables the sources read (a snapshot).
    pub env: std::collections::BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("methods", &self.methods)
            .field("authority_host", &self.authority_host)
            .field("imds_endpoint", &self.imds_endpoint)
            .field("imds_probe", &self.imds_probe)
            .field("az_command", &self.az_command)
            .field("timeout", &self.timeout)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The variables the sources read.
const SOURCE_VARS: &[&str] = &[
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
];

impl AuthOptions {
    /// The automatic chain, or only `method` when one is chosen.
    pub fn from_env(method: Option<AuthMethod>) -> AuthOptions {
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        AuthOptions {
            methods: match method {
                Some(m) => vec![m],
                None => vec![
                    AuthMethod::ClientSecret,
                    AuthMethod::WorkloadIdentity,
                    AuthMethod::ManagedIdentity,
                    AuthMethod::AzureCli,
                ],
            },
            authority_host: env("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com"),
            imds_endpoint: env("AZURE_POD_IDENTITY_AUTHORITY_HOST", IMDS_DEFAULT)
                .trim_end_matches('/')
                .to_string(),
            imds_probe: method.is_none().then_some(IMDS_PROBE_TIMEOUT),
            az_command: PathBuf::from(env("KVRUN_AZ_COMMAND", "az")),
            ca_pem: None,
            timeout: Duration::from_secs(30),
            env: SOURCE_VARS
                .iter()
                .filter_map(|k| {
                    std::env::var(k)
                        .ok()
                        .map(|v| (k.to_string(), SecretString::new(v)))
                })
                .collect(),
        }
    }
}

/// An access token and when it expires.
#[derive(Clone)]
pub(super) struct AccessToken {
    pub(super) token: SecretString,
    pub(super) expires_at: SystemTime,
}

impl AccessToken {
    fn fresh(&self) -> bool {
        self.expires_at
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > REFRESH_MARGIN)
    }
}

type TokenClient = HyperClient<crate::transport::Connector, Full<Bytes>>;

/// Gets, caches and refreshes tokens from the configured sources.
pub struct TokenProvider {
    pub(super) options: AuthOptions,
    client: TokenClient,
    cache: tokio::sync::Mutex<HashMap<(String, String), AccessToken>>,
    fetches: std::sync::atomic::AtomicU64,
    /// What the IMDS probe found: `Ok` it answers (later requests get the full timeout),
    /// `Err(why)` nothing answered (IMDS is skipped from then on).
    pub(super) imds_probed: std::sync::OnceLock<std::result::Result<(), String>>,
}

impl TokenProvider {
    /// A provider with these options.
    pub fn new(options: AuthOptions) -> Result<TokenProvider> {
        let transport = TransportOptions {
            ca_pem: options.ca_pem.clone(),
            public_roots: true,
            connect_timeout: options.timeout,
            ..TransportOptions::default()
        };
        Ok(TokenProvider {
            client: HyperClient::builder(TokioExecutor::new()).build(connector(&transport)?),
            options,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            fetches: std::sync::atomic::AtomicU64::new(0),
            imds_probed: std::sync::OnceLock::new(),
        })
    }

    /// How many tokens were fetched from a source (not served from the cache).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token for `scope` in `tenant` (`None`: the source's own tenant), from the cache
    /// while it is fresh. `force` skips the cache (after the vault refused a token).
    pub async fn token(
        &self,
        scope: &str,
        tenant: Option<&str>,
        force: bool,
    ) -> Result<SecretString> {
        let key = (tenant.unwrap_or("").to_string(), scope.to_string());
        let mut cache = self.cache.lock().await;
        if !force {
            if let Some(token) = cache.get(&key).filter(|t| t.fresh()) {
                return Ok(token.token.clone());
            }
        }
        let mut failures = Vec::new();
        for method in &self.options.methods {
            match self.fetch(*method, scope, tenant).await {
                Ok(token) => {
                    self.fetches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(source = method.name(), scope, "got an access token");
                    let value = token.token.clone();
                    cache.insert(key, token);
                    return Ok(value);
                }
                Err(why) => failures.push(format!("{}: {why}", method.name())),
            }
        }
        Err(Error::Unauthenticated(format!(
            "no token could be had: no Azure credential worked ({})",
            failures.join("; ")
        )))
    }

    async fn fetch(
        &self,
        method: AuthMethod,
        scope: &str,
        tenant: Option<&str>,
    ) -> std::result::Result<AccessToken, String> {
        match method {
            AuthMethod::ClientSecret => self.client_secret(scope, tenant).await,
            AuthMethod::WorkloadIdentity => self.workload_identity(scope, tenant).await,
            AuthMethod::ManagedIdentity => self.managed_identity(scope).await,
            AuthMethod::AzureCli => self.azure_cli(scope, tenant).await,
        }
    }

    /// A source variable from the options' snapshot, if set and not empty.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        self.options
            .env
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.expose().to_string())
    }

    /// The options this provider was made with.
    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    /// The Entra v2 token endpoint (client secret and workload identity).
    pub(super) async fn entra(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> std::result::Result<AccessToken, String> {
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || tenant.is_empty()
        {
            return Err(format!("{tenant:?} is not a tenant id"));
        }
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.options.authority_host.trim_end_matches('/')
        );
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = http::Request::post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        Ok(self.exchange(request, self.options.timeout).await?)
    }

    pub(super) async fn get_token(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> std::result::Result<AccessToken, TokenFailure> {
        let mut request = http::Request::get(url).header("accept", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.exchange(request, timeout).await
    }

    pub(super) async fn exchange(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> std::result::Result<AccessToken, TokenFailure> {
        let target = request
            .uri()
            .authority()
            .map_or("?", |a| a.as_str())
            .to_string();
        let plain_http = request.uri().scheme_str() == Some("http");
        let host = request.uri().host().unwrap_or("");
        if plain_http
            && !(host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.to_string() == "169.254.169.254"))
        {
            return Err(format!(
                "refusing to send a credential request over plain http to {target}"
            )
            .into());
        }
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| {
                TokenFailure::Unreached(format!(
                    "could not reach {target}: no answer within {timeout:?}"
                ))
            })?
            .map_err(|e| TokenFailure::Unreached(format!("could not reach {target}: {e}")))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|_| format!("{target} sent an unreadable answer"))?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{target} answered HTTP {status} without JSON"))?;
        if !status.is_success() {
            let code = json["error"]
                .as_str()
                .or(json["error"]["code"].as_str())
                .unwrap_or("error");
            let description = json["error_description"]
                .as_str()
                .or(json["error"]["message"].as_str())
                .unwrap_or("");
            let first_line = description.lines().next().unwrap_or("");
            return Err(format!("{target} refused: HTTP {status} {code}: {first_line}").into());
        }
        parse_token(&json)
            .ok_or_else(|| format!("{target} answered without an access token").into())
    }
}

/// Why a token endpoint gave no token.
pub(super) enum TokenFailure {
    /// Nothing answered (refused, reset, or silent past the timeout); the IMDS probe reads
    /// this as "no IMDS here".
    Unreached(String),
    /// It answered, but not with a token; or the request could not be made.
    Refused(String),
}

impl From<String> for TokenFailure {
    fn from(message: String) -> Self {
        TokenFailure::Refused(message)
    }
}

impl From<TokenFailure> for String {
    fn from(failure: TokenFailure) -> Self {
        match failure {
            TokenFailure::Unreached(message) | TokenFailure::Refused(message) => message,
        }
    }
}

/// Reads `access_token`/`accessToken` and the expiry in any of the forms the services use:
/// `expires_in` (seconds, number or string), `expires_on` (Unix seconds, number or string).
pub(super) fn parse_token(json: &serde_json::Value) -> Option<AccessToken> {
    let token = json["access_token"]
        .as_str()
        .or(json["accessToken"].as_str())?;
    let number = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let expires_at = if let Some(on) = number(&json["expires_on"]) {
        UNIX_EPOCH + Duration::from_secs(on)
    } else if let Some(seconds) = number(&json["expires_in"]) {
        SystemTime::now() + Duration::from_secs(seconds)
    } else {
        SystemTime::now() + REFRESH_MARGIN * 2
    };
    Some(AccessToken {
        token: SecretString::new(token.to_string()),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_print_the_values_they_hold() {
        let mut options = AuthOptions::from_env(None);
        options
            .env
            .insert("AZURE_CLIENT_SECRET".into(), "sp-secret-value".into());
        let shown = format!("{options:?}");
        assert!(shown.contains("AZURE_CLIENT_SECRET"), "{shown}");
        assert!(!shown.contains("sp-secret-value"), "{shown}");
    }

    #[test]
    fn tokens_parse_in_every_service_shape() {
        let entra =
            serde_json::json!({"token_type":"Bearer","expires_in":3599,"access_token":"t1"});
        assert!(parse_token(&entra).unwrap().fresh());
        let app_service = serde_json::json!({"access_token":"t2","expires_on":"4102444800","resource":"https://vault.azure.net"});
        assert!(parse_token(&app_service).unwrap().fresh());
        let stale = serde_json::json!({"access_token":"t3","expires_on":100});
        assert!(!parse_token(&stale).unwrap().fresh());
        let cli = serde_json::json!({"accessToken":"t4","expires_on":4102444800u64});
        assert_eq!(parse_token(&cli).unwrap().token.expose(), "t4");
        assert!(parse_token(&serde_json::json!({"error":"x"})).is_none());
    }
}
