//! Invariant 3: a run reads exactly its granted secrets. A name that was not granted is
//! refused on the host without any request; the run's vault client may only GET granted
//! names, whatever its code does.

use crate::common;

use common::{
    bundle_json, http_reply, run_in, run_options, run_training, RawServer, TestVault,
    HOSTILE_TRAINING_WASM,
};
use kvrun::sandbox::{RunExit, Sandbox};
use kvrun::{Client, SetOptions};

#[tokio::test]
async fn ungranted_names_are_refused_without_a_request() {
    let server = RawServer::start(|_, request| {
        let authority = request.header("host").unwrap();
        http_reply(
            "200 OK",
            &[],
            &bundle_json(&authority, "db-password", "pw-value-1"),
        )
    })
    .await;
    let names = [
        "ask",
        "db-password",
        "other",
        "DB-PASSWORD",
        "a/b",
        "db-password/../other",
        "?x=1",
        "%2F",
        "..",
        "",
    ];
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        server.options("token"),
        run_options(&names, &["db-password"]),
    )
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "db-password: ok");
    assert_eq!(lines[2], "DB-PASSWORD: ok", "names are case-insensitive");
    for line in [lines[1]].iter().chain(&lines[3..]) {
        assert!(line.contains("was not granted to this run"), "{line}");
    }
    let seen: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.request_line().to_string())
        .collect();
    assert_eq!(
        seen.len(),
        2,
        "only the granted reads reached the vault: {seen:?}"
    );
    for line in &seen {
        assert!(
            line.starts_with("GET /secrets/db-password?api-version=")
                || line.starts_with("GET /secrets/DB-PASSWORD?api-version="),
            "{line}"
        );
    }
    let denied = ran.audit.iter().filter(|r| r["granted"] == false).count();
    assert_eq!(denied, names.len() - 3);
}

#[tokio::test]
async fn a_batch_with_an_ungranted_name_sends_nothing() {
    let server = RawServer::start(|_, _| http_reply("500 Internal Server Error", &[], "")).await;
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        server.options("token"),
        run_options(&["ask-many", "db-password", "other"], &["db-password"]),
    )
    .await;
    assert!(ran.stdout.contains("was not granted"), "{}", ran.stdout);
    assert!(server.requests().is_empty());
    assert_eq!(ran.audit.len(), 2);
}

#[tokio::test]
async fn granted_batch_reads_work_and_missing_names_are_none() {
    let t = TestVault::with_secrets(&[("a", "value-of-a"), ("b", "value-of-b")]).await;
    let ran = run_training(
        HOSTILE_TRAINING_WASM,
        t.options(),
        run_options(&["ask-many", "a", "b", "c"], &["a", "b", "c"]),
    )
    .await;
    assert_eq!(ran.stdout.trim(), "ok 2");
    let outcomes: Vec<&str> = ran
        .audit
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "not-found"]);
}

#[tokio::test]
async fn the_runs_vault_client_can_only_get_granted_names() {
    let t = TestVault::with_secrets(&[("db-password", "pw"), ("other", "x")]).await;
    let mut options = t.options();
    options.grant = Some(kvrun::policy::SecretGrant::new(["db-password"]).unwrap());
    let mut client = Client::new(common::hostile_runtime(), options)
        .await
        .unwrap();
    let base = t.vault.url();
    for (path, allowed) in [
        ("/secrets/db-password?api-version=7.5", true),
        ("/secrets/db-password/?api-version=7.5", true),
        ("/secrets?api-version=7.5", false),
        ("/secrets/other?api-version=7.5", false),
        ("/secrets/db-password/versions?api-version=7.5", false),
        ("/secrets/db-password/../other?api-version=7.5", false),
        ("/secrets/db-password%2F..%2Fother?api-version=7.5", false),
        ("/deletedsecrets/db-password?api-version=7.5", false),
    ] {
        let probe = client
            .get_secret(&format!("fetch {base}{path}"), None)
            .await
            .unwrap();
        let answer = probe.value.expose().to_string();
        if allowed {
            assert!(answer.starts_with("status 200"), "{path}: {answer}");
        } else {
            assert_eq!(
                answer, "error the kvrun host refused the request (this run may not send it there)",
                "{path}"
            );
        }
    }
    assert_eq!(client.network_stats().sent(), 2);
    assert_eq!(client.network_stats().denied(), 6);
}

