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
//! [`super::matcher`] uses it to take the groups of the rules that hit a
//! line. The differential test below holds it to `regex` on random
//! patterns and lines.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input, MatchKind, PatternID};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

use super::matcher::match_only_nfa;

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

enum PinStep {
    Open(usize),
    Close(usize),
    /// A segment: its pattern in `fwd`, its rest, and the bytes that can
    /// start its rest.
    Segment {
        fwd: PatternID,
        rest: Rest,
        rep: Rep,
        guard: Box<Guard>,
        /// No group boundary follows: where it ends does not matter, only
        /// that it does.
        tail: bool,
    },
    /// Branches in priority order, each with the rest that is the branch
    /// followed by the rest of the pattern; `open`: the rest after the
    /// choice is [`Rest::Always`].
    Choice {
        arms: Vec<(Rest, Vec<PinStep>)>,
        open: bool,
    },
}

/// Where a sequence of steps ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placed {
    At(usize),
    /// Nowhere: no match passes the boundaries placed before.
    Unplaced,
    /// Not told by the forward runs alone: the marks are needed.
    Unsure,
}

/// The bytes that can start a rest (a superset), and whether it can be
/// empty; lets the forward runs place most boundaries without the marks.
struct Guard {
    bytes: [u64; 4],
    empty: bool,
}

impl Guard {
    fn new(rest: &Hir) -> Guard {
        let mut bytes = [0; 4];
        let empty = first_bytes(rest, &mut bytes);
        Guard { bytes, empty }
    }

    /// Whether the rest may match from `at`.
    fn allows(&self, line: &[u8], at: usize) -> bool {
        match line.get(at) {
            Some(&b) => self.empty || self.bytes[usize::from(b >> 6)] >> (b & 63) & 1 != 0,
            None => self.empty,
        }
    }
}

/// Adds to `bytes` those that can start a match of `hir` (a superset:
/// any non-ASCII character counts as every UTF-8 lead byte); true if it
/// may match the empty text (assertions count as empty).
fn first_bytes(hir: &Hir, bytes: &mut [u64; 4]) -> bool {
    let mut add = |from: u8, to: u8| {
        for b in from..=to {
            bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    };
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(lit) => {
            if let Some(&b) = lit.0.first() {
                add(b, b);
            }
            lit.0.is_empty()
        }
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.ranges() {
                add(r.start(), r.end());
            }
            false
        }
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges() {
                let (start, end) = (u32::from(r.start()), u32::from(r.end()));
                if start < 0x80 {
                    // Both below 0x80 here: the casts are exact.
                    add(start as u8, end.min(0x7f) as u8);
                }
                if end >= 0x80 {
                    add(0xc2, 0xf4);
                }
            }
            false
        }
        HirKind::Repetition(r) => first_bytes(&r.sub, bytes) || r.min == 0,
        HirKind::Capture(c) => first_bytes(&c.sub, bytes),
        HirKind::Concat(subs) => subs.iter().all(|sub| first_bytes(sub, bytes)),
        HirKind::Alternation(subs) => subs
            .iter()
            .fold(false, |empty, sub| first_bytes(sub, bytes) | empty),
    }
}

/// A rest as the marks hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rest {
    /// It matches the empty text with no assertion, so (anything may
    /// follow) it matches from every position: not tracked.
    Always,
    /// Its bit in the marks.
    Bit(u32),
}

impl Rest {
    fn marked(self, marks: &[u64], at: usize) -> bool {
        match self {
            Rest::Always => at < marks.len(),
            Rest::Bit(bit) => marks.get(at).is_some_and(|m| m & (1 << bit) != 0),
        }
    }
}

/// How a segment with several possible ends is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rep {
    /// It cannot be told without the backtracker.
    Unknown,
    Greedy,
    Lazy,
    /// Any end will do (nothing after it is placed).
    Any,
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

/// A pattern read as [`PinEngine`] reads it, before its automata are built.
enum Elem {
    Piece(Hir),
    Open(usize),
    Close(usize),
    Choice(Vec<Vec<Elem>>),
}

