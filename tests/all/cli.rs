//! The `kvrun` command line, run as a user would: embedded default, `vault serve` with
//! `--vault`, values from stdin/env/file (never argv), JSON output, exit statuses.

use crate::common;
use common::ok;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn kvrun(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvrun"));
    command
        .env("KVRUN_DATA_DIR", data_dir)
        .env("KVRUN_CACHE_DIR", common::cache_dir())
        .env_remove("KVRUN_VAULT_URL")
        .env_remove("KVRUN_ACCESS_TOKEN")
        .env_remove("KVRUN_API_VERSION")
        .env_remove("KVRUN_LOG")
        .env_remove("KVRUN_AUTH")
        .env_remove("IDENTITY_ENDPOINT")
        // Should any test reach the Azure chain, its IMDS probe stays on loopback.
        .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9");
    command
}

fn run(mut command: Command, stdin: &str) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn kvrun_with(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = kvrun(data_dir);
    command.args(args);
    command
}

fn secret(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = kvrun(data_dir);
    command.arg("secret").args(args);
    command
}

#[test]
fn secret_commands_work_on_the_embedded_vault() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set = ok(&run(secret(d, &["set", "db-password"]), "from-stdin\n"));
    assert!(set.starts_with("set db-password (version "), "{set}");
    assert_eq!(
        ok(&run(secret(d, &["get", "db-password"]), "")),
        "from-stdin\n"
    );

    let mut from_env = secret(d, &["set", "api-key", "--value-from-env", "MY_VALUE"]);
    from_env.env("MY_VALUE", "from-env");
    ok(&run(from_env, ""));
    let file = d.join("value.txt");
    std::fs::write(&file, "from-file\nline two").unwrap();
    ok(&run(
        secret(
            d,
            &[
                "set",
                "cert",
                "--value-file",
                file.to_str().unwrap(),
                "--tag",
                "env=dev",
            ],
        ),
        "",
    ));

    let many = ok(&run(
        secret(d, &["get-many", "api-key", "missing", "cert"]),
        "",
    ));
    let many: serde_json::Value = serde_json::from_str(&many).unwrap();
    assert_eq!(
        many,
        serde_json::json!({"api-key": "from-env", "missing": null, "cert": "from-file\nline two"})
    );

    let listed = ok(&run(secret(d, &["list"]), ""));
    assert_eq!(listed, "api-key\ncert\ndb-password\n");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(secret(d, &["list", "--output", "json"]), ""))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[1]["tags"]["env"], "dev");
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .all(|item| item.get("version").is_none()),
        "a list item describes the secret, not a version: {json}"
    );

    let got: serde_json::Value =
        serde_json::from_str(&ok(&run(secret(d, &["get", "cert", "-o", "json"]), ""))).unwrap();
    assert_eq!(got["value"], "from-file\nline two");
    let again: serde_json::Value =
        serde_json::from_str(&ok(&run(secret(d, &["get", "cert", "-o", "json"]), ""))).unwrap();
    assert_eq!(
        got["id"], again["id"],
        "the embedded vault's ids are the same from one command to the next"
    );
    assert!(
        got["id"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:8443/secrets/cert/"),
        "{got}"
    );
    let shown = ok(&run(kvrun_with(d, &["workspace", "show"]), ""));
    assert!(
        shown.starts_with(&format!("vault: the local vault ({})\n", d.display())),
        "no URL that is gone when the command exits: {shown}"
    );
    let version = got["version"].as_str().unwrap().to_string();
    let mut second = secret(d, &["set", "cert", "--value-from-env", "V2"]);
    second.env("V2", "second");
    ok(&run(second, ""));
    assert_eq!(
        ok(&run(secret(d, &["get", "cert", "--version", &version]), "")),
        "from-file\nline two\n"
    );
    assert_eq!(
        ok(&run(secret(d, &["versions", "cert"]), ""))
            .lines()
            .count(),
        2
    );

    let json_file = d.join("batch.json");
    std::fs::write(&json_file, r#"{"b-one": "1", "b-two": "2"}"#).unwrap();
    let batch = ok(&run(
        secret(d, &["set-many", "--from-json", json_file.to_str().unwrap()]),
        "",
    ));
    assert_eq!(batch.lines().count(), 2, "{batch}");
    let mut prefixed = secret(d, &["set-many", "--from-env-prefix", "TRAIN_SECRET_"]);
    prefixed.env("TRAIN_SECRET_DB_USER", "alice");
    ok(&run(prefixed, ""));
    assert_eq!(ok(&run(secret(d, &["get", "db-user"]), "")), "alice\n");

    assert_eq!(
        ok(&run(secret(d, &["delete", "api-key"]), "")),
        "deleted api-key\n"
    );
    let gone = run(secret(d, &["get", "api-key"]), "");
    assert_eq!(gone.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.starts_with("kvrun: secret \"api-key\" was not found in the local vault"),
        "{stderr}"
    );
}

#[test]
fn backups_and_audit_files_are_private_even_over_existing_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(secret(d, &["set", "db-password"]), "backed-up\n"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let backup = d.join("db-password.backup");
    std::fs::write(&backup, "old").unwrap();
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&run(
        secret(
            d,
            &["backup", "db-password", "--file", backup.to_str().unwrap()],
        ),
        "",
    ));
    assert_eq!(
        mode(&backup),
        0o600,
        "the backup replaced the readable file"
    );

    let audit = d.join("audit.jsonl");
    std::fs::write(&audit, "").unwrap();
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = kvrun(d);
    command
        .args([
            "run",
            env!("KVRUN_EXAMPLE_TRAIN_WASM"),
            "--secret",
            "db-password",
        ])
        .arg("--audit")
        .arg(&audit);
    let _ = run(command, "");
    assert_eq!(mode(&audit), 0o600);
    assert!(std::fs::read_to_string(&audit)
        .unwrap()
        .contains("db-password"));

    // Files that others can write are refused, with what to do.
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(
        secret(
            d,
            &["backup", "db-password", "--file", backup.to_str().unwrap()],
        ),
        "",
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod go-rwx"));
}

#[test]
fn failures_are_one_line_with_a_distinct_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let invalid = run(secret(d, &["get", "bad/name"]), "");
    assert_eq!(invalid.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        stderr.contains("invalid secret name \"bad/name\""),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    let argv_value = run(secret(d, &["set", "x", "--value", "in-argv"]), "");
    assert_eq!(
        argv_value.status.code(),
        Some(4),
        "there is no way to pass a value in argv"
    );
    let stderr = String::from_utf8_lossy(&argv_value.stderr);
    assert!(
        stderr
            .starts_with("kvrun: invalid argument: secret values never come from the command line")
            && !stderr.contains("in-argv"),
        "{stderr}"
    );

    let missing_env = run(
        secret(d, &["set", "x", "--value-from-env", "NOT_SET_ANYWHERE"]),
        "",
    );
    assert_eq!(missing_env.status.code(), Some(4));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut unreachable = secret(d, &["get", "x"]);
    unreachable.env("KVRUN_VAULT_URL", format!("https://127.0.0.1:{port}"));
    unreachable.env("KVRUN_ACCESS_TOKEN", "some-token");
    let out = run(unreachable, "");
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the connection was refused"));

    let plain = run(
        secret(d, &["--vault", "http://example.com", "get", "x"]),
        "",
    );
    assert_eq!(
        plain.status.code(),
        Some(4),
        "plain http to a non-loopback host is refused"
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vault_serve_with_an_explicit_vault_url() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut command = kvrun(d);
    command
        .args(["vault", "serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(command.spawn().unwrap());
    let mut lines = BufReader::new(server.0.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("kvrun local vault serving ")
        .unwrap()
        .to_string();
    std::thread::spawn(move || lines.for_each(drop));

    let client_dir = tempfile::tempdir().unwrap();
    let ca = d.join("ca.pem");
    let token = d.join("token");
    let remote = |args: &[&str]| {
        let mut command = kvrun(client_dir.path());
        command
            .args(["--vault", &url, "--ca-cert", ca.to_str().unwrap()])
            .arg("secret")
            .args(args);
        command
    };
    let mut set = remote(&[
        "set",
        "remote-secret",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    set.env("UNUSED", "1");
    ok(&run(set, "over-the-wire"));
    let mut get = remote(&["get", "remote-secret"]);
    get.env(
        "KVRUN_ACCESS_TOKEN",
        std::fs::read_to_string(&token).unwrap(),
    );
    assert_eq!(ok(&run(get, "")), "over-the-wire\n");
    assert!(
        !client_dir.path().join("token").exists(),
        "no embedded vault was started"
    );

    let mut wrong = remote(&["get", "remote-secret"]);
    wrong.env("KVRUN_ACCESS_TOKEN", "wrong-token");
    let out = run(wrong, "");
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not accept the credential"));

    // No token at all: the Azure chain does not answer a host outside Key Vault's domains,
    // and the one line says what was tried and what to do.
    let out = run(remote(&["get", "remote-secret"]), "");
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kvrun: the vault on localhost asked for a token and none was sent: no token was given (--token-file, KVRUN_ACCESS_TOKEN), and an Azure credential answers only a Key Vault host in the domain its challenge names (localhost is not one, the challenge names vault.azure.net; for a test server, --unsafe-token-to-any-host) (give a token the vault accepts (KVRUN_ACCESS_TOKEN, --token-file) or check the Azure credential (--auth))\n"
    );

    let no_ca = run(
        {
            let mut c = kvrun(client_dir.path());
            c.args([
                "--vault",
                &url,
                "--token-file",
                token.to_str().unwrap(),
                "secret",
                "get",
                "remote-secret",
            ]);
            c
        },
        "",
    );
    assert_eq!(
        no_ca.status.code(),
        Some(7),
        "the local CA is not trusted without --ca-cert"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.0.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM stops the server cleanly: {status:?}"
    );
}

#[test]
fn vault_serve_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = kvrun(dir.path());
    command.args(["vault", "serve", "--addr", "0.0.0.0:0"]);
    let out = run(command, "");
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));

    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let mut command = kvrun(dir.path());
    command
        .args(["vault", "serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&not_a_dir);
    let out = run(command, "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not create the directory") && stderr.contains("file"),
        "{stderr}"
    );
}

/// `kvrun run` of the example job with `db-password` granted and its data mounted.
fn example_run(data_dir: &Path) -> Command {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    let mut command = kvrun(data_dir);
    command.args([
        "run",
        env!("KVRUN_EXAMPLE_TRAIN_WASM"),
        "--secret",
        "db-password",
    ]);
    command
        .arg("--dir")
        .arg(format!("{}::/data:ro", data.display()));
    command
}

#[test]
fn run_refuses_a_dir_that_shows_kvruns_own_directories_or_takes_a_script_mount() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&run(secret(&data, &["set", "db-password"]), "pa55\n"));
    let attempts = [
        (data.display().to_string(), "/d", "kvrun's own directory"),
        (
            dir.path().display().to_string(),
            "/d",
            "kvrun's own directory",
        ),
        (
            common::cache_dir().display().to_string(),
            "/d",
            "kvrun's own directory",
        ),
        (
            dir.path().join("elsewhere").display().to_string(),
            "/script",
            "where kvrun mounts a script's files",
        ),
    ];
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    for (host, guest, why) in attempts {
        let mut command = kvrun(&data);
        command.args([
            "run",
            env!("KVRUN_EXAMPLE_TRAIN_WASM"),
            "--secret",
            "db-password",
        ]);
        command.arg("--dir").arg(format!("{host}::{guest}:ro"));
        let out = run(command, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{host}: {stderr}");
        assert!(stderr.contains(why), "{host}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("fitted"),
            "the run did not start"
        );
    }
}

/// A run must never rewrite its own records: a writable `--dir` that holds the `--audit` file
/// or the file kvrun's stdout goes to is refused; read-only, it is mounted (the run starts).
#[test]
fn a_writable_dir_holding_the_audit_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&run(secret(&data, &["set", "db-password"]), "pa55\n"));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let audit = logs.join("audit.jsonl");
    let log = logs.join("train.log");
    for (mode, refused) in [("", true), (":ro", false)] {
        let mut command = example_run(&data);
        command.arg("--audit").arg(&audit);
        command
            .arg("--dir")
            .arg(format!("{}::/logs{mode}", logs.display()));
        let out = run(command, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if refused {
            assert_eq!(out.status.code(), Some(4), "{stderr}");
            assert!(
                stderr.contains("it holds the run's audit file (--audit)")
                    && stderr.contains("must never rewrite it"),
                "{stderr}"
            );
        } else {
            assert_eq!(out.status.code(), Some(0), "{stderr}");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    // The audit key is a credential: no --dir shows it, read-only or not (a run that read it
    // could test guesses of a use-only value against any fingerprint it sees).
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("audit.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for mode in ["", ":ro"] {
        let mut command = example_run(&data);
        command.arg("--audit-key").arg(&key);
        command
            .arg("--dir")
            .arg(format!("{}::/keys{mode}", keys.display()));
        let out = run(command, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("the audit key"), "{stderr}");
    }
    let mut command = example_run(&data);
    command
        .arg("--dir")
        .arg(format!("{}::/logs", logs.display()));
    command.stdout(std::fs::File::create(&log).unwrap());
    let out = command.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("kvrun's redirected stdout"), "{stderr}");
    assert!(
        !std::fs::read_to_string(&log).unwrap().contains("fitted"),
        "the run did not start"
    );
}

#[test]
fn run_masks_the_granted_secret_and_keeps_the_components_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(secret(d, &["set", "db-password"]), "cli-run-pa55\n"));
    let audit = d.join("audit.jsonl");
    let mut command = example_run(d);
    command.arg("--audit").arg(&audit);
    let out = run(command, "");
    let stdout = ok(&out);
    assert!(
        stdout.contains("postgres://trainer:***@db.internal"),
        "{stdout}"
    );
    assert!(stdout.contains("train: fitted y = "), "{stdout}");
    assert!(!stdout.contains("cli-run-pa55"));
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{text}");
    assert_eq!(records[0]["operation"], "run-start");
    assert_eq!(records[0]["program"], "component");
    let wasm = std::fs::read(env!("KVRUN_EXAMPLE_TRAIN_WASM")).unwrap();
    assert_eq!(
        records[0]["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm))
    );
    assert_eq!(records[0]["secrets"], serde_json::json!(["db-password"]));
    let record = &records[1];
    assert_eq!(record["name"], "db-password");
    assert_eq!(record["outcome"], "ok");
    assert_eq!(record["version"].as_str().unwrap().len(), 32, "{record}");
    assert_eq!(
        record["fingerprint"].as_str().unwrap().len(),
        32,
        "{record}"
    );
    assert_eq!(records[2]["operation"], "run-end");
    assert_eq!(records[2]["status"], 0);
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(d.join("audit.key")).unwrap();
    assert_eq!(
        (metadata.len(), metadata.permissions().mode() & 0o777),
        (32, 0o600)
    );

    // The records prove themselves: whole as written, and any tampering is named.
    let verify = |file: &Path| {
        let mut command = kvrun(d);
        command.args(["audit", "verify"]).arg(file);
        let out = run(command, "");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (status, said) = verify(&audit);
    assert_eq!(status, Some(0), "{said}");
    assert!(said.ends_with(": whole, 3 records\n"), "{said}");
    let lines: Vec<&str> = text.lines().collect();
    let tampered = d.join("tampered.jsonl");
    std::fs::write(&tampered, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    let (status, said) = verify(&tampered);
    assert_eq!(status, Some(10), "{said}");
    assert!(
        said.contains("tampered: record 1 removed (line 2)"),
        "{said}"
    );
    std::fs::write(&tampered, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let (status, said) = verify(&tampered);
    assert_eq!(status, Some(11), "{said}");
    assert!(
        said.contains("incomplete after record 1 (line 2)"),
        "{said}"
    );

    // A leaked string is traced to the records that handed it out; another value to none.
    let mut matching = kvrun(d);
    matching.args(["audit", "match"]).arg(&audit);
    let out = run(matching, "cli-run-pa55\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", lines[1])
    );
    let mut matching = kvrun(d);
    matching.args(["audit", "match"]).arg(&audit);
    let out = run(matching, "cli-run-pa56\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no record in these files"));

    let mut ungranted = kvrun(d);
    ungranted.args(["run", env!("KVRUN_EXAMPLE_TRAIN_WASM")]);
    let out = run(ungranted, "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "the component's own status (exit-with-code)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not granted"), "{stderr}");
    assert!(
        stderr.contains("\"granted\":false"),
        "audit goes to stderr without --audit: {stderr}"
    );

    let mut looping = kvrun(d);
    looping.args([
        "run",
        env!("KVRUN_HOSTILE_TRAINING_WASM"),
        "--timeout",
        "1s",
        "--",
        "loop",
    ]);
    let out = run(looping, "");
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wall-clock limit of 1s"));
}

#[test]
fn compile_fills_the_cache_that_the_first_run_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let component = env!("KVRUN_EXAMPLE_TRAIN_WASM");
    let compiled = |cache: &Path| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("training-")
            })
            .collect();
        found.sort();
        found
    };
    let mut compile = kvrun(dir.path());
    compile
        .env("KVRUN_CACHE_DIR", cache.path())
        .args(["compile", component]);
    let first = ok(&run(compile, ""));
    assert!(first.contains(" compiled ("), "{first}");
    let artifacts = compiled(cache.path());
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let written = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();

    let mut again = kvrun(dir.path());
    again
        .env("KVRUN_CACHE_DIR", cache.path())
        .args(["compile", component]);
    assert!(ok(&run(again, "")).contains("was already compiled"));

    ok(&run(secret(dir.path(), &["set", "db-password"]), "pa55\n"));
    let mut train = kvrun(dir.path());
    train.env("KVRUN_CACHE_DIR", cache.path()).args([
        "run",
        component,
        "--secret",
        "db-password",
        "--dir",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data::/data:ro"),
    ]);
    let ran = run(train, "");
    assert!(ok(&ran).contains("fitted y = 2.5021"));
    assert_eq!(compiled(cache.path()), artifacts, "the run compiled again");
    assert_eq!(
        std::fs::metadata(&artifacts[0])
            .unwrap()
            .modified()
            .unwrap(),
        written,
        "the run rewrote the artifact"
    );

    let mut bad = kvrun(dir.path());
    bad.env("KVRUN_CACHE_DIR", cache.path())
        .args(["compile", "/nonexistent/job.wasm"]);
    let failed = run(bad, "");
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("/nonexistent/job.wasm does not exist")
    );
}

