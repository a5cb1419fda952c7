//! One automaton per input type over the patterns of every rule that reads it.
//!
//! A line that matches nothing is read once, at DFA speed; a matched line
//! once more, by the captures of the rules that hit it:
//!
//! 1. One forward walk of a lazy DFA over a whole buffer of lines finds the
//!    lines that some pattern matches *and* names the patterns. Each pattern
//!    is extended to the end of its line (`P[^\n]*$`) and all are compiled
//!    together with `MatchKind::All`, so every match ends at a line end and
//!    the DFA state after a line's `\n` holds exactly the patterns that
//!    match that line. (The first version found a candidate line with a
//!    leftmost-first search and then ran a `RegexSet` over it: three walks
//!    of a matched line instead of one.) A long buffer is walked as several
//!    runs of lines in lockstep, see [`Pass`].
//! 2. Only the rules that hit run their captures, on the line alone: a
//!    one-pass DFA for a pattern anchored at the line start that allows one,
//!    else a [`PinEngine`], which places the groups with lazy DFAs alone,
//!    in time linear in the line, and takes exactly the groups that the
//!    leftmost-first engines would. The backtracker it replaced cost 55% of
//!    a scan of web attacks (one 5,000-state pattern walked `[^"]*` back
//!    and forth at every byte of the URL), and 1 MB/s on `..%2f` repeated:
//!    its visited set is states x bytes. It remains for the rare line where
//!    a group's place is a tie that only backtracking settles, and for
//!    patterns with groups inside a repetition.
//!
//! Both steps run ASCII-only automata. Unicode classes (`\s`, `\w`, `.`,
//! `(?i)k`) compile to many UTF-8 states, which every automaton pays for on
//! every byte. On an ASCII line a Unicode class can only match its ASCII
//! members, so there the ASCII automata are exact; the DFA stops at the
//! first byte >= 0x80, and that line (only that line) is matched with the
//! patterns as written (another lazy DFA, see [`UnicodeLines`], and
//! [`PinEngine`]s of the patterns as written for the captures). Results
//! therefore never depend on the path a line took, and log lines, nearly
//! all ASCII, take the fast one.
//!
//! A line that is not UTF-8 is matched (and its groups taken) as its lossy
//! decoding, the text that its events show: each invalid sequence is
//! U+FFFD, which `.`, `\S`, `[^:]` and `[^"]` match. Read byte by byte, as
//! it was, `(?P<user>.*)` or `(?:[^"\\]|\\.)*` stopped at an invalid byte,
//! and an attacker who put one in a user name or URL escaped the rule.
//!
//! Caches and buffers live in [`Scratch`], so the common path does not
//! allocate.

use std::sync::{Arc, OnceLock};

use memchr::{memchr, memrchr};
use regex_automata::dfa::onepass;
use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::meta::{self, Regex as MetaRegex};
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::captures::Captures;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Anchored, Input, MatchKind, PatternID, PatternSet, Span};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

use super::pin::{PinEngine, PinScratch};
use super::RuleSet;
use crate::event::Fields;

/// Bound on the lazy DFA's memory per automaton. Large enough that the full
/// default rule set runs without cache thrashing; small enough to keep the
/// daemon's footprint in tens of megabytes.
const DFA_CACHE_BYTES: usize = 16 << 20;

/// A pattern that hit a line: the rule it belongs to and which of its patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub pattern: usize,
    /// Position of the pattern in this matcher's tables.
    slot: usize,
}

pub struct Matcher {
    input_type: String,
    /// `None` when no rule reads this input type.
    lines: Option<LineAutomaton>,
    /// The patterns as written in one lazy DFA: which of them match a line
    /// with non-ASCII bytes. Built at the first such line, as many inputs
    /// have none.
    unicode_lines: OnceLock<UnicodeLines>,
    /// The same as a set, when the DFA cannot answer. (A meta regex, which
    /// gives up its lazy DFA when the cache fills, for the PikeVM: on the
    /// web patterns, 0.2 MB/s.)
    set: OnceLock<Option<MetaRegex>>,
    /// Slot -> the hit it stands for.
    hits: Vec<Hit>,
    /// Automaton pattern id -> the slots it stands for: a pattern that
    /// several rules share (a group member and its slow and account-spray
    /// counterparts) is compiled once and hits them all.
    twins: Vec<Vec<usize>>,
    /// For each hit's pattern: regexes for captures and (group index, field name).
    captures: Vec<CapturePlan>,
}

/// Step 1: all patterns, ASCII-only, each extended to the end of its line.
struct LineAutomaton {
    dfa: DFA,
    /// Prefix literals of every pattern (as written), when they make a fast
    /// filter: lines without one are skipped without running the DFA.
    prefilter: Option<Prefilter>,
}

struct CapturePlan {
    source: String,
    /// The pattern as written, for lines with non-ASCII bytes: compiled at
    /// the first such line (Unicode classes make it the costliest to build).
    regex: OnceLock<regex::bytes::Regex>,
    /// The same pattern, ASCII-only, for ASCII lines; `None` if it cannot be
    /// built (it is an optimisation, never needed for correctness). Built
    /// when the pattern first hits: most patterns of a type hit nothing in a
    /// given log, and compiling them all would cost more than reading
    /// thousands of lines.
    ascii: OnceLock<Option<AsciiEngine>>,
    /// The pattern as written in a [`PinEngine`], for lines with non-ASCII
    /// bytes (built at the pattern's first such line); `None` if it cannot
    /// be, and then the regex takes them.
    unicode: OnceLock<Option<PinEngine>>,
    names: Vec<(usize, Arc<str>)>,
    /// The first slot with the same pattern, when another rule has it too
    /// (a group member and its slow counterpart): one line's captures of
    /// it are taken once, see [`CaptureScratch::new_line`].
    shared: Option<usize>,
    /// Whether later slots share this one's pattern.
    twinned: bool,
}

impl CapturePlan {
    fn regex(&self) -> &regex::bytes::Regex {
        self.regex
            .get_or_init(|| super::Pattern::compile_or_never(&self.source))
    }
}

