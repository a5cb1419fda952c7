//! Captures taken with two lazy DFAs, with no backtracking: time linear in
//! the line, whatever its content, and exactly the groups that the
//! leftmost-first engines (the backtracker, `regex`) give.
//!
//! The pattern is read as a sequence of group boundaries (zero-width),
//! *segments* (the runs without groups between them) and *choices* (an
//! alternation or a `?` with groups inside), each choice's branches being
//! such sequences in turn. What may follow a point of the sequence, up to
//! the end of the pattern, is a *rest*; one backward pass of a DFA over
//! the line marks at each position the rests that match from there (with
//! anything after them). The leftmost-first match starts at the first
//! position where the whole pattern (the first rest) is marked. From there
//! its boundaries are placed left to right, each exactly:
//!
//! - a segment that starts at `x` ends at a position `p` where the segment
//!   matches `line[x..p]` (a forward DFA run, anchored at `x`) and where
//!   its rest is marked. Every match of the pattern that passes `x` there
//!   ends the segment at such a `p`, the leftmost-first one included, so
//!   when there is one `p` only, that is where it ends. When there are
//!   several and the segment is a greedy repetition `X*` (`X+`, `X{n,m}`)
//!   of an `X` whose iterations can be cut in only one way (a class, a
//!   literal, or branches of fixed length with different first
//!   characters: `[^"\\]|\\.`), the candidates lie on the one chain of
//!   iteration ends, and leftmost-first, which prefers one more iteration
//!   at each of them, stops at the last one; the first one if it is lazy.
//!   Any other tie is left to the backtracker.
//! - a choice at `x` takes its first branch, in priority order (for a
//!   greedy `?`, the group first), that is marked at `x` when followed by
//!   the rest of the pattern: exactly the branch from which leftmost-first
//!   finds a match.
//!
//! A group inside a repetition other than `?` (`(?:(?P<x>a),)*`) makes the
//! pattern unfit: the backtracker takes it.
//!
//! [`plan`] reads the pattern into that sequence, [`marks`] is the
//! backward pass, and [`place`] places the boundaries.
//!
//! The matcher ([`super`]) uses it to take the groups of the rules that hit
//! a line. The differential test below holds it to `regex` on random
//! patterns and lines.

mod marks;
mod place;
mod plan;

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_syntax::hir::{Hir, Look};

use super::lazy::{lazy_config, match_only_nfa};
use marks::{Rest, STATE_RESTS};
use place::{clear_spans, Placed};
use plan::{flatten, strip, PinBuilder, PinStep};

/// Bound on the lazy DFA memory of each of the two automata of a
/// [`PinEngine`] (most use far less: a pattern's lines visit few states).
const PIN_CACHE_BYTES: usize = 4 << 20;

/// Bound on the size of a [`PinEngine`]'s automata: it holds a pattern
/// several times over (each rest is a suffix of it); past this, the
/// backtracker alone takes the pattern.
const PIN_NFA_BYTES: usize = 16 << 20;

/// Captures of one pattern placed by lazy DFAs (see the module doc).
pub(super) struct PinEngine {
    /// One pattern per segment, each run anchored where it starts.
    fwd: DFA,
    /// One pattern per rest (the first is the whole pattern), run
    /// backwards and unanchored from the line end.
    rev: DFA,
    /// The same rests forwards, each run anchored: whether a rest matches
    /// from a few positions costs less than marking the line.
    ahead: DFA,
    steps: Vec<PinStep>,
    /// The whole pattern as a rest: where it is marked, a match starts.
    whole: Rest,
    /// Whether every match starts at the line start: then the forward runs
    /// alone place the groups of most lines.
    anchored: bool,
    /// Group slots (the largest group index plus one).
    groups: usize,
}

/// Per-line buffers of a [`PinEngine`].
pub(super) struct PinScratch {
    fwd: DfaCache,
    rev: DfaCache,
    ahead: DfaCache,
    /// The possible ends of a segment, when there are several.
    ends: Vec<usize>,
    /// Per position of the line (and its end): the rests marked there.
    marks: Vec<u64>,
    /// Per rest bit: the last position where it is marked.
    last: [usize; PIN_RESTS],
    /// The rests marked somewhere (the bits of `last` that are set).
    seen: u64,
    /// The rests of recent match states of `rev`, by state: reading them
    /// from the state itself costs a cache miss at nearly every byte of
    /// quoted text (where a rest like `X*"` matches). Valid while `rev`'s
    /// cache has been cleared `clears` times.
    state_rests: Box<[(LazyStateID, u64); STATE_RESTS]>,
    clears: usize,
    /// The lowest position the marks of the current line cover; `None`
    /// until a boundary needs them.
    marked_from: Option<usize>,
    spans: Vec<(Option<usize>, Option<usize>)>,
}

