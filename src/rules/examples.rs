//! `canhgac rules test`: every example runs through the same compiled
//! matcher as real logs, so an example that passes proves the shipped
//! automaton, not just the rule's own regex.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::matcher::Matcher;
use super::{Position, RuleSet};
use crate::event::Fields;

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

/// Runs each rule's examples through the matcher of every input type the rule reads.
pub fn check(rules: &RuleSet) -> Result<ExampleReport, String> {
    let mut matchers: HashMap<&str, Matcher> = HashMap::new();
    for rule in &rules.rules {
        for t in &rule.types {
            if !matchers.contains_key(t.as_str()) {
                matchers.insert(t, Matcher::new(rules, t)?);
            }
        }
    }
    let mut report = ExampleReport::default();
    for (idx, rule) in rules.rules.iter().enumerate() {
        for ex in &rule.examples {
            report.checked += 1;
            let failures_before = report.failures.len();
            for t in &rule.types {
                let m = &matchers[t.as_str()];
                let mut scratch = m.scratch();
                let line = ex.line.as_bytes();
                let hit = m
                    .match_line(&mut scratch, line)
                    .iter()
                    .copied()
                    .find(|h| h.rule == idx);
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
                    (true, Some(hit)) => {
                        let Some(want) = &ex.fields else { continue };
                        let mut fields = Fields::default();
                        m.fields(&mut scratch.captures, hit, line, &mut fields);
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
