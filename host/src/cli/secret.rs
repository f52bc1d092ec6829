//! `kvrun secret …`: one vault client session per command.

use super::args::{Global, Output, SecretCommand};
use super::output::{deleted_json, properties_json, report, report_list, version_line};
use super::value_input::{read_value, secrets_from_env, secrets_from_json};
use super::{connect, runtime};
use kvrun::{Error, PropertyUpdate, Result, SecretString, SetOptions};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// `kvrun secret …`: reads a value first (so a prompt is not mixed with output), then runs
/// the command in one client session.
pub(crate) async fn secret(command: SecretCommand, global: &Global) -> Result<ExitCode> {
    if let SecretCommand::Set {
        value_on_command_line,
        ..
    } = &command
    {
        let options = set_options();
        if let Some(real) = value_on_command_line
            .iter()
            .find_map(|word| word.misspelt(&options))
        {
            return Err(Error::InvalidArgument(format!(
                "`kvrun secret set` has no option by that name; did you mean --{real}? Nothing was set"
            )));
        }
    }
    // Read the value before anything starts, so a prompt is not mixed with other output.
    let pending_value = match &command {
        SecretCommand::Set {
            name,
            value_from_env,
            value_file,
            value_on_command_line,
            ..
        } => Some(read_value(
            name,
            value_from_env.as_deref(),
            value_file.as_deref(),
            !value_on_command_line.is_empty(),
        )?),
        _ => None,
    };
    // One vault client (and room for a retry after a trap), each as ClientOptions allows.
    let runtime = runtime(4, kvrun::ClientOptions::new("").max_memory)?;
    let connection = connect(global).await?;
    let outcome = match connection.client(&runtime).await {
        Ok(mut client) => run_secret(&mut client, command, pending_value, global.output).await,
        Err(e) => Err(e),
    };
    connection.close().await;
    outcome
}

/// Runs one secret command on an open client; `value` is the value `set` read beforehand.
pub(crate) async fn run_secret(
    client: &mut kvrun::Client,
    command: SecretCommand,
    value: Option<SecretString>,
    output: Output,
) -> Result<ExitCode> {
    match command {
        SecretCommand::Set {
            name,
            content_type,
            tags,
            ..
        } => {
            let value = value.expect("read before the session opened");
            let options = SetOptions { content_type, tags };
            let p = client.set_secret(&name, &value, &options).await?;
            report(output, properties_json(&p), vec![version_line("set", &p)]);
        }
        SecretCommand::SetMany {
            from_json,
            from_env_prefix,
        } => return set_many(client, from_json, from_env_prefix, output).await,
        SecretCommand::Get { name, version } => {
            let secret = client.get_secret(&name, version.as_deref()).await?;
            let mut object = properties_json(&secret.properties);
            object["value"] = json!(secret.value.expose());
            report(output, object, vec![secret.value.expose().to_string()]);
        }
        SecretCommand::GetMany { names } => {
            let values = client.get_secrets(&names).await?;
            let object: Map<String, Value> = names
                .into_iter()
                .zip(values)
                .map(|(n, v)| (n, v.map_or(Value::Null, |v| json!(v.expose()))))
                .collect();
            let object = Value::Object(object);
            let text = serde_json::to_string_pretty(&object).expect("JSON values print");
            report(output, object, vec![text]);
        }
        SecretCommand::List => report_list(output, &client.list_secrets().await?, false),
        SecretCommand::Versions { name } => {
            report_list(output, &client.list_secret_versions(&name).await?, true)
        }
        SecretCommand::Delete { name } => {
            let d = client.delete_secret(&name).await?;
            let line = format!("deleted {}", d.properties.name);
            report(output, deleted_json(&d), vec![line]);
        }
        SecretCommand::SetAttributes {
            name,
            version,
            enabled,
            content_type,
            tags,
            expires,
            not_before,
        } => {
            let update = PropertyUpdate {
                enabled,
                content_type,
                tags: (!tags.is_empty()).then_some(tags),
                not_before,
                expires,
            };
            let p = client
                .update_secret_properties(&name, version.as_deref(), &update)
                .await?;
            report(
                output,
                properties_json(&p),
                vec![version_line("updated", &p)],
            );
        }
        SecretCommand::ShowDeleted { name } => {
            let d = client.get_deleted_secret(&name).await?;
            let line = format!(
                "{}\tdeleted {}\tpurge after {}",
                d.properties.name,
                d.deleted_date.unwrap_or(0),
                d.scheduled_purge_date.unwrap_or(0)
            );
            report(output, deleted_json(&d), vec![line]);
        }
        SecretCommand::ListDeleted => {
            let deleted = client.list_deleted_secrets().await?;
            let names = deleted.iter().map(|d| d.properties.name.clone()).collect();
            let object = Value::Array(deleted.iter().map(deleted_json).collect());
            report(output, object, names);
        }
        SecretCommand::Recover { name } => {
            let p = client.recover_deleted_secret(&name).await?;
            report(
                output,
                properties_json(&p),
                vec![format!("recovered {}", p.name)],
            );
        }
        SecretCommand::Purge { name } => {
            client.purge_deleted_secret(&name).await?;
            let line = format!("purged {name}");
            report(output, json!({ "name": name, "purged": true }), vec![line]);
        }
        SecretCommand::Backup { name, file } => {
            let blob = client.backup_secret(&name).await?;
            kvrun::private_files::write(&file, blob.as_bytes(), 0o600, "the backup file")?;
            let line = format!("backed up {name} to {}", file.display());
            report(output, json!({ "name": name, "file": file }), vec![line]);
        }
        SecretCommand::Restore { file } => {
            let blob = std::fs::read_to_string(&file)
                .map_err(|e| Error::io(format!("could not read {}", file.display()), e))?;
            let p = client.restore_secret(blob.trim()).await?;
            report(
                output,
                properties_json(&p),
                vec![format!("restored {}", p.name)],
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `secret set-many`: each secret reports its own outcome; any failure makes the status 1.
async fn set_many(
    client: &mut kvrun::Client,
    from_json: Option<PathBuf>,
    from_env_prefix: Option<String>,
    output: Output,
) -> Result<ExitCode> {
    let secrets = match (from_json, from_env_prefix) {
        (Some(path), _) => secrets_from_json(&path)?,
        (None, Some(prefix)) => secrets_from_env(&prefix)?,
        (None, None) => unreachable!("clap requires one source"),
    };
    let outcomes = client.set_secrets(&secrets).await?;
    let (mut object, mut text, mut failed) = (Map::new(), Vec::new(), 0);
    for (secret, outcome) in secrets.iter().zip(outcomes) {
        match outcome {
            Ok(p) => {
                text.push(version_line("set", &p));
                object.insert(secret.name.clone(), properties_json(&p));
            }
            Err(e) => {
                failed += 1;
                if output == Output::Text {
                    eprintln!("kvrun: {}: {e}", secret.name);
                }
                object.insert(secret.name.clone(), json!({ "error": e.to_string() }));
            }
        }
    }
    report(output, Value::Object(object), text);
    if failed > 0 {
        eprintln!("kvrun: {failed} of {} secrets were not set", secrets.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The long options `kvrun secret set` takes, its own and the global ones.
fn set_options() -> Vec<String> {
    use clap::CommandFactory;
    let root = super::args::Cli::command();
    let set = root
        .find_subcommand("secret")
        .and_then(|secret| secret.find_subcommand("set"))
        .map(|set| {
            set.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let global = root
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string));
    set.into_iter().chain(global).collect()
}
