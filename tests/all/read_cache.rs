//! A sandbox's shared read cache (off by default): concurrent runs reading the same secret
//! make one vault request; later runs are served from memory until the time-to-live passes;
//! grants are still checked and every access audited per run.

use crate::common;

use common::{run_in, run_options, Ran, TestVault, HOSTILE_TRAINING_WASM};
use kvrun::sandbox::{RunExit, Sandbox};
use std::time::Duration;

async fn concurrent(sandbox: &Sandbox, runs: usize, args: &[&str], grant: &[&str]) -> Vec<Ran> {
    let component = sandbox.prepare(HOSTILE_TRAINING_WASM).unwrap();
    futures::future::join_all(
        (0..runs).map(|_| run_in(sandbox, &component, run_options(args, grant))),
    )
    .await
}

fn outcomes(runs: &[Ran]) -> Vec<String> {
    let mut all: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.audit
                .iter()
                .map(|a| a["outcome"].as_str().unwrap().to_string())
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn concurrent_runs_make_one_request_and_grants_still_hold() {
    let vault =
        TestVault::with_secrets(&[("db-password", "cached-pa55"), ("other", "o-value")]).await;
    let sandbox = Sandbox::new(common::runtime(), vault.options())
        .unwrap()
        .with_read_cache(Duration::from_secs(60));
    let runs = concurrent(&sandbox, 20, &["ask", "db-password"], &["db-password"]).await;
    assert!(runs
        .iter()
        .all(|r| r.exit == RunExit::Code(0) && r.stdout == "db-password: ok\n"));
    assert_eq!(
        sandbox.vault_requests(),
        1,
        "20 concurrent reads, one request"
    );
    let seen = outcomes(&runs);
    assert_eq!(seen.iter().filter(|o| *o == "ok").count(), 1, "{seen:?}");
    assert_eq!(
        seen.iter().filter(|o| *o == "ok (cached)").count(),
        19,
        "{seen:?}"
    );

    let printed = concurrent(
        &sandbox,
        1,
        &["print", "db-password", "whole"],
        &["db-password"],
    )
    .await;
    assert_eq!(
        printed[0].stdout, "value=***\n",
        "a cached value is masked too"
    );
    let refused = concurrent(&sandbox, 1, &["ask", "db-password"], &[]).await;
    assert!(
        refused[0].stdout.contains("was not granted"),
        "{}",
        refused[0].stdout
    );
    assert_eq!(refused[0].audit[0]["outcome"], "denied: not granted");

    let batch = concurrent(
        &sandbox,
        1,
        &["ask-many", "db-password", "other"],
        &["db-password", "other"],
    )
    .await;
    assert_eq!(batch[0].stdout, "ok 2\n");
    assert_eq!(outcomes(&batch), ["ok", "ok (cached)"]);
    assert_eq!(
        sandbox.vault_requests(),
        2,
        "the batch fetched only the name not cached"
    );
    let again = concurrent(&sandbox, 1, &["ask", "other"], &["other"]).await;
    assert_eq!(
        outcomes(&again),
        ["ok (cached)"],
        "a batch's values are cached too"
    );
    assert_eq!(sandbox.vault_requests(), 2);
}

#[tokio::test]
async fn values_expire_and_the_cache_is_off_by_default() {
    let vault = TestVault::with_secrets(&[("db-password", "ttl-pa55")]).await;
    let cached = Sandbox::new(common::runtime(), vault.options())
        .unwrap()
        .with_read_cache(Duration::from_millis(300));
    concurrent(&cached, 1, &["ask", "db-password"], &["db-password"]).await;
    concurrent(&cached, 1, &["ask", "db-password"], &["db-password"]).await;
    assert_eq!(cached.vault_requests(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let late = concurrent(&cached, 1, &["ask", "db-password"], &["db-password"]).await;
    assert_eq!(outcomes(&late), ["ok"], "expired: fetched again");
    assert_eq!(cached.vault_requests(), 2);

    let plain = Sandbox::new(common::runtime(), vault.options()).unwrap();
    let runs = concurrent(&plain, 5, &["ask", "db-password"], &["db-password"]).await;
    assert_eq!(outcomes(&runs), vec!["ok"; 5]);
    assert_eq!(plain.vault_requests(), 5);
}