#[tokio::test]
async fn the_real_client_under_a_grant_cannot_list_write_or_delete() {
    let t = TestVault::with_secrets(&[("db-password", "pw")]).await;
    let mut options = t.options();
    options.grant = Some(kvrun::policy::SecretGrant::new(["db-password"]).unwrap());
    let mut client = Client::new(common::runtime(), options).await.unwrap();
    assert_eq!(
        client.run_get_secret("db-password").await.unwrap().expose(),
        "pw"
    );
    assert!(matches!(
        client.list_secrets().await,
        Err(kvrun::Error::PolicyDenied(_))
    ));
    let set = client
        .set_secret(
            "db-password",
            &"new".into(),
            &SetOptions {
                content_type: None,
                tags: Vec::new(),
            },
        )
        .await;
    assert!(matches!(set, Err(kvrun::Error::PolicyDenied(_))));
    assert!(matches!(
        client.delete_secret("db-password").await,
        Err(kvrun::Error::PolicyDenied(_))
    ));
    assert!(matches!(
        client.get_secret("other", None).await,
        Err(kvrun::Error::PolicyDenied(_))
    ));
    let mut owner = t.client().await;
    assert_eq!(
        owner
            .get_secret("db-password", None)
            .await
            .unwrap()
            .value
            .expose(),
        "pw",
        "nothing changed"
    );
}

#[tokio::test]
async fn runs_of_one_sandbox_keep_their_own_grants_and_masks() {
    let t =
        TestVault::with_secrets(&[("alpha", "alpha-value-41"), ("beta", "beta-value-42")]).await;
    // As a runner would: one sandbox and one prepared component, shared by spawned tasks.
    let sandbox = std::sync::Arc::new(Sandbox::new(common::runtime(), t.options()).unwrap());
    let component = std::sync::Arc::new(sandbox.prepare(HOSTILE_TRAINING_WASM).unwrap());
    let spawn_run = |grant: &'static str| {
        let (sandbox, component) = (sandbox.clone(), component.clone());
        tokio::spawn(async move {
            run_in(
                &sandbox,
                &component,
                run_options(&["ask", "alpha", "beta"], &[grant]),
            )
            .await
        })
    };
    let (a, b) = (spawn_run("alpha"), spawn_run("beta"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for (ran, mine, other) in [(&a, "alpha", "beta"), (&b, "beta", "alpha")] {
        assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.stderr);
        let lines: Vec<&str> = ran.stdout.lines().collect();
        let (alpha, beta) = (lines[0], lines[1]);
        let (granted, refused) = if mine == "alpha" {
            (alpha, beta)
        } else {
            (beta, alpha)
        };
        assert_eq!(granted, format!("{mine}: ok"));
        assert!(
            refused.starts_with(&format!("{other}: ")) && refused.contains("was not granted"),
            "a concurrent run's grant does not carry over: {refused}"
        );
    }

    let first = run_in(
        &sandbox,
        &component,
        run_options(&["print", "alpha", "whole"], &["alpha"]),
    )
    .await;
    assert_eq!(first.stdout, "value=***\n");
    let second = run_in(
        &sandbox,
        &component,
        run_options(&["print", "beta", "whole"], &["beta"]),
    )
    .await;
    assert_eq!(second.stdout, "value=***\n", "each run masks what it read");
    let names: Vec<&str> = second
        .audit
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta"], "each run audits only its own accesses");
}
