//! Invariant 1: a request to an origin that is not allowed gets `HTTP-request-denied`, and
//! nothing leaves the machine. Tested on the hook directly (no component) and through
//! components (the real client and the hostile fixture).

use crate::common;

use common::{http_reply, RawServer, TestVault};
use http_body_util::BodyExt;
use kvrun::auth::Credential;
use kvrun::network::OutboundHooks;
use kvrun::policy::{AllowList, Origin};
use kvrun::transport::{Transport, TransportOptions};
use kvrun::{Client, Error};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpHooks};

fn get(url: &str) -> http::Request<WasiBody> {
    http::Request::get(url)
        .body(
            http_body_util::Empty::<bytes::Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap()
}

fn transport_trusting(ca_pem: &[u8]) -> Arc<Transport> {
    Arc::new(
        Transport::new(TransportOptions {
            ca_pem: Some(ca_pem.to_vec()),
            public_roots: false,
            ..TransportOptions::default()
        })
        .unwrap(),
    )
}

async fn send(
    hooks: &mut OutboundHooks,
    request: http::Request<WasiBody>,
) -> Result<u16, HttpError> {
    let future = hooks.send_request(request, None, Box::new(async { Ok(()) }));
    Box::into_pin(future)
        .await
        .map(|(response, _)| response.status().as_u16())
}

#[tokio::test]
async fn the_hook_denies_origins_outside_the_allow_list() {
    let server = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let allowed = Origin::parse("https://127.0.0.1:1").unwrap();
    let mut hooks = OutboundHooks::new(
        AllowList::only(&allowed),
        None,
        transport_trusting(&server.ca_pem),
    );

    for url in [
        format!("{}/secrets/x", server.url()),
        format!("https://localhost:{}/secrets/x", server.addr.port()),
        format!("http://127.0.0.1:{}/secrets/x", server.addr.port()),
        "https://example.com/".to_string(),
    ] {
        let outcome = send(&mut hooks, get(&url)).await;
        assert!(
            matches!(outcome, Err(HttpError::HttpRequestDenied)),
            "{url}: {outcome:?}"
        );
    }
    assert_eq!(hooks.stats().denied(), 4);
    assert_eq!(hooks.stats().sent(), 0);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        0,
        "nothing left the machine"
    );

    let mut empty = OutboundHooks::new(
        AllowList::default(),
        None,
        transport_trusting(&server.ca_pem),
    );
    let outcome = send(&mut empty, get(&format!("{}/", server.url()))).await;
    assert!(
        matches!(outcome, Err(HttpError::HttpRequestDenied)),
        "an empty list denies all"
    );

    let mut open = OutboundHooks::new(
        AllowList::parse([server.url()]).unwrap(),
        None,
        transport_trusting(&server.ca_pem),
    );
    assert_eq!(
        send(&mut open, get(&format!("{}/", server.url())))
            .await
            .unwrap(),
        200
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_hook_adds_the_token_only_for_the_vault_origin() {
    let vault = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let other = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let mut pems = vault.ca_pem.clone();
    pems.extend_from_slice(&other.ca_pem);
    let credential = Credential::bearer(&"host-token-123".into()).unwrap();
    let mut hooks = OutboundHooks::new(
        AllowList::parse([vault.url(), other.url()]).unwrap(),
        Some((Origin::parse(&vault.url()).unwrap(), credential)),
        transport_trusting(&pems),
    );

    let mut forged = get(&format!("{}/secrets/x", vault.url()));
    forged.headers_mut().insert(
        http::header::AUTHORIZATION,
        "Bearer forged".parse().unwrap(),
    );
    assert_eq!(send(&mut hooks, forged).await.unwrap(), 200);
    let mut to_other = get(&format!("{}/collect", other.url()));
    to_other.headers_mut().insert(
        http::header::AUTHORIZATION,
        "Bearer forged".parse().unwrap(),
    );
    assert_eq!(send(&mut hooks, to_other).await.unwrap(), 200);

    let seen = vault.requests();
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer host-token-123")
    );
    assert_eq!(
        seen[0].head.matches("uthorization").count(),
        1,
        "exactly one Authorization"
    );
    let seen = other.requests();
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "no token for another origin"
    );
}

#[tokio::test]
async fn the_client_is_denied_when_its_vault_is_not_allowed() {
    let server = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    for allow in [
        AllowList::default(),
        AllowList::parse(["https://127.0.0.1:1", "https://*.vault.azure.net"]).unwrap(),
    ] {
        let mut options = server.options("token");
        options.allow = Some(allow);
        let mut client = Client::new(common::runtime(), options).await.unwrap();
        let err = client.get_secret("x", None).await.unwrap_err();
        assert!(matches!(err, Error::PolicyDenied(_)), "{err:?}");
        assert_eq!(err.kind(), "denied-by-policy");
        assert!(err.to_string().contains("HTTP-request-denied"), "{err}");
        let err = client.list_secrets().await.unwrap_err();
        assert!(matches!(err, Error::PolicyDenied(_)), "{err:?}");
        let values = client.get_secrets(&["a".into(), "b".into()]).await;
        assert!(matches!(values, Err(Error::PolicyDenied(_))), "{values:?}");
        assert_eq!(client.network_stats().sent(), 0);
        assert!(
            client.network_stats().denied() >= 4,
            "denials are not retried away"
        );
    }
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        0,
        "nothing left the machine"
    );
}

#[tokio::test]
async fn a_hostile_component_cannot_reach_another_origin() {
    let vault = TestVault::start().await;
    let elsewhere = RawServer::start(|_, _| http_reply("200 OK", &[], "{\"stolen\":true}")).await;
    let mut client = Client::new(common::hostile_runtime(), vault.options())
        .await
        .unwrap();
    for url in [
        format!("{}/exfiltrate", elsewhere.url()),
        format!("http://127.0.0.1:{}/", elsewhere.addr.port()),
        // The vault's own server under another name than its URL's.
        format!("https://127.0.0.1:{}/", vault.vault.addr().port()),
    ] {
        let probe = client
            .get_secret(&format!("fetch {url}"), None)
            .await
            .unwrap();
        assert_eq!(
            probe.value.expose(),
            "error the kvrun host refused the request (this run may not send it there)",
            "{url}"
        );
    }
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    assert_eq!(client.network_stats().sent(), 0);
    assert_eq!(client.network_stats().denied(), 3);
}
