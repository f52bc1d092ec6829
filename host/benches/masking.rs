//! Cost of masking: `cargo bench -p kvrun --bench masking`.
//!
//! 64 MiB of log-like text (JSON lines, URLs, hex and base64 noise), one run, best of three:
//!
//! - **one short value** in it every 400 lines in a random escape (JSON, HTML, percent, hex),
//!   masked in 4 KiB writes;
//! - **50 values of 1,024 characters** granted (a run's stdout and stderr share one
//!   [`MaskValues`]), one of them printed every 400 lines, whole, percent-encoded, as MIME
//!   base64 or as colon-separated hex, masked in 64 KiB writes;
//! - **reading 50 values** of 1,024 characters against 50 of 24 characters: the time from the
//!   first value added to the last write masked for all of them (each value added, then a
//!   line written to both streams, as a run that prints after each read), and the peak
//!   resident memory it added (measured first, before the texts are made); and 1,000 values
//!   in one batch, as one `get-secrets` call adds them;
//! - **a structured secret** (a service principal's JSON with a client secret, a private key's
//!   password and a connection string): finding its parts ([`secret_parts`]), and 64 MiB of
//!   log lines that print its members one by one, masked in 4 KiB writes for the whole value
//!   alone and for the value with its parts, as a run that reads it is.

use base64::Engine as _;
use kvrun::masking::{secret_parts, MaskValues, Masker};
use std::time::{Duration, Instant};

const SHORT: &str = "S3cr3t&Pa<ss>+\"q'/~ x";
const TOTAL: usize = 64 << 20;

/// A value of `chars` characters, different for each `seed`, with the characters escapes
/// change.
fn value(seed: u64, chars: usize) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789&<>\"'+/~ -";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..chars)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

fn percent(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn log(printed: &[String]) -> Vec<u8> {
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
            out.extend_from_slice(printed[(n / 400) as usize % printed.len()].as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn best_of(runs: usize, mut f: impl FnMut() -> u64) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let started = Instant::now();
        found = f();
        best = best.min(started.elapsed());
    }
    (best, found)
}

fn mask(text: &[u8], write: usize, values: &[String]) -> u64 {
    let shared = MaskValues::new();
    for v in values {
        shared.add(v.as_bytes());
    }
    let mut masker = Masker::of(&shared);
    let mut out = Vec::with_capacity(write * 2);
    for chunk in text.chunks(write) {
        out.clear();
        masker.write(chunk, &mut out);
    }
    masker.finish(&mut out);
    masker.masks()
}

/// Peak resident memory of this process so far, in KiB (`VmHWM`).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Adds `values` one by one to a run's shared values, writing a line to each stream after
/// each; the time it took and the growth of the peak resident memory (MiB).
fn reading(values: &[String]) -> (Duration, f64) {
    let before = peak_kib();
    let started = Instant::now();
    let shared = MaskValues::new();
    let mut streams = [Masker::of(&shared), Masker::of(&shared)];
    let mut out = Vec::new();
    for v in values {
        shared.add(v.as_bytes());
        for stream in &mut streams {
            stream.write(b"read one more value\n", &mut out);
        }
    }
    let elapsed = started.elapsed();
    (elapsed, (peak_kib().saturating_sub(before)) as f64 / 1024.0)
}

/// Adds `values` in one batch (a `get-secrets` call) and writes a line: the time and the
/// growth of the peak resident memory (MiB).
fn reading_batch(values: &[String]) -> (Duration, f64) {
    let before = peak_kib();
    let started = Instant::now();
    let shared = MaskValues::new();
    let mut masker = Masker::of(&shared);
    shared.add_all(values.iter().map(|v| v.as_bytes()));
    masker.write(b"read them all\n", &mut Vec::new());
    (
        started.elapsed(),
        (peak_kib().saturating_sub(before)) as f64 / 1024.0,
    )
}

fn main() {
    // First, before the large texts raise the peak.
    let long: Vec<String> = (0..50).map(|i| value(i + 1, 1024)).collect();
    let short: Vec<String> = (0..50).map(|i| value(i + 100, 24)).collect();
    let (short_time, short_mib) = reading(&short);
    let (long_time, long_mib) = reading(&long);
    println!("| reading 50 values (two streams) | time | peak memory added |");
    println!("|---|---|---|");
    println!(
        "| of 24 characters | {:.1} ms | {short_mib:.1} MiB |",
        short_time.as_secs_f64() * 1e3
    );
    println!(
        "| of 1,024 characters | {:.1} ms | {long_mib:.1} MiB |",
        long_time.as_secs_f64() * 1e3
    );
    let batch: Vec<String> = (0..1000).map(|i| value(i + 1000, 24)).collect();
    let (batch_time, batch_mib) = reading_batch(&batch);
    println!(
        "| 1,000 of 24 characters in one batch | {:.1} ms | {batch_mib:.1} MiB |",
        batch_time.as_secs_f64() * 1e3
    );
    println!();
    let mib = TOTAL as f64 / (1 << 20) as f64;
    println!("masking {mib:.0} MiB of log lines, best of 3");
    println!("| case | writes | throughput | masks |");
    println!("|---|---|---|---|");
    let short_text = log(&[
        SHORT.to_string(),
        "S3cr3t\\u0026Pa\\u003css\\u003e+\\\"q'/~ x".to_string(),
        "S3cr3t&amp;Pa&lt;ss&gt;+&#34;q&#39;/~ x".to_string(),
        "S3cr3t%26Pa%3Css%3E%2B%22q'%2F~%20x".to_string(),
        hex::encode(SHORT),
    ]);
    let (took, masks) = best_of(3, || mask(&short_text, 4096, &[SHORT.to_string()]));
    println!(
        "| one value of {} characters | 4 KiB | {:.0} MiB/s | {masks} |",
        SHORT.len(),
        mib / took.as_secs_f64()
    );
    let printed: Vec<String> = long
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 4 {
            0 => v.clone(),
            1 => percent(v),
            2 => base64::engine::general_purpose::STANDARD
                .encode(v)
                .as_bytes()
                .chunks(76)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => hex::encode(v)
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(":"),
        })
        .collect();
    let long_text = log(&printed);
    let (took, masks) = best_of(3, || mask(&long_text, 64 << 10, &long));
    println!(
        "| 50 values of 1,024 characters | 64 KiB | {:.0} MiB/s | {masks} |",
        mib / took.as_secs_f64()
    );
    structured();
}

