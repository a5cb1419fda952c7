//! Rule files: load, validate, compile, match.
//!
//! [`load`] turns YAML into validated [`Rule`]s with positions for every
//! error; [`matcher`] compiles the patterns of one input type into a single
//! multi-pattern automaton; [`examples`] checks every rule's examples.
//!
//! A rule with `ioc` checks captured fields against feeds
//! ([`crate::feeds`]). [`RuleSet::bind_feeds`] resolves those checks
//! against the configured feeds and adds, for each (rule, feed) pair, a
//! rule of its own, `RULE@FEED`, with the feed's category and severity and
//! no patterns: the rule as written finds and captures the lines, a hit in
//! the feed becomes an event of `RULE@FEED`. Everything downstream (the
//! detector's merge classes, the store, metrics, the API) therefore sees an
//! ordinary rule with a fixed category, while one DNS rule serves a
//! phishing feed and a malware feed alike. A rule whose checks select no
//! feed is left out of the matcher entirely: without feeds it costs nothing.

pub mod examples;
pub mod load;
pub mod matcher;
pub mod spec;

/// The rule files compiled into the binary: `BUILTIN_RULES`, (file name,
/// text) pairs.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use std::sync::Arc;

use crate::category::{Category, Severity};
use crate::detect::Policy;
use crate::feeds::{FeedKind, FeedSet};
use crate::position::Position;
pub use load::{LoadErrors, RuleError, Warning};

pub use crate::input::types::INPUT_TYPES;

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    /// One line for tables and alerts; `description` says what it means
    /// and what to do.
    pub title: String,
    pub description: String,
    /// What its incidents count as in the national center's figures.
    pub category: Category,
    pub severity: Severity,
    /// The input types whose lines it reads.
    pub types: Vec<String>,
    pub patterns: Vec<Pattern>,
    /// Only lines received over the network from these senders; `None`:
    /// lines from anywhere.
    pub senders: Option<Vec<crate::network::Network>>,
    pub policy: Policy,
    /// MITRE ATT&CK technique ids (`T1110`, `T1110.001`).
    pub tags: Vec<String>,
    pub examples: Vec<Example>,
    /// Where the rule's id is written.
    pub pos: Position,
    /// The event happens only when this captured field names a script the
    /// integrity watcher flagged ([`crate::integrity::flagged`]): the
    /// patterns find candidate requests, the flags decide.
    pub flagged_script: Option<String>,
    /// Feed checks (`ioc:`); empty for a rule decided by its patterns alone.
    pub ioc: Vec<IocCheck>,
    /// The indicators its examples are checked against, by kind.
    pub example_indicators: Vec<(FeedKind, Vec<String>)>,
    /// Set on a rule made by [`RuleSet::bind_feeds`].
    pub via: Option<Via>,
    /// What kind of rule this is: an ordinary one, a group, or a member of
    /// a group (whose category, severity and policy are the group's).
    pub role: Role,
    /// The kind of evidence a member's lines are (see [`crate::detect::Policy::evidence`]).
    pub evidence: Option<String>,
    /// The rule or group whose open incident for the same key this rule's
    /// lines need: resolved to its index when the rules are loaded.
    pub follows: Option<usize>,
    /// Whether it came from the rule files built into canhgac.
    pub builtin: bool,
    /// For a request-rate rule (no patterns): how many access-log lines of
    /// one client within how long make an event (see [`crate::detect::Detector::count_request`]).
    pub rate: Option<Rate>,
}

/// `rate: { count, window }` of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: jiff::SignedDuration,
}

/// A rule's part in counting evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Matches lines and counts its own events.
    Rule,
    /// Matches no lines: its members' events count toward its threshold
    /// together, one counter per key, and its incidents are the group's.
    Group,
    /// Matches lines whose events count toward this group (its index).
    Member(usize),
}

impl Rule {
    /// Whether the matcher runs the rule's patterns: always, unless the
    /// rule checks feeds and none was bound to it.
    pub fn is_active(&self) -> bool {
        self.ioc.is_empty() || self.ioc.iter().any(|c| !c.bound.is_empty())
    }
}

/// One `ioc:` entry of a rule.
#[derive(Clone, Debug)]
pub struct IocCheck {
    /// The captured field looked up.
    pub field: String,
    pub kind: FeedKind,
    /// Feed names; empty selects every feed of `kind`.
    pub feeds: Vec<String>,
    pub pos: Position,
    /// Filled by [`RuleSet::bind_feeds`].
    pub bound: Vec<Binding>,
}

