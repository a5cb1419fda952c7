//! Turns rule files into validated [`Rule`]s, collecting every error with
//! its file, line and column rather than stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde_saphyr::{Location, Spanned};

use super::spec::{GroupSpec, RuleFile, RuleSpec, ThresholdSpec};
use super::{Example, IocCheck, Pattern, Role, Rule, INPUT_TYPES};
use crate::category::{Category, Severity};
use crate::detect::{Policy, Threshold};
use crate::event::{DEFAULT_KEY_FIELD, HOST_KEY_FIELD, IOC_FIELDS, SENDER_FIELD};
use crate::feeds::{FeedKind, IndicatorSet};
use crate::position::Position;

/// Compiled size cap per pattern: a rule that needs more is almost certainly
/// a mistake (or a hostile rule file), and it would slow every line.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Rule files are small; anything bigger is not a rule file.
const MAX_RULE_FILE_BYTES: u64 = 8 << 20;
const DEFAULT_COOLDOWN: SignedDuration = SignedDuration::from_secs(600);

/// One problem in a rule file, printed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub pos: Position,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Every error found while loading, in file order.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<RuleError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// Something worth telling that does not stop the load (a local rule that
/// replaces a shipped one, a rule without a key): said as an error is.
pub type Warning = RuleError;

/// Accumulates rules from several sources and checks ids across all of them.
/// A local rule (or group) with the id of a shipped one replaces it, so a
/// sysadmin can copy a shipped file into the rules directory and edit it.
#[derive(Default)]
pub struct Loader {
    rules: Vec<Rule>,
    errors: Vec<RuleError>,
    notes: Vec<Warning>,
    warnings: Vec<Warning>,
    ids: HashMap<String, Position>,
    /// Ids named by `group:` and `follows:`, resolved once every file is in:
    /// (rule id, what it names, where).
    groups: Vec<(String, String, Position)>,
    follows: Vec<(String, String, Position)>,
}