/// Rests one [`PinEngine`] can mark (a bit each in a `u64`).
const PIN_RESTS: usize = 64;

impl PinEngine {
    /// The engine of the groups `wanted` (by index) of `hir`; `None` if
    /// they are not all placed by its sequence (see [`PinEngine`]) or the
    /// automata cannot be built. Other groups are read as plain groups.
    pub(super) fn new(hir: &Hir, wanted: &[usize]) -> Option<PinEngine> {
        let mut elems = Vec::new();
        flatten(hir, wanted, &mut elems)?;
        let mut b = PinBuilder {
            segments: Vec::new(),
            rests: Vec::new(),
        };
        let whole = b.rest(strip(&elems))?;
        let anchored = hir.properties().look_set_prefix().contains(Look::Start);
        let steps = b.plan(&elems, &Hir::empty(), false)?;
        let groups = hir.properties().explicit_captures_len() + 1;
        let nfa = |reverse: bool, hirs: &[Hir]| {
            let config = thompson::Config::new()
                .reverse(reverse)
                .nfa_size_limit(Some(PIN_NFA_BYTES));
            match_only_nfa(hirs, config).ok()
        };
        let config = || {
            lazy_config(PIN_CACHE_BYTES)
                // A Unicode `\b` is an ASCII one while the DFA reads ASCII
                // bytes; it gives up (and the regex takes the line) at the
                // first other byte it reads, which a boundary placed by the
                // forward runs alone often never reaches.
                .unicode_word_boundary(true)
        };
        let fwd = DFA::builder()
            .configure(config().starts_for_each_pattern(true))
            .build_from_nfa(nfa(false, &b.segments)?)
            .ok()?;
        let rev = DFA::builder()
            .configure(config())
            .build_from_nfa(nfa(true, &b.rests)?)
            .ok()?;
        let ahead = DFA::builder()
            .configure(config().starts_for_each_pattern(true))
            .build_from_nfa(nfa(false, &b.rests)?)
            .ok()?;
        Some(PinEngine {
            fwd,
            rev,
            ahead,
            steps,
            whole,
            anchored,
            groups,
        })
    }

    pub(super) fn scratch(&self) -> PinScratch {
        PinScratch {
            fwd: DfaCache::new(&self.fwd),
            rev: DfaCache::new(&self.rev),
            ahead: DfaCache::new(&self.ahead),
            ends: Vec::new(),
            marks: Vec::new(),
            last: [0; PIN_RESTS],
            seen: 0,
            state_rests: Box::new([(LazyStateID::default(), 0); STATE_RESTS]),
            clears: 0,
            marked_from: None,
            spans: vec![(None, None); self.groups],
        }
    }

    /// Places the groups of the leftmost-first match in `line` in
    /// `scratch.spans`: `Some(true)`, or `Some(false)` if nothing matches;
    /// `None` if this engine cannot tell.
    pub(super) fn captures(&self, scratch: &mut PinScratch, line: &[u8]) -> Option<bool> {
        scratch.marked_from = None;
        let start = if self.anchored {
            0
        } else {
            self.mark_rests(scratch, line, 0)?;
            (0..=line.len()).find(|&at| self.whole.marked(&scratch.marks, at))?
        };
        clear_spans(&mut scratch.spans);
        match self.place(&self.steps, scratch, line, start) {
            Placed::At(_) => Some(true),
            // From the only possible start, no match passes the places
            // that every match would pass.
            Placed::Unplaced if self.anchored => Some(false),
            Placed::Unplaced | Placed::Unsure => None,
        }
    }
}

impl PinScratch {
    /// Each group's (start, end) in the line of the last
    /// [`PinEngine::captures`] that returned `Some(true)`.
    pub(super) fn spans(&self) -> &[(Option<usize>, Option<usize>)] {
        &self.spans
    }
}
#[cfg(test)]
mod tests {
    use super::super::syntax::{ascii_only, parse};
    use super::*;

