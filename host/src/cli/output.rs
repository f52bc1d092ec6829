//! Printing answers: every command prints through [`report`], as JSON with `--output json`
//! or as lines of text.

use super::args::Output;
use kvrun::{DeletedSecret, SecretProperties};
use serde_json::{json, Map, Value};

/// Prints an answer: `json` with `--output json`, else `text`, one line per item (nothing
/// for an empty list).
pub(crate) fn report(output: Output, json: Value, text: Vec<String>) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("JSON values print")
        ),
        Output::Text => text.iter().for_each(|line| println!("{line}")),
    }
}

/// The text line of a secret version that was written: `set NAME (version V)` and the like.
pub(crate) fn version_line(verb: &str, p: &SecretProperties) -> String {
    format!(
        "{verb} {} (version {})",
        p.name,
        p.version.as_deref().unwrap_or("?")
    )
}

/// A list of secrets (names) or of one secret's versions (version, updated, state).
pub(crate) fn report_list(output: Output, items: &[SecretProperties], versions: bool) {
    let text = items
        .iter()
        .map(|p| match versions {
            true => format!(
                "{}\t{}\t{}",
                p.version.as_deref().unwrap_or("?"),
                p.updated.unwrap_or(0),
                if p.enabled { "enabled" } else { "disabled" }
            ),
            false => p.name.clone(),
        })
        .collect();
    report(
        output,
        Value::Array(items.iter().map(properties_json).collect()),
        text,
    );
}

/// A secret's properties as the service's JSON names them (never a value). A list item
/// describes the secret, not one version (as the service's SecretItem), so it has no
/// `version`.
pub(crate) fn properties_json(p: &SecretProperties) -> Value {
    let mut object = json!({
        "name": p.name,
        "version": p.version,
        "id": p.id,
        "contentType": p.content_type,
        "enabled": p.enabled,
        "notBefore": p.not_before,
        "expires": p.expires,
        "created": p.created,
        "updated": p.updated,
        "tags": p.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
    });
    if p.version.is_none() {
        object.as_object_mut().map(|o| o.remove("version"));
    }
    object
}

/// A deleted secret: its properties, recovery id and dates.
pub(crate) fn deleted_json(d: &DeletedSecret) -> Value {
    let mut object = properties_json(&d.properties);
    object["recoveryId"] = json!(d.recovery_id);
    object["deletedDate"] = json!(d.deleted_date);
    object["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    object
}
