//! The forms a secret value takes when code prints it encoded, for [`crate::masking`].
//!
//! As GitHub Actions does for its masks, a value is also looked for in the encodings that
//! code commonly applies before printing or sending it. Pure logic, no I/O.
//!
//! A value's forms ([`ValueForms`]) are sorted by the view of the output they are looked for
//! in (`crate::masking` makes the views):
//!
//! | view of the output | forms looked for | what that covers, for `pä"s s` |
//! |---|---|---|
//! | as written | the value; UTF-16, little- and big-endian | `pä"s s`, `p\0ä\0"\0...` |
//! | decoded: percent-escapes (either case), JSON escapes (`\"`, `\/`, `\uXXXX` in either case with surrogate pairs, `\n`, ...) and HTML/XML entities (named, decimal, hex) read as the characters they stand for, `+` as a space | the value (the literal in `written`, which `crate::masking` reads as this view does); UTF-16 | **any mixture** of the escapes, character by character: `p%C3%A4\"s+s`, `p&#228;&quot;s%20s`, `p\u00E4"s s`, whatever characters the encoder keeps |
//! | hex digits with up to two of `:`, `-`, space, CR, LF between them taken out, any letter case | the value's hex | `70C3a4-22-73...`, `bytes.hex(':')`, hex wrapped over lines |
//! | line breaks (up to two CR/LF) taken out | the base64 characters that depend on the value alone, standard and URL-safe, at each of the three byte alignments; a multi-line value without its line breaks, and the base64 lines of a PEM block joined | base64 in one piece or wrapped as MIME (76) and PEM (64) wrap it |
//!
//! Each line of a multi-line value (at least [`MIN_LINE`] bytes) has the same forms as the
//! value, whatever the value's length. Encoded forms shorter than [`MIN_FORM`] bytes are left
//! out (a short base64 core would mask common text). Other transformations (reversal,
//! compression, encryption, a value split between stdout and stderr, two escapes applied in
//! turn) are out of reach.

use base64::Engine as _;

/// The shortest line of a multi-line value that is masked on its own.
pub const MIN_LINE: usize = 4;

/// The shortest encoded form that is masked (the literal value is masked at any length).
pub const MIN_FORM: usize = 4;

/// The most output bytes one byte of a decoded form can take (`&#x00003c;`, an entity with
/// leading zeros), and so the factor of a value's length that masking holds back.
pub const LONGEST_ESCAPE: usize = 10;

/// Every form of one value, by the view of the output it is looked for in (see the module
/// docs). The literal value comes first in `written`.
/// It has no `Debug`: its forms are the value.
#[derive(Clone, Default)]
pub struct ValueForms {
    /// Looked for in the output as written; the literal source, first, also with the
    /// output's escapes decoded.
    pub written: Vec<Vec<u8>>,
    /// Looked for (in any letter case) in the output with separators between hex digits out.
    pub hex: Vec<Vec<u8>>,
    /// Looked for in the output with its line breaks out.
    pub unwrapped: Vec<Vec<u8>>,
}

impl Drop for ValueForms {
    fn drop(&mut self) {
        for list in [&mut self.written, &mut self.hex, &mut self.unwrapped] {
            for form in list.iter_mut() {
                zeroize::Zeroize::zeroize(form);
            }
        }
    }
}

impl ValueForms {
    /// The forms of `value` and of each of its lines (at least [`MIN_LINE`] bytes), one
    /// entry per source, the value's first; none for an empty value. Masking takes the
    /// shortest occurrence of one source that begins at one place (see `crate::masking`), so
    /// a line and the whole value are sources of their own.
    pub fn of(value: &[u8]) -> Vec<ValueForms> {
        if value.is_empty() {
            return Vec::new();
        }
        let lines: Vec<&[u8]> = value
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| line.len() >= MIN_LINE && line.len() < value.len())
            .collect();
        let mut all: Vec<ValueForms> = std::iter::once(value)
            .chain(lines.iter().copied())
            .map(|source| {
                let mut forms = ValueForms::default();
                forms.add_source(source);
                forms
            })
            .collect();
        if !lines.is_empty() {
            let whole = &mut all[0];
            let joined: Vec<u8> = value
                .iter()
                .copied()
                .filter(|b| !b"\r\n".contains(b))
                .collect();
            push(&mut whole.unwrapped, joined);
            let body: Vec<u8> = value
                .split(|&b| b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| line.iter().all(|&b| is_base64(b)))
                .flat_map(|line| line.iter().copied())
                .collect();
            push(&mut whole.unwrapped, body);
        }
        all
    }

    /// Adds the forms of `source` (the value, or one of its lines).
    fn add_source(&mut self, source: &[u8]) {
        push_any(&mut self.written, source.to_vec());
        if let Ok(text) = std::str::from_utf8(source) {
            push(
                &mut self.written,
                text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            );
            push(
                &mut self.written,
                text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            );
        }
        push(&mut self.hex, hex::encode(source).into_bytes());
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for offset in 0..3 {
                push(&mut self.unwrapped, base64_core(engine, source, offset));
            }
        }
    }

    /// The most output bytes one occurrence of these forms can span, escapes and
    /// separators included.
    pub fn longest_span(&self) -> usize {
        let longest = |list: &[Vec<u8>], factor: usize| {
            list.iter().map(|f| f.len() * factor).max().unwrap_or(0)
        };
        longest(&self.written[..self.written.len().min(1)], LONGEST_ESCAPE)
            .max(longest(&self.written, 1))
            .max(longest(&self.hex, 3))
            .max(longest(&self.unwrapped, 3))
    }
}

