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
//!    else a [`PinEngine`](pin::PinEngine), which places the groups with
//!    lazy DFAs alone, in time linear in the line, and takes exactly the
//!    groups that the leftmost-first engines would. The backtracker it
//!    replaced cost 55% of a scan of web attacks (one 5,000-state pattern
//!    walked `[^"]*` back and forth at every byte of the URL), and 1 MB/s
//!    on `..%2f` repeated: its visited set is states x bytes. It remains for
//!    the rare line where a group's place is a tie that only backtracking
//!    settles, and for patterns with groups inside a repetition.
//!
//! Both steps run ASCII-only automata. Unicode classes (`\s`, `\w`, `.`,
//! `(?i)k`) compile to many UTF-8 states, which every automaton pays for on
//! every byte. On an ASCII line a Unicode class can only match its ASCII
//! members, so there the ASCII automata are exact; the DFA stops at the
//! first byte >= 0x80, and that line (only that line) is matched with the
//! patterns as written (another lazy DFA, see [`UnicodeLines`], and
//! [`PinEngine`](pin::PinEngine)s of the patterns as written for the
//! captures). Results therefore never depend on the path a line took, and
//! log lines, nearly all ASCII, take the fast one.
//!
//! A line that is not UTF-8 is matched (and its groups taken) as its lossy
//! decoding, the text that its events show: each invalid sequence is
//! U+FFFD, which `.`, `\S`, `[^:]` and `[^"]` match. Read byte by byte, as
//! it was, `(?P<user>.*)` or `(?:[^"\\]|\\.)*` stopped at an invalid byte,
//! and an attacker who put one in a user name or URL escaped the rule.
//!
//! Caches and buffers live in [`Scratch`], so the common path does not
//! allocate.
//!
//! Where each part lives: [`line_automaton`] builds the automaton of step 1
//! and [`pass`] walks it; [`unicode`] matches the lines with non-ASCII
//! bytes; [`fields`] is step 2, with the [`pin`] engine; [`syntax`]
//! rewrites patterns for these automata, and [`lazy`] holds what they share
//! in building and walking lazy DFAs.

mod fields;
mod lazy;
mod line_automaton;
mod pass;
mod pin;
mod program;
mod syntax;
mod unicode;

use std::sync::{Arc, OnceLock};

use regex_automata::hybrid::dfa::Cache as DfaCache;
use regex_automata::meta::Regex as MetaRegex;
use regex_automata::{PatternSet, Span};

use super::RuleSet;
use fields::CapturePlan;
pub use fields::CaptureScratch;
use line_automaton::LineAutomaton;
use pass::{line_around, Found, Pass, PassScratch, WALKS};
use unicode::{UnicodeLines, UnicodeScratch};

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
    /// For each hit's pattern, on syslog lines: the programs whose lines
    /// alone it may match (see [`program`]).
    programs: Vec<Option<program::Programs>>,
}

