//! The door: the one host function the scientific runtime's module imports, and kvrun's
//! protocol over it.
//!
//! `host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> i32` hands the host `len` bytes of the
//! guest's memory; the host answers by asking the guest for room (`host_alloc`), writing the
//! answer there and storing its address and length. Inside, `kvrun`'s door transport
//! (`host/python/kvrun/_door.py`) speaks this protocol through the built-in `_host` module.
//!
//! A frame is one JSON object; an answer is `{"ok": VALUE}` or `{"error": {"kind", "message"}}`.
//!
//! | `op` | fields | `ok` |
//! |---|---|---|
//! | `start` | | `{"argv": [...], "env": {...}}`: the run's own arguments and `--env` |
//! | `get-secret` | `name` | the value |
//! | `get-secrets` | `names` | the values, `null` for a name that does not exist |
//! | `get-secret-handle` | `name` | the handle |
//! | `http` | `method`, `url`, `headers` (`[[name, value]]`, values as Latin-1 text), `body` (base64), `timeout` (seconds or null) | `{"status", "headers", "body"}` |
//!
//! The secret operations are the run's broker's, the same calls `kvrun:secrets/run` makes;
//! an `http` frame becomes an `http::Request` handed to the run's own [`OutboundHooks`] (the
//! same `send_request` a component's `wasi:http` request reaches: policy, handle substitution,
//! refusal reasons, echo masking and limits, audit). Frames are bounded: at most
//! [`MAX_FRAME`] bytes each and [`MAX_CALLS`] per run; an answer body past [`MAX_ANSWER`] is
//! an error. Whatever a frame holds, the guest gets an error answer, never a host panic.
//!
//! [`OutboundHooks`]: crate::network::OutboundHooks

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The largest frame the door reads, in bytes.
pub const MAX_FRAME: usize = 16 << 20;

/// The most frames one run may send.
pub const MAX_CALLS: u64 = 1_000_000;

/// The largest answer body an `http` frame gets back, in bytes.
pub const MAX_ANSWER: usize = 64 << 20;

/// A frame, read.
#[derive(Debug, PartialEq)]
pub(crate) enum DoorRequest {
    /// The run's arguments and environment.
    Start,
    /// One secret's value.
    GetSecret(String),
    /// Several secrets' values.
    GetSecrets(Vec<String>),
    /// A use-only secret's handle.
    GetSecretHandle(String),
    /// A request to send.
    Http(HttpFrame),
}

/// An `http` frame.
#[derive(Debug, PartialEq)]
pub(crate) struct HttpFrame {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
}

/// Why a frame got an error answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DoorError {
    /// `invalid-frame`, `too-many-calls`, `not-found`, `denied`, `refused`, `failed`, ...
    pub(crate) kind: String,
    /// For the run: names and reasons, never a value.
    pub(crate) message: String,
}

impl DoorError {
    /// An error of `kind`.
    pub(crate) fn new(kind: &str, message: impl Into<String>) -> DoorError {
        DoorError {
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> DoorError {
        DoorError::new("invalid-frame", message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrame {
    op: String,
    name: Option<String>,
    names: Option<Vec<String>>,
    method: Option<String>,
    url: Option<String>,
    headers: Option<Vec<(String, String)>>,
    body: Option<String>,
    timeout: Option<f64>,
}

impl DoorRequest {
    /// Reads a frame.
    pub(crate) fn parse(frame: &[u8]) -> Result<DoorRequest, DoorError> {
        if frame.len() > MAX_FRAME {
            return Err(DoorError::invalid(format!(
                "a frame of {} bytes is over the door's limit of {MAX_FRAME}",
                frame.len()
            )));
        }
        let raw: RawFrame = serde_json::from_slice(frame)
            .map_err(|e| DoorError::invalid(format!("the frame is not a door request: {e}")))?;
        let name = |raw: &RawFrame| {
            raw.name
                .clone()
                .ok_or_else(|| DoorError::invalid(format!("`{}` needs a `name`", raw.op)))
        };
        Ok(match raw.op.as_str() {
            "start" => DoorRequest::Start,
            "get-secret" => DoorRequest::GetSecret(name(&raw)?),
            "get-secret-handle" => DoorRequest::GetSecretHandle(name(&raw)?),
            "get-secrets" => DoorRequest::GetSecrets(
                raw.names
                    .ok_or_else(|| DoorError::invalid("`get-secrets` needs `names`"))?,
            ),
            "http" => DoorRequest::Http(HttpFrame::from_raw(raw)?),
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(DoorError::invalid(format!(
                    "{shown:?} is not an operation of the door"
                )));
            }
        })
    }
}

impl HttpFrame {
    fn from_raw(raw: RawFrame) -> Result<HttpFrame, DoorError> {
        let headers = raw
            .headers
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| Ok((name, latin1(&value)?)))
            .collect::<Result<Vec<_>, DoorError>>()?;
        let body = match raw.body {
            Some(body) => base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| DoorError::invalid("the request body is not base64"))?,
            None => Vec::new(),
        };
        let timeout = match raw.timeout {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(_) => {
                return Err(DoorError::invalid(
                    "the timeout must be a positive number of seconds",
                ))
            }
        };
        Ok(HttpFrame {
            method: raw
                .method
                .ok_or_else(|| DoorError::invalid("`http` needs a `method`"))?,
            url: raw
                .url
                .ok_or_else(|| DoorError::invalid("`http` needs a `url`"))?,
            headers,
            body,
            timeout,
        })
    }
}

/// A header value sent as text whose characters are bytes (Latin-1).
fn latin1(text: &str) -> Result<Vec<u8>, DoorError> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| DoorError::invalid("a header value has a character above U+00FF"))
}

