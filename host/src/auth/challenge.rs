//! The vault's `401` challenge: `WWW-Authenticate: Bearer authorization="…", resource="…"`.

use std::collections::HashMap;

/// What a vault's `401` asks for: the tenant (from the authorization URI) and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Tenant id, the first path segment of `authorization`/`authorization_uri`.
    pub tenant: Option<String>,
    /// `scope`, or `resource` + `/.default`.
    pub scope: String,
    /// The resource's host, which the vault's host must be in.
    pub resource_host: String,
}

impl Challenge {
    /// Parses `Bearer authorization="…", resource="…"` (or `scope=`).
    pub fn parse(header: &str) -> Option<Challenge> {
        let rest = header.trim().strip_prefix("Bearer")?.trim();
        let mut params = HashMap::new();
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            params.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
        let authority = params
            .get("authorization")
            .or(params.get("authorization_uri"))?;
        let tenant = authority
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').nth(1))
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let scope = match (params.get("scope"), params.get("resource")) {
            (Some(scope), _) => scope.clone(),
            (None, Some(resource)) => format!("{}/.default", resource.trim_end_matches('/')),
            (None, None) => return None,
        };
        let resource_host = scope
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .unwrap_or("")
            .to_ascii_lowercase();
        Some(Challenge {
            tenant,
            scope,
            resource_host,
        })
    }

    /// Whether a vault on `host` may be given a token for this challenge's resource: the
    /// host must be a subdomain of the resource's host (as the Azure SDKs check).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        !self.resource_host.is_empty() && host.ends_with(&format!(".{}", self.resource_host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_and_check_the_domain() {
        let c = Challenge::parse(r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#).unwrap();
        assert_eq!(
            c.tenant.as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(c.scope, "https://vault.azure.net/.default");
        assert!(c.covers("myvault.vault.azure.net"));
        assert!(!c.covers("vault.azure.net.evil.com"));
        assert!(!c.covers("evilvault.azure.net"));
        let c = Challenge::parse(r#"Bearer authorization_uri="https://login.chinacloudapi.cn/t1", scope="https://vault.azure.cn/.default""#).unwrap();
        assert_eq!(c.tenant.as_deref(), Some("t1"));
        assert!(c.covers("kv.vault.azure.cn"));
        assert!(Challenge::parse("Basic realm=x").is_none());
        assert!(Challenge::parse(r#"Bearer resource="https://vault.azure.net""#).is_none());
    }
}