/// How a pattern's captures are taken on an ASCII line.
enum AsciiEngine {
    /// A one-pass DFA (one step a byte, no backtracking), for a pattern
    /// anchored at the line start: one search from there. (Not for others:
    /// a one-pass DFA is anchored, and restarting it at each candidate
    /// start costs the square of the line on hostile lines.)
    OnePass(Box<onepass::DFA>),
    /// Boundaries placed by lazy DFAs ([`PinEngine`]), linear in the line;
    /// the backtracker takes the rare line where they leave a choice.
    Pin(Box<PinEngine>, BoundedBacktracker, usize),
    /// Anything else, started by the prefilter at each candidate.
    Backtrack(BoundedBacktracker),
}

enum AsciiScratch {
    OnePass(onepass::Cache, Captures),
    Pin(Box<PinScratch>, Option<(backtrack::Cache, Captures)>),
    Backtrack(backtrack::Cache, Captures),
}

/// The groups of a match, as one of the engines holds them.
enum Groups<'c> {
    Captures(&'c Captures),
    Spans(&'c [(Option<usize>, Option<usize>)]),
}

impl Groups<'_> {
    fn get(&self, group: usize) -> Option<Span> {
        match self {
            Groups::Captures(caps) => caps.get_group(group),
            Groups::Spans(spans) => match spans.get(group) {
                Some(&(Some(start), Some(end))) if start <= end => Some(Span::from(start..end)),
                _ => None,
            },
        }
    }
}

impl AsciiEngine {
    fn scratch(&self) -> AsciiScratch {
        match self {
            AsciiEngine::OnePass(dfa) => {
                AsciiScratch::OnePass(dfa.create_cache(), dfa.create_captures())
            }
            AsciiEngine::Pin(pin, ..) => AsciiScratch::Pin(Box::new(pin.scratch()), None),
            AsciiEngine::Backtrack(bt) => {
                AsciiScratch::Backtrack(bt.create_cache(), bt.create_captures())
            }
        }
    }

    /// The groups of the leftmost-first match of the pattern in `line`
    /// (`Some(None)`: no match); `None` if this engine cannot tell (a line
    /// too long for the backtracker's budget).
    fn captures<'c>(
        &self,
        scratch: &'c mut AsciiScratch,
        line: &[u8],
    ) -> Option<Option<Groups<'c>>> {
        let found = |caps: &'c Captures| Some(caps.is_match().then_some(Groups::Captures(caps)));
        match (self, scratch) {
            (AsciiEngine::OnePass(dfa), AsciiScratch::OnePass(cache, caps)) => {
                let input = Input::new(line).anchored(Anchored::Yes);
                dfa.try_search(cache, &input, caps).ok()?;
                found(caps)
            }
            (AsciiEngine::Pin(pin, bt, states), AsciiScratch::Pin(pins, fallback)) => {
                // A short line with a small pattern is cheaper for the
                // backtracker (its visited set is states x bytes, bounded
                // here); the pin engine's lazy DFA passes win beyond.
                if line.len().saturating_mul(*states) > BACKTRACK_BUDGET {
                    match pin.captures(pins, line) {
                        Some(true) => return Some(Some(Groups::Spans(pins.spans()))),
                        Some(false) => return Some(None),
                        None => {}
                    }
                }
                let (cache, caps) =
                    fallback.get_or_insert_with(|| (bt.create_cache(), bt.create_captures()));
                bt.try_search(cache, &Input::new(line), caps).ok()?;
                found(caps)
            }
            (AsciiEngine::Backtrack(bt), AsciiScratch::Backtrack(cache, caps)) => {
                bt.try_search(cache, &Input::new(line), caps).ok()?;
                found(caps)
            }
            _ => None,
        }
    }
}

/// States x bytes under which a line's groups are taken by the bounded
/// backtracker rather than the [`PinEngine`]. Measured (scan, best of 2-3,
/// against pin only): BIND query lines with the DNS IoC rule active 495 k
/// -> 738 k lines/s; 100 % web attacks 19.4 -> 17.6 MB/s; the bench corpus
/// and the other hostile files within noise. At 100,000 the attacks lost
/// 19 %; at 5,000 the DNS gain was gone.
const BACKTRACK_BUDGET: usize = 20_000;

/// Per-thread mutable state for a [`Matcher`].
pub struct Scratch {
    dfa_cache: Option<DfaCache>,
    unicode: UnicodeScratch,
    patset: PatternSet,
    found: [Found; WALKS],
    hits: Vec<Hit>,
    pub captures: CaptureScratch,
}

/// Which patterns match a line with non-ASCII bytes: a lazy DFA of the
/// patterns, where those with a Unicode word boundary (which a DFA cannot
/// tell next to a non-ASCII byte) are in without it, a looser pattern whose
/// matches their own regex confirms.
struct UnicodeLines {
    /// `None` if it cannot be built: then the set answers for all.
    dfa: Option<DFA>,
    /// DFA pattern -> pattern of the matcher, and whether its regex must
    /// confirm the match.
    ids: Vec<(PatternID, bool)>,
}

/// What matching a line with non-ASCII bytes needs.
#[derive(Default)]
struct UnicodeScratch {
    dfa: Option<(DfaCache, PatternSet)>,
    set: Option<meta::Cache>,
    /// A line that is not UTF-8, decoded (lossily) as events show it.
    text: Vec<u8>,
}

/// Capture buffers, one per pattern, reused from line to line (those of
/// the ASCII engines made at their first use).
pub struct CaptureScratch {
    /// Made at a pattern's first non-ASCII line.
    locs: Vec<Option<regex::bytes::CaptureLocations>>,
    ascii: Vec<Option<AsciiScratch>>,
    unicode: Vec<Option<PinScratch>>,
    /// A line that is not UTF-8, decoded (lossily) as events show it.
    text: Vec<u8>,
    /// The captures of a shared pattern on the current line: its first
    /// slot and the fields.
    memo: Option<(usize, Fields)>,
}

impl CaptureScratch {
    /// Forgets the captures remembered for the previous line; call before
    /// taking the fields of a new line.
    pub fn new_line(&mut self) {
        self.memo = None;
    }
}

