//! The exception hierarchy, one class per kind of [`kvrun::Error`].
//!
//! | exception | `kind` (as in `kvrun --output json`) |
//! |---|---|
//! | `NotFound` | `not-found` |
//! | `Denied` | `denied-by-vault` |
//! | `PolicyDenied` (a `Denied`) | `denied-by-policy` |
//! | `Unauthenticated` | `unauthenticated` |
//! | `Conflict` | `conflict` |
//! | `InvalidArgument` | `invalid-argument` |
//! | `InvalidName` (an `InvalidArgument`) | `invalid-name` |
//! | `Unavailable` | `unavailable`, `throttled`, `timeout`, every network cause |
//! | `ServiceError` | `service`, `bad-answer` |
//! | `ConfigError` | `config` |
//! | `CapacityError` | `capacity` |
//! | `ComponentError` | `component` |
//! | `StorageError` | `storage`, `io` |
//!
//! Every one is a `KvrunError` with the attributes `kind`, `hint` (or `None`) and `status`
//! (the vault's HTTP status, or `None`). No message carries a secret value: the host's
//! errors never hold one.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    kvrun,
    KvrunError,
    PyException,
    "Every kvrun failure. Attributes: kind, hint, status."
);
create_exception!(
    kvrun,
    NotFound,
    KvrunError,
    "The secret, or the version, does not exist."
);
create_exception!(
    kvrun,
    Denied,
    KvrunError,
    "The vault refused the request (HTTP 403)."
);
create_exception!(
    kvrun,
    PolicyDenied,
    Denied,
    "The host's network policy refused the request; nothing was sent."
);
create_exception!(
    kvrun,
    Unauthenticated,
    KvrunError,
    "The vault did not accept the credential."
);
create_exception!(
    kvrun,
    Conflict,
    KvrunError,
    "The operation conflicts with the secret's state (deleted but not purged, ...)."
);
create_exception!(
    kvrun,
    InvalidArgument,
    KvrunError,
    "An argument is out of bounds, or the vault answered 400."
);
create_exception!(
    kvrun,
    InvalidName,
    InvalidArgument,
    "A secret name breaks ^[0-9A-Za-z-]{1,127}$."
);
create_exception!(
    kvrun,
    Unavailable,
    KvrunError,
    "The vault could not be reached, kept failing or throttling, or did not answer in time."
);
create_exception!(
    kvrun,
    ServiceError,
    KvrunError,
    "Another error answer from the vault, or an answer that could not be read."
);
create_exception!(
    kvrun,
    ConfigError,
    KvrunError,
    "The configuration is wrong: vault URL, CA file, token, allow-list entry, grant."
);
create_exception!(
    kvrun,
    CapacityError,
    KvrunError,
    "Too many clients or runs at once for the instance pool."
);
create_exception!(
    kvrun,
    ComponentError,
    KvrunError,
    "Compiling, instantiating or running a component failed."
);
create_exception!(
    kvrun,
    StorageError,
    KvrunError,
    "The local vault's storage, or a file kvrun needed, failed."
);

/// Adds every exception class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KvrunError", py.get_type::<KvrunError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Denied", py.get_type::<Denied>())?;
    m.add("PolicyDenied", py.get_type::<PolicyDenied>())?;
    m.add("Unauthenticated", py.get_type::<Unauthenticated>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("InvalidName", py.get_type::<InvalidName>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("ServiceError", py.get_type::<ServiceError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("CapacityError", py.get_type::<CapacityError>())?;
    m.add("ComponentError", py.get_type::<ComponentError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    Ok(())
}

/// The Python exception for a kvrun error, with `kind`, `hint` and `status` set.
pub fn to_py(error: kvrun::Error) -> PyErr {
    let message = error.to_string();
    let kind = error.kind();
    let hint = error.hint();
    let status = match &error {
        kvrun::Error::Service { status, .. } => Some(*status),
        _ => None,
    };
    let err = match kind {
        "not-found" => NotFound::new_err(message),
        "denied-by-vault" => Denied::new_err(message),
        "denied-by-policy" => PolicyDenied::new_err(message),
        "unauthenticated" => Unauthenticated::new_err(message),
        "conflict" => Conflict::new_err(message),
        "invalid-argument" => InvalidArgument::new_err(message),
        "invalid-name" => InvalidName::new_err(message),
        "service" | "bad-answer" => ServiceError::new_err(message),
        "config" => ConfigError::new_err(message),
        "capacity" => CapacityError::new_err(message),
        "component" => ComponentError::new_err(message),
        "storage" | "io" => StorageError::new_err(message),
        _ => Unavailable::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        let set = value
            .setattr("kind", kind)
            .and_then(|_| value.setattr("hint", hint))
            .and_then(|_| value.setattr("status", status));
        match set {
            Ok(()) => err,
            Err(failed) => failed,
        }
    })
}

/// `Result<T, kvrun::Error>` into a Python result.
pub trait IntoPyResult<T> {
    /// Maps the error with [`to_py`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for kvrun::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
