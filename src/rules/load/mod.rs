//! Turns rule files into validated [`Rule`]s, collecting every error with
//! its file, line and column rather than stopping at the first.
//!
//! [`files`] reads the rule files; [`rule`] checks each rule and group on
//! its own, with [`counting`] for thresholds, rates and cooldowns;
//! [`resolve`] ties rules together (groups, `follows`, keys) once every
//! file is in. [`errors`] is what all of them report.

mod counting;
mod errors;
mod files;
mod resolve;
mod rule;

use std::collections::HashMap;

use serde_saphyr::Location;

use super::spec::RuleFile;
use super::Rule;
use crate::position::{Position, Problems};
pub use errors::{LoadErrors, RuleError, Warning};
pub(super) use rule::compile_pattern;
#[cfg(test)]
use rule::refuse_empty_match;
pub use rule::PATTERN_SIZE_LIMIT;

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
                self.error(file, loc, message);
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
            Err(Problems(self.errors))
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

    /// An error at `loc` in `file`.
    fn error(&mut self, file: &str, loc: Location, message: String) {
        self.errors.push(RuleError {
            pos: Position::at(file, loc),
            message,
        });
    }
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && id.len() <= 100
}
#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::category::{Category, Severity};
    use crate::rules::Role;

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
        // (text replaced in GOOD, its replacement, how the error starts, a
        // part of it)
        let cases = [
            (
                "    cooldown: 1h\n",
                "    cooldown: 1h\n    colour: red\n",
                "t.yaml:12:5: unknown field `colour`",
                "",
            ),
            ("bruteforce", "brute", "t.yaml:5:15: ", "brute"),
            (
                "window: 10m",
                "window: 10q",
                "t.yaml:10:36: bad duration `10q`",
                "",
            ),
            (
                r"(?P<user>\S+) from",
                r"(?P<user>\S+ from",
                "t.yaml:9:9: pattern does not compile",
                "",
            ),
            (
                "[syslog]",
                "[sislog]",
                "t.yaml:7:13: unknown input type `sislog`",
                "",
            ),
            ("T1110.001", "X1", "t.yaml:12:19: bad ATT&CK tag", ""),
            (
                "distinct: user",
                "distinct: usr",
                "",
                "`distinct: usr` names a field",
            ),
            (
                "fields: { user: bob }",
                "fields: { usr: bob }",
                "t.yaml:16:11: example asserts field `usr`",
                "",
            ),
            (
                "fields: { user: bob }",
                "feilds: { user: bob }",
                "",
                "unknown field `feilds`",
            ),
        ];
        for (from, to, start, part) in cases {
            let e = one_error(&GOOD.replace(from, to));
            assert!(e.starts_with(start) && e.contains(part), "{e}");
        }
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
        // (text replaced in GROUPED, its replacement, a part of the error)
        let cases = [
            (
                "    group: ssh-bf\n",
                "    group: ssh-bf\n    severity: low\n",
                "counts toward a group: its severity is the group's",
            ),
            (
                "group: ssh-bf",
                "group: ssh-bff",
                "names group `ssh-bff`, which is not defined",
            ),
            (
                "group: ssh-bf",
                "group: ssh-after",
                "that is a rule, not a group",
            ),
            ("follows: ssh-bf", "follows: ssh-pw", "a member of a group"),
            (
                "    category: policy-violation\n",
                "",
                "rule `ssh-after` has no category",
            ),
            (
                "    follows: ssh-bf\n",
                "    evidence: pam\n",
                "has `evidence` but no `group`",
            ),
        ];
        for (from, to, part) in cases {
            let e = load(&GROUPED.replace(from, to)).expect_err(part);
            assert!(e[0].starts_with("t.yaml:") && e[0].contains(part), "{e:?}");
        }
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
                if let Err(e) = compile_pattern(&p.source).and_then(refuse_empty_match) {
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

    #[test]
    fn a_pattern_that_matches_the_empty_line_is_refused_where_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("local.yaml");
        std::fs::write(
            &file,
            "rules:\n  - id: everything\n    title: t\n    description: d\n    category: recon\n    severity: low\n    types: [syslog]\n    patterns:\n      - 'sshd.*'\n      - '(?:x)?'\n",
        )
        .expect("write");
        let mut l = Loader::new();
        l.add_path(&file);
        let errors = l.finish().expect_err("refused").0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].pos.line, errors[0].pos.column), (10, 9));
        assert!(
            errors[0].message.contains("matches the empty line"),
            "{errors:?}"
        );
    }
}
