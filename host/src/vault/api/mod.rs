//! The Key Vault secrets data plane, as the local vault serves it.
//!
//! Routes (every one needs `?api-version=` and `Authorization: Bearer <DATA_DIR/token>`):
//!
//! | method | path | answer |
//! |---|---|---|
//! | `PUT` | `/secrets/{name}` | 200 SecretBundle with value (a new version); 409 `ObjectIsDeletedButRecoverable` for a deleted name |
//! | `GET` | `/secrets/{name}`, `/secrets/{name}/` | 200 latest SecretBundle; 403 `SecretDisabled` if disabled |
//! | `GET` | `/secrets/{name}/{version}` | 200 that version |
//! | `PATCH` | `/secrets/{name}[/]`, `/secrets/{name}/{version}` | 200 SecretBundle without value |
//! | `GET` | `/secrets[/]?maxresults=1..25` | 200 `{"value":[SecretItem…],"nextLink":…}` |
//! | `GET` | `/secrets/{name}/versions?maxresults=` | 200 the same shape, ids with versions |
//! | `DELETE` | `/secrets/{name}` | 200 DeletedSecretBundle (soft delete, no value) |
//! | `GET` | `/deletedsecrets[/]`, `/deletedsecrets/{name}` | 200 deleted secrets |
//! | `POST` | `/deletedsecrets/{name}/recover` | 200 SecretBundle without value |
//! | `DELETE` | `/deletedsecrets/{name}` | 204, empty (purge) |
//! | `POST` | `/secrets/{name}/backup` | 200 `{"value": blob}` ([`super::backup`]) |
//! | `POST` | `/secrets/restore` | 200 SecretBundle without value; 409 if the name exists |
//!
//! Without a valid token the answer is 401 with the Key Vault challenge, before the body is
//! read. Errors use the Key Vault envelope `{"error":{"code","message","innererror"}}`
//! ([`replies`]); bodies have the service's shapes ([`shapes`]). `nextLink` is absolute, on
//! the address the vault serves, and carries all paging state in `$skiptoken`. Only set and
//! get answers carry a value, and nothing is logged but method, path, status and latency.
//! This file routes requests and runs the handlers.

mod replies;
mod shapes;

use super::backup::BackupKey;
use super::storage::{NewVersion, Patch, Storage};
use crate::secret::SecretString;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use replies::{challenge, decorate, failure_reply, json_reply, method_not_allowed, Failure, Reply};
use serde::Deserialize;
use serde_json::{json, Value};
use shapes::{bundle, deleted_json, item};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Most tags.
pub const MAX_TAGS: usize = 15;
/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest page.
const MAX_PAGE: usize = 25;

/// The shared state of the request handler.
pub struct Api {
    storage: Arc<Storage>,
    token: SecretString,
    backup_key: BackupKey,
    authority: String,
    body_timeout: std::time::Duration,
}

