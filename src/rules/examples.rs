//! `canhgac rules test`: every example runs through the same compiled
//! matcher as real logs (after the same reshaping of variants, see
//! [`crate::input::shape`]), so an example that passes proves the shipped
//! automaton, not just the rule's own regex.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use std::sync::Arc;

use super::matcher::Matcher;
use super::{Position, Rule, RuleSet};
use crate::event::Fields;
use crate::feeds::{FeedKind, IndicatorSet};
use crate::input::shape::Shaper;

/// The feed name examples of rules with `ioc` are checked against.
pub const EXAMPLE_FEED: &str = "example";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub pos: Position,
    pub rule: String,
    pub message: String,
}

impl fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: rule `{}`: {}", self.pos, self.rule, self.message)
    }
}

#[derive(Debug, Default)]
pub struct ExampleReport {
    pub checked: usize,
    /// Examples with at least one failure (one example may fail in several input types).
    pub failed: usize,
    pub failures: Vec<ExampleFailure>,
}

/// The rule's example indicators, by kind.
fn example_sets(rule: &Rule) -> Vec<(FeedKind, IndicatorSet)> {
    rule.example_indicators
        .iter()
        .map(|(kind, entries)| {
            let mut set = IndicatorSet::new(*kind);
            for e in entries {
                // Validated when the rule was loaded.
                let _ = set.insert(e);
            }
            set.finish();
            (*kind, set)
        })
        .collect()
}

/// For a rule with feed checks: whether the captured `fields` hit the
/// example indicators, adding `feed` and `indicator` to them as the
/// analyzer does. Rules without checks always hit.
fn feed_hit(rule: &Rule, sets: &[(FeedKind, IndicatorSet)], fields: &mut Fields) -> bool {
    if rule.ioc.is_empty() {
        return true;
    }
    for check in &rule.ioc {
        let Some(value) = fields.get(&check.field) else {
            continue;
        };
        let found = sets
            .iter()
            .filter(|(k, _)| *k == check.kind)
            .find_map(|(_, s)| s.lookup(value));
        if let Some(indicator) = found {
            let [feed, ind] = crate::event::IOC_FIELDS.map(Arc::<str>::from);
            fields.push(&feed, EXAMPLE_FEED.as_bytes());
            fields.push(&ind, indicator.as_bytes());
            return true;
        }
    }
    false
}

/// Runs each rule's examples through the matcher of every input type the
/// rule reads; the examples of a rule with feed checks against its
/// `examples.indicators`.
pub fn check(rules: &RuleSet) -> Result<ExampleReport, String> {
    let mut matchers: HashMap<&str, Matcher> = HashMap::new();
    for rule in &rules.rules {
        for t in &rule.types {
            if !matchers.contains_key(t.as_str()) {
                matchers.insert(t, Matcher::with_inactive(rules, t)?);
            }
        }
    }
    let mut report = ExampleReport::default();
    for (idx, rule) in rules.rules.iter().enumerate() {
        let sets = example_sets(rule);
        for ex in &rule.examples {
            report.checked += 1;
            let failures_before = report.failures.len();
            for t in &rule.types {
                let m = &matchers[t.as_str()];
                let mut scratch = m.scratch();
                // As the analyzer hands it over: a virtual host or a syslog
                // header before an access line, RFC 5424, made canonical.
                let mut shaper = Shaper::new(t);
                let shaped = shaper.reshape(ex.line.as_bytes(), 0).lines.to_vec();
                let line = shaped.as_slice();
                let hit = m
                    .match_line(&mut scratch, line)
                    .iter()
                    .copied()
                    .find(|h| h.rule == idx);
                let mut fields = Fields::default();
                let hit = hit.filter(|&h| {
                    m.fields(&mut scratch.captures, h, line, &mut fields);
                    feed_hit(rule, &sets, &mut fields)
                });
                let fail = |message: String| ExampleFailure {
                    pos: ex.pos.clone(),
                    rule: rule.id.clone(),
                    message,
                };
                match (ex.must_match, hit) {
                    (true, None) => report.failures.push(fail(format!(
                        "example does not match (input type {t}): {}",
                        ex.line
                    ))),
                    (false, Some(_)) => report.failures.push(fail(format!(
                        "no_match example matches (input type {t}): {}",
                        ex.line
                    ))),
                    (true, Some(_)) => {
                        let Some(want) = &ex.fields else { continue };
                        let got: BTreeMap<&str, &str> = fields.iter().collect();
                        for (name, value) in want {
                            match got.get(name.as_str()) {
                                Some(&v) if v == value => {}
                                Some(v) => report.failures.push(fail(format!(
                                    "field `{name}` is `{v}`, expected `{value}`"
                                ))),
                                None => report.failures.push(fail(format!(
                                    "field `{name}` not captured, expected `{value}`"
                                ))),
                            }
                        }
                    }
                    (false, None) => {}
                }
            }
            if report.failures.len() > failures_before {
                report.failed += 1;
            }
        }
    }
    Ok(report)
}
