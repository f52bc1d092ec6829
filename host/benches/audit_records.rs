//! The cost of one audit record, its write to the `--audit` file included, and how many
//! records the default `--max-audit` budget holds: `cargo bench -p kvrun --bench
//! audit_records`.
//!
//! Records go through a run's `RunAudit` (the code the broker and the handle guard call) to
//! a file opened for append, as `kvrun run --audit FILE` writes them: a `get-secret` that
//! handed out a value (its version and fingerprint), a `use-secret` substitution, and a
//! refused `get-secret` (no value). Each kind is written in blocks, alternating; the median
//! and p99 of the blocks' time per record are reported with the bytes per record.

use kvrun::audit::{AuditKey, AuditLog, HandleTarget, RunAudit, ValueSeen};
use kvrun::policy::Origin;
use kvrun::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BLOCKS: usize = 40;
const PER_BLOCK: usize = 500;

/// One kind of record.
struct Kind {
    name: &'static str,
    write: Box<dyn Fn(&RunAudit)>,
    per_record: Vec<Duration>,
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let key = Arc::new(AuditKey::ephemeral());
    let log = Arc::new(AuditLog::to_file(&path, "3f2a9c0d1e4b5a67", key).unwrap());
    let audit = RunAudit::new(log, u64::MAX);
    let value = SecretString::from("postgres-pa55-Zq8-0123456789abcdef");
    let version = "4b575117bf5ac1c95bb69bb12b4dba5d".to_string();
    let origin = Origin::parse("https://mlflow.internal").unwrap();
    let mut kinds = [
        Kind {
            name: "get-secret, value handed out",
            write: {
                let (value, version) = (value.clone(), version.clone());
                Box::new(move |audit: &RunAudit| {
                    let seen = ValueSeen {
                        value: &value,
                        version: Some(&version),
                    };
                    audit
                        .record("get-secret", "db-password", true, "ok", Some(&seen))
                        .unwrap()
                })
            },
            per_record: Vec::new(),
        },
        Kind {
            name: "use-secret, substituted",
            write: Box::new(move |audit: &RunAudit| {
                let target = HandleTarget {
                    origin: &origin,
                    method: "POST",
                    path_prefix: Some("/api/2.0/mlflow"),
                };
                let seen = ValueSeen {
                    value: &value,
                    version: Some(&version),
                };
                audit
                    .record_use(Some("mlflow-password"), &target, "substituted", Some(&seen))
                    .unwrap()
            }),
            per_record: Vec::new(),
        },
        Kind {
            name: "get-secret, refused",
            write: Box::new(|audit: &RunAudit| {
                audit
                    .record(
                        "get-secret",
                        "other-secret",
                        false,
                        "denied: not granted",
                        None,
                    )
                    .unwrap()
            }),
            per_record: Vec::new(),
        },
    ];
    let mut bytes = [0u64; 3];
    for _ in 0..BLOCKS {
        for (kind, bytes) in kinds.iter_mut().zip(&mut bytes) {
            let before = std::fs::metadata(&path).unwrap().len();
            let started = Instant::now();
            for _ in 0..PER_BLOCK {
                (kind.write)(&audit);
            }
            kind.per_record.push(started.elapsed() / PER_BLOCK as u32);
            *bytes = (std::fs::metadata(&path).unwrap().len() - before) / PER_BLOCK as u64;
        }
    }
    let budget = kvrun::sandbox::DEFAULT_MAX_AUDIT - kvrun::audit::END_RECORD_ROOM;
    println!(
        "{:<30} {:>10} {:>10} {:>8} {:>22}",
        "record", "median", "p99", "bytes", "records in 4 MiB"
    );
    for (kind, bytes) in kinds.iter_mut().zip(bytes) {
        kind.per_record.sort();
        let at = |q: f64| kind.per_record[((kind.per_record.len() - 1) as f64 * q) as usize];
        println!(
            "{:<30} {:>8.2}µs {:>8.2}µs {:>8} {:>22}",
            kind.name,
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            bytes,
            budget / bytes
        );
    }
}