/// See [`PinEngine::first_end_with_rest`].
const MAX_TRIED_ENDS: usize = 16;

/// Rests one [`PinEngine`] can mark (a bit each in a `u64`).
const PIN_RESTS: usize = 64;

/// Entries of [`PinScratch::state_rests`] (a power of two).
const STATE_RESTS: usize = 256;

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

struct PinBuilder {
    segments: Vec<Hir>,
    rests: Vec<Hir>,
}

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
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(PIN_CACHE_BYTES)
                .skip_cache_capacity_check(true)
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

    /// Whether the marks of the current line cover `at`; computes them
    /// down to `at` if not. False if the DFA gives up.
    fn marks_at(&self, scratch: &mut PinScratch, line: &[u8], at: usize) -> bool {
        if scratch.marked_from.is_some_and(|from| from <= at) {
            return true;
        }
        self.mark_rests(scratch, line, at).is_some()
    }

    /// The backward pass, from the line end down to `bound` (a boundary
    /// needs the marks only from where it is placed on): fills `marks`,
    /// `last` and `seen`.
    fn mark_rests(&self, scratch: &mut PinScratch, line: &[u8], bound: usize) -> Option<()> {
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
            if !sid.is_tagged() {
                let next = dfa.next_state_untagged(cache, sid, byte);
                if !next.is_tagged() {
                    sid = next;
                    continue;
                }
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

    /// Places the boundaries of `steps` from `x`: with the forward runs
    /// alone while they tell, else with the marks (computed then, from `x`
    /// on, which is as far back as the later steps go).
    fn place(
        &self,
        steps: &[PinStep],
        scratch: &mut PinScratch,
        line: &[u8],
        mut x: usize,
    ) -> Placed {
        for step in steps {
            let marked = scratch.marked_from.is_some_and(|from| from <= x);
            match step {
                PinStep::Open(group) => {
                    if let Some(span) = scratch.spans.get_mut(*group) {
                        span.0 = Some(x);
                    }
                }
                PinStep::Close(group) => {
                    if let Some(span) = scratch.spans.get_mut(*group) {
                        span.1 = Some(x);
                    }
                }
                PinStep::Segment {
                    fwd,
                    rest,
                    rep,
                    guard,
                    tail,
                } => {
                    let rep = if *tail { Rep::Any } else { *rep };
                    let mut placed = Placed::Unsure;
                    if !marked {
                        placed = self.segment_end(scratch, line, x, *fwd, *rest, rep, Some(guard));
                    }
                    if placed == Placed::Unsure {
                        if !self.marks_at(scratch, line, x) {
                            return Placed::Unsure;
                        }
                        placed = self.segment_end(scratch, line, x, *fwd, *rest, rep, None);
                    }
                    match placed {
                        Placed::At(end) => x = end,
                        other => return other,
                    }
                }
                PinStep::Choice { arms, open } => {
                    if !marked {
                        // Without the marks, a branch placed to its end is
                        // one that matches, and (nothing being required
                        // after the choice) the first such branch is
                        // leftmost-first's.
                        let mut placed = Placed::Unplaced;
                        for (_, arm) in arms {
                            match self.place(arm, scratch, line, x) {
                                Placed::At(end) if *open => {
                                    placed = Placed::At(end);
                                    break;
                                }
                                Placed::At(_) | Placed::Unsure => {
                                    placed = Placed::Unsure;
                                    break;
                                }
                                Placed::Unplaced => clear_arm(arm, &mut scratch.spans),
                            }
                        }
                        match placed {
                            Placed::At(end) => {
                                x = end;
                                continue;
                            }
                            Placed::Unplaced => return Placed::Unplaced,
                            Placed::Unsure => {
                                for (_, arm) in arms {
                                    clear_arm(arm, &mut scratch.spans);
                                }
                            }
                        }
                    }
                    if !self.marks_at(scratch, line, x) {
                        return Placed::Unsure;
                    }
                    let marks = &scratch.marks;
                    let Some((_, arm)) = arms.iter().find(|(rest, _)| rest.marked(marks, x)) else {
                        return Placed::Unsure;
                    };
                    match self.place(arm, scratch, line, x) {
                        Placed::At(end) => x = end,
                        other => return other,
                    }
                }
            }
        }
        Placed::At(x)
    }

    /// Where the segment `id` that starts at `from` ends (see
    /// [`PinEngine`]): with the marks, or with the `guard` of its rest.
    #[allow(clippy::too_many_arguments)]
    fn segment_end(
        &self,
        scratch: &mut PinScratch,
        line: &[u8],
        from: usize,
        id: PatternID,
        rest: Rest,
        rep: Rep,
        guard: Option<&Guard>,
    ) -> Placed {
        let PinScratch {
            fwd: cache,
            marks,
            last,
            seen,
            ends,
            ..
        } = scratch;
        let dfa = &self.fwd;
        // Ends where the rest may follow; with the marks, where it does.
        let exact = guard.is_none() || rest == Rest::Always;
        // Without the marks, a repetition's ends are kept, to try its rest
        // from them in leftmost-first's order.
        let keep = !exact && matches!(rep, Rep::Greedy | Rep::Lazy);
        ends.clear();
        let allows = |at: usize| match guard {
            Some(guard) => rest == Rest::Always || guard.allows(line, at),
            None => rest.marked(marks, at),
        };
        // No end past the last position where the rest is marked.
        let limit = match (guard, rest) {
            (Some(_), _) | (None, Rest::Always) => line.len(),
            (None, Rest::Bit(bit)) if *seen & (1 << bit) != 0 => {
                last.get(bit as usize).copied().unwrap_or(0)
            }
            (None, Rest::Bit(_)) => return Placed::Unplaced,
        };
        let (mut count, mut first, mut latest) = (0usize, 0, 0);
        let mut candidate = |at: usize, count: &mut usize| {
            if allows(at) {
                if *count == 0 {
                    first = at;
                }
                latest = at;
                *count += 1;
                if keep {
                    ends.push(at);
                }
            }
        };
        let input = Input::new(line)
            .span(from..line.len())
            .anchored(Anchored::Pattern(id));
        let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
            return Placed::Unsure;
        };
        let mut at = from;
        while at <= limit && !(exact && matches!(rep, Rep::Lazy | Rep::Any) && count > 0) {
            let Some(&byte) = line.get(at) else {
                match dfa.next_eoi_state(cache, sid) {
                    Ok(sid) if sid.is_match() => candidate(at, &mut count),
                    Ok(_) => {}
                    Err(_) => return Placed::Unsure,
                }
                break;
            };
            if !sid.is_tagged() {
                let next = dfa.next_state_untagged(cache, sid, byte);
                if !next.is_tagged() {
                    sid = next;
                    at += 1;
                    continue;
                }
            }
            let Ok(next) = dfa.next_state(cache, sid, byte) else {
                return Placed::Unsure;
            };
            sid = next;
            if sid.is_match() {
                // Seen one byte late: the segment ends before this byte.
                candidate(at, &mut count);
            } else if sid.is_dead() {
                break;
            } else if sid.is_quit() {
                return Placed::Unsure;
            }
            at += 1;
        }
        match (count, rep) {
            (0, _) => Placed::Unplaced,
            (1, _) => Placed::At(first),
            (_, Rep::Greedy) if exact => Placed::At(latest),
            (_, Rep::Lazy | Rep::Any) if exact => Placed::At(first),
            (_, Rep::Greedy | Rep::Lazy) => {
                self.first_end_with_rest(scratch, line, from, rest, rep)
            }
            _ => Placed::Unsure,
        }
    }

    /// Of a repetition's possible ends (in `scratch.ends`), the one
    /// leftmost-first takes: the last (greedy) or first (lazy) from which
    /// the rest matches, each tried with the forward DFA of the rests.
    /// For a few ends only, and at most a few times the rest of the line
    /// in all; past that, the marks decide (`Unsure`): a user agent of
    /// thousands of spaces gives as many ends to a lazy `(?P<ua>...+?)`.
    fn first_end_with_rest(
        &self,
        scratch: &mut PinScratch,
        line: &[u8],
        from: usize,
        rest: Rest,
        rep: Rep,
    ) -> Placed {
        let Rest::Bit(bit) = rest else {
            return Placed::Unsure;
        };
        let Ok(id) = PatternID::new(bit as usize) else {
            return Placed::Unsure;
        };
        let PinScratch {
            ahead: cache, ends, ..
        } = scratch;
        if ends.len() > MAX_TRIED_ENDS {
            return Placed::Unsure;
        }
        let mut budget = 4 * (line.len() - from.min(line.len())) + 256;
        let mut try_from = |at: usize| -> Option<bool> {
            let input = Input::new(line)
                .span(at..line.len())
                .anchored(Anchored::Pattern(id));
            let mut sid = self.ahead.start_state_forward(cache, &input).ok()?;
            for &byte in &line[at..] {
                budget = budget.checked_sub(1)?;
                sid = self.ahead.next_state(cache, sid, byte).ok()?;
                if sid.is_match() {
                    return Some(true);
                }
                if sid.is_dead() {
                    return Some(false);
                }
                if sid.is_quit() {
                    return None;
                }
            }
            let sid = self.ahead.next_eoi_state(cache, sid).ok()?;
            Some(sid.is_match())
        };
        let mut order: Box<dyn Iterator<Item = &usize>> = match rep {
            Rep::Greedy => Box::new(ends.iter().rev()),
            _ => Box::new(ends.iter()),
        };
        loop {
            let Some(&end) = order.next() else {
                return Placed::Unplaced;
            };
            match try_from(end) {
                Some(true) => return Placed::At(end),
                Some(false) => {}
                None => return Placed::Unsure,
            }
        }
    }
}

