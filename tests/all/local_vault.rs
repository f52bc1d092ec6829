//! The local vault on the wire: auth challenge, api-version, routes, paging, errors,
//! headers, files and persistence. Spoken to with a plain HTTPS client, no component.

use crate::common;

use base64::Engine as _;
use bytes::Bytes;
use common::TestVault;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use kvrun::transport::{connector, TransportOptions};
use kvrun::vault::{LocalVault, LocalVaultOptions};
use serde_json::Value;

struct Http {
    client: HyperClient<kvrun::transport::Connector, Full<Bytes>>,
    base: String,
    token: String,
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Http {
    fn new(vault: &LocalVault) -> Http {
        let options = TransportOptions {
            ca_pem: Some(vault.ca_pem().to_vec()),
            public_roots: false,
            ..TransportOptions::default()
        };
        Http {
            client: HyperClient::builder(TokioExecutor::new()).build(connector(&options).unwrap()),
            base: vault.url(),
            token: vault.token().expose().to_string(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = http::Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request = request.header("x-ms-client-request-id", "client-id-1");
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.send(method, path, Some(&self.token.clone()), body)
            .await
    }
}

#[tokio::test]
async fn requests_without_the_token_get_the_key_vault_challenge() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    for token in [None, Some("wrong"), Some("")] {
        let answer = http
            .send(
                "PUT",
                "/secrets/x?api-version=7.5",
                token,
                Some(r#"{"value":"v"}"#),
            )
            .await;
        assert_eq!(answer.status, 401);
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer authorization=\""),
            "{challenge}"
        );
        assert!(
            challenge.contains("resource=\"https://vault.azure.net\""),
            "{challenge}"
        );
        assert_eq!(answer.body["error"]["code"], "Unauthorized");
        assert!(answer.headers.get("retry-after").is_none());
    }
    let answer = http.call("GET", "/secrets/x?api-version=7.5", None).await;
    assert_eq!(answer.status, 404, "nothing was written without the token");
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    for (version, status) in [
        ("", 400),
        ("?api-version=1.0", 400),
        ("?api-version=7.3", 200),
        ("?api-version=2016-10-01", 200),
        ("?api-version=2025-07-01", 200),
        ("?api-version=2026-04-01", 200),
        ("?api-version=2027-02-01", 200),
        ("?api-version=2020-01-01", 400),
    ] {
        let answer = http.call("GET", &format!("/secrets{version}"), None).await;
        assert_eq!(answer.status, status, "{version}");
        if status == 400 {
            assert_eq!(answer.body["error"]["code"], "BadParameter");
        }
    }
}

#[tokio::test]
async fn set_and_get_match_the_service_shapes() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    let set = http
        .call("PUT", "/secrets/My-Secret?api-version=7.5", Some(r#"{"value":"v1","contentType":"text/plain","tags":{"a":"b"},"attributes":{"exp":32503680000}}"#))
        .await;
    assert_eq!(set.status, 200);
    let id = set.body["id"].as_str().unwrap();
    let prefix = format!("{}/secrets/My-Secret/", t.vault.url());
    let version = id.strip_prefix(&prefix).unwrap();
    assert!(
        version.len() == 32
            && version
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(set.body["value"], "v1");
    assert_eq!(set.body["contentType"], "text/plain");
    assert_eq!(set.body["tags"]["a"], "b");
    assert_eq!(set.body["attributes"]["exp"], 32503680000i64);
    assert_eq!(
        set.body["attributes"]["created"],
        set.body["attributes"]["updated"]
    );
    assert_eq!(
        set.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(set.headers["cache-control"], "no-cache");
    assert_eq!(set.headers["x-ms-client-request-id"], "client-id-1");
    assert!(set.headers.contains_key("x-ms-request-id"));

    for path in [
        "/secrets/my-secret",
        "/secrets/MY-SECRET/",
        &format!("/secrets/my-secret/{version}"),
    ] {
        let get = http
            .call("GET", &format!("{path}?api-version=7.5"), None)
            .await;
        assert_eq!(get.status, 200, "{path}");
        assert_eq!(get.body["value"], "v1");
        assert_eq!(get.body["id"], id);
    }
    let missing = http
        .call("GET", "/secrets/nope?api-version=7.5", None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "SecretNotFound");
    assert!(missing.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn bad_requests_get_bad_parameter_without_echoing_the_body() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    let big = format!(r#"{{"value":"{}"}}"#, "v".repeat(25 * 1024 + 1));
    let tags: String = (0..16)
        .map(|i| format!(r#""t{i}":"v""#))
        .collect::<Vec<_>>()
        .join(",");
    let too_many_tags = format!(r#"{{"value":"v","tags":{{{tags}}}}}"#);
    for (path, body) in [
        ("/secrets/bad_name?api-version=7.5", r#"{"value":"v"}"#),
        ("/secrets/x?api-version=7.5", "not json leak-me"),
        (
            "/secrets/x?api-version=7.5",
            r#"{"value":7,"contentType":"leak-me"}"#,
        ),
        (
            "/secrets/x?api-version=7.5",
            r#"{"contentType":"text/plain"}"#,
        ),
        ("/secrets/x?api-version=7.5", big.as_str()),
        ("/secrets/x?api-version=7.5", too_many_tags.as_str()),
    ] {
        let answer = http.call("PUT", path, Some(body)).await;
        assert_eq!(answer.status, 400, "{path} {body:.40}");
        assert_eq!(answer.body["error"]["code"], "BadParameter");
        assert!(!answer.body.to_string().contains("leak-me"));
    }
    let answer = http
        .call("PUT", "/secrets/?api-version=7.5", Some(r#"{"value":"v"}"#))
        .await;
    assert_eq!(answer.status, 405);
    let answer = http
        .call("GET", "/secrets/x/not-a-version?api-version=7.5", None)
        .await;
    assert_eq!(answer.status, 400);
    let answer = http.call("GET", "/keys?api-version=7.5", None).await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn listing_pages_with_an_absolute_next_link() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    for name in ["b", "A", "c", "D", "e"] {
        http.call(
            "PUT",
            &format!("/secrets/{name}?api-version=7.5"),
            Some(r#"{"value":"v"}"#),
        )
        .await;
    }
    http.call(
        "PUT",
        "/secrets/c?api-version=7.5",
        Some(r#"{"value":"v2"}"#),
    )
    .await;
    let mut names = Vec::new();
    let mut next = Some(format!(
        "{}/secrets?api-version=7.5&maxresults=2",
        t.vault.url()
    ));
    let mut pages = 0;
    while let Some(url) = next {
        let page = http.call("GET", &url, None).await;
        assert_eq!(page.status, 200);
        pages += 1;
        for item in page.body["value"].as_array().unwrap() {
            assert!(item.get("value").is_none(), "list items carry no value");
            let id = item["id"].as_str().unwrap();
            names.push(id.rsplit('/').next().unwrap().to_string());
        }
        assert!(
            page.body.as_object().unwrap().contains_key("nextLink"),
            "nextLink is present, null at the end"
        );
        next = page.body["nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&format!(
                    "{}/secrets?api-version=7.5&$skiptoken=",
                    t.vault.url()
                )),
                "{link}"
            );
            assert!(link.ends_with("&maxresults=2"), "{link}");
        }
    }
    assert_eq!(
        names,
        ["A", "b", "c", "D", "e"],
        "sorted case-insensitively, one item per secret"
    );
    assert_eq!(pages, 3);

    let versions = http
        .call("GET", "/secrets/c/versions?api-version=7.5", None)
        .await;
    assert_eq!(versions.body["value"].as_array().unwrap().len(), 2);
    let none = http
        .call("GET", "/secrets/zzz/versions?api-version=7.5", None)
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body.to_string(), r#"{"value":[],"nextLink":null}"#);
    let bad = http
        .call("GET", "/secrets?api-version=7.5&maxresults=26", None)
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn soft_delete_recover_and_purge() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    http.call(
        "PUT",
        "/secrets/Gone?api-version=7.5",
        Some(r#"{"value":"v1"}"#),
    )
    .await;
    http.call(
        "PUT",
        "/secrets/gone?api-version=7.5",
        Some(r#"{"value":"v2"}"#),
    )
    .await;
    let deleted = http
        .call("DELETE", "/secrets/GONE?api-version=7.5", None)
        .await;
    assert_eq!(deleted.status, 200);
    assert!(
        deleted.body.get("value").is_none(),
        "a delete answer carries no value"
    );
    assert!(
        deleted.body["recoveryId"]
            .as_str()
            .unwrap()
            .ends_with("/deletedsecrets/Gone"),
        "the name keeps the case it was created with"
    );
    let (when, purge) = (
        deleted.body["deletedDate"].as_i64().unwrap(),
        deleted.body["scheduledPurgeDate"].as_i64().unwrap(),
    );
    assert_eq!(purge - when, 90 * 86_400);
    assert_eq!(
        deleted.body["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    assert_eq!(deleted.body["attributes"]["recoverableDays"], 90);

    assert_eq!(
        http.call("GET", "/secrets/gone?api-version=7.5", None)
            .await
            .status,
        404
    );
    let versions = http
        .call("GET", "/secrets/gone/versions?api-version=7.5", None)
        .await;
    assert_eq!(versions.body["value"].as_array().unwrap().len(), 0);
    let shown = http
        .call("GET", "/deletedsecrets/gone?api-version=7.5", None)
        .await;
    assert_eq!(shown.status, 200, "visible under /deletedsecrets at once");
    let listed = http
        .call("GET", "/deletedsecrets?api-version=7.5", None)
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    let reuse = http
        .call(
            "PUT",
            "/secrets/gone?api-version=7.5",
            Some(r#"{"value":"v3"}"#),
        )
        .await;
    assert_eq!(reuse.status, 409);
    assert_eq!(
        reuse.body["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );

    let recovered = http
        .call("POST", "/deletedsecrets/gone/recover?api-version=7.5", None)
        .await;
    assert_eq!(recovered.status, 200);
    assert!(recovered.body.get("value").is_none());
    assert_eq!(
        http.call("GET", "/secrets/gone?api-version=7.5", None)
            .await
            .body["value"],
        "v2"
    );
    assert_eq!(
        http.call("GET", "/deletedsecrets/gone?api-version=7.5", None)
            .await
            .status,
        404
    );

    http.call("DELETE", "/secrets/gone?api-version=7.5", None)
        .await;
    let purged = http
        .call("DELETE", "/deletedsecrets/gone?api-version=7.5", None)
        .await;
    assert_eq!(purged.status, 204);
    assert!(purged.headers.get("content-type").is_none());
    assert_eq!(purged.body, Value::Null);
    assert_eq!(
        http.call("DELETE", "/deletedsecrets/gone?api-version=7.5", None)
            .await
            .status,
        404
    );
    assert_eq!(
        http.call(
            "PUT",
            "/secrets/gone?api-version=7.5",
            Some(r#"{"value":"new"}"#)
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn update_disable_backup_and_restore() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    let set = http
        .call(
            "PUT",
            "/secrets/p?api-version=7.5",
            Some(r#"{"value":"pv-bk-value","tags":{"a":"1"}}"#),
        )
        .await;
    let version = set.body["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let patched = http
        .call(
            "PATCH",
            "/secrets/p/?api-version=7.5",
            Some(r#"{"contentType":"text/plain","attributes":{"enabled":false}}"#),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert!(patched.body.get("value").is_none());
    assert_eq!(patched.body["contentType"], "text/plain");
    assert_eq!(patched.body["tags"]["a"], "1", "tags not given stay");
    let disabled = http.call("GET", "/secrets/p?api-version=7.5", None).await;
    assert_eq!(disabled.status, 403);
    assert_eq!(
        disabled.body["error"]["innererror"]["code"],
        "SecretDisabled"
    );
    let listed = http.call("GET", "/secrets?api-version=7.5", None).await;
    assert_eq!(
        listed.body["value"][0]["attributes"]["enabled"], false,
        "a disabled secret still lists"
    );
    let enabled = http
        .call(
            "PATCH",
            &format!("/secrets/p/{version}?api-version=7.5"),
            Some(r#"{"attributes":{"enabled":true},"tags":{}}"#),
        )
        .await;
    assert_eq!(enabled.status, 200);
    assert!(enabled.body.get("tags").is_none());

    let backup = http
        .call("POST", "/secrets/p/backup?api-version=7.5", None)
        .await;
    let blob = backup.body["value"].as_str().unwrap().to_string();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&blob)
        .unwrap();
    assert!(!raw.windows(5).any(|w| w == b"pv-bk"), "the blob is sealed");
    let body = format!(r#"{{"value":"{blob}"}}"#);
    assert_eq!(
        http.call("POST", "/secrets/restore?api-version=7.5", Some(&body))
            .await
            .status,
        409,
        "the name exists"
    );
    http.call("DELETE", "/secrets/p?api-version=7.5", None)
        .await;
    http.call("DELETE", "/deletedsecrets/p?api-version=7.5", None)
        .await;
    let restored = http
        .call("POST", "/secrets/restore?api-version=7.5", Some(&body))
        .await;
    assert_eq!(restored.status, 200);
    assert!(restored.body.get("value").is_none());
    assert_eq!(
        http.call(
            "GET",
            &format!("/secrets/p/{version}?api-version=7.5"),
            None
        )
        .await
        .body["value"],
        "pv-bk-value"
    );

    let other = TestVault::start().await;
    let foreign = Http::new(&other.vault)
        .call("POST", "/secrets/restore?api-version=7.5", Some(&body))
        .await;
    assert_eq!(
        foreign.status, 400,
        "only the vault that made a blob reads it"
    );
    assert_eq!(foreign.body["error"]["code"], "Malformed backup blob");
    let garbage = http
        .call(
            "POST",
            "/secrets/restore?api-version=7.5",
            Some(r#"{"value":"AAAA"}"#),
        )
        .await;
    assert_eq!(garbage.status, 400);
}

#[tokio::test]
async fn percent_encoded_query_keys_are_understood() {
    let t = TestVault::start().await;
    let http = Http::new(&t.vault);
    let answer = http
        .call(
            "GET",
            "/secrets?api%2Dversion=2026-04-01&maxresults=%32",
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn data_dir_files_and_restart_keep_identity_and_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(&dir))
        .await
        .unwrap();
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("token"), 0o600);
    assert_eq!(mode("server-key.pem"), 0o600);
    assert_eq!(mode("vault.db"), 0o600);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), vault.ca_pem());
    assert!(vault.addr().ip().is_loopback());
    let http = Http::new(&vault);
    assert_eq!(
        http.call(
            "PUT",
            "/secrets/kept?api-version=7.5",
            Some(r#"{"value":"still-here"}"#)
        )
        .await
        .status,
        200
    );
    // SQLite creates these with the database's mode; under the usual umask 022 they would be
    // 0644 and readable by every local user.
    assert_eq!(mode("vault.db-wal"), 0o600);
    assert_eq!(mode("vault.db-shm"), 0o600);
    let (ca, token) = (vault.ca_pem().to_vec(), vault.token().clone());
    vault.shutdown().await;

    let again = LocalVault::start(LocalVaultOptions::ephemeral_port(&dir))
        .await
        .unwrap();
    assert_eq!(again.ca_pem(), ca.as_slice(), "the CA survives a restart");
    assert_eq!(again.token(), &token, "the token survives a restart");
    let got = Http::new(&again)
        .call("GET", "/secrets/kept?api-version=7.5", None)
        .await;
    assert_eq!(got.body["value"], "still-here");
}

#[tokio::test]
async fn deleted_secrets_past_their_purge_date_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(dir.path()))
        .await
        .unwrap();
    let http = Http::new(&vault);
    for name in ["Expired", "recent"] {
        let path = format!("/secrets/{name}?api-version=7.5");
        assert_eq!(
            http.call("PUT", &path, Some(r#"{"value":"v1"}"#))
                .await
                .status,
            200
        );
        assert_eq!(http.call("DELETE", &path, None).await.status, 200);
    }
    vault.shutdown().await;
    let db = rusqlite::Connection::open(dir.path().join("vault.db")).unwrap();
    let backdated = db
        .execute(
            "UPDATE deleted SET scheduled_purge = unixepoch() - 1 WHERE name_key = 'EXPIRED'",
            [],
        )
        .unwrap();
    assert_eq!(backdated, 1);
    drop(db);

    let again = LocalVault::start(LocalVaultOptions::ephemeral_port(dir.path()))
        .await
        .unwrap();
    let http = Http::new(&again);
    let gone = http
        .call("GET", "/deletedsecrets/expired?api-version=7.5", None)
        .await;
    assert_eq!(gone.status, 404, "purged once its date passed");
    let kept = http
        .call("GET", "/deletedsecrets/recent?api-version=7.5", None)
        .await;
    assert_eq!(kept.status, 200, "still recoverable before its date");
    let reused = http
        .call(
            "PUT",
            "/secrets/expired?api-version=7.5",
            Some(r#"{"value":"v2"}"#),
        )
        .await;
    assert_eq!(
        reused.status, 200,
        "the name is free again: {:?}",
        reused.body
    );
    let versions = http
        .call("GET", "/secrets/expired/versions?api-version=7.5", None)
        .await;
    assert_eq!(
        versions.body["value"].as_array().unwrap().len(),
        1,
        "no old version survives the purge"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let t = TestVault::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = LocalVaultOptions {
        addr: t.vault.addr(),
        ..LocalVaultOptions::ephemeral_port(dir.path())
    };
    let err = LocalVault::start(options)
        .await
        .err()
        .expect("the port is taken");
    assert!(err.to_string().contains("port is taken"), "{err}");
}

#[tokio::test]
async fn a_data_directory_that_another_user_owns_or_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf| async move {
        LocalVault::start(LocalVaultOptions::ephemeral_port(dir))
            .await
            .err()
            .map(|e| e.to_string())
    };
    // Pre-created by someone else: they would choose the token and read every secret.
    let foreign = parent.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&foreign, Some(4242), Some(4242)).is_ok() {
        let err = start(foreign.clone()).await.expect("refused");
        assert!(err.contains("owned by uid 4242"), "{err}");
        assert!(
            !foreign.join("token").exists(),
            "nothing was written into it"
        );
    }
    // Writable by others: anyone could swap the token.
    let open = parent.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = start(open.clone()).await.expect("refused");
    assert!(err.contains("chmod go-rwx"), "{err}");
    // Ours, but with a token that others can write: planted, so refused.
    let planted = parent.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(planted.join("token"), "chosen-by-someone-else").unwrap();
    std::fs::set_permissions(
        planted.join("token"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let err = start(planted.clone()).await.expect("refused");
    assert!(
        err.contains("token") && err.contains("group or others"),
        "{err}"
    );
}

#[tokio::test]
async fn ids_name_the_public_url_whatever_the_host_header_says() {
    let t = TestVault::with_secrets(&[("hosted", "v")]).await;
    let options = TransportOptions {
        ca_pem: Some(t.vault.ca_pem().to_vec()),
        public_roots: false,
        ..TransportOptions::default()
    };
    let client: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector(&options).unwrap());
    for path in [
        "/secrets/hosted?api-version=7.5",
        "/secrets?api-version=7.5&maxresults=1",
    ] {
        let request = http::Request::get(format!("{}{path}", t.vault.url()))
            .header("host", "evil.example:443")
            .header("authorization", format!("Bearer {}", t.token()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("evil.example"), "{text}");
        assert!(text.contains(&t.vault.url()), "{text}");
    }
}

/// A TLS connection to `vault`, handshake done, nothing sent.
async fn raw_tls(vault: &LocalVault) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let options = TransportOptions {
        ca_pem: Some(vault.ca_pem().to_vec()),
        public_roots: false,
        ..TransportOptions::default()
    };
    let config = kvrun::transport::tls_config(&options).unwrap();
    let tcp = tokio::net::TcpStream::connect(vault.addr()).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_slow_body_and_too_many_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let vault = LocalVault::start(LocalVaultOptions {
        max_connections: 1,
        body_timeout: std::time::Duration::from_millis(300),
        ..LocalVaultOptions::ephemeral_port(dir.path())
    })
    .await
    .unwrap();
    // A client with the token that announces a body and never sends it gets 408.
    let mut slow = raw_tls(&vault).await;
    let head = format!(
        "PUT /secrets/x?api-version=7.5 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
        vault.token().expose()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("answered within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(slow);
    // The one slot of a proven connection is held by an idle token holder: another token
    // holder is answered, and that answer closes its connection.
    let mut holder = raw_tls(&vault).await;
    let get = format!(
        "GET /secrets?api-version=7.5 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\n\r\n",
        vault.token().expose()
    );
    holder.write_all(get.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = holder.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let http = Http::new(&vault);
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        http.call("GET", "/secrets?api-version=7.5", None),
    )
    .await
    .expect("a second token holder is answered");
    assert_eq!(second.status, 200);
    assert_eq!(
        second.headers["connection"], "close",
        "past max_connections"
    );
    // A 401 closes its connection.
    let mut anonymous = raw_tls(&vault).await;
    anonymous
        .write_all(b"GET /secrets?api-version=7.5 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        anonymous.read_to_end(&mut seen),
    )
    .await
    .expect("the server closed the connection after its 401")
    .ok();
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 401"));
    drop(holder);
}

/// Connections without the token cannot hold a token holder out: 1,000 of them, half silent
/// TCP connections that never send a byte (opened again whenever the vault closes one) and
/// half that sent a 401-earning request and wait, while a client with the token makes 100
/// requests, each on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_holder_is_served_while_a_thousand_connections_are_held() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(dir.path()))
        .await
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let ready = std::sync::Arc::new(AtomicUsize::new(0));
    let options = TransportOptions {
        ca_pem: Some(vault.ca_pem().to_vec()),
        public_roots: false,
        ..TransportOptions::default()
    };
    let tls = std::sync::Arc::new(kvrun::transport::tls_config(&options).unwrap());
    let mut holders = Vec::new();
    for i in 0..1000 {
        let (stop, ready, addr, tls) = (stop.clone(), ready.clone(), vault.addr(), tls.clone());
        holders.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            if i % 2 == 0 {
                let mut counted = false;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                        continue;
                    };
                    if !std::mem::replace(&mut counted, true) {
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tcp.read_to_end(&mut sink).await;
                }
            } else if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
                let connector = tokio_rustls::TlsConnector::from(tls);
                if let Ok(mut stream) = connector
                    .connect("127.0.0.1".try_into().unwrap(), tcp)
                    .await
                {
                    let _ = stream
                        .write_all(
                            b"GET /secrets?api-version=7.5 HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
                        )
                        .await;
                    let mut first = [0u8; 64];
                    let _ = stream.read(&mut first).await;
                    ready.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.read_to_end(&mut sink).await;
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < 1000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        ready.load(Ordering::Relaxed),
        1000,
        "every connection was opened"
    );
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            Http::new(&vault).call("GET", "/secrets?api-version=7.5", None),
        )
        .await
        .expect("the token holder was answered");
        assert_eq!(answer.status, 200);
        latencies.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for holder in holders {
        holder.abort();
    }
    latencies.sort();
    let p99 = latencies[98];
    eprintln!(
        "token holder under 1,000 held connections: p50 {:?}, p99 {p99:?}",
        latencies[49]
    );
    assert!(p99 < std::time::Duration::from_secs(1), "p99 {p99:?}");
}

/// Ids, recovery ids and every page of a listing name the vault's public URL (not its listen
/// address), and a client of that URL pages through a listing by its `nextLink`s.
#[tokio::test]
async fn ids_and_next_links_name_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let public = kvrun::vault::PublicUrl::parse("https://127.0.0.1:9443").unwrap();
    let vault = LocalVault::start(LocalVaultOptions {
        public_url: Some(public),
        ..LocalVaultOptions::ephemeral_port(dir.path())
    })
    .await
    .unwrap();
    assert_eq!(vault.url(), "https://127.0.0.1:9443");
    assert_ne!(vault.addr().port(), 9443);
    let mut client = kvrun::Client::new(
        common::runtime(),
        kvrun::ClientOptions::for_local_vault(&vault).unwrap(),
    )
    .await
    .unwrap();
    let options = kvrun::SetOptions {
        content_type: None,
        tags: Vec::new(),
    };
    for i in 0..30 {
        let set = client
            .set_secret(&format!("paged-{i:02}"), &"v".into(), &options)
            .await
            .unwrap();
        assert!(
            set.id.starts_with("https://127.0.0.1:9443/secrets/paged-"),
            "{}",
            set.id
        );
    }
    let listed = client.list_secrets().await.unwrap();
    assert_eq!(listed.len(), 30, "the second page was followed");
    assert!(listed
        .iter()
        .all(|p| p.id.starts_with("https://127.0.0.1:9443/secrets/paged-")));
    let deleted = client.delete_secret("paged-00").await.unwrap();
    assert_eq!(
        deleted.recovery_id.as_deref(),
        Some("https://127.0.0.1:9443/deletedsecrets/paged-00")
    );

    let http = Http::new(&vault);
    let page = http
        .call(
            "GET",
            &format!(
                "https://{}/secrets?api-version=7.5&maxresults=1",
                vault.addr()
            ),
            None,
        )
        .await;
    let next = page.body["nextLink"].as_str().unwrap();
    assert!(
        next.starts_with("https://127.0.0.1:9443/secrets?api-version=7.5&$skiptoken="),
        "{next}"
    );
    vault.shutdown().await;
}

/// The default public URL is `https://localhost:PORT`; one the certificate does not cover is
/// refused at start, with what to do.
#[tokio::test]
async fn the_public_url_defaults_to_localhost_and_must_be_covered_by_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let vault = LocalVault::start(LocalVaultOptions::ephemeral_port(dir.path()))
        .await
        .unwrap();
    assert_eq!(
        vault.url(),
        format!("https://localhost:{}", vault.addr().port())
    );
    vault.shutdown().await;
    let err = LocalVault::start(LocalVaultOptions {
        public_url: Some(kvrun::vault::PublicUrl::parse("https://kv.example.com").unwrap()),
        ..LocalVaultOptions::ephemeral_port(dir.path())
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("server.pem) is not valid for \"kv.example.com\"")
            && err.contains("serve under localhost, 127.0.0.1 or ::1"),
        "{err}"
    );
}
