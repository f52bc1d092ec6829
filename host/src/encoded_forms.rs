//! The forms a secret value takes when code prints it encoded, for [`crate::masking`].
//!
//! As GitHub Actions does for its masks, a value is also looked for in the encodings that
//! code commonly applies before printing or sending it. Pure logic, no I/O.
//!
//! | form | `pä"ss` becomes |
//! |---|---|
//! | literal | `pä"ss` |
//! | JSON string (`\"`, `\\`, `\n`; and with `\uXXXX` for every non-ASCII character) | `pä\"ss`, `p\u00e4\"ss` |
//! | percent-encoded (upper- and lower-case hex, and `+` for space as in forms) | `p%C3%A4%22ss`, `p%c3%a4%22ss` |
//! | XML/HTML-escaped | `pä&quot;ss` |
//! | base64, standard and URL-safe, at each of the three byte alignments | the characters that depend on the value alone |
//! | hex, lower and upper case | `70c3a4227373`, `70C3A4227373` |
//! | each line of a multi-line value, at least [`MIN_LINE`] bytes long, and its forms | |
//!
//! | UTF-16, little- and big-endian | `p\0ä\0"\0...` |
//!
//! Forms shorter than [`MIN_FORM`] bytes are left out (a short base64 core would mask
//! common text); other transformations (reversal, compression, encryption, a value split
//! between stdout and stderr) are out of reach.
//!
//! Besides these fixed forms, [`patterns`] gives regular expressions for the encodings that
//! code applies character by character, in **any mixture**: each character of the value may
//! appear literally, JSON-escaped (`\"`, `\/`, `\uXXXX` in either case, as Go writes
//! `\u0026`), percent-encoded (each UTF-8 byte, either case, `+` for a space; so
//! `urllib.parse.quote` keeping `/` and `encodeURIComponent` keeping `!'()*` are covered), or
//! as an HTML/XML entity (`&amp;`, `&#39;`, `&#x27;`, ...); and the value's hex in either or
//! mixed case, with or without a `:`, `-` or space between bytes (`bytes.hex(':')`); and its
//! base64 cores with line breaks anywhere in them, as MIME and PEM wrap base64.

use base64::Engine as _;

/// The shortest line of a multi-line value that is masked on its own.
pub const MIN_LINE: usize = 4;

/// The shortest encoded form that is masked (the literal value is masked at any length).
pub const MIN_FORM: usize = 4;

/// Every form of `value` to mask, the literal value first, without duplicates.
pub fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![value.to_vec()];
    let mut push = |form: Vec<u8>| {
        if form.len() >= MIN_FORM && !out.contains(&form) {
            out.push(form);
        }
    };
    let mut sources: Vec<&[u8]> = vec![value];
    let lines: Vec<&[u8]> = value
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| line.len() >= MIN_LINE && line.len() < value.len())
        .collect();
    for line in &lines {
        push(line.to_vec());
    }
    sources.extend(lines);
    for source in sources {
        if let Ok(text) = std::str::from_utf8(source) {
            push(json_escaped(text, false));
            push(json_escaped(text, true));
            push(xml_escaped(text));
        }
        let percent = percent_encoded(source);
        push(percent.to_ascii_lowercase_hex());
        push(percent.0);
        push(
            form_urlencoded::byte_serialize(source)
                .collect::<String>()
                .into_bytes(),
        );
        push(hex::encode(source).into_bytes());
        push(hex::encode_upper(source).into_bytes());
        if let Ok(text) = std::str::from_utf8(source) {
            push(text.encode_utf16().flat_map(u16::to_le_bytes).collect());
            push(text.encode_utf16().flat_map(u16::to_be_bytes).collect());
        }
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for offset in 0..3 {
                push(base64_core(engine, source, offset));
            }
        }
    }
    out
}

/// The longest value (in characters) that gets mixture [`patterns`]; a longer one is masked
/// in its fixed forms only (a pattern grows with the value, and secrets are short).
pub const MAX_PATTERN_CHARS: usize = 1024;

/// The longest way a character is written in a mixture pattern, in bytes (a four-byte UTF-8
/// character percent-encoded, or an entity with leading zeros).
const LONGEST_ESCAPE: usize = 16;

