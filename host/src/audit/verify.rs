//! `kvrun audit verify`: whether each run's records in a log are whole, tampered with or
//! incomplete. Pure logic over lines and the audit key.
//!
//! A line is a record when it is a JSON object with a `run`; any other line (a run's own
//! output, when the records went to a shared stderr) is not looked at. Each run's records
//! are checked in file order, on their own (runs appending to one file interleave):
//!
//! | found | verdict |
//! |---|---|
//! | every record's mac verifies, `seq` 0, 1, 2, … each naming the mac before it (`prev`), the last a `run-end` | whole |
//! | a record whose mac does not verify, in the place the chain expects | record N changed |
//! | a record whose mac does not verify anywhere else, or without a mac | a forged record |
//! | a genuine record after a gap in `seq` that no genuine record fills anywhere | record(s) N… removed |
//! | a genuine record after a gap that a genuine record later in the file fills | record N reordered |
//! | a genuine record whose `seq` came already, or a record after `run-end` | record N reordered or repeated |
//! | a genuine chain without its `run-end` (the run was killed, or the file cut) | incomplete after record N |
//!
//! Only the first problem of a run is reported, with its line number (1-based). Whole runs
//! removed from a shared file leave nothing to check: they are found only by their absence
//! (compare the runs' ids with the runner's own list).

use super::AuditKey;

/// What became of one run's records.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is there and genuine; `records` of them.
    Whole {
        /// How many records the run has.
        records: u64,
    },
    /// A record was removed, changed, reordered or forged: the first problem found.
    Tampered {
        /// What is wrong.
        problem: String,
        /// The line it was found at (1-based).
        line: usize,
    },
    /// The records are genuine and in order but stop before the run's last record.
    Incomplete {
        /// The `seq` of the last record there is.
        after: u64,
        /// Its line (1-based).
        line: usize,
    },
}

/// One run's verdict.
#[derive(Debug, PartialEq, Eq)]
pub struct RunVerdict {
    /// The run's id.
    pub run: String,
    /// What became of its records.
    pub verdict: Verdict,
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Whole { records } => write!(f, "run {}: whole, {records} records", self.run),
            Verdict::Tampered { problem, line } => {
                write!(f, "run {}: tampered: {problem} (line {line})", self.run)
            }
            Verdict::Incomplete { after, line } => write!(
                f,
                "run {}: incomplete after record {after} (line {line}): its log stops before its last record (the run was killed, or the file cut)",
                self.run
            ),
        }
    }
}

/// How far one run's chain has been checked.
struct Chain {
    run: String,
    next: u64,
    prev: String,
    last_line: usize,
    ended: bool,
    problem: Option<(String, usize)>,
}

/// One line that is a record.
struct Record {
    number: usize,
    fields: serde_json::Map<String, serde_json::Value>,
    run: String,
    seq: Option<u64>,
    genuine: bool,
}

/// Checks every run's records in `lines` under `key`, in the order the runs first appear.
pub fn verify<'a>(key: &AuditKey, lines: impl IntoIterator<Item = &'a str>) -> Vec<RunVerdict> {
    let records: Vec<Record> = lines
        .into_iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
                return None;
            };
            let run = fields.get("run")?.as_str()?.to_string();
            Some(Record {
                number: index + 1,
                seq: fields.get("seq").and_then(|s| s.as_u64()),
                genuine: genuine(key, line, &fields),
                fields,
                run,
            })
        })
        .collect();
    let genuine_places: std::collections::HashSet<(&str, u64)> = records
        .iter()
        .filter(|r| r.genuine)
        .filter_map(|r| Some((r.run.as_str(), r.seq?)))
        .collect();
    let mut chains: Vec<Chain> = Vec::new();
    for record in &records {
        let at = match chains.iter().position(|c| c.run == record.run) {
            Some(at) => at,
            None => {
                chains.push(Chain {
                    run: record.run.clone(),
                    next: 0,
                    prev: String::new(),
                    last_line: 0,
                    ended: false,
                    problem: None,
                });
                chains.len() - 1
            }
        };
        let chain = &mut chains[at];
        if chain.problem.is_none() {
            let later = |seq: u64| genuine_places.contains(&(record.run.as_str(), seq));
            chain.problem = check(chain, record, later)
                .err()
                .map(|p| (p, record.number));
        }
    }
    chains
        .into_iter()
        .map(|chain| RunVerdict {
            verdict: match chain.problem {
                Some((problem, line)) => Verdict::Tampered { problem, line },
                None if chain.ended => Verdict::Whole {
                    records: chain.next,
                },
                None => Verdict::Incomplete {
                    after: chain.next.saturating_sub(1),
                    line: chain.last_line,
                },
            },
            run: chain.run,
        })
        .collect()
}

