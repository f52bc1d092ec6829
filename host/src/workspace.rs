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
//! | `config.json`, `project.json` | a workspace (files that describe none are skipped) |
//!
//! A workspace is `subscription_id`, `resource_group`, `workspace_name`, or a `Scope` string
//! `/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W`.
//! Its vault is resolved through Azure Resource Manager (the workspace's `keyVault` resource
//! id, then that vault's `vaultUri`) with the host's Azure credentials, and the answer is
//! cached in the cache directory (`workspaces.json`).

use crate::azure_auth::TokenProvider;
use crate::{Error, Result};
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
            return Ok(Resolved {
                vault_url: url.clone(),
                source: "config",
            })
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
        return Ok(Resolved {
            vault_url: url.to_string(),
            source: "cache",
        });
    }
    let management = management.trim_end_matches('/');
    let scope = format!("{management}/.default");
    let workspace_json = provider
        .get_json(
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
    let vault_json = provider
        .get_json(
            &format!("{management}{vault_id}?api-version=2023-07-01"),
            &scope,
        )
        .await?;
    let vault_url = vault_json["properties"]["vaultUri"]
        .as_str()
        .ok_or_else(|| Error::Config(format!("the key vault {vault_id} has no vaultUri")))?
        .trim_end_matches('/')
        .to_string();
    cache.insert(key, serde_json::Value::String(vault_url.clone()));
    if let (Some(dir), Some(file)) = (cache_dir, cache_file) {
        crate::component_cache::create_private_dir(dir)?;
        let text = serde_json::to_string_pretty(&cache).expect("a map serialises");
        std::fs::write(&file, text)
            .map_err(|e| Error::io(format!("could not write {}", file.display()), e))?;
    }
    Ok(Resolved {
        vault_url,
        source: "arm",
    })
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
        assert_eq!(parse("not json"), None);
    }
}
