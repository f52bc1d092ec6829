//! The placeholder a run holds instead of a value, and how the host finds it in a request.
//! Pure logic, no I/O.
//!
//! A handle is [`PREFIX`] followed by [`RANDOM_LEN`] characters of `a-z2-7` (130 random
//! bits, from the operating system's generator), new for every run and name. It has no
//! character that URL, form or header syntax changes, so code passes it on as it is; the
//! fixed prefix makes any handle, also another run's, recognisable; the random part is long
//! enough that every [`MIN_FRAGMENT`]-character piece of it is unique with certainty in
//! practice (40 bits), so a handle cut in up to three pieces still shows.
//!
//! [`Scanner::scan`] looks at one text (a header value, the URL, a body) and reports:
//!
//! | found | how | result |
//! |---|---|---|
//! | a whole handle of this run, any letter case | literal | [`Scan::literals`]: substitutable where bound |
//! | a piece of ≥ [`MIN_FRAGMENT`] random characters, not inside a whole handle (a handle split across headers, URL and body) | any letter case | stray |
//! | a handle percent-encoded (any mix of encoded and plain characters, up to two rounds), base64 (standard or URL-safe, at any byte alignment), hex | decoded, or matched in encoded form | stray |
//! | [`PREFIX`] not followed by one of this run's handles (another run's handle, a guessed one) | any letter case, also percent-encoded or base64 | stray, with no name |
//!
//! Reversed, compressed or encrypted handles, or pieces shorter than [`MIN_FRAGMENT`], are
//! not recognised; they carry no value either (a handle is useless outside its run).

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use std::ops::Range;

/// What every handle begins with.
pub const PREFIX: &str = "kvrun-handle-";

/// The random characters after the prefix.
pub const RANDOM_LEN: usize = 26;

/// The shortest piece of a handle's random part that is recognised on its own.
pub const MIN_FRAGMENT: usize = 8;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new handle: [`PREFIX`] and [`RANDOM_LEN`] random characters of `a-z2-7`.
pub fn new_handle() -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let random: String = (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{PREFIX}{random}")
}

/// Why a finding cannot be substituted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrayKind {
    /// A piece of a handle, outside any whole one.
    Fragment,
    /// A percent-, base64- or hex-encoded handle.
    Encoded,
    /// Something that looks like a handle but is not one of this run's.
    Unknown,
}

/// A finding that cannot be substituted: the handle it belongs to, if known, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stray {
    /// The index of the run's handle (as given to [`Scanner::new`]), if it is one of them.
    pub handle: Option<usize>,
    /// What was found.
    pub kind: StrayKind,
}

/// What one text holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Whole handles, as byte ranges of the text, with the handle's index.
    pub literals: Vec<(Range<usize>, usize)>,
    /// Everything else that is or belongs to a handle.
    pub strays: Vec<Stray>,
}

impl Scan {
    /// Whether the text holds nothing of any handle.
    pub fn is_clean(&self) -> bool {
        self.literals.is_empty() && self.strays.is_empty()
    }
}

#[derive(Clone, Copy)]
enum Pattern {
    Whole(usize),
    Piece(usize),
    Encoded(usize),
    Prefix,
}

/// Finds a run's handles in text (see the module docs).
pub struct Scanner {
    randoms: Vec<Vec<u8>>,
    any_case: AhoCorasick,
    any_case_meaning: Vec<Pattern>,
    exact: AhoCorasick,
    exact_meaning: Vec<Pattern>,
}

