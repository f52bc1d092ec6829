//! Invariant 4: untrusted training code gets no network, environment or files beyond what
//! the operator grants, and bounded memory, time and output; hitting a limit stops the run
//! with a distinct status and leaves the host healthy.

mod common;

use common::{http_reply, run_options, run_training, RawServer, TestVault, HOSTILE_TRAINING_WASM};
use kvrun::sandbox::{DirGrant, RunExit};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test]
async fn no_network_unless_granted_not_even_to_the_vault() {
    let t = TestVault::start().await;
    let elsewhere = RawServer::start(|_, _| http_reply("200 OK", &[], "{}")).await;
    for url in [
        format!("{}/secrets?api-version=7.5", t.vault.url()),
        format!("{}/", elsewhere.url()),
        "https://example.com/".to_string(),
    ] {
        let ran = run_training(
            HOSTILE_TRAINING_WASM,
            t.options(),
            run_options(&["http", &url], &[]),
        )
        .await;
        assert_eq!(
            ran.stdout.trim(),
            "http: the kvrun host refused the request (this run may not send it there)",
            "{url}"
        );
    }
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);

    let mut options = run_options(&["http", &format!("{}/", elsewhere.url())], &[]);
    options.allow_http = vec![elsewhere.url()];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert!(
        ran.stdout.contains("http: "),
        "an allowed origin is reached: {}",
        ran.stdout
    );
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 1);

    let mut options = run_options(
        &[
            "http",
            &format!("{}/secrets?api-version=7.5", t.vault.url()),
        ],
        &[],
    );
    options.allow_http = vec![elsewhere.url()];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(
        ran.stdout.trim(),
        "http: the kvrun host refused the request (this run may not send it there)",
        "the vault stays closed"
    );
}

#[tokio::test]
async fn environment_is_only_what_was_given() {
    let t = TestVault::start().await;
    std::env::set_var("KVRUN_HOST_ONLY", "host-secret-env");
    let mut options = run_options(&["env"], &[]);
    options.env = vec![("MODE".into(), "train".into())];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.stdout.trim(), "env: MODE=train");
    assert!(!ran.output().contains(&t.token()));
}

#[tokio::test]
async fn files_are_only_what_was_given_and_read_only_stays_read_only() {
    let t = TestVault::start().await;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("train.csv"), "x,y\n1,2\n").unwrap();
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["read", "/etc/passwd"], &[]),
    )
    .await;
    assert!(ran.stdout.starts_with("read failed"), "{}", ran.stdout);
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(
            &["read", &t.dir.path().join("token").display().to_string()],
            &[],
        ),
    )
    .await;
    assert!(ran.stdout.starts_with("read failed"), "{}", ran.stdout);

    let grant = DirGrant {
        host: data.path().to_path_buf(),
        guest: "/data".into(),
        read_only: true,
    };
    let mut options = run_options(&["read", "/data/train.csv"], &[]);
    options.dirs = vec![grant.clone()];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.stdout.trim(), "read: 8 bytes");
    let mut options = run_options(&["write", "/data/train.csv"], &[]);
    options.dirs = vec![grant.clone()];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert!(ran.stdout.starts_with("write failed"), "{}", ran.stdout);
    let mut options = run_options(&["read", "/data/../../etc/passwd"], &[]);
    options.dirs = vec![grant];
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert!(ran.stdout.starts_with("read failed"), "{}", ran.stdout);
    assert_eq!(
        std::fs::read_to_string(data.path().join("train.csv")).unwrap(),
        "x,y\n1,2\n"
    );
}

/// The review's reproduction: a run opened files on its view until the host's limit, and its
/// next granted `get_secret` failed with "connection refused". Now its opens past
/// `max_open_files` fail (EDQUOT), it goes on, and its secret still comes.
#[tokio::test]
async fn a_run_holds_at_most_its_open_files_and_the_host_keeps_its_own() {
    let t = TestVault::with_secrets(&[("db-password", "pa55-word-1")]).await;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("train.csv"), "x,y\n1,2\n").unwrap();
    let grant = DirGrant {
        host: data.path().to_path_buf(),
        guest: "/data".into(),
        read_only: true,
    };
    let mut options = run_options(
        &["open-files", "/data/train.csv", "100000", "db-password"],
        &["db-password"],
    );
    options.dirs = vec![grant];
    options.max_open_files = 40;
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
    // The preopened directory is the run's own and not counted: 40 files besides it.
    assert!(ran.stdout.contains("opened 40\n"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("(errno Some(19))"),
        "EDQUOT in wasi-libc: {}",
        ran.stdout
    );
    assert!(ran.stdout.contains("db-password: ok"), "{}", ran.stdout);
}

