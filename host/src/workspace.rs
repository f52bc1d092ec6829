//! Finding the workspace's vault, the way the original SDK's `Workspace.from_config()` finds
//! the workspace.
//!
//! From the current directory upwards, the first of these files that exists and describes a
//! workspace wins (each name is searched up to the root before the next is tried, as the
//! original SDK does):
//!
//! | file | holds |
//! |---|---|
//! | `.kvrun/config.json` | `{"vault_url": "https://NAME.vault.azure.net"}` or a workspace |
//! | `.azureml/config.json`, `.azureml/project.json` | a workspace |
//! | `aml_config/config.json`, `aml_config/project.json` | a workspace |
//! | `config.json`, `project.json` | a workspace only: a bare `vault_url` here is ignored, and files that describe no workspace are skipped |
//!
//! A vault URL read from a file must be an `https` Key Vault URL
//! ([`crate::auth::is_key_vault_host`]); anything else is refused with an error that
//! names the file, since a file found by walking up from the current directory (a cloned
//! repository, a shared directory) is not the user's explicit choice.
//!
//! A workspace is `subscription_id`, `resource_group`, `workspace_name`, or a `Scope` string
//! `/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W`.
//! Its vault is resolved through Azure Resource Manager (the workspace's `keyVault` resource
//! id, then that vault's `vaultUri`) with the host's Azure credentials, and the answer is
//! cached in the cache directory (`workspaces.json`).

use crate::auth::{is_key_vault_host, TokenProvider};
use crate::error::{Error, Result};
use crate::policy::{Origin, Scheme};
use crate::transport::{connector, TransportOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};

/// Config file names, in search order.
const CANDIDATES: &[&str] = &[
    ".kvrun/config.json",
    ".azureml/config.json",
    ".azureml/project.json",
    "aml_config/config.json",
    "aml_config/project.json",
    "config.json",
    "project.json",
];

/// Names so common that a file called so counts only when it describes a workspace.
const GENERIC: &[&str] = &["config.json", "project.json"];

/// A workspace in Azure Resource Manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceId {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Workspace name.
    pub workspace_name: String,
}

impl WorkspaceId {
    /// The ARM resource path.
    pub fn resource_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.workspace_name
        )
    }
}

/// What a config file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigTarget {
    /// The vault URL, directly.
    Vault(String),
    /// A workspace whose vault is resolved through ARM.
    Workspace(WorkspaceId),
}

/// A config file found on the way up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceConfig {
    /// Where it was found.
    pub path: PathBuf,
    /// What it names.
    pub target: ConfigTarget,
}

/// A resolved vault and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The vault URL.
    pub vault_url: String,
    /// `config`, `cache` or `arm`.
    pub source: &'static str,
}

/// Searches from `start` upwards.
pub fn find(start: &Path) -> Result<Option<WorkspaceConfig>> {
    for candidate in CANDIDATES {
        for dir in start.ancestors() {
            let path = dir.join(candidate);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?;
            match parse(&text) {
                Some(ConfigTarget::Vault(_)) if GENERIC.contains(candidate) => {
                    tracing::debug!(path = %path.display(), "a generic config file may name a workspace, not a vault URL; skipped")
                }
                Some(target) => return Ok(Some(WorkspaceConfig { path, target })),
                None => tracing::debug!(path = %path.display(), "not a workspace config; skipped"),
            }
        }
    }
    Ok(None)
}

/// Reads a config: a vault URL, or a workspace (fields or `Scope`).
pub fn parse(text: &str) -> Option<ConfigTarget> {
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| json[*n].as_str())
            .map(str::to_string)
    };
    if let Some(url) = field(&["vault_url", "vaultUrl", "key_vault_url"]) {
        return Some(ConfigTarget::Vault(url));
    }
    if let (Some(subscription_id), Some(resource_group), Some(workspace_name)) = (
        field(&["subscription_id", "subscriptionId"]),
        field(&["resource_group", "resourceGroup"]),
        field(&["workspace_name", "workspaceName"]),
    ) {
        return Some(ConfigTarget::Workspace(WorkspaceId {
            subscription_id,
            resource_group,
            workspace_name,
        }));
    }
    let scope = field(&["Scope", "scope"])?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        ["", "subscriptions", s, "resourceGroups", r, "providers", "Microsoft.MachineLearningServices", "workspaces", w] => {
            Some(ConfigTarget::Workspace(WorkspaceId {
                subscription_id: s.to_string(),
                resource_group: r.to_string(),
                workspace_name: w.to_string(),
            }))
        }
        _ => None,
    }
}

