//! Where secret values come from: an environment variable, a file, standard input or a
//! prompt that does not echo, never the command line (other users can read argv).

use kvrun::{Error, NewSecret, Result, SecretString, SetOptions};
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};
use std::path::Path;

/// The value of `secret set`: env var, file, standard input, or a hidden prompt; a value
/// typed on the command line (`on_command_line`) is refused without being shown.
pub(crate) fn read_value(
    name: &str,
    from_env: Option<&str>,
    file: Option<&Path>,
    on_command_line: bool,
) -> Result<SecretString> {
    if on_command_line {
        return Err(Error::InvalidArgument(format!(
            "secret values never come from the command line, where `ps` and the shell history show them; give the value of {name} with --value-from-env VAR, --value-file PATH, on standard input (`printf %s \"$VALUE\" | kvrun secret set {name}`), or at the prompt"
        )));
    }
    if let Some(var) = from_env {
        return std::env::var(var).map(SecretString::new).map_err(|_| {
            Error::InvalidArgument(format!(
                "environment variable {var} is not set (or not UTF-8)"
            ))
        });
    }
    if let Some(path) = file {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?;
        return String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|_| Error::InvalidArgument(format!("{} is not UTF-8 text", path.display())));
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("value for {name}: "))
            .map(SecretString::new)
            .map_err(|e| Error::io("reading the value from the terminal", e));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::io("reading the value from standard input", e))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(SecretString::new(text))
}

pub(crate) fn secrets_from_json(path: &Path) -> Result<Vec<NewSecret>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("reading standard input", e))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?
    };
    let text = SecretString::new(text);
    // serde's messages can quote the input: report only where it went wrong.
    let object: Map<String, Value> = serde_json::from_str(text.expose()).map_err(|e| {
        Error::InvalidArgument(format!(
            "{} is not a JSON object of names to string values (error at line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    object
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok(NewSecret {
                name,
                value: SecretString::new(value),
                options: SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            }),
            _ => Err(Error::InvalidArgument(format!(
                "the value of {name:?} in {} is not a string",
                path.display()
            ))),
        })
        .collect()
}

pub(crate) fn secrets_from_env(prefix: &str) -> Result<Vec<NewSecret>> {
    if prefix.is_empty() {
        return Err(Error::InvalidArgument(
            "--from-env-prefix must not be empty".into(),
        ));
    }
    let mut secrets: Vec<NewSecret> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let key = k.to_str()?;
            let rest = key.strip_prefix(prefix)?;
            Some(NewSecret {
                name: rest.to_ascii_lowercase().replace('_', "-"),
                value: SecretString::new(v.into_string().ok()?),
                options: SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            })
        })
        .collect();
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    if secrets.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no environment variable starts with {prefix:?}"
        )));
    }
    Ok(secrets)
}
