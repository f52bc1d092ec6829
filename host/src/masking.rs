//! Streaming masking of secret values in a run's output.
//!
//! A [`Masker`] replaces every occurrence of every registered value, and of its encoded forms
//! ([`crate::encoded_forms`]: JSON-, URL- and XML-escaped in any mixture, base64, hex in any
//! case and with separators, UTF-16, each line of a multi-line value), with `***`, also when a value is split across writes, and when occurrences of several values overlap (the union of
//! the overlapping occurrences becomes one `***`). It holds back the last `longest - 1`
//! bytes of the output seen so far, since they could be the start of a value; they are
//! released as soon as later bytes show they are not, or masked and released by
//! [`Masker::finish`]. Pure logic, no I/O: the caller writes what it is given.
//!
//! Two ends: [`Masker::finish`] also masks a trailing *beginning* of a value (a run's own
//! output cut off while printing a value it was granted); [`Masker::finish_whole`] masks whole
//! forms only. Answers to a run's requests use the second: masking a beginning there would
//! tell a run whether a guess it sent (and the service echoed) begins a value it may not read.

use aho_corasick::{AhoCorasick, MatchKind};

/// What replaces a value.
pub const MASK: &[u8] = b"***";

/// The shortest beginning of a value that [`Masker::finish`] masks at the end of output.
pub const MIN_TRAILING_PREFIX: usize = 3;

/// The masking state of one output stream. Cloning keeps the values and their automaton
/// (cheap: building them is what costs) and the state of the stream so far.
#[derive(Clone, Default)]
pub struct Masker {
    values: Vec<zeroize::Zeroizing<Vec<u8>>>,
    automaton: Option<AhoCorasick>,
    patterns: Vec<regex::bytes::Regex>,
    longest: usize,
    pending: Vec<u8>,
    masked_prefix: usize,
    masks: u64,
}

impl Masker {
    /// A masker with no values yet.
    pub fn new() -> Masker {
        Masker::default()
    }

    /// Adds a value to mask from now on, with its encoded forms (empty values are ignored).
    pub fn add(&mut self, value: &[u8]) {
        if value.is_empty() || self.values.iter().any(|v| v.as_slice() == value) {
            return;
        }
        for form in crate::encoded_forms::forms(value) {
            if !self.values.iter().any(|v| v.as_slice() == form.as_slice()) {
                self.longest = self.longest.max(form.len());
                self.values.push(zeroize::Zeroizing::new(form));
            }
        }
        if let Some((patterns, longest)) = crate::encoded_forms::patterns(value) {
            for pattern in patterns {
                let pattern = zeroize::Zeroizing::new(pattern);
                match regex::bytes::RegexBuilder::new(&pattern)
                    .size_limit(64 << 20)
                    .build()
                {
                    Ok(regex) => self.patterns.push(regex),
                    Err(_) => tracing::warn!("a secret's mixed encodings are masked in their fixed forms only (its pattern is too large)"),
                }
            }
            self.longest = self.longest.max(longest);
        }
        self.automaton = Some(
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(self.values.iter().map(|v| v.as_slice()))
                .expect("byte patterns always build"),
        );
    }