/// Resolves a config to a vault URL: directly, from the cache, or through ARM at
/// `management` (e.g. `https://management.azure.com`).
pub async fn resolve(
    config: &WorkspaceConfig,
    provider: &TokenProvider,
    management: &str,
    cache_dir: Option<&Path>,
) -> Result<Resolved> {
    let workspace = match &config.target {
        ConfigTarget::Vault(url) => {
            check_key_vault_url(url, &config.path)?;
            return Ok(Resolved {
                vault_url: url.clone(),
                source: "config",
            });
        }
        ConfigTarget::Workspace(workspace) => workspace,
    };
    let key = format!(
        "{}{}",
        management.trim_end_matches('/'),
        workspace.resource_path()
    );
    let cache_file = cache_dir.map(|d| d.join("workspaces.json"));
    let mut cache: serde_json::Map<String, serde_json::Value> = cache_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(url) = cache.get(&key).and_then(|v| v.as_str()) {
        check_key_vault_url(url, &config.path)?;
        return Ok(Resolved {
            vault_url: url.to_string(),
            source: "cache",
        });
    }
    let management = management.trim_end_matches('/');
    let scope = format!("{management}/.default");
    let workspace_json = arm_get_json(
        provider,
        &format!(
            "{management}{}?api-version=2024-04-01",
            workspace.resource_path()
        ),
        &scope,
    )
    .await?;
    let vault_id = workspace_json["properties"]["keyVault"]
        .as_str()
        .ok_or_else(|| {
            Error::Config(format!(
                "workspace {} has no key vault in its properties",
                workspace.workspace_name
            ))
        })?;
    if !vault_id.starts_with("/subscriptions/") || vault_id.contains("..") || vault_id.contains('?')
    {
        return Err(Error::Config(format!(
            "the workspace's key vault id {vault_id:?} is not a resource id"
        )));
    }
    let vault_json = arm_get_json(
        provider,
        &format!("{management}{vault_id}?api-version=2023-07-01"),
        &scope,
    )
    .await?;
    let vault_url = vault_json["properties"]["vaultUri"]
        .as_str()
        .ok_or_else(|| Error::Config(format!("the key vault {vault_id} has no vaultUri")))?
        .trim_end_matches('/')
        .to_string();
    check_key_vault_url(&vault_url, &config.path)?;
    cache.insert(key, serde_json::Value::String(vault_url.clone()));
    if let (Some(dir), Some(file)) = (cache_dir, cache_file) {
        crate::private_files::private_dir(dir, "the cache directory")?;
        let text = serde_json::to_string_pretty(&cache).expect("a map serialises");
        crate::private_files::write(&file, text.as_bytes(), 0o600, "the workspace cache")?;
    }
    Ok(Resolved {
        vault_url,
        source: "arm",
    })
}

/// `GET url` on Azure Resource Manager with a token for `scope` from `provider` (and its
/// trust and timeout).
async fn arm_get_json(
    provider: &TokenProvider,
    url: &str,
    scope: &str,
) -> Result<serde_json::Value> {
    let token = provider.token(scope, None, false).await?;
    let options = provider.options();
    let transport = TransportOptions {
        ca_pem: options.ca_pem.clone(),
        public_roots: true,
        connect_timeout: options.timeout,
        ..TransportOptions::default()
    };
    let client: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector(&transport)?);
    let request = http::Request::get(url)
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {}", token.expose()))
        .body(Full::new(Bytes::new()))
        .map_err(|e| Error::Config(format!("bad URL {url}: {e}")))?;
    let response = tokio::time::timeout(options.timeout, client.request(request))
        .await
        .map_err(|_| Error::Timeout(format!("{url} did not answer in time")))?
        .map_err(|e| Error::Transport(format!("could not reach {url}: {e}")))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), 4 << 20)
        .collect()
        .await
        .map_err(|_| Error::Transport(format!("{url} sent an unreadable answer")))?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    match status.as_u16() {
        200..=299 => Ok(json),
        401 => Err(Error::Unauthenticated(format!(
            "Azure Resource Manager did not accept the credential for {url} (HTTP 401)"
        ))),
        403 => Err(Error::Denied(format!(
            "Azure Resource Manager denied reading {url} (HTTP 403 {})",
            json["error"]["message"].as_str().unwrap_or("")
        ))),
        404 => Err(Error::NotFound(format!(
            "Azure Resource Manager has no {url} ({})",
            json["error"]["message"].as_str().unwrap_or("HTTP 404")
        ))),
        other => Err(Error::Service {
            status: other,
            code: json["error"]["code"].as_str().unwrap_or("").to_string(),
            message: json["error"]["message"].as_str().unwrap_or("").to_string(),
        }),
    }
}

/// Refuses a vault URL from `file` that is not `https://NAME.<a Key Vault domain>` (an origin
/// as [`Origin::parse`] reads it: no user info, no path).
fn check_key_vault_url(url: &str, file: &Path) -> Result<()> {
    match Origin::parse(url) {
        Ok(origin) if origin.scheme() == Scheme::Https && is_key_vault_host(origin.host()) => Ok(()),
        _ => Err(Error::Config(format!(
            "{} names the vault {url:?}, which is not an https Key Vault URL (https://NAME.vault.azure.net); a vault from a config file must be one. Give another vault explicitly with --vault, or remove the file",
            file.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_a_vault_or_a_workspace() {
        assert_eq!(
            parse(r#"{"vault_url":"https://kv.vault.azure.net"}"#),
            Some(ConfigTarget::Vault("https://kv.vault.azure.net".into()))
        );
        let ws = WorkspaceId {
            subscription_id: "s".into(),
            resource_group: "r".into(),
            workspace_name: "w".into(),
        };
        assert_eq!(
            parse(r#"{"subscription_id":"s","resource_group":"r","workspace_name":"w"}"#),
            Some(ConfigTarget::Workspace(ws.clone()))
        );
        assert_eq!(
            parse(
                r#"{"Id":null,"Scope":"/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w"}"#
            ),
            Some(ConfigTarget::Workspace(ws))
        );
        assert_eq!(parse(r#"{"compilerOptions":{}}"#), None);
        let file = Path::new("/repo/.kvrun/config.json");
        assert!(check_key_vault_url("https://kv.vault.azure.net", file).is_ok());
        assert!(check_key_vault_url("https://kv.vault.azure.cn:443/", file).is_ok());
        for bad in [
            "http://kv.vault.azure.net",
            "https://127.0.0.1:8443",
            "https://kv.vault.azure.net.evil.com",
            "https://user@kv.vault.azure.net",
            "https://evil.com@kv.vault.azure.net",
        ] {
            let err = check_key_vault_url(bad, file).unwrap_err().to_string();
            assert!(err.contains("/repo/.kvrun/config.json"), "{err}");
        }
        assert_eq!(parse("not json"), None);
    }
}
