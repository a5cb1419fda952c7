//! Mẫu số 05: the agency's incidents of a half-year or a year in the
//! national coordinator's classes, with how many were handled, handled by
//! the agency itself (never reported), and reported to the coordinator.
//!
//! Categories become classes through the form file's map, which the
//! config's `[reporting] classes` may override per category; a category
//! the map does not name is counted in the form's last class ("other").
//! False positives are left out, and said so.

use std::collections::BTreeMap;
use std::io::{self, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use super::PAGE_STYLE;
use super::{label, FormSet};
use crate::months::Month;
use crate::report::{
    escape_html as esc, escape_markdown as md, headers, table_html, write_aligned, write_markdown,
    Lang, Table,
};
use crate::spreadsheet::{write_row, Cell};
use crate::store::{Store, StoreError};

/// A half-year (`2026-H2`) or a year (`2026`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Half { year: i16, second: bool },
    Year(i16),
}

impl Period {
    /// Parses `YYYY-H1` / `YYYY-H2`.
    pub fn parse_half(text: &str) -> Result<Period, String> {
        let bad = || format!("bad half-year {text:?}: expected YYYY-H1 or YYYY-H2, e.g. 2026-H2");
        let (y, h) = text.split_once('-').ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        Month::new(year, 1).ok_or_else(bad)?;
        match h {
            "H1" | "h1" => Ok(Period::Half {
                year,
                second: false,
            }),
            "H2" | "h2" => Ok(Period::Half { year, second: true }),
            _ => Err(bad()),
        }
    }

    /// `[first month, month after the last)`.
    fn months(self) -> (Month, Month) {
        let m = |y, n| Month::new(y, n).unwrap_or(Month { year: y, month: 1 });
        match self {
            Period::Half {
                year,
                second: false,
            } => (m(year, 1), m(year, 7)),
            Period::Half { year, second: true } => (m(year, 7), m(year + 1, 1)),
            Period::Year(year) => (m(year, 1), m(year + 1, 1)),
        }
    }