impl Scanner {
    /// A scanner for these handles (each made by [`new_handle`]); also finds other handles.
    pub fn new<S: AsRef<str>>(handles: &[S]) -> Scanner {
        let mut any_case: Vec<Vec<u8>> =
            vec![PREFIX.as_bytes().to_vec(), hex::encode(PREFIX).into_bytes()];
        let mut any_case_meaning = vec![Pattern::Prefix, Pattern::Prefix];
        let mut exact: Vec<Vec<u8>> = base64_cores(PREFIX.as_bytes());
        let mut exact_meaning = vec![Pattern::Prefix; exact.len()];
        let mut randoms = Vec::new();
        for (i, handle) in handles.iter().enumerate() {
            let handle = handle.as_ref().as_bytes();
            randoms.push(handle[PREFIX.len().min(handle.len())..].to_ascii_lowercase());
            any_case.push(handle.to_vec());
            any_case_meaning.push(Pattern::Whole(i));
            any_case.push(hex::encode(handle).into_bytes());
            any_case_meaning.push(Pattern::Encoded(i));
            let random = &handle[PREFIX.len().min(handle.len())..];
            for piece in random.windows(MIN_FRAGMENT) {
                any_case.push(piece.to_vec());
                any_case_meaning.push(Pattern::Piece(i));
            }
            for core in base64_cores(handle) {
                exact.push(core);
                exact_meaning.push(Pattern::Encoded(i));
            }
        }
        let build = |patterns: &[Vec<u8>], any_case: bool| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(any_case)
                .build(patterns)
                .expect("byte patterns always build")
        };
        Scanner {
            randoms,
            any_case: build(&any_case, true),
            any_case_meaning,
            exact: build(&exact, false),
            exact_meaning,
        }
    }

    /// What `text` holds of any handle.
    pub fn scan(&self, text: &[u8]) -> Scan {
        let mut scan = Scan::default();
        let literals = self.find(text, &mut scan.strays);
        let mut decoded: std::borrow::Cow<[u8]> = text.into();
        for _ in 0..2 {
            if !decoded.contains(&b'%') {
                break;
            }
            let next: Vec<u8> = percent_encoding::percent_decode(&decoded).collect();
            if next[..] == decoded[..] {
                break;
            }
            decoded = next.into();
            let mut strays = Vec::new();
            let found = self.find(&decoded, &mut strays);
            for (_, handle) in &found {
                let plain = literals.iter().filter(|(_, h)| h == handle).count();
                let now = found.iter().filter(|(_, h)| h == handle).count();
                if now > plain {
                    strays.push(Stray {
                        handle: Some(*handle),
                        kind: StrayKind::Encoded,
                    });
                }
            }
            scan.strays.extend(strays.into_iter().map(|s| match s.kind {
                StrayKind::Unknown => s,
                _ => Stray {
                    kind: StrayKind::Encoded,
                    ..s
                },
            }));
        }
        scan.literals = literals;
        scan.strays.dedup();
        scan
    }

    /// Whole handles in `text`; everything else of a handle goes to `strays`.
    fn find(&self, text: &[u8], strays: &mut Vec<Stray>) -> Vec<(Range<usize>, usize)> {
        let mut wholes = Vec::new();
        let mut others = Vec::new();
        for m in self.any_case.find_overlapping_iter(text) {
            match self.any_case_meaning[m.pattern().as_usize()] {
                Pattern::Whole(i) => wholes.push((m.range(), i)),
                other => others.push((m.range(), other)),
            }
        }
        for m in self.exact.find_overlapping_iter(text) {
            others.push((m.range(), self.exact_meaning[m.pattern().as_usize()]));
        }
        // A prefix or piece inside a whole or encoded handle of this run is part of it.
        let known: Vec<Range<usize>> = wholes
            .iter()
            .map(|(r, _)| r.clone())
            .chain(
                others
                    .iter()
                    .filter(|(_, p)| matches!(p, Pattern::Encoded(_)))
                    .map(|(r, _)| r.clone()),
            )
            .collect();
        for (range, pattern) in others {
            let inside =
                |r: &Range<usize>| r.start <= range.start && range.end <= r.end && *r != range;
            if known.iter().any(inside) || wholes.iter().any(|(w, _)| *w == range) {
                continue;
            }
            strays.push(match pattern {
                Pattern::Piece(i) => Stray {
                    handle: Some(i),
                    kind: StrayKind::Fragment,
                },
                Pattern::Encoded(i) => Stray {
                    handle: Some(i),
                    kind: StrayKind::Encoded,
                },
                Pattern::Prefix | Pattern::Whole(_) => self.after_prefix(&text[range.end..]),
            });
        }
        wholes
    }

    /// What a prefix that does not begin a whole handle of this run is: the first piece of
    /// one of the run's handles, when what follows begins its random part (or nothing
    /// follows); else another run's or a made-up handle.
    fn after_prefix(&self, rest: &[u8]) -> Stray {
        let random: Vec<u8> = rest
            .iter()
            .take(RANDOM_LEN)
            .take_while(|b| ALPHABET.contains(&b.to_ascii_lowercase()))
            .map(u8::to_ascii_lowercase)
            .collect();
        let handle = self
            .randoms
            .iter()
            .position(|r| !random.is_empty() && r.starts_with(&random));
        match handle {
            Some(i) => Stray {
                handle: Some(i),
                kind: StrayKind::Fragment,
            },
            None if random.is_empty() && !self.randoms.is_empty() => Stray {
                handle: None,
                kind: StrayKind::Fragment,
            },
            None => Stray {
                handle: None,
                kind: StrayKind::Unknown,
            },
        }
    }
}

