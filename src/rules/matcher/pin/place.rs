//! Group boundaries placed left to right, each exactly, by the forward
//! runs of a [`PinEngine`] and, where they do not tell, by its marks (see
//! the module doc of [`super`]).

use regex_automata::{Anchored, Input, PatternID};

use super::super::lazy::untagged_next;
use super::marks::Rest;
use super::plan::{Guard, PinStep, Rep};
use super::{PinEngine, PinScratch};

/// Where a sequence of steps ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placed {
    At(usize),
    /// Nowhere: no match passes the boundaries placed before.
    Unplaced,
    /// Not told by the forward runs alone: the marks are needed.
    Unsure,
}

/// See [`PinEngine::first_end_with_rest`].
const MAX_TRIED_ENDS: usize = 16;
impl PinEngine {
    /// Places the boundaries of `steps` from `x`: with the forward runs
    /// alone while they tell, else with the marks (computed then, from `x`
    /// on, which is as far back as the later steps go).
    pub(super) fn place(
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
            if let Some(next) = untagged_next(dfa, cache, sid, byte) {
                sid = next;
                at += 1;
                continue;
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
pub(super) fn clear_spans(spans: &mut [(Option<usize>, Option<usize>)]) {
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
