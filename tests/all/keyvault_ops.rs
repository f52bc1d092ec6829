//! Every keyvault operation, through the real component in the real host, against the real
//! local vault over TLS.

use crate::common;

use common::TestVault;
use kvrun::{Error, NewSecret, SecretString, SetOptions};

fn no_options() -> SetOptions {
    SetOptions {
        content_type: None,
        tags: Vec::new(),
    }
}

fn is_version(v: &Option<String>) -> bool {
    v.as_ref()
        .is_some_and(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn set_get_reset_versions_and_delete() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let options = SetOptions {
        content_type: Some("application/vnd.ms-password".into()),
        tags: vec![("env".into(), "dev".into()), ("team".into(), "ml".into())],
    };
    let first = client
        .set_secret("db-password", &"first-value".into(), &options)
        .await
        .unwrap();
    assert_eq!(first.name, "db-password");
    assert!(is_version(&first.version), "{:?}", first.version);
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/vnd.ms-password")
    );
    assert_eq!(first.tags.len(), 2);
    assert!(first.enabled);
    assert!(first
        .id
        .starts_with(&format!("{}/secrets/db-password/", t.vault.url())));

    let second = client
        .set_secret("db-password", &"second-value".into(), &no_options())
        .await
        .unwrap();
    assert!(is_version(&second.version));
    assert_ne!(
        first.version, second.version,
        "a re-set makes a new version"
    );

    let latest = client.get_secret("db-password", None).await.unwrap();
    assert_eq!(latest.value.expose(), "second-value");
    assert_eq!(latest.properties.version, second.version);
    let old = client
        .get_secret("db-password", first.version.as_deref())
        .await
        .unwrap();
    assert_eq!(old.value.expose(), "first-value");
    assert_eq!(
        old.properties.content_type.as_deref(),
        Some("application/vnd.ms-password")
    );

    let upper = client.get_secret("DB-PASSWORD", None).await.unwrap();
    assert_eq!(
        upper.value.expose(),
        "second-value",
        "names are case-insensitive"
    );

    let versions = client.list_secret_versions("db-password").await.unwrap();
    let mut got: Vec<_> = versions.iter().map(|p| p.version.clone()).collect();
    let mut want = vec![first.version.clone(), second.version.clone()];
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let listed = client.list_secrets().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "db-password");
    assert_eq!(
        listed[0].version, None,
        "list items describe the secret, not a version"
    );

    let deleted = client.delete_secret("db-password").await.unwrap();
    assert_eq!(deleted.properties.name, "db-password");
    assert!(matches!(
        client.get_secret("db-password", None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client.delete_secret("db-password").await,
        Err(Error::NotFound(_))
    ));
    assert!(client.list_secrets().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_version_is_not_found() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    client
        .set_secret("a", &"x".into(), &no_options())
        .await
        .unwrap();
    let missing = client
        .get_secret("a", Some("0123456789abcdef0123456789abcdef"))
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
}

#[tokio::test]
async fn empty_and_maximum_size_values_round_trip() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    client
        .set_secret("empty", &"".into(), &no_options())
        .await
        .unwrap();
    assert_eq!(
        client
            .get_secret("empty", None)
            .await
            .unwrap()
            .value
            .expose(),
        ""
    );
    let big = "é".repeat(25 * 1024 / 2);
    client
        .set_secret("big", &SecretString::new(big.clone()), &no_options())
        .await
        .unwrap();
    assert_eq!(
        client.get_secret("big", None).await.unwrap().value.expose(),
        big
    );
}

#[tokio::test]
async fn listing_follows_every_page() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let secrets: Vec<NewSecret> = (0..60)
        .map(|i| NewSecret {
            name: format!("s{i:03}"),
            value: format!("v{i}").into(),
            options: no_options(),
        })
        .collect();
    for outcome in client.set_secrets(&secrets).await.unwrap() {
        outcome.unwrap();
    }
    let before = client.network_stats().sent();
    let listed = client.list_secrets().await.unwrap();
    let pages = client.network_stats().sent() - before;
    let mut names: Vec<_> = listed.into_iter().map(|p| p.name).collect();
    names.sort();
    let want: Vec<_> = (0..60).map(|i| format!("s{i:03}")).collect();
    assert_eq!(names, want);
    assert_eq!(pages, 3, "60 secrets at 25 per page are 3 pages");
}