/// The answer for `ok`.
pub(crate) fn ok(value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "ok": value })).unwrap_or_default()
}

/// The answer for an error.
pub(crate) fn error(error: &DoorError) -> Vec<u8> {
    serde_json::to_vec(&json!({ "error": { "kind": error.kind, "message": error.message } }))
        .unwrap_or_default()
}

/// The `ok` of an `http` answer.
pub(crate) fn http_answer(status: u16, headers: &http::HeaderMap, body: &[u8]) -> Value {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.as_bytes().iter().map(|&b| char::from(b)).collect(),
            )
        })
        .collect();
    json!({
        "status": status,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_operation_reads() {
        assert_eq!(
            DoorRequest::parse(br#"{"op":"get-secret","name":"db-password"}"#),
            Ok(DoorRequest::GetSecret("db-password".into()))
        );
        assert_eq!(
            DoorRequest::parse(br#"{"op":"get-secrets","names":["a","b"]}"#),
            Ok(DoorRequest::GetSecrets(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            DoorRequest::parse(br#"{"op":"start"}"#),
            Ok(DoorRequest::Start)
        );
        let frame = br#"{"op":"http","method":"POST","url":"https://t.example/x","headers":[["authorization","Basic \u00e9"]],"body":"aGk=","timeout":2.5}"#;
        assert_eq!(
            DoorRequest::parse(frame),
            Ok(DoorRequest::Http(HttpFrame {
                method: "POST".into(),
                url: "https://t.example/x".into(),
                headers: vec![("authorization".into(), b"Basic \xe9".to_vec())],
                body: b"hi".to_vec(),
                timeout: Some(Duration::from_millis(2500)),
            }))
        );
    }

    #[test]
    fn malformed_frames_get_one_line_errors() {
        for (frame, says) in [
            (&b"{\"op\":\"get-secret\"}"[..], "needs a `name`"),
            (b"{\"op\":\"format-disk\"}", "is not an operation"),
            (b"{\"op\":\"get-secret\",\"name\":\"a\",\"extra\":1}", "not a door request"),
            (b"{\"op\":\"http\",\"method\":\"GET\",\"url\":\"x\",\"body\":\"!!\"}", "not base64"),
            (b"{\"op\":\"http\",\"method\":\"GET\",\"url\":\"x\",\"timeout\":-1}", "positive"),
            (b"{\"op\":\"http\",\"method\":\"GET\",\"url\":\"x\",\"headers\":[[\"a\",\"\\u0100\"]]}", "U+00FF"),
            (b"{\"op\":", "not a door request"),
            (b"", "not a door request"),
        ] {
            let error = DoorRequest::parse(frame).unwrap_err();
            assert_eq!(error.kind, "invalid-frame");
            assert!(error.message.contains(says), "{:?}: {}", frame, error.message);
            assert!(!error.message.contains('\n'));
        }
        let oversized = vec![b' '; MAX_FRAME + 1];
        assert!(DoorRequest::parse(&oversized)
            .unwrap_err()
            .message
            .contains("over the door's limit"));
    }

    #[test]
    fn answers_are_json_with_latin1_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-a", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let answer: Value =
            serde_json::from_slice(&ok(http_answer(201, &headers, b"\x00\xff"))).unwrap();
        assert_eq!(answer["ok"]["status"], 201);
        assert_eq!(answer["ok"]["headers"][0][1], "caf\u{e9}");
        assert_eq!(answer["ok"]["body"], "AP8=");
        let failed: Value =
            serde_json::from_slice(&error(&DoorError::new("denied", "not granted"))).unwrap();
        assert_eq!(failed["error"]["kind"], "denied");
    }

    proptest! {
        #[test]
        fn random_and_truncated_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..200) {
            let _ = DoorRequest::parse(&bytes);
            let good = br#"{"op":"http","method":"GET","url":"https://a.example/","headers":[["x","y"]],"body":"aGk="}"#;
            let _ = DoorRequest::parse(&good[..cut.min(good.len())]);
        }
    }
}