impl Loader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The rule files compiled into the binary, shown as `<builtin>/NAME`.
    pub fn add_builtin(&mut self) {
        for (name, text) in super::builtin::BUILTIN_RULES {
            self.add_source(&format!("<builtin>/{name}"), text);
        }
    }

    /// Every `*.yaml` / `*.yml` file directly in `dir`, in name order, or a single file.
    pub fn add_path(&mut self, path: &Path) {
        let files = match rule_files(path) {
            Ok(files) => files,
            Err(message) => {
                self.errors.push(RuleError {
                    pos: Position {
                        file: path.display().to_string(),
                        line: 0,
                        column: 0,
                    },
                    message,
                });
                return;
            }
        };
        for file in files {
            let name = file.display().to_string();
            match read_rule_file(&file) {
                Ok(text) => self.add_source(&name, &text),
                Err(message) => self.errors.push(RuleError {
                    pos: Position {
                        file: name,
                        line: 0,
                        column: 0,
                    },
                    message,
                }),
            }
        }
    }

    pub fn add_source(&mut self, file: &str, text: &str) {
        let builtin = file.starts_with("<builtin>/");
        let parsed: RuleFile = match serde_saphyr::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let loc = e.location().unwrap_or(Location::UNKNOWN);
                let message = e.without_snippet().to_string();
                // The crate appends the position to its message; ours leads with it instead.
                let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
                let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
                self.errors.push(RuleError {
                    pos: Position::at(file, loc),
                    message,
                });
                return;
            }
        };
        for spec in parsed.groups {
            if let Some(mut group) = self.validate_group(file, spec) {
                group.builtin = builtin;
                self.rules.push(group);
            }
        }
        for spec in parsed.rules {
            if let Some(mut rule) = self.validate(file, spec) {
                rule.builtin = builtin;
                self.rules.push(rule);
            }
        }
    }

    /// What replaced what, for the log.
    pub fn notes(&self) -> &[Warning] {
        &self.notes
    }

    /// [`Loader::finish`], with the doubts about rules that still load (a
    /// rule without a key).
    pub fn finish_with_warnings(mut self) -> Result<(Vec<Rule>, Vec<Warning>), LoadErrors> {
        self.resolve();
        if self.errors.is_empty() {
            Ok((self.rules, self.warnings))
        } else {
            Err(LoadErrors(self.errors))
        }
    }

    /// The rules, less those in `disabled`; groups and `follows` resolved.
    pub fn finish(self) -> Result<Vec<Rule>, LoadErrors> {
        self.finish_with_warnings().map(|(rules, _)| rules)
    }

    /// Takes out the rules with these ids (the config's `disable_rules`);
    /// an id that names no rule is an error at `pos`. A disabled group
    /// disables its members and the rules that follow it.
    pub fn disable(&mut self, ids: &[String], pos: &Position) {
        for id in ids {
            if !self.rules.iter().any(|r| &r.id == id) {
                self.errors.push(RuleError {
                    pos: pos.clone(),
                    message: format!("disable_rules names `{id}`, which is no loaded rule"),
                });
            }
        }
        let off = |id: &str| ids.iter().any(|d| d == id);
        // Members count toward a disabled group, followers wait for its
        // incidents: neither means anything without it.
        let groups_off: Vec<String> = self
            .groups
            .iter()
            .chain(&self.follows)
            .filter(|(_, group, _)| off(group))
            .map(|(member, _, _)| member.clone())
            .collect();
        self.rules
            .retain(|r| !off(&r.id) && !groups_off.contains(&r.id));
    }

    /// Groups and `follows` by id to index, a member's category, severity
    /// and policy from its group, and the check that every rule has a key.
    fn resolve(&mut self) {
        let index: HashMap<&str, usize> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut errors = Vec::new();
        let mut members = Vec::new();
        for (member, group, pos) in &self.groups {
            let (Some(&m), found) = (index.get(member.as_str()), index.get(group.as_str())) else {
                continue;
            };
            match found {
                Some(&g) if self.rules[g].role == Role::Group => members.push((m, g)),
                Some(_) => errors.push(RuleError {
                    pos: pos.clone(),
                    message: format!("rule `{member}` names `{group}` as its group, but that is a rule, not a group"),
                }),
                None => errors.push(RuleError {
                    pos: pos.clone(),
                    message: format!("rule `{member}` names group `{group}`, which is not defined (a `groups:` entry)"),
                }),
            }
        }
        let mut follows = Vec::new();
        for (rule, target, pos) in &self.follows {
            let Some(&r) = index.get(rule.as_str()) else {
                continue;
            };
            match index.get(target.as_str()) {
                Some(&t) if !self.groups.iter().any(|(member, _, _)| member == target) => {
                    follows.push((r, t))
                }
                Some(_) => errors.push(RuleError {
                    pos: pos.clone(),
                    message: format!("rule `{rule}` follows `{target}`, a member of a group: follow the group, whose incidents they are"),
                }),
                None => errors.push(RuleError {
                    pos: pos.clone(),
                    message: format!("rule `{rule}` follows `{target}`, which is no loaded rule or group"),
                }),
            }
        }
        drop(index);
        for (m, g) in members {
            let (category, severity, policy, tags) = {
                let group = &self.rules[g];
                (
                    group.category,
                    group.severity,
                    group.policy.clone(),
                    group.tags.clone(),
                )
            };
            let member = &mut self.rules[m];
            member.role = Role::Member(g);
            member.category = category;
            member.severity = severity;
            member.policy = policy;
            if member.tags.is_empty() {
                member.tags = tags;
            }
        }
        for (r, t) in follows {
            self.rules[r].follows = Some(t);
        }
        for rule in &self.rules {
            if rule.role == Role::Group || rule.patterns.is_empty() {
                continue;
            }
            let by = rule
                .policy
                .threshold
                .as_ref()
                .map_or(&[][..], |t| &t.by[..]);
            let captures = |p: &Pattern, name: &str| p.captures(name);
            let keyed = if by.is_empty() || by == [DEFAULT_KEY_FIELD] {
                rule.patterns
                    .iter()
                    .all(|p| captures(p, DEFAULT_KEY_FIELD) || captures(p, HOST_KEY_FIELD))
            } else {
                by.iter().all(|f| {
                    f == SENDER_FIELD
                        || (!rule.ioc.is_empty() && IOC_FIELDS.contains(&f.as_str()))
                        || rule.patterns.iter().all(|p| captures(p, f))
                })
            };
            if !keyed {
                let what = if by.is_empty() {
                    format!("`{DEFAULT_KEY_FIELD}` (or `{HOST_KEY_FIELD}`)")
                } else {
                    format!("`{}`", by.join("`, `"))
                };
                // A warning, not an error: a local rule for one log of one
                // host may mean "one incident for everything it matches".
                self.warnings.push(Warning {
                    pos: rule.pos.clone(),
                    message: format!(
                        "rule `{}` has no key: not every pattern captures {what}, so events without it share one incident; capture it, or set `threshold: by:` to fields every pattern captures",
                        rule.id
                    ),
                });
            }
        }
        self.errors.extend(errors);
    }

    /// Checks a new id. A local rule replacing a shipped one takes its
    /// place (the shipped one is dropped, with a note); any other repeat is
    /// an error. Returns whether the id may be used.
    fn claim_id(&mut self, file: &str, id: &str, at: Location) -> bool {
        let pos = Position::at(file, at);
        if !valid_id(id) {
            self.error(
                file,
                at,
                format!("bad rule id `{id}`: use lowercase letters, digits, `-` and `.`, starting with a letter or digit"),
            );
            return false;
        }
        if let Some(first) = self.ids.get(id).cloned() {
            let shipped = first.file.starts_with("<builtin>/") && !file.starts_with("<builtin>/");
            if !shipped {
                let message = format!("duplicate rule id `{id}` (first defined at {first})");
                self.error(file, at, message);
                return false;
            }
            self.rules.retain(|r| r.id != id);
            self.groups.retain(|(member, _, _)| member != id);
            self.follows.retain(|(rule, _, _)| rule != id);
            self.notes.push(Warning {
                pos: pos.clone(),
                message: format!("rule `{id}` replaces the shipped one ({first})"),
            });
        }
        self.ids.insert(id.to_owned(), pos);
        true
    }

    fn validate_group(&mut self, file: &str, spec: GroupSpec) -> Option<Rule> {
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
            id,
            title: spec.title,
            description: spec.description,
            category: spec.category,
            severity: spec.severity,
            types: Vec::new(),
            patterns: Vec::new(),
            senders: None,
            policy: Policy {
                threshold,
                cooldown,
                merge: None,
                counts_toward: None,
                evidence: None,
            },
            tags,
            examples: Vec::new(),
            pos,
            flagged_script: None,
            ioc: Vec::new(),
            example_indicators: Vec::new(),
            via: None,
            role: Role::Group,
            evidence: None,
            follows: None,
            builtin: false,
            rate: None,
        })
    }

    /// A request-rate rule: no patterns and no threshold of its own (every
    /// line counts), access-log types only (the client is the line's first
    /// word).
    fn rate(
        &mut self,
        file: &str,
        r: &Spanned<super::spec::RateSpec>,
        spec: &RuleSpec,
        id: &str,
    ) -> Option<super::Rate> {
        let at = r.referenced;
        if !spec.patterns.value.is_empty() {
            self.error(
                file,
                at,
                format!("rule `{id}` has `rate`: every line counts, so it has no patterns"),
            );
        }
        if spec.threshold.is_some() || spec.group.is_some() {
            self.error(
                file,
                at,
                format!(
                    "rule `{id}` has `rate`, which is its threshold: no `threshold` or `group`"
                ),
            );
        }
        if let Some(t) = spec
            .types
            .value
            .iter()
            .find(|t| !matches!(t.value.as_str(), "nginx" | "apache"))
        {
            self.error(
                file,
                t.referenced,
                format!(
                    "rule `{id}` has `rate`, which counts access-log lines: type `{}` has none",
                    t.value
                ),
            );
        }
        if r.value.count.value == 0 {
            self.error(
                file,
                r.value.count.referenced,
                "rate count must be at least 1".into(),
            );
        }
        let window = self.duration(file, &r.value.window)?;
        if window <= SignedDuration::ZERO {
            self.error(
                file,
                r.value.window.referenced,
                "rate window must be positive".into(),
            );
            return None;
        }
        Some(super::Rate {
            count: r.value.count.value,
            window,
        })
    }

    fn cooldown(&mut self, file: &str, text: Option<&Spanned<String>>) -> SignedDuration {
        match text {
            Some(c) => self.duration(file, c).unwrap_or(DEFAULT_COOLDOWN),
            None => DEFAULT_COOLDOWN,
        }
    }

    fn tags(&mut self, file: &str, spec: &[Spanned<String>]) -> Vec<String> {
        let mut tags = Vec::new();
        for tag in spec {
            if valid_attack_id(&tag.value) {
                tags.push(tag.value.clone());
            } else {
                self.error(
                    file,
                    tag.referenced,
                    format!(
                        "bad ATT&CK tag `{}`: expected a technique id such as T1110 or T1110.001",
                        tag.value
                    ),
                );
            }
        }
        tags
    }

    /// A threshold, its fields checked by `captured` (every pattern of the
    /// rule captures the name).
    fn threshold(
        &mut self,
        file: &str,
        t: &ThresholdSpec,
        id: &str,
        captured: &dyn Fn(&str) -> bool,
    ) -> Option<Threshold> {
        let count = t.count.value;
        if count == 0 {
            self.error(
                file,
                t.count.referenced,
                "threshold count must be at least 1".into(),
            );
        }
        let window = self.duration(file, &t.window);
        let mut by = Vec::new();
        if let Some(fields) = &t.by {
            if fields.value.0.is_empty() {
                self.error(
                    file,
                    fields.referenced,
                    format!("threshold `by` of `{id}` names no field"),
                );
            }
            for f in &fields.value.0 {
                // `src_ip` may be `src_host` in some patterns: checked,
                // pattern by pattern, with the other keys in `resolve`.
                if f != DEFAULT_KEY_FIELD && !captured(f) {
                    self.error(
                        file,
                        fields.referenced,
                        format!("threshold `by: {f}` names a field that not every pattern of rule `{id}` captures"),
                    );
                }
                by.push(f.clone());
            }
        }
        let distinct = t.distinct.as_ref().map(|f| {
            if !captured(&f.value) {
                self.error(
                    file,
                    f.referenced,
                    format!(
                        "threshold `distinct: {}` names a field that not every pattern of rule `{id}` captures",
                        f.value
                    ),
                );
            }
            f.value.clone()
        });
        Some(Threshold {
            count,
            window: window?,
            by,
            distinct,
        })
    }

    fn error(&mut self, file: &str, loc: Location, message: String) {
        self.errors.push(RuleError {
            pos: Position::at(file, loc),
            message,
        });
    }

    fn validate(&mut self, file: &str, spec: RuleSpec) -> Option<Rule> {
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

        let mut types = Vec::new();
        if spec.types.value.is_empty() {
            self.error(
                file,
                spec.types.referenced,
                format!("rule `{id}` has no input types"),
            );
        }
        for t in &spec.types.value {
            if INPUT_TYPES.contains(&t.value.as_str()) {
                types.push(t.value.clone());
            } else {
                self.error(
                    file,
                    t.referenced,
                    format!(
                        "unknown input type `{}`; expected one of {}",
                        t.value,
                        INPUT_TYPES.join(", ")
                    ),
                );
            }
        }

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
                compile_pattern(&p.value).and_then(|regex| {
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
                self.errors.push(RuleError {
                    pos: Position::at(file, f.referenced),
                    message: format!(
                        "`flagged_script: {}` names a field that not every pattern of rule `{id}` captures",
                        f.value
                    ),
                });
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
            id,
            title: spec.title,
            description: spec.description,
            category,
            severity,
            types,
            patterns,
            senders,
            policy: Policy {
                threshold,
                cooldown,
                // Set per category by `RuleSet::policies`.
                merge: None,
                counts_toward: None,
                evidence: None,
            },
            tags,
            examples,
            pos,
            flagged_script,
            ioc,
            example_indicators,
            via: None,
            role: Role::Rule,
            evidence,
            follows: None,
            builtin: false,
            rate,
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

    fn duration(&mut self, file: &str, text: &Spanned<String>) -> Option<SignedDuration> {
        match crate::duration::parse(&text.value) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(file, text.referenced, message);
                None
            }
        }
    }
}