/// A feed an [`IocCheck`] looks in, and the rule its hits are events of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub feed: usize,
    pub rule: usize,
}

/// What a `RULE@FEED` rule stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via {
    pub parent: usize,
    pub feed: usize,
}

#[derive(Debug)]
pub struct Pattern {
    pub source: String,
    /// Used for captures once the shared automaton has said this pattern
    /// hit; compiled when first needed (see [`Pattern::regex`]).
    regex: std::sync::OnceLock<regex::bytes::Regex>,
    /// Its named groups: (group index, name).
    names: Vec<(usize, String)>,
    pub pos: Position,
}

impl Pattern {
    /// A pattern whose syntax is checked and names read now, and which is
    /// compiled at first use.
    pub fn parse(source: &str, pos: Position) -> Result<Pattern, String> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(source)
            .map_err(|e| format!("pattern does not compile: {e}"))?;
        Ok(Pattern {
            source: source.to_owned(),
            regex: std::sync::OnceLock::new(),
            names: hir_names(&hir),
            pos,
        })
    }

    /// A pattern compiled already.
    pub fn compiled(
        source: &str,
        regex: regex::bytes::Regex,
        pos: Position,
    ) -> Result<Pattern, String> {
        let names = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((i, n?.to_owned())))
            .collect();
        let lock = std::sync::OnceLock::new();
        let _ = lock.set(regex);
        Ok(Pattern {
            source: source.to_owned(),
            regex: lock,
            names,
            pos,
        })
    }

    /// The regex, compiled now if it was not yet. A pattern that does not
    /// compile (only a shipped one can get here, and the test suite
    /// compiles every one) matches nothing.
    pub fn regex(&self) -> &regex::bytes::Regex {
        self.regex
            .get_or_init(|| Self::compile_or_never(&self.source))
    }

    /// `source` compiled, or a regex that matches nothing if it does not
    /// compile (see [`Pattern::regex`]).
    pub(crate) fn compile_or_never(source: &str) -> regex::bytes::Regex {
        load::compile_pattern(source).unwrap_or_else(|_| never_matching())
    }

    /// Whether the pattern has a group named `name`.
    pub fn captures(&self, name: &str) -> bool {
        self.names.iter().any(|(_, n)| n == name)
    }

    /// Its named groups: (group index, name), in index order.
    pub fn groups(&self) -> &[(usize, String)] {
        &self.names
    }

    /// The pattern with named groups made non-capturing, so that many
    /// patterns can be joined into one alternation (as `rg -f` does) without
    /// clashing group names. Matching is unchanged.
    pub fn without_names(&self) -> String {
        use regex_syntax::ast::{self, Ast, GroupKind};
        let Ok(parsed) = ast::parse::Parser::new().parse(&self.source) else {
            return self.source.clone();
        };
        // (start of `(?P<name>`, start of the group's body), in source order.
        let mut heads = Vec::new();
        let mut stack = vec![&parsed];
        while let Some(node) = stack.pop() {
            match node {
                Ast::Group(g) => {
                    if let GroupKind::CaptureName { .. } = g.kind {
                        heads.push((g.span.start.offset, g.ast.span().start.offset));
                    }
                    stack.push(&g.ast);
                }
                Ast::Repetition(r) => stack.push(&r.ast),
                Ast::Alternation(a) => stack.extend(&a.asts),
                Ast::Concat(c) => stack.extend(&c.asts),
                _ => {}
            }
        }
        heads.sort_unstable();
        let mut out = String::with_capacity(self.source.len());
        let mut at = 0;
        for (group, body) in heads {
            out.push_str(&self.source[at..group]);
            out.push_str("(?:");
            at = body;
        }
        out.push_str(&self.source[at..]);
        out
    }
}

#[derive(Debug)]
pub struct Example {
    pub line: String,
    /// Fields the match must yield (for `match` examples that list them).
    pub fields: Option<BTreeMap<String, String>>,
    pub must_match: bool,
    pub pos: Position,
}

