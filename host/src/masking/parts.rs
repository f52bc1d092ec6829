//! The secret parts of a structured value, masked in a run's output as values of their own.
//!
//! A secret is often a structure: a JSON object of credentials, a connection string, a URL
//! with a password. Masking the whole value misses a script that prints it field by field
//! (`print(creds["password"])`), and masking every fragment would garble logs. So, for a value
//! a run may read, these parts are masked too:
//!
//! - in a JSON object (at any depth, in arrays too), the string members whose key names a
//!   credential ([`CREDENTIAL_KEYS`], letter case, `_` and `-` ignored);
//! - in `key=value` lists separated by `;` or `&` (connection strings, SAS tokens), the values
//!   of [`CONNECTION_KEYS`];
//! - the password of a URL's user information (`scheme://user:PASSWORD@host`);
//!
//! the last two in the whole value and in every string member of a JSON value. A part shorter
//! than [`MIN_LINE`] bytes is not masked (it would mask every occurrence of a few common
//! characters), as for the lines of a value. Only output is masked by parts: answers to a
//! run's requests are masked for whole values (`crate::handles`).

use crate::encoded_forms::MIN_LINE;
use crate::secret::SecretString;
use serde_json::Value;
use zeroize::Zeroize;

/// JSON keys that name a credential, normalised (lower case, no `_` or `-`).
pub const CREDENTIAL_KEYS: &[&str] = &[
    "password",
    "secret",
    "clientsecret",
    "privatekey",
    "token",
    "accesstoken",
    "refreshtoken",
    "apikey",
    "key",
    "accesskey",
    "secretaccesskey",
    "connectionstring",
    "sas",
];

/// Keys of a connection string or SAS token whose values are secret, in lower case.
pub const CONNECTION_KEYS: &[&str] = &[
    "password",
    "pwd",
    "accountkey",
    "sharedaccesskey",
    "sharedaccesssignature",
    "sig",
];

/// The secret parts of `value` (see the module docs), each once, never `value` itself.
pub fn secret_parts(value: &str) -> Vec<SecretString> {
    let mut parts = Vec::new();
    if let Ok(mut json @ Value::Object(_)) = serde_json::from_str::<Value>(value) {
        json_parts(&json, &mut parts);
        wipe(&mut json);
    }
    text_parts(value, &mut parts);
    let mut kept: Vec<SecretString> = Vec::new();
    for mut part in parts {
        if part.len() >= MIN_LINE && part != value && !kept.iter().any(|k| k.expose() == part) {
            kept.push(SecretString::new(part));
        } else {
            part.zeroize();
        }
    }
    kept
}

/// Zeroizes every string of a parsed JSON value before it is dropped.
fn wipe(json: &mut Value) {
    match json {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(members) => members.values_mut().for_each(wipe),
        _ => {}
    }
}