pub(super) fn compile_pattern(source: &str) -> Result<regex::bytes::Regex, String> {
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

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && id.len() <= 100
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

fn rule_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read rules: {e}"))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| format!("cannot list rule directory: {e}"))? {
        let entry = entry.map_err(|e| format!("cannot list rule directory: {e}"))?;
        let p = entry.path();
        let is_yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn read_rule_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read rule file: {e}"))?;
    if meta.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "rule file is {} bytes; the limit is {MAX_RULE_FILE_BYTES}",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read rule file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "rule file is not UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<Rule>, Vec<String>> {
        let mut l = Loader::new();
        l.add_source("t.yaml", text);
        l.finish()
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    const GOOD: &str = r#"rules:
  - id: ssh-fail
    title: t
    description: d
    category: bruteforce
    severity: medium
    types: [syslog]
    patterns:
      - 'Failed password for (?P<user>\S+) from (?P<src_ip>\S+)'
    threshold: { count: 5, window: 10m, by: src_ip, distinct: user }
    cooldown: 1h
    tags: [T1110, T1110.001]
    examples:
      match:
        - 'Failed password for root from 1.2.3.4'
        - line: 'Failed password for bob from 1.2.3.5'
          fields: { user: bob }
      no_match: ['Accepted password for root from 1.2.3.4']
"#;

    #[test]
    fn loads_a_full_rule() {
        let rules = load(GOOD).expect("valid");
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(r.id, "ssh-fail");
        assert_eq!(r.pos.to_string(), "t.yaml:2:9");
        let t = r.policy.threshold.as_ref().expect("threshold");
        assert_eq!((t.count, t.window), (5, SignedDuration::from_secs(600)));
        assert_eq!(t.distinct.as_deref(), Some("user"));
        assert_eq!(r.policy.cooldown, SignedDuration::from_secs(3600));
        assert_eq!(r.examples.len(), 3);
    }

    fn one_error(text: &str) -> String {
        let errs = load(text).expect_err("should fail");
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs[0].clone()
    }

    #[test]
    fn errors_name_file_line_column() {
        let e =
            one_error(&GOOD.replace("    cooldown: 1h\n", "    cooldown: 1h\n    colour: red\n"));
        assert!(e.starts_with("t.yaml:12:5: unknown field `colour`"), "{e}");

        let e = one_error(&GOOD.replace("bruteforce", "brute"));
        assert!(e.starts_with("t.yaml:5:15: ") && e.contains("brute"), "{e}");

        let e = one_error(&GOOD.replace("window: 10m", "window: 10q"));
        assert!(e.starts_with("t.yaml:10:36: bad duration `10q`"), "{e}");

        let e = one_error(&GOOD.replace(r"(?P<user>\S+) from", r"(?P<user>\S+ from"));
        assert!(e.starts_with("t.yaml:9:9: pattern does not compile"), "{e}");

        let e = one_error(&GOOD.replace("[syslog]", "[sislog]"));
        assert!(
            e.starts_with("t.yaml:7:13: unknown input type `sislog`"),
            "{e}"
        );

        let e = one_error(&GOOD.replace("T1110.001", "X1"));
        assert!(e.starts_with("t.yaml:12:19: bad ATT&CK tag"), "{e}");

        let e = one_error(&GOOD.replace("distinct: user", "distinct: usr"));
        assert!(e.contains("`distinct: usr` names a field"), "{e}");

        let e = one_error(&GOOD.replace("fields: { user: bob }", "fields: { usr: bob }"));
        assert!(
            e.starts_with("t.yaml:16:11: example asserts field `usr`"),
            "{e}"
        );

        let e = one_error(&GOOD.replace("fields: { user: bob }", "feilds: { user: bob }"));
        assert!(e.contains("unknown field `feilds`"), "{e}");
    }

    #[test]
    fn size_limit_is_an_error() {
        let e = one_error(&GOOD.replace(
            r"(?P<user>\S+) from",
            r"(?P<user>\w{1000}\w{1000}\w{1000}) from",
        ));
        assert!(e.starts_with("t.yaml:9:9: pattern is too large"), "{e}");
    }

    #[test]
    fn duplicate_ids_point_at_both() {
        let mut l = Loader::new();
        l.add_source("a.yaml", GOOD);
        l.add_source("b.yaml", GOOD);
        let errs = l.finish().expect_err("duplicate").0;
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "b.yaml:2:9: duplicate rule id `ssh-fail` (first defined at a.yaml:2:9)"
        );
    }

    const GROUPED: &str = r#"groups:
  - id: ssh-bf
    title: SSH brute force
    description: d
    category: bruteforce
    severity: medium
    threshold: { count: 5, window: 10m }
    cooldown: 30m
