//! Argument checks that run before any request is built.
//!
//! A name that passed [`check_name`] contains only `[0-9A-Za-z-]`, so it can be put into a
//! URL path as it is: no `/`, `?`, `%` or `.` can reach the vault.

use crate::bindings::kvrun::secrets::types::{Error, SetOptions};

/// Largest value Key Vault accepts, in bytes.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Most tags per secret.
pub const MAX_TAGS: usize = 15;
/// Longest tag name or tag value.
pub const MAX_TAG_CHARS: usize = 256;
/// Longest content type.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;
/// Longest name.
pub const MAX_NAME_CHARS: usize = 127;

/// Checks a secret name against `^[0-9A-Za-z-]{1,127}$`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(MAX_NAME_CHARS + 3).collect();
        Err(Error::InvalidName(format!(
            "invalid secret name {shown:?}: use 1 to 127 characters from A-Z, a-z, 0-9 and '-'"
        )))
    }
}

/// Checks a version id: 1 to 64 ASCII letters or digits (the service uses 32 hex digits).
pub fn check_version(version: &str) -> Result<(), Error> {
    if !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        let shown: String = version.chars().take(67).collect();
        Err(Error::InvalidArgument(format!(
            "invalid secret version {shown:?}: a version is the 32 hex digits that the vault returned"
        )))
    }
}

/// Checks a value's size and the options of a set. Never puts the value in a message.
pub fn check_set(name: &str, value: &str, options: &SetOptions) -> Result<(), Error> {
    check_name(name)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "the value of secret {name:?} is {} bytes; Key Vault accepts at most {MAX_VALUE_BYTES} bytes (25 KiB)",
            value.len()
        )));
    }
    check_properties(name, options.content_type.as_deref(), &options.tags)
}

/// Checks a content type and tags.
pub fn check_properties(
    name: &str,
    content_type: Option<&str>,
    tags: &[(String, String)],
) -> Result<(), Error> {
    if let Some(content_type) = content_type {
        if content_type.chars().count() > MAX_CONTENT_TYPE_CHARS {
            return Err(Error::InvalidArgument(format!(
                "the content type of secret {name:?} is longer than {MAX_CONTENT_TYPE_CHARS} characters"
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidArgument(format!(
            "secret {name:?} has {} tags; Key Vault accepts at most {MAX_TAGS}",
            tags.len()
        )));
    }
    for (key, tag_value) in tags {
        if key.is_empty()
            || key.chars().count() > MAX_TAG_CHARS
            || tag_value.chars().count() > MAX_TAG_CHARS
        {
            return Err(Error::InvalidArgument(format!(
                "a tag of secret {name:?} has an empty name, or a name or value longer than {MAX_TAG_CHARS} characters"
            )));
        }
    }
    let mut keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::InvalidArgument(format!(
            "secret {name:?} has the same tag name twice"
        )));
    }
    Ok(())
}

/// Checks a backup blob: base64url text of a sane size (it goes into a JSON body).
pub fn check_backup(blob: &str) -> Result<(), Error> {
    let ok = !blob.is_empty()
        && blob.len() <= 4 * 1024 * 1024
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "the backup is not a backup blob (base64url text, as backup-secret returns it)".into(),
        ))
    }
}
