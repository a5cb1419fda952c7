//! The national coordinator's forms: the initial report of one incident
//! (Circular 20/2017/TT-BTTTT, Mẫu số 03, [`initial`]) and the six-monthly
//! or yearly summary in its classes (Mẫu số 05, [`summary`]).
//!
//! Form numbers, titles, labels, recipients and the summary's classes are
//! data ([`FormSet`], `forms/tt20-2017.toml`, built in): the 2025 Law on
//! Cyber Security moves this duty to another ministry, and its circular
//! must be a change of a data file (`[reporting] forms`), not of code. What
//! the agency writes once (who reports, about which system) is
//! [`Organisation`], from the config's `[organisation]`.

pub mod docx;
pub mod initial;
pub mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::category::Category;
use crate::position::{Position, Problem, Problems};
use crate::report::Lang;

/// The page of every form printed from HTML: A4 with the margins of
/// administrative documents, a serif face, the form's number at the right.
pub(crate) const PAGE_STYLE: &str = "
@page { size: A4; margin: 20mm 20mm 20mm 25mm; }
body { font-family: 'Times New Roman', 'Liberation Serif', serif; font-size: 12pt; color: #000; max-width: 170mm; margin: 0 auto; }
p.form { text-align: right; font-style: italic; }
";

/// The forms canhgac ships: Circular 20/2017/TT-BTTTT.
pub const BUILTIN: &str = include_str!("../../forms/tt20-2017.toml");

/// A text in both languages of the reports.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub vi: String,
    pub en: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Vi => &self.vi,
            Lang::En => &self.en,
        }
    }
}

/// One file of forms (`forms/tt20-2017.toml`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FormSet {
    pub id: String,
    pub name: Text,
    pub initial: InitialForm,
    pub summary: SummaryForm,
}

/// Mẫu số 03 as data.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InitialForm {
    pub number: String,
    pub title: Text,
    pub form_label: Text,
    pub recipients: Vec<Text>,
    pub subject_prefix: String,
    pub deadline_days: u32,
    pub sections: BTreeMap<String, Text>,
    pub labels: BTreeMap<String, Text>,
    pub methods: BTreeMap<String, Text>,
    pub statuses: BTreeMap<String, Text>,
}

/// Mẫu số 05 as data.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SummaryForm {
    pub number: String,
    pub title: Text,
    pub form_label: Text,
    pub recipients: Vec<Text>,
    pub labels: BTreeMap<String, Text>,
    pub classes: Vec<IncidentClass>,
}

/// A class of the summary, and canhgac's categories counted in it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IncidentClass {
    pub id: String,
    pub label: Text,
    #[serde(default)]
    pub categories: Vec<String>,
}

/// Labels every form file must give, so that a form never prints a key.
const INITIAL_SECTIONS: &[&str] = &["reporter", "system", "incident", "evidence", "closing"];
const INITIAL_LABELS: &[&str] = &[
    "organisation",
    "address",
    "contact",
    "role",
    "phone",
    "email",
    "operator",
    "governing_body",
    "system_name",
    "security_level",
    "security_provider",
    "isp",
    "domains",
    "addresses",
    "operating_systems",
    "services",
    "protections",
    "description",
    "incident_id",
    "category",
    "severity",
    "source",
    "key",
    "events",
    "first_seen",
    "last_seen",
    "detected",
    "method",
    "status",
    "notified",
    "confidential",
    "report_time",
    "subject",
    "recipient",
    "not_given",
    "yes",
    "no",
    "signature",
];
const INITIAL_METHODS: &[&str] = &["log_review", "integrity", "ioc"];
const SUMMARY_LABELS: &[&str] = &[
    "period_half",
    "period_year",
    "first_half",
    "second_half",
    "class",
    "total",
    "handled",
    "self_handled",
    "escalated",
    "sum",
    "organisation",
    "period",
    "false_positives",
];

