//! Lazy DFAs as the matcher and the pin engine build and walk them by hand.

use regex_automata::hybrid::dfa::{self, Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{MatchKind, PatternSet};
use regex_syntax::hir::Hir;

/// The configuration every lazy DFA here starts from: every pattern's
/// matches (not only the leftmost), within `cache_bytes`; below the
/// minimum, the minimum rather than an error (the DFA is then slower, as
/// its cache is cleared more often).
pub(super) fn lazy_config(cache_bytes: usize) -> dfa::Config {
    DFA::config()
        .match_kind(MatchKind::All)
        .cache_capacity(cache_bytes)
        .skip_cache_capacity_check(true)
}

/// A byte NFA of `hirs` (with `config`'s other settings) for a lazy DFA,
/// which has no use for capture states.
pub(super) fn match_only_nfa(
    hirs: &[Hir],
    config: thompson::Config,
) -> Result<thompson::NFA, String> {
    thompson::Compiler::new()
        .configure(config.utf8(false).which_captures(WhichCaptures::None))
        .build_many_from_hir(hirs)
        .map_err(|e| e.to_string())
}

/// The state after `byte` when neither `sid` nor that state is tagged (a
/// match, a start, dead, quit, or not computed yet): one table lookup, the
/// whole of most steps of a walk. `None`: the step is for
/// [`DFA::next_state`], which takes every case.
#[inline(always)]
pub(super) fn untagged_next(
    dfa: &DFA,
    cache: &DfaCache,
    sid: LazyStateID,
    byte: u8,
) -> Option<LazyStateID> {
    if sid.is_tagged() {
        return None;
    }
    let next = dfa.next_state_untagged(cache, sid, byte);
    (!next.is_tagged()).then_some(next)
}

/// Fills `patset` with the patterns of the match state `sid`.
pub(super) fn matched_patterns(
    dfa: &DFA,
    cache: &DfaCache,
    sid: LazyStateID,
    patset: &mut PatternSet,
) {
    patset.clear();
    for i in 0..dfa.match_len(cache, sid) {
        patset.insert(dfa.match_pattern(cache, sid, i));
    }
}
