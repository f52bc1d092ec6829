//! Broken, hostile and flaky answers from a vault: each gives a clear error (never one that
//! quotes a value), retries happen where they should, and paging survives odd pages.

use crate::common;

use common::{bundle_json, http_reply, RawServer};
use kvrun::{Client, Error};
use std::sync::atomic::Ordering;

async fn client_for(server: &RawServer) -> Client {
    Client::new(common::runtime(), server.options("token"))
        .await
        .unwrap()
}

#[tokio::test]
async fn garbage_bodies_give_a_clear_error_without_the_content() {
    for body in [
        "<html>s3cret-in-garbage</html>",
        "{\"value\": \"s3cret-in-garbage\", \"attributes\": \"s3cret-in-garbage\"}",
        "{\"value\": 42, \"id\": \"s3cret-in-garbage\"}",
        "",
    ] {
        let owned = body.to_string();
        let server = RawServer::start(move |_, _| http_reply("200 OK", &[], &owned)).await;
        let mut client = client_for(&server).await;
        let err = client.get_secret("x", None).await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{body}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("not a valid secret bundle"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}

#[tokio::test]
async fn a_truncated_body_is_a_transport_error() {
    let server = RawServer::start(|_, _| {
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"value\":\"s3cret-part".to_vec()
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn a_non_http_answer_is_a_transport_error() {
    let server = RawServer::start(|_, _| b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after() {
    let server = RawServer::start(|n, request| {
        let authority = request.header("host").unwrap();
        match n {
            0 => http_reply("429 Too Many Requests", &["Retry-After: 0"], r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}"#),
            1 => http_reply("503 Service Unavailable", &["Retry-After: Thu, 01 Jan 1970 00:00:00 GMT"], ""),
            _ => http_reply("200 OK", &[], &bundle_json(&authority, "x", "finally")),
        }
    })
    .await;
    let mut client = client_for(&server).await;
    let secret = client.get_secret("x", None).await.unwrap();
    assert_eq!(secret.value.expose(), "finally");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn persistent_failure_ends_as_unavailable_after_the_attempt_budget() {
    let server = RawServer::start(|_, _| {
        http_reply(
            "503 Service Unavailable",
            &[],
            r#"{"error":{"code":"ServiceUnavailable","message":"busy"}}"#,
        )
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(server.requests().len(), 3, "max_attempts = 3");
}

#[tokio::test]
async fn service_errors_map_to_the_wit_variants() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, &str, Check); 5] = [
        (
            "404 Not Found",
            r#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) x was not found in this key vault."}}"#,
            |e| matches!(e, Error::NotFound(_)),
        ),
        (
            "403 Forbidden",
            r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#,
            |e| matches!(e, Error::Denied(m) if m.contains("SecretDisabled")),
        ),
        (
            "409 Conflict",
            r#"{"error":{"code":"Conflict","message":"Secret x is currently in a deleted but recoverable state","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#,
            |e| matches!(e, Error::Conflict(m) if m.contains("ObjectIsDeletedButRecoverable")),
        ),
        (
            "400 Bad Request",
            r#"{"error":{"code":"BadParameter","message":"Property has invalid value"}}"#,
            |e| matches!(e, Error::InvalidArgument(_)),
        ),
        ("418 I'm a teapot", "not json at all", |e| {
            matches!(e, Error::Service { status: 418, .. })
        }),
    ];
    for (status, body, check) in cases {
        let body = body.to_string();
        let server = RawServer::start(move |_, _| http_reply(status, &[], &body)).await;
        let mut client = client_for(&server).await;
        let err = client.get_secret("x", None).await.unwrap_err();
        assert!(check(&err), "{status}: {err:?}");
        assert_eq!(server.requests().len(), 1, "{status} is not retried");
    }
}

#[tokio::test]
async fn listing_survives_empty_pages_and_uses_its_own_api_version() {
    let server = RawServer::start(|n, request| {
        let authority = request.header("host").unwrap();
        let item = |name: &str| format!(r#"{{"id":"https://{authority}/secrets/{name}","attributes":{{"enabled":true}}}}"#);
        let body = match n {
            0 => format!(r#"{{"value":[],"nextLink":"https://{authority}/secrets?api-version=1999-01-01&$skiptoken=p1"}}"#),
            1 => format!(r#"{{"value":[{}],"nextLink":"https://{authority}/secrets?$skiptoken=p2&api-version=1999-01-01&maxresults=1"}}"#, item("a")),
            _ => format!(r#"{{"value":[{}, {}],"nextLink":null}}"#, item("b"), item("c")),
        };
        http_reply("200 OK", &[], &body)
    })
    .await;
    let mut client = client_for(&server).await;
    let names: Vec<String> = client
        .list_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let lines: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.request_line().to_string())
        .collect();
    assert_eq!(
        lines[1],
        "GET /secrets?api-version=7.5&$skiptoken=p1 HTTP/1.1"
    );
    assert_eq!(
        lines[2],
        "GET /secrets?api-version=7.5&$skiptoken=p2&maxresults=1 HTTP/1.1"
    );
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed() {
    let server = RawServer::start(|_, _| {
        http_reply(
            "200 OK",
            &[],
            r#"{"value":[],"nextLink":"https://evil.example.com/secrets?$skiptoken=x"}"#,
        )
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.list_secrets().await.unwrap_err();
    assert!(
        matches!(err, Error::Transport(ref m) if m.contains("another origin")),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        client.network_stats().denied(),
        0,
        "the component stopped before the host had to"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_cut_off() {
    let server = RawServer::start(|_, _| {
        let body = format!(r#"{{"value":"{}"}}"#, "x".repeat(9 * 1024 * 1024));
        http_reply("200 OK", &[], &body)
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "response-too-large", "{err:?}");
    assert!(err.to_string().contains("refused unread"), "{err}");
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "refused at the headers, not retried"
    );
}

#[tokio::test]
async fn a_vault_that_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let server = RawServer::start(|_, _| Vec::new()).await;
    let mut options = server.options("token");
    options.vault_url = format!("https://{addr}");
    options.transport.response_timeout = std::time::Duration::from_millis(300);
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    let start = std::time::Instant::now();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "first-byte-timeout", "{err:?}");
    assert!(
        err.to_string().contains("sent no answer within 0.3 s"),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}
