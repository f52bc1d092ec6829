//! The Key Vault JSON shapes, as the service sends them (recorded traffic of the official
//! SDKs' test suites):
//!
//! - SecretBundle (`PUT`, `GET`): `{"value", "contentType"?, "id":
//!   "https://VAULT/secrets/NAME/VERSION", "managed"?, "attributes": {"enabled", "nbf"?, "exp"?,
//!   "created", "updated", "recoveryLevel", "recoverableDays"?}, "tags"?, "kid"?}`; absent
//!   optionals are omitted, never `null`. PATCH, recover and restore answer the same without
//!   `value`.
//! - DeletedSecretBundle: `recoveryId`, `deletedDate`, `scheduledPurgeDate` first, then the
//!   bundle's fields, without `value`.
//! - SecretItem (listings): `contentType`?, `id` (with a version only in `/versions`),
//!   `managed`?, `attributes`, `tags`?; never `value`. A page is `{"value": [...], "nextLink":
//!   URL or null}`; pages may be short or empty while more follow.
//! - Errors: `{"error": {"code", "message", "innererror"?: {"code"}}}`.
//!
//! Fields this client does not use (`managed`, `kid`, `recoveryLevel`, …) are ignored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `PUT /secrets/{name}` body.
#[derive(Serialize)]
pub struct SetBody<'a> {
    pub value: &'a str,
    #[serde(rename = "contentType", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<&'a str, &'a str>,
}

/// Attributes of a secret version.
#[derive(Deserialize, Default)]
pub struct Attributes {
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
}

/// SecretBundle, SecretItem and DeletedSecretBundle share these fields.
#[derive(Deserialize)]
pub struct Bundle {
    pub value: Option<String>,
    pub id: String,
    #[serde(rename = "contentType")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "recoveryId")]
    pub recovery_id: Option<String>,
    #[serde(rename = "deletedDate")]
    pub deleted_date: Option<i64>,
    #[serde(rename = "scheduledPurgeDate")]
    pub scheduled_purge_date: Option<i64>,
}

/// One page of a listing.
#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    pub value: Vec<Bundle>,
    #[serde(rename = "nextLink")]
    pub next_link: Option<String>,
}

/// The error envelope `{"error":{"code","message","innererror"}}`.
#[derive(Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// The body of the error envelope.
#[derive(Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub innererror: Option<Box<ErrorBody>>,
}

impl ErrorBody {
    /// The most specific code: the innermost `innererror.code`, else `code`.
    pub fn specific_code(&self) -> &str {
        match &self.innererror {
            Some(inner) if !inner.specific_code().is_empty() => inner.specific_code(),
            _ => &self.code,
        }
    }
}

/// `PATCH /secrets/{name}[/{version}]` body.
#[derive(Serialize)]
pub struct UpdateBody<'a> {
    #[serde(rename = "contentType", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<UpdateAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<&'a str, &'a str>>,
}

/// The attributes part of an update.
#[derive(Serialize)]
pub struct UpdateAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// `{"value": "<blob>"}`: a backup answer, and a restore body.
#[derive(Serialize, Deserialize)]
pub struct Blob {
    pub value: String,
}