/// What masking a structured secret by its parts adds (see the module docs).
fn structured() {
    const SECRET: &str = r#"{"tenant":"72f988bf-86f1-41af-91ab-2d7cd011db47","client_id":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","client_secret":"Zq8~v1.Nw-fk3LmPq0aTr7Xy2Bc9DeFgHi","certificate":{"thumbprint":"3F2A9C0D1E4B5A67","private_key_password":"c3rt-Pa55-w0rd-81qz","password":"c3rt-Pa55-w0rd-81qz"},"connection_string":"Server=tcp:db.internal,1433;Database=experiments;User ID=trainer;Password=Db-Pa55-w0rd-Zq8x;Encrypt=True"}"#;
    const FINDS: u32 = 10_000;
    let (took, found) = best_of(3, || {
        (0..FINDS).map(|_| secret_parts(SECRET).len() as u64).sum()
    });
    let parts: Vec<String> = secret_parts(SECRET)
        .iter()
        .map(|p| p.expose().to_string())
        .collect();
    println!();
    println!(
        "a structured secret of {} bytes: {} parts found in {:.1} µs",
        SECRET.len(),
        found / u64::from(FINDS),
        took.as_secs_f64() * 1e6 / f64::from(FINDS)
    );
    let printed: Vec<String> = parts
        .iter()
        .map(|p| format!("credential: {p}"))
        .chain([SECRET.to_string()])
        .collect();
    let text = log(&printed);
    let whole = [SECRET.to_string()];
    let with_parts: Vec<String> = whole.iter().chain(&parts).cloned().collect();
    let mib = TOTAL as f64 / (1 << 20) as f64;
    println!("| masked for | writes | throughput | masks |");
    println!("|---|---|---|---|");
    for (label, values) in [
        ("the whole value", &whole[..]),
        ("the value and its parts", &with_parts[..]),
    ] {
        let (took, masks) = best_of(3, || mask(&text, 4096, values));
        println!(
            "| {label} | 4 KiB | {:.0} MiB/s | {masks} |",
            mib / took.as_secs_f64()
        );
    }
}
