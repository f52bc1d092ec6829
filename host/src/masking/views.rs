//! Views of a stretch of output in which encoded forms of a value read as plain bytes.
//!
//! Masking looks for a value's forms ([`crate::encoded_forms::ValueForms`]) in four views of
//! the output held back so far: as written; with escapes decoded ([`decoded_view`]: percent,
//! JSON and HTML/XML escapes read as the characters they stand for, so that one search finds
//! a value in any mixture of them); with separators between hex digits taken out; and with
//! line breaks taken out ([`joined_view`]). Every byte of a view knows the span of output it
//! came from, so that a form found in a view masks exactly the output it was written as.
//! Pure logic, no I/O.

use std::borrow::Cow;

/// Where a view departs from the output: view bytes `view_start..view_end` stand for output
/// bytes `out_start..out_end` as one unit (a decoded escape), or, when the view range is
/// empty, those output bytes were taken out. View bytes after `view_end`, up to the next mark,
/// are the output's from `out_end` on.
#[derive(Clone, Copy)]
struct Mark {
    view_start: usize,
    view_end: usize,
    out_start: usize,
    out_end: usize,
}

/// A transformed copy of some output that knows, for each of its bytes, the span of output
/// it came from.
pub(super) struct View<'a> {
    pub(super) bytes: Cow<'a, [u8]>,
    marks: Vec<Mark>,
}

impl<'a> View<'a> {
    /// The output itself.
    pub(super) fn of(raw: &'a [u8]) -> View<'a> {
        View {
            bytes: Cow::Borrowed(raw),
            marks: Vec::new(),
        }
    }

    /// The output span that view byte `at` came from.
    fn span_of(&self, at: usize) -> (usize, usize) {
        let after = self.marks.partition_point(|m| m.view_start <= at);
        match after.checked_sub(1).map(|i| self.marks[i]) {
            None => (at, at + 1),
            Some(m) if at < m.view_end => (m.out_start, m.out_end),
            Some(m) => {
                let out = m.out_end + (at - m.view_end);
                (out, out + 1)
            }
        }
    }

    /// The span of output that view bytes `start..end` (not empty) came from.
    pub(super) fn output_span(&self, start: usize, end: usize) -> (usize, usize) {
        (self.span_of(start).0, self.span_of(end - 1).1)
    }
}

/// `raw` with its percent, JSON and HTML/XML escapes read as what they stand for, and `+`
/// as a space (see [`decoded_view`]).
pub(super) fn decoded(raw: &[u8]) -> Vec<u8> {
    decoded_view(raw).bytes.into_owned()
}

/// What [`decoded_view`] shows of a value's literal, written as it is or in any mixture of
/// escapes: the literal with `+` as a space, and, when it holds something that looks like an
/// escape, the literal read as the view reads it.
pub(super) fn decoded_forms(literal: &[u8]) -> Vec<Vec<u8>> {
    let spaced: Vec<u8> = literal.iter().map(|&b| plus_as_space(b)).collect();
    let read = decoded(literal);
    if read == spaced {
        vec![spaced]
    } else {
        vec![spaced, read]
    }
}

/// The view of `raw` with its escapes decoded: `%XX` (either case) as that byte; `\uXXXX`
/// (either case, surrogate pairs joined) and `\"`, `\\`, `\/`, `\'`, `\n`, `\r`, `\t`, `\b`,
/// `\f` as that character in UTF-8; `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#DDD;`
/// (up to 7 digits) and `&#xHHH;` (up to 6) as that character. Anything else, an escape
/// that does not stand for a character included, is itself, except that a `+`, written or
/// escaped, reads as a space: forms encoding writes a space as `+`, and a value's `+` may be
/// written as it is, so the two are one character in this view (a value is looked for with
/// its `+` as spaces too). The rest of the value tells them apart well enough; at worst
/// `a b` is masked for a value `a+b`.
pub(super) fn decoded_view(raw: &[u8]) -> View<'_> {
    let special = |b: &u8| is(SPECIAL, *b);
    let Some(first) = raw.iter().position(special) else {
        return View::of(raw);
    };
    let mut bytes = Vec::with_capacity(raw.len());
    let mut marks = Vec::new();
    bytes.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        match escape_at(&raw[i..]) {
            Some((c, len)) => {
                let mut utf8 = [0u8; 4];
                let view_start = bytes.len();
                bytes.extend(c.encode(&mut utf8).iter().map(|&b| plus_as_space(b)));
                marks.push(Mark {
                    view_start,
                    view_end: bytes.len(),
                    out_start: i,
                    out_end: i + len,
                });
                i += len;
            }
            None => {
                bytes.push(plus_as_space(raw[i]));
                i += 1;
            }
        }
        let next = raw[i..]
            .iter()
            .position(special)
            .map_or(raw.len(), |n| i + n);
        bytes.extend_from_slice(&raw[i..next]);
        i = next;
    }
    View {
        bytes: Cow::Owned(bytes),
        marks,
    }
}

