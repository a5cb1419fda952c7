//! The YAML shape of a rule file, as written by people. Positions are kept
//! (`Spanned`) wherever a later check may need to point at a value.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::category::{Category, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Incidents that several rules' evidence counts toward together.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A group: what opens an incident from the evidence of its member rules
/// (one counter per key for all of them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub id: Spanned<String>,
    pub title: String,
    pub description: String,
    pub category: Category,
    pub severity: Severity,
    pub threshold: Option<ThresholdSpec>,
    pub cooldown: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: Spanned<String>,
    pub title: String,
    pub description: String,
    /// Required unless the rule counts toward a group, whose they are.
    pub category: Option<Spanned<Category>>,
    pub severity: Option<Spanned<Severity>>,
    /// The group whose threshold this rule's events count toward.
    pub group: Option<Spanned<String>>,
    /// The kind of evidence a line is, so that one attempt logged as several
    /// lines of one process (sshd's own line and its PAM line) counts once.
    pub evidence: Option<Spanned<String>>,
    /// A rule or group id: this rule's lines are events only while an
    /// incident of that one is open for the same key.
    pub follows: Option<Spanned<String>>,
    pub types: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "no_patterns")]
    pub patterns: Spanned<Vec<Spanned<String>>>,
    /// Only lines received from these addresses or networks.
    pub senders: Option<Spanned<Vec<Spanned<String>>>>,
    /// Feed checks: the rule hits a line only if one of them finds its field in a feed.
    #[serde(default)]
    pub ioc: Vec<Spanned<IocSpec>>,
    pub threshold: Option<ThresholdSpec>,
    /// Requests per client in access logs: every line counts, no patterns.
    pub rate: Option<Spanned<RateSpec>>,
    pub cooldown: Option<Spanned<String>>,
    /// A captured field that must name a script the web-root integrity
    /// watcher flagged (see `crate::integrity::flagged`).
    pub flagged_script: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub examples: ExamplesSpec,
}

/// `{field: query, kind: domain}`, optionally `feeds: [name, ...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IocSpec {
    pub field: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub feeds: Vec<Spanned<String>>,
}

/// `rate: { count: 300, window: 20s }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    pub count: Spanned<u32>,
    pub window: Spanned<String>,
}

fn no_patterns() -> Spanned<Vec<Spanned<String>>> {
    Spanned {
        value: Vec::new(),
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    pub count: Spanned<u32>,
    pub window: Spanned<String>,
    pub by: Option<Spanned<KeyFields>>,
    pub distinct: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesSpec {
    #[serde(rename = "match", default)]
    pub matching: Vec<Spanned<MatchExample>>,
    #[serde(default)]
    pub no_match: Vec<Spanned<String>>,
    /// For rules with `ioc`: the feed the examples are checked against, by kind.
    #[serde(default)]
    pub indicators: BTreeMap<String, Vec<Spanned<String>>>,
}

/// A line that must match, written either as a bare string or as
/// `{line, fields}` when the captures it yields are asserted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchExample {
    pub line: String,
    pub fields: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedExample {
    line: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for MatchExample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]`: untagged enums swallow
        // the inner error, and a typo such as `feilds:` must be reported as such.
        struct ExampleVisitor;
        impl<'de> Visitor<'de> for ExampleVisitor {
            type Value = MatchExample;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a log line, or a mapping with `line` and `fields`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatchExample, E> {
                Ok(MatchExample {
                    line: v.to_owned(),
                    fields: BTreeMap::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MatchExample, A::Error> {
                let d = DetailedExample::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MatchExample {
                    line: d.line,
                    fields: d.fields,
                })
            }
        }
        deserializer.deserialize_any(ExampleVisitor)
    }
}

/// `by: src_ip` or `by: [user, host]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFields(pub Vec<String>);

impl<'de> Deserialize<'de> for KeyFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name, or a list of field names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyFields, E> {
                Ok(KeyFields(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyFields, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(KeyFields(names))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
