//! Every failure reads well: for each cause, against a loopback server that misbehaves that
//! way, `kvrun` exits with the kind's status and prints one line that names the cause and what
//! to do, or with `--output json` one object with the same kind, status and message, and never
//! the token. (Causes that need timeouts longer than a test should wait, first byte and stalled
//! body, are proven at the library level in `faults.rs`; `cli/failure.rs` renders every kind.)

use crate::common::{self, http_reply, RawServer, Step};
use std::path::Path;

const TOKEN: &str = "tok-Canary-4c1e";

/// `kvrun ARGS` (with `--vault`/`--ca-cert` when given), text and JSON, a static token.
async fn kvrun(
    data: &Path,
    vault: Option<&str>,
    ca: Option<&Path>,
    args: &[&str],
) -> [std::process::Output; 2] {
    let mut outputs = Vec::new();
    for json in [false, true] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvrun"));
        command
            .env("KVRUN_DATA_DIR", data)
            .env("KVRUN_CACHE_DIR", common::cache_dir())
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
            .env("KVRUN_ACCESS_TOKEN", TOKEN)
            .env_remove("KVRUN_VAULT_URL")
            .env_remove("KVRUN_LOG")
            .current_dir(data);
        if let Some(vault) = vault {
            command.args(["--vault", vault]);
        }
        if let Some(ca) = ca {
            command.arg("--ca-cert").arg(ca);
        }
        if json {
            command.args(["--output", "json"]);
        }
        outputs.push(command.args(args).output().await.unwrap());
    }
    outputs.try_into().unwrap()
}

/// Checks one failure in both forms: status, kind, and words of the message.
fn check(outputs: &[std::process::Output; 2], status: i32, kind: &str, words: &[&str]) {
    let [text, json] = outputs;
    let line = String::from_utf8_lossy(&text.stderr).trim().to_string();
    assert_eq!(text.status.code(), Some(status), "{kind}: {line}");
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.starts_with("kvrun: "), "{line}");
    for word in words {
        assert!(line.contains(word), "{kind}: {word:?} not in {line}");
    }
    assert!(!line.contains(TOKEN), "{line}");
    assert!(
        !line.contains("Error") && !line.contains("ErrorCode"),
        "no Debug: {line}"
    );
    let object = String::from_utf8_lossy(&json.stderr).trim().to_string();
    assert_eq!(json.status.code(), Some(status), "{object}");
    let value: serde_json::Value = serde_json::from_str(&object).expect(&object);
    assert_eq!(value["error"]["kind"], kind, "{object}");
    assert_eq!(value["error"]["status"], status);
    assert!(value["error"]["hint"].is_string(), "{object}");
    let said = format!(
        "{} ({})",
        value["error"]["message"].as_str().unwrap(),
        value["error"]["hint"].as_str().unwrap()
    );
    let opening: String = said.chars().take(40).collect();
    assert!(
        line.starts_with(&format!("kvrun: {opening}")),
        "the same words: {line} / {said}"
    );
    for word in words {
        assert!(said.contains(word), "{kind}: {word:?} not in {said}");
    }
    assert!(!object.contains(TOKEN));
}

