//! Invariant 2: the host adds the credential, only for the vault's origin; the component can
//! neither read it nor set its own `Authorization` header.

use crate::common;

use common::TestVault;
use kvrun::Client;

#[tokio::test]
async fn a_component_cannot_set_its_own_authorization_header() {
    let t = TestVault::start().await;
    let mut client = Client::new(common::hostile_runtime(), t.options())
        .await
        .unwrap();
    let url = format!("{}/secrets?api-version=7.5", t.vault.url());
    let probe = client
        .get_secret(&format!("forge-authorization {url}"), None)
        .await
        .unwrap();
    assert_eq!(probe.value.expose(), "error forbidden");
    assert_eq!(
        client.network_stats().sent(),
        0,
        "the forged request was never sent"
    );
}

#[tokio::test]
async fn the_token_never_reaches_what_a_component_can_see() {
    let t = TestVault::start().await;
    let token = t.token();
    let mut client = Client::new(common::hostile_runtime(), t.options())
        .await
        .unwrap();

    let seen = client.get_secret("dump-env", None).await.unwrap();
    assert!(
        seen.value.expose().contains("KVRUN_VAULT_URL"),
        "{}",
        seen.value.expose()
    );
    assert!(!seen.value.expose().contains(&token));
    assert!(
        seen.value.expose().contains("root=Err"),
        "no filesystem: {}",
        seen.value.expose()
    );

    let url = format!("{}/secrets?api-version=7.5", t.vault.url());
    let answer = client
        .get_secret(&format!("fetch {url}"), None)
        .await
        .unwrap();
    assert!(
        answer.value.expose().starts_with("status 200"),
        "{}",
        answer.value.expose()
    );
    assert!(!answer.value.expose().contains(&token));

    for (key, value) in client.component_env() {
        assert!(!value.contains(&token), "{key} carries the token");
    }
}

#[tokio::test]
async fn the_real_client_authenticates_only_through_the_host() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    client
        .set_secret(
            "k",
            &"v".into(),
            &kvrun::SetOptions {
                content_type: None,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let env: Vec<String> = client
        .component_env()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        env,
        [
            "KVRUN_VAULT_URL",
            "KVRUN_API_VERSION",
            "KVRUN_RETRY_MAX_ATTEMPTS",
            "KVRUN_RETRY_BASE_DELAY_MS",
            "KVRUN_RETRY_MAX_DELAY_MS",
            "KVRUN_RETRY_DEADLINE_MS"
        ]
    );
}