/// What one request needs to build its answer.
struct Context {
    authority: String,
    api_version: String,
    query: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct AttributesBody {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// The body of `PUT` (with `value`) and `PATCH` (without).
#[derive(Deserialize)]
struct PropertiesBody {
    value: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<AttributesBody>,
    tags: Option<BTreeMap<String, String>>,
}

impl PropertiesBody {
    /// Parses and checks a body. serde's messages can quote the input, and the input holds
    /// the value, so they are never passed on.
    fn parse(body: &[u8]) -> Result<PropertiesBody, Failure> {
        let parsed: PropertiesBody = serde_json::from_slice(body).map_err(|_| {
            Failure::bad("The request body is not a valid secret (JSON with a string 'value').")
        })?;
        if parsed
            .content_type
            .as_ref()
            .is_some_and(|c| c.chars().count() > 255)
        {
            return Err(Failure::bad(
                "The content type is longer than 255 characters.",
            ));
        }
        if let Some(tags) = &parsed.tags {
            if tags.len() > MAX_TAGS
                || tags.iter().any(|(k, v)| {
                    k.is_empty() || k.chars().count() > 256 || v.chars().count() > 256
                })
            {
                return Err(Failure::bad("Property has invalid value\r\n"));
            }
        }
        Ok(parsed)
    }

    fn patch(self) -> Patch {
        let attributes = self.attributes;
        Patch {
            content_type: self.content_type,
            tags: self.tags,
            enabled: attributes.as_ref().and_then(|a| a.enabled),
            nbf: attributes.as_ref().and_then(|a| a.nbf),
            exp: attributes.as_ref().and_then(|a| a.exp),
        }
    }
}

impl Api {
    /// A handler over `storage` that requires `token` and seals backups with `backup_key`,
    /// and waits `body_timeout` at most for a request body;
    /// ids, `recoveryId`s and `nextLink`s are `https://{authority}/…`, the vault's public
    /// URL ([`super::PublicUrl`]), whatever the request's `Host` says.
    pub fn new(
        storage: Arc<Storage>,
        token: SecretString,
        backup_key: BackupKey,
        authority: String,
        body_timeout: std::time::Duration,
    ) -> Api {
        Api {
            storage,
            token,
            backup_key,
            authority,
            body_timeout,
        }
    }

    /// Answers one request, and logs one line for it.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Reply, std::convert::Infallible> {
        let start = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let client_request_id = request.headers().get("x-ms-client-request-id").cloned();
        let mut reply = match self.route(request).await {
            Ok(reply) => reply,
            Err(failure) => failure_reply(&failure),
        };
        decorate(&mut reply, client_request_id);
        tracing::info!(
            target: "kvrun::vault::access",
            method = %method,
            path = %path,
            status = reply.status().as_u16(),
            latency_us = start.elapsed().as_micros() as u64,
        );
        Ok(reply)
    }

    /// Whether `request` carries the vault's token.
    pub(crate) fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let Some(token) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        token.ct_eq(self.token.expose().as_bytes()).into()
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Reply, Failure> {
        if !self.authorized(&request) {
            return Ok(challenge());
        }
        let context = self.context(&request)?;
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["secrets"] | ["secrets", ""]) => self.list(&context).await,
            (&Method::POST, ["secrets", "restore"]) => {
                let body = read_body(request, self.body_timeout).await?;
                self.restore(&context, &body).await
            }
            (_, ["secrets"] | ["secrets", ""]) => Err(method_not_allowed(&method)),
            (&Method::PUT, ["secrets", name]) => {
                check_name(name)?;
                let body = read_body(request, self.body_timeout).await?;
                self.set(&context, name, &body).await
            }
            (&Method::GET, ["secrets", name] | ["secrets", name, ""]) => {
                check_name(name)?;
                self.get(&context, name, None).await
            }
            (&Method::PATCH, ["secrets", name] | ["secrets", name, ""]) => {
                check_name(name)?;
                let body = read_body(request, self.body_timeout).await?;
                self.update(&context, name, None, &body).await
            }
            (&Method::DELETE, ["secrets", name]) => {
                check_name(name)?;
                self.delete(&context, name).await
            }
            (&Method::GET, ["secrets", name, "versions"]) => {
                check_name(name)?;
                self.list_versions(&context, name).await
            }
            (&Method::POST, ["secrets", name, "backup"]) => {
                check_name(name)?;
                self.backup(name).await
            }
            (&Method::GET, ["secrets", name, version]) => {
                check_name(name)?;
                check_version(version)?;
                self.get(&context, name, Some(version)).await
            }
            (&Method::PATCH, ["secrets", name, version]) => {
                check_name(name)?;
                check_version(version)?;
                let body = read_body(request, self.body_timeout).await?;
                self.update(&context, name, Some(version), &body).await
            }
            (_, ["secrets", ..]) => Err(method_not_allowed(&method)),
            (&Method::GET, ["deletedsecrets"] | ["deletedsecrets", ""]) => {
                self.list_deleted(&context).await
            }
            (&Method::GET, ["deletedsecrets", name]) => {
                check_name(name)?;
                self.get_deleted(&context, name).await
            }
            (&Method::DELETE, ["deletedsecrets", name]) => {
                check_name(name)?;
                self.purge(name).await
            }
            (&Method::POST, ["deletedsecrets", name, "recover"]) => {
                check_name(name)?;
                self.recover(&context, name).await
            }
            (_, ["deletedsecrets", ..]) => Err(method_not_allowed(&method)),
            _ => Err(Failure::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("The path {path} is not served by this vault."),
            )),
        }
    }

    fn context(&self, request: &Request<Incoming>) -> Result<Context, Failure> {
        // Keys and values may be percent-encoded (the JS SDK sends `api%2Dversion`).
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let api_version = query
            .get("api-version")
            .cloned()
            .ok_or_else(|| Failure::bad("The api-version query parameter is missing."))?;
        if !supported_api_version(&api_version) {
            return Err(Failure::bad(format!(
                "The specified version ({api_version}) is not recognized. Consider using the latest supported version (2025-07-01)."
            )));
        }
        Ok(Context {
            authority: self.authority.clone(),
            api_version,
            query,
        })
    }

    /// Runs a storage call off the async threads: SQLite blocks (a write waits for an
    /// fsync, a read may wait for the disk or for a free read connection).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Storage) -> crate::error::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || f(&storage))
            .await
            .map_err(|_| {
                Failure::from(crate::error::Error::Storage(
                    "the writer task failed".into(),
                ))
            })?
            .map_err(Failure::from)
    }

    async fn set(&self, context: &Context, name: &str, body: &[u8]) -> Result<Reply, Failure> {
        let parsed = PropertiesBody::parse(body)?;
        let value = SecretString::new(
            parsed
                .value
                .clone()
                .ok_or_else(|| Failure::bad("The request body has no 'value'."))?,
        );
        if value.len() > MAX_VALUE_BYTES {
            return Err(Failure::bad(format!(
                "The secret value is {} bytes; the limit is {MAX_VALUE_BYTES} bytes.",
                value.len()
            )));
        }
        let patch = parsed.patch();
        let new = NewVersion {
            name: name.to_string(),
            value,
            content_type: patch.content_type,
            tags: patch.tags.unwrap_or_default(),
            enabled: patch.enabled.unwrap_or(true),
            nbf: patch.nbf,
            exp: patch.exp,
        };
        let stored = self.blocking(move |s| s.set(new)).await?.ok_or_else(|| {
            Failure::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."),
            )
            .with_inner("ObjectIsDeletedButRecoverable")
        })?;
        Ok(json_reply(StatusCode::OK, bundle(context, &stored, true)))
    }

    async fn get(
        &self,
        context: &Context,
        name: &str,
        version: Option<&str>,
    ) -> Result<Reply, Failure> {
        let cached = version
            .is_none()
            .then(|| self.storage.cached_latest(name))
            .flatten();
        let stored = match cached {
            Some(stored) => stored,
            None => {
                let (owned, version_owned) = (name.to_string(), version.map(str::to_string));
                self.blocking(move |s| s.get(&owned, version_owned.as_deref()))
                    .await?
                    .ok_or_else(|| Failure::not_found(name, version))?
            }
        };
        if !stored.data.enabled {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
            )
            .with_inner("SecretDisabled"));
        }
        Ok(json_reply(StatusCode::OK, bundle(context, &stored, true)))
    }

    async fn update(
        &self,
        context: &Context,
        name: &str,
        version: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let patch = PropertiesBody::parse(body)?.patch();
        let (owned, version_owned) = (name.to_string(), version.map(str::to_string));
        let stored = self
            .blocking(move |s| s.update(&owned, version_owned.as_deref(), &patch))
            .await?
            .ok_or_else(|| Failure::not_found(name, version))?;
        Ok(json_reply(StatusCode::OK, bundle(context, &stored, false)))
    }

    async fn delete(&self, context: &Context, name: &str) -> Result<Reply, Failure> {
        let owned = name.to_string();
        let (latest, deletion) = self
            .blocking(move |s| s.delete(&owned))
            .await?
            .ok_or_else(|| Failure::not_found(name, None))?;
        Ok(json_reply(
            StatusCode::OK,
            deleted_json(context, &latest, &deletion, true),
        ))
    }

    async fn get_deleted(&self, context: &Context, name: &str) -> Result<Reply, Failure> {
        let owned = name.to_string();
        let (latest, deletion) = self
            .blocking(move |s| s.get_deleted(&owned))
            .await?
            .ok_or_else(|| Failure::deleted_not_found(name))?;
        Ok(json_reply(
            StatusCode::OK,
            deleted_json(context, &latest, &deletion, true),
        ))
    }

    async fn recover(&self, context: &Context, name: &str) -> Result<Reply, Failure> {
        let owned = name.to_string();
        let latest = self
            .blocking(move |s| s.recover(&owned))
            .await?
            .ok_or_else(|| Failure::deleted_not_found(name))?;
        Ok(json_reply(StatusCode::OK, bundle(context, &latest, false)))
    }

    async fn purge(&self, name: &str) -> Result<Reply, Failure> {
        let owned = name.to_string();
        if !self.blocking(move |s| s.purge(&owned)).await? {
            return Err(Failure::deleted_not_found(name));
        }
        let mut reply = Response::new(Full::new(Bytes::new()));
        *reply.status_mut() = StatusCode::NO_CONTENT;
        Ok(reply)
    }

    async fn backup(&self, name: &str) -> Result<Reply, Failure> {
        let owned = name.to_string();
        let versions = self.blocking(move |s| s.all_versions(&owned)).await?;
        if versions.is_empty() {
            return Err(Failure::not_found(name, None));
        }
        Ok(json_reply(
            StatusCode::OK,
            json!({ "value": self.backup_key.seal(&versions) }),
        ))
    }

    async fn restore(&self, context: &Context, body: &[u8]) -> Result<Reply, Failure> {
        #[derive(Deserialize)]
        struct RestoreBody {
            value: String,
        }
        let malformed = || {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "Malformed backup blob",
                "Backup blob is corrupt.",
            )
        };
        let blob: RestoreBody = serde_json::from_slice(body).map_err(|_| malformed())?;
        let versions = self.backup_key.open(&blob.value).ok_or_else(malformed)?;
        let name = versions
            .last()
            .map(|v| v.data.name.clone())
            .unwrap_or_default();
        let latest = self.blocking(move |s| s.restore(&versions)).await?.ok_or_else(|| {
            Failure::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Secret {name} already exists (or is deleted and recoverable); delete and purge it before restoring."),
            )
        })?;
        Ok(json_reply(StatusCode::OK, bundle(context, &latest, false)))
    }

    async fn list(&self, context: &Context) -> Result<Reply, Failure> {
        let (limit, after) = paging(context)?;
        let (items, more) = self.blocking(move |s| s.list(&after, limit)).await?;
        let last = items.last().map(|v| super::storage::key(&v.data.name));
        let values: Vec<Value> = items.iter().map(|v| item(context, v, false)).collect();
        Ok(page(
            context,
            "/secrets",
            values,
            more.then_some(last).flatten(),
        ))
    }

    async fn list_versions(&self, context: &Context, name: &str) -> Result<Reply, Failure> {
        let (limit, after) = paging(context)?;
        let owned = name.to_string();
        let (items, more) = self
            .blocking(move |s| s.list_versions(&owned, &after, limit))
            .await?;
        let last = items.last().map(|v| v.version.clone());
        let values: Vec<Value> = items.iter().map(|v| item(context, v, true)).collect();
        Ok(page(
            context,
            &format!("/secrets/{name}/versions"),
            values,
            more.then_some(last).flatten(),
        ))
    }

    async fn list_deleted(&self, context: &Context) -> Result<Reply, Failure> {
        let (limit, after) = paging(context)?;
        let (items, more) = self
            .blocking(move |s| s.list_deleted(&after, limit))
            .await?;
        let last = items.last().map(|(v, _)| super::storage::key(&v.data.name));
        let values: Vec<Value> = items
            .iter()
            .map(|(v, d)| deleted_json(context, v, d, false))
            .collect();
        Ok(page(
            context,
            "/deletedsecrets",
            values,
            more.then_some(last).flatten(),
        ))
    }
}

