//! Invariant 8 and the local vault's storage: every acknowledged write survives `kill -9`
//! with its version, and concurrent readers and writers on one name never see a torn or
//! lost version.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use kvrun::transport::{connector, TransportOptions};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Http = HyperClient<kvrun::transport::Connector, Full<Bytes>>;

struct Vault {
    child: Child,
    url: String,
}

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Vault {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvrun"))
        .args(["vault", "serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("KVRUN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("kvrun local vault serving ")
        .expect(&first)
        .to_string();
    std::thread::spawn(move || lines.for_each(drop));
    Vault { child, url }
}

fn client(data_dir: &Path) -> (Http, String) {
    let options = TransportOptions {
        ca_pem: Some(std::fs::read(data_dir.join("ca.pem")).unwrap()),
        public_roots: false,
        ..TransportOptions::default()
    };
    let token = std::fs::read_to_string(data_dir.join("token")).unwrap();
    (
        HyperClient::builder(TokioExecutor::new()).build(connector(&options).unwrap()),
        token,
    )
}

/// Sends one request; `None` when the server is gone or answered an error.
async fn call(
    http: &Http,
    token: &str,
    method: &str,
    url: &str,
    body: Option<String>,
) -> Option<serde_json::Value> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), http.request(request))
        .await
        .ok()?
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

fn version_of(bundle: &serde_json::Value) -> String {
    bundle["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = serve(dir.path());
    let (http, token) = client(dir.path());
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (http, token, url, acked) = (
            http.clone(),
            token.clone(),
            vault.url.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = if i % 3 == 0 {
                    "shared".to_string()
                } else {
                    format!("w{w}-{i}")
                };
                let value = format!("value-{w}-{i}");
                let body = serde_json::json!({ "value": value }).to_string();
                match call(
                    &http,
                    &token,
                    "PUT",
                    &format!("{url}/secrets/{name}?api-version=7.5"),
                    Some(body),
                )
                .await
                {
                    Some(bundle) => acked
                        .lock()
                        .unwrap()
                        .push((name, version_of(&bundle), value)),
                    None => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    vault.child.kill().unwrap();
    vault.child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the writers got going: {}", acked.len());

    let again = serve(dir.path());
    let (http, token) = client(dir.path());
    for (name, version, value) in &acked {
        let url = format!("{}/secrets/{name}/{version}?api-version=7.5", again.url);
        let bundle = call(&http, &token, "GET", &url, None).await;
        let bundle = bundle.unwrap_or_else(|| panic!("acknowledged {name}/{version} was lost"));
        assert_eq!(bundle["value"], value.as_str(), "{name}/{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_writers_on_one_name_never_see_a_torn_or_lost_version() {
    let dir = tempfile::tempdir().unwrap();
    let vault = serve(dir.path());
    let (http, token) = client(dir.path());
    let url = vault.url.clone();
    let first = serde_json::json!({ "value": "seed" }).to_string();
    call(
        &http,
        &token,
        "PUT",
        &format!("{url}/secrets/hot?api-version=7.5"),
        Some(first),
    )
    .await
    .unwrap();

    let written: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let read: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (http, token, url, written) =
            (http.clone(), token.clone(), url.clone(), written.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let value = format!("w{w}-{i}-{}", "x".repeat(100 * (i % 7)));
                let body = serde_json::json!({ "value": value }).to_string();
                let bundle = call(
                    &http,
                    &token,
                    "PUT",
                    &format!("{url}/secrets/hot?api-version=7.5"),
                    Some(body),
                )
                .await
                .unwrap();
                written.lock().unwrap().insert(version_of(&bundle), value);
            }
        }));
    }
    for _ in 0..4 {
        let (http, token, url, read) = (http.clone(), token.clone(), url.clone(), read.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..60 {
                let bundle = call(
                    &http,
                    &token,
                    "GET",
                    &format!("{url}/secrets/hot?api-version=7.5"),
                    None,
                )
                .await
                .unwrap();
                read.lock().unwrap().push((
                    version_of(&bundle),
                    bundle["value"].as_str().unwrap().to_string(),
                ));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 160);
    for (version, value) in read.lock().unwrap().iter() {
        if value != "seed" {
            assert_eq!(
                written.get(version),
                Some(value),
                "a read saw {version} with another value"
            );
        }
    }
    let mut listed = std::collections::HashSet::new();
    let mut next = Some(format!("{url}/secrets/hot/versions?api-version=7.5"));
    while let Some(page_url) = next {
        let page = call(&http, &token, "GET", &page_url, None).await.unwrap();
        for item in page["value"].as_array().unwrap() {
            listed.insert(version_of(item));
        }
        next = page["nextLink"].as_str().map(str::to_string);
    }
    for version in written.keys() {
        assert!(listed.contains(version), "version {version} was lost");
    }
    assert_eq!(listed.len(), 161);
}

/// The latest versions are served from memory: a read after an acknowledged write must see
/// that write, also while other readers race to fill the memory with what they read before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledged_write_sees_it_while_others_read() {
    let dir = tempfile::tempdir().unwrap();
    let vault = serve(dir.path());
    let (http, token) = client(dir.path());
    let url = format!("{}/secrets/fresh?api-version=7.5", vault.url);
    let put = |value: String| {
        let (http, token, url) = (http.clone(), token.clone(), url.clone());
        async move {
            let body = serde_json::json!({ "value": value }).to_string();
            call(&http, &token, "PUT", &url, Some(body)).await.unwrap()
        }
    };
    put("v-0".into()).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (http, token, url, done) = (http.clone(), token.clone(), url.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = call(&http, &token, "GET", &url, None).await;
            }
        }));
    }
    for i in 1..=150 {
        let written = put(format!("v-{i}")).await;
        let read = call(&http, &token, "GET", &url, None).await.unwrap();
        assert_eq!(read["value"], format!("v-{i}"), "read after write {i}");
        assert_eq!(version_of(&read), version_of(&written));
        if i % 50 == 0 {
            let patch = serde_json::json!({ "attributes": { "enabled": false } }).to_string();
            let version = version_of(&written);
            let disable = format!("{}/secrets/fresh/{version}?api-version=7.5", vault.url);
            call(&http, &token, "PATCH", &disable, Some(patch))
                .await
                .unwrap();
            let refused = call(&http, &token, "GET", &url, None).await;
            assert!(
                refused.is_none(),
                "a disabled latest version is not served from memory"
            );
            put(format!("v-{i}")).await;
        }
    }
    call(
        &http,
        &token,
        "DELETE",
        &format!("{}/secrets/fresh?api-version=7.5", vault.url),
        None,
    )
    .await
    .unwrap();
    assert!(
        call(&http, &token, "GET", &url, None).await.is_none(),
        "deleted"
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let _ = reader.await;
    }
}
