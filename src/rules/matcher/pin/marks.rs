//! The backward pass of a [`PinEngine`]: at each position of the line, the
//! rests of the pattern that match from there (see the module doc of
//! [`super`]).

use regex_automata::hybrid::dfa::Cache as DfaCache;
use regex_automata::hybrid::LazyStateID;
use regex_automata::Input;

use super::super::lazy::untagged_next;
use super::{PinEngine, PinScratch};

/// A rest as the marks hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rest {
    /// It matches the empty text with no assertion, so (anything may
    /// follow) it matches from every position: not tracked.
    Always,
    /// Its bit in the marks.
    Bit(u32),
}

impl Rest {
    pub(super) fn marked(self, marks: &[u64], at: usize) -> bool {
        match self {
            Rest::Always => at < marks.len(),
            Rest::Bit(bit) => marks.get(at).is_some_and(|m| m & (1 << bit) != 0),
        }
    }
}

/// Entries of [`PinScratch::state_rests`] (a power of two).
pub(super) const STATE_RESTS: usize = 256;

/// Where `sid` goes in [`PinScratch::state_rests`]. (A state ID's number
/// is private; its `Hash` gives it.)
fn state_slot(sid: LazyStateID) -> usize {
    struct Number(u64);
    impl std::hash::Hasher for Number {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }
    let mut number = Number(0);
    std::hash::Hash::hash(&sid, &mut number);
    // Fibonacci hashing: the numbers are multiples of the DFA's stride.
    (number.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % STATE_RESTS
}
impl PinEngine {
    /// Whether the marks of the current line cover `at`; computes them
    /// down to `at` if not. False if the DFA gives up.
    pub(super) fn marks_at(&self, scratch: &mut PinScratch, line: &[u8], at: usize) -> bool {
        if scratch.marked_from.is_some_and(|from| from <= at) {
            return true;
        }
        self.mark_rests(scratch, line, at).is_some()
    }

    /// The backward pass, from the line end down to `bound` (a boundary
    /// needs the marks only from where it is placed on): fills `marks`,
    /// `last` and `seen`.
    pub(super) fn mark_rests(
        &self,
        scratch: &mut PinScratch,
        line: &[u8],
        bound: usize,
    ) -> Option<()> {
        let PinScratch {
            rev: cache,
            marks,
            last,
            seen,
            state_rests,
            clears,
            marked_from,
            ..
        } = scratch;
        let dfa = &self.rev;
        *marked_from = None;
        *seen = 0;
        marks.clear();
        marks.resize(line.len() + 1, 0);
        // Going backwards, a rest not seen yet is at its last position.
        // Runs of one state (a quoted string) skip the table.
        let mut previous = (LazyStateID::default(), 0u64);
        let mut record = |cache: &DfaCache, sid: LazyStateID, at: usize| {
            // A cleared cache gives the IDs to other states.
            if *clears != cache.clear_count() {
                *clears = cache.clear_count();
                state_rests.fill((LazyStateID::default(), 0));
                previous = (LazyStateID::default(), 0);
            }
            if previous.0 != sid {
                let entry = &mut state_rests[state_slot(sid)];
                if entry.0 != sid {
                    let mut mask = 0u64;
                    for i in 0..dfa.match_len(cache, sid) {
                        mask |= 1 << dfa.match_pattern(cache, sid, i).as_usize();
                    }
                    *entry = (sid, mask);
                }
                previous = *entry;
            }
            let mask = previous.1;
            marks[at] = mask;
            let mut new = mask & !*seen;
            while new != 0 {
                last[new.trailing_zeros() as usize] = at;
                new &= new - 1;
            }
            *seen |= mask;
        };
        if dfa.pattern_len() == 0 {
            *marked_from = Some(bound);
            return Some(());
        }
        let input = Input::new(line);
        let mut sid = dfa.start_state_reverse(cache, &input).ok()?;
        let mut at = line.len();
        // The byte before `bound` gives the marks at `bound`.
        let lowest = bound.saturating_sub(1);
        while let Some(&byte) = at
            .checked_sub(1)
            .filter(|&i| i >= lowest)
            .and_then(|i| line.get(i))
        {
            at -= 1;
            if let Some(next) = untagged_next(dfa, cache, sid, byte) {
                sid = next;
                continue;
            }
            sid = dfa.next_state(cache, sid, byte).ok()?;
            if sid.is_match() {
                // Seen one byte late: the rests start after this byte.
                record(cache, sid, at + 1);
            } else if sid.is_dead() {
                *marked_from = Some(bound);
                return Some(());
            } else if sid.is_quit() {
                return None;
            }
        }
        if bound == 0 {
            sid = dfa.next_eoi_state(cache, sid).ok()?;
            if sid.is_match() {
                record(cache, sid, 0);
            }
        }
        *marked_from = Some(bound);
        Some(())
    }
}