/// Regular expressions (for `regex::bytes`) that match `value` in any mixture of the
/// character escapes, and its hex in any case with optional separators (see the module
/// docs), with the most bytes a match can span; none for a value that is not UTF-8, is
/// longer than [`MAX_PATTERN_CHARS`], or too short for its escapes to mean something.
pub fn patterns(value: &[u8]) -> Option<(Vec<String>, usize)> {
    let text = std::str::from_utf8(value).ok()?;
    let chars = text.chars().count();
    if chars > MAX_PATTERN_CHARS || value.len() < MIN_FORM {
        return None;
    }
    let escapes: String = text.chars().map(char_alternatives).collect();
    let hex: Vec<String> = value.iter().map(|b| format!("(?i:{b:02x})")).collect();
    let hex = hex.join(r"[:\- ]?");
    // Base64 as MIME (76) and PEM (64) wrap it: a line break may fall between any two
    // characters of a core.
    let mut cores = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3 {
            let core = base64_core(engine, value, offset);
            if core.len() >= MIN_FORM {
                let chars: Vec<String> = core
                    .iter()
                    .map(|&b| regex::escape(&(b as char).to_string()))
                    .collect();
                cores.push(chars.join("(?:\\r?\\n)?"));
            }
        }
    }
    let mut found = vec![format!("(?-u){escapes}"), format!("(?-u){hex}")];
    if !cores.is_empty() {
        found.push(format!("(?-u){}", cores.join("|")));
    }
    Some((found, (chars * LONGEST_ESCAPE).max(value.len() * 3)))
}

/// The ways one character may be written, as a regex group.
fn char_alternatives(c: char) -> String {
    let mut utf8 = [0u8; 4];
    let bytes = c.encode_utf8(&mut utf8).as_bytes();
    // Escapes first, the literal last: the regex takes the first way that matches, and an
    // escape may begin with the literal character (`&` of `&amp;`, `%` of `%25`).
    let mut ways: Vec<String> = vec![bytes.iter().map(|b| format!("%(?i:{b:02x})")).collect()];
    if c == ' ' {
        ways.push("\\+".into());
    }
    let mut units = [0u16; 2];
    ways.push(
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| format!("\\\\u(?i:{u:04x})"))
            .collect(),
    );
    match c {
        '"' | '\\' | '/' => ways.push(format!("\\\\\\x{:02x}", c as u32)),
        '\n' => ways.push("\\\\n".into()),
        '\r' => ways.push("\\\\r".into()),
        '\t' => ways.push("\\\\t".into()),
        _ => {}
    }
    let named = match c {
        '&' => Some("amp"),
        '<' => Some("lt"),
        '>' => Some("gt"),
        '"' => Some("quot"),
        '\'' => Some("apos"),
        _ => None,
    };
    if let Some(name) = named {
        ways.push(format!("&{name};"));
    }
    if !c.is_ascii_alphanumeric() {
        ways.push(format!("&#0{{0,4}}{};", c as u32));
        ways.push(format!("&#[xX]0{{0,4}}(?i:{:x});", c as u32));
    }
    ways.push(bytes.iter().map(|b| format!("\\x{b:02x}")).collect());
    format!("(?:{})", ways.join("|"))
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
        let forms = forms(value);
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
                        forms.iter().skip(1).any(|f| contains(&encoded, f)),
                        "{before:?}+value+{after:?} -> {}",
                        String::from_utf8_lossy(&encoded)
                    );
                }
            }
        }
    }

    #[test]
    fn text_encodings_and_lines_are_forms() {
        let value = "pä\"ss\\wörd\nsecond-line&<x>";
        let forms = forms(value.as_bytes());
        let has = |form: &str| forms.iter().any(|f| f == form.as_bytes());
        let json = serde_json::to_string(value).unwrap();
        assert!(has(&json[1..json.len() - 1]));
        assert!(has(r#"p\u00e4\"ss\\w\u00f6rd\nsecond-line&<x>"#));
        assert!(has("p%C3%A4%22ss%5Cw%C3%B6rd%0Asecond-line%26%3Cx%3E"));
        assert!(has("p%c3%a4%22ss%5cw%c3%b6rd%0asecond-line%26%3cx%3e"));
        assert!(has(&hex::encode(value)));
        assert!(has(&hex::encode_upper(value)));
        assert!(has("second-line&<x>"));
        assert!(has("second-line&amp;&lt;x&gt;"));
        assert!(has("pä\"ss\\wörd"));
        assert_eq!(forms[0], value.as_bytes());
    }

    #[test]
    fn short_values_keep_only_forms_long_enough_to_mean_something() {
        assert!(forms(b"ab").iter().skip(1).all(|f| f.len() >= MIN_FORM));
        assert_eq!(forms(b"ab")[0], b"ab");
    }
}
