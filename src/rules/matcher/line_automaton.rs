//! The automaton of step 1 (see the module doc of [`super`]): every
//! pattern of an input type, ASCII-only, each extended to the end of its
//! line, in one lazy DFA, with a literal prefilter when one is sound.

use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::MatchKind;
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

use super::lazy::{lazy_config, match_only_nfa};
use super::syntax::ascii_only;

/// Step 1: all patterns, ASCII-only, each extended to the end of its line.
pub(super) struct LineAutomaton {
    pub(super) dfa: DFA,
    /// Prefix literals of every pattern (as written), when they make a fast
    /// filter: lines without one are skipped without running the DFA.
    pub(super) prefilter: Option<Prefilter>,
}

impl LineAutomaton {
    /// `hirs` are the patterns as written.
    pub(super) fn new(hirs: &[Hir], cache_bytes: usize) -> Result<LineAutomaton, String> {
        let to_line_end = Hir::concat(vec![
            Hir::repetition(hir::Repetition {
                min: 0,
                max: None,
                greedy: true,
                sub: Box::new(Hir::class(Class::Bytes(hir::ClassBytes::new([
                    hir::ClassBytesRange::new(0, b'\n' - 1),
                    hir::ClassBytesRange::new(b'\n' + 1, 0x7f),
                ])))),
            }),
            Hir::look(Look::EndLF),
        ]);
        let extended: Vec<Hir> = hirs
            .iter()
            .map(|h| Hir::concat(vec![ascii_only(h, true), to_line_end.clone()]))
            .collect();
        let nfa = match_only_nfa(&extended, thompson::Config::new())
            .map_err(|e| format!("cannot compile the rule set: {e}"))?;
        let mut config = lazy_config(cache_bytes);
        for byte in 0x80..=0xff {
            config = config.quit(byte, true);
        }
        let dfa = DFA::builder()
            .configure(config)
            .build_from_nfa(nfa)
            .map_err(|e| format!("cannot compile the rule set: {e}"))?;
        // From the patterns as written, so that it is sound for every line,
        // ASCII or not: a line without a candidate matches nothing. (Not
        // from the line_only forms: those differ only in what they say of
        // `\n`, which no line holds, and in anchors, which have no literals.)
        // It runs on the raw bytes, and a line that is not UTF-8 is matched
        // as its lossy decoding, which holds the same literals plus U+FFFD:
        // not sound for a pattern whose literals have that character.
        let prefilter = Prefilter::from_hirs_prefix(MatchKind::All, hirs)
            .filter(Prefilter::is_fast)
            .filter(|_| !hirs.iter().any(mentions_replacement));
        Ok(LineAutomaton { dfa, prefilter })
    }
}

/// Whether a literal or a small class (one that prefix literals may be
/// drawn from) of `hir` holds U+FFFD or a byte of its encoding.
fn mentions_replacement(hir: &Hir) -> bool {
    const SMALL: u32 = 64;
    let encoding = |b: &u8| matches!(b, 0xef | 0xbf | 0xbd);
    match hir.kind() {
        HirKind::Literal(lit) => lit.0.iter().any(encoding),
        HirKind::Class(Class::Unicode(c)) => {
            let size: u32 = c
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            size <= SMALL
                && c.ranges()
                    .iter()
                    .any(|r| (r.start()..=r.end()).contains(&char::REPLACEMENT_CHARACTER))
        }
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| (r.start()..=r.end()).any(|b| encoding(&b))),
        HirKind::Repetition(r) => mentions_replacement(&r.sub),
        HirKind::Capture(c) => mentions_replacement(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(mentions_replacement),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}
#[cfg(test)]
mod tests {
    use super::super::tests::{check_against_reference, rules};
    use super::super::Matcher;

    #[test]
    fn lines_found_through_the_prefilter_match_as_written() {
        // A literal prefix shared by every pattern: candidate lines are
        // found with memmem, then matched alone.
        let rs = rules(&[
            ("a", r"\[client (?P<ip>\S+)\] denied"),
            ("b", r"\[client [^\]]*\] (?i)k(?P<w>\w*)$"),
        ]);
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        assert!(m.lines.as_ref().is_some_and(|l| l.prefilter.is_some()));
        let lines: Vec<Vec<u8>> = [
            "[client 1.2.3.4] denied",
            "x [client 1.2.3.4\u{a0}] denied",
            "[client 1.2.3.4\u{a0}x] denied",
            "nothing here",
            "[client ::1] kelvin",
            "[client ::1] \u{212a}elvin",
            "[client ::1] \u{212a}elvin\u{e9}",
            "[client [client ::1] k",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        check_against_reference(&rs, &lines);
    }
}