rules:
  - id: ssh-pw
    title: t
    description: d
    group: ssh-bf
    evidence: password
    types: [syslog]
    patterns: ['sshd\[(?P<pid>\d+)\]: Failed password for \S+ from (?P<src_ip>\S+)']
  - id: ssh-after
    title: t
    description: d
    category: policy-violation
    severity: high
    follows: ssh-bf
    types: [syslog]
    patterns: ['Accepted password for \S+ from (?P<src_ip>\S+)']
"#;

    #[test]
    fn members_take_their_group_and_follows_resolves() {
        let rules = load(GROUPED).expect("valid");
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["ssh-bf", "ssh-pw", "ssh-after"]);
        assert_eq!(rules[0].role, Role::Group);
        assert!(rules[0].patterns.is_empty() && rules[0].types.is_empty());
        assert_eq!(rules[1].role, Role::Member(0));
        assert_eq!(rules[1].category, Category::Bruteforce);
        assert_eq!(rules[1].severity, Severity::Medium);
        assert_eq!(rules[1].policy.threshold, rules[0].policy.threshold);
        assert_eq!(rules[1].evidence.as_deref(), Some("password"));
        assert_eq!(rules[2].follows, Some(0));
    }

    #[test]
    fn group_mistakes_are_errors_with_positions() {
        let own = GROUPED.replace(
            "    group: ssh-bf\n",
            "    group: ssh-bf\n    severity: low\n",
        );
        let e = load(&own).expect_err("a member restates severity");
        assert!(
            e[0].starts_with("t.yaml:")
                && e[0].contains("counts toward a group: its severity is the group's"),
            "{e:?}"
        );
        let unknown = GROUPED.replace("group: ssh-bf", "group: ssh-bff");
        let e = load(&unknown).expect_err("unknown group");
        assert!(
            e[0].contains("names group `ssh-bff`, which is not defined"),
            "{e:?}"
        );
        let not_group = GROUPED.replace("group: ssh-bf", "group: ssh-after");
        let e = load(&not_group).expect_err("a rule is no group");
        assert!(e[0].contains("that is a rule, not a group"), "{e:?}");
        let follows_member = GROUPED.replace("follows: ssh-bf", "follows: ssh-pw");
        let e = load(&follows_member).expect_err("follows a member");
        assert!(e[0].contains("a member of a group"), "{e:?}");
        let no_class = GROUPED.replace("    category: policy-violation\n", "");
        let e = load(&no_class).expect_err("a plain rule needs a category");
        assert!(e[0].contains("rule `ssh-after` has no category"), "{e:?}");
        let stray = GROUPED.replace("    follows: ssh-bf\n", "    evidence: pam\n");
        let e = load(&stray).expect_err("evidence without a group");
        assert!(e[0].contains("has `evidence` but no `group`"), "{e:?}");
    }

    #[test]
    fn a_local_rule_replaces_a_shipped_one_and_rules_can_be_disabled() {
        let mut l = Loader::new();
        l.add_source("<builtin>/ssh.yaml", GROUPED);
        let local = GROUPED.replace("count: 5", "count: 3");
        l.add_source("/etc/canhgac/rules.d/ssh.yaml", &local);
        assert_eq!(
            l.notes().len(),
            3,
            "each shipped id replaced: {:?}",
            l.notes()
        );
        assert!(l.notes()[0]
            .to_string()
            .starts_with("/etc/canhgac/rules.d/ssh.yaml:2:9: rule `ssh-bf` replaces the shipped one (<builtin>/ssh.yaml:2:9)"));
        let rules = l.finish().expect("copying the shipped file works");
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1].role, Role::Member(0));
        assert_eq!(rules[0].policy.threshold.as_ref().map(|t| t.count), Some(3));
        // Two local definitions of one id are still an error.
        let mut l = Loader::new();
        l.add_source("a.yaml", GROUPED);
        l.add_source("b.yaml", GROUPED);
        assert!(l.finish().is_err());
        // Disabling a group disables its members; an unknown id is an error.
        let mut l = Loader::new();
        l.add_source("<builtin>/ssh.yaml", GROUPED);
        let at = Position {
            file: "c.toml".into(),
            line: 0,
            column: 0,
        };
        l.disable(&["ssh-bf".into()], &at);
        let left: Vec<String> = l
            .finish()
            .expect("valid")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            left,
            Vec::<String>::new(),
            "members and followers go with their group"
        );
        let mut l = Loader::new();
        l.add_source("<builtin>/ssh.yaml", GROUPED);
        l.disable(&["nope".into()], &at);
        assert!(l.finish().is_err());
    }

    #[test]
    fn keys_may_join_fields_and_a_keyless_rule_is_a_warning() {
        let two = GOOD.replace("by: src_ip", "by: [src_ip, user]");
        let rules = load(&two).expect("a list of key fields");
        let by = rules[0].policy.threshold.as_ref().map(|t| t.by.clone());
        assert_eq!(by, Some(vec!["src_ip".to_string(), "user".to_string()]));
        let keyless = "rules:\n  - id: k\n    title: t\n    description: d\n    category: recon\n    severity: low\n    types: [syslog]\n    patterns: ['kernel: x']\n";
        let mut l = Loader::new();
        l.add_source("t.yaml", keyless);
        let (_, warnings) = l.finish_with_warnings().expect("loads");
        assert!(
            warnings[0].to_string().contains("rule `k` has no key"),
            "{warnings:?}"
        );
    }

    #[test]
    fn builtin_rules_load() {
        let mut l = Loader::new();
        l.add_builtin();
        let (rules, warnings) = l.finish_with_warnings().expect("shipped rules are valid");
        assert_eq!(warnings, [], "every shipped rule has a key");
        // Shipped patterns compile at first use: every one must, within
        // the size limit, as local ones are checked at load.
        for rule in &rules {
            for p in &rule.patterns {
                if let Err(e) = compile_pattern(&p.source) {
                    panic!("{}: {e}", p.pos);
                }
                assert!(
                    p.regex().capture_names().flatten().all(|n| p.captures(n)),
                    "{}: names read from the syntax",
                    p.pos
                );
            }
        }
    }
}