fn plus_as_space(b: u8) -> u8 {
    if b == b'+' {
        b' '
    } else {
        b
    }
}

/// What an escape decodes to: a byte (percent-encoding) or a character.
enum Decoded {
    Byte(u8),
    Char(char),
}

impl Decoded {
    fn encode(self, buffer: &mut [u8; 4]) -> &[u8] {
        match self {
            Decoded::Byte(b) => {
                buffer[0] = b;
                &buffer[..1]
            }
            Decoded::Char(c) => c.encode_utf8(buffer).as_bytes(),
        }
    }
}

/// The escape at the start of `text`, if there is one, and its length.
fn escape_at(text: &[u8]) -> Option<(Decoded, usize)> {
    match text.first()? {
        b'%' => Some((Decoded::Byte(hex_value(text.get(1..3)?)? as u8), 3)),
        b'\\' => json_escape(text),
        b'&' => entity(text),
        _ => None,
    }
}

fn json_escape(text: &[u8]) -> Option<(Decoded, usize)> {
    let c = match text.get(1)? {
        b'u' => {
            let unit = hex_value(text.get(2..6)?)?;
            if (0xD800..0xDC00).contains(&unit) {
                text.get(6..8).filter(|s| *s == b"\\u")?;
                let low = hex_value(text.get(8..12)?).filter(|u| (0xDC00..0xE000).contains(u))?;
                let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
                return Some((Decoded::Char(c), 12));
            }
            return char::from_u32(unit).map(|c| (Decoded::Char(c), 6));
        }
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'\'' => '\'',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        _ => return None,
    };
    Some((Decoded::Char(c), 2))
}

fn entity(text: &[u8]) -> Option<(Decoded, usize)> {
    const NAMED: [(&[u8], char); 5] = [
        (b"&amp;", '&'),
        (b"&lt;", '<'),
        (b"&gt;", '>'),
        (b"&quot;", '"'),
        (b"&apos;", '\''),
    ];
    if let Some((name, c)) = NAMED.iter().find(|(name, _)| text.starts_with(name)) {
        return Some((Decoded::Char(*c), name.len()));
    }
    let rest = text.strip_prefix(b"&#")?;
    let (digits, radix, skip) = match rest.first()? {
        b'x' | b'X' => (&rest[1..], 16, 3),
        _ => (rest, 10, 2),
    };
    let most = if radix == 16 { 6 } else { 7 };
    let count = digits
        .iter()
        .take(most + 1)
        .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
        .count();
    if count == 0 || count > most || digits.get(count) != Some(&b';') {
        return None;
    }
    let number = u32::from_str_radix(std::str::from_utf8(&digits[..count]).ok()?, radix).ok()?;
    char::from_u32(number).map(|c| (Decoded::Char(c), skip + count + 1))
}

/// The value of hex digits (either case), if they all are.
fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(value * 16 + digit)
    })
}

/// A byte that [`joined_view`] may take out between two joinable ones.
const SEPARATOR: u8 = 1;
/// A byte that can be hex or base64.
const JOINS: u8 = 2;
/// A byte that can begin an escape, or is `+` ([`decoded_view`]).
const SPECIAL: u8 = 4;

/// The classes of every byte, looked up once per byte of output.
static CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if matches!(b, b':' | b'-' | b' ' | b'\r' | b'\n') {
            classes[i] |= SEPARATOR;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_') {
            classes[i] |= JOINS;
        }
        if matches!(b, b'%' | b'\\' | b'&' | b'+') {
            classes[i] |= SPECIAL;
        }
        i += 1;
    }
    classes
};

/// Whether `b` is of `class`.
fn is(class: u8, b: u8) -> bool {
    CLASSES[b as usize] & class != 0
}

