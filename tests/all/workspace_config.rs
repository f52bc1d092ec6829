//! Finding the workspace's vault: the config search from the current directory upwards (the
//! original SDK's order), a vault URL given directly, and a workspace resolved through a fake
//! Azure Resource Manager on loopback, then cached.

use crate::common;

use common::{http_reply, RawServer, Step};
use kvrun::auth::{AuthMethod, AuthOptions, TokenProvider};
use kvrun::workspace::{self, ConfigTarget};
use std::time::Duration;

#[test]
fn the_search_goes_upwards_in_the_original_order() {
    let root = tempfile::tempdir().unwrap();
    let deep = root.path().join("project/src/train");
    std::fs::create_dir_all(&deep).unwrap();
    assert_eq!(workspace::find(&deep).unwrap(), None);

    std::fs::write(
        root.path().join("project/config.json"),
        r#"{"compilerOptions": {}}"#,
    )
    .unwrap();
    assert_eq!(
        workspace::find(&deep).unwrap(),
        None,
        "a config.json that is not a workspace is skipped"
    );

    std::fs::create_dir_all(root.path().join("project/src/aml_config")).unwrap();
    std::fs::write(
        root.path().join("project/src/aml_config/config.json"),
        r#"{"subscription_id":"s1","resource_group":"r1","workspace_name":"w1"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join(".azureml")).unwrap();
    std::fs::write(
        root.path().join(".azureml/config.json"),
        r#"{"Scope":"/subscriptions/s2/resourceGroups/r2/providers/Microsoft.MachineLearningServices/workspaces/w2"}"#,
    )
    .unwrap();
    let found = workspace::find(&deep).unwrap().unwrap();
    assert_eq!(
        found.path,
        root.path().join(".azureml/config.json"),
        ".azureml anywhere up the tree comes first"
    );

    std::fs::create_dir_all(root.path().join("project/.kvrun")).unwrap();
    std::fs::write(
        root.path().join("project/.kvrun/config.json"),
        r#"{"vault_url":"https://kv.vault.azure.net"}"#,
    )
    .unwrap();
    let found = workspace::find(&deep).unwrap().unwrap();
    assert_eq!(
        found.target,
        ConfigTarget::Vault("https://kv.vault.azure.net".into())
    );
}

#[tokio::test]
async fn a_workspace_is_resolved_through_arm_and_cached() {
    let entra = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply(
            "200 OK",
            &[],
            r#"{"access_token":"arm-token","expires_in":3600}"#,
        ))]
    })
    .await;
    let arm = RawServer::scripted(|_, request| {
        assert_eq!(request.header("authorization").as_deref(), Some("Bearer arm-token"));
        let line = request.request_line().to_string();
        let body = if line.contains("/workspaces/w1?") {
            r#"{"id":"x","properties":{"keyVault":"/subscriptions/s1/resourceGroups/r1/providers/Microsoft.KeyVault/vaults/kv1"}}"#
        } else if line.contains("/vaults/kv1?") {
            r#"{"properties":{"vaultUri":"https://kv1.vault.azure.net/"}}"#
        } else {
            r#"{"error":{"code":"NotFound","message":"no such resource"}}"#
        };
        let status = if body.contains("NotFound") { "404 Not Found" } else { "200 OK" };
        vec![Step::Write(http_reply(status, &[], body))]
    })
    .await;
    let mut auth = AuthOptions::from_env(None);
    auth.methods = vec![AuthMethod::ClientSecret];
    auth.authority_host = entra.url();
    let mut pems = entra.ca_pem.clone();
    pems.extend_from_slice(&arm.ca_pem);
    auth.ca_pem = Some(pems);
    auth.timeout = Duration::from_secs(5);
    auth.env = [
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), (*v).into()))
    .collect();
    let provider = TokenProvider::new(auth).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".azureml")).unwrap();
    std::fs::write(
        dir.path().join(".azureml/config.json"),
        r#"{"subscription_id":"s1","resource_group":"r1","workspace_name":"w1"}"#,
    )
    .unwrap();
    let config = workspace::find(dir.path()).unwrap().unwrap();
    let cache = dir.path().join("cache");
    let resolved = workspace::resolve(&config, &provider, &arm.url(), Some(&cache))
        .await
        .unwrap();
    assert_eq!(resolved.vault_url, "https://kv1.vault.azure.net");
    assert_eq!(resolved.source, "arm");
    let lines: Vec<String> = arm
        .requests()
        .iter()
        .map(|r| r.request_line().to_string())
        .collect();
    assert_eq!(lines[0], "GET /subscriptions/s1/resourceGroups/r1/providers/Microsoft.MachineLearningServices/workspaces/w1?api-version=2024-04-01 HTTP/1.1");
    assert_eq!(form_scope(&entra), format!("{}/.default", arm.url()));

    let again = workspace::resolve(&config, &provider, &arm.url(), Some(&cache))
        .await
        .unwrap();
    assert_eq!(again.source, "cache");
    assert_eq!(arm.requests().len(), 2, "the cache answered");

    std::fs::write(
        dir.path().join(".azureml/config.json"),
        r#"{"subscription_id":"s1","resource_group":"r1","workspace_name":"missing"}"#,
    )
    .unwrap();
    let config = workspace::find(dir.path()).unwrap().unwrap();
    let err = workspace::resolve(&config, &provider, &arm.url(), Some(&cache))
        .await
        .unwrap_err();
    assert!(matches!(err, kvrun::Error::NotFound(_)), "{err:?}");
}

