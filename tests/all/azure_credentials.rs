//! The host's Azure credentials against fake Entra, App Service identity, IMDS and vault
//! servers on loopback (real HTTP and TLS), and a fake `az`: every source, caching, refresh,
//! coalescing, the vault's challenge, and a failing chain that says what it tried.

use crate::common;

use common::{bundle_json, http_reply, RawServer, Seen, Step};
use kvrun::auth::Credential;
use kvrun::auth::{AuthMethod, AuthOptions, TokenProvider};
use kvrun::{Client, Error};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn form(request: &Seen) -> BTreeMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// A fake Entra token endpoint: answers `token-<tenant>-<n>` for client credentials.
async fn entra(expires_in: u64) -> RawServer {
    RawServer::scripted(move |n, request| {
        let tenant = request.request_line().split('/').nth(1).unwrap_or("").to_string();
        let body = serde_json::json!({ "token_type": "Bearer", "expires_in": expires_in, "access_token": format!("token-{tenant}-{n}") });
        vec![Step::Write(http_reply("200 OK", &[], &body.to_string()))]
    })
    .await
}

fn options(methods: &[AuthMethod], env: &[(&str, &str)], authority: &RawServer) -> AuthOptions {
    let mut options = AuthOptions::from_env(None);
    options.methods = methods.to_vec();
    options.authority_host = authority.url();
    options.ca_pem = Some(authority.ca_pem.clone());
    options.imds_endpoint = "http://127.0.0.1:9".into();
    options.az_command = "/nonexistent/az".into();
    options.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    options.timeout = Duration::from_secs(5);
    options
}

const SP: &[(&str, &str)] = &[
    ("AZURE_TENANT_ID", "home-tenant"),
    ("AZURE_CLIENT_ID", "app-id"),
    ("AZURE_CLIENT_SECRET", "sp-secret"),
];

#[tokio::test]
async fn client_secret_tokens_are_cached_and_refreshed() {
    let authority = entra(3600).await;
    let provider =
        TokenProvider::new(options(&[AuthMethod::ClientSecret], SP, &authority)).unwrap();
    let token = provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap();
    assert_eq!(token.expose(), "token-home-tenant-0");
    let again = provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap();
    assert_eq!(
        again.expose(),
        "token-home-tenant-0",
        "served from the cache"
    );
    assert_eq!(provider.fetches(), 1);
    let seen = authority.requests();
    assert_eq!(
        seen[0].request_line(),
        "POST /home-tenant/oauth2/v2.0/token HTTP/1.1"
    );
    let fields = form(&seen[0]);
    assert_eq!(fields["grant_type"], "client_credentials");
    assert_eq!(fields["client_id"], "app-id");
    assert_eq!(fields["client_secret"], "sp-secret");
    assert_eq!(fields["scope"], "https://vault.azure.net/.default");

    let short = entra(60).await;
    let provider = TokenProvider::new(options(&[AuthMethod::ClientSecret], SP, &short)).unwrap();
    provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap();
    let next = provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap();
    assert_eq!(
        next.expose(),
        "token-home-tenant-1",
        "a token close to expiry is refreshed"
    );
}

#[tokio::test]
async fn concurrent_refreshes_are_coalesced() {
    let authority = RawServer::scripted(|n, _| {
        let body = serde_json::json!({ "expires_in": 3600, "access_token": format!("slow-{n}") });
        vec![
            Step::Sleep(Duration::from_millis(200)),
            Step::Write(http_reply("200 OK", &[], &body.to_string())),
        ]
    })
    .await;
    let provider =
        Arc::new(TokenProvider::new(options(&[AuthMethod::ClientSecret], SP, &authority)).unwrap());
    let calls = (0..8).map(|_| {
        let provider = provider.clone();
        async move {
            provider
                .token("https://vault.azure.net/.default", None, false)
                .await
                .unwrap()
        }
    });
    let tokens = futures::future::join_all(calls).await;
    assert!(tokens.iter().all(|t| t.expose() == "slow-0"));
    assert_eq!(
        authority.requests().len(),
        1,
        "one request for eight callers"
    );
}