/// A loopback HTTPS stand-in for an MLflow tracking server's REST API (the real one runs in
/// the compatibility suite): basic auth with `trainer` and `password`, the five calls the
/// example job makes, and the metrics it logged.
async fn tracker(
    password: &'static str,
) -> (
    common::RawServer,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use base64::Engine as _;
    let metrics = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let logged = metrics.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("trainer:{password}"))
    );
    let server = common::RawServer::start(move |_, seen| {
        let reply = |status: &str, body: serde_json::Value| {
            common::http_reply(status, &[], &body.to_string())
        };
        if seen.header("authorization").as_deref() != Some(&expected[..]) {
            return reply(
                "401 Unauthorized",
                serde_json::json!({"error_code": "UNAUTHENTICATED"}),
            );
        }
        let line = seen.request_line();
        let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        if line.contains("/experiments/get-by-name") {
            reply(
                "404 Not Found",
                serde_json::json!({"error_code": "RESOURCE_DOES_NOT_EXIST"}),
            )
        } else if line.contains("/experiments/create") {
            reply("200 OK", serde_json::json!({"experiment_id": "7"}))
        } else if line.contains("/runs/create") && body["experiment_id"] == "7" {
            reply(
                "200 OK",
                serde_json::json!({"run": {"info": {"run_id": "run-1"}}}),
            )
        } else if line.contains("/runs/log-metric") {
            logged.lock().unwrap().push(format!(
                "{}={}",
                body["key"].as_str().unwrap_or("?"),
                body["value"]
            ));
            reply("200 OK", serde_json::json!({}))
        } else if line.contains("/runs/update") {
            reply("200 OK", serde_json::json!({}))
        } else {
            reply(
                "404 Not Found",
                serde_json::json!({"error_code": "ENDPOINT_NOT_FOUND"}),
            )
        }
    })
    .await;
    (server, metrics)
}

