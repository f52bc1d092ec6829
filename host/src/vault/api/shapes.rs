//! The JSON shapes the service answers with (SecretBundle, SecretItem, DeletedSecretBundle,
//! DeletedSecretItem, pages), field for field and in the service's order, as recorded on the
//! wire (see the tests). Only a SecretBundle for set and get carries a value.

use super::super::storage::{Deletion, StoredVersion, RECOVERABLE_DAYS};
use super::Context;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// A DeletedSecretBundle (`full`: the id has the version) or DeletedSecretItem; no value.
pub(super) fn deleted_json(
    context: &Context,
    latest: &StoredVersion,
    deletion: &Deletion,
    full: bool,
) -> Value {
    let mut map = Map::new();
    map.insert(
        "recoveryId".into(),
        json!(format!(
            "https://{}/deletedsecrets/{}",
            context.authority, latest.data.name
        )),
    );
    map.insert("deletedDate".into(), json!(deletion.deleted_date));
    map.insert("scheduledPurgeDate".into(), json!(deletion.scheduled_purge));
    if let Value::Object(rest) = secret_json(context, latest, false, full) {
        map.extend(rest);
    }
    Value::Object(map)
}

/// A page of a listing: `{"value": […], "nextLink": …}`, `nextLink` absolute and present
/// (`null`) on the last page, carrying the position in `$skiptoken` and `maxresults`.
pub(super) fn page(
    context: &Context,
    path: &str,
    values: Vec<Value>,
    last: Option<String>,
) -> Value {
    let next_link = last.map(|last| {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last);
        let mut link = format!(
            "https://{}{path}?api-version={}&$skiptoken={token}",
            context.authority, context.api_version
        );
        if let Some(max) = context.query.get("maxresults") {
            link.push_str(&format!("&maxresults={max}"));
        }
        link
    });
    json!({ "value": values, "nextLink": next_link })
}

/// A secret's id: `https://{authority}/secrets/{name}[/{version}]`.
pub(super) fn secret_id(context: &Context, version: &StoredVersion, with_version: bool) -> String {
    if with_version {
        format!(
            "https://{}/secrets/{}/{}",
            context.authority, version.data.name, version.version
        )
    } else {
        format!(
            "https://{}/secrets/{}",
            context.authority, version.data.name
        )
    }
}

/// The attributes object, in the service's field order.
pub(super) fn attributes(version: &StoredVersion) -> Value {
    let mut map = Map::new();
    map.insert("enabled".into(), json!(version.data.enabled));
    if let Some(nbf) = version.data.nbf {
        map.insert("nbf".into(), json!(nbf));
    }
    if let Some(exp) = version.data.exp {
        map.insert("exp".into(), json!(exp));
    }
    map.insert("created".into(), json!(version.created));
    map.insert("updated".into(), json!(version.updated));
    map.insert("recoveryLevel".into(), json!("Recoverable+Purgeable"));
    map.insert("recoverableDays".into(), json!(RECOVERABLE_DAYS));
    Value::Object(map)
}

/// A SecretBundle (with the value for set and get, without it for delete).
pub(super) fn bundle(context: &Context, version: &StoredVersion, with_value: bool) -> Value {
    secret_json(context, version, with_value, true)
}

/// A SecretItem: no value; the id has a version only in version listings.
pub(super) fn item(context: &Context, version: &StoredVersion, with_version: bool) -> Value {
    secret_json(context, version, false, with_version)
}

/// The service's field order: value, contentType, id, attributes, tags.
pub(super) fn secret_json(
    context: &Context,
    version: &StoredVersion,
    with_value: bool,
    versioned_id: bool,
) -> Value {
    let mut map = Map::new();
    if with_value {
        map.insert("value".into(), json!(version.data.value.expose()));
    }
    if let Some(ct) = &version.data.content_type {
        map.insert("contentType".into(), json!(ct));
    }
    map.insert(
        "id".into(),
        json!(secret_id(context, version, versioned_id)),
    );
    map.insert("attributes".into(), attributes(version));
    if !version.data.tags.is_empty() {
        map.insert("tags".into(), json!(version.data.tags));
    }
    Value::Object(map)
}

/// The shapes against the wire facts: exact key order, optionals omitted (never `null`), no
/// value but in a SecretBundle for set and get, ids with or without the version, deleted
/// shapes first, `nextLink` present as `null` on the last page.
#[cfg(test)]
mod tests {
    use super::super::super::storage::NewVersion;
    use super::*;
    use crate::secret::SecretString;