#[tokio::test]
async fn workload_identity_sends_the_federated_token() {
    let authority = entra(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("federated");
    std::fs::write(&file, "federated-jwt\n").unwrap();
    let env = [
        ("AZURE_TENANT_ID", "wi-tenant"),
        ("AZURE_CLIENT_ID", "wi-app"),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
    ];
    let provider =
        TokenProvider::new(options(&[AuthMethod::WorkloadIdentity], &env, &authority)).unwrap();
    assert_eq!(
        provider
            .token("https://vault.azure.net/.default", None, false)
            .await
            .unwrap()
            .expose(),
        "token-wi-tenant-0"
    );
    let fields = form(&authority.requests()[0]);
    assert_eq!(fields["client_assertion"], "federated-jwt");
    assert_eq!(
        fields["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
}

#[tokio::test]
async fn managed_identity_uses_the_app_service_endpoint_or_imds() {
    let authority = entra(3600).await;
    let identity = RawServer::plain(|_, request| {
        assert_eq!(request.header("x-identity-header").as_deref(), Some("id-header-secret"));
        let body = r#"{"access_token":"msi-token","expires_on":"4102444800","resource":"https://vault.azure.net","token_type":"Bearer"}"#;
        vec![Step::Write(http_reply("200 OK", &[], body))]
    })
    .await;
    let endpoint = format!("http://{}/msi/token", identity.addr);
    let env = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", "id-header-secret"),
    ];
    let provider =
        TokenProvider::new(options(&[AuthMethod::ManagedIdentity], &env, &authority)).unwrap();
    assert_eq!(
        provider
            .token("https://vault.azure.net/.default", None, false)
            .await
            .unwrap()
            .expose(),
        "msi-token"
    );
    let line = identity.requests()[0].request_line().to_string();
    assert!(
        line.starts_with(
            "GET /msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net"
        ),
        "{line}"
    );

    let imds = RawServer::plain(|_, request| {
        assert_eq!(request.header("metadata").as_deref(), Some("true"));
        vec![Step::Write(http_reply(
            "200 OK",
            &[],
            r#"{"access_token":"imds-token","expires_in":"86399"}"#,
        ))]
    })
    .await;
    let mut imds_options = options(&[AuthMethod::ManagedIdentity], &[], &authority);
    imds_options.imds_endpoint = format!("http://{}", imds.addr);
    let provider = TokenProvider::new(imds_options).unwrap();
    assert_eq!(
        provider
            .token("https://vault.azure.net/.default", None, false)
            .await
            .unwrap()
            .expose(),
        "imds-token",
        "without IDENTITY_ENDPOINT the chain asks IMDS"
    );
    assert!(imds.requests()[0]
        .request_line()
        .starts_with("GET /metadata/identity/oauth2/token?api-version=2018-02-01"));
}

#[tokio::test]
async fn an_absent_imds_is_probed_once_with_a_short_timeout() {
    let authority = entra(3600).await;
    let silent = RawServer::plain(|_, _| vec![Step::Sleep(Duration::from_secs(30))]).await;
    let mut chain = options(&[AuthMethod::ManagedIdentity], &[], &authority);
    chain.imds_endpoint = format!("http://{}", silent.addr);
    chain.imds_probe = Some(Duration::from_millis(300));
    let provider = TokenProvider::new(chain.clone()).unwrap();
    let started = std::time::Instant::now();
    let err = provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the probe, not the 5 s timeout, ends the wait"
    );
    assert!(
        err.to_string().contains("no IMDS answered"),
        "says why: {err}"
    );
    let again = provider
        .token("https://vault.azure.net/.default", None, true)
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(
        silent.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "an absent IMDS is not asked again"
    );

    let slow_later = RawServer::plain(|n, _| {
        let answer = http_reply(
            "200 OK",
            &[],
            r#"{"access_token":"imds-token","expires_in":"86399"}"#,
        );
        match n {
            0 => vec![Step::Write(answer)],
            _ => vec![Step::Sleep(Duration::from_millis(800)), Step::Write(answer)],
        }
    })
    .await;
    let mut present = chain.clone();
    present.imds_endpoint = format!("http://{}", slow_later.addr);
    let provider = TokenProvider::new(present).unwrap();
    provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap();
    let refreshed = provider
        .token("https://vault.azure.net/.default", None, true)
        .await;
    assert!(
        refreshed.is_ok(),
        "once IMDS has answered, a slow answer gets the full timeout: {:?}",
        refreshed.err()
    );

    chain.imds_probe = None;
    chain.timeout = Duration::from_millis(600);
    let chosen = TokenProvider::new(chain).unwrap();
    let started = std::time::Instant::now();
    let err = chosen
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "chosen explicitly, IMDS gets the whole timeout"
    );
    assert!(err.to_string().contains("no answer within"), "{err}");
}

