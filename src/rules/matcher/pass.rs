//! Step 1 of matching, the hot loop: the line automaton walked over a
//! buffer of whole lines, finding the lines that some pattern matches and
//! naming the patterns in the same walk.

use memchr::{memchr, memrchr};
use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::{Input, PatternID, PatternSet};

use super::lazy::{matched_patterns, untagged_next};
use super::unicode::UnicodeScratch;
use super::Matcher;

/// Lines that one walk found, kept until the walks before it have reported.
#[derive(Default)]
pub(super) struct Found {
    /// (start, stop, end of the line's patterns in `patterns`).
    lines: Vec<(usize, usize, usize)>,
    patterns: Vec<PatternID>,
}

impl Found {
    fn clear(&mut self) {
        self.lines.clear();
        self.patterns.clear();
    }

    fn push(&mut self, start: usize, stop: usize, patterns: impl Iterator<Item = PatternID>) {
        self.patterns.extend(patterns);
        self.lines.push((start, stop, self.patterns.len()));
    }

    fn report(&self, patset: &mut PatternSet, report: Report<'_>) {
        let mut from = 0;
        for &(start, stop, to) in &self.lines {
            patset.clear();
            for &id in &self.patterns[from..to] {
                patset.insert(id);
            }
            report(start, stop, patset);
            from = to;
        }
    }
}

/// Where a pass sends each matched line: `(start, stop, patterns)`.
type Report<'r> = &'r mut dyn FnMut(usize, usize, &PatternSet);

/// One run of the line automaton over a buffer of whole lines (as
/// [`Matcher::for_each_match`] takes them): it calls `report` for each line
/// `buf[start..stop]` that some pattern matches, in order, with the
/// patterns that match it.
///
/// This is the hot loop. It walks the lazy DFA itself, rather than through
/// an overlapping search, because the state after a line's `\n` holds
/// exactly the patterns that match that line: one pass finds the lines and
/// names the patterns, and a step outside a match is one table lookup
/// (12% faster than an overlapping search on the bench access log, 15% on
/// auth). Each step waits for the previous one's lookup, so a long buffer is
/// cut into [`WALKS`] runs of lines walked in lockstep: independent chains
/// of lookups that the CPU overlaps (the DFA walk of the access log takes
/// 35% of the time it takes in one piece).
pub(super) struct Pass<'p> {
    pub(super) matcher: &'p Matcher,
    pub(super) dfa: &'p DFA,
    pub(super) cache: &'p mut DfaCache,
    pub(super) unicode: &'p mut UnicodeScratch,
    pub(super) patset: &'p mut PatternSet,
    pub(super) buf: &'p [u8],
}

/// What a [`Pass`] works in, kept in the [`Scratch`](super::Scratch) from
/// buffer to buffer.
pub(super) struct PassScratch {
    /// `None` when no rule reads the input type.
    pub(super) dfa_cache: Option<DfaCache>,
    pub(super) unicode: UnicodeScratch,
    pub(super) patset: PatternSet,
}

/// Walks in lockstep over one buffer. The DFA walk of the bench access log
/// (thread CPU time, standalone driver): 1 walk 295 ms, 2 walks 155 ms, 3
/// 115 ms, 4 104 ms, 5 130 ms (the bookkeeping outgrows the overlap).
pub(super) const WALKS: usize = 4;

/// Buffers shorter than this are walked in one piece.
pub(super) const MIN_SPLIT: usize = 16 << 10;