impl Matcher {
    /// Compiles every pattern of the rules reading `input_type`.
    pub fn new(rules: &RuleSet, input_type: &str) -> Result<Matcher, String> {
        Self::build(rules, input_type, DFA_CACHE_BYTES, false)
    }

    /// [`Matcher::new`] that also runs the patterns of rules whose feed
    /// checks found no feed to bind to, as their examples need.
    pub fn with_inactive(rules: &RuleSet, input_type: &str) -> Result<Matcher, String> {
        Self::build(rules, input_type, DFA_CACHE_BYTES, true)
    }

    /// [`Matcher::new`] with `dfa_cache` bytes for the lazy DFA (tests make
    /// it small, to have it cleared often).
    #[cfg(test)]
    fn with_cache(rules: &RuleSet, input_type: &str, dfa_cache: usize) -> Result<Matcher, String> {
        Self::build(rules, input_type, dfa_cache, false)
    }

    fn build(
        rules: &RuleSet,
        input_type: &str,
        dfa_cache: usize,
        inactive: bool,
    ) -> Result<Matcher, String> {
        let mut hirs = Vec::new();
        let mut hits = Vec::new();
        let mut captures = Vec::new();
        let mut twins: Vec<Vec<usize>> = Vec::new();
        let selected: Vec<usize> = if inactive {
            rules.for_type_all(input_type).collect()
        } else {
            rules.for_type(input_type).collect()
        };
        for rule in selected {
            for (pattern, p) in rules.rule(rule).patterns.iter().enumerate() {
                let hir = regex_syntax::ParserBuilder::new()
                    .multi_line(true)
                    .utf8(false)
                    .build()
                    .parse(&p.source)
                    .map_err(|e| format!("{}: {e}", p.pos))?;
                hits.push(Hit {
                    rule,
                    pattern,
                    slot: hits.len(),
                });
                let names: Vec<(usize, Arc<str>)> = p
                    .groups()
                    .iter()
                    .map(|(i, n)| (*i, Arc::<str>::from(n.as_str())))
                    .collect();
                let shared = captures
                    .iter()
                    .position(|c: &CapturePlan| c.source == p.source && c.names == names);
                let slot = captures.len();
                match shared.and_then(|first| twins.iter().position(|t: &Vec<usize>| t[0] == first))
                {
                    Some(id) => twins[id].push(slot),
                    None => {
                        hirs.push(hir);
                        twins.push(vec![slot]);
                    }
                }
                captures.push(CapturePlan {
                    source: p.source.clone(),
                    regex: OnceLock::new(),
                    ascii: OnceLock::new(),
                    unicode: OnceLock::new(),
                    names,
                    shared,
                    twinned: false,
                });
            }
        }
        for i in 0..captures.len() {
            if let Some(first) = captures[i].shared {
                captures[first].twinned = true;
            }
        }
        let lines = if hirs.is_empty() {
            None
        } else {
            Some(LineAutomaton::new(&hirs, dfa_cache)?)
        };
        Ok(Matcher {
            input_type: input_type.to_owned(),
            lines,
            unicode_lines: OnceLock::new(),
            set: OnceLock::new(),
            hits,
            twins,
            captures,
        })
    }

    pub fn input_type(&self) -> &str {
        &self.input_type
    }

