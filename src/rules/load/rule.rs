//! One rule or group checked on its own, from its YAML spec to a [`Rule`]:
//! every mistake reported at its place, and nothing returned if there was
//! one.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde_saphyr::Spanned;

use super::{valid_id, Loader};
use crate::category::{Category, Severity};
use crate::detect::{Policy, Threshold};
use crate::event::{IOC_FIELDS, SENDER_FIELD};
use crate::feeds::{FeedKind, IndicatorSet};
use crate::position::Position;
use crate::rules::spec::{GroupSpec, RuleSpec};
use crate::rules::{Example, IocCheck, Pattern, Role, Rule, INPUT_TYPES};

/// Compiled size cap per pattern: a rule that needs more is almost certainly
/// a mistake (or a hostile rule file), and it would slow every line.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A rule with its identity and nothing it reads, matches or checks yet:
/// what [`Loader::validate_group`] and [`Loader::validate`] fill in from the
/// spec. Links (`via`, `follows`) and `builtin` are set later by the loader.
fn bare(
    id: String,
    title: String,
    description: String,
    (category, severity): (Category, Severity),
    pos: Position,
) -> Rule {
    Rule {
        id,
        title,
        description,
        category,
        severity,
        types: Vec::new(),
        patterns: Vec::new(),
        senders: None,
        policy: own_policy(None, SignedDuration::ZERO),
        tags: Vec::new(),
        examples: Vec::new(),
        pos,
        flagged_script: None,
        ioc: Vec::new(),
        example_indicators: Vec::new(),
        via: None,
        role: Role::Rule,
        evidence: None,
        follows: None,
        builtin: false,
        rate: None,
    }
}

impl Loader {
    /// A group from its spec; `None` if it has a mistake (reported).
    pub(super) fn validate_group(&mut self, file: &str, spec: GroupSpec) -> Option<Rule> {
        let before = self.errors.len();
        let id = spec.id.value.clone();
        let pos = Position::at(file, spec.id.referenced);
        self.claim_id(file, &id, spec.id.referenced);
        let threshold = spec
            .threshold
            .as_ref()
            .and_then(|t| self.threshold(file, t, &id, &|_| true));
        let cooldown = self.cooldown(file, spec.cooldown.as_ref());
        let tags = self.tags(file, &spec.tags);
        if self.errors.len() > before {
            return None;
        }
        Some(Rule {
            policy: own_policy(threshold, cooldown),
            tags,
            role: Role::Group,
            ..bare(
                id,
                spec.title,
                spec.description,
                (spec.category, spec.severity),
                pos,
            )
        })
    }