/// Forgets every group's place.
fn clear_spans(spans: &mut [(Option<usize>, Option<usize>)]) {
    for span in spans {
        *span = (None, None);
    }
}

/// Forgets the places of the groups of a branch that was tried and left.
fn clear_arm(steps: &[PinStep], spans: &mut [(Option<usize>, Option<usize>)]) {
    for step in steps {
        match step {
            PinStep::Open(group) | PinStep::Close(group) => {
                if let Some(span) = spans.get_mut(*group) {
                    *span = (None, None);
                }
            }
            PinStep::Choice { arms, .. } => {
                for (_, arm) in arms {
                    clear_arm(arm, spans);
                }
            }
            PinStep::Segment { .. } => {}
        }
    }
}

impl PinBuilder {
    /// The rest `hir` (the same rest gets the same bit); `None` past
    /// [`PIN_RESTS`].
    fn rest(&mut self, hir: Hir) -> Option<Rest> {
        if always(&hir) {
            return Some(Rest::Always);
        }
        let i = match self.rests.iter().position(|r| *r == hir) {
            Some(i) => i,
            None => {
                self.rests.push(hir);
                self.rests.len() - 1
            }
        };
        if i < PIN_RESTS {
            u32::try_from(i).ok().map(Rest::Bit)
        } else {
            None
        }
    }