    pub fn pattern_count(&self) -> usize {
        self.hits.len()
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            dfa_cache: self.lines.as_ref().map(|l| DfaCache::new(&l.dfa)),
            unicode: UnicodeScratch::default(),
            patset: PatternSet::new(self.twins.len()),
            found: Default::default(),
            hits: Vec::new(),
            captures: CaptureScratch {
                locs: self.captures.iter().map(|_| None).collect(),
                ascii: self.captures.iter().map(|_| None).collect(),
                unicode: self.captures.iter().map(|_| None).collect(),
                text: Vec::new(),
                memo: None,
            },
        }
    }

    /// Calls `on_line(offset, line, hits, captures)` for each line of `buf` that some
    /// pattern matches, in order. `buf` holds whole lines separated by `\n`
    /// (the last one may lack it); `line` excludes the `\n`. A rule with
    /// several patterns that hit is reported once, with its first pattern.
    pub fn for_each_match(
        &self,
        scratch: &mut Scratch,
        buf: &[u8],
        mut on_line: impl FnMut(usize, &[u8], &[Hit], &mut CaptureScratch),
    ) {
        let Some(auto) = &self.lines else {
            return;
        };
        let Scratch {
            dfa_cache,
            unicode,
            patset,
            found,
            hits,
            captures,
        } = scratch;
        let Some(cache) = dfa_cache.as_mut() else {
            return;
        };
        let mut report = |start: usize, stop: usize, patset: &PatternSet| {
            if self.hits_of(patset, hits) {
                on_line(start, &buf[start..stop], hits, captures);
            }
        };
        let mut pass = Pass {
            matcher: self,
            dfa: &auto.dfa,
            cache,
            unicode,
            patset,
            buf,
        };
        let Some(pre) = &auto.prefilter else {
            pass.run(found, &mut report);
            return;
        };
        // Few lines hold a candidate: find each, then match its line alone.
        let mut pos = 0;
        while let Some(candidate) = pre.find(buf, Span::from(pos..buf.len())) {
            let (start, stop) = line_around(buf, pos, candidate.start);
            pass.buf = &buf[start..stop];
            pass.run(found, &mut |_, _, p| report(start, stop, p));
            pos = stop + 1;
            if pos >= buf.len() {
                break;
            }
        }
    }

    /// The rules whose patterns match one line (without its `\n`).
    pub fn match_line<'s>(&self, scratch: &'s mut Scratch, line: &[u8]) -> &'s [Hit] {
        let Scratch {
            dfa_cache,
            unicode,
            patset,
            found,
            hits,
            ..
        } = scratch;
        let (Some(auto), Some(cache)) = (&self.lines, dfa_cache.as_mut()) else {
            return &[];
        };
        if line.is_empty() {
            // A walk sees lines by their bytes and an empty buffer has
            // none; this one is a line all the same.
            self.which_unicode(unicode, patset, line);
            return if self.hits_of(patset, hits) {
                hits
            } else {
                &[]
            };
        }
        let mut pass = Pass {
            matcher: self,
            dfa: &auto.dfa,
            cache,
            unicode,
            patset,
            buf: line,
        };
        // A `\n` inside makes several lines: the hits of any of them.
        let mut all = PatternSet::new(self.twins.len());
        pass.run(found, &mut |_, _, p| {
            for id in p.iter() {
                all.insert(id);
            }
        });
        if self.hits_of(&all, hits) {
            hits
        } else {
            &[]
        }
    }

    /// Fills `patset` with the patterns, as written, that match `line` alone.
    /// A line that is not UTF-8 is matched as its lossy decoding: the text
    /// that events show, in which each invalid sequence is U+FFFD, which
    /// `.`, `\S` and `[^:]` match (read byte by byte, an invalid byte in a
    /// user name or URL would stop `(?P<user>.*)` or `[^"]*` short, and
    /// the line would escape the rule).
    fn which_unicode(&self, scratch: &mut UnicodeScratch, patset: &mut PatternSet, line: &[u8]) {
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
            let parsed = regex_syntax::ParserBuilder::new()
                .multi_line(true)
                .utf8(false)
                .build()
                .parse(&plan.source);
            let Ok(hir) = parsed else {
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

    /// The hits of the patterns in `patset`, one per rule; false if none.
    fn hits_of(&self, patset: &PatternSet, hits: &mut Vec<Hit>) -> bool {
        hits.clear();
        let mut twinned = false;
        for id in patset.iter() {
            let slots = &self.twins[id.as_usize()];
            twinned |= slots.len() > 1;
            hits.extend(slots.iter().map(|&slot| self.hits[slot]));
        }
        // Slots of one rule are adjacent: in slot order, a rule's repeats
        // follow each other. Already in order unless a pattern is shared.
        if twinned {
            hits.sort_unstable_by_key(|h| h.slot);
        }
        hits.dedup_by_key(|h| h.rule);
        !hits.is_empty()
    }

    /// Puts into `out` the named captures of `hit`'s pattern on `line`,
    /// lossily decoded (nothing if it does not match).
    pub fn fields(&self, scratch: &mut CaptureScratch, hit: Hit, line: &[u8], out: &mut Fields) {
        out.clear();
        let Some(plan) = self.captures.get(hit.slot) else {
            return;
        };
        if plan.names.is_empty() {
            return;
        }
        let first = plan.shared.unwrap_or(hit.slot);
        let shared = plan.shared.is_some() || plan.twinned;
        if let Some((slot, fields)) = &scratch.memo {
            if *slot == first {
                out.clone_from(fields);
                return;
            }
        }
        self.take_fields(scratch, hit.slot, plan, line, out);
        if shared {
            match &mut scratch.memo {
                Some((slot, fields)) => {
                    *slot = first;
                    fields.clone_from(out);
                }
                None => scratch.memo = Some((first, out.clone())),
            }
        }
    }

    fn take_fields(
        &self,
        scratch: &mut CaptureScratch,
        slot: usize,
        plan: &CapturePlan,
        line: &[u8],
        out: &mut Fields,
    ) {
        let CaptureScratch {
            locs,
            ascii,
            unicode,
            text,
            ..
        } = scratch;
        let push = |out: &mut Fields, text: &[u8], group: &dyn Fn(usize) -> Option<Span>| {
            for (g, name) in &plan.names {
                if let Some(value) = group(*g).and_then(|s| text.get(s.range())) {
                    out.push(name, value);
                }
            }
        };
        let text: &[u8] = if line.is_ascii() {
            let engine = plan
                .ascii
                .get_or_init(|| ascii_engine(&plan.source, &plan.names));
            if let (Some(engine), Some(scratch)) = (engine, ascii.get_mut(slot)) {
                let scratch = scratch.get_or_insert_with(|| engine.scratch());
                // `None`: the regex below takes the line.
                if let Some(groups) = engine.captures(scratch, line) {
                    if let Some(groups) = groups {
                        push(out, line, &|g| groups.get(g));
                    }
                    return;
                }
            }
            line
        } else {
            // A line that is not UTF-8 is read as its lossy decoding, as
            // the line matched it (see [`Matcher::which_unicode`]).
            let text = utf8_or_lossy(line, text);
            let engine = plan
                .unicode
                .get_or_init(|| unicode_engine(&plan.source, &plan.names));
            if let (Some(engine), Some(scratch)) = (engine, unicode.get_mut(slot)) {
                let scratch = scratch.get_or_insert_with(|| engine.scratch());
                match engine.captures(scratch, text) {
                    Some(true) => {
                        let groups = Groups::Spans(scratch.spans());
                        return push(out, text, &|g| groups.get(g));
                    }
                    Some(false) => return,
                    None => {}
                }
            }
            text
        };
        let Some(locs) = locs.get_mut(slot) else {
            return;
        };
        let regex = plan.regex();
        let locs = locs.get_or_insert_with(|| regex.capture_locations());
        if regex.captures_read(locs, text).is_some() {
            push(out, text, &|g| locs.get(g).map(|(s, e)| Span::from(s..e)));
        }
    }
}

/// `line` if it is UTF-8, else its lossy decoding (each invalid sequence
/// made U+FFFD, as `String::from_utf8_lossy` does) in `buf`.
fn utf8_or_lossy<'a>(line: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
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

/// Lines that one walk found, kept until the walks before it have reported.
#[derive(Default)]
struct Found {
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
struct Pass<'p> {
    matcher: &'p Matcher,
    dfa: &'p DFA,
    cache: &'p mut DfaCache,
    unicode: &'p mut UnicodeScratch,
    patset: &'p mut PatternSet,
    buf: &'p [u8],
}

/// Walks in lockstep over one buffer. The DFA walk of the bench access log
/// (thread CPU time, standalone driver): 1 walk 295 ms, 2 walks 155 ms, 3
/// 115 ms, 4 104 ms, 5 130 ms (the bookkeeping outgrows the overlap).
const WALKS: usize = 4;

/// Buffers shorter than this are walked in one piece.
const MIN_SPLIT: usize = 16 << 10;

impl Pass<'_> {
    fn run(&mut self, found: &mut [Found; WALKS], report: Report<'_>) {
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
            self.matcher
                .which_unicode(self.unicode, self.patset, &buf[start..stop]);
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

    /// Walks `buf[from..to]`, whole lines from a line start, in one piece;
    /// `to` is a line start or the end of `buf`.
    fn walk(&mut self, mut from: usize, to: usize, report: Report<'_>) {
        let (buf, dfa) = (self.buf, self.dfa);
        'walk: while from < to {
            let Some(mut sid) = self.start(from) else {
                return self.walk_unicode(from, to, report);
            };
            for (at, &byte) in buf[..to].iter().enumerate().skip(from) {
                if !sid.is_tagged() {
                    let next = dfa.next_state_untagged(self.cache, sid, byte);
                    if !next.is_tagged() {
                        sid = next;
                        continue;
                    }
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
                    self.matcher
                        .which_unicode(self.unicode, self.patset, &buf[start..stop]);
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
            self.matcher
                .which_unicode(self.unicode, self.patset, &self.buf[start..stop]);
            if !self.patset.is_empty() {
                report(start, stop, self.patset);
            }
            start = stop + 1;
        }
    }
}

impl LineAutomaton {
    /// `hirs` are the patterns as written.
    fn new(hirs: &[Hir], cache_bytes: usize) -> Result<LineAutomaton, String> {
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
        let mut config = DFA::config()
            .match_kind(MatchKind::All)
            .cache_capacity(cache_bytes)
            // Below the minimum, use the minimum (the DFA is then slower,
            // as its cache is cleared more often) rather than fail.
            .skip_cache_capacity_check(true);
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

/// `hir` without its Unicode word boundaries: a looser pattern (dropping
/// an assertion only adds matches) that a DFA can run on any text.
fn without_word_boundaries(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Look(
            Look::WordUnicode
            | Look::WordUnicodeNegate
            | Look::WordStartUnicode
            | Look::WordEndUnicode
            | Look::WordStartHalfUnicode
            | Look::WordEndHalfUnicode,
        ) => Hir::empty(),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(without_word_boundaries(&r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(without_word_boundaries(&c.sub)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(without_word_boundaries).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(without_word_boundaries).collect())
        }
        _ => hir.clone(),
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
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(DFA_CACHE_BYTES)
                .skip_cache_capacity_check(true),
        )
        .build_from_nfa(nfa)
        .map_err(|e| e.to_string())
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
        if !sid.is_tagged() {
            let next = dfa.next_state_untagged(cache, sid, byte);
            if !next.is_tagged() {
                sid = next;
                continue;
            }
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
            let hir = regex_syntax::ParserBuilder::new()
                .multi_line(true)
                .utf8(false)
                .build()
                .parse(source)
                .map_err(|e| e.to_string())?;
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

/// The ASCII-only capture engine of a pattern, parsed as `regex::bytes`
/// parses it; `None` if it cannot be built or would not name the same
/// groups.
fn ascii_engine(source: &str, names: &[(usize, Arc<str>)]) -> Option<AsciiEngine> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(source)
        .ok()?;
    let hir = ascii_only(&hir, false);
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().utf8(false))
        .build_from_hir(&hir)
        .ok()?;
    let info = nfa.group_info();
    let same = (0..info.group_len(PatternID::ZERO)).all(|i| {
        let name = info.to_name(PatternID::ZERO, i);
        name == names.iter().find(|(g, _)| *g == i).map(|(_, n)| &**n)
    });
    if !same {
        return None;
    }
    if nfa.is_always_start_anchored() {
        if let Ok(dfa) = onepass::DFA::new_from_nfa(nfa.clone()) {
            return Some(AsciiEngine::OnePass(Box::new(dfa)));
        }
    }
    // Without one, a search starts at every offset of the line before the
    // one where the pattern's literal prefix ("sshd", "ftpd[") is.
    let prefilter = Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, &hir);
    let states = nfa.states().len();
    let bt = BoundedBacktracker::builder()
        .configure(BoundedBacktracker::config().prefilter(prefilter))
        .build_from_nfa(nfa)
        .ok()?;
    let wanted: Vec<usize> = names.iter().map(|(g, _)| *g).collect();
    Some(match PinEngine::new(&hir, &wanted) {
        Some(pin) => AsciiEngine::Pin(Box::new(pin), bt, states),
        None => AsciiEngine::Backtrack(bt),
    })
}

/// The pattern as written (parsed as `regex::bytes` parses it) in a
/// [`PinEngine`] of the groups `names`, for lines that are not ASCII.
fn unicode_engine(source: &str, names: &[(usize, Arc<str>)]) -> Option<PinEngine> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(source)
        .ok()?;
    let wanted: Vec<usize> = names.iter().map(|(g, _)| *g).collect();
    PinEngine::new(&hir, &wanted)
}

/// Fills `patset` with the patterns of the match state `sid`.
fn matched_patterns(dfa: &DFA, cache: &DfaCache, sid: LazyStateID, patset: &mut PatternSet) {
    patset.clear();
    for i in 0..dfa.match_len(cache, sid) {
        patset.insert(dfa.match_pattern(cache, sid, i));
    }
}

/// The start and end (exclusive, at its `\n` or the end of `buf`) of the
/// line holding `at`, which is not before `from`, a line start.
fn line_around(buf: &[u8], from: usize, at: usize) -> (usize, usize) {
    let stop = memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
    (line_start(buf, from, at), stop)
}

/// The start of the line holding `at`, which is not before `from`, a line start.
fn line_start(buf: &[u8], from: usize, at: usize) -> usize {
    memrchr(b'\n', &buf[from..at]).map_or(from, |i| from + i + 1)
}

/// Rewrites a pattern so that no match can contain a line break when run
/// over a buffer of many lines: `\n` leaves every class (`\s`, `[^"]`), a
/// literal with a newline can never match, and `\A`/`\z` become line
/// anchors. Matching one line alone is unchanged, which is what lets a
/// buffer-wide search stand for one search per line.
fn line_only(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Class(Class::Unicode(mut c)) => {
            c.difference(&hir::ClassUnicode::new([hir::ClassUnicodeRange::new(
                '\n', '\n',
            )]));
            class_or_fail(Class::Unicode(c))
        }
        HirKind::Class(Class::Bytes(mut c)) => {
            c.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'\n', b'\n',
            )]));
            class_or_fail(Class::Bytes(c))
        }
        HirKind::Look(look) => Hir::look(match look {
            Look::Start => Look::StartLF,
            Look::End => Look::EndLF,
            other => other,
        }),
        HirKind::Repetition(mut r) => {
            r.sub = Box::new(line_only(*r.sub));
            Hir::repetition(r)
        }
        HirKind::Capture(mut c) => {
            c.sub = Box::new(line_only(*c.sub));
            Hir::capture(c)
        }
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(line_only).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(line_only).collect()),
        HirKind::Literal(lit) if lit.0.contains(&b'\n') => Hir::fail(),
        HirKind::Literal(lit) => Hir::literal(lit.0),
        HirKind::Empty => Hir::empty(),
    }
}