impl FormSet {
    /// The forms built into canhgac.
    pub fn builtin() -> FormSet {
        // Checked by a test: the built-in file parses and validates.
        FormSet::parse("forms/tt20-2017.toml", BUILTIN).unwrap_or_else(|_| FormSet::empty())
    }

    /// A form file's text, every problem positioned in it.
    pub fn parse(file: &str, text: &str) -> Result<FormSet, Problems> {
        let at = |offset: usize, message: String| Problem {
            pos: Position::of_offset(file, text, offset),
            message,
        };
        let set: FormSet = toml::from_str(text).map_err(|e| {
            Problems(vec![at(
                e.span().map_or(0, |s| s.start),
                e.message().trim_end().to_owned(),
            )])
        })?;
        let mut problems = Vec::new();
        // Where a quoted value is written (after `from`): semantic problems
        // point at the value, not at the file's start.
        let locate = |needle: &str, from: usize| -> (Position, usize) {
            let quoted = format!("\"{needle}\"");
            let at = text[from.min(text.len())..]
                .find(&quoted)
                .map_or(0, |i| from + i);
            (Position::of_offset(file, text, at), at)
        };
        let mut missing = |what: &str, keys: &[&str], map: &BTreeMap<String, Text>| {
            for key in keys {
                if !map.contains_key(*key) {
                    problems.push(at(
                        0,
                        format!("{what}.{key} is missing: every form file gives it in vi and en"),
                    ));
                }
            }
        };
        missing("initial.sections", INITIAL_SECTIONS, &set.initial.sections);
        missing("initial.labels", INITIAL_LABELS, &set.initial.labels);
        missing("initial.methods", INITIAL_METHODS, &set.initial.methods);
        missing(
            "initial.statuses",
            &crate::store::Status::ALL_IDS,
            &set.initial.statuses,
        );
        missing("summary.labels", SUMMARY_LABELS, &set.summary.labels);
        let mut seen_class = std::collections::HashSet::new();
        let mut seen_category = BTreeMap::new();
        let mut cursor = 0;
        for class in &set.summary.classes {
            let (pos, at) = locate(&class.id, cursor);
            cursor = at;
            if !seen_class.insert(class.id.as_str()) {
                problems.push(Problem {
                    pos,
                    message: format!("summary class {:?} is given twice", class.id),
                });
            }
            for c in &class.categories {
                let (pos, _) = locate(c, cursor);
                if let Err(e) = c.parse::<Category>() {
                    problems.push(Problem {
                        pos: pos.clone(),
                        message: format!("summary class {:?}: {e}", class.id),
                    });
                }
                if let Some(other) = seen_category.insert(c.clone(), class.id.clone()) {
                    problems.push(Problem {
                        pos,
                        message: format!(
                            "category {c:?} is in summary classes {other:?} and {:?}: one class each",
                            class.id
                        ),
                    });
                }
            }
        }
        if !(1..=90).contains(&set.initial.deadline_days) {
            problems.push(at(
                text.find("deadline_days").unwrap_or(0),
                format!(
                    "initial.deadline_days {}: must be between 1 and 90",
                    set.initial.deadline_days
                ),
            ));
        }
        if set.summary.classes.is_empty() {
            problems.push(at(0, "summary.classes: the form has no classes".into()));
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(Problems(problems))
        }
    }

    fn empty() -> FormSet {
        let text = || Text {
            vi: String::new(),
            en: String::new(),
        };
        FormSet {
            id: String::new(),
            name: text(),
            initial: InitialForm {
                number: String::new(),
                title: text(),
                form_label: text(),
                recipients: Vec::new(),
                subject_prefix: String::new(),
                deadline_days: 5,
                sections: BTreeMap::new(),
                labels: BTreeMap::new(),
                methods: BTreeMap::new(),
                statuses: BTreeMap::new(),
            },
            summary: SummaryForm {
                number: String::new(),
                title: text(),
                form_label: text(),
                recipients: Vec::new(),
                labels: BTreeMap::new(),
                classes: Vec::new(),
            },
        }
    }

