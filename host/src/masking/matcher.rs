//! One matcher for every value a run's output or an answer is masked for.
//!
//! A [`Matcher`] holds one Aho-Corasick automaton per view of the output (`views.rs`) over
//! the forms of all its values ([`ValueForms`]), built once when a value is added, whatever
//! the number of streams and answers it serves. A search runs each automaton once over its
//! view, whatever the number of values, finds overlapping occurrences, and knows which value
//! each occurrence is a form of.
//!
//! Whole forms never depend on the text after them: of the occurrences of one source (a
//! value, or a line of a multi-line value) that begin at one place, only the shortest counts. A value that ends with `&`, echoed with
//! `amp;` after it, is masked as `***amp;` as any other value is; otherwise the longer
//! occurrence (`&amp;` read as `&`) would tell a run what the value's last character is.

use super::views::{decoded, decoded_forms, decoded_view, is_separator, joined, joined_view, View};
use crate::encoded_forms::ValueForms;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// The most bytes of a form the automaton looks for; the rest is compared where the
/// beginning was found. The automaton stays small and quick to build however long the values
/// (a 4 KiB key's base64 is one 32-byte anchor, not 5 KiB of states).
const ANCHOR: usize = 32;

/// The most anchor bytes an automaton is built as a DFA for (about 100 values' forms: a few
/// MiB of transitions, built in milliseconds); more make a contiguous NFA.
const DFA_ANCHOR_BYTES: usize = 32 << 10;

/// The automaton of one view over the beginnings of its forms, and each form whole with the
/// source (a value, or a line of one) it belongs to.
struct Search {
    automaton: AhoCorasick,
    forms: Vec<(usize, Vec<u8>)>,
}

impl Drop for Search {
    fn drop(&mut self) {
        for (_, form) in &mut self.forms {
            zeroize::Zeroize::zeroize(form);
        }
    }
}

impl Search {
    /// The automaton over `forms` (source, form as its view reads it); none when there are
    /// none.
    fn build(forms: Vec<(usize, Vec<u8>)>) -> Option<Search> {
        if forms.is_empty() {
            return None;
        }
        // A DFA searches about twice as fast as an NFA, but its size grows with the patterns'
        // states times the bytes they use: past a budget, a contiguous NFA.
        let anchors: usize = forms.iter().map(|(_, f)| f.len().min(ANCHOR)).sum();
        let kind = if anchors <= DFA_ANCHOR_BYTES {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        };
        let automaton = AhoCorasick::builder()
            .kind(Some(kind))
            .match_kind(MatchKind::Standard)
            .build(
                forms
                    .iter()
                    .map(|(_, form)| &form[..form.len().min(ANCHOR)]),
            )
            .expect("byte patterns always build");
        Some(Search { automaton, forms })
    }

    /// Adds each occurrence in `view` as (output start, output end, source): where a form's
    /// beginning was found and the rest of it follows.
    fn find(&self, view: &View<'_>, found: &mut Vec<(usize, usize, usize)>) {
        let bytes = view.bytes.as_ref();
        for m in self.automaton.find_overlapping_iter(bytes) {
            let (source, form) = &self.forms[m.pattern().as_usize()];
            let end = m.start() + form.len();
            if bytes.get(m.start()..end) == Some(form.as_slice()) {
                let (start, end) = view.output_span(m.start(), end);
                found.push((start, end, *source));
            }
        }
    }
}

/// Every form that `pick` chooses of each source, as `read` turns it into what its view
/// shows, with the source's index.
fn forms_for_view<'a>(
    values: &'a [ValueForms],
    pick: impl Fn(&'a ValueForms) -> Vec<&'a Vec<u8>> + 'a,
    read: impl Fn(&[u8]) -> Vec<u8> + 'a,
) -> Vec<(usize, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .flat_map(|(source, forms)| pick(forms).into_iter().map(move |f| (source, f)))
        .map(|(source, form)| (source, read(form)))
        .collect()
}

/// `forms` and, for each that begins or ends with a separator (a `-` of URL-safe base64, of
/// a PEM line), the same without it: the joined view takes a separator out of the output
/// when a joinable byte lies before (or after) it, which depends on the text around a form.
fn with_edges_trimmed(forms: Vec<(usize, Vec<u8>)>) -> Vec<(usize, Vec<u8>)> {
    let mut all = Vec::with_capacity(forms.len());
    for (source, form) in forms {
        let trimmed = form
            .iter()
            .position(|&b| !is_separator(b))
            .zip(form.iter().rposition(|&b| !is_separator(b)))
            .map(|(first, last)| form[first..=last].to_vec())
            .filter(|t| t.len() != form.len() && t.len() >= crate::encoded_forms::MIN_FORM);
        all.push((source, form));
        all.extend(trimmed.map(|t| (source, t)));
    }
    all
}

#[derive(Default)]
pub(crate) struct Matcher {
    written: Option<Search>,
    decoded: Option<Search>,
    joined: Option<Search>,
    longest: usize,
    /// For each source, the values it stands for.
    values_of: Vec<Vec<usize>>,
}

impl Matcher {
    /// The matcher for `values`: their literals (as the view reads them) and UTF-16 in the
    /// decoded view; hex and
    /// base64 in the joined view; and, as written, the literal value when it holds a byte that
    /// can begin an escape (`%`, `\`, `&`), so that its shortest occurrence is found where
    /// the decoded view would read an escape made of its end and the text after it.
    pub(crate) fn build(values: &[ValueForms], values_of: Vec<Vec<usize>>) -> Matcher {
        let escapes = |f: &&Vec<u8>| f.iter().any(|b| matches!(b, b'%' | b'\\' | b'&'));
        Matcher {
            written: Search::build(forms_for_view(
                values,
                move |f| f.written.iter().take(1).filter(escapes).collect(),
                <[u8]>::to_vec,
            )),
            decoded: Search::build(
                values
                    .iter()
                    .enumerate()
                    .flat_map(|(source, f)| {
                        let literal = decoded_forms(&f.written[0]);
                        let utf16 = f.written[1..].iter().map(|form| decoded(form));
                        literal
                            .into_iter()
                            .chain(utf16)
                            .map(move |form| (source, form))
                    })
                    .collect(),
            ),
            joined: Search::build(with_edges_trimmed(forms_for_view(
                values,
                |f| f.hex.iter().chain(&f.unwrapped).collect(),
                joined,
            ))),
            longest: values
                .iter()
                .map(ValueForms::longest_span)
                .max()
                .unwrap_or(0),
            values_of,
        }
    }

    /// The most output bytes one occurrence can span: the output held back while an
    /// occurrence may still complete is one byte less.
    pub(crate) fn longest(&self) -> usize {
        self.longest
    }

    /// The output spans of the occurrences in `output` that begin before `before`, each the
    /// shortest of its source's occurrences beginning there, with the values it is a form of.
    pub(crate) fn find(&self, output: &[u8], before: usize) -> Vec<(usize, usize, &[usize])> {
        let mut found = Vec::new();
        if let Some(search) = &self.written {
            search.find(&View::of(output), &mut found);
        }
        if let Some(search) = &self.decoded {
            search.find(&decoded_view(output), &mut found);
        }
        if let Some(search) = &self.joined {
            search.find(&joined_view(output), &mut found);
        }
        found.retain(|&(start, end, _)| start < before && end > start);
        found.sort_unstable_by_key(|&(start, end, source)| (source, start, end));
        found.dedup_by_key(|&mut (start, _, source)| (source, start));
        found
            .into_iter()
            .map(|(start, end, source)| (start, end, self.values_of[source].as_slice()))
            .collect()
    }
}