/// Adds `form` unless it is too short to mean something or already there.
fn push(list: &mut Vec<Vec<u8>>, form: Vec<u8>) {
    if form.len() >= MIN_FORM {
        push_any(list, form);
    }
}

/// Adds `form` (of any length) unless it is empty or already there.
fn push_any(list: &mut Vec<Vec<u8>>, mut form: Vec<u8>) {
    if form.is_empty() || list.contains(&form) {
        zeroize::Zeroize::zeroize(&mut form);
    } else {
        list.push(form);
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// The base64 characters of `bytes` placed `offset` bytes into a 3-byte group that depend on
/// `bytes` alone: the characters mixed with the bytes before or after are cut off.
fn base64_core(engine: &base64::engine::GeneralPurpose, bytes: &[u8], offset: usize) -> Vec<u8> {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(bytes);
    let encoded = engine.encode(&padded).into_bytes();
    let skip = [0, 2, 3][offset];
    let cut = match padded.len() % 3 {
        0 => 0,
        _ => 1,
    };
    if encoded.len() < skip + cut {
        return Vec::new();
    }
    encoded[skip..encoded.len() - cut].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn every_base64_alignment_is_found_inside_a_larger_encoding() {
        let value = b"s3cr3t-v@lue/with+bits";
        let forms = &ValueForms::of(value)[0];
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            for before in ["", "a", "ab", "abc", "user:"] {
                for after in ["", "x", "xy", "\n"] {
                    let mut data = before.as_bytes().to_vec();
                    data.extend_from_slice(value);
                    data.extend_from_slice(after.as_bytes());
                    let encoded = engine.encode(&data).into_bytes();
                    assert!(
                        forms.unwrapped.iter().any(|f| contains(&encoded, f)),
                        "{before:?}+value+{after:?} -> {}",
                        String::from_utf8_lossy(&encoded)
                    );
                }
            }
        }
    }

    #[test]
    fn lines_have_the_forms_of_a_value_and_a_pem_body_is_joined() {
        let value = "-----BEGIN KEY-----\nMIIBaa+/\nQQ=\n-----END KEY-----";
        let all = ValueForms::of(value.as_bytes());
        let has = |list: &[Vec<u8>], form: &str| list.iter().any(|f| f == form.as_bytes());
        assert_eq!(all[0].written[0], value.as_bytes());
        assert!(has(&all[0].unwrapped, "MIIBaa+/QQ="));
        assert!(has(&all[0].unwrapped, &value.replace('\n', "")));
        let line = all.iter().find(|f| f.written[0] == b"MIIBaa+/").unwrap();
        assert!(has(&line.hex, &hex::encode("MIIBaa+/")));
        assert_eq!(
            all.len(),
            4,
            "the value and its lines but QQ= ({MIN_LINE} bytes at least)"
        );
    }

    #[test]
    fn short_values_keep_only_forms_long_enough_to_mean_something() {
        let forms = &ValueForms::of(b"ab")[0];
        assert_eq!(forms.written[0], b"ab");
        let encoded = forms.written[1..]
            .iter()
            .chain(&forms.hex)
            .chain(&forms.unwrapped);
        assert!(encoded.clone().count() > 0 && encoded.clone().all(|f| f.len() >= MIN_FORM));
        assert!(ValueForms::of(b"").is_empty());
    }
}