#[test]
fn the_example_says_in_words_why_its_tracker_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(secret(d, &["set", "db-password"]), "db-pa55\n"));
    ok(&run(
        secret(d, &["set", "mlflow-password"]),
        "tracker-pa55-word\n",
    ));
    let mut command = example_run(d);
    command.args([
        "--use-secret",
        "mlflow-password=http://127.0.0.1:9",
        "--env",
        "MLFLOW_TRACKING_URI=http://127.0.0.1:9",
        "--env",
        "MLFLOW_TRACKING_USERNAME=trainer",
    ]);
    let out = run(command, "");
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("train:")).collect();
    assert_eq!(
        said,
        ["train: could not report to MLflow: the connection was refused (is the server running?)"],
        "{stderr}"
    );
}

#[tokio::test]
async fn the_example_reports_metrics_with_a_password_it_never_holds() {
    let (server, metrics) = tracker("tracker-pa55-word").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let ca = d.join("tracker-ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let audit = d.join("audit.jsonl");
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        ok(&run(secret(&d, &["set", "db-password"]), "db-pa55\n"));
        ok(&run(
            secret(&d, &["set", "mlflow-password"]),
            "tracker-pa55-word\n",
        ));
        let mut command = example_run(&d);
        command
            .arg("--use-secret")
            .arg(format!("mlflow-password={url}/api/2.0/mlflow"));
        command
            .arg("--http-ca-cert")
            .arg(&ca)
            .arg("--audit")
            .arg(&audit);
        command.args(["--env", &format!("MLFLOW_TRACKING_URI={url}")]);
        command.args(["--env", "MLFLOW_TRACKING_USERNAME=trainer"]);
        run(command, "")
    })
    .await
    .unwrap();
    let stdout = ok(&out);
    assert!(
        stdout.contains("train: logged 3 metrics to MLflow run run-1"),
        "{stdout}"
    );
    let logged = metrics.lock().unwrap().clone();
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert!(logged[0].starts_with("slope="), "{logged:?}");
    let everything = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let records = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!everything.contains("tracker-pa55-word") && !records.contains("tracker-pa55-word"));
    let uses: Vec<serde_json::Value> = records
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["operation"] == "use-secret")
        .collect();
    assert_eq!(uses.len(), 7, "one record per request: {records}");
    assert!(uses
        .iter()
        .all(|r| r["outcome"] == "substituted" && r["path_prefix"] == "/api/2.0/mlflow"));
    assert_eq!(server.requests().len(), 7);
}