#[tokio::test]
async fn azure_cli_tokens_come_from_az() {
    let authority = entra(3600).await;
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    std::fs::write(&az, "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\necho '{\"accessToken\":\"cli-token\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}'\n").unwrap();
    std::fs::set_permissions(&az, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut chosen = options(&[AuthMethod::AzureCli], &[], &authority);
    chosen.az_command = az.clone();
    let provider = TokenProvider::new(chosen).unwrap();
    assert_eq!(
        provider
            .token("https://vault.azure.net/.default", Some("t9"), false)
            .await
            .unwrap()
            .expose(),
        "cli-token"
    );
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(
        args.trim(),
        "account get-access-token --output json --resource https://vault.azure.net --tenant t9"
    );

    std::fs::write(
        &az,
        "#!/bin/sh\necho 'ERROR: Please run az login to setup account.' >&2\nexit 1\n",
    )
    .unwrap();
    let err = provider
        .token("https://other/.default", None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("az login"), "{err}");
}

#[tokio::test]
async fn a_failing_chain_says_what_it_tried() {
    let authority = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply("401 Unauthorized", &[], r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#))]
    })
    .await;
    let all = [
        AuthMethod::ClientSecret,
        AuthMethod::WorkloadIdentity,
        AuthMethod::ManagedIdentity,
        AuthMethod::AzureCli,
    ];
    let provider = TokenProvider::new(options(&all, SP, &authority)).unwrap();
    let err = provider
        .token("https://vault.azure.net/.default", None, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unauthenticated(_)));
    for part in [
        "client-secret:",
        "invalid_client",
        "AADSTS7000215",
        "workload-identity:",
        "managed-identity:",
        "azure-cli:",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert!(
        !text.contains("sp-secret"),
        "the secret never appears: {text}"
    );
}

/// A vault that answers `401` with a challenge for `resource` to any request without a
/// token from `other-tenant`, and the secret `x` to one with it.
async fn challenging_vault(resource: &'static str) -> RawServer {
    RawServer::scripted(move |_, request| {
        match request.header("authorization").as_deref() {
            Some(auth) if auth.starts_with("Bearer token-other-tenant-") => {
                let host = request.header("host").unwrap();
                vec![Step::Write(http_reply("200 OK", &[], &bundle_json(&host, "x", "challenge-answered")))]
            }
            _ => vec![Step::Write(http_reply(
                "401 Unauthorized",
                &[&format!(r#"WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/other-tenant", resource="{resource}""#)],
                r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#,
            ))],
        }
    })
    .await
}

#[tokio::test]
async fn the_first_request_carries_no_token_and_the_challenge_is_remembered() {
    let authority = entra(3600).await;
    let provider =
        Arc::new(TokenProvider::new(options(&[AuthMethod::ClientSecret], SP, &authority)).unwrap());
    // 127.0.0.1 is not a Key Vault host: only the explicit, dangerous opt-in answers it.
    let vault = challenging_vault("https://0.1").await;
    let mut options = vault.options("unused");
    options.credential = Some(Credential::azure(provider.clone()).allow_any_host());
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            client.get_secret("x", None).await.unwrap().value.expose(),
            "challenge-answered"
        );
    }
    let seen = vault.requests();
    assert_eq!(seen.len(), 3, "challenge, answer, then the token at once");
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the first request has no token"
    );
    assert!(seen[1].header("authorization").is_some());
    assert!(seen[2].header("authorization").is_some());
    let fetched = authority.requests();
    assert_eq!(
        fetched.len(),
        1,
        "one token, for the challenge's tenant and scope"
    );
    assert_eq!(
        fetched[0].request_line(),
        "POST /other-tenant/oauth2/v2.0/token HTTP/1.1"
    );
    assert_eq!(form(&fetched[0])["scope"], "https://0.1/.default");
}

#[tokio::test]
async fn an_azure_token_goes_only_to_a_key_vault_host() {
    // A server on loopback that answers exactly as Azure Key Vault does, challenge included:
    // without the opt-in it never gets a token, and none is even fetched.
    for resource in [
        "https://vault.azure.net",
        "https://0.1",
        "https://evil.example",
    ] {
        let authority = entra(3600).await;
        let provider = Arc::new(
            TokenProvider::new(options(&[AuthMethod::ClientSecret], SP, &authority)).unwrap(),
        );
        let vault = challenging_vault(resource).await;
        let mut options = vault.options("unused");
        options.credential = Some(Credential::azure(provider));
        let mut client = Client::new(common::runtime(), options).await.unwrap();
        let err = client.get_secret("x", None).await.unwrap_err();
        assert!(
            matches!(err, Error::Unauthenticated(_)),
            "{resource}: {err:?}"
        );
        assert!(
            authority.requests().is_empty(),
            "{resource}: no token was fetched"
        );
        let seen = vault.requests();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|r| r.header("authorization").is_none()),
            "{resource}: no request carried a token"
        );
    }
}

#[tokio::test]
async fn when_no_token_can_be_had_the_component_is_told_why() {
    let authority = entra(3600).await;
    let provider = Arc::new(
        TokenProvider::new(options(&[AuthMethod::ClientSecret], &[], &authority)).unwrap(),
    );
    let vault = challenging_vault("https://0.1").await;
    let mut options = vault.options("unused");
    options.credential = Some(Credential::azure(provider).allow_any_host());
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthenticated(ref m) if m.contains("AZURE_CLIENT_SECRET")),
        "{err:?}"
    );
    let seen = vault.requests();
    assert_eq!(seen.len(), 1, "only the challenge was asked for");
    assert_eq!(seen[0].header("authorization"), None);
}