impl<'p> Pass<'p> {
    /// A pass of `matcher`'s line automaton over `buf`; `None` if no rule
    /// reads its input type.
    pub(super) fn new(
        matcher: &'p Matcher,
        scratch: &'p mut PassScratch,
        buf: &'p [u8],
    ) -> Option<Pass<'p>> {
        let PassScratch {
            dfa_cache,
            unicode,
            patset,
        } = scratch;
        let (Some(auto), Some(cache)) = (&matcher.lines, dfa_cache.as_mut()) else {
            return None;
        };
        Some(Pass {
            matcher,
            dfa: &auto.dfa,
            cache,
            unicode,
            patset,
            buf,
        })
    }

    pub(super) fn run(&mut self, found: &mut [Found; WALKS], report: Report<'_>) {
        // The walks in lockstep take whole lines; an unterminated last line
        // is walked after them, so they never need the end-of-input step.
        let body = memrchr(b'\n', self.buf).map_or(0, |i| i + 1);
        if body < MIN_SPLIT {
            return self.walk(0, self.buf.len(), report);
        }
        self.lockstep(found, body, report);
        self.walk(body, self.buf.len(), report);
    }

    /// Walks `buf[..body]`, whole lines, in [`WALKS`] runs of lines at once.
    fn lockstep(&mut self, found: &mut [Found; WALKS], body: usize, report: Report<'_>) {
        let (buf, dfa) = (self.buf, self.dfa);
        // Walk k reads buf[pos[k]..end[k]], which starts at seg[k].
        let mut seg = [0; WALKS];
        let mut end = [0; WALKS];
        for k in 0..WALKS {
            seg[k] = if k == 0 { 0 } else { end[k - 1] };
            end[k] = if k + 1 == WALKS {
                body
            } else {
                let cut = (body / WALKS * (k + 1)).max(seg[k]);
                memchr(b'\n', &buf[cut..body]).map_or(body, |i| cut + i + 1)
            };
        }
        let mut pos = seg;
        for f in found.iter_mut() {
            f.clear();
        }
        // Computing a state may clear the DFA's cache, which voids the
        // states the other walks hold: then each walk goes on alone.
        let clears = self.cache.clear_count();
        let mut sid = [LazyStateID::default(); WALKS];
        let mut ok = true;
        for k in 0..WALKS {
            match self.start(seg[k]) {
                Some(s) => sid[k] = s,
                None => ok = false,
            }
        }
        ok &= self.cache.clear_count() == clears;
        while ok {
            // Every walk takes a step while all stay on untagged states.
            if sid.iter().all(|s| !s.is_tagged()) {
                let n = (0..WALKS).map(|k| end[k] - pos[k]).min().unwrap_or(0);
                let runs: [&[u8]; WALKS] = std::array::from_fn(|k| &buf[pos[k]..pos[k] + n]);
                let mut i = 0;
                while i < n {
                    let mut next = sid;
                    let mut tagged = false;
                    for k in 0..WALKS {
                        next[k] = dfa.next_state_untagged(self.cache, sid[k], runs[k][i]);
                        tagged |= next[k].is_tagged();
                    }
                    if tagged {
                        break;
                    }
                    sid = next;
                    i += 1;
                }
                for p in &mut pos {
                    *p += i;
                }
            }
            // Then each takes one step with every case handled.
            for k in 0..WALKS {
                if pos[k] < end[k] {
                    ok = self.step(&mut sid[k], &mut pos[k], seg[k], end[k], &mut found[k])
                        && self.cache.clear_count() == clears;
                    if !ok {
                        break;
                    }
                }
            }
            // Once one walk is done, the others are better off alone.
            if (0..WALKS).any(|k| pos[k] >= end[k]) {
                break;
            }
        }
        // Report in order; walk on alone from where each walk stopped, from
        // the start of its line (the state it holds may be void).
        for k in 0..WALKS {
            found[k].report(self.patset, report);
            if pos[k] < end[k] {
                self.walk(line_start(buf, seg[k], pos[k]), end[k], report);
            }
        }
    }

    /// The start state at `at`, a line start; `None` if the DFA cannot give one.
    fn start(&mut self, at: usize) -> Option<LazyStateID> {
        let input = Input::new(self.buf).span(at..self.buf.len());
        self.dfa.start_state_forward(self.cache, &input).ok()
    }

    /// One step of a walk in [`Pass::lockstep`], over `buf[*pos]`: records a
    /// matched line, or matches a non-ASCII line as written and restarts at
    /// the next. False if the walk must stop (the DFA gave up).
    fn step(
        &mut self,
        sid: &mut LazyStateID,
        pos: &mut usize,
        seg: usize,
        end: usize,
        found: &mut Found,
    ) -> bool {
        let (buf, dfa) = (self.buf, self.dfa);
        let Ok(next) = dfa.next_state(self.cache, *sid, buf[*pos]) else {
            return false;
        };
        *sid = next;
        if next.is_match() {
            // Matches are seen one byte late: this one ends at `pos`, the
            // `\n` of the line the patterns match.
            let patterns = (0..dfa.match_len(self.cache, next))
                .map(|i| dfa.match_pattern(self.cache, next, i));
            found.push(line_start(buf, seg, *pos), *pos, patterns);
        } else if next.is_quit() {
            // A byte >= 0x80: match this line with the patterns as written.
            let (start, stop) = line_around(buf, seg, *pos);
            self.match_as_written(start, stop);
            if !self.patset.is_empty() {
                found.push(start, stop, self.patset.iter());
            }
            *pos = stop + 1;
            if *pos < end {
                match self.start(*pos) {
                    Some(s) => *sid = s,
                    None => return false,
                }
            }
            return true;
        } else if next.is_dead() {
            // Cannot be (an unanchored search never dies), but it would
            // mean that nothing further can match.
            *pos = end;
            return true;
        }
        *pos += 1;
        true
    }

    /// Fills `patset` with the patterns, as written, that match the line
    /// `buf[start..stop]` (one with a byte >= 0x80, or one the lazy DFA
    /// gave up on).
    #[inline]
    pub(super) fn match_as_written(&mut self, start: usize, stop: usize) {
        self.matcher
            .which_unicode(self.unicode, self.patset, &self.buf[start..stop]);
    }

    /// Walks `buf[from..to]`, whole lines from a line start, in one piece;
    /// `to` is a line start or the end of `buf`.
    fn walk(&mut self, mut from: usize, to: usize, report: Report<'_>) {
        let (buf, dfa) = (self.buf, self.dfa);
        'walk: while from < to {
            let Some(mut sid) = self.start(from) else {
                return self.walk_unicode(from, to, report);
            };
            for (at, &byte) in buf[..to].iter().enumerate().skip(from) {
                if let Some(next) = untagged_next(dfa, self.cache, sid, byte) {
                    sid = next;
                    continue;
                }
                // Not yet computed, a match, or the end of the fast path.
                sid = match dfa.next_state(self.cache, sid, byte) {
                    Ok(sid) => sid,
                    Err(_) => return self.walk_unicode(line_start(buf, from, at), to, report),
                };
                if sid.is_match() {
                    // Matches are seen one byte late: this one ends at
                    // `at`, the `\n` of the line the patterns match.
                    matched_patterns(dfa, self.cache, sid, self.patset);
                    report(line_start(buf, from, at), at, self.patset);
                } else if sid.is_quit() {
                    // A byte >= 0x80: match this line with the patterns as
                    // written, then walk on from the next one.
                    let (start, stop) = line_around(buf, from, at);
                    self.match_as_written(start, stop);
                    report(start, stop, self.patset);
                    from = stop + 1;
                    continue 'walk;
                } else if sid.is_dead() {
                    // Cannot be (an unanchored search never dies), but it
                    // would mean that nothing further can match.
                    return;
                }
            }
            // The end of the last line, when no `\n` ends it: the walk has
            // not seen it yet. (After a final `\n` there is no line.)
            if buf[..to].last() != Some(&b'\n') {
                debug_assert_eq!(to, buf.len(), "runs of lines end with a newline");
                match dfa.next_eoi_state(self.cache, sid) {
                    Ok(sid) if sid.is_match() => {
                        matched_patterns(dfa, self.cache, sid, self.patset);
                        report(line_start(buf, from, to), to, self.patset);
                    }
                    Ok(_) => {}
                    Err(_) => self.walk_unicode(line_start(buf, from, to), to, report),
                }
            }
            return;
        }
    }

    /// [`Pass::walk`] with the patterns as written, line by line: slow, and
    /// only reached if the lazy DFA gives up, which its configuration rules
    /// out.
    fn walk_unicode(&mut self, from: usize, to: usize, report: Report<'_>) {
        let mut start = from;
        while start < to {
            let stop = memchr(b'\n', &self.buf[start..to]).map_or(to, |i| start + i);
            self.match_as_written(start, stop);
            if !self.patset.is_empty() {
                report(start, stop, self.patset);
            }
            start = stop + 1;
        }
    }
}