/// Whether [`joined_view`] may take `b` out between two joinable bytes: `:`, `-`, space, CR
/// or LF.
pub(super) fn is_separator(b: u8) -> bool {
    is(SEPARATOR, b)
}

/// The view of `raw` with each run of one or two of `:`, `-`, space, CR and LF taken out where
/// it lies between two bytes that can be hex or base64 (letters, digits, `+ / = - _`), and
/// with `A`-`F` as `a`-`f`: hex in any case, with separators between its bytes or wrapped over
/// lines, and base64 wrapped as MIME and PEM wrap it, read as one piece. Forms are looked for
/// in this view as the view reads them too, so a `-` inside URL-safe base64 or a lower-case
/// letter of base64 is no obstacle.
pub(super) fn joined_view(raw: &[u8]) -> View<'_> {
    let is_separator = |b: &u8| is_separator(*b);
    let joins = |b: u8| is(JOINS, b);
    let mut bytes = Vec::with_capacity(raw.len());
    let mut marks = Vec::new();
    let mut i = raw.iter().position(is_separator).unwrap_or(raw.len());
    bytes.extend_from_slice(&raw[..i]);
    while i < raw.len() {
        let run = raw[i..].iter().take_while(|b| is_separator(b)).count();
        let joined = run <= 2
            && i > 0
            && joins(raw[i - 1])
            && raw.get(i + run).is_some_and(|&next| joins(next));
        if joined {
            marks.push(Mark {
                view_start: bytes.len(),
                view_end: bytes.len(),
                out_start: i,
                out_end: i + run,
            });
        } else {
            bytes.extend_from_slice(&raw[i..i + run]);
        }
        i += run;
        let next = raw[i..]
            .iter()
            .position(is_separator)
            .map_or(raw.len(), |n| i + n);
        bytes.extend_from_slice(&raw[i..next]);
        i = next;
    }
    for b in &mut bytes {
        if matches!(*b, b'A'..=b'F') {
            *b += b'a' - b'A';
        }
    }
    View {
        bytes: Cow::Owned(bytes),
        marks,
    }
}

/// `form` as [`joined_view`] reads it.
pub(super) fn joined(form: &[u8]) -> Vec<u8> {
    joined_view(form).bytes.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_read_as_what_they_stand_for_in_any_mixture() {
        let text = br#"p%C3%a4\u0022s&#x73;&#32;\ud83d\ude00&amp;\/&lt;+%zz&#;\q"#;
        assert_eq!(
            String::from_utf8(decoded(text)).unwrap(),
            "p\u{e4}\"ss \u{1F600}&/< %zz&#;\\q"
        );
        let view = decoded_view(b"a%41b");
        assert_eq!(&view.bytes[..], b"aAb");
        assert_eq!(view.output_span(1, 2), (1, 4));
        assert_eq!(view.output_span(0, 3), (0, 5));
    }

    #[test]
    fn a_value_holding_something_like_an_escape_is_also_looked_for_as_read() {
        let forms = decoded_forms(b"50%41 off&amp;");
        let has = |form: &str| forms.iter().any(|f| f == form.as_bytes());
        assert!(has("50%41 off&amp;") && has("50A off&"));
        assert!(decoded_forms(b"a+b c") == [b"a b c".to_vec()]);
        assert!(decoded_forms(b"MIIBaa+/") == [b"MIIBaa /".to_vec()]);
    }

    #[test]
    fn a_lone_surrogate_or_an_overlong_entity_is_not_an_escape() {
        assert_eq!(decoded(br"\ud83dx"), br"\ud83dx");
        assert_eq!(decoded(b"&#x00000041;"), b"&#x00000041;");
        assert_eq!(decoded(b"&#x000041;"), b"A");
    }

    #[test]
    fn separators_between_joined_bytes_are_taken_out_one_or_two_at_a_time() {
        let view = joined_view(b"DE:ad be-EF\r\n00:::11 zz.");
        assert_eq!(&view.bytes[..], b"deadbeef00:::11zz.");
        assert_eq!(view.output_span(0, 8), (0, 11));
        assert_eq!(view.output_span(13, 15), (18, 20));
        let view = joined_view(b"QUJD\r\nREVG\nR0g=");
        assert_eq!(&view.bytes[..], b"QUJdReVGR0g=");
    }
}
