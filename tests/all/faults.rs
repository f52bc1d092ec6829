//! Resilience against a fault-injecting vault: resets, stalls, broken and huge answers,
//! throttling, redirects, a certificate for the wrong name, and a self-signed certificate
//! given with `--ca-cert` (trusted on an exact match, name and validity still checked). Each gives a clear error (or
//! a success after retries) within the retry budget and the host's timeouts.

use crate::common;

use common::{bundle_json, http_reply, RawServer, Step};
use kvrun::{Client, Error};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

async fn client_for(server: &RawServer) -> Client {
    let mut options = server.options("token");
    options.transport.response_timeout = Duration::from_millis(500);
    options.transport.between_bytes_timeout = Duration::from_millis(300);
    Client::new(common::runtime(), options).await.unwrap()
}

fn ok_bundle(request: &common::Seen, value: &str) -> Vec<Step> {
    vec![Step::Write(http_reply(
        "200 OK",
        &[],
        &bundle_json(&request.header("host").unwrap(), "x", value),
    ))]
}

#[tokio::test]
async fn a_connection_reset_is_retried_then_reported() {
    let server = RawServer::scripted(|n, request| {
        if n < 2 {
            vec![Step::Reset]
        } else {
            ok_bundle(request, "after-resets")
        }
    })
    .await;
    let mut client = client_for(&server).await;
    assert_eq!(
        client.get_secret("x", None).await.unwrap().value.expose(),
        "after-resets"
    );

    let always = RawServer::scripted(|_, _| vec![Step::Reset]).await;
    let mut client = client_for(&always).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "connection-closed", "{err:?}");
    assert_eq!(always.requests().len(), 3, "three attempts");
}

#[tokio::test]
async fn a_stall_before_the_first_byte_or_mid_body_times_out() {
    let before = RawServer::scripted(|_, _| vec![Step::Sleep(Duration::from_secs(20))]).await;
    let mut client = client_for(&before).await;
    let start = Instant::now();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "first-byte-timeout", "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );

    let mid = RawServer::scripted(|_, _| {
        vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"value\":\"s3cret-beg".to_vec()),
            Step::Sleep(Duration::from_secs(20)),
        ]
    })
    .await;
    let mut client = client_for(&mid).await;
    let start = Instant::now();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "stalled-body", "{err:?}");
    assert!(
        err.to_string()
            .contains("stopped sending its answer midway"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"));
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_answer_dripped_a_byte_at_a_time_runs_out_of_total_time() {
    // Each byte comes well within the between-bytes limit, so only the request's total time
    // can end it.
    let server = RawServer::scripted(|_, _| {
        let mut steps = vec![Step::Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                .to_vec(),
        )];
        for byte in br#"{"value":"s3cret-dripped"#.iter().cycle().take(300) {
            steps.push(Step::Write(vec![*byte]));
            steps.push(Step::Sleep(Duration::from_millis(50)));
        }
        steps
    })
    .await;
    let mut options = server.options("token");
    options.transport.between_bytes_timeout = Duration::from_millis(300);
    options.transport.total_timeout = Duration::from_millis(1200);
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    let start = Instant::now();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "slow-answer", "{err:?}");
    assert!(
        err.to_string()
            .contains("sent its answer too slowly: it was not whole after 1.2 s"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"));
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_ten_megabyte_answer_is_refused() {
    let server = RawServer::scripted(|_, _| {
        let body = format!(r#"{{"value":"{}"}}"#, "x".repeat(10 * 1024 * 1024));
        vec![Step::Write(http_reply("200 OK", &[], &body))]
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Network {
                cause: kvrun::NetworkCause::ResponseTooLarge {
                    announced: Some(_),
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "refused at the headers, not retried"
    );
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_and_succeeds() {
    let server = RawServer::scripted(|n, request| {
        if n < 2 {
            vec![Step::Write(http_reply("429 Too Many Requests", &[], r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}"#))]
        } else {
            ok_bundle(request, "eventually")
        }
    })
    .await;
    let mut client = client_for(&server).await;
    assert_eq!(
        client.get_secret("x", None).await.unwrap().value.expose(),
        "eventually"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let location = format!("Location: {}/secrets/x", elsewhere.url());
    let server = RawServer::scripted(move |_, _| {
        vec![Step::Write(http_reply("302 Found", &[&location], ""))]
    })
    .await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "redirect", "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 302 to https://") && text.contains("does not follow redirects"),
        "{text}"
    );
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let server =
        RawServer::for_names(&["wrong.example"], |_, request| ok_bundle(request, "never")).await;
    let mut client = client_for(&server).await;
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "tls-name-mismatch", "{err:?}");
    assert!(
        err.to_string().contains("certificate is for another name"),
        "{err}"
    );
    assert!(
        server.requests().is_empty(),
        "no request was sent over the unverified connection"
    );
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "a certificate error is not retried"
    );
}

#[tokio::test]
async fn a_self_signed_server_certificate_given_as_the_ca_is_trusted_exactly() {
    let future = 2100;
    let server = RawServer::self_signed(&["127.0.0.1", "localhost"], future, |_, request| {
        ok_bundle(request, "pinned")
    })
    .await;
    let mut client = client_for(&server).await;
    assert_eq!(
        client.get_secret("x", None).await.unwrap().value.expose(),
        "pinned"
    );

    // Still checked: the name, the validity, and that it is exactly the certificate given.
    let wrong_name =
        RawServer::self_signed(&["wrong.example"], future, |_, r| ok_bundle(r, "never")).await;
    let expired = RawServer::self_signed(&["127.0.0.1"], 2001, |_, r| ok_bundle(r, "never")).await;
    let other = RawServer::self_signed(&["127.0.0.1"], future, |_, r| ok_bundle(r, "never")).await;
    let mut swapped = other.options("token");
    swapped.transport.ca_pem = Some(server.ca_pem.clone());
    let mut clients = vec![client_for(&wrong_name).await, client_for(&expired).await];
    clients.push(Client::new(common::runtime(), swapped).await.unwrap());
    for (mut client, why) in
        clients
            .into_iter()
            .zip(["another name", "expired", "another certificate"])
    {
        let err = client.get_secret("x", None).await.unwrap_err();
        let kind = if why == "another name" {
            "tls-name-mismatch"
        } else {
            "tls-untrusted"
        };
        assert_eq!(err.kind(), kind, "{why}: {err:?}");
        assert!(err.to_string().contains("certificate"), "{why}: {err}");
    }
    for refused in [&wrong_name, &expired, &other] {
        assert!(
            refused.requests().is_empty(),
            "nothing sent over an unverified connection"
        );
    }
}

#[tokio::test]
async fn a_connection_that_never_opens_times_out() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connection
    // never opens, all on loopback.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let _filler = std::net::TcpStream::connect(addr).unwrap();
    let server = RawServer::start(|_, _| Vec::new()).await;
    let mut options = server.options("token");
    options.vault_url = format!("https://{addr}");
    options.transport.connect_timeout = Duration::from_millis(300);
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    let start = Instant::now();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "connect-timeout", "{err:?}");
    assert!(
        err.to_string().contains("did not open within 0.3 s"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    drop(listener);
}
