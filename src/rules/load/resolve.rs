//! What can be checked only once every rule file is in: groups and
//! `follows` named by id, members taking their group's class and policy,
//! and whether every rule has a key.

use std::collections::HashMap;

use super::{Loader, RuleError, Warning};
use crate::event::{DEFAULT_KEY_FIELD, HOST_KEY_FIELD, IOC_FIELDS, SENDER_FIELD};
use crate::position::Position;
use crate::rules::{Pattern, Role};

impl Loader {
    /// Groups and `follows` by id to index, a member's category, severity
    /// and policy from its group, and the check that every rule has a key.
    pub(super) fn resolve(&mut self) {
        let index: HashMap<&str, usize> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut errors = Vec::new();
        let check_group = |member: &str, group: &str, found: Option<usize>| match found {
            Some(g) if self.rules[g].role == Role::Group => Ok(g),
            Some(_) => Err(format!(
                "rule `{member}` names `{group}` as its group, but that is a rule, not a group"
            )),
            None => Err(format!(
                "rule `{member}` names group `{group}`, which is not defined (a `groups:` entry)"
            )),
        };
        let check_follows = |rule: &str, target: &str, found: Option<usize>| {
            match found {
                Some(t) if !self.groups.iter().any(|(member, _, _)| member == target) => Ok(t),
                Some(_) => Err(format!("rule `{rule}` follows `{target}`, a member of a group: follow the group, whose incidents they are")),
                None => Err(format!("rule `{rule}` follows `{target}`, which is no loaded rule or group")),
            }
        };
        let members = linked(&index, &self.groups, &mut errors, check_group);
        let follows = linked(&index, &self.follows, &mut errors, check_follows);
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
}

/// The links (a rule, the id it names, where) of loaded rules, as the
/// pairs of their indices; `check` takes the named one's index (`None`
/// where no rule or group has that id) and keeps it, or says what is wrong
/// with the link, a mistake at its place.
fn linked(
    index: &HashMap<&str, usize>,
    links: &[(String, String, Position)],
    errors: &mut Vec<RuleError>,
    check: impl Fn(&str, &str, Option<usize>) -> Result<usize, String>,
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (rule, named, pos) in links {
        let Some(&r) = index.get(rule.as_str()) else {
            continue;
        };
        match check(rule, named, index.get(named.as_str()).copied()) {
            Ok(n) => pairs.push((r, n)),
            Err(message) => errors.push(RuleError {
                pos: pos.clone(),
                message,
            }),
        }
    }
    pairs
}