#[tokio::test]
async fn limits_stop_the_run_with_a_distinct_status_and_the_host_stays_healthy() {
    let t = TestVault::start().await;
    let mut options = run_options(&["loop"], &[]);
    options.timeout = Duration::from_millis(500);
    let start = Instant::now();
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.exit, RunExit::Timeout(Duration::from_millis(500)));
    assert_eq!(ran.exit.status(), 124);
    assert!(start.elapsed() < Duration::from_secs(10));

    let mut options = run_options(&["sleep"], &[]);
    options.timeout = Duration::from_millis(500);
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(
        ran.exit,
        RunExit::Timeout(Duration::from_millis(500)),
        "also while waiting on I/O"
    );

    let mut options = run_options(&["alloc"], &[]);
    options.max_memory = 64 << 20;
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.exit, RunExit::MemoryLimit(64 << 20));
    assert_eq!(ran.exit.status(), 122);

    let mut options = run_options(&["spam"], &[]);
    options.max_output = 100_000;
    let ran = run_training(HOSTILE_TRAINING_WASM, t.options(), options).await;
    assert_eq!(ran.exit, RunExit::OutputLimit(100_000));
    assert_eq!(ran.exit.status(), 121);
    assert!(ran.output().len() <= 100_000);

    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["env"], &[]),
    )
    .await;
    assert_eq!(
        ran.exit,
        RunExit::Code(0),
        "a run after the limits still works"
    );
    let unknown = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["no-such-probe"], &[]),
    )
    .await;
    assert_eq!(
        unknown.exit,
        RunExit::Code(64),
        "the component's own exit status is kept"
    );
}

#[tokio::test]
async fn a_full_instance_pool_refuses_a_run_clearly_and_the_next_one_starts() {
    // Also under `ulimit -v 4000000`: this very test again, in a child process with that
    // address-space limit, where the pool (3 slots of 512 MiB) must still fit.
    if std::env::var_os("KVRUN_TEST_UNDER_AS_LIMIT").is_none() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "a_full_instance_pool_refuses_a_run_clearly_and_the_next_one_starts",
            ])
            .env("KVRUN_TEST_UNDER_AS_LIMIT", "1");
        common::limit_address_space(&mut child, 4_000_000);
        let out = child.output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && report.contains("1 passed"),
            "under the limit: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t = TestVault::start().await;
    let runtime = kvrun::Runtime::new(kvrun::RuntimeOptions {
        cache_dir: Some(common::cache_dir()),
        // A run takes two instances (training component, vault client): the second run
        // gets its vault client, and its training component finds the pool full.
        max_instances: 3,
        max_memory: 512 << 20,
        ..kvrun::RuntimeOptions::default()
    })
    .unwrap();
    let sandbox = kvrun::sandbox::Sandbox::new(&runtime, t.options()).unwrap();
    let component = sandbox.prepare(HOSTILE_TRAINING_WASM).unwrap();
    let holding = common::run_in(&sandbox, &component, run_options(&["hold", "1000"], &[]));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sandbox
            .run(
                &component,
                run_options(&["env"], &[]),
                common::discarded_io(),
            )
            .await
    };
    let (held, refused) = tokio::join!(holding, refused);
    assert_eq!(
        held.exit,
        RunExit::Code(0),
        "the running run is not disturbed"
    );
    match refused {
        Err(e @ kvrun::Error::Capacity(_)) => {
            assert!(e.to_string().contains("limit of 3"), "{e}");
            assert!(e.hint().unwrap().contains("max_instances"));
        }
        other => panic!("a run beyond the pool is refused as at capacity: {other:?}"),
    }
    let next = common::run_in(&sandbox, &component, run_options(&["env"], &[])).await;
    assert_eq!(next.exit, RunExit::Code(0), "the slots are free again");
}

#[tokio::test]
async fn a_component_prepared_by_another_runtime_is_refused() {
    let t = TestVault::start().await;
    let other = kvrun::Runtime::new(kvrun::RuntimeOptions {
        cache_dir: Some(common::cache_dir()),
        ..kvrun::RuntimeOptions::default()
    })
    .unwrap();
    let foreign = kvrun::sandbox::Sandbox::new(&other, t.options())
        .unwrap()
        .prepare(HOSTILE_TRAINING_WASM)
        .unwrap();
    let sandbox = kvrun::sandbox::Sandbox::new(common::runtime(), t.options()).unwrap();
    match sandbox
        .run(&foreign, run_options(&["env"], &[]), common::discarded_io())
        .await
    {
        Err(e @ kvrun::Error::Config(_)) => {
            assert!(e.to_string().contains("another Runtime"), "{e}")
        }
        other => panic!("a component from another engine is refused: {other:?}"),
    }
}
