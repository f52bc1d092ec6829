//! Throughput of output and answer masking: `cargo bench -p kvrun --bench masking`.
//!
//! 64 MiB of log-like text (JSON lines, URLs, hex and base64 noise) with one value in it every
//! 64 KiB in a random escape, masked in 4 KiB writes, in one run, best of five:
//!
//! - the fixed forms alone: one Aho-Corasick automaton over every fixed encoded form, the
//!   matcher masking used before mixture patterns (its search only, no output);
//! - [`kvrun::masking::Masker`] as it is now: the same automaton plus the value's mixture
//!   patterns, holding back and writing the masked output.

use aho_corasick::{AhoCorasick, MatchKind};
use kvrun::masking::Masker;
use std::time::{Duration, Instant};

const VALUE: &str = "S3cr3t&Pa<ss>+\"q'/~ x";
const TOTAL: usize = 64 << 20;
const WRITE: usize = 4096;

fn text() -> Vec<u8> {
    let escapes = [
        VALUE.to_string(),
        "S3cr3t\\u0026Pa\\u003css\\u003e+\\\"q'/~ x".to_string(),
        "S3cr3t&amp;Pa&lt;ss&gt;+&#34;q&#39;/~ x".to_string(),
        "S3cr3t%26Pa%3Css%3E%2B%22q'%2F~%20x".to_string(),
        hex::encode(VALUE),
    ];
    let mut out = Vec::with_capacity(TOTAL + 4096);
    let mut n = 0u64;
    while out.len() < TOTAL {
        n += 1;
        let line = format!(
            "{{\"step\":{n},\"loss\":0.{:06},\"url\":\"https://tracker.internal/api/2.0/runs/{n:x}?a=b%20c\",\"blob\":\"{:016x}{:016x}\",\"note\":\"aGVsbG8gd29ybGQ=\"}}\n",
            n * 7919 % 1_000_000,
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        );
        out.extend_from_slice(line.as_bytes());
        if n.is_multiple_of(400) {
            out.extend_from_slice(escapes[(n / 400) as usize % escapes.len()].as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        found = f();
        best = best.min(started.elapsed());
    }
    (best, found)
}

fn main() {
    let text = text();
    let forms = kvrun::encoded_forms::forms(VALUE.as_bytes());
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(&forms)
        .unwrap();
    let (fixed, fixed_found) = best_of(5, || {
        text.chunks(WRITE)
            .map(|chunk| automaton.find_overlapping_iter(chunk).count())
            .sum()
    });
    let (masker, masks) = best_of(5, || {
        let mut masker = Masker::new();
        masker.add(VALUE.as_bytes());
        let mut out = Vec::with_capacity(WRITE * 2);
        for chunk in text.chunks(WRITE) {
            out.clear();
            masker.write(chunk, &mut out);
        }
        masker.finish(&mut out);
        masker.masks() as usize
    });
    let mib = text.len() as f64 / (1 << 20) as f64;
    println!("masking {mib:.0} MiB in {WRITE}-byte writes, one value, best of 5");
    println!(
        "| fixed forms only (Aho-Corasick search, as before) | {:.0} MiB/s | {fixed_found} matches |",
        mib / fixed.as_secs_f64()
    );
    println!(
        "| Masker now (fixed forms + mixture patterns, masked output) | {:.0} MiB/s | {masks} masks |",
        mib / masker.as_secs_f64()
    );
}
