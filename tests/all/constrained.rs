//! kvrun runs where training runs: every command under `ulimit -v 4000000` (an address-space
//! limit as HPC schedulers and some containers set; the pool is sized to the work), with a
//! cache directory it cannot write (one plain warning line, the command still works), and
//! without `HOME`.

use crate::common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const LIMIT_KIB: u64 = 4_000_000;

fn kvrun(data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvrun"));
    command
        .env("KVRUN_DATA_DIR", data)
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
        .env("VALUE", "limited-value")
        .env_remove("KVRUN_VAULT_URL")
        .env_remove("KVRUN_ACCESS_TOKEN")
        .env_remove("KVRUN_LOG");
    command
}

#[test]
fn every_command_works_under_an_address_space_limit() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let example = env!("KVRUN_EXAMPLE_TRAIN_WASM");
    let data_grant = format!(
        "{}::/data:ro",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data")
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["secret", "set", "db-password", "--value-from-env", "VALUE"],
        vec!["secret", "get", "db-password"],
        vec!["secret", "get-many", "db-password", "missing"],
        vec!["secret", "list"],
        vec!["secret", "versions", "db-password"],
        vec!["workspace", "show"],
        vec![
            "run",
            example,
            "--secret",
            "db-password",
            "--dir",
            &data_grant,
            "--max-memory",
            "512MiB",
        ],
        vec!["secret", "delete", "db-password"],
    ];
    for args in commands {
        let mut command = kvrun(d);
        command.args(&args);
        common::limit_address_space(&mut command, LIMIT_KIB);
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?} under ulimit -v {LIMIT_KIB}: {stderr}"
        );
        assert!(!stderr.contains("Cannot allocate memory"), "{stderr}");
        if args[0] == "run" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("fitted y ="), "{stdout}");
        }
    }
    let mut serve = kvrun(d);
    serve
        .args(["vault", "serve", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    common::limit_address_space(&mut serve, LIMIT_KIB);
    let mut child = serve.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.starts_with("kvrun local vault serving"), "{first}");
}

#[test]
fn a_cache_it_cannot_write_costs_one_plain_warning_line() {
    let data = tempfile::tempdir().unwrap();
    // /sys/fs exists, belongs to root and takes no new files, as a read-only cache would.
    let out = kvrun(data.path())
        .env("KVRUN_CACHE_DIR", "/sys/fs")
        .args(["secret", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("kvrun: warning: "), "{stderr}");
    assert!(
        !stderr.contains(" WARN ") && !stderr.contains("kvrun::") && !stderr.contains("Z "),
        "no log formatting: {stderr}"
    );
    let logged = kvrun(data.path())
        .env("KVRUN_CACHE_DIR", "/sys/fs")
        .env("KVRUN_LOG", "warn")
        .args(["secret", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&logged.stderr).contains("WARN"),
        "KVRUN_LOG asks for the log format"
    );
}

#[test]
fn without_home_the_data_and_cache_directories_come_from_kvrun_variables() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kvrun"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KVRUN_DATA_DIR", data.path())
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .args(["secret", "list"])
        .output()
        .unwrap();
    common::ok(&out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