    /// A rule from its spec; `None` if it has a mistake (reported). Its
    /// `group:` and `follows:` are noted for [`Loader::resolve`].
    pub(super) fn validate(&mut self, file: &str, spec: RuleSpec) -> Option<Rule> {
        let before = self.errors.len();
        let id = spec.id.value.clone();
        let pos = Position::at(file, spec.id.referenced);

        self.claim_id(file, &id, spec.id.referenced);
        let (category, severity) = self.rule_class(file, &spec, &id);
        if let Some(group) = &spec.group {
            self.groups.push((
                id.clone(),
                group.value.clone(),
                Position::at(file, group.referenced),
            ));
        }
        if let Some(target) = &spec.follows {
            self.follows.push((
                id.clone(),
                target.value.clone(),
                Position::at(file, target.referenced),
            ));
        }
        let evidence = spec.evidence.as_ref().map(|e| {
            if spec.group.is_none() {
                self.error(
                    file,
                    e.referenced,
                    format!("rule `{id}` has `evidence` but no `group`: evidence kinds tell a group's lines apart"),
                );
            } else if !valid_id(&e.value) {
                self.error(file, e.referenced, format!("bad evidence kind `{}`: use lowercase letters, digits and `-`", e.value));
            }
            e.value.clone()
        });

        if spec.types.value.is_empty() {
            self.error(
                file,
                spec.types.referenced,
                format!("rule `{id}` has no input types"),
            );
        }
        let types = self.valid_values(
            file,
            &spec.types.value,
            |t| INPUT_TYPES.contains(&t),
            |t| {
                format!(
                    "unknown input type `{t}`; expected one of {}",
                    INPUT_TYPES.join(", ")
                )
            },
        );

        let rate = spec
            .rate
            .as_ref()
            .and_then(|r| self.rate(file, r, &spec, &id));
        let mut patterns = Vec::new();
        if spec.patterns.value.is_empty() && spec.rate.is_none() {
            self.error(
                file,
                spec.id.referenced,
                format!("rule `{id}` has no patterns"),
            );
        }
        for p in &spec.patterns.value {
            // The shipped rules are compiled by the test suite; compiling
            // every one of them at each start (all input types, Unicode)
            // would cost more than the scan of a small file. Their syntax
            // and names are still read here; local rules compile at once,
            // so a mistake is reported with its place.
            let pattern = if file.starts_with("<builtin>/") {
                Pattern::parse(&p.value, Position::at(file, p.referenced))
            } else {
                compile_pattern(&p.value)
                    .and_then(refuse_empty_match)
                    .and_then(|regex| {
                        Pattern::compiled(&p.value, regex, Position::at(file, p.referenced))
                    })
            };
            match pattern {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => self.error(file, p.referenced, message),
            }
        }

        let senders = spec.senders.as_ref().map(|list| {
            if list.value.is_empty() {
                self.error(
                    file,
                    list.referenced,
                    format!(
                        "rule `{id}`: `senders` is empty; leave it out to read lines from anywhere"
                    ),
                );
            }
            let mut nets = Vec::new();
            for s in &list.value {
                match s.value.parse::<crate::network::Network>() {
                    Ok(n) => nets.push(n),
                    Err(message) => {
                        self.error(file, s.referenced, format!("bad sender: {message}"))
                    }
                }
            }
            nets
        });

        // Fields that feed checks add to every event of the rule.
        let ioc_field = |name: &str| !spec.ioc.is_empty() && IOC_FIELDS.contains(&name);
        let captured_by_all = |name: &str| {
            // `sender` is added to every line received over the network.
            name == SENDER_FIELD
                || ioc_field(name)
                || (!patterns.is_empty() && patterns.iter().all(|p: &Pattern| p.captures(name)))
        };

        let mut ioc = Vec::new();
        for check in &spec.ioc {
            let c = &check.value;
            let kind = match c.kind.value.parse::<FeedKind>() {
                Ok(k) => Some(k),
                Err(e) => {
                    self.error(file, c.kind.referenced, e);
                    None
                }
            };
            if patterns.len() == spec.patterns.value.len()
                && !patterns.iter().all(|p| p.captures(&c.field.value))
            {
                self.error(
                    file,
                    c.field.referenced,
                    format!(
                        "ioc field `{}` is not captured by every pattern of rule `{id}`",
                        c.field.value
                    ),
                );
            }
            for name in &c.feeds {
                if !valid_id(&name.value) || name.value.contains('.') {
                    self.error(
                        file,
                        name.referenced,
                        format!(
                            "bad feed name `{}`: feed names use lowercase letters, digits and `-`",
                            name.value
                        ),
                    );
                }
            }
            if let Some(kind) = kind {
                ioc.push(IocCheck {
                    field: c.field.value.clone(),
                    kind,
                    feeds: c.feeds.iter().map(|f| f.value.clone()).collect(),
                    pos: Position::at(file, check.referenced),
                    bound: Vec::new(),
                });
            }
        }
        let mut example_indicators = Vec::new();
        for (kind_name, entries) in &spec.examples.indicators {
            let at = entries.first().map_or(spec.id.referenced, |e| e.referenced);
            let kind = match kind_name.parse::<FeedKind>() {
                Ok(k) => k,
                Err(e) => {
                    self.error(file, at, format!("examples.indicators: {e}"));
                    continue;
                }
            };
            let mut set = IndicatorSet::new(kind);
            for e in entries {
                if let Err(message) = set.insert(&e.value) {
                    self.error(file, e.referenced, message);
                }
            }
            example_indicators.push((kind, entries.iter().map(|e| e.value.clone()).collect()));
        }
        if spec.ioc.is_empty() && !spec.examples.indicators.is_empty() {
            self.error(
                file,
                spec.id.referenced,
                format!("rule `{id}` has examples.indicators but no ioc checks"),
            );
        }

        let captured: &dyn Fn(&str) -> bool =
            &|name: &str| patterns.len() != spec.patterns.value.len() || captured_by_all(name);
        let threshold = spec
            .threshold
            .as_ref()
            .and_then(|t| self.threshold(file, t, &id, captured));
        let flagged_script = spec.flagged_script.as_ref().map(|f| {
            if patterns.len() == spec.patterns.value.len() && !captured_by_all(&f.value) {
                self.error(
                    file,
                    f.referenced,
                    format!(
                        "`flagged_script: {}` names a field that not every pattern of rule `{id}` captures",
                        f.value
                    ),
                );
            }
            f.value.clone()
        });

        let cooldown = self.cooldown(file, spec.cooldown.as_ref());
        let tags = self.tags(file, &spec.tags);

        let mut examples = Vec::new();
        for ex in &spec.examples.matching {
            for name in ex.value.fields.keys() {
                if patterns.len() == spec.patterns.value.len()
                    && !ioc_field(name)
                    && !patterns.iter().any(|p| p.captures(name))
                {
                    self.error(
                        file,
                        ex.referenced,
                        format!("example asserts field `{name}`, which no pattern of rule `{id}` captures"),
                    );
                }
            }
            examples.push(Example {
                line: ex.value.line.clone(),
                fields: Some(ex.value.fields.clone()).filter(|f: &BTreeMap<_, _>| !f.is_empty()),
                must_match: true,
                pos: Position::at(file, ex.referenced),
            });
        }
        for ex in &spec.examples.no_match {
            examples.push(Example {
                line: ex.value.clone(),
                fields: None,
                must_match: false,
                pos: Position::at(file, ex.referenced),
            });
        }

        if self.errors.len() > before {
            return None;
        }
        Some(Rule {
            types,
            patterns,
            senders,
            policy: own_policy(threshold, cooldown),
            tags,
            examples,
            flagged_script,
            ioc,
            example_indicators,
            evidence,
            rate,
            ..bare(id, spec.title, spec.description, (category, severity), pos)
        })
    }

