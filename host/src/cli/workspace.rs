//! `kvrun workspace show`: which vault commands use here, and why.

use super::args::Global;
use super::connect;
use super::output::report;
use kvrun::vault_choice::VaultSource;
use kvrun::Result;
use serde_json::json;
use std::process::ExitCode;

/// `kvrun workspace show`.
pub(crate) async fn workspace_show(global: &Global) -> Result<ExitCode> {
    let connection = connect(global).await?;
    let url = connection.options.vault_url.clone();
    let (vault, from, config) = match &connection.source {
        VaultSource::Explicit => (url, "--vault / KVRUN_VAULT_URL".to_string(), None),
        VaultSource::Workspace(config, how) => (
            url,
            format!("workspace config, resolved from {how}"),
            Some(config.path.clone()),
        ),
        VaultSource::Embedded(dir) => (
            format!("the local vault ({})", dir.display()),
            "no --vault, KVRUN_VAULT_URL or workspace config: the embedded local vault, served only while a command runs".to_string(),
            None,
        ),
    };
    let mut text = vec![format!("vault: {vault}"), format!("from: {from}")];
    if let Some(path) = &config {
        text.push(format!("config: {}", path.display()));
    }
    report(
        global.output,
        json!({ "vault": vault, "from": from, "config": config }),
        text,
    );
    connection.close().await;
    Ok(ExitCode::SUCCESS)
}
