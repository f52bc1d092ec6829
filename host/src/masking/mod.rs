//! Streaming masking of secret values in a run's output and in answers to its requests.
//!
//! A [`Masker`] replaces every occurrence of every value it knows, and of its encoded forms
//! ([`crate::encoded_forms`]: in any mixture of percent, JSON and HTML/XML escapes, hex in any
//! case with separators, base64 also wrapped over lines, UTF-16, each line of a multi-line
//! value, at any length), with `***`, also when a value is split across writes, and when
//! occurrences overlap (the union of overlapping occurrences becomes one `***`). One
//! [`matcher::Matcher`] finds them all: an automaton per view of the output (`views.rs`) over
//! the forms of every value, built once when a value is added and shared by every masker of
//! the same [`MaskValues`] (a run's stdout and stderr). Pure logic, no I/O: the caller writes
//! what it is given.
//!
//! A masker holds back the last bytes of the output seen so far that could begin an
//! occurrence: one less than the most bytes an occurrence can span, which is
//! [`crate::encoded_forms::LONGEST_ESCAPE`] (10) bytes per byte of the longest value, or
//! three per byte of its hex or base64 (for a 1,024-byte value: 10 KiB). They are released as
//! soon as later bytes show they are not an occurrence, or masked and released at the end.
//!
//! Two ends: [`Masker::finish`] also masks a trailing *beginning* of a value (a run's own
//! output cut off while printing a value it was granted); [`Masker::finish_whole`] masks whole
//! forms only. Answers to a run's requests use the second: masking a beginning there would
//! tell a run whether a guess it sent (and the service echoed) begins a value it may not read.

mod matcher;
mod parts;
mod views;

pub use parts::{secret_parts, CONNECTION_KEYS, CREDENTIAL_KEYS};

use crate::encoded_forms::ValueForms;
use matcher::Matcher;
use std::sync::{Arc, Mutex};

/// What replaces a value.
pub const MASK: &[u8] = b"***";

/// The shortest beginning of a value that [`Masker::finish`] masks at the end of output.
pub const MIN_TRAILING_PREFIX: usize = 3;

/// The values some maskers mask, shared: a value added here is masked by all of them from
/// their next write on, and their one matcher is rebuilt once for it.
#[derive(Clone, Default)]
pub struct MaskValues {
    shared: Arc<Mutex<Known>>,
}

#[derive(Default)]
struct Known {
    /// The forms of every source (a value, or a line of one).
    forms: Vec<ValueForms>,
    /// For each source, the values (numbered in the order they were added) it stands for: the
    /// value that brought it, and any later value equal to it.
    values_of: Vec<Vec<usize>>,
    /// How many values were added.
    added: usize,
    matcher: Arc<Matcher>,
}

impl MaskValues {
    /// No values yet.
    pub fn new() -> MaskValues {
        MaskValues::default()
    }

    /// Adds `value` with its encoded forms (an empty or known value adds no forms).
    pub fn add(&self, value: &[u8]) {
        self.add_all([value]);
    }

    /// Adds `values` with their encoded forms, building the matcher once for all of them.
    /// Values are numbered in the order they are added, empty ones included, for
    /// [`Masker::matched`].
    pub fn add_all<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) {
        let mut known = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = false;
        for value in values {
            let number = known.added;
            known.added += 1;
            if value.is_empty() {
                continue;
            }
            changed = true;
            match known.forms.iter().position(|f| f.written[0] == value) {
                Some(source) => known.values_of[source].push(number),
                None => {
                    let forms = ValueForms::of(value);
                    known.values_of.extend(forms.iter().map(|_| vec![number]));
                    known.forms.extend(forms);
                }
            }
        }
        if changed {
            known.matcher = Arc::new(Matcher::build(&known.forms, known.values_of.clone()));
        }
    }

    /// The matcher for the values added so far.
    fn matcher(&self) -> Arc<Matcher> {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .matcher
            .clone()
    }

    /// The values whose literal or a line of it, of at least
    /// [`crate::encoded_forms::MIN_FORM`] bytes, `text` holds in any letter case.
    fn held_in_any_case(&self, text: &[u8]) -> Vec<usize> {
        let known = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        known
            .forms
            .iter()
            .zip(&known.values_of)
            .filter(|(forms, _)| {
                let literal = &forms.written[0];
                literal.len() >= crate::encoded_forms::MIN_FORM
                    && text
                        .windows(literal.len())
                        .any(|w| w.eq_ignore_ascii_case(literal))
            })
            .flat_map(|(_, values)| values.iter().copied())
            .collect()
    }

    /// The length of the longest end of `output` that begins a value's literal form (value,
    /// line or UTF-16), at least [`MIN_TRAILING_PREFIX`] bytes or the whole form but one.
    fn trailing_prefix_len(&self, output: &[u8]) -> usize {
        let known = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest = 0;
        for form in known.forms.iter().flat_map(|f| &f.written) {
            let shortest = MIN_TRAILING_PREFIX.min(form.len().saturating_sub(1)).max(1);
            let from = output.len().saturating_sub(form.len().saturating_sub(1));
            if let Some(tail) = (from..output.len())
                .map(|start| &output[start..])
                .find(|tail| tail.len() >= shortest && form.starts_with(tail))
            {
                longest = longest.max(tail.len());
            }
        }
        longest
    }
}