fn write_ca(dir: &Path, server: &RawServer) -> std::path::PathBuf {
    let path = dir.join("server-ca.pem");
    std::fs::write(&path, &server.ca_pem).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve() {
    // In a network namespace of its own, name resolution fails without a packet leaving the
    // machine (the system's DNS server is not loopback here).
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    if !is_root {
        eprintln!("skipped: needs root for `unshare -n`");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for json in [false, true] {
        let mut command = tokio::process::Command::new("unshare");
        command
            .arg("-n")
            .arg(env!("CARGO_BIN_EXE_kvrun"))
            .args(["--vault", "https://nonexistent.invalid"])
            .env("KVRUN_DATA_DIR", data.path())
            .env("KVRUN_CACHE_DIR", common::cache_dir())
            .env("KVRUN_ACCESS_TOKEN", TOKEN)
            .env_remove("KVRUN_LOG");
        if json {
            command.args(["--output", "json"]);
        }
        outputs.push(command.args(["secret", "get", "x"]).output().await.unwrap());
    }
    let outputs: [std::process::Output; 2] = outputs.try_into().unwrap();
    check(
        &outputs,
        7,
        "name-resolution",
        &["could not reach https://nonexistent.invalid: the host name nonexistent.invalid does not resolve"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_an_untrusted_or_misnamed_certificate_and_a_plain_port() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("https://{closed}");
    let out = kvrun(d, Some(&url), None, &["secret", "get", "x"]).await;
    check(
        &out,
        7,
        "connection-refused",
        &["the connection was refused"],
    );

    let untrusted = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    let out = kvrun(d, Some(&untrusted.url()), None, &["secret", "get", "x"]).await;
    check(
        &out,
        7,
        "tls-untrusted",
        &["certificate is not trusted", "--ca-cert"],
    );

    let misnamed = RawServer::for_names(&["wrong.example"], |_, _| {
        vec![Step::Write(http_reply("200 OK", &[], "{}"))]
    })
    .await;
    let ca = write_ca(d, &misnamed);
    let out = kvrun(d, Some(&misnamed.url()), Some(&ca), &["secret", "get", "x"]).await;
    check(
        &out,
        7,
        "tls-name-mismatch",
        &["certificate is for another name"],
    );

    // A plain HTTP port, as web servers answer a TLS hello: 400 and close.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", plain.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in plain.incoming().flatten() {
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            );
        }
    });
    let out = kvrun(d, Some(&url), None, &["secret", "get", "x"]).await;
    check(
        &out,
        7,
        "tls-protocol",
        &["TLS handshake failed", "not answer in TLS"],
    );
    for server in [&untrusted, &misnamed] {
        assert!(
            server.requests().is_empty(),
            "nothing sent over an unverified connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_a_redirect_and_throttling() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let huge = RawServer::scripted(|_, _| {
        vec![Step::Write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n{".to_vec(),
        )]
    })
    .await;
    let ca = write_ca(d, &huge);
    let start = std::time::Instant::now();
    let out = kvrun(d, Some(&huge.url()), Some(&ca), &["secret", "get", "x"]).await;
    check(
        &out,
        7,
        "response-too-large",
        &["104857600 bytes", "refused unread"],
    );
    assert_eq!(
        huge.requests().len(),
        2,
        "one request per command: not retried"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );

    let redirecting = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply(
            "302 Found",
            &["Location: https://elsewhere.example/secrets/x"],
            "",
        ))]
    })
    .await;
    let ca = write_ca(d, &redirecting);
    let out = kvrun(
        d,
        Some(&redirecting.url()),
        Some(&ca),
        &["secret", "get", "x"],
    )
    .await;
    check(
        &out,
        7,
        "redirect",
        &[
            "HTTP 302 to https://elsewhere.example/secrets/x",
            "does not follow redirects",
        ],
    );

    let throttling = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply(
            "429 Too Many Requests",
            &["Retry-After: 0"],
            r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#,
        ))]
    })
    .await;
    let ca = write_ca(d, &throttling);
    let out = kvrun(
        d,
        Some(&throttling.url()),
        Some(&ca),
        &["secret", "get", "x"],
    )
    .await;
    check(&out, 7, "throttled", &["kept throttling", "of retries"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_refuses_the_token_or_the_access() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let refusing = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply(
            "401 Unauthorized",
            &[r#"WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#],
            r#"{"error":{"code":"Unauthorized","message":"AKV10032: Invalid issuer."}}"#,
        ))]
    })
    .await;
    let ca = write_ca(d, &refusing);
    let out = kvrun(d, Some(&refusing.url()), Some(&ca), &["secret", "get", "x"]).await;
    check(
        &out,
        6,
        "unauthenticated",
        &["did not accept the credential"],
    );

    let forbidding = RawServer::scripted(|_, _| {
        vec![Step::Write(http_reply(
            "403 Forbidden",
            &[],
            r#"{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}"#,
        ))]
    })
    .await;
    let ca = write_ca(d, &forbidding);
    let out = kvrun(
        d,
        Some(&forbidding.url()),
        Some(&ca),
        &["secret", "get", "x"],
    )
    .await;
    check(&out, 5, "denied-by-vault", &["ForbiddenByRbac"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_vault_is_named_as_such_with_its_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let out = kvrun(d, None, None, &["secret", "get", "missing"]).await;
    let shown = d.display().to_string();
    check(
        &out,
        3,
        "not-found",
        &["\"missing\" was not found in the local vault", &shown],
    );
    let line = String::from_utf8_lossy(&out[0].stderr);
    assert!(!line.contains("127.0.0.1"), "no ephemeral port: {line}");

    let mut set = std::process::Command::new(env!("CARGO_BIN_EXE_kvrun"));
    set.env("KVRUN_DATA_DIR", d)
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .env("VALUE", "v1")
        .args(["secret", "set", "gone", "--value-from-env", "VALUE"]);
    assert!(set.output().unwrap().status.success());
    let deleted = kvrun(d, None, None, &["secret", "delete", "gone"]).await;
    assert!(deleted[0].status.success());
    let out = kvrun(
        d,
        None,
        None,
        &[
            "secret",
            "set",
            "gone",
            "--value-from-env",
            "KVRUN_ACCESS_TOKEN",
        ],
    )
    .await;
    check(&out, 8, "conflict", &["conflict", "gone"]);
}
