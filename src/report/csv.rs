//! The report as CSV tables (RFC 4180) for spreadsheets and scripts.
//!
//! Each table has stable column names (ids, never month names or words of
//! a language), one row per item, and only numbers in number columns:
//!
//! - `categories` (the default): `category,this_month,last_month,
//!   change_month,same_month_last_year,change_year,year_to_date,
//!   same_period_last_year,change_year_to_date,label`, a row per category
//!   of the taxonomy, then `total`;
//! - `severities`: the same columns, `severity` first;
//! - `rules`: `rule,category,this_month,events,last_month,change_month`;
//! - `sources`: `src_ip,this_month,events`;
//! - `inputs`: `input,this_month,events,last_month,change_month`;
//! - `months`: `month,start,end,total` and one column per category id, the
//!   13 months ending with the report's month.
//!
//! Counts are plain integers. Changes are percentages with two decimals,
//! rounded half away from zero, in the language's decimal separator (11.07
//! / 11,07, so a spreadsheet in that locale reads them as numbers), and
//! empty where the base is zero. `label` is the row's name in the report's
//! language. The file starts with a UTF-8 byte order mark, without which
//! Excel on Windows reads Vietnamese as mojibake (`--no-bom` leaves it out).
//!
//! Formula injection: a text cell starting with `=`, `+`, `-`, `@`, TAB or
//! CR is prefixed with `'`, which spreadsheets show as text. Number cells
//! are written by canhgac itself, never copied from logs, and are left as
//! numbers (a negative change starts with `-` and must stay a number).

use std::io::{self, Write};

use super::lang::Lang;
use crate::category::Category;
use crate::months::Percent;
use crate::spreadsheet::{write_row, Cell};
use crate::summary::{Figures, MonthCounts, Summary};

/// The tables `canhgac report --format csv --table` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Categories,
    Severities,
    Rules,
    Sources,
    Inputs,
    Months,
    /// A national center's store: each agency's month.
    Agencies,
}

/// The columns of a rule's or an input's month against the last.
const AGAINST_LAST_MONTH: [&str; 4] = ["this_month", "events", "last_month", "change_month"];

const FIGURE_COLUMNS: [&str; 9] = [
    "this_month",
    "last_month",
    "change_month",
    "same_month_last_year",
    "change_year",
    "year_to_date",
    "same_period_last_year",
    "change_year_to_date",
    "label",
];

pub fn write(
    out: &mut dyn Write,
    s: &Summary,
    lang: Lang,
    table: Table,
    bom: bool,
) -> io::Result<()> {
    if bom {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let n = |v: u64| Cell::Number(v.to_string());
    let change = |current: u64, base: u64| -> Cell {
        match Percent::of(current, base) {
            Some(p) => {
                let (int, frac) = p.digits();
                let decimal = match lang {
                    Lang::En => '.',
                    Lang::Vi => ',',
                };
                let sign = if p.negative { "-" } else { "" };
                Cell::Number(format!("{sign}{int}{decimal}{frac}"))
            }
            None => Cell::Empty,
        }
    };
    let figures = |id: &str, label: String, f: &Figures| -> Vec<Cell> {
        vec![
            Cell::Text(id.to_owned()),
            n(f.this_month),
            n(f.last_month),
            change(f.this_month, f.last_month),
            n(f.same_month_last_year),
            change(f.this_month, f.same_month_last_year),
            n(f.year_to_date),
            n(f.same_period_last_year),
            change(f.year_to_date, f.same_period_last_year),
            Cell::Text(label),
        ]
    };
    let against_last_month = |mut row: Vec<Cell>, c: &MonthCounts| -> Vec<Cell> {
        row.extend([
            n(c.this_month),
            n(c.events),
            n(c.last_month),
            change(c.this_month, c.last_month),
        ]);
        row
    };
    let header = |first: &[&str], rest: &[&str]| -> Vec<Cell> {
        first
            .iter()
            .chain(rest)
            .map(|c| Cell::Text((*c).to_owned()))
            .collect()
    };
    match table {
        Table::Categories => {
            write_row(out, &header(&["category"], &FIGURE_COLUMNS))?;
            for c in &s.categories {
                write_row(
                    out,
                    &figures(c.category, lang.category(c.category), &c.figures),
                )?;
            }
            write_row(
                out,
                &figures("total", lang.words().total.to_owned(), &s.total),
            )?;
        }
        Table::Severities => {
            write_row(out, &header(&["severity"], &FIGURE_COLUMNS))?;
            for v in &s.severities {
                write_row(
                    out,
                    &figures(v.severity, lang.severity(v.severity), &v.figures),
                )?;
            }
        }
        Table::Rules => {
            write_row(out, &header(&["rule", "category"], &AGAINST_LAST_MONTH))?;
            for r in &s.top_rules {
                let row = vec![Cell::Text(r.rule.clone()), Cell::Text(r.category.clone())];
                write_row(out, &against_last_month(row, &r.counts))?;
            }
        }
        Table::Sources => {
            write_row(out, &header(&["src_ip", "this_month", "events"], &[]))?;
            for r in &s.top_sources {
                write_row(
                    out,
                    &[Cell::Text(r.src_ip.clone()), n(r.this_month), n(r.events)],
                )?;
            }
        }
        Table::Inputs => {
            write_row(out, &header(&["input"], &AGAINST_LAST_MONTH))?;
            for r in &s.inputs {
                let row = vec![r.input.clone().map_or(Cell::Empty, Cell::Text)];
                write_row(out, &against_last_month(row, &r.counts))?;
            }
        }
        Table::Agencies => {
            let mut columns: Vec<&str> = AGAINST_LAST_MONTH.to_vec();
            columns.extend(["last_heartbeat", "silent"]);
            write_row(out, &header(&["agency", "name"], &columns))?;
            for a in &s.agencies {
                let row = vec![
                    Cell::Text(a.agency.clone()),
                    a.name.clone().map_or(Cell::Empty, Cell::Text),
                ];
                let mut row = against_last_month(row, &a.counts);
                row.push(
                    a.last_heartbeat
                        .map_or(Cell::Empty, |t| Cell::Text(t.to_string())),
                );
                row.push(Cell::Text(a.silent.to_string()));
                write_row(out, &row)?;
            }
        }
        Table::Months => {
            let ids: Vec<&str> = Category::ALL.iter().map(|c| c.id()).collect();
            write_row(out, &header(&["month", "start", "end", "total"], &ids))?;
            for mf in &s.months {
                let mut row = vec![
                    Cell::Text(mf.month.to_string()),
                    Cell::Text(mf.start.to_string()),
                    Cell::Text(mf.end.to_string()),
                    n(mf.total),
                ];
                row.extend(mf.categories.iter().map(|(_, v)| n(*v)));
                write_row(out, &row)?;
            }
        }
    }
    Ok(())
}