/// Whether the record's mac is the chain mac of its text up to the mac, under `key`.
fn genuine(
    key: &AuditKey,
    line: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    match (
        fields.get("mac").and_then(|m| m.as_str()),
        line.rfind(",\"mac\":\""),
    ) {
        (Some(mac), Some(cut)) => {
            line[cut..] == format!(",\"mac\":\"{mac}\"}}")
                && key.verify(&line.as_bytes()[..cut], mac)
        }
        _ => false,
    }
}

/// Checks one record against its run's chain and advances it; the problem, if any.
/// `genuine_at(seq)` says whether a genuine record of the run holds that place anywhere in
/// the file (a missing place found elsewhere was reordered, not removed).
fn check(
    chain: &mut Chain,
    record: &Record,
    genuine_at: impl Fn(u64) -> bool,
) -> Result<(), String> {
    let prev = record.fields.get("prev").and_then(|p| p.as_str());
    let in_place =
        record.seq == Some(chain.next) && prev == Some(chain.prev.as_str()) && !chain.ended;
    let Some(seq) = record.seq.filter(|_| record.genuine) else {
        return Err(match (in_place, record.seq) {
            (true, Some(seq)) => format!("record {seq} changed"),
            _ => "a forged record (its mac does not verify under this key)".into(),
        });
    };
    if chain.ended || seq < chain.next || (seq == chain.next && !in_place) {
        return Err(format!("record {seq} reordered or repeated"));
    }
    if seq > chain.next {
        if genuine_at(chain.next) {
            return Err(format!(
                "record {seq} reordered (it comes before record {})",
                chain.next
            ));
        }
        return Err(match (chain.next..seq).find(|&s| genuine_at(s)) {
            Some(found) if found > chain.next => {
                format!("records {} to {} removed", chain.next, found - 1)
            }
            _ if seq - chain.next == 1 => format!("record {} removed", chain.next),
            _ => format!("records {} to {} removed", chain.next, seq - 1),
        });
    }
    chain.next += 1;
    chain.prev = record
        .fields
        .get("mac")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    chain.last_line = record.number;
    chain.ended = record.fields.get("operation").and_then(|o| o.as_str()) == Some("run-end");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, RunAudit, RunStart};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn key() -> Arc<AuditKey> {
        Arc::new(AuditKey::from_bytes(&[9; 32]))
    }

    /// Two runs appending to one file, their records interleaved: a has 4, b has 3.
    fn two_runs() -> Vec<String> {
        let file = Shared::default();
        let audit = |run: &str| {
            RunAudit::new(
                Arc::new(AuditLog::to_writer(Box::new(file.clone()), run, key())),
                1 << 20,
            )
        };
        let (a, b) = (audit("a"), audit("b"));
        let start = RunStart {
            program: "component",
            sha256: "00",
            python: None,
            secrets: &["db-password".to_string()],
            use_secrets: Vec::new(),
        };
        a.start(&start).unwrap();
        b.start(&start).unwrap();
        a.record("get-secret", "db-password", true, "ok", None)
            .unwrap();
        b.record("get-secret", "db-password", true, "ok", None)
            .unwrap();
        a.record("get-secret", "other", false, "denied: not granted", None)
            .unwrap();
        b.end(0, "exited with status 0");
        a.end(1, "exited with status 1");
        let text = String::from_utf8(file.0.lock().unwrap().clone()).unwrap();
        text.lines().map(String::from).collect()
    }

    fn verdicts(lines: &[String]) -> Vec<Verdict> {
        verify(&key(), lines.iter().map(String::as_str))
            .into_iter()
            .map(|v| v.verdict)
            .collect()
    }

    fn tampered(problem: &str, line: usize) -> Verdict {
        Verdict::Tampered {
            problem: problem.into(),
            line,
        }
    }

    #[test]
    fn runs_sharing_a_file_verify_each_on_its_own() {
        let lines = two_runs();
        assert_eq!(
            verdicts(&lines),
            [Verdict::Whole { records: 4 }, Verdict::Whole { records: 3 }]
        );
        let mut with_output = lines.clone();
        with_output.insert(2, "a run's own output line".into());
        with_output.insert(0, "{\"not\":\"a record\"}".into());
        assert_eq!(
            verdicts(&with_output),
            [Verdict::Whole { records: 4 }, Verdict::Whole { records: 3 }]
        );
        let wrong_key = verify(
            &AuditKey::from_bytes(&[8; 32]),
            lines.iter().map(String::as_str),
        );
        assert!(matches!(wrong_key[0].verdict, Verdict::Tampered { .. }));
    }

    #[test]
    fn removed_changed_reordered_and_forged_records_are_named_with_their_line() {
        let lines = two_runs();
        // Lines: 1 a0, 2 b0, 3 a1, 4 b1, 5 a2, 6 b2 (end), 7 a3 (end).
        let mut removed = lines.clone();
        removed.remove(2);
        assert_eq!(verdicts(&removed)[0], tampered("record 1 removed", 4));

        let mut first_removed = lines.clone();
        first_removed.remove(0);
        assert_eq!(verdicts(&first_removed)[1], tampered("record 0 removed", 2));

        let mut changed = lines.clone();
        changed[2] = changed[2].replace("\"outcome\":\"ok\"", "\"outcome\":\"not-found\"");
        assert_eq!(verdicts(&changed)[0], tampered("record 1 changed", 3));

        let mut reordered = lines.clone();
        reordered.swap(2, 4);
        assert_eq!(
            verdicts(&reordered)[0],
            tampered("record 2 reordered (it comes before record 1)", 3)
        );

        let mut repeated = lines.clone();
        repeated.insert(5, lines[2].clone());
        assert_eq!(
            verdicts(&repeated)[0],
            tampered("record 1 reordered or repeated", 6)
        );

        let mut forged = lines.clone();
        forged.insert(
            3,
            "{\"time\":\"t\",\"run\":\"a\",\"seq\":9,\"operation\":\"get-secret\",\"name\":\"x\",\"prev\":\"\",\"mac\":\"00000000000000000000000000000000\"}".into(),
        );
        assert_eq!(
            verdicts(&forged)[0],
            tampered(
                "a forged record (its mac does not verify under this key)",
                4
            )
        );
        let mut unkeyed = lines.clone();
        unkeyed.push("{\"run\":\"b\",\"operation\":\"get-secret\"}".into());
        assert_eq!(
            verdicts(&unkeyed)[1],
            tampered(
                "a forged record (its mac does not verify under this key)",
                8
            )
        );
        let mut after_end = lines.clone();
        after_end.push(lines[1].clone());
        assert_eq!(
            verdicts(&after_end)[1],
            tampered("record 0 reordered or repeated", 8)
        );
    }

    #[test]
    fn a_log_cut_before_a_runs_last_record_is_incomplete_not_tampered() {
        let lines = two_runs();
        let cut: Vec<String> = lines[..5].to_vec();
        assert_eq!(
            verdicts(&cut),
            [
                Verdict::Incomplete { after: 2, line: 5 },
                Verdict::Incomplete { after: 1, line: 4 }
            ]
        );
        let mut mid_line = lines.clone();
        let last = mid_line.pop().unwrap();
        mid_line.push(last[..last.len() / 2].to_string());
        assert_eq!(
            verdicts(&mid_line),
            [
                Verdict::Incomplete { after: 2, line: 5 },
                Verdict::Whole { records: 3 }
            ]
        );
        let shown = verify(&key(), cut.iter().map(String::as_str))[0].to_string();
        assert!(
            shown.starts_with("run a: incomplete after record 2 (line 5)"),
            "{shown}"
        );
    }
}