/// The named capture groups of `hir`: (group index, name), in index order.
fn hir_names(hir: &regex_syntax::hir::Hir) -> Vec<(usize, String)> {
    use regex_syntax::hir::HirKind;
    let mut names = Vec::new();
    let mut stack = vec![hir];
    while let Some(h) = stack.pop() {
        match h.kind() {
            HirKind::Capture(c) => {
                if let Some(n) = &c.name {
                    names.push((c.index as usize, n.to_string()));
                }
                stack.push(&c.sub);
            }
            HirKind::Repetition(r) => stack.push(&r.sub),
            HirKind::Concat(v) | HirKind::Alternation(v) => stack.extend(v),
            _ => {}
        }
    }
    names.sort_unstable();
    names
}

/// A regex that matches no line.
fn never_matching() -> regex::bytes::Regex {
    // `$` then a byte: nothing follows the end of a line. Compiling a
    // constant cannot fail; the fallback is the same regex again.
    regex::bytes::Regex::new(r"$.^").unwrap_or_else(|_| never_matching())
}

/// Every loaded rule, plus a digest that identifies the rule set in metrics and the API.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// The feeds bound by [`RuleSet::bind_feeds`] (none until then).
    pub feeds: Arc<FeedSet>,
    /// Doubts about rules that loaded all the same (see [`load::Warning`]).
    pub warnings: Vec<Warning>,
}

/// Where rules come from.
#[derive(Clone, Debug, Default)]
pub struct RuleSources {
    /// Include the rule files compiled into the binary.
    pub builtin: bool,
    /// Local files or directories of `*.yaml` rule files.
    pub paths: Vec<PathBuf>,
    /// Ids of rules (or groups, with their members) to leave out.
    pub disabled: Vec<String>,
}

impl RuleSet {
    /// The rules built into canhgac, for unit tests that read them.
    #[cfg(test)]
    pub(crate) fn shipped() -> RuleSet {
        RuleSet::load(&RuleSources {
            builtin: true,
            ..RuleSources::default()
        })
        .expect("shipped rules load")
    }

    pub fn load(sources: &RuleSources) -> Result<RuleSet, LoadErrors> {
        let mut loader = load::Loader::new();
        if sources.builtin {
            loader.add_builtin();
        }
        for path in &sources.paths {
            loader.add_path(path);
        }
        for note in loader.notes() {
            tracing::info!("{note}");
        }
        if !sources.disabled.is_empty() {
            let config = Position {
                file: "disable_rules".into(),
                line: 0,
                column: 0,
            };
            loader.disable(&sources.disabled, &config);
        }
        let (rules, warnings) = loader.finish_with_warnings()?;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(RuleSet {
            rules,
            feeds: Arc::default(),
            warnings,
        })
    }