/// One whole stderr line and status 4, nothing done.
fn refused(command: Command, stdin: &str, line: &str) {
    let out = run(command, stdin);
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{line}\n"));
    assert_eq!(out.status.code(), Some(4), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn the_command_line_says_what_to_do_instead() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    refused(
        secret(d, &["set", "foo", "hunter2-canary"]),
        "",
        "kvrun: invalid argument: secret values never come from the command line, where `ps` and the shell history show them; give the value of foo with --value-from-env VAR, --value-file PATH, on standard input (`printf %s \"$VALUE\" | kvrun secret set foo`), or at the prompt",
    );
    assert!(
        !d.join("vault.db").exists(),
        "refused before any vault was opened"
    );
    // A mistyped option is named by the real one, never with what was typed after `=`; a
    // word that is no near miss (a value, however it starts) keeps the line above.
    for (typed, real) in [
        (&["--tags", "a=b"][..], "tag"),
        (&["--content-typ=text/plain"], "content-type"),
        (&["--valu-file", "v.txt"], "value-file"),
        (
            &["--tag=k=v", "--valu-from-env=HUNTER2-CANARY"],
            "value-from-env",
        ),
    ] {
        let out = run(secret(d, &[&["set", "foo"][..], typed].concat()), "x");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!("kvrun: invalid argument: `kvrun secret set` has no option by that name; did you mean --{real}? Nothing was set\n"),
            "{typed:?}"
        );
        assert_eq!(out.status.code(), Some(4));
        assert!(
            !stderr.contains("CANARY") && !stderr.contains("text/plain") && !stderr.contains("a=b")
        );
    }
    for word in ["--value", "--S3cret", "hunter2-canary"] {
        let out = run(secret(d, &["set", "foo", word]), "x");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(
                "kvrun: invalid argument: secret values never come from the command line"
            ),
            "{word}: {stderr}"
        );
        assert!(
            !stderr.contains("S3cret") && !stderr.contains("canary"),
            "{stderr}"
        );
    }
    assert!(!d.join("vault.db").exists(), "nothing was set");
    refused(
        kvrun_with(
            d,
            &["--vault", "https://127.0.0.1:1", "--auth", "token", "vault", "serve", "--addr", "127.0.0.1:0"],
        ),
        "",
        "kvrun: invalid argument: `kvrun vault serve` does not use --vault, --auth: the vault options are for the commands that talk to a vault; leave them out",
    );
    refused(
        kvrun_with(d, &["compile", "--data-dir", "/tmp", "x.wasm"]),
        "",
        "kvrun: invalid argument: `kvrun compile` does not use --data-dir: it talks to no vault, it only compiles into the cache; leave it out",
    );
    for missing in ["nothere.wasm", "nothere.py"] {
        let mut command = kvrun_with(d, &["run", missing]);
        command.current_dir(d);
        refused(
            command,
            "",
            &format!("kvrun: invalid argument: {missing} does not exist; give the path of a training component (.wasm, built for wasm32-wasip2 against the training world) or of a Python script (.py)"),
        );
    }
    // The vault options from the environment are for other commands: serve still starts.
    let mut serve = kvrun_with(d, &["vault", "serve", "--addr", "127.0.0.1:0"]);
    serve
        .env("KVRUN_VAULT_URL", "https://127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(serve.spawn().unwrap());
    let first = BufReader::new(server.0.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("kvrun local vault serving https://localhost:"),
        "{first}"
    );
}

