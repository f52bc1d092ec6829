//! A handle's value while a run lives: re-read from the vault when it is older than the
//! handle lifetime, so that a value set again in the vault reaches the run's substitutions
//! within that time. Pure logic, and the seam ([`Reread`]) through which the sandbox reads.
//!
//! | the re-read | then |
//! |---|---|
//! | gives a value | it replaces the old one for later substitutions (the old one stays masked in answers); the record names the new version |
//! | finds the secret gone (`not-found`) or refused (`denied`: disabled, or the grant taken away) | substitutions of the handle stop, each refused with the reason, audited |
//! | fails for a passing reason (throttled, unavailable, a timeout, the network) | the last value is kept, audited, for at most [`MAX_KEPT_STALE`] after the last good read; then substitutions stop |
//! | fails otherwise (unauthenticated, an answer not understood) | substitutions stop |
//!
//! Every re-read is an audit record (`"operation": "reread-secret"`) with its outcome, and the
//! version and fingerprint of a value it gave. Re-reads go to the vault, never to the
//! sandbox's read cache (whose entries may be older than the lifetime).

use crate::error::Error;
use crate::secret::SecretString;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How old a handle's value may get before the next request that could use it re-reads it.
pub const DEFAULT_HANDLE_LIFETIME: Duration = Duration::from_secs(60);

/// How long after its last good read a value is kept while re-reads fail for a passing
/// reason.
pub const MAX_KEPT_STALE: Duration = Duration::from_secs(600);

/// A value read again: the value and its version.
pub type Reread = crate::Result<(SecretString, Option<String>)>;

/// Reads a bound secret's latest value again, for a run's handles.
pub trait Rereader: Send + Sync {
    /// The latest value of `name` and its version.
    fn reread<'a>(&'a self, name: &'a str) -> Pin<Box<dyn Future<Output = Reread> + Send + 'a>>;
}

/// What a failed re-read means for the handle.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Keep substituting the last value; the audit outcome says so.
    Keep(String),
    /// Stop substituting: every request carrying the handle is refused with this reason.
    Stop(String),
}

/// Judges a re-read that failed with `error`, `since_read` after the last good read.
pub fn after_failure(error: &Error, since_read: Duration) -> AfterFailure {
    let label = error.audit_outcome();
    let passing = matches!(
        error,
        Error::Throttled { .. }
            | Error::Unavailable(_)
            | Error::Timeout(_)
            | Error::Transport(_)
            | Error::Network { .. }
    );
    let age = since_read.as_secs();
    if passing && since_read <= MAX_KEPT_STALE {
        return AfterFailure::Keep(format!(
            "{label}: the last value is kept (read {age} s ago; at most {} s)",
            MAX_KEPT_STALE.as_secs()
        ));
    }
    AfterFailure::Stop(match error {
        Error::NotFound(_) => {
            "the secret was deleted from the vault since the run read it; its handle no longer carries a value".into()
        }
        Error::Denied(_) => {
            "the vault refused to read the secret again (disabled, or no longer granted); its handle no longer carries a value".into()
        }
        _ if passing => format!(
            "its value could not be read again for over {} s ({label}); its handle no longer carries a value",
            MAX_KEPT_STALE.as_secs()
        ),
        _ => format!("its value could not be read again ({label}); its handle no longer carries a value"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_failures_keep_the_value_for_a_while_and_others_stop_it() {
        let minute = Duration::from_secs(60);
        let unavailable = Error::Unavailable("503".into());
        assert_eq!(
            after_failure(&unavailable, minute),
            AfterFailure::Keep(
                "error: unavailable: the last value is kept (read 60 s ago; at most 600 s)".into()
            )
        );
        let late = MAX_KEPT_STALE + Duration::from_secs(1);
        for (error, since, says) in [
            (&unavailable, late, "for over 600 s (error: unavailable)"),
            (&Error::NotFound("x".into()), minute, "deleted"),
            (&Error::Denied("disabled".into()), minute, "disabled"),
            (
                &Error::Unauthenticated("expired".into()),
                minute,
                "(error: unauthenticated)",
            ),
        ] {
            let judged = after_failure(error, since);
            assert!(
                matches!(&judged, AfterFailure::Stop(why) if why.contains(says)),
                "{judged:?}"
            );
        }
    }
}