/// Rewrites a pattern to what it can match in an ASCII haystack: classes
/// keep their ASCII members (as single bytes, so `\S` is one NFA state, not
/// a UTF-8 automaton), literals with other bytes never match, and Unicode
/// word boundaries become ASCII ones (they agree when both neighbours are
/// ASCII). On a haystack of bytes < 0x80 the result matches exactly where
/// the original does, with the same groups; on any other it may not.
///
/// With `lines`, also rewrites as [`line_only`] does, in the same pass
/// (each pass over the large web patterns costs milliseconds at start-up).
pub(super) fn ascii_only(hir: &Hir, lines: bool) -> Hir {
    let class = |ranges: &mut dyn Iterator<Item = (u32, u32)>| {
        let mut class = hir::ClassBytes::new(
            ranges
                .filter(|&(start, _)| start < 0x80)
                // Both bounds are < 0x80 here, so the casts are exact.
                .map(|(start, end)| hir::ClassBytesRange::new(start as u8, end.min(0x7f) as u8)),
        );
        if lines {
            class.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'\n', b'\n',
            )]));
        }
        class_or_fail(Class::Bytes(class))
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => class(
            &mut c
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Class(Class::Bytes(c)) => class(
            &mut c
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end()))),
        ),
        HirKind::Look(look) => Hir::look(match *look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            Look::Start if lines => Look::StartLF,
            Look::End if lines => Look::EndLF,
            other => other,
        }),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(ascii_only(&r.sub, lines)),
        }),
        HirKind::Capture(c) => Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(ascii_only(&c.sub, lines)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|h| ascii_only(h, lines)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|h| ascii_only(h, lines)).collect())
        }
        HirKind::Literal(lit) if !lit.0.is_ascii() || (lines && lit.0.contains(&b'\n')) => {
            Hir::fail()
        }
        HirKind::Literal(lit) => Hir::literal(lit.0.clone()),
        HirKind::Empty => Hir::empty(),
    }
}

