//! Rule files: load, validate, compile, match.
//!
//! [`load`] turns YAML into validated [`Rule`]s with positions for every
//! error; [`matcher`] compiles the patterns of one input type into a single
//! multi-pattern automaton; [`examples`] checks every rule's examples.

pub mod examples;
pub mod load;
pub mod matcher;
pub mod senders;
pub mod spec;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::category::{Category, Severity};
use crate::detect::Policy;
pub use load::{LoadErrors, Position, RuleError};

/// The input types a rule may name. Each is a line format that
/// [`crate::input::sniff`] can recognise and [`crate::timestamp`] can date.
/// `nginx` and `apache` access logs share the combined log format; rules
/// for access logs name both.
pub const INPUT_TYPES: &[&str] = &[
    "syslog",
    "nginx",
    "apache",
    "nginx-error",
    "apache-error",
    "clamav",
];

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub category: Category,
    pub severity: Severity,
    pub types: Vec<String>,
    pub patterns: Vec<Pattern>,
    /// Only lines received over the network from these senders; `None`:
    /// lines from anywhere.
    pub senders: Option<Vec<senders::Network>>,
    pub policy: Policy,
    pub tags: Vec<String>,
    pub examples: Vec<Example>,
    /// Where the rule's id is written.
    pub pos: Position,
}

#[derive(Debug)]
pub struct Pattern {
    pub source: String,
    /// Used for captures once the shared automaton has said this pattern hit.
    pub regex: regex::bytes::Regex,
    pub pos: Position,
}

impl Pattern {
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

/// Every loaded rule, plus a digest that identifies the rule set in metrics and the API.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// Where rules come from.
#[derive(Clone, Debug, Default)]
pub struct RuleSources {
    /// Include the rule files compiled into the binary.
    pub builtin: bool,
    /// Local files or directories of `*.yaml` rule files.
    pub paths: Vec<PathBuf>,
}

impl RuleSet {
    pub fn load(sources: &RuleSources) -> Result<RuleSet, LoadErrors> {
        let mut loader = load::Loader::new();
        if sources.builtin {
            loader.add_builtin();
        }
        for path in &sources.paths {
            loader.add_path(path);
        }
        Ok(RuleSet {
            rules: loader.finish()?,
        })
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
            for p in &r.patterns {
                h.update([0]);
                h.update(p.source.as_bytes());
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

    /// Rule indexes that read `input_type`, in load order.
    pub fn for_type<'a>(&'a self, input_type: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.types.iter().any(|t| t == input_type))
            .map(|(i, _)| i)
    }

    /// The detector's policy of each rule, in rule order. Rules of one
    /// category form one merge class: one attacker seen by several
    /// brute-force rules is one brute-force incident.
    pub fn policies(&self) -> Vec<Policy> {
        self.rules
            .iter()
            .map(|r| Policy {
                merge: Category::ALL
                    .iter()
                    .position(|c| *c == r.category)
                    .map(|i| i as u32),
                ..r.policy.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dropped_and_nothing_else() {
        let source = r"a(?P<user>\S+) (?<ip>[(?P<x>]+)|(b(?P<n>(?P<m>c)))\(?P<lit>";
        let p = Pattern {
            source: source.into(),
            regex: regex::bytes::Regex::new(source).expect("valid"),
            pos: Position {
                file: "t".into(),
                line: 1,
                column: 1,
            },
        };
        let out = p.without_names();
        assert_eq!(out, r"a(?:\S+) (?:[(?P<x>]+)|(b(?:(?:c)))\(?P<lit>");
        let plain = regex::bytes::Regex::new(&out).expect("still valid");
        for hay in [&b"abob 1.2"[..], b"bc", b"(?P<lit>", b"zzz"] {
            assert_eq!(plain.is_match(hay), p.regex.is_match(hay));
        }
    }
}
