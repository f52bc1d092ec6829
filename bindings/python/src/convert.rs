//! The contract's records as Python dicts (the Python layer makes them dataclasses), and
//! Python arguments as the contract's records. Times stay Unix seconds here.

use kvrun::{DeletedSecret, PropertyUpdate, SecretProperties, SetOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `tags` as a dict.
fn tags<'py>(py: Python<'py>, tags: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in tags {
        dict.set_item(k, v)?;
    }
    Ok(dict)
}

/// A version's properties (never a value).
pub fn properties<'py>(py: Python<'py>, p: &SecretProperties) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("name", &p.name)?;
    dict.set_item("version", &p.version)?;
    dict.set_item("id", &p.id)?;
    dict.set_item("content_type", &p.content_type)?;
    dict.set_item("enabled", p.enabled)?;
    dict.set_item("not_before", p.not_before)?;
    dict.set_item("expires", p.expires)?;
    dict.set_item("created", p.created)?;
    dict.set_item("updated", p.updated)?;
    dict.set_item("tags", tags(py, &p.tags)?)?;
    Ok(dict)
}

/// A list of properties.
pub fn properties_list<'py>(
    py: Python<'py>,
    list: &[SecretProperties],
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    list.iter().map(|p| properties(py, p)).collect()
}

/// What a delete left behind.
pub fn deleted<'py>(py: Python<'py>, d: &DeletedSecret) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("properties", properties(py, &d.properties)?)?;
    dict.set_item("recovery_id", &d.recovery_id)?;
    dict.set_item("deleted_date", d.deleted_date)?;
    dict.set_item("scheduled_purge_date", d.scheduled_purge_date)?;
    Ok(dict)
}

/// Content type and tags for a new version.
pub fn set_options(
    content_type: Option<String>,
    tags: Option<Vec<(String, String)>>,
) -> SetOptions {
    SetOptions {
        content_type,
        tags: tags.unwrap_or_default(),
    }
}

/// Changes to a version's properties; `None` leaves one as it is.
pub fn update(
    enabled: Option<bool>,
    content_type: Option<String>,
    tags: Option<Vec<(String, String)>>,
    not_before: Option<i64>,
    expires: Option<i64>,
) -> PropertyUpdate {
    PropertyUpdate {
        enabled,
        content_type,
        tags,
        not_before,
        expires,
    }
}