    /// Feeds output; appends what is safe to show to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        let hold = self.longest.saturating_sub(1);
        let safe_end = self.pending.len().saturating_sub(hold);
        self.release(safe_end, out);
    }

    /// Flushes everything held back, masked. A run that stops in the middle of printing a
    /// value leaves a beginning of it at the end of its output: a trailing beginning of a
    /// value (at least [`MIN_TRAILING_PREFIX`] bytes, or the whole value minus one byte) is
    /// masked too.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let cut = self.trailing_prefix_len();
        self.end(cut, out);
    }

    /// Flushes everything held back, masking whole forms only (for answers: see the module
    /// docs).
    pub fn finish_whole(&mut self, out: &mut Vec<u8>) {
        self.end(0, out);
    }

    /// How many times a mask was written so far.
    pub fn masks(&self) -> u64 {
        self.masks
    }

    /// Releases everything but the last `cut` bytes, then masks those.
    fn end(&mut self, cut: usize, out: &mut Vec<u8>) {
        let end = self.pending.len() - cut;
        self.release(end, out);
        if cut > 0 && self.masked_prefix < cut {
            out.extend_from_slice(MASK);
            self.masks += 1;
        }
        zeroize::Zeroize::zeroize(&mut self.pending[..]);
        self.pending.clear();
        self.masked_prefix = 0;
    }

    /// The length of the longest end of the held-back output that begins a value.
    fn trailing_prefix_len(&self) -> usize {
        self.values
            .iter()
            .flat_map(|v| {
                let shortest = MIN_TRAILING_PREFIX.min(v.len().saturating_sub(1)).max(1);
                (shortest..v.len()).filter(|&k| self.pending.ends_with(&v[..k]))
            })
            .max()
            .unwrap_or(0)
    }

    /// Emits `pending[..safe_end]` masked; keeps the rest, remembering how much of it is
    /// already covered by an emitted mask.
    fn release(&mut self, safe_end: usize, out: &mut Vec<u8>) {
        let mut intervals: Vec<(usize, usize)> = Vec::new();
        if self.masked_prefix > 0 {
            intervals.push((0, self.masked_prefix));
        }
        if let Some(automaton) = &self.automaton {
            intervals.extend(
                automaton
                    .find_overlapping_iter(self.pending.as_slice())
                    .filter(|m| m.start() < safe_end)
                    .map(|m| (m.start(), m.end())),
            );
        }
        for pattern in &self.patterns {
            intervals.extend(
                pattern
                    .find_iter(&self.pending)
                    .filter(|m| m.start() < safe_end && !m.is_empty())
                    .map(|m| (m.start(), m.end())),
            );
        }
        intervals.sort_unstable();
        let mut cursor = 0;
        let mut covered_until = self.masked_prefix;
        for (start, end) in intervals {
            if start < cursor {
                cursor = cursor.max(end);
                continue;
            }
            out.extend_from_slice(&self.pending[cursor..start]);
            if start >= covered_until {
                out.extend_from_slice(MASK);
                self.masks += 1;
            }
            cursor = end;
            covered_until = covered_until.max(end);
        }
        if cursor < safe_end {
            out.extend_from_slice(&self.pending[cursor..safe_end]);
            self.masked_prefix = 0;
        } else {
            self.masked_prefix = cursor - safe_end;
        }
        zeroize::Zeroize::zeroize(&mut self.pending[..safe_end]);
        self.pending.drain(..safe_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[&str], chunks: &[&str]) -> String {
        let mut masker = Masker::new();
        for v in values {
            masker.add(v.as_bytes());
        }
        let mut out = Vec::new();
        for chunk in chunks {
            masker.write(chunk.as_bytes(), &mut out);
        }
        masker.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_encoded_forms_also_split_across_writes() {
        use base64::Engine as _;
        let value = "p@ss \"wörd\"\nline-two";
        let printed = [
            serde_json::json!({ "password": value }).to_string(),
            format!("url=https://x/?pw={}", percent(value)),
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("user:{value}"))
            ),
            format!(
                "b64url={}",
                base64::engine::general_purpose::URL_SAFE.encode(format!("ab{value}"))
            ),
            format!("hex={}", hex::encode_upper(value)),
            "only the second line: line-two".to_string(),
        ];
        for text in printed {
            let bytes: Vec<String> = text.chars().map(String::from).collect();
            let chunks: Vec<&str> = bytes.iter().map(String::as_str).collect();
            let shown = run(&[value], &chunks);
            assert!(shown.contains("***"), "{text} -> {shown}");
            for form in crate::encoded_forms::forms(value.as_bytes()) {
                let form = String::from_utf8_lossy(&form).to_string();
                assert!(!shown.contains(&form), "{form} in {shown}");
            }
        }
    }

    fn percent(text: &str) -> String {
        form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    }

    #[test]
    fn masks_whole_values() {
        assert_eq!(run(&["hunter2"], &["password=hunter2\n"]), "password=***\n");
        assert_eq!(run(&["hunter2"], &["no secret here\n"]), "no secret here\n");
        assert_eq!(run(&[], &["nothing to mask"]), "nothing to mask");
        assert_eq!(run(&["x"], &["xxx"]), "*********");
    }

    #[test]
    fn masks_values_split_across_writes() {
        assert_eq!(run(&["hunter2"], &["pw=hun", "ter", "2!"]), "pw=***!");
        let bytes: Vec<String> = "a hunter2 b".chars().map(String::from).collect();
        let chunks: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(run(&["hunter2"], &chunks), "a *** b");
        assert_eq!(run(&["hunter2"], &["hunter", "\n2"]), "hunter\n2");
    }

    #[test]
    fn masks_several_and_overlapping_values() {
        assert_eq!(
            run(&["alpha", "beta"], &["alpha beta alphabeta"]),
            "*** *** ******"
        );
        assert_eq!(run(&["abcd", "cdef"], &["xabcdefx"]), "x***x");
        assert_eq!(
            run(&["abcd", "cdefgh"], &["ab", "cd", "ef", "gh", "!"]),
            "***!"
        );
        assert_eq!(run(&["abc", "abcdef"], &["abc", "def"]), "***");
        assert_eq!(run(&["abc", "abcdef"], &["abc", "x"]), "***x");
    }

    #[test]
    fn nothing_unmasked_is_released_before_it_is_safe() {
        let mut masker = Masker::new();
        masker.add(b"secret");
        let mut out = Vec::new();
        masker.write(b"sec", &mut out);
        assert!(out.is_empty(), "a possible prefix is held back");
        masker.write(b"ond", &mut out);
        assert!(
            b"second".starts_with(&out),
            "only what cannot begin a value is shown"
        );
        masker.finish(&mut out);
        assert_eq!(out, b"second");
    }

    #[test]
    fn answers_mask_whole_forms_only_so_a_beginning_tells_nothing() {
        let end = |text: &str| {
            let mut masker = Masker::new();
            masker.add(b"Hunter2-xyz");
            let mut out = Vec::new();
            masker.write(text.as_bytes(), &mut out);
            masker.finish_whole(&mut out);
            (String::from_utf8(out).unwrap(), masker.masks())
        };
        for guess in ["Hun", "Hunter2-xy", "48756e74", "SHVudGVy"] {
            assert_eq!(end(guess), (guess.to_string(), 0), "a beginning of a form");
        }
        assert_eq!(
            end("Hux"),
            ("Hux".to_string(), 0),
            "a wrong guess looks the same"
        );
        assert_eq!(end("id: Hunter2-xyz"), ("id: ***".to_string(), 1));
        assert_eq!(end("Hunter2-xyz Hunter2-xyz"), ("*** ***".to_string(), 2));
    }

    #[test]
    fn a_run_cut_off_while_printing_a_value_shows_no_beginning_of_it() {
        assert_eq!(run(&["hunter2"], &["pw=hunt"]), "pw=***");
        assert_eq!(run(&["hunter2"], &["pw=hunter"]), "pw=***");
        assert_eq!(
            run(&["hunter2"], &["pw=hu"]),
            "pw=hu",
            "two bytes are not masked"
        );
        assert_eq!(run(&["hunter2"], &["hunter2 hunt"]), "*** ***");
        assert_eq!(run(&["ab"], &["xa"]), "x***", "a short value's first byte");
    }

    /// One character written as code commonly writes it: `way` picks the escape.
    fn encode_char(c: char, way: u8) -> String {
        let mut utf8 = [0u8; 4];
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        let mut units = [0u16; 2];
        let utf16 = c.encode_utf16(&mut units);
        match way % 8 {
            0 => c.to_string(),
            1 => bytes.iter().map(|b| format!("%{b:02X}")).collect(),
            2 => bytes.iter().map(|b| format!("%{b:02x}")).collect(),
            3 => utf16.iter().map(|u| format!("\\u{u:04x}")).collect(),
            4 => utf16.iter().map(|u| format!("\\u{u:04X}")).collect(),
            5 if !c.is_ascii_alphanumeric() => format!("&#{};", c as u32),
            6 if !c.is_ascii_alphanumeric() => format!("&#x{:x};", c as u32),
            7 => match c {
                '&' => "&amp;".into(),
                '<' => "&lt;".into(),
                '>' => "&gt;".into(),
                '"' => "&quot;".into(),
                '\'' => "&#39;".into(),
                '/' => "\\/".into(),
                ' ' => "+".into(),
                c => c.to_string(),
            },
            _ => c.to_string(),
        }
    }

    fn mask_in_chunks(value: &str, text: &str, cuts: &[usize]) -> String {
        let mut masker = Masker::new();
        masker.add(value.as_bytes());
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.sort_unstable();
        for end in ends.into_iter().chain([bytes.len()]) {
            if end > start {
                masker.write(&bytes[start..end], &mut out);
                start = end;
            }
        }
        masker.finish_whole(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(96))]

        /// Every occurrence of a value written in any mixture of the common escapes is
        /// masked, whole or split across writes.
        #[test]
        fn any_mixture_of_escapes_is_masked(
            value in "[a-zA-Z0-9&<>\"'+/~% äé中😀-]{4,20}",
            ways in proptest::collection::vec(0u8..8, 20),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let encoded: String = value
                .chars()
                .zip(ways.iter().cycle())
                .map(|(c, &w)| encode_char(c, w))
                .collect();
            let text = format!("before {encoded} middle {encoded} after");
            let shown = mask_in_chunks(&value, &text, &cuts);
            proptest::prop_assert!(!shown.contains(&encoded), "{encoded} in {shown}");
            proptest::prop_assert!(shown.starts_with("before ***"), "{shown}");
            proptest::prop_assert!(shown.ends_with("*** after"), "{shown}");
        }

        /// Hex in any case, with or without separators, and UTF-16 are masked.
        #[test]
        fn hex_in_any_case_and_utf16_are_masked(
            value in "[a-zA-Z0-9&<>\"'+/~% äé-]{4,20}",
            upper in proptest::collection::vec(proptest::bool::ANY, 40),
            separator in proptest::sample::select(vec!["", ":", "-", " "]),
        ) {
            let hex: Vec<String> = value
                .bytes()
                .zip(upper.iter().cycle())
                .map(|(b, &u)| if u { format!("{b:02X}") } else { format!("{b:02x}") })
                .collect();
            let hex = hex.join(separator);
            let shown = mask_in_chunks(&value, &format!("hex={hex};"), &[]);
            proptest::prop_assert_eq!(shown, "hex=***;");
            for utf16 in [
                value.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>(),
                value.encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<u8>>(),
            ] {
                let mut masker = Masker::new();
                masker.add(value.as_bytes());
                let mut out = Vec::new();
                masker.write(&utf16, &mut out);
                masker.finish_whole(&mut out);
                proptest::prop_assert_eq!(out, MASK.to_vec());
            }
        }
    }

    #[test]
    fn base64_wrapped_as_mime_and_pem_wrap_it_is_masked() {
        use base64::Engine as _;
        let value = "a-long-secret-value-that-spans-a-line-break-0123456789";
        for (width, newline) in [(76, "\r\n"), (64, "\n")] {
            for before in ["", "user:", "xx"] {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{before}{value}"));
                let wrapped: Vec<&str> = encoded
                    .as_bytes()
                    .chunks(width)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect();
                let text = wrapped.join(newline);
                let shown = mask_in_chunks(value, &text, &[17, 80]);
                assert!(shown.contains("***"), "{width}: {shown}");
                for line in shown.split(newline) {
                    assert!(
                        line.len() < 20 || !encoded.contains(line),
                        "{width}: {shown}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_reviews_encodings_are_masked() {
        let value = "S3cr3t&Pa<ss>+\"q'/~ x";
        let printed = [
            "S3cr3t\\u0026Pa\\u003css\\u003e+\\\"q'/~ x",
            "S3cr3t&amp;Pa&lt;ss&gt;+&#34;q&#39;/~ x",
            "S3cr3t&#x26;Pa&#x3c;ss&#x3E;+&quot;q&#x27;/~ x",
            "S3cr3t%26Pa%3Css%3E%2B%22q'%2F~%20x",
            "S3cr3t%26Pa%3Css%3E%2B%22q%27/~%20x",
            "S3cr3t%26Pa%3Css%3E%2B%22q%27%2F~+x",
            "S3cr3t\\u0026Pa\\u003Css\\u003E+\\u0022q\\u0027\\/~ x",
        ];
        for text in printed {
            let shown = mask_in_chunks(value, &format!("<{text}>"), &[]);
            assert_eq!(shown, "<***>", "{text}");
        }
        let colons = hex::encode(value)
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(mask_in_chunks(value, &colons, &[]), "***");
    }
}