    fn context(query: &[(&str, &str)]) -> Context {
        Context {
            authority: "127.0.0.1:8443".into(),
            api_version: "7.5".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn version(full: bool) -> StoredVersion {
        StoredVersion {
            version: "0123456789abcdef0123456789abcdef".into(),
            created: 1648054293,
            updated: 1648054293,
            data: NewVersion {
                name: "Db-Password".into(),
                value: SecretString::new("hunter2".into()),
                content_type: full.then(|| "password".to_string()),
                tags: if full {
                    [("tag1".to_string(), "value1".to_string())].into()
                } else {
                    Default::default()
                },
                enabled: true,
                nbf: full.then_some(1564536012),
                exp: full.then_some(1567128012),
            },
        }
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn a_secret_bundle_has_the_services_keys_in_order() {
        let with_value = bundle(&context(&[]), &version(true), true);
        assert_eq!(
            keys(&with_value),
            ["value", "contentType", "id", "attributes", "tags"]
        );
        assert_eq!(
            with_value["id"],
            "https://127.0.0.1:8443/secrets/Db-Password/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            keys(&with_value["attributes"]),
            [
                "enabled",
                "nbf",
                "exp",
                "created",
                "updated",
                "recoveryLevel",
                "recoverableDays"
            ]
        );
        assert_eq!(
            with_value["attributes"]["recoveryLevel"],
            "Recoverable+Purgeable"
        );
        assert_eq!(
            with_value["attributes"]["recoverableDays"],
            RECOVERABLE_DAYS
        );
        let minimal = bundle(&context(&[]), &version(false), false);
        assert_eq!(
            keys(&minimal),
            ["id", "attributes"],
            "optionals are omitted, no value"
        );
        assert_eq!(
            keys(&minimal["attributes"]),
            [
                "enabled",
                "created",
                "updated",
                "recoveryLevel",
                "recoverableDays"
            ]
        );
    }

    #[test]
    fn items_never_carry_a_value_and_version_only_in_version_listings() {
        let listed = item(&context(&[]), &version(true), false);
        assert_eq!(keys(&listed), ["contentType", "id", "attributes", "tags"]);
        assert_eq!(listed["id"], "https://127.0.0.1:8443/secrets/Db-Password");
        let versioned = item(&context(&[]), &version(true), true);
        assert!(versioned["id"]
            .as_str()
            .unwrap()
            .ends_with("/Db-Password/0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn deleted_shapes_put_recovery_first_and_purge_after_recoverable_days() {
        let deleted = Deletion {
            deleted_date: 1648054293,
            scheduled_purge: 1648054293 + RECOVERABLE_DAYS * 86400,
        };
        let full = deleted_json(&context(&[]), &version(true), &deleted, true);
        assert_eq!(
            keys(&full),
            [
                "recoveryId",
                "deletedDate",
                "scheduledPurgeDate",
                "contentType",
                "id",
                "attributes",
                "tags"
            ]
        );
        assert_eq!(
            full["recoveryId"],
            "https://127.0.0.1:8443/deletedsecrets/Db-Password"
        );
        assert_eq!(
            full["scheduledPurgeDate"].as_i64().unwrap() - full["deletedDate"].as_i64().unwrap(),
            RECOVERABLE_DAYS * 86400
        );
        let listed = deleted_json(&context(&[]), &version(false), &deleted, false);
        assert_eq!(
            keys(&listed),
            [
                "recoveryId",
                "deletedDate",
                "scheduledPurgeDate",
                "id",
                "attributes"
            ]
        );
        assert_eq!(listed["id"], "https://127.0.0.1:8443/secrets/Db-Password");
    }

    #[test]
    fn pages_link_absolutely_and_say_null_at_the_end() {
        let last = page(&context(&[]), "/secrets", vec![], None);
        assert_eq!(keys(&last), ["value", "nextLink"]);
        assert!(last["nextLink"].is_null(), "present, as null");
        let more = page(
            &context(&[("maxresults", "2")]),
            "/secrets",
            vec![json!({})],
            Some("DB-PASSWORD".into()),
        );
        let link = more["nextLink"].as_str().unwrap();
        let (base, token) = link.split_once("&$skiptoken=").unwrap();
        assert_eq!(base, "https://127.0.0.1:8443/secrets?api-version=7.5");
        let (token, max) = token.split_once('&').unwrap();
        assert_eq!(
            max, "maxresults=2",
            "maxresults only when the request had it"
        );
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        assert_eq!(decoded, b"DB-PASSWORD");
    }
}