/// Per-thread mutable state for a [`Matcher`].
pub struct Scratch {
    walk: PassScratch,
    found: [Found; WALKS],
    hits: Vec<Hit>,
    pub captures: CaptureScratch,
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
        let mut programs = Vec::new();
        let mut twins: Vec<Vec<usize>> = Vec::new();
        let selected: Vec<usize> = if inactive {
            rules.for_type_all(input_type).collect()
        } else {
            rules.for_type(input_type).collect()
        };
        for rule in selected {
            for (pattern, p) in rules.rule(rule).patterns.iter().enumerate() {
                let hir =
                    syntax::parse_multi_line(&p.source).map_err(|e| format!("{}: {e}", p.pos))?;
                // Applications' own files may hold syslog-shaped lines too.
                programs.push(if matches!(input_type, "syslog" | "app") {
                    program::program_names(&hir, rules.rule(rule))
                } else {
                    None
                });
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
                captures.push(CapturePlan::new(&p.source, names, shared));
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
            programs,
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
            walk: PassScratch {
                dfa_cache: self.lines.as_ref().map(|l| DfaCache::new(&l.dfa)),
                unicode: UnicodeScratch::default(),
                patset: PatternSet::new(self.twins.len()),
            },
            found: Default::default(),
            hits: Vec::new(),
            captures: CaptureScratch::new(self.captures.len()),
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
        let Scratch {
            walk,
            found,
            hits,
            captures,
        } = scratch;
        let Some(mut pass) = Pass::new(self, walk, buf) else {
            return;
        };
        let mut report = |start: usize, stop: usize, patset: &PatternSet| {
            if self.hits_of(patset, &buf[start..stop], hits) {
                on_line(start, &buf[start..stop], hits, captures);
            }
        };
        let Some(pre) = self.lines.as_ref().and_then(|l| l.prefilter.as_ref()) else {
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
            walk, found, hits, ..
        } = scratch;
        let Some(mut pass) = Pass::new(self, walk, line) else {
            return &[];
        };
        if line.is_empty() {
            // A walk sees lines by their bytes and an empty buffer has
            // none; this one is a line all the same.
            pass.match_as_written(0, 0);
            return if self.hits_of(pass.patset, line, hits) {
                hits
            } else {
                &[]
            };
        }
        // A `\n` inside makes several lines: the hits of any of them.
        let mut all = PatternSet::new(self.twins.len());
        pass.run(found, &mut |_, _, p| {
            for id in p.iter() {
                all.insert(id);
            }
        });
        if self.hits_of(&all, line, hits) {
            hits
        } else {
            &[]
        }
    }

    /// The hits of the patterns in `patset` on `line`, one per rule; false
    /// if none. A pattern that names its program hits only lines of that
    /// program (see [`program`]).
    fn hits_of(&self, patset: &PatternSet, line: &[u8], hits: &mut Vec<Hit>) -> bool {
        hits.clear();
        let mut twinned = false;
        let mut named = false;
        for id in patset.iter() {
            let slots = &self.twins[id.as_usize()];
            twinned |= slots.len() > 1;
            named |= slots.iter().any(|&slot| self.programs[slot].is_some());
            hits.extend(slots.iter().map(|&slot| self.hits[slot]));
        }
        if named {
            let writer = program::Writer::of(line);
            hits.retain(|h| {
                self.programs[h.slot]
                    .as_deref()
                    .is_none_or(|names| program::written_by(names, writer.as_ref()))
            });
        }
        // Slots of one rule are adjacent: in slot order, a rule's repeats
        // follow each other. Already in order unless a pattern is shared.
        if twinned {
            hits.sort_unstable_by_key(|h| h.slot);
        }
        hits.dedup_by_key(|h| h.rule);
        !hits.is_empty()
    }
}

#[cfg(test)]
mod tests {

    use super::pass::MIN_SPLIT;
    use super::*;
    use crate::event::Fields;
    use crate::rules::load::Loader;

    pub(super) fn rules(patterns: &[(&str, &str)]) -> RuleSet {
        rules_in("t.yaml", patterns)
    }

    /// The rules of a file named `file`: `<builtin>/...` loads them as
    /// shipped ones, not compiled at load (nor refused for matching the
    /// empty line), for the matcher's own edge cases.
    fn rules_in(file: &str, patterns: &[(&str, &str)]) -> RuleSet {
        let mut text = String::from("rules:\n");
        for (id, p) in patterns {
            text.push_str(&format!(
                "  - id: {id}\n    title: t\n    description: d\n    category: recon\n    severity: low\n    types: [syslog]\n    patterns: ['{p}']\n"
            ));
        }
        let mut l = Loader::new();
        l.add_source(file, &text);
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
        // The loader refuses a local pattern that matches the empty line;
        // the matcher still places such a match on the right line.
        let rs = rules_in("<builtin>/t.yaml", &[("a", "^$"), ("b", "z$")]);
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

    pub(super) fn check_against_reference(rs: &RuleSet, lines: &[Vec<u8>]) {
        let m = Matcher::new(rs, "syslog").expect("compiles");
        check_matcher(&m, rs, lines);
    }

    pub(super) fn check_matcher(m: &Matcher, rs: &RuleSet, lines: &[Vec<u8>]) {
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

    pub(super) fn random_rules() -> RuleSet {
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
    pub(super) fn random_lines(count: usize, long: bool) -> Vec<Vec<u8>> {
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
}
