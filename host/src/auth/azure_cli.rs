//! `azure-cli`: the Azure CLI's login, through `az account get-access-token --resource …`
//! (`KVRUN_AZ_COMMAND` names another command).

use super::provider::{parse_token, AccessToken, TokenProvider};

impl TokenProvider {
    /// A token for `scope` (in `tenant`, if given) from `az account get-access-token`.
    pub(super) async fn azure_cli(
        &self,
        scope: &str,
        tenant: Option<&str>,
    ) -> std::result::Result<AccessToken, String> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        let mut command = tokio::process::Command::new(&self.options.az_command);
        command.args([
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            resource,
        ]);
        if let Some(tenant) = tenant {
            command.args(["--tenant", tenant]);
        }
        command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(self.options.timeout, command.output())
            .await
            .map_err(|_| "az did not answer in time".to_string())?
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}); install the Azure CLI or choose another --auth",
                    self.options.az_command.display()
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let line = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            return Err(format!("az failed ({line}); run `az login`"));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|_| "az printed no JSON".to_string())?;
        parse_token(&json).ok_or_else(|| "az printed no access token".to_string())
    }
}