    /// The class a category is counted in: `overrides` (the config's
    /// `[reporting] classes`) first, then the form's own map, else the
    /// form's last class (its "other").
    pub fn class_of<'a>(
        &'a self,
        category: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Option<&'a IncidentClass> {
        let classes = &self.summary.classes;
        if let Some(id) = overrides.get(category) {
            if let Some(c) = classes.iter().find(|c| &c.id == id) {
                return Some(c);
            }
        }
        classes
            .iter()
            .find(|c| c.categories.iter().any(|k| k == category))
            .or(classes.last())
    }
}

/// A label of a form, in `lang`; empty if the file lacks it (which
/// [`FormSet::parse`] refuses).
pub(crate) fn label<'a>(map: &'a BTreeMap<String, Text>, key: &str, lang: Lang) -> &'a str {
    map.get(key).map_or("", |t| t.get(lang))
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Organisation {
    /// The reporting organisation, as its forms write it (default: the
    /// config's `agency_name`).
    pub name: Option<String>,
    pub address: Option<String>,
    pub contact_name: Option<String>,
    pub contact_role: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    /// Whom the report goes to, if not the form's default recipients.
    pub recipients: Vec<String>,
    /// Days allowed between detecting a serious incident and reporting it:
    /// the config's, else the forms' `deadline_days`.
    pub report_within_days: u32,
    pub system: SystemInfo,
}

/// The information system the incidents happen on (Mẫu 03, part 2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SystemInfo {
    pub name: Option<String>,
    /// The unit that operates it (đơn vị vận hành).
    pub operator: Option<String>,
    /// The agency it belongs to (cơ quan chủ quản).
    pub governing_body: Option<String>,
    pub domains: Vec<String>,
    pub addresses: Vec<String>,
    /// Security level under Decree 85/2016/NĐ-CP, 1 to 5.
    pub security_level: Option<u8>,
    pub security_provider: Option<String>,
    pub isp: Option<String>,
    pub operating_systems: Vec<String>,
    pub services: Vec<String>,
    pub protections: Vec<String>,
    /// Who else is told of incidents (the governing body, the police...).
    pub notified: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_forms_parse_and_give_every_label() {
        let set = FormSet::parse("forms/tt20-2017.toml", BUILTIN).expect("built-in forms");
        assert_eq!(set.initial.number, "03");
        assert_eq!(set.summary.number, "05");
        assert_eq!(set.summary.classes.len(), 10);
        assert!(set.initial.subject_prefix.starts_with("[TBSC]"));
        // Every category is in exactly one class.
        let none = BTreeMap::new();
        for c in Category::ALL {
            let class = set.class_of(c.id(), &none).expect("a class");
            assert!(class.categories.iter().any(|k| k == c.id()), "{c}");
        }
        assert_eq!(
            set.class_of("bruteforce", &none).map(|c| c.id.as_str()),
            Some("unauthorised-access")
        );
        let moved = BTreeMap::from([("recon".to_owned(), "combined".to_owned())]);
        assert_eq!(
            set.class_of("recon", &moved).map(|c| c.id.as_str()),
            Some("combined")
        );
    }

    #[test]
    fn a_broken_form_file_is_refused_with_what_is_wrong() {
        let broken = BUILTIN.replace(
            "categories = [\"dos\"]",
            "categories = [\"dos\", \"phishing\"]",
        );
        let err = FormSet::parse("f.toml", &broken).expect_err("phishing twice");
        assert!(
            err.to_string()
                .contains("category \"phishing\" is in summary classes"),
            "{err}"
        );
        let err = FormSet::parse("f.toml", "id = 3").expect_err("not a form file");
        assert!(err.to_string().starts_with("f.toml:1:"), "{err}");
        let unlabelled = BUILTIN.replace("\nsignature = ", "\nsignatur = ");
        assert!(FormSet::parse("f.toml", &unlabelled).is_err());
    }
}