#[test]
fn help_puts_global_options_under_their_own_heading_and_describes_positionals() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "-h"][..],
        &["secret", "get", "-h"],
        &["secret", "set", "-h"],
        &["vault", "serve", "-h"],
    ] {
        let help = ok(&run(kvrun_with(dir.path(), args), ""));
        let (own, global) = help
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("{args:?}: {help}"));
        for option in ["--vault", "--data-dir", "--token-file", "--output"] {
            assert!(
                !own.contains(option),
                "{args:?}: {option} among its own options: {own}"
            );
            assert!(global.contains(option), "{args:?}: {option}");
        }
    }
    let get = ok(&run(kvrun_with(dir.path(), &["secret", "get", "-h"]), ""));
    assert!(
        get.contains("<NAME>  The secret's name: 1-127 letters, digits and dashes"),
        "{get}"
    );
    let set = ok(&run(kvrun_with(dir.path(), &["secret", "set", "-h"]), ""));
    assert!(!set.contains("VALUE_ON_COMMAND_LINE"), "{set}");
}

/// An empty `KVRUN_CACHE_DIR` means unset: the cache goes to the platform directory, not
/// into the working directory (where a script's tree view would then hold kvrun's own files).
#[test]
fn an_empty_cache_variable_means_the_platform_cache() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut compile = kvrun(home.path());
    compile
        .current_dir(work.path())
        .env("KVRUN_CACHE_DIR", "")
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .args(["compile", env!("KVRUN_EXAMPLE_TRAIN_WASM")]);
    ok(&run(compile, ""));
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
    assert!(home.path().join("cache/kvrun").is_dir());
}

/// An empty variable behind an option means unset, for every option: `KVRUN_DATA_DIR=` is the
/// platform's data directory (clap refused it as an empty `--data-dir`), `KVRUN_AUTH=` the
/// automatic choice, `KVRUN_API_VERSION=` the default version.
#[test]
fn empty_option_variables_mean_unset() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let with_empty = |args: &[&str]| {
        let mut command = kvrun_with(home.path(), args);
        command
            .current_dir(work.path())
            .env("KVRUN_DATA_DIR", "")
            .env("KVRUN_AUTH", "")
            .env("KVRUN_API_VERSION", "")
            .env("XDG_DATA_HOME", &data);
        command
    };
    ok(&run(
        with_empty(&["secret", "set", "db-password"]),
        "hunter2\n",
    ));
    let got = ok(&run(with_empty(&["secret", "get", "db-password"]), ""));
    assert!(got.contains("hunter2"), "{got}");
    assert!(
        data.join("kvrun").is_dir(),
        "the vault is in the platform data directory"
    );
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
}