    /// The steps of `elems`, which `after` follows to the end of the
    /// pattern (`bounded`: with group boundaries).
    fn plan(&mut self, elems: &[Elem], after: &Hir, bounded: bool) -> Option<Vec<PinStep>> {
        let bounds = |elems: &[Elem]| bounded || elems.iter().any(|e| !matches!(e, Elem::Piece(_)));
        let mut steps = Vec::new();
        let mut i = 0;
        while let Some(elem) = elems.get(i) {
            match elem {
                Elem::Open(group) => steps.push(PinStep::Open(*group)),
                Elem::Close(group) => steps.push(PinStep::Close(*group)),
                Elem::Piece(_) => {
                    // A segment holds one piece that may match in several
                    // ways at most, so that a tie between its ends is one
                    // that [`repetition_kind`] may settle.
                    let mut end = i;
                    let mut open = false;
                    while let Some(Elem::Piece(hir)) = elems.get(end) {
                        if !is_fixed(hir) {
                            if open {
                                break;
                            }
                            open = true;
                        }
                        end += 1;
                    }
                    let segment = strip(&elems[i..end]);
                    let rest = Hir::concat(vec![strip(&elems[end..]), after.clone()]);
                    let guard = Box::new(Guard::new(&rest));
                    let rest = self.rest(rest)?;
                    let rep = repetition_kind(&segment);
                    let fwd = PatternID::new(self.segments.len()).ok()?;
                    self.segments.push(segment);
                    steps.push(PinStep::Segment {
                        fwd,
                        rest,
                        rep,
                        guard,
                        tail: !bounds(&elems[end..]),
                    });
                    i = end;
                    continue;
                }
                Elem::Choice(branches) => {
                    let follow = Hir::concat(vec![strip(&elems[i + 1..]), after.clone()]);
                    let mut arms = Vec::new();
                    for branch in branches {
                        let bit = self.rest(Hir::concat(vec![strip(branch), follow.clone()]))?;
                        arms.push((bit, self.plan(branch, &follow, bounds(&elems[i + 1..]))?));
                    }
                    steps.push(PinStep::Choice {
                        arms,
                        open: always(&follow),
                    });
                }
            }
            i += 1;
        }
        Some(steps)
    }
}

