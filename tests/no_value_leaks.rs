//! Invariant 5 (host side): secret values never appear in logs, errors or `Debug` output.

mod common;

use common::TestVault;
use kvrun::{Error, NewSecret, SecretString, SetOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const VALUE: &str = "pa55-Leak-Canary-7f3e";

#[test]
fn values_never_reach_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = Vec::new();
    rt.block_on(async {
        let t = TestVault::start().await;
        let mut client = t.client().await;
        let value = SecretString::from(VALUE);
        let options = SetOptions {
            content_type: None,
            tags: Vec::new(),
        };
        let set = client.set_secret("canary", &value, &options).await.unwrap();
        seen.push(format!("{set:?}"));
        let got = client.get_secret("canary", None).await.unwrap();
        assert_eq!(got.value.expose(), VALUE);
        seen.push(format!("{got:?}"));
        seen.push(format!(
            "{:?}",
            client.get_secrets(&["canary".into()]).await.unwrap()
        ));
        let batch = [NewSecret {
            name: "canary-2".into(),
            value: value.clone(),
            options: options.clone(),
        }];
        seen.push(format!("{batch:?}"));
        seen.push(format!("{:?}", client.set_secrets(&batch).await.unwrap()));
        seen.push(format!("{:?}", client.list_secrets().await.unwrap()));
        seen.push(format!(
            "{:?}",
            client.delete_secret("canary").await.unwrap()
        ));
        let big = SecretString::new(format!("{VALUE}{}", "x".repeat(26 * 1024)));
        let err: Error = client
            .set_secret("canary", &big, &options)
            .await
            .unwrap_err();
        seen.push(format!("{err} {err:?}"));
        let err = client
            .set_secret("bad/name", &value, &options)
            .await
            .unwrap_err();
        seen.push(format!("{err} {err:?}"));
        seen.push(format!(
            "{:?}",
            kvrun::ClientOptions::for_local_vault(&t.vault).unwrap()
        ));
        t.vault.shutdown().await;
    });

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("kvrun::vault::access"),
        "the access log was captured"
    );
    assert!(!logs.contains(VALUE), "a value reached the logs");
    for text in seen {
        assert!(
            !text.contains(VALUE),
            "a value reached Debug or an error: {text}"
        );
    }
}

/// The `kvrun` command with its own data directory, the tests' compile cache, no Azure
/// identity endpoint, `value` in the environment variable `value_env`, and log filter `log`.
fn kvrun_command(
    data: &std::path::Path,
    value_env: (&str, &str),
    log: Option<&str>,
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kvrun"));
    command
        .env("KVRUN_DATA_DIR", data)
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
        .env(value_env.0, value_env.1)
        .env_remove("KVRUN_VAULT_URL")
        .env_remove("KVRUN_ACCESS_TOKEN");
    match log {
        Some(filter) => command.env("KVRUN_LOG", filter),
        None => command.env_remove("KVRUN_LOG"),
    };
    command
}

/// Stores `value` (passed in the environment variable `value_env`) as secret `name` in the
/// embedded vault under `data`, and compiles the hostile training fixture into the tests'
/// cache with logging off: compiling it with every Cranelift trace line on takes minutes.
fn prepare_trace_run(data: &std::path::Path, name: &str, value_env: (&str, &str)) {
    let kvrun = || kvrun_command(data, value_env, None);
    common::ok(
        &kvrun()
            .args(["compile", env!("KVRUN_HOSTILE_TRAINING_WASM")])
            .output()
            .unwrap(),
    );
    common::ok(
        &kvrun()
            .args(["secret", "set", name, "--value-from-env", value_env.0])
            .output()
            .unwrap(),
    );
}

#[test]
fn a_run_that_prints_its_value_leaks_nothing_at_trace_level() {
    const RUN_VALUE: &str = "Run-Canary-Value-31c9";
    let data = tempfile::tempdir().unwrap();
    let kvrun = |log| kvrun_command(data.path(), ("RUN_VALUE", RUN_VALUE), log);
    prepare_trace_run(data.path(), "db-password", ("RUN_VALUE", RUN_VALUE));
    for filter in [
        "trace",
        "wasmtime_wasi=trace,wasmtime_wasi::p2::write_stream=trace,kvrun=trace",
    ] {
        let out = kvrun(Some(filter))
            .args([
                "run",
                env!("KVRUN_HOSTILE_TRAINING_WASM"),
                "--secret",
                "db-password",
            ])
            .args(["--", "print", "db-password", "both"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stdout.contains("out=***"),
            "the run printed its value: {stdout}"
        );
        assert!(
            stderr.contains("TRACE") || stderr.contains("DEBUG"),
            "debug logging is on: {filter}"
        );
        assert!(!stdout.contains(RUN_VALUE), "{stdout}");
        assert!(
            !stderr.contains(RUN_VALUE),
            "the log carried the value ({filter})"
        );
        assert!(
            !stderr.contains("worker writing"),
            "a guest-data log line printed ({filter})"
        );
    }
}

#[test]
fn a_substituted_request_leaks_nothing_at_trace_level() {
    const USE_VALUE: &str = "Use-Canary-Value-8d2a";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tracker = rt.block_on(common::RawServer::start(|_, seen| {
        let echoed = seen.header("authorization").unwrap_or_default();
        common::http_reply("200 OK", &[], &format!("{{\"you-sent\":\"{echoed}\"}}"))
    }));
    let data = tempfile::tempdir().unwrap();
    let ca = data.path().join("tracker-ca.pem");
    std::fs::write(&ca, &tracker.ca_pem).unwrap();
    let kvrun = |log| kvrun_command(data.path(), ("USE_VALUE", USE_VALUE), log);
    prepare_trace_run(data.path(), "api-token", ("USE_VALUE", USE_VALUE));
    let out = kvrun(Some("trace"))
        .args(["run", env!("KVRUN_HOSTILE_TRAINING_WASM")])
        .args(["--use-secret", &format!("api-token={}/v1", tracker.url())])
        .arg("--http-ca-cert")
        .arg(&ca)
        .args([
            "--",
            "use",
            "api-token",
            &format!("{}/v1/x", tracker.url()),
            "bearer",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("use: status 200"), "{stdout}");
    assert_eq!(
        tracker.requests()[0].header("authorization").as_deref(),
        Some(&format!("Bearer {USE_VALUE}")[..]),
        "the value was put in"
    );
    assert!(stderr.contains("TRACE"), "trace logging is on");
    assert!(
        stderr.contains("run request"),
        "the substitution was logged"
    );
    assert!(!stdout.contains(USE_VALUE), "{stdout}");
    assert!(
        !stderr.contains(USE_VALUE),
        "the trace log carried the value"
    );
}
