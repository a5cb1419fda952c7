//! Lazy DFAs as the matcher and the pin engine build and walk them by hand.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::PatternSet;
use regex_syntax::hir::Hir;

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