    fn id(self) -> String {
        match self {
            Period::Half { year, second } => format!("{year}-H{}", if second { 2 } else { 1 }),
            Period::Year(year) => year.to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SummaryReport {
    pub form: String,
    pub circular: String,
    pub title: String,
    pub organisation: String,
    pub period: String,
    pub period_label: String,
    #[serde(serialize_with = "time")]
    pub start: Timestamp,
    #[serde(serialize_with = "time")]
    pub end: Timestamp,
    /// The period is not over: figures to `end`, which is now.
    pub complete: bool,
    pub time_zone: String,
    pub classes: Vec<ClassRow>,
    pub total: Outcomes,
    pub false_positives: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassRow {
    pub id: String,
    pub label: String,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub total: u64,
    pub handled: u64,
    pub self_handled: u64,
    pub escalated: u64,
}

/// What the summary is counted from, beside the store.
pub struct Sources<'a> {
    pub forms: &'a FormSet,
    /// `[reporting] classes`: category → class id.
    pub classes: &'a BTreeMap<String, String>,
    pub organisation: &'a str,
    pub tz: &'a TimeZone,
    pub now: Timestamp,
    pub lang: Lang,
}

impl SummaryReport {
    pub fn count(
        store: &Store,
        period: Period,
        s: &Sources<'_>,
    ) -> Result<SummaryReport, StoreError> {
        let f = &s.forms.summary;
        let lang = s.lang;
        let (first, after) = period.months();
        let start = first.start(s.tz);
        let end = after.start(s.tz).min(s.now);
        let counted = store.count_by_outcome(start, end)?;
        let mut classes: Vec<ClassRow> = f
            .classes
            .iter()
            .map(|c| ClassRow {
                id: c.id.clone(),
                label: c.label.get(lang).to_owned(),
                outcomes: Outcomes::default(),
            })
            .collect();
        let mut total = Outcomes::default();
        for (category, [all, handled, self_handled, escalated]) in counted {
            let Some(class) = s.forms.class_of(&category, s.classes) else {
                continue;
            };
            if let Some(row) = classes.iter_mut().find(|r| r.id == class.id) {
                for (slot, n) in [
                    (&mut row.outcomes.total, all),
                    (&mut row.outcomes.handled, handled),
                    (&mut row.outcomes.self_handled, self_handled),
                    (&mut row.outcomes.escalated, escalated),
                ] {
                    *slot += n;
                }
                total.total += all;
                total.handled += handled;
                total.self_handled += self_handled;
                total.escalated += escalated;
            }
        }
        let l = |key: &str| label(&f.labels, key, lang);
        let period_label = match period {
            Period::Half { year, second } => l("period_half")
                .replace(
                    "{half}",
                    l(if second { "second_half" } else { "first_half" }),
                )
                .replace(
                    "{half_en}",
                    l(if second { "second_half" } else { "first_half" }),
                )
                .replace("{year}", &year.to_string()),
            Period::Year(year) => l("period_year").replace("{year}", &year.to_string()),
        };
        Ok(SummaryReport {
            form: f.form_label.get(lang).to_owned(),
            circular: s.forms.name.get(lang).to_owned(),
            title: f.title.get(lang).to_owned(),
            organisation: s.organisation.to_owned(),
            period: period.id(),
            period_label,
            start,
            end,
            complete: s.now >= after.start(s.tz),
            time_zone: s.tz.iana_name().unwrap_or("system").to_owned(),
            classes,
            total,
            false_positives: store.count_false_positives(start, end)?,
        })
    }

    /// The classes and the total as one of the report's tables.
    fn figures(&self, forms: &FormSet, lang: Lang) -> Table {
        let l = |key| label(&forms.summary.labels, key, lang);
        let row = |label: &str, o: &Outcomes| {
            vec![
                label.to_owned(),
                lang.count(o.total),
                lang.count(o.handled),
                lang.count(o.self_handled),
                lang.count(o.escalated),
            ]
        };
        let mut rows: Vec<Vec<String>> = self
            .classes
            .iter()
            .map(|c| row(&c.label, &c.outcomes))
            .collect();
        rows.push(row(l("sum"), &self.total));
        Table {
            title: self.title.clone(),
            headers: headers(
                &[l("class")],
                &[l("total"), l("handled"), l("self_handled"), l("escalated")],
            ),
            rows,
            total_row: true,
        }
    }

    fn note(&self, forms: &FormSet, lang: Lang) -> Option<String> {
        let key = match self.false_positives {
            0 => return None,
            1 => "false_positive",
            _ => "false_positives",
        };
        Some(
            label(&forms.summary.labels, key, lang)
                .replace("{n}", &lang.count(self.false_positives)),
        )
    }

    fn heading(&self, forms: &FormSet, lang: Lang) -> [String; 3] {
        let l = |key| label(&forms.summary.labels, key, lang);
        let mut period = format!("{}: {}", l("period"), self.period_label);
        if !self.complete {
            period.push_str(&format!(
                " ({} {})",
                lang.words().in_progress,
                lang.time(self.end, &zone(&self.time_zone))
            ));
        }
        [
            format!("{} \u{2013} {}", self.form, self.circular),
            format!("{}: {}", l("organisation"), self.organisation),
            period,
        ]
    }

    pub fn table(&self, out: &mut dyn Write, forms: &FormSet, lang: Lang) -> io::Result<()> {
        let [form, org, period] = self.heading(forms, lang);
        writeln!(out, "{form}\n{}\n{org}\n{period}\n", self.title)?;
        write_aligned(out, &self.figures(forms, lang), lang.words().nothing)?;
        if let Some(note) = self.note(forms, lang) {
            writeln!(out, "\n{note}")?;
        }
        Ok(())
    }

    pub fn markdown(&self, out: &mut dyn Write, forms: &FormSet, lang: Lang) -> io::Result<()> {
        let [form, org, period] = self.heading(forms, lang);
        writeln!(
            out,
            "_{}_\n\n# {}\n\n{}  \n{}\n",
            md(&form),
            md(&self.title),
            md(&org),
            md(&period)
        )?;
        write_markdown(out, &self.figures(forms, lang), lang.words().nothing)?;
        if let Some(note) = self.note(forms, lang) {
            writeln!(out, "\n_{}_", md(&note))?;
        }
        Ok(())
    }

    pub fn html(&self, out: &mut dyn Write, forms: &FormSet, lang: Lang) -> io::Result<()> {
        let [form, org, period] = self.heading(forms, lang);
        let mut h = format!(
            "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{PAGE_STYLE}{STYLE}</style>\n</head>\n<body>\n<p class=\"form\">{}</p>\n<h1>{}</h1>\n<p>{}<br>{}</p>\n",
            lang.code(),
            esc(&self.title),
            esc(&form),
            esc(&self.title),
            esc(&org),
            esc(&period)
        );
        table_html(&mut h, &self.figures(forms, lang), lang.words().nothing);
        if let Some(note) = self.note(forms, lang) {
            h.push_str(&format!("<p class=\"note\">{}</p>\n", esc(&note)));
        }
        h.push_str("</body>\n</html>\n");
        out.write_all(h.as_bytes())
    }

    /// One row per class and `total`, stable column names:
    /// `class,total,handled,self_handled,escalated,label`.
    pub fn csv(
        &self,
        out: &mut dyn Write,
        forms: &FormSet,
        lang: Lang,
        bom: bool,
    ) -> io::Result<()> {
        if bom {
            out.write_all("\u{feff}".as_bytes())?;
        }
        let header = [
            "class",
            "total",
            "handled",
            "self_handled",
            "escalated",
            "label",
        ];
        write_row(out, &header.map(|h| Cell::Text(h.to_owned())))?;
        let n = |v: u64| Cell::Number(v.to_string());
        let row = |id: &str, label: &str, o: &Outcomes| {
            [
                Cell::Text(id.to_owned()),
                n(o.total),
                n(o.handled),
                n(o.self_handled),
                n(o.escalated),
                Cell::Text(label.to_owned()),
            ]
        };
        for c in &self.classes {
            write_row(out, &row(&c.id, &c.label, &c.outcomes))?;
        }
        write_row(
            out,
            &row(
                "total",
                label(&forms.summary.labels, "sum", lang),
                &self.total,
            ),
        )
    }
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

fn time<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

const STYLE: &str = "
h1 { font-size: 14pt; text-align: center; }
table { width: 100%; border-collapse: collapse; }
th, td { border: 1px solid #000; padding: 1.5mm 2mm; text-align: left; }
.r { text-align: right; }
tr.total td { font-weight: bold; }
p.note { font-style: italic; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_years_and_years() {
        assert_eq!(
            Period::parse_half("2026-H2"),
            Ok(Period::Half {
                year: 2026,
                second: true
            })
        );
        assert!(Period::parse_half("2026-H3").is_err());
        assert!(Period::parse_half("2026").is_err());
        let (a, b) = Period::Half {
            year: 2026,
            second: true,
        }
        .months();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-07".into(), "2027-01".into())
        );
        let (a, b) = Period::Year(2025).months();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2025-01".into(), "2026-01".into())
        );
    }
}
