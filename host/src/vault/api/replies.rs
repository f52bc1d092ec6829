//! Error answers and the headers of every answer: the Key Vault error envelope
//! (`{"error":{"code","message","innererror"}}`), the `401` challenge, and the service's
//! response headers.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// An answer.
pub(super) type Reply = Response<Full<Bytes>>;

/// An error answer, in the Key Vault envelope.
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) inner: Option<&'static str>,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            status,
            code,
            inner: None,
            message: message.into(),
        }
    }

    pub(super) fn with_inner(mut self, inner: &'static str) -> Failure {
        self.inner = Some(inner);
        self
    }

    pub(super) fn bad(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub(super) fn not_found(name: &str, version: Option<&str>) -> Failure {
        let id = match version {
            Some(v) => format!("{name}/{v}"),
            None => name.to_string(),
        };
        Failure::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!("A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"),
        )
    }

    pub(super) fn deleted_not_found(name: &str) -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!("Deleted Secret not found: {name}"),
        )
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        tracing::error!(error = %e, "local vault storage failed");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "The local vault could not access its storage.",
        )
    }
}

pub(super) fn method_not_allowed(method: &Method) -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("HTTP {method} not allowed"),
    )
}

pub(super) fn json_reply(status: StatusCode, body: Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    reply
}

pub(super) fn failure_reply(failure: &Failure) -> Reply {
    let mut error = json!({ "code": failure.code, "message": failure.message });
    if let Some(inner) = failure.inner {
        error["innererror"] = json!({ "code": inner });
    }
    json_reply(failure.status, json!({ "error": error }))
}

/// 401 with the Key Vault challenge.
pub(super) fn challenge() -> Reply {
    let mut reply = json_reply(
        StatusCode::UNAUTHORIZED,
        json!({ "error": { "code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token." } }),
    );
    reply.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer authorization=\"https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000\", resource=\"https://vault.azure.net\"",
        ),
    );
    reply
}

/// Headers the service sends on every answer.
pub(super) fn decorate(reply: &mut Reply, client_request_id: Option<HeaderValue>) {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
    let h = hex::encode(id);
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let headers = reply.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "strict-transport-security",
        HeaderValue::from_static("max-age=31536000;includeSubDomains"),
    );
    headers.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static(concat!("kvrun-", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert("x-ms-keyvault-region", HeaderValue::from_static("local"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-ms-request-id", v);
    }
    if let Some(v) = client_request_id {
        headers.insert("x-ms-client-request-id", v);
    }
}
