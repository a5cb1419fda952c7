//! Rewrites of a pattern's syntax tree, so that the automata built from
//! it match on a buffer of many lines, or on ASCII lines only, exactly
//! where the pattern as written matches on one line.

use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

/// `source` parsed as `regex::bytes` parses it: a class may match any
/// byte, not only UTF-8.
pub(super) fn parse(source: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(source)
        .map_err(|e| e.to_string())
}

/// [`parse`] with `^` and `$` at line ends, as the automata over many lines
/// need them.
pub(super) fn parse_multi_line(source: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .multi_line(true)
        .utf8(false)
        .build()
        .parse(source)
        .map_err(|e| e.to_string())
}

/// `hir` without its Unicode word boundaries: a looser pattern (dropping
/// an assertion only adds matches) that a DFA can run on any text.
pub(super) fn without_word_boundaries(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(
            Look::WordUnicode
            | Look::WordUnicodeNegate
            | Look::WordStartUnicode
            | Look::WordEndUnicode
            | Look::WordStartHalfUnicode
            | Look::WordEndHalfUnicode,
        ) => Hir::empty(),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(without_word_boundaries(&r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(without_word_boundaries(&c.sub)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(without_word_boundaries).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(without_word_boundaries).collect())
        }
        _ => hir.clone(),
    }
}

/// Rewrites a pattern so that no match can contain a line break when run
/// over a buffer of many lines: `\n` leaves every class (`\s`, `[^"]`), a
/// literal with a newline can never match, and `\A`/`\z` become line
/// anchors. Matching one line alone is unchanged, which is what lets a
/// buffer-wide search stand for one search per line.
pub(super) fn line_only(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Class(Class::Unicode(mut c)) => {
            c.difference(&hir::ClassUnicode::new([hir::ClassUnicodeRange::new(
                '\n', '\n',
            )]));
            class_or_fail(Class::Unicode(c))
        }
        HirKind::Class(Class::Bytes(mut c)) => {
            c.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'\n', b'\n',
            )]));
            class_or_fail(Class::Bytes(c))
        }
        HirKind::Look(look) => Hir::look(match look {
            Look::Start => Look::StartLF,
            Look::End => Look::EndLF,
            other => other,
        }),
        HirKind::Repetition(mut r) => {
            r.sub = Box::new(line_only(*r.sub));
            Hir::repetition(r)
        }
        HirKind::Capture(mut c) => {
            c.sub = Box::new(line_only(*c.sub));
            Hir::capture(c)
        }
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(line_only).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(line_only).collect()),
        HirKind::Literal(lit) if lit.0.contains(&b'\n') => Hir::fail(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Empty => Hir::empty(),
    }
}

/// Rewrites a pattern to what it can match in an ASCII haystack: classes
/// keep their ASCII members (as single bytes, so `\S` is one NFA state, not
/// a UTF-8 automaton), literals with other bytes never match, and Unicode
/// word boundaries become ASCII ones (they agree when both neighbours are
/// ASCII). On a haystack of bytes < 0x80 the result matches exactly where
/// the original does, with the same groups; on any other it may not.
///
/// With `lines`, also rewrites as [`line_only`] does, in the same pass
/// (each pass over the large web patterns costs milliseconds at start-up).
pub(super) fn ascii_only(hir: &Hir, lines: bool) -> Hir {
    let class = |ranges: &mut dyn Iterator<Item = (u32, u32)>| {
        let mut class = hir::ClassBytes::new(
            ranges
                .filter(|&(start, _)| start < 0x80)
                // Both bounds are < 0x80 here, so the casts are exact.
                .map(|(start, end)| hir::ClassBytesRange::new(start as u8, end.min(0x7f) as u8)),
        );
        if lines {
            class.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'\n', b'\n',
            )]));
        }
        class_or_fail(Class::Bytes(class))
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => class(
            &mut c
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Class(Class::Bytes(c)) => class(
            &mut c
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Look(look) => Hir::look(match *look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            Look::Start if lines => Look::StartLF,
            Look::End if lines => Look::EndLF,
            other => other,
        }),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(ascii_only(&r.sub, lines)),
        }),
        HirKind::Capture(c) => Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(ascii_only(&c.sub, lines)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|h| ascii_only(h, lines)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|h| ascii_only(h, lines)).collect())
        }
        HirKind::Literal(lit) if !lit.0.is_ascii() || (lines && lit.0.contains(&b'\n')) => {
            Hir::fail()
        }
        HirKind::Literal(lit) => Hir::literal(lit.0.clone()),
        HirKind::Empty => Hir::empty(),
    }
}

fn class_or_fail(class: Class) -> Hir {
    if class.is_empty() {
        Hir::fail()
    } else {
        Hir::class(class)
    }
}