    /// Resolves every rule's feed checks against `feeds` and adds the
    /// `RULE@FEED` rules (see the module docs). A check naming a feed that
    /// is not declared, or one of another kind, is an error at the check.
    pub fn bind_feeds(&mut self, feeds: Arc<FeedSet>) -> Result<(), LoadErrors> {
        let mut errors = Vec::new();
        let mut variants: Vec<Rule> = Vec::new();
        // Bound again (a config reload): the previous `RULE@FEED`s go.
        self.rules.retain(|r| r.via.is_none());
        let base = self.rules.len();
        for (parent, rule) in self.rules.iter_mut().enumerate() {
            for check in &mut rule.ioc {
                check.bound.clear();
                let mut selected = Vec::new();
                if check.feeds.is_empty() {
                    selected.extend(
                        feeds
                            .feeds()
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| f.decl().kind == check.kind)
                            .map(|(i, _)| i),
                    );
                }
                for name in &check.feeds {
                    let found = feeds.feeds().iter().position(|f| f.name() == name);
                    match found {
                        Some(i) if feeds.feeds()[i].decl().kind == check.kind => selected.push(i),
                        Some(i) => errors.push(RuleError {
                            pos: check.pos.clone(),
                            message: format!(
                                "rule `{}` checks field `{}` as {} against feed `{name}`, which holds {} indicators",
                                rule.id,
                                check.field,
                                check.kind,
                                feeds.feeds()[i].decl().kind
                            ),
                        }),
                        None => errors.push(RuleError {
                            pos: check.pos.clone(),
                            message: format!(
                                "rule `{}` names feed `{name}`, which is not declared (a [[feed]] in the config)",
                                rule.id
                            ),
                        }),
                    }
                }
                for feed in selected {
                    let existing = variants
                        .iter()
                        .position(|v| v.via == Some(Via { parent, feed }));
                    let idx = match existing {
                        Some(i) => base + i,
                        None => {
                            let decl = feeds.feeds()[feed].decl();
                            variants.push(Rule {
                                id: format!("{}@{}", rule.id, decl.name),
                                title: format!("{} (feed {})", rule.title, decl.name),
                                description: rule.description.clone(),
                                category: decl.category,
                                severity: decl.severity,
                                types: rule.types.clone(),
                                patterns: Vec::new(),
                                senders: rule.senders.clone(),
                                flagged_script: rule.flagged_script.clone(),
                                policy: rule.policy.clone(),
                                tags: rule.tags.clone(),
                                examples: Vec::new(),
                                pos: rule.pos.clone(),
                                ioc: Vec::new(),
                                example_indicators: Vec::new(),
                                via: Some(Via { parent, feed }),
                                role: Role::Rule,
                                evidence: None,
                                follows: rule.follows,
                                builtin: rule.builtin,
                                rate: None,
                            });
                            base + variants.len() - 1
                        }
                    };
                    if !check.bound.iter().any(|b| b.rule == idx) {
                        check.bound.push(Binding { feed, rule: idx });
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(crate::position::Problems(errors));
        }
        self.rules.extend(variants);
        self.feeds = feeds;
        Ok(())
    }

    /// SHA-256 over what decides matching (ids, types, patterns, policies),
    /// so that a change of rules shows up in build info, but a reworded
    /// description does not.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.rules {
            h.update(r.id.as_bytes());
            h.update([0]);
            h.update(
                format!("{}|{}|{:?}|{:?}", r.category, r.severity, r.types, r.policy).as_bytes(),
            );
            if let Some(f) = &r.flagged_script {
                h.update(format!("|flagged_script={f}").as_bytes());
            }
            for c in &r.ioc {
                h.update(format!("|{}:{}:{:?}:{:?}", c.field, c.kind, c.feeds, c.bound).as_bytes());
            }
            for p in &r.patterns {
                h.update([0]);
                h.update(p.source.as_bytes());
            }
            // Only when set, so the digests of rule sets without them stay.
            if r.role != Role::Rule || r.evidence.is_some() || r.follows.is_some() {
                h.update(format!("|{:?}|{:?}|{:?}", r.role, r.evidence, r.follows).as_bytes());
            }
            if let Some(rate) = &r.rate {
                h.update(format!("|rate {rate:?}").as_bytes());
            }
            // Only when set, so the digests of rule sets without it stay.
            if let Some(senders) = &r.senders {
                h.update([1]);
                for s in senders {
                    h.update(s.to_string().as_bytes());
                    h.update([0]);
                }
            }
            h.update([0xff]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn rule(&self, idx: usize) -> &Rule {
        &self.rules[idx]
    }

    pub fn by_id(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// The request-rate rules that read `input_type`: (index, rate).
    pub fn rates_for(&self, input_type: &str) -> Vec<(usize, Rate)> {
        self.for_type(input_type)
            .filter_map(|i| self.rules[i].rate.map(|r| (i, r)))
            .collect()
    }

    /// Indexes of the active rules (see [`Rule::is_active`]) that read
    /// `input_type`, in load order.
    pub fn for_type<'a>(&'a self, input_type: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.for_type_all(input_type)
            .filter(|&i| self.rules[i].is_active())
    }

    /// Every rule that reads `input_type`, active or not (for examples).
    pub fn for_type_all<'a>(&'a self, input_type: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.types.iter().any(|t| t == input_type))
            .map(|(i, _)| i)
    }

    /// The detector's policy of each rule, in rule order. Rules of one
    /// category form one merge class: one attacker seen by several
    /// brute-force rules is one brute-force incident. A group member's
    /// events go to its group, each evidence kind numbered in order of
    /// first use.
    pub fn policies(&self) -> Vec<Policy> {
        let mut kinds: Vec<&str> = Vec::new();
        self.rules
            .iter()
            .map(|r| {
                let evidence = r.evidence.as_deref().map(|kind| {
                    let at = kinds.iter().position(|k| *k == kind).unwrap_or_else(|| {
                        kinds.push(kind);
                        kinds.len() - 1
                    });
                    u8::try_from(at).unwrap_or(u8::MAX)
                });
                Policy {
                    merge: Category::ALL
                        .iter()
                        .position(|c| *c == r.category)
                        .map(|i| i as u32),
                    counts_toward: match r.role {
                        Role::Member(group) => Some(group),
                        Role::Rule | Role::Group => None,
                    },
                    evidence,
                    rank: crate::category::Severity::ALL
                        .iter()
                        .position(|s| *s == r.severity)
                        .map_or(0, |i| u8::try_from(i).unwrap_or(u8::MAX)),
                    ..r.policy.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::{FeedDecl, FeedSource};

    fn feed(name: &str, kind: FeedKind, category: Category) -> FeedDecl {
        FeedDecl {
            name: name.into(),
            kind,
            category,
            severity: Severity::High,
            source: FeedSource::Memory,
        }
    }

    const IOC_RULE: &str = r#"rules:
  - id: q
    title: t
    description: d
    category: malware
    severity: low
    types: [syslog]
    patterns: ['query (?P<name>\S+) from (?P<src_ip>\S+)']
    ioc:
      - { field: name, kind: domain }
      - { field: name, kind: domain, feeds: [FEEDS] }
"#;

    fn ioc_rules(feeds: &str) -> RuleSet {
        let mut l = load::Loader::new();
        l.add_source("t.yaml", &IOC_RULE.replace("FEEDS", feeds));
        RuleSet {
            rules: l.finish().expect("valid"),
            feeds: Arc::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn feeds_bind_as_rules_of_their_own() {
        let mut rs = ioc_rules("phish");
        assert!(!rs.rules[0].is_active(), "no feed bound yet");
        let feeds = Arc::new(FeedSet::new(
            vec![
                feed("phish", FeedKind::Domain, Category::Phishing),
                feed("bad-ips", FeedKind::Ip, Category::Recon),
                feed("c2", FeedKind::Domain, Category::Malware),
            ],
            None,
        ));
        rs.bind_feeds(Arc::clone(&feeds)).expect("binds");
        let ids: Vec<&str> = rs.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["q", "q@phish", "q@c2"]);
        assert!(rs.rules[0].is_active());
        assert_eq!(
            (rs.rules[1].category, rs.rules[1].severity),
            (Category::Phishing, Severity::High)
        );
        assert_eq!(rs.rules[2].category, Category::Malware);
        assert!(rs.rules[1].patterns.is_empty());
        // Both checks find `phish`: one rule for the pair, bound twice.
        assert_eq!(rs.rules[0].ioc[1].bound, vec![Binding { feed: 0, rule: 1 }]);
        let policies = rs.policies();
        assert_ne!(
            policies[1].merge, policies[2].merge,
            "merge classes follow the feed's category"
        );
        // Binding again (a reload) replaces the rules made before.
        rs.bind_feeds(feeds).expect("binds again");
        assert_eq!(rs.rules.len(), 3);

        // Rules naming `named` among their feeds, bound to `declared` alone.
        let refusal = |named: &str, declared: FeedDecl| {
            ioc_rules(named)
                .bind_feeds(Arc::new(FeedSet::new(vec![declared], None)))
                .expect_err("refused")
                .to_string()
        };
        let e = refusal("fish", feed("phish", FeedKind::Domain, Category::Phishing));
        assert!(
            e.starts_with("t.yaml:11:9: rule `q` names feed `fish`, which is not declared"),
            "{e}"
        );
        let e = refusal("bad-ips", feed("bad-ips", FeedKind::Ip, Category::Recon));
        assert!(
            e.contains("against feed `bad-ips`, which holds ip indicators"),
            "{e}"
        );
    }

    #[test]
    fn names_are_dropped_and_nothing_else() {
        let source = r"a(?P<user>\S+) (?<ip>[(?P<x>]+)|(b(?P<n>(?P<m>c)))\(?P<lit>";
        let pos = Position {
            file: "t".into(),
            line: 1,
            column: 1,
        };
        let p = Pattern::parse(source, pos).expect("valid");
        let compiled = regex::bytes::Regex::new(source).expect("compiles");
        let expected: Vec<(usize, String)> = compiled
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((i, n?.to_owned())))
            .collect();
        assert_eq!(
            p.groups(),
            expected,
            "read from the syntax, with their indices"
        );
        let out = p.without_names();
        assert_eq!(out, r"a(?:\S+) (?:[(?P<x>]+)|(b(?:(?:c)))\(?P<lit>");
        let plain = regex::bytes::Regex::new(&out).expect("still valid");
        for hay in [&b"abob 1.2"[..], b"bc", b"(?P<lit>", b"zzz"] {
            assert_eq!(plain.is_match(hay), p.regex().is_match(hay));
        }
    }
}