/// Whether a rest matches the empty text with no assertion (so, anything
/// being allowed after it, from every position).
fn always(rest: &Hir) -> bool {
    let props = rest.properties();
    props.minimum_len() == Some(0) && props.look_set().is_empty()
}

/// Reads `hir` into `out` as [`PinEngine`] does; `None` if a `wanted`
/// group is inside a repetition other than `?`.
fn flatten(hir: &Hir, wanted: &[usize], out: &mut Vec<Elem>) -> Option<()> {
    if !holds_group(hir, wanted) {
        out.push(Elem::Piece(hir.clone()));
        return Some(());
    }
    let sequence = |hir: &Hir| {
        let mut elems = Vec::new();
        flatten(hir, wanted, &mut elems).map(|()| elems)
    };
    match hir.kind() {
        HirKind::Concat(subs) => {
            for sub in subs {
                flatten(sub, wanted, out)?;
            }
        }
        HirKind::Capture(c) => {
            let group = usize::try_from(c.index).ok()?;
            let marked = wanted.contains(&group);
            if marked {
                out.push(Elem::Open(group));
            }
            flatten(&c.sub, wanted, out)?;
            if marked {
                out.push(Elem::Close(group));
            }
        }
        HirKind::Alternation(subs) => {
            let branches = subs.iter().map(sequence).collect::<Option<Vec<_>>>()?;
            out.push(Elem::Choice(branches));
        }
        HirKind::Repetition(r) if r.min == 1 && r.max == Some(1) => flatten(&r.sub, wanted, out)?,
        HirKind::Repetition(r) if r.min == 0 && r.max == Some(1) => {
            let sub = sequence(&r.sub)?;
            out.push(Elem::Choice(if r.greedy {
                vec![sub, Vec::new()]
            } else {
                vec![Vec::new(), sub]
            }));
        }
        _ => return None,
    }
    Some(())
}

/// Whether `hir` holds one of the groups `wanted`.
fn holds_group(hir: &Hir, wanted: &[usize]) -> bool {
    if hir.properties().explicit_captures_len() == 0 {
        return false;
    }
    match hir.kind() {
        HirKind::Capture(c) => {
            usize::try_from(c.index).is_ok_and(|g| wanted.contains(&g))
                || holds_group(&c.sub, wanted)
        }
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().any(|s| holds_group(s, wanted))
        }
        HirKind::Repetition(r) => holds_group(&r.sub, wanted),
        _ => false,
    }
}