/// The start and end (exclusive, at its `\n` or the end of `buf`) of the
/// line holding `at`, which is not before `from`, a line start.
pub(super) fn line_around(buf: &[u8], from: usize, at: usize) -> (usize, usize) {
    let stop = memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
    (line_start(buf, from, at), stop)
}

/// The start of the line holding `at`, which is not before `from`, a line start.
fn line_start(buf: &[u8], from: usize, at: usize) -> usize {
    memrchr(b'\n', &buf[from..at]).map_or(from, |i| from + i + 1)
}
#[cfg(test)]
mod tests {
    use super::super::tests::{check_matcher, random_lines, random_rules};
    use super::super::Matcher;

    #[test]
    fn lockstep_walks_survive_cache_clears_and_long_lines() {
        // With the smallest DFA cache, computing a state often clears the
        // cache, voiding the states the other walks hold.
        let rs = random_rules();
        let m = Matcher::with_cache(&rs, "syslog", 0).expect("compiles");
        let lines = random_lines(20_000, true);
        check_matcher(&m, &rs, &lines);
        let mut s = m.scratch();
        m.for_each_match(&mut s, &lines.join(&b"\n"[..]), |_, _, _, _| {});
        let clears = s.walk.dfa_cache.as_ref().map_or(0, |c| c.clear_count());
        assert!(clears > 10, "the cache was cleared {clears} times");
    }
}
