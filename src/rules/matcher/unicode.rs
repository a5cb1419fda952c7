//! Lines with non-ASCII bytes, matched with the patterns as written (see
//! the module doc of [`super`]): the ASCII-only line automaton stops at
//! their first such byte and hands the line over to these.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::meta::{self, Regex as MetaRegex};
use regex_automata::nfa::thompson;
use regex_automata::{Input, MatchKind, PatternID, PatternSet};
use regex_syntax::hir::{self, Class, Hir};

use super::lazy::{lazy_config, match_only_nfa, matched_patterns, untagged_next};
use super::syntax::{line_only, parse_multi_line, without_word_boundaries};
use super::{Matcher, DFA_CACHE_BYTES};

/// Which patterns match a line with non-ASCII bytes: a lazy DFA of the
/// patterns, where those with a Unicode word boundary (which a DFA cannot
/// tell next to a non-ASCII byte) are in without it, a looser pattern whose
/// matches their own regex confirms.
pub(super) struct UnicodeLines {
    /// `None` if it cannot be built: then the set answers for all.
    pub(super) dfa: Option<DFA>,
    /// DFA pattern -> pattern of the matcher, and whether its regex must
    /// confirm the match.
    pub(super) ids: Vec<(PatternID, bool)>,
}

/// What matching a line with non-ASCII bytes needs.
#[derive(Default)]
pub(super) struct UnicodeScratch {
    pub(super) dfa: Option<(DfaCache, PatternSet)>,
    pub(super) set: Option<meta::Cache>,
    /// A line that is not UTF-8, decoded (lossily) as events show it.
    pub(super) text: Vec<u8>,
}
impl Matcher {
    /// Fills `patset` with the patterns, as written, that match `line` alone.
    /// A line that is not UTF-8 is matched as its lossy decoding: the text
    /// that events show, in which each invalid sequence is U+FFFD, which
    /// `.`, `\S` and `[^:]` match (read byte by byte, an invalid byte in a
    /// user name or URL would stop `(?P<user>.*)` or `[^"]*` short, and
    /// the line would escape the rule).
    pub(super) fn which_unicode(
        &self,
        scratch: &mut UnicodeScratch,
        patset: &mut PatternSet,
        line: &[u8],
    ) {
        patset.clear();
        let UnicodeScratch {
            dfa: dfa_cache,
            set: set_cache,
            text,
        } = scratch;
        let line = utf8_or_lossy(line, text);
        let lines = self.unicode_lines.get_or_init(|| self.unicode_lines());
        if let Some(dfa) = &lines.dfa {
            let (cache, found) = dfa_cache
                .get_or_insert_with(|| (DfaCache::new(dfa), PatternSet::new(dfa.pattern_len())));
            if which_in_line(dfa, cache, line, found).is_some() {
                for id in found.iter() {
                    let Some(&(id, confirm)) = lines.ids.get(id.as_usize()) else {
                        continue;
                    };
                    let plan = self
                        .twins
                        .get(id.as_usize())
                        .and_then(|t| self.captures.get(t[0]));
                    if !confirm || plan.is_some_and(|p| p.regex().is_match(line)) {
                        patset.insert(id);
                    }
                }
                return;
            }
            patset.clear();
        }
        let set = self.set.get_or_init(|| {
            let sources = self
                .twins
                .iter()
                .map(|t| self.captures[t[0]].source.as_str());
            build_set(sources).ok()
        });
        if let Some(set) = set {
            let cache = set_cache.get_or_insert_with(|| set.create_cache());
            set.which_overlapping_matches_with(cache, &Input::new(line), patset);
            return;
        }
        for (id, slots) in self.twins.iter().enumerate() {
            let plan = &self.captures[slots[0]];
            if let (true, Ok(id)) = (plan.regex().is_match(line), PatternID::new(id)) {
                patset.insert(id);
            }
        }
    }

    /// See [`UnicodeLines`].
    fn unicode_lines(&self) -> UnicodeLines {
        let mut lines = UnicodeLines {
            dfa: None,
            ids: Vec::new(),
        };
        let mut hirs = Vec::new();
        for (id, slots) in self.twins.iter().enumerate() {
            let (Ok(id), Some(plan)) = (PatternID::new(id), self.captures.get(slots[0])) else {
                continue;
            };
            let Ok(hir) = parse_multi_line(&plan.source) else {
                // Cannot be (it was parsed at load): the set answers.
                return lines;
            };
            let confirm = hir.properties().look_set().contains_word_unicode();
            hirs.push(if confirm {
                without_word_boundaries(&hir)
            } else {
                hir
            });
            lines.ids.push((id, confirm));
        }
        lines.dfa = unicode_line_dfa(hirs).ok();
        lines
    }
}

