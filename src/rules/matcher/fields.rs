//! Step 2 of matching: the named groups of a pattern that hit a line,
//! taken on that line alone by the cheapest engine that gives the groups
//! the leftmost-first engines would (see the module doc of [`super`]).

use std::sync::{Arc, OnceLock};

use regex_automata::dfa::onepass;
use regex_automata::nfa::thompson;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Anchored, Input, MatchKind, PatternID, Span};

use super::pin::{PinEngine, PinScratch};
use super::syntax::{ascii_only, parse};
use super::unicode::utf8_or_lossy;
use super::{Hit, Matcher};
use crate::event::Fields;

pub(super) struct CapturePlan {
    pub(super) source: String,
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
    pub(super) names: Vec<(usize, Arc<str>)>,
    /// The first slot with the same pattern, when another rule has it too
    /// (a group member and its slow counterpart): one line's captures of
    /// it are taken once, see [`CaptureScratch::new_line`].
    pub(super) shared: Option<usize>,
    /// Whether later slots share this one's pattern.
    pub(super) twinned: bool,
}

impl CapturePlan {
    /// The plan of a pattern whose compiled forms are all built when first
    /// needed; `shared`: the first slot with the same pattern, if any.
    pub(super) fn new(
        source: &str,
        names: Vec<(usize, Arc<str>)>,
        shared: Option<usize>,
    ) -> CapturePlan {
        CapturePlan {
            source: source.to_owned(),
            regex: OnceLock::new(),
            ascii: OnceLock::new(),
            unicode: OnceLock::new(),
            names,
            shared,
            twinned: false,
        }
    }

    pub(super) fn regex(&self) -> &regex::bytes::Regex {
        self.regex
            .get_or_init(|| crate::rules::Pattern::compile_or_never(&self.source))
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
    /// Buffers for `plans` patterns, each made at its pattern's first use.
    pub(super) fn new(plans: usize) -> CaptureScratch {
        CaptureScratch {
            locs: (0..plans).map(|_| None).collect(),
            ascii: (0..plans).map(|_| None).collect(),
            unicode: (0..plans).map(|_| None).collect(),
            text: Vec::new(),
            memo: None,
        }
    }

    /// Forgets the captures remembered for the previous line; call before
    /// taking the fields of a new line.
    pub fn new_line(&mut self) {
        self.memo = None;
    }
}
impl Matcher {
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

/// The ASCII-only capture engine of a pattern, parsed as `regex::bytes`
/// parses it; `None` if it cannot be built or would not name the same
/// groups.
fn ascii_engine(source: &str, names: &[(usize, Arc<str>)]) -> Option<AsciiEngine> {
    let hir = ascii_only(&parse(source).ok()?, false);
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
    let hir = parse(source).ok()?;
    let wanted: Vec<usize> = names.iter().map(|(g, _)| *g).collect();
    PinEngine::new(&hir, &wanted)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

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
        let rs = RuleSet::shipped();
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
}