/// `maxresults` (1..=25, default 25) and the position after which the page starts.
fn paging(context: &Context) -> Result<(usize, String), Failure> {
    let limit = match context.query.get("maxresults") {
        None => MAX_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Failure::bad(format!("maxresults must be between 1 and {MAX_PAGE}.")))?,
    };
    let after = match context.query.get("$skiptoken") {
        None => String::new(),
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Failure::bad("The $skiptoken is not valid."))?,
    };
    Ok((limit, after))
}

/// A page of a listing, as an answer.
fn page(context: &Context, path: &str, values: Vec<Value>, last: Option<String>) -> Reply {
    json_reply(StatusCode::OK, shapes::page(context, path, values, last))
}

fn check_name(name: &str) -> Result<(), Failure> {
    if crate::secret_name::is_valid(name) {
        Ok(())
    } else {
        let shown: String = name.chars().take(130).collect();
        Err(Failure::bad(format!(
            "The request URI contains an invalid name: {shown}"
        )))
    }
}

fn check_version(version: &str) -> Result<(), Failure> {
    if version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        let shown: String = version.chars().take(70).collect();
        Err(Failure::bad(format!(
            "The request URI contains an invalid version: {shown}"
        )))
    }
}

/// The released api-versions, and any later date-form version.
fn supported_api_version(v: &str) -> bool {
    const RELEASED: &[&str] = &[
        "2016-10-01",
        "7.0",
        "7.1",
        "7.2",
        "7.3",
        "7.4",
        "7.5",
        "7.6",
        "2025-07-01",
        "2026-04-01",
    ];
    if RELEASED.contains(&v) {
        return true;
    }
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let parts: Vec<&str> = date.split('-').collect();
    matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
            && [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && *y >= "2026")
}

async fn read_body(
    request: Request<Incoming>,
    timeout: std::time::Duration,
) -> Result<Bytes, Failure> {
    let collect = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    match tokio::time::timeout(timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(Failure::bad(format!(
            "The request body is unreadable or larger than {MAX_BODY_BYTES} bytes."
        ))),
        Err(_) => Err(Failure::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!(
                "The request body did not arrive within {} seconds.",
                timeout.as_secs_f64()
            ),
        )),
    }
}