fn class_or_fail(class: Class) -> Hir {
    if class.is_empty() {
        Hir::fail()
    } else {
        Hir::class(class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load::Loader;

    fn rules(patterns: &[(&str, &str)]) -> RuleSet {
        let mut text = String::from("rules:\n");
        for (id, p) in patterns {
            text.push_str(&format!(
                "  - id: {id}\n    title: t\n    description: d\n    category: recon\n    severity: low\n    types: [syslog]\n    patterns: ['{p}']\n"
            ));
        }
        let mut l = Loader::new();
        l.add_source("t.yaml", &text);
        RuleSet {
            rules: l.finish().expect("valid"),
            feeds: Default::default(),
            warnings: Vec::new(),
        }
    }

    fn matching_lines(rs: &RuleSet, buf: &[u8]) -> Vec<(String, Vec<usize>)> {
        let m = Matcher::new(rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let mut out = Vec::new();
        m.for_each_match(&mut s, buf, |_, line, hits, _| {
            out.push((
                String::from_utf8_lossy(line).into_owned(),
                hits.iter().map(|h| h.rule).collect(),
            ))
        });
        out
    }

    #[test]
    fn classes_do_not_cross_lines() {
        // `[^"]*` would span the newline in a buffer-wide search; the
        // candidate found there must not hide the real match on line 3.
        let rs = rules(&[("a", r#"x[^"]*y"#), ("b", "^zz$")]);
        let got = matching_lines(&rs, b"x no\nnothing y\nzz\nxay\n");
        assert_eq!(got, vec![("zz".into(), vec![1]), ("xay".into(), vec![0])]);
    }

    #[test]
    fn empty_matches_and_line_ends_name_the_right_line() {
        let rs = rules(&[("a", "^$"), ("b", "z$")]);
        let got = matching_lines(&rs, b"a\n\nxz\n\n");
        assert_eq!(
            got,
            vec![
                ("".into(), vec![0]),
                ("xz".into(), vec![1]),
                ("".into(), vec![0])
            ]
        );
        assert_eq!(matching_lines(&rs, b"\n"), vec![("".into(), vec![0])]);
        assert!(matching_lines(&rs, b"").is_empty(), "no line at all");
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let rules_of = |hits: &[Hit]| hits.iter().map(|h| h.rule).collect::<Vec<_>>();
        assert_eq!(rules_of(m.match_line(&mut s, b"")), vec![0]);
        assert_eq!(rules_of(m.match_line(&mut s, b"xz")), vec![1]);
        // Not one line after all: the hits of any of its lines.
        assert_eq!(rules_of(m.match_line(&mut s, b"xz\na")), vec![1]);
        assert_eq!(rules_of(m.match_line(&mut s, b"a\n\nb")), vec![0]);
    }

    #[test]
    fn text_anchors_mean_line_anchors() {
        let rs = rules(&[("a", r"\Afoo\z")]);
        let got = matching_lines(&rs, b"bar\nfoo\nfoo bar\nfoo");
        assert_eq!(got, vec![("foo".into(), vec![0]), ("foo".into(), vec![0])]);
    }

    #[test]
    fn several_rules_hit_one_line_and_fields_are_captured() {
        let rs = rules(&[
            ("a", r"from (?P<src_ip>\S+)"),
            ("b", r"user (?P<user>\w+)"),
            ("c", r"never"),
        ]);
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let line = b"Failed for user bob from 10.0.0.1 port 22";
        let hits = m.match_line(&mut s, line).to_vec();
        assert_eq!(hits.iter().map(|h| h.rule).collect::<Vec<_>>(), vec![0, 1]);
        let mut f = Fields::default();
        m.fields(&mut s.captures, hits[0], line, &mut f);
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("src_ip", "10.0.0.1")]);
        m.fields(&mut s.captures, hits[1], line, &mut f);
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("user", "bob")]);
    }

    #[test]
    fn a_pattern_of_several_rules_is_compiled_once_and_hits_each() {
        let rs = rules(&[
            ("a", r"from (?P<src_ip>\S+)"),
            ("b", r"user (?P<user>\w+)"),
            ("c", r"from (?P<src_ip>\S+)"),
            ("d", r"user (?P<user>\w+)"),
        ]);
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        assert_eq!(m.twins, vec![vec![0, 2], vec![1, 3]]);
        let mut s = m.scratch();
        let line = b"Failed for user bob from 10.0.0.1 port 22";
        let hits = m.match_line(&mut s, line).to_vec();
        assert_eq!(
            hits.iter().map(|h| h.rule).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        let mut f = Fields::default();
        for (hit, want) in hits
            .iter()
            .zip([("src_ip", "10.0.0.1"), ("user", "bob")].iter().cycle())
        {
            s.captures.new_line();
            m.fields(&mut s.captures, *hit, line, &mut f);
            assert_eq!(f.iter().collect::<Vec<_>>(), vec![*want]);
        }
        // Non-ASCII lines go through the set of patterns as written.
        let line = "user bób from 10.0.0.2".as_bytes();
        let hits = m.match_line(&mut s, line).to_vec();
        assert_eq!(
            hits.iter().map(|h| h.rule).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn invalid_utf8_and_nul_do_not_break_matching() {
        let rs = rules(&[("a", r"evil (?P<x>\S+)")]);
        let got = matching_lines(&rs, b"\xff\xfe\0\nevil th\xffing\n\0\0evil z");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "evil th\u{fffd}ing");
    }

    #[test]
    fn no_rules_for_type_matches_nothing() {
        let rs = rules(&[("a", "x")]);
        let m = Matcher::new(&rs, "nginx").expect("compiles");
        let mut s = m.scratch();
        let mut n = 0;
        m.for_each_match(&mut s, b"x\nx\n", |_, _, _, _| n += 1);
        assert_eq!(n, 0);
        assert!(m.match_line(&mut s, b"x").is_empty());
    }

    /// A rule that hit and its captures.
    type Found = (usize, Vec<(String, String)>);

    /// What the matcher must find in one line: the rules whose patterns, as
    /// written, match it (first pattern of each), with their captures; a
    /// line that is not UTF-8 is read as its lossy decoding.
    fn reference(rs: &RuleSet, line: &[u8]) -> Vec<Found> {
        let text = String::from_utf8_lossy(line);
        let mut out = Vec::new();
        for rule in rs.for_type("syslog") {
            for p in &rs.rule(rule).patterns {
                if let Some(c) = p.regex().captures(text.as_bytes()) {
                    let fields = p
                        .regex()
                        .capture_names()
                        .enumerate()
                        .filter_map(|(i, n)| {
                            let m = c.get(i)?;
                            Some((n?.to_owned(), String::from_utf8_lossy(m.as_bytes()).into()))
                        })
                        .collect();
                    out.push((rule, fields));
                    break;
                }
            }
        }
        out
    }

    /// Every matched line of `buf`, with each hit's rule and captures.
    fn found(m: &Matcher, buf: &[u8]) -> Vec<(Vec<u8>, Vec<Found>)> {
        let mut s = m.scratch();
        let mut out = Vec::new();
        m.for_each_match(&mut s, buf, |offset, line, hits, caps| {
            assert_eq!(&buf[offset..offset + line.len()], line);
            let hits = hits
                .iter()
                .map(|&h| {
                    let mut f = Fields::default();
                    m.fields(caps, h, line, &mut f);
                    (
                        h.rule,
                        f.iter().map(|(k, v)| (k.into(), v.into())).collect(),
                    )
                })
                .collect();
            out.push((line.to_vec(), hits));
        });
        out
    }

    fn check_against_reference(rs: &RuleSet, lines: &[Vec<u8>]) {
        let m = Matcher::new(rs, "syslog").expect("compiles");
        check_matcher(&m, rs, lines);
    }

    fn check_matcher(m: &Matcher, rs: &RuleSet, lines: &[Vec<u8>]) {
        let want: Vec<_> = lines
            .iter()
            .filter_map(|l| {
                let r = reference(rs, l);
                (!r.is_empty()).then(|| (l.clone(), r))
            })
            .collect();
        let buf = lines.join(&b"\n"[..]);
        assert_eq!(found(m, &buf), want, "one buffer");
        let mut with_end = buf.clone();
        with_end.push(b'\n');
        assert_eq!(found(m, &with_end), want, "one buffer, final newline");
        let mut s = m.scratch();
        for (line, hits) in &want {
            let got: Vec<usize> = m.match_line(&mut s, line).iter().map(|h| h.rule).collect();
            let want: Vec<usize> = hits.iter().map(|h| h.0).collect();
            assert_eq!(got, want, "line alone: {:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn non_ascii_lines_match_as_the_patterns_are_written() {
        // Each line is one where an ASCII-only reading of the pattern would
        // differ: the Kelvin sign is `k` under (?i), a non-breaking space
        // is `\s` (so not `\S`), `é` is a word character.
        let rs = rules(&[
            ("kelvin", r"(?i)user k(?P<rest>\w+)"),
            ("nbsp", r"from (?P<src_ip>\S+) port"),
            ("word", r"\bsu(?P<tail>\w*)\b"),
            ("any", r"id=(?P<id>.)$"),
        ]);
        let lines: Vec<Vec<u8>> = [
            "user kelvin",
            "user \u{212a}elvin",
            "from 10.0.0.1 port 22",
            "from 10.0.0.1\u{a0}x port 22",
            "from 10.0.0.1\u{a0}port 22",
            "su: ok",
            "\u{e9}su: no word boundary before su",
            "sudo",
            "sudo\u{e9}",
            "id=\u{e9}",
            "id=x",
            "id=\u{e9}\u{e9}",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .chain([b"from 1.2.3.4\xff port 1".to_vec(), b"id=\xff".to_vec()])
        .collect();
        check_against_reference(&rs, &lines);
    }

    fn random_rules() -> RuleSet {
        rules(&[
            (
                "a",
                r"sshd\[\d+\]: Failed password for (?:invalid user )?(?P<user>.*) from (?P<src_ip>[0-9a-f:.]+) port \d+\s*$",
            ),
            ("b", r"(?i)\buser=(?P<user>\S+)"),
            ("c", r"^\w+ \s*(?P<word>[^ ]*)$"),
            ("d", r"(?P<x>k+)\b"),
            // One-pass, and without a literal prefix to start from.
            ("e", r"[a-z]+=(?P<v>[0-9]*)"),
        ])
    }

    /// `count` lines made of pieces that make [`random_rules`] nearly
    /// match, and of bytes they read differently in ASCII and Unicode;
    /// with `long`, now and then a line longer than a lockstep walk.
    fn random_lines(count: usize, long: bool) -> Vec<Vec<u8>> {
        let pieces: &[&[u8]] = &[
            b"sshd[12]: Failed password for ",
            b"invalid user ",
            b"root",
            b" from ",
            b"10.0.0.1",
            b" port 22",
            b" ",
            b"user=",
            b"USER=",
            b"id=12",
            b"k",
            b"K",
            "\u{212a}".as_bytes(),
            "\u{a0}".as_bytes(),
            "\u{e9}".as_bytes(),
            b"\xff",
            b"\t",
            b"x",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        (0..count)
            .map(|_| {
                if long && next() % 500 == 0 {
                    let mut line = b"user=".repeat(8000);
                    line.extend_from_slice(b" k");
                    return line;
                }
                let n = next() % 9;
                (0..n)
                    .flat_map(|_| {
                        pieces[(next() % pieces.len() as u64) as usize]
                            .iter()
                            .copied()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn engines_follow_the_shape_of_the_pattern() {
        let engine = |p: &str| {
            let names = regex::bytes::Regex::new(p)
                .expect("valid")
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| Some((i, Arc::from(n?))))
                .collect::<Vec<_>>();
            match ascii_engine(p, &names) {
                Some(AsciiEngine::OnePass(_)) => "one-pass",
                Some(AsciiEngine::Pin(..)) => "pin",
                Some(AsciiEngine::Backtrack(_)) => "backtrack",
                None => panic!("no engine for {p}"),
            }
        };
        assert_eq!(engine(r"^(?P<k>[a-z]+)=(?P<v>[0-9]*)"), "one-pass");
        // One-pass, but restarting it at each candidate start would cost
        // the square of a hostile line.
        assert_eq!(engine(r"[a-z]+=(?P<v>[0-9]*)"), "pin");
        assert_eq!(
            engine(r"\bftpd\[\d+\]: connection from (?P<ip>[0-9a-f:.]+)"),
            "pin"
        );
        assert_eq!(engine(r"Invalid user (?P<user>.*) from (?P<ip>\S+)"), "pin");
        assert_eq!(engine(r"(?:(?P<x>a)|b)+$"), "backtrack");
    }

    #[test]
    fn invalid_utf8_in_a_user_name_does_not_hide_a_failed_password() {
        let rs = RuleSet::load(&crate::rules::RuleSources {
            builtin: true,
            ..Default::default()
        })
        .expect("shipped rules load");
        let rule = rs.by_id("ssh-failed-password").expect("shipped rule");
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let line: &[u8] = b"Dec 10 09:11:20 host sshd[24472]: Failed password for invalid user ab\xff\xfecd from 1.2.3.4 port 22 ssh2";
        let mut found = None;
        m.for_each_match(&mut s, line, |_, line, hits, caps| {
            caps.new_line();
            let hit = hits.iter().find(|h| h.rule == rule).copied();
            found = hit.map(|hit| {
                let mut f = Fields::default();
                m.fields(caps, hit, line, &mut f);
                f.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            });
        });
        let fields = found.expect("ssh-failed-password matches");
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("user"), Some("ab\u{fffd}\u{fffd}cd"));
        assert_eq!(get("src_ip"), Some("1.2.3.4"));
        assert_eq!(get("pid"), Some("24472"));
    }

    #[test]
    fn a_non_ascii_line_after_a_matching_one_matches_alone() {
        let rs = rules(&[("a", r"x(?P<v>.)"), ("b", r"y$")]);
        let lines: Vec<Vec<u8>> = ["x\u{e9}", "\u{e9}", "\u{e9} y", "\u{e9}x", "x\u{e9}"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        check_against_reference(&rs, &lines);
    }

    #[test]
    fn random_lines_match_as_the_patterns_are_written() {
        let lines = random_lines(3000, false);
        assert!(lines.iter().map(|l| l.len() + 1).sum::<usize>() > 2 * MIN_SPLIT);
        check_against_reference(&random_rules(), &lines);
    }

    #[test]
    fn random_lines_match_through_the_unicode_dfa() {
        // The lazy DFA of the patterns as written takes every line with
        // non-ASCII bytes, `\b` included (it is checked by the regex).
        let rs = random_rules();
        let m = Matcher::new(&rs, "syslog").expect("compiles");
        let mut s = m.scratch();
        let mut patset = PatternSet::new(m.twins.len());
        m.which_unicode(&mut s.unicode, &mut patset, "user=\u{e9}".as_bytes());
        assert!(s.unicode.dfa.is_some() && s.unicode.set.is_none());
        let lines = random_lines(3000, false);
        check_matcher(&m, &rs, &lines);
        m.for_each_match(&mut s, &lines.join(&b"\n"[..]), |_, _, _, _| {});
        assert!(s.unicode.set.is_none(), "the DFA never gave up");
    }

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
        let clears = s.dfa_cache.as_ref().map_or(0, |c| c.clear_count());
        assert!(clears > 10, "the cache was cleared {clears} times");
    }

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