/// The elements as one pattern without groups (an alternation for a choice).
fn strip(elems: &[Elem]) -> Hir {
    Hir::concat(
        elems
            .iter()
            .map(|e| match e {
                Elem::Piece(hir) => hir.clone(),
                Elem::Open(_) | Elem::Close(_) => Hir::empty(),
                Elem::Choice(branches) => {
                    Hir::alternation(branches.iter().map(|b| strip(b)).collect())
                }
            })
            .collect(),
    )
}

/// Whether a segment has a repetition that leftmost-first ends at the last
/// (greedy) or first (lazy) of several possible ends, see [`PinEngine`]:
/// one repetition of a single-parse `X`, with only classes, literals and
/// assertions around it (each of them matches in one way, so the ends
/// differ only by the repetition's iterations).
fn repetition_kind(segment: &Hir) -> Rep {
    let units = match segment.kind() {
        HirKind::Concat(subs) => subs.as_slice(),
        _ => std::slice::from_ref(segment),
    };
    let mut kind = Rep::Unknown;
    for unit in units {
        match unit.kind() {
            _ if is_fixed(unit) => {}
            HirKind::Repetition(r) if kind == Rep::Unknown && single_parse(&r.sub) => {
                kind = if r.greedy { Rep::Greedy } else { Rep::Lazy };
            }
            _ => return Rep::Unknown,
        }
    }
    kind
}

/// Whether every text that `X*` matches is cut into iterations of `X` in
/// one way only: `X` is a run of classes and literals (a fixed number of
/// characters, at least one), or branches of such runs none of which can
/// match the start of what another matches (they differ at some character
/// within the shorter one: `[^"\\]|\\.`, `invalid user |illegal user `), so
/// that at most one branch matches from any position. (On the lines an
/// engine reads, ASCII or valid UTF-8, a class matches one character.)
fn single_parse(hir: &Hir) -> bool {
    let branches = match hir.kind() {
        HirKind::Alternation(subs) => subs.as_slice(),
        _ => std::slice::from_ref(hir),
    };
    let mut runs: Vec<Vec<hir::ClassUnicode>> = Vec::new();
    for branch in branches {
        let Some(run) = fixed_run(branch) else {
            return false;
        };
        for other in &runs {
            let differ = run.iter().zip(other).any(|(a, b)| {
                let mut both = a.clone();
                both.intersect(b);
                both.ranges().is_empty()
            });
            if !differ {
                return false;
            }
        }
        runs.push(run);
    }
    !runs.is_empty()
}

/// The characters of a run of classes and literals, as classes (at least
/// one); `None` for anything else.
fn fixed_run(hir: &Hir) -> Option<Vec<hir::ClassUnicode>> {
    let units = match hir.kind() {
        HirKind::Concat(subs) => subs.as_slice(),
        _ => std::slice::from_ref(hir),
    };
    let mut run = Vec::new();
    for unit in units {
        match unit.kind() {
            HirKind::Literal(lit) => {
                let text = std::str::from_utf8(&lit.0).ok()?;
                run.extend(
                    text.chars()
                        .map(|c| hir::ClassUnicode::new([hir::ClassUnicodeRange::new(c, c)])),
                );
            }
            HirKind::Class(Class::Unicode(c)) => run.push(c.clone()),
            // Bytes past ASCII may be parts of characters: not one unit.
            HirKind::Class(Class::Bytes(c)) => run.push(c.to_unicode_class()?),
            _ => return None,
        }
    }
    (!run.is_empty()).then_some(run)
}

/// Whether a piece of a segment matches in one way only, at a fixed
/// length: a literal, a class, an assertion, or a run of those.
fn is_fixed(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) | HirKind::Empty => true,
        HirKind::Concat(subs) => subs.iter().all(is_fixed),
        _ => false,
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
    use super::*;
    use crate::rules::matcher::ascii_only;

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
            let hir = regex_syntax::ParserBuilder::new()
                .utf8(false)
                .build()
                .parse(&source)
                .expect("valid");
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