/// `line` if it is UTF-8, else its lossy decoding (each invalid sequence
/// made U+FFFD, as `String::from_utf8_lossy` does) in `buf`.
pub(super) fn utf8_or_lossy<'a>(line: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    if std::str::from_utf8(line).is_ok() {
        return line;
    }
    buf.clear();
    for chunk in line.utf8_chunks() {
        buf.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            buf.extend_from_slice(
                char::REPLACEMENT_CHARACTER
                    .encode_utf8(&mut [0; 4])
                    .as_bytes(),
            );
        }
    }
    buf
}

/// The patterns as written, each followed by anything, in one lazy DFA
/// over one line: the state after its end holds the patterns that match it.
fn unicode_line_dfa(hirs: Vec<Hir>) -> Result<DFA, String> {
    let any = Hir::repetition(hir::Repetition {
        min: 0,
        max: None,
        greedy: true,
        sub: Box::new(Hir::class(Class::Bytes(hir::ClassBytes::new([
            hir::ClassBytesRange::new(0, 0xff),
        ])))),
    });
    let hirs: Vec<Hir> = hirs
        .into_iter()
        .map(|hir| Hir::concat(vec![line_only(hir), any.clone()]))
        .collect();
    let nfa = match_only_nfa(&hirs, thompson::Config::new())?;
    DFA::builder()
        .configure(lazy_config(DFA_CACHE_BYTES))
        .build_from_nfa(nfa)
        .map_err(|e| e.to_string())
}

/// Fills `patset` with the patterns of [`unicode_line_dfa`] that match
/// `line`; `None` if the DFA gives up.
fn which_in_line(
    dfa: &DFA,
    cache: &mut DfaCache,
    line: &[u8],
    patset: &mut PatternSet,
) -> Option<()> {
    patset.clear();
    let mut sid = dfa.start_state_forward(cache, &Input::new(line)).ok()?;
    for &byte in line {
        if let Some(next) = untagged_next(dfa, cache, sid, byte) {
            sid = next;
            continue;
        }
        sid = dfa.next_state(cache, sid, byte).ok()?;
        if sid.is_dead() {
            return Some(());
        }
        if sid.is_quit() {
            return None;
        }
    }
    sid = dfa.next_eoi_state(cache, sid).ok()?;
    if sid.is_match() {
        matched_patterns(dfa, cache, sid, patset);
    }
    Some(())
}

/// The patterns as written, as a set over lines alone.
fn build_set<'a>(sources: impl Iterator<Item = &'a str>) -> Result<MetaRegex, String> {
    let hirs = sources
        .map(|source| {
            let hir = parse_multi_line(source)?;
            Ok(line_only(hir))
        })
        .collect::<Result<Vec<_>, String>>()?;
    meta::Builder::new()
        .configure(
            MetaRegex::config()
                .match_kind(MatchKind::All)
                .utf8_empty(false)
                .hybrid_cache_capacity(DFA_CACHE_BYTES),
        )
        .build_many_from_hir(&hirs)
        .map_err(|e| format!("cannot compile the rule set: {e}"))
}
#[cfg(test)]
mod tests {
    use super::super::tests::{check_matcher, random_lines, random_rules};
    use super::*;

    #[test]
    fn random_lines_match_through_the_unicode_dfa() {
        // The lazy DFA of the patterns as written takes every line with
        // non-ASCII bytes, `\b` included (it is checked by the regex).
        let rs = random_rules();
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let mut patset = PatternSet::new(m.twins.len());
        m.which_unicode(&mut s.walk.unicode, &mut patset, "user=\u{e9}".as_bytes());
        assert!(s.walk.unicode.dfa.is_some() && s.walk.unicode.set.is_none());
        let lines = random_lines(3000, false);
        check_matcher(&m, &rs, &lines);
        m.for_each_match(&mut s, &lines.join(&b"\n"[..]), |_, _, _, _| {});
        assert!(s.walk.unicode.set.is_none(), "the DFA never gave up");
    }
}