#[tokio::test]
async fn batch_get_maps_a_missing_name_to_none() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    client
        .set_secret("one", &"1".into(), &no_options())
        .await
        .unwrap();
    client
        .set_secret("two", &"2".into(), &no_options())
        .await
        .unwrap();
    let names: Vec<String> = ["one", "missing", "two"].map(String::from).to_vec();
    let values = client.get_secrets(&names).await.unwrap();
    let values: Vec<Option<&str>> = values
        .iter()
        .map(|v| v.as_ref().map(|v| v.expose()))
        .collect();
    assert_eq!(values, [Some("1"), None, Some("2")]);
    let run_values = client.run_get_secrets(&names).await.unwrap();
    assert_eq!(run_values[1], None);
    assert_eq!(run_values[2].as_ref().unwrap().expose(), "2");
    assert_eq!(client.run_get_secret("one").await.unwrap().expose(), "1");
    assert!(matches!(
        client.run_get_secret("missing").await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn batch_set_reports_every_outcome_in_order() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let entry = |name: &str| NewSecret {
        name: name.into(),
        value: "v".into(),
        options: no_options(),
    };
    let outcomes = client
        .set_secrets(&[entry("good-1"), entry("bad/name"), entry("good-2")])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok());
    assert!(matches!(outcomes[1], Err(Error::InvalidName(_))));
    assert!(outcomes[2].is_ok());
    assert_eq!(client.list_secrets().await.unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_names_are_refused_before_any_request() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let long = "x".repeat(128);
    for name in [
        "",
        "a/b",
        "a?b",
        "%2F",
        "..",
        "a.b",
        "a b",
        "ü",
        "a%2Fb",
        "../secrets",
        long.as_str(),
    ] {
        let get = client.get_secret(name, None).await;
        assert!(
            matches!(get, Err(Error::InvalidName(_))),
            "get {name:?}: {get:?}"
        );
        let set = client.set_secret(name, &"v".into(), &no_options()).await;
        assert!(
            matches!(set, Err(Error::InvalidName(_))),
            "set {name:?}: {set:?}"
        );
        let delete = client.delete_secret(name).await;
        assert!(
            matches!(delete, Err(Error::InvalidName(_))),
            "delete {name:?}: {delete:?}"
        );
        let many = client.get_secrets(&["ok".into(), name.to_string()]).await;
        assert!(
            matches!(many, Err(Error::InvalidName(_))),
            "get-many {name:?}: {many:?}"
        );
        let versions = client.list_secret_versions(name).await;
        assert!(
            matches!(versions, Err(Error::InvalidName(_))),
            "versions {name:?}"
        );
    }
    for version in ["../x", "a/b", "", "zz?x=1"] {
        let get = client.get_secret("ok", Some(version)).await;
        assert!(
            matches!(get, Err(Error::InvalidArgument(_))),
            "version {version:?}: {get:?}"
        );
    }
    let stats = client.network_stats();
    assert_eq!(
        (stats.sent(), stats.denied()),
        (0, 0),
        "no request left the component"
    );
}

#[tokio::test]
async fn limits_are_checked_before_any_request_and_never_echo_the_value() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let value = SecretString::new(format!("TOO-BIG-{}", "z".repeat(25 * 1024)));
    let err = client
        .set_secret("big", &value, &no_options())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(!err.to_string().contains("TOO-BIG"));
    let tags = (0..16)
        .map(|i| (format!("t{i}"), "v".to_string()))
        .collect();
    let err = client
        .set_secret(
            "tags",
            &"v".into(),
            &SetOptions {
                content_type: None,
                tags,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let content_type = Some("c".repeat(256));
    let err = client
        .set_secret(
            "ct",
            &"v".into(),
            &SetOptions {
                content_type,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(client.network_stats().sent(), 0);
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_unauthenticated() {
    let t = TestVault::start().await;
    let mut options = t.options();
    options.credential = Some(kvrun::auth::Credential::bearer(&"not-the-token".into()).unwrap());
    let mut client = kvrun::Client::new(common::runtime(), options)
        .await
        .unwrap();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");

    let mut options = t.options();
    options.credential = None;
    let mut client = kvrun::Client::new(common::runtime(), options)
        .await
        .unwrap();
    let err = client.list_secrets().await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
}

#[tokio::test]
async fn a_vault_with_an_untrusted_certificate_is_refused() {
    let t = TestVault::start().await;
    let other = TestVault::start().await;
    let mut options = t.options();
    options.transport.ca_pem = Some(other.vault.ca_pem().to_vec());
    let mut client = kvrun::Client::new(common::runtime(), options)
        .await
        .unwrap();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "tls-untrusted", "{err:?}");
    assert!(
        err.to_string().contains("certificate is not trusted"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_vault_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let t = TestVault::start().await;
    let mut options = t.options();
    options.vault_url = format!("https://127.0.0.1:{port}");
    let mut client = kvrun::Client::new(common::runtime(), options)
        .await
        .unwrap();
    let err = client.get_secret("x", None).await.unwrap_err();
    assert_eq!(err.kind(), "connection-refused", "{err:?}");
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn update_soft_delete_recover_purge_backup_restore_through_the_component() {
    let t = TestVault::start().await;
    let mut client = t.client().await;
    let set = client
        .set_secret("life", &"cycle-value".into(), &no_options())
        .await
        .unwrap();

    let update = kvrun::PropertyUpdate {
        enabled: Some(false),
        content_type: Some("text/plain".into()),
        tags: Some(vec![("k".into(), "v".into())]),
        not_before: None,
        expires: Some(32503680000),
    };
    let updated = client
        .update_secret_properties("life", None, &update)
        .await
        .unwrap();
    assert!(!updated.enabled);
    assert_eq!(updated.expires, Some(32503680000));
    assert_eq!(updated.version, set.version);
    let disabled = client.get_secret("life", None).await.unwrap_err();
    assert!(
        matches!(disabled, Error::Denied(ref m) if m.contains("SecretDisabled")),
        "{disabled:?}"
    );
    let enable = kvrun::PropertyUpdate {
        enabled: Some(true),
        content_type: None,
        tags: None,
        not_before: None,
        expires: None,
    };
    client
        .update_secret_properties("life", set.version.as_deref(), &enable)
        .await
        .unwrap();
    assert_eq!(
        client
            .get_secret("life", None)
            .await
            .unwrap()
            .value
            .expose(),
        "cycle-value"
    );

    let deleted = client.delete_secret("life").await.unwrap();
    assert!(deleted
        .recovery_id
        .as_deref()
        .unwrap()
        .ends_with("/deletedsecrets/life"));
    assert!(deleted.scheduled_purge_date > deleted.deleted_date);
    assert_eq!(
        client
            .get_deleted_secret("life")
            .await
            .unwrap()
            .properties
            .name,
        "life"
    );
    assert_eq!(client.list_deleted_secrets().await.unwrap().len(), 1);
    let reuse = client
        .set_secret("life", &"x".into(), &no_options())
        .await
        .unwrap_err();
    assert!(
        matches!(reuse, Error::Conflict(ref m) if m.contains("ObjectIsDeletedButRecoverable")),
        "{reuse:?}"
    );
    client.recover_deleted_secret("life").await.unwrap();
    assert_eq!(
        client
            .get_secret("life", None)
            .await
            .unwrap()
            .value
            .expose(),
        "cycle-value"
    );

    let blob = client.backup_secret("life").await.unwrap();
    assert!(!blob.contains("cycle-value"));
    assert!(matches!(
        client.restore_secret(&blob).await,
        Err(Error::Conflict(_))
    ));
    client.delete_secret("life").await.unwrap();
    client.purge_deleted_secret("life").await.unwrap();
    assert!(matches!(
        client.get_deleted_secret("life").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        client.purge_deleted_secret("life").await,
        Err(Error::NotFound(_))
    ));
    let restored = client.restore_secret(&blob).await.unwrap();
    assert_eq!(restored.name, "life");
    assert_eq!(
        client
            .get_secret("life", None)
            .await
            .unwrap()
            .value
            .expose(),
        "cycle-value"
    );
    let err = client.restore_secret("not a blob!").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}