    /// A rule's category and severity: its own, or (for now a placeholder
    /// that [`Loader::resolve`] replaces) its group's, which a member may
    /// not restate.
    fn rule_class(&mut self, file: &str, spec: &RuleSpec, id: &str) -> (Category, Severity) {
        if spec.group.is_some() {
            let own = [
                spec.category.as_ref().map(|c| ("category", c.referenced)),
                spec.severity.as_ref().map(|s| ("severity", s.referenced)),
                spec.cooldown.as_ref().map(|c| ("cooldown", c.referenced)),
                spec.threshold
                    .as_ref()
                    .map(|t| ("threshold", t.count.referenced)),
            ];
            for (what, at) in own.into_iter().flatten() {
                self.error(
                    file,
                    at,
                    format!("rule `{id}` counts toward a group: its {what} is the group's"),
                );
            }
            return (Category::ALL[0], Severity::Info);
        }
        let mut missing = |what: &str| {
            self.error(
                file,
                spec.id.referenced,
                format!("rule `{id}` has no {what} (only members of a group take the group's)"),
            )
        };
        let category = spec.category.as_ref().map(|c| c.value);
        let severity = spec.severity.as_ref().map(|s| s.value);
        if category.is_none() {
            missing("category");
        }
        if severity.is_none() {
            missing("severity");
        }
        (
            category.unwrap_or(Category::ALL[0]),
            severity.unwrap_or(Severity::Info),
        )
    }

    fn tags(&mut self, file: &str, spec: &[Spanned<String>]) -> Vec<String> {
        self.valid_values(file, spec, valid_attack_id, |tag| {
            format!("bad ATT&CK tag `{tag}`: expected a technique id such as T1110 or T1110.001")
        })
    }

    /// The values that are `valid`; each other one is a mistake, reported
    /// at its place with `mistake(value)`.
    fn valid_values(
        &mut self,
        file: &str,
        values: &[Spanned<String>],
        valid: impl Fn(&str) -> bool,
        mistake: impl Fn(&str) -> String,
    ) -> Vec<String> {
        let mut kept = Vec::new();
        for v in values {
            if valid(&v.value) {
                kept.push(v.value.clone());
            } else {
                self.error(file, v.referenced, mistake(&v.value));
            }
        }
        kept
    }
}

/// The policy a rule or group states itself: its threshold and cooldown.
/// The merge class, the group counted toward and the evidence kind are set
/// for the whole rule set by `RuleSet::policies`.
fn own_policy(threshold: Option<Threshold>, cooldown: SignedDuration) -> Policy {
    Policy {
        threshold,
        cooldown,
        merge: None,
        counts_toward: None,
        evidence: None,
        rank: 0,
    }
}

pub(in crate::rules) fn compile_pattern(source: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(source)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "pattern is too large once compiled (limit {limit} bytes): simplify it or split it into several rules"
            ),
            other => format!("pattern does not compile: {other}"),
        })
}

/// A pattern that matches the empty line matches every line: a rule that
/// raises an incident on whatever is logged (`.*`, `(a|)`, `x?`) is a
/// mistake, said where it was written.
pub(in crate::rules) fn refuse_empty_match(
    regex: regex::bytes::Regex,
) -> Result<regex::bytes::Regex, String> {
    if regex.is_match(b"") {
        return Err(
            "pattern matches the empty line, so it matches every line: make it require what the line must contain"
                .to_owned(),
        );
    }
    Ok(regex)
}

fn valid_attack_id(tag: &str) -> bool {
    let b = tag.as_bytes();
    let technique =
        |s: &[u8]| s.len() == 5 && s[0] == b'T' && s[1..].iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => technique(b),
        9 => technique(&b[..5]) && b[5] == b'.' && b[6..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}