/// The masking state of one output stream. Clones share their [`MaskValues`] and copy the
/// state of the stream so far.
#[derive(Clone, Default)]
pub struct Masker {
    values: MaskValues,
    pending: Vec<u8>,
    masked_prefix: usize,
    masks: u64,
    matched: Vec<usize>,
}

impl Drop for Masker {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pending);
    }
}

impl Masker {
    /// A masker with values of its own, none yet.
    pub fn new() -> Masker {
        Masker::default()
    }

    /// A masker of the shared `values`.
    pub fn of(values: &MaskValues) -> Masker {
        Masker {
            values: values.clone(),
            pending: Vec::new(),
            masked_prefix: 0,
            masks: 0,
            matched: Vec::new(),
        }
    }

    /// Adds a value to mask from now on, with its encoded forms (empty values are ignored),
    /// for every masker that shares this one's values.
    pub fn add(&mut self, value: &[u8]) {
        self.values.add(value);
    }

    /// Feeds output; appends what is safe to show to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        let matcher = self.values.matcher();
        let hold = matcher.longest().saturating_sub(1);
        let safe_end = self.pending.len().saturating_sub(hold);
        self.release(&matcher, safe_end, out);
    }

    /// Flushes everything held back, masked. A run that stops in the middle of printing a
    /// value leaves a beginning of it at the end of its output: a trailing beginning of a
    /// value (at least [`MIN_TRAILING_PREFIX`] bytes, or the whole value minus one byte) is
    /// masked too.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let cut = self.values.trailing_prefix_len(&self.pending);
        self.end(cut, out);
    }

    /// Flushes everything held back, masking whole forms only (for answers: see the module
    /// docs).
    pub fn finish_whole(&mut self, out: &mut Vec<u8>) {
        self.end(0, out);
    }

    /// Whether `text` holds one of the values, or a line of one, in any letter case (for a
    /// header name, which HTTP lower-cases; matched in no encoded form). If it does, the
    /// caller replaces it whole: it counts as a mask, and its values as matched.
    pub fn masks_in_any_case(&mut self, text: &[u8]) -> bool {
        let values = self.values.held_in_any_case(text);
        for value in &values {
            if !self.matched.contains(value) {
                self.matched.push(*value);
            }
        }
        if !values.is_empty() {
            self.masks += 1;
        }
        !values.is_empty()
    }

    /// How many times a mask was written so far.
    pub fn masks(&self) -> u64 {
        self.masks
    }

    /// The values (numbered in the order they were added to this masker's values) that an
    /// occurrence masked so far was a form of, each once, in the order first masked.
    pub fn matched(&self) -> &[usize] {
        &self.matched
    }

    /// Releases everything but the last `cut` bytes, then masks those.
    fn end(&mut self, cut: usize, out: &mut Vec<u8>) {
        let end = self.pending.len() - cut;
        let matcher = self.values.matcher();
        self.release(&matcher, end, out);
        if cut > 0 && self.masked_prefix < cut {
            out.extend_from_slice(MASK);
            self.masks += 1;
        }
        zeroize::Zeroize::zeroize(&mut self.pending[..]);
        self.pending.clear();
        self.masked_prefix = 0;
    }

    /// Emits `pending[..safe_end]` masked; keeps the rest, remembering how much of it is
    /// already covered by an emitted mask.
    fn release(&mut self, matcher: &Matcher, safe_end: usize, out: &mut Vec<u8>) {
        let mut intervals: Vec<(usize, usize)> = Vec::new();
        if self.masked_prefix > 0 {
            intervals.push((0, self.masked_prefix));
        }
        for (start, end, values) in matcher.find(&self.pending, safe_end) {
            intervals.push((start, end));
            for &value in values {
                if !self.matched.contains(&value) {
                    self.matched.push(value);
                }
            }
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
            let all = crate::encoded_forms::ValueForms::of(value.as_bytes());
            let common = common_encodings(value);
            let every = all
                .iter()
                .flat_map(|f| f.written.iter().chain(&f.hex).chain(&f.unwrapped));
            for form in every.chain(&common) {
                let form = String::from_utf8_lossy(form).to_string();
                assert!(!shown.contains(&form), "{form} in {shown}");
            }
        }
    }

    /// The JSON, percent and XML encodings of `value` that code commonly prints whole: each is
    /// found in the decoded view.
    fn common_encodings(value: &str) -> Vec<Vec<u8>> {
        vec![
            json_escaped(value, false),
            json_escaped(value, true),
            xml_escaped(value),
            percent_encoded(value.as_bytes()).to_ascii_lowercase_hex(),
            percent_encoded(value.as_bytes()).0,
            form_urlencoded::byte_serialize(value.as_bytes())
                .collect::<String>()
                .into_bytes(),
        ]
    }

    /// `text` as inside a JSON string; with `ascii`, every non-ASCII character as `\uXXXX`
    /// (UTF-16 surrogate pairs above the BMP), as Python's `json.dumps` writes it.
    fn json_escaped(text: &str, ascii: bool) -> Vec<u8> {
        let quoted = serde_json::to_string(text).expect("a string serialises");
        let inner = &quoted[1..quoted.len() - 1];
        if !ascii {
            return inner.as_bytes().to_vec();
        }
        let mut out = String::with_capacity(inner.len());
        for c in inner.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.into_bytes()
    }

    fn xml_escaped(text: &str) -> Vec<u8> {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
        }
        out.into_bytes()
    }

    /// Percent-encoding of every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`), as
    /// `encodeURIComponent` and `urllib.parse.quote(safe="")` write it (upper-case hex).
    struct PercentEncoded(Vec<u8>);

    impl PercentEncoded {
        /// The same with lower-case hex digits.
        fn to_ascii_lowercase_hex(&self) -> Vec<u8> {
            let mut out = self.0.clone();
            let mut i = 0;
            while i < out.len() {
                if out[i] == b'%' {
                    out[i + 1] = out[i + 1].to_ascii_lowercase();
                    out[i + 2] = out[i + 2].to_ascii_lowercase();
                    i += 3;
                } else {
                    i += 1;
                }
            }
            out
        }
    }

    fn percent_encoded(bytes: &[u8]) -> PercentEncoded {
        let mut out = Vec::with_capacity(bytes.len() * 3);
        for &b in bytes {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b);
            } else {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
        PercentEncoded(out)
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

    /// Whether `shown` still holds 12 bytes in a row of `encoded` (outside a mask).
    fn leaks(shown: &str, encoded: &str) -> bool {
        shown
            .as_bytes()
            .windows(12)
            .filter(|w| !w.contains(&b'*'))
            .any(|w| encoded.as_bytes().windows(12).any(|e| e == w))
    }

    /// A PEM-like value: a header, `lines` base64 lines of 64, a footer.
    fn pem(body: &[u8], lines: usize) -> String {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        let wrapped: Vec<&str> = encoded
            .as_bytes()
            .chunks(64)
            .take(lines)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            wrapped.join("\n")
        )
    }

    /// The review's reproduction: a 2048-bit PEM key (over 1,024 characters) printed as
    /// `urllib.parse.quote(pem)`, `base64.encodebytes(pem)`, `pem.encode().hex(":")` and
    /// PHP-style JSON showed most of its body lines in clear.
    #[test]
    fn a_long_pem_key_is_masked_in_every_form() {
        use base64::Engine as _;
        let body: Vec<u8> = (0..1216u32).map(|i| (i * 7919 % 251) as u8).collect();
        let value = pem(&body, 26);
        assert!(value.len() > 1024);
        let mime: Vec<String> = base64::engine::general_purpose::STANDARD
            .encode(&value)
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let printed = [
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%2F", "/"),
            mime.join("\n") + "\n",
            hex::encode(&value)
                .as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":"),
            serde_json::to_string(&value).unwrap().replace('/', "\\/"),
            value.lines().nth(3).unwrap().to_string(),
            value.lines().skip(1).take(25).collect::<String>(),
        ];
        for text in printed {
            let shown = mask_in_chunks(&value, &format!("before {text} after"), &[4097, 9000]);
            assert!(
                shown.starts_with("before ") && shown.ends_with(" after"),
                "{shown}"
            );
            assert!(!leaks(&shown, &text), "{text}\n -> {shown}");
        }
    }

    /// An answer masks whole forms only, whatever text follows: an echo of a value that ends
    /// with `&`, followed by `amp;`, comes back as an echo of any other value does.
    #[test]
    fn whole_forms_never_depend_on_the_text_after_them() {
        let echo = |value: &str| {
            let mut masker = Masker::new();
            masker.add(value.as_bytes());
            let mut out = Vec::new();
            masker.write(format!("id={value}amp;").as_bytes(), &mut out);
            masker.finish_whole(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(echo("Hunter2-xyz&"), "id=***amp;");
        assert_eq!(echo("Hunter2-xyzQ"), "id=***amp;");
    }

    #[test]
    fn the_held_back_output_is_bounded_by_the_longest_value() {
        let values = MaskValues::new();
        values.add(&[b'k'; 1024]);
        let mut masker = Masker::of(&values);
        let mut out = Vec::new();
        masker.write(&vec![b'.'; 64 << 10], &mut out);
        let held = (64 << 10) - out.len();
        assert!(held < 10 * 1024, "{held} bytes held");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(24))]

        /// Long multi-line values in their escaped, hex and wrapped base64 forms are masked
        /// whole, also written in pieces split at any byte.
        #[test]
        fn long_multi_line_values_are_masked_split_anywhere(
            body in proptest::collection::vec(proptest::num::u8::ANY, 800..1600),
            way in 0u8..4,
            cuts in proptest::collection::vec(0usize..20_000, 0..12),
        ) {
            use base64::Engine as _;
            let value = pem(&body, 40);
            let text = match way {
                0 => percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string(),
                1 => base64::engine::general_purpose::STANDARD
                    .encode(&value)
                    .as_bytes()
                    .chunks(76)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("\r\n"),
                2 => hex::encode_upper(&value)
                    .as_bytes()
                    .chunks(2)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join("-"),
                _ => serde_json::to_string(&value).unwrap(),
            };
            let shown = mask_in_chunks(&value, &format!("<{text}>"), &cuts);
            proptest::prop_assert!(!leaks(&shown, &text), "{} -> {}", text, shown);
        }
    }

    /// A URL-safe base64 core that begins or ends with `-`, inside other base64: the joined
    /// view takes that `-` out, and the form is found without it.
    #[test]
    fn url_safe_base64_with_a_dash_at_an_edge_is_masked() {
        use base64::Engine as _;
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        // 0xf8 at the start makes the first character of the value's own base64 a `-`.
        let value = [0xf8u8, 0x3e, 0x10, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46];
        let core = url_safe.encode(value);
        assert!(core.starts_with('-'), "{core}");
        let text = format!("token=QUJD{core}QUJD end");
        let mut masker = Masker::new();
        masker.add(&value);
        let mut out = Vec::new();
        masker.write(text.as_bytes(), &mut out);
        masker.finish_whole(&mut out);
        let shown = String::from_utf8(out).unwrap();
        assert!(!shown.contains(&core[1..]), "{shown}");
    }

    /// Values are numbered as they were added, a value equal to an earlier one (or to a line
    /// of one) included, so that each is known to have matched.
    #[test]
    fn a_masker_tells_which_values_it_matched() {
        let mut masker = Masker::new();
        for value in [
            "alpha-value",
            "",
            "beta-value\ngamma-line",
            "alpha-value",
            "gamma-line",
        ] {
            masker.add(value.as_bytes());
        }
        let mut out = Vec::new();
        masker.write(b"gamma-line then alpha-value", &mut out);
        masker.finish_whole(&mut out);
        assert_eq!(out, b"*** then ***");
        let mut matched = masker.matched().to_vec();
        matched.sort_unstable();
        assert_eq!(matched, [0, 2, 3, 4]);
    }
}