/// The base64 characters of `bytes` that depend on `bytes` alone, at each byte alignment,
/// standard and URL-safe.
fn base64_cores(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut cores = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3 {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(bytes);
            let encoded = engine.encode(&padded).into_bytes();
            let skip = [0, 2, 3][offset];
            let cut = usize::from(padded.len() % 3 != 0);
            let core = encoded[skip..encoded.len() - cut].to_vec();
            if !cores.contains(&core) {
                cores.push(core);
            }
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(scan: &Scan) -> Vec<StrayKind> {
        scan.strays.iter().map(|s| s.kind).collect()
    }

    #[test]
    fn handles_are_random_and_well_formed() {
        let (a, b) = (new_handle(), new_handle());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + RANDOM_LEN);
        assert!(a[PREFIX.len()..].bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn whole_handles_in_any_case_are_literals() {
        let h = new_handle();
        let scanner = Scanner::new(&[&h]);
        let text = format!("Bearer {h} and {}", h.to_uppercase());
        let scan = scanner.scan(text.as_bytes());
        assert_eq!(scan.literals.len(), 2);
        assert_eq!(&text[scan.literals[0].0.clone()], h);
        assert!(scan.strays.is_empty(), "{scan:?}");
        assert!(scanner.scan(b"nothing to see").is_clean());
    }

    #[test]
    fn split_encoded_and_foreign_handles_are_strays() {
        let h = new_handle();
        let other = new_handle();
        let scanner = Scanner::new(&[&h]);
        let (first, second) = h.split_at(20);
        assert_eq!(
            kinds(&scanner.scan(second.as_bytes())),
            [StrayKind::Fragment]
        );
        assert_eq!(
            scanner.scan(first.as_bytes()).strays,
            [Stray {
                handle: Some(0),
                kind: StrayKind::Fragment
            }]
        );
        let thirds = [
            &h[..PREFIX.len() + 9],
            &h[PREFIX.len() + 9..PREFIX.len() + 18],
            &h[PREFIX.len() + 18..],
        ];
        assert!(
            thirds
                .iter()
                .all(|t| !scanner.scan(t.as_bytes()).is_clean()),
            "{thirds:?}"
        );
        let percent: String = h.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(
            kinds(&scanner.scan(percent.as_bytes())),
            [StrayKind::Encoded]
        );
        let twice = percent.replace('%', "%25");
        assert_eq!(kinds(&scanner.scan(twice.as_bytes())), [StrayKind::Encoded]);
        let mixed = format!("{}%{:02X}{}", &h[..15], h.as_bytes()[15], &h[16..]);
        let scan = scanner.scan(mixed.as_bytes());
        assert!(scan.literals.is_empty() && kinds(&scan).contains(&StrayKind::Encoded));
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            for before in ["", "u", "us", "user:"] {
                let text = engine.encode(format!("{before}{h}"));
                let scan = scanner.scan(text.as_bytes());
                assert!(
                    scan.strays
                        .iter()
                        .any(|s| s.handle == Some(0) && s.kind == StrayKind::Encoded),
                    "{before}: {scan:?}"
                );
            }
        }
        assert_eq!(
            kinds(&scanner.scan(hex::encode(&h).to_uppercase().as_bytes())),
            [StrayKind::Encoded]
        );
        let foreign = scanner.scan(other.as_bytes());
        assert!(foreign.literals.is_empty());
        assert_eq!(
            foreign.strays,
            [Stray {
                handle: None,
                kind: StrayKind::Unknown
            }]
        );
        let foreign64 = base64::engine::general_purpose::STANDARD.encode(&other);
        assert!(!scanner.scan(foreign64.as_bytes()).is_clean());
    }
}
