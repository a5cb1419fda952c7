//! Turns rule files into validated [`Rule`]s, collecting every error with
//! its file, line and column rather than stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde_saphyr::{Location, Spanned};

use super::spec::{RuleFile, RuleSpec};
use super::{Example, IocCheck, Pattern, Rule, INPUT_TYPES};
use crate::detect::{Policy, Threshold};
use crate::feeds::{FeedKind, IndicatorSet};

/// Compiled size cap per pattern: a rule that needs more is almost certainly
/// a mistake (or a hostile rule file), and it would slow every line.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Rule files are small; anything bigger is not a rule file.
const MAX_RULE_FILE_BYTES: u64 = 8 << 20;
const DEFAULT_COOLDOWN: SignedDuration = SignedDuration::from_secs(600);

/// Fields a feed hit adds to an event: the feed's name and the indicator
/// that matched. Thresholds and examples of rules with `ioc` may name them.
pub const IOC_FIELDS: [&str; 2] = ["feed", "indicator"];

/// Where something was written: `file:line:col`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl Position {
    fn at(file: &str, loc: Location) -> Self {
        Position {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

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

/// Accumulates rules from several sources and checks ids across all of them.
#[derive(Default)]
pub struct Loader {
    rules: Vec<Rule>,
    errors: Vec<RuleError>,
    ids: HashMap<String, Position>,
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
        for spec in parsed.rules {
            if let Some(rule) = self.validate(file, spec) {
                self.rules.push(rule);
            }
        }
    }

    pub fn finish(self) -> Result<Vec<Rule>, LoadErrors> {
        if self.errors.is_empty() {
            Ok(self.rules)
        } else {
            Err(LoadErrors(self.errors))
        }
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

        if !valid_id(&id) {
            self.error(
                file,
                spec.id.referenced,
                format!("bad rule id `{id}`: use lowercase letters, digits, `-` and `.`, starting with a letter or digit"),
            );
        } else if let Some(first) = self.ids.get(&id) {
            let message = format!("duplicate rule id `{id}` (first defined at {first})");
            self.error(file, spec.id.referenced, message);
        } else {
            self.ids.insert(id.clone(), pos.clone());
        }

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

        let mut patterns = Vec::new();
        if spec.patterns.value.is_empty() {
            self.error(
                file,
                spec.patterns.referenced,
                format!("rule `{id}` has no patterns"),
            );
        }
        for p in &spec.patterns.value {
            match compile_pattern(&p.value) {
                Ok(regex) => patterns.push(Pattern {
                    source: p.value.clone(),
                    regex,
                    pos: Position::at(file, p.referenced),
                }),
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
                match s.value.parse::<super::senders::Network>() {
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
            name == crate::analyze::SENDER_FIELD
                || ioc_field(name)
                || (!patterns.is_empty()
                    && patterns
                        .iter()
                        .all(|p: &Pattern| p.regex.capture_names().flatten().any(|n| n == name)))
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
                && !patterns.iter().all(|p| {
                    p.regex
                        .capture_names()
                        .flatten()
                        .any(|n| n == c.field.value)
                })
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

        let mut threshold = None;
        if let Some(t) = &spec.threshold {
            let count = t.count.value;
            if count == 0 {
                self.error(
                    file,
                    t.count.referenced,
                    "threshold count must be at least 1".into(),
                );
            }
            let window = self.duration(file, &t.window);
            let mut field = |f: &Option<Spanned<String>>, what: &str| -> Option<String> {
                let f = f.as_ref()?;
                if patterns.len() == spec.patterns.value.len() && !captured_by_all(&f.value) {
                    self.errors.push(RuleError {
                        pos: Position::at(file, f.referenced),
                        message: format!(
                            "threshold `{what}: {}` names a field that not every pattern of rule `{id}` captures",
                            f.value
                        ),
                    });
                }
                Some(f.value.clone())
            };
            let by = field(&t.by, "by");
            let distinct = field(&t.distinct, "distinct");
            if let Some(window) = window {
                threshold = Some(Threshold {
                    count,
                    window,
                    by,
                    distinct,
                });
            }
        }

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

        let cooldown = match &spec.cooldown {
            Some(c) => self.duration(file, c).unwrap_or(DEFAULT_COOLDOWN),
            None => DEFAULT_COOLDOWN,
        };

        let mut tags = Vec::new();
        for tag in &spec.tags {
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

        let mut examples = Vec::new();
        for ex in &spec.examples.matching {
            for name in ex.value.fields.keys() {
                if patterns.len() == spec.patterns.value.len()
                    && !ioc_field(name)
                    && !patterns
                        .iter()
                        .any(|p| p.regex.capture_names().flatten().any(|n| n == name))
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
            category: spec.category,
            severity: spec.severity,
            types,
            patterns,
            senders,
            policy: Policy {
                threshold,
                cooldown,
                // Set per category by `RuleSet::policies`.
                merge: None,
            },
            tags,
            examples,
            pos,
            flagged_script,
            ioc,
            example_indicators,
            via: None,
        })
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

fn compile_pattern(source: &str) -> Result<regex::bytes::Regex, String> {
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

    #[test]
    fn builtin_rules_load() {
        let mut l = Loader::new();
        l.add_builtin();
        l.finish().expect("shipped rules are valid");
    }
}