fn form_scope(entra: &RawServer) -> String {
    let request = &entra.requests()[0];
    form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[test]
fn workspace_show_prints_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".kvrun")).unwrap();
    std::fs::write(
        dir.path().join(".kvrun/config.json"),
        r#"{"vault_url":"https://kv9.vault.azure.net"}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvrun"))
        .args(["workspace", "show"])
        .current_dir(dir.path())
        .env_remove("KVRUN_VAULT_URL")
        .env("KVRUN_ACCESS_TOKEN", "t")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    common::ok(&out);
    assert!(
        stdout.contains("vault: https://kv9.vault.azure.net"),
        "{stdout}"
    );
    assert!(
        stdout.contains("workspace config, resolved from config"),
        "{stdout}"
    );
    assert!(stdout.contains(".kvrun/config.json"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("using the vault https://kv9.vault.azure.net named by")
            && stderr.contains(".kvrun/config.json"),
        "the file that chose the vault is named on stderr: {stderr}"
    );
}

/// `kvrun ARGS` in `dir` with `env`, no vault given, the embedded vault in `data`.
async fn kvrun_in(
    dir: &std::path::Path,
    data: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvrun"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("KVRUN_VAULT_URL")
        .env_remove("KVRUN_ACCESS_TOKEN")
        .env("KVRUN_DATA_DIR", data)
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
        .env("SECRET_VALUE", "value-for-the-real-vault");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_in_a_parent_directory_never_gets_the_token_or_a_value() {
    let attacker = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let identity = RawServer::plain(|_, _| {
        vec![Step::Write(http_reply(
            "200 OK",
            &[],
            r#"{"access_token":"mi-token","expires_in":3600}"#,
        ))]
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let repo = home.path().join("cloned-repo");
    let work = repo.join("src");
    std::fs::create_dir_all(&work).unwrap();
    let set = [
        "secret",
        "set",
        "db-password",
        "--value-from-env",
        "SECRET_VALUE",
    ];
    let token = [("KVRUN_ACCESS_TOKEN", "user-token".to_string())];
    let managed = [
        (
            "IDENTITY_ENDPOINT",
            format!("http://{}/msi/token", identity.addr),
        ),
        ("IDENTITY_HEADER", "h".to_string()),
    ];

    // A bare config.json that names a vault URL is not a workspace config: skipped.
    std::fs::write(
        repo.join("config.json"),
        format!(r#"{{"vault_url":"{}"}}"#, attacker.url()),
    )
    .unwrap();
    let out = kvrun_in(&work, &data, &token, &set).await;
    common::ok(&out);
    std::fs::remove_file(repo.join("config.json")).unwrap();

    // A kvrun or azureml config that names a non-Key-Vault URL is refused, naming the file,
    // with a static token and with a managed identity.
    for (file, url) in [
        (".kvrun/config.json", attacker.url()),
        (
            ".azureml/config.json",
            attacker.url().replace("https://", "http://"),
        ),
        (
            "aml_config/project.json",
            format!("https://kv.vault.azure.net@{}", attacker.addr),
        ),
    ] {
        let path = repo.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!(r#"{{"vault_url":"{url}"}}"#)).unwrap();
        for env in [&token[..], &managed[..]] {
            let out = kvrun_in(&work, &data, env, &set).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(4), "{file}: {stderr}");
            assert!(
                stderr.contains(file) && stderr.contains("not an https Key Vault URL"),
                "{stderr}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert!(
        attacker.requests().is_empty(),
        "the planted vault saw nothing"
    );
    assert!(identity.requests().is_empty(), "no token was even fetched");
}
