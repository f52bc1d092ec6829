//! The one place a failure is shown: one line on stderr (what failed, the true cause, what to
//! do), or with `--output json` one object, `{"error": {"kind", "message", "hint", "status"}}`;
//! and the exit status, one per kind (the README's table).

use super::args::Output;
use kvrun::Error;
use serde_json::json;
use std::sync::OnceLock;

/// The embedded local vault of this process, once started: its URL (served only while the
/// command runs) and how messages name it instead (`the local vault (DIR)`).
static LOCAL_VAULT: OnceLock<(String, String)> = OnceLock::new();

/// Remembers the embedded local vault that this command talks to.
pub(crate) fn remember_local_vault(url: &str, name: String) {
    let _ = LOCAL_VAULT.set((url.trim_end_matches('/').to_string(), name));
}

/// What a failure shows: its line (or JSON object) and its exit status.
pub(crate) struct Shown {
    /// The text for stderr, without a trailing newline.
    pub(crate) text: String,
    /// The exit status.
    pub(crate) status: u8,
}

/// Renders `e` for `output`.
pub(crate) fn render(e: &Error, output: Output) -> Shown {
    let status = exit_status(e);
    let mut message = e.to_string();
    if let Some((url, name)) = LOCAL_VAULT.get() {
        message = message.replace(url, name);
    }
    let message = message.lines().collect::<Vec<_>>().join(" ");
    let hint = e.hint();
    let text = match output {
        Output::Json => json!({
            "error": { "kind": e.kind(), "message": message, "hint": hint, "status": status }
        })
        .to_string(),
        Output::Text => match hint {
            Some(hint) => format!("kvrun: {message} ({hint})"),
            None => format!("kvrun: {message}"),
        },
    };
    Shown { text, status }
}

/// Exit statuses, one per kind of failure.
pub(crate) fn exit_status(e: &Error) -> u8 {
    match e {
        Error::NotFound(_) => 3,
        Error::InvalidName(_) | Error::InvalidArgument(_) | Error::Config(_) => 4,
        Error::Denied(_) | Error::PolicyDenied(_) => 5,
        Error::Unauthenticated(_) => 6,
        Error::Unavailable(_)
        | Error::Throttled { .. }
        | Error::Network { .. }
        | Error::Transport(_)
        | Error::Timeout(_) => 7,
        Error::Conflict(_) => 8,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvrun::NetworkCause;
    use std::time::Duration;

    #[test]
    fn every_kind_renders_as_one_line_and_as_one_json_object() {
        let origin = || "https://kv.vault.azure.net".to_string();
        let cases = [
            (
                Error::NotFound("secret \"x\" was not found".into()),
                "not-found",
                3,
            ),
            (
                Error::Denied("the vault denied".into()),
                "denied-by-vault",
                5,
            ),
            (Error::PolicyDenied("blocked".into()), "denied-by-policy", 5),
            (Error::Unauthenticated("no".into()), "unauthenticated", 6),
            (Error::Conflict("deleted".into()), "conflict", 8),
            (
                Error::Throttled {
                    tried: Duration::from_millis(4200),
                    detail: "HTTP 429".into(),
                },
                "throttled",
                7,
            ),
            (
                Error::Network {
                    cause: NetworkCause::NameResolution,
                    origin: origin(),
                },
                "name-resolution",
                7,
            ),
            (
                Error::Network {
                    cause: NetworkCause::TlsNameMismatch,
                    origin: origin(),
                },
                "tls-name-mismatch",
                7,
            ),
            (
                Error::Network {
                    cause: NetworkCause::Redirect {
                        status: 302,
                        location: Some("https://elsewhere/".into()),
                    },
                    origin: origin(),
                },
                "redirect",
                7,
            ),
            (
                Error::Service {
                    status: 302,
                    code: String::new(),
                    message: "HTTP 302".into(),
                },
                "service",
                1,
            ),
        ];
        for (e, kind, status) in cases {
            let text = render(&e, Output::Text);
            assert_eq!(text.status, status, "{kind}");
            assert!(
                !text.text.contains('\n') && text.text.starts_with("kvrun: "),
                "{}",
                text.text
            );
            assert!(
                !text.text.contains("Error::") && !text.text.contains("ErrorCode"),
                "{}",
                text.text
            );
            let json: serde_json::Value =
                serde_json::from_str(&render(&e, Output::Json).text).unwrap();
            assert_eq!(json["error"]["kind"], kind);
            assert_eq!(json["error"]["status"], status);
            assert!(json["error"]["message"].is_string());
        }
        let redirect = Error::Service {
            status: 302,
            code: String::new(),
            message: "HTTP 302".into(),
        };
        assert_eq!(
            redirect.to_string(),
            "the vault answered HTTP 302",
            "no repeated status"
        );
    }
}
