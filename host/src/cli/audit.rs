//! `kvrun audit verify|match`, and where the audit key comes from for every command.

use super::args::{AuditCommand, AuditKeyOption, Global};
use kvrun::audit::verify::{verify, Verdict};
use kvrun::audit::AuditKey;
use kvrun::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// `kvrun audit verify` exits with this when a run's records were tampered with.
const TAMPERED: u8 = 10;

/// `kvrun audit verify` exits with this when a run's records stop before its last one.
const INCOMPLETE: u8 = 11;

/// The audit key and its file: the one named (`--audit-key`, `KVRUN_AUDIT_KEY`), else the
/// data directory's, made on first use.
pub(crate) fn audit_key(option: &AuditKeyOption, global: &Global) -> Result<(AuditKey, PathBuf)> {
    AuditKey::resolve(option.path.as_deref(), global.data_dir.as_deref())
}

/// Runs one `kvrun audit` command.
pub(crate) fn audit(command: AuditCommand, global: &Global) -> Result<ExitCode> {
    match command {
        AuditCommand::Verify { file, key } => {
            let (key, _) = audit_key(&key, global)?;
            let text = read(&file)?;
            let verdicts = verify(&key, text.lines());
            if verdicts.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{} holds no audit record (a JSON line with a \"run\")",
                    file.display()
                )));
            }
            for verdict in &verdicts {
                println!("{verdict}");
            }
            let any = |wanted: fn(&Verdict) -> bool| verdicts.iter().any(|v| wanted(&v.verdict));
            let status = if any(|v| matches!(v, Verdict::Tampered { .. })) {
                TAMPERED
            } else if any(|v| matches!(v, Verdict::Incomplete { .. })) {
                INCOMPLETE
            } else {
                0
            };
            Ok(ExitCode::from(status))
        }
        AuditCommand::Match { files, key } => {
            let (key, _) = audit_key(&key, global)?;
            let value = super::value_input::read_value("the value to match", None, None, false)?;
            let fingerprint = key.fingerprint(value.expose().as_bytes());
            let mut found = 0;
            for file in &files {
                for line in read(file)?.lines() {
                    let record = serde_json::from_str::<serde_json::Value>(line);
                    if record.is_ok_and(|r| r["fingerprint"] == fingerprint.as_str()) {
                        println!("{line}");
                        found += 1;
                    }
                }
            }
            if found == 0 {
                eprintln!("kvrun: no record in these files handed out or used that value (under this audit key)");
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(file: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(file)
        .map_err(|e| Error::io(format!("could not read {}", file.display()), e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