    /// A random pattern with named groups in every place [`PinEngine`]
    /// handles (and some it does not), over an alphabet small enough that
    /// boundaries are often ambiguous.
    fn random_pattern(next: &mut impl FnMut() -> u64, groups: &mut usize, depth: u32) -> String {
        let atoms = [
            "a", "b", ":", " ", "ab", r"\.", "[ab]", "[^:]", ".", r"\s", r"\S", r"\w", "[^a ]",
            "é", r"\b",
        ];
        let mut seq = String::new();
        for _ in 0..1 + next() % 4 {
            let atom = atoms[(next() % atoms.len() as u64) as usize];
            let piece = match next() % 12 {
                0..=2 => atom.to_owned(),
                3 => format!("(?:{atom})*"),
                4 => format!("(?:{atom})+"),
                5 => format!("(?:{atom})?"),
                6 => format!("(?:{atom})*?"),
                7 => format!("(?:{atom}){{1,3}}"),
                8 if depth < 3 => {
                    let a = random_pattern(next, groups, depth + 1);
                    let b = random_pattern(next, groups, depth + 1);
                    format!("(?:{a}|{b})")
                }
                9..=11 if depth < 3 => {
                    *groups += 1;
                    let g = *groups;
                    let inner = random_pattern(next, groups, depth + 1);
                    match next() % 5 {
                        0 => format!("(?P<g{g}>{inner})?"),
                        1 => format!("(?P<g{g}>{inner})??"),
                        2 => format!("(?:(?P<g{g}>{inner})|b)"),
                        3 => format!("(?:(?P<g{g}>{inner}),)*"),
                        _ => format!("(?P<g{g}>{inner})"),
                    }
                }
                _ => atom.to_owned(),
            };
            seq.push_str(&piece);
        }
        seq
    }

    #[test]
    fn pin_engine_places_groups_as_the_backtracker_does() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: [&[u8]; 8] = [
            b"a",
            b"b",
            b":",
            b" ",
            b"ab",
            "\u{e9}".as_bytes(),
            b"\xff",
            b".",
        ];
        let (mut placed, mut lines_tried) = (0, 0);
        for _ in 0..2000 {
            let mut groups = 0;
            let mut source = random_pattern(&mut next, &mut groups, 0);
            if next() % 3 == 0 {
                source.insert(0, '^');
            }
            if next() % 3 == 0 {
                source.push('$');
            }
            let regex = regex::bytes::Regex::new(&source).expect("valid");
            let wanted: Vec<usize> = regex
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| n.map(|_| i))
                .collect();
            let hir = parse(&source).expect("valid");
            let ascii = PinEngine::new(&ascii_only(&hir, false), &wanted);
            let unicode = PinEngine::new(&hir, &wanted);
            let mut scratches = (
                ascii.as_ref().map(PinEngine::scratch),
                unicode.as_ref().map(PinEngine::scratch),
            );
            for _ in 0..60 {
                let line: Vec<u8> = (0..next() % 20)
                    .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize].to_vec())
                    .collect();
                let text = String::from_utf8_lossy(&line).into_owned();
                let (engine, scratch) = if line.is_ascii() {
                    (ascii.as_ref(), scratches.0.as_mut())
                } else {
                    (unicode.as_ref(), scratches.1.as_mut())
                };
                let (Some(engine), Some(scratch)) = (engine, scratch) else {
                    continue;
                };
                lines_tried += 1;
                let Some(found) = engine.captures(scratch, text.as_bytes()) else {
                    continue;
                };
                let want = regex.captures(text.as_bytes());
                assert_eq!(found, want.is_some(), "{source:?} on {text:?}");
                let Some(want) = want else { continue };
                placed += 1;
                for &g in &wanted {
                    let got = match scratch.spans().get(g) {
                        Some(&(Some(start), Some(end))) => Some(start..end),
                        _ => None,
                    };
                    let want = want.get(g).map(|m| m.range());
                    assert_eq!(got, want, "group {g} of {source:?} on {text:?}");
                }
            }
        }
        // The engine must actually place most of them for this to test it.
        assert!(
            placed * 3 > lines_tried / 2,
            "placed {placed} of {lines_tried}"
        );
    }
}
