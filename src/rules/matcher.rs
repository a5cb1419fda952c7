//! One automaton per input type over the patterns of every rule that reads it.
//!
//! Two passes, as ripgrep does: a leftmost-first search over a whole buffer
//! of lines finds the next line that *any* pattern may match, so lines that
//! match nothing (nearly all of them) cost only the DFA walk; then the same
//! patterns, compiled as a set (`MatchKind::All`, what `regex::RegexSet` is
//! made of), say which patterns hit that one line, and only those run their
//! captures. Caches and buffers live in [`Scratch`], so the common path does
//! not allocate.

use std::sync::Arc;

use memchr::{memchr, memrchr};
use regex_automata::meta::{self, Regex as MetaRegex};
use regex_automata::{Input, MatchKind, PatternSet};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

use super::RuleSet;

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
    scan: Option<MetaRegex>,
    set: Option<MetaRegex>,
    /// Set pattern id -> the hit it stands for.
    hits: Vec<Hit>,
    /// For each hit's pattern: regex for captures and (group index, field name).
    captures: Vec<CapturePlan>,
}

struct CapturePlan {
    regex: regex::bytes::Regex,
    names: Vec<(usize, Arc<str>)>,
}

/// Per-thread mutable state for a [`Matcher`].
pub struct Scratch {
    scan_cache: Option<meta::Cache>,
    set_cache: Option<meta::Cache>,
    patset: PatternSet,
    hits: Vec<Hit>,
    pub captures: CaptureScratch,
}

/// Capture buffers, one per pattern, reused from line to line.
pub struct CaptureScratch {
    locs: Vec<regex::bytes::CaptureLocations>,
}

impl Matcher {
    /// Compiles every pattern of the rules reading `input_type`.
    pub fn new(rules: &RuleSet, input_type: &str) -> Result<Matcher, String> {
        let mut hirs = Vec::new();
        let mut hits = Vec::new();
        let mut captures = Vec::new();
        for rule in rules.for_type(input_type) {
            for (pattern, p) in rules.rule(rule).patterns.iter().enumerate() {
                let hir = regex_syntax::ParserBuilder::new()
                    .multi_line(true)
                    .utf8(false)
                    .build()
                    .parse(&p.source)
                    .map_err(|e| format!("{}: {e}", p.pos))?;
                hirs.push(line_only(hir));
                hits.push(Hit {
                    rule,
                    pattern,
                    slot: hits.len(),
                });
                let names = p
                    .regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, Arc::<str>::from(n))))
                    .collect();
                captures.push(CapturePlan {
                    regex: p.regex.clone(),
                    names,
                });
            }
        }
        let (scan, set) = if hirs.is_empty() {
            (None, None)
        } else {
            (
                Some(build(&hirs, MatchKind::LeftmostFirst)?),
                Some(build(&hirs, MatchKind::All)?),
            )
        };
        Ok(Matcher {
            input_type: input_type.to_owned(),
            scan,
            set,
            hits,
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
            scan_cache: self.scan.as_ref().map(|r| r.create_cache()),
            set_cache: self.set.as_ref().map(|r| r.create_cache()),
            patset: PatternSet::new(self.hits.len()),
            hits: Vec::new(),
            captures: CaptureScratch {
                locs: self
                    .captures
                    .iter()
                    .map(|c| c.regex.capture_locations())
                    .collect(),
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
        let Scratch {
            scan_cache,
            set_cache,
            patset,
            hits,
            captures,
        } = scratch;
        let (Some(scan), Some(cache)) = (&self.scan, scan_cache.as_mut()) else {
            return;
        };
        let mut pos = 0;
        while pos < buf.len() {
            let input = Input::new(buf).span(pos..buf.len());
            // Only the end of the match is needed: no match can contain a
            // newline (see `line_only`), so the end names the line, and the
            // reverse search for the start would be wasted work.
            let Some(end) = scan.search_half_with(cache, &input) else {
                return;
            };
            let end = end.offset();
            let start = memrchr(b'\n', &buf[pos..end]).map_or(pos, |i| pos + i + 1);
            let stop = memchr(b'\n', &buf[end..]).map_or(buf.len(), |i| end + i);
            let line = &buf[start..stop];
            // The buffer-wide search is only a filter: verify on the line alone.
            if self.which(set_cache, patset, hits, line) {
                on_line(start, line, hits, captures);
            }
            pos = stop + 1;
        }
    }

    /// The rules whose patterns match one line (without its `\n`).
    pub fn match_line<'s>(&self, scratch: &'s mut Scratch, line: &[u8]) -> &'s [Hit] {
        let Scratch {
            set_cache,
            patset,
            hits,
            ..
        } = scratch;
        if self.which(set_cache, patset, hits, line) {
            hits
        } else {
            &[]
        }
    }

    fn which(
        &self,
        set_cache: &mut Option<meta::Cache>,
        patset: &mut PatternSet,
        hits: &mut Vec<Hit>,
        line: &[u8],
    ) -> bool {
        hits.clear();
        let (Some(set), Some(cache)) = (&self.set, set_cache.as_mut()) else {
            return false;
        };
        patset.clear();
        set.which_overlapping_matches_with(cache, &Input::new(line), patset);
        for id in patset.iter() {
            let hit = self.hits[id.as_usize()];
            // Patterns of one rule are adjacent, so a repeat is the previous hit.
            if hits.last().map(|h| h.rule) != Some(hit.rule) {
                hits.push(hit);
            }
        }
        !hits.is_empty()
    }

    /// The named captures of `hit`'s pattern on `line`, lossily decoded.
    pub fn fields(
        &self,
        scratch: &mut CaptureScratch,
        hit: Hit,
        line: &[u8],
    ) -> Vec<(Arc<str>, String)> {
        let (Some(plan), Some(locs)) =
            (self.captures.get(hit.slot), scratch.locs.get_mut(hit.slot))
        else {
            return Vec::new();
        };
        if plan.regex.captures_read(locs, line).is_none() {
            return Vec::new();
        }
        plan.names
            .iter()
            .filter_map(|(group, name)| {
                let (s, e) = locs.get(*group)?;
                Some((
                    name.clone(),
                    String::from_utf8_lossy(&line[s..e]).into_owned(),
                ))
            })
            .collect()
    }
}

fn build(hirs: &[Hir], kind: MatchKind) -> Result<MetaRegex, String> {
    meta::Builder::new()
        .configure(
            MetaRegex::config()
                .match_kind(kind)
                .utf8_empty(false)
                .hybrid_cache_capacity(DFA_CACHE_BYTES),
        )
        .build_many_from_hir(hirs)
        .map_err(|e| format!("cannot compile the rule set: {e}"))
}

/// Rewrites a pattern so that no match can contain a line break when run
/// over a buffer of many lines: `\n` leaves every class (`\s`, `[^"]`), a
/// literal with a newline can never match, and `\A`/`\z` become line
/// anchors. Matching one line alone is unchanged, which is what makes the
/// buffer search a sound filter, and lets a match's end name its line.
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
        let f = m.fields(&mut s.captures, hits[0], line);
        assert_eq!(f.len(), 1);
        assert_eq!((&*f[0].0, f[0].1.as_str()), ("src_ip", "10.0.0.1"));
        let f = m.fields(&mut s.captures, hits[1], line);
        assert_eq!((&*f[0].0, f[0].1.as_str()), ("user", "bob"));
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
}