/// The credential members of a JSON value, and the parts of every string in it.
fn json_parts(json: &Value, parts: &mut Vec<String>) {
    match json {
        Value::Object(members) => {
            for (key, member) in members {
                if let Value::String(text) = member {
                    if CREDENTIAL_KEYS.contains(&normalised(key).as_str()) {
                        parts.push(text.clone());
                    }
                }
                json_parts(member, parts);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| json_parts(item, parts)),
        Value::String(text) => text_parts(text, parts),
        _ => {}
    }
}

/// The secret values of `key=value` lists and the passwords of URLs in `text`.
fn text_parts(text: &str, parts: &mut Vec<String>) {
    for pair in text.split([';', '&']) {
        if let Some((key, value)) = pair.split_once('=') {
            let key = key.trim().to_ascii_lowercase();
            // `SharedAccessSignature=sv=...&sig=...`: the key is the last word before `=`.
            let key = key.rsplit(['?', ' ']).next().unwrap_or_default();
            if CONNECTION_KEYS.contains(&key) {
                parts.push(value.trim().to_string());
            }
        }
    }
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let authority_end = after
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        if let Some((user_info, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = user_info.split_once(':') {
                parts.push(password.to_string());
            }
        }
        rest = after;
    }
}

/// A JSON key as [`CREDENTIAL_KEYS`] spells it.
fn normalised(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(value: &str) -> Vec<String> {
        secret_parts(value)
            .iter()
            .map(|p| p.expose().to_string())
            .collect()
    }

    #[test]
    fn json_credentials_at_any_depth_in_any_spelling() {
        let value = r#"{"host": "db.internal", "user": "trainer", "Password": "pa55-word-1",
            "nested": {"client_Secret": "cs-7f3a9", "items": [{"API-KEY": "ak-99ff"}]},
            "key": "k1", "note": "not a secret", "port": 5432}"#;
        assert_eq!(shown(value), ["pa55-word-1", "cs-7f3a9", "ak-99ff"]);
    }

    #[test]
    fn connection_strings_sas_tokens_and_url_passwords() {
        assert_eq!(
            shown("Server=db;Database=ml;User Id=trainer;Password=hunter2-x;"),
            ["hunter2-x"]
        );
        assert_eq!(
            shown("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJDREVGR0g=;EndpointSuffix=core.windows.net"),
            ["QUJDREVGR0g="]
        );
        assert_eq!(
            shown("https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=abc%2Bdef&se=2027"),
            ["abc%2Bdef"]
        );
        assert_eq!(
            shown("postgres://trainer:s3cr3t-pw@db.internal:5432/ml"),
            ["s3cr3t-pw"]
        );
        let json = r#"{"url": "redis://:r3d1s-pw@cache:6379/0", "dsn": "Pwd=abcd1234;Uid=x"}"#;
        assert_eq!(shown(json), ["r3d1s-pw", "abcd1234"]);
    }

    proptest::proptest! {
        #[test]
        fn any_credential_member_of_any_object_is_a_part(
            key in proptest::sample::select(CREDENTIAL_KEYS),
            upper in proptest::bool::ANY,
            dashed in proptest::bool::ANY,
            secret in "[A-Za-z0-9+/=._~-]{4,40}",
            depth in 0usize..4,
            noise in proptest::collection::vec(("[a-z]{1,8}", "[ -~]{0,20}"), 0..5),
        ) {
            let mut spelled: String = key.chars().enumerate()
                .flat_map(|(i, c)| (dashed && i == 1).then_some('_').into_iter().chain([c]))
                .collect();
            if upper {
                spelled = spelled.to_uppercase();
            }
            let mut json = serde_json::json!({ spelled.clone(): secret.clone() });
            for (name, text) in &noise {
                if CREDENTIAL_KEYS.contains(&normalised(name).as_str()) {
                    continue;
                }
                json[name.as_str()] = serde_json::json!(text);
            }
            for level in 0..depth {
                json = serde_json::json!({ format!("level{level}"): [json] });
            }
            let parts = shown(&json.to_string());
            proptest::prop_assert!(parts.contains(&secret), "{} -> {:?}", json, parts);
        }

        #[test]
        fn any_secret_key_of_a_connection_string_is_a_part(
            key in proptest::sample::select(CONNECTION_KEYS),
            secret in "[A-Za-z0-9+/=._~-]{4,40}",
            before in proptest::collection::vec(("[A-Za-z]{1,10}", "[A-Za-z0-9.]{0,12}"), 0..4),
            separator in proptest::sample::select(&[";", "&"][..]),
        ) {
            let mut text: Vec<String> = before.iter()
                .filter(|(k, _)| !CONNECTION_KEYS.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            text.push(format!("{key}={secret}"));
            let text = text.join(separator);
            proptest::prop_assert!(shown(&text).contains(&secret), "{}", text);
        }
    }

    #[test]
    fn short_parts_plain_values_and_non_objects_give_nothing() {
        assert!(secret_parts(r#"{"password": "abc"}"#).is_empty());
        assert!(secret_parts("just-a-long-random-token-value").is_empty());
        assert!(secret_parts(r#"["password", "x"]"#).is_empty());
        assert!(secret_parts("Password=").is_empty());
        assert!(secret_parts("https://example.com/path?q=1").is_empty());
    }
}
