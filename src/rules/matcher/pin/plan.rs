//! A pattern read as a [`PinEngine`](super::PinEngine) reads it: a sequence of group
//! boundaries, segments and choices, each segment with its rest and what
//! settles a tie between its ends (see the module doc of [`super`]).

use regex_automata::PatternID;
use regex_syntax::hir::{self, Class, Hir, HirKind};

use super::marks::Rest;
use super::PIN_RESTS;

pub(super) enum PinStep {
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

/// The bytes that can start a rest (a superset), and whether it can be
/// empty; lets the forward runs place most boundaries without the marks.
pub(super) struct Guard {
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
    pub(super) fn allows(&self, line: &[u8], at: usize) -> bool {
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

/// How a segment with several possible ends is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rep {
    /// It cannot be told without the backtracker.
    Unknown,
    Greedy,
    Lazy,
    /// Any end will do (nothing after it is placed).
    Any,
}

/// A pattern read as [`PinEngine`](super::PinEngine) reads it, before its automata are built.
pub(super) enum Elem {
    Piece(Hir),
    Open(usize),
    Close(usize),
    Choice(Vec<Vec<Elem>>),
}

pub(super) struct PinBuilder {
    pub(super) segments: Vec<Hir>,
    pub(super) rests: Vec<Hir>,
}

impl PinBuilder {
    /// The rest `hir` (the same rest gets the same bit); `None` past
    /// [`PIN_RESTS`].
    pub(super) fn rest(&mut self, hir: Hir) -> Option<Rest> {
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
    pub(super) fn plan(
        &mut self,
        elems: &[Elem],
        after: &Hir,
        bounded: bool,
    ) -> Option<Vec<PinStep>> {
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

/// Reads `hir` into `out` as [`PinEngine`](super::PinEngine) does; `None` if a `wanted`
/// group is inside a repetition other than `?`.
pub(super) fn flatten(hir: &Hir, wanted: &[usize], out: &mut Vec<Elem>) -> Option<()> {
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
pub(super) fn strip(elems: &[Elem]) -> Hir {
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
/// (greedy) or first (lazy) of several possible ends, see [`PinEngine`](super::PinEngine):
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
