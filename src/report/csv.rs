//! The report as one CSV table (RFC 4180) for spreadsheets.
//!
//! One header and one row per figure line, `section` saying what the row
//! is (`total`, `category`, `severity`, `rule`, `source`, `input`,
//! `month`), so a spreadsheet can filter it; columns a section has no
//! figure for are empty. Counts are plain integers and changes are
//! percentages with two decimals in the language's decimal separator
//! (11.07 / 11,07; a change from zero is "new" / "mới"), so a spreadsheet in
//! that locale reads them as numbers.
//!
//! Formula injection: a text cell starting with `=`, `+`, `-`, `@`, TAB or
//! CR is prefixed with `'`, which spreadsheets show as text. Number cells
//! are written by canhgac itself, never copied from logs, and are left as
//! numbers (a negative change starts with `-` and must stay a number).

use std::io::{self, Write};

use super::lang::Lang;
use crate::summary::{Figures, MonthCounts, Summary};

pub fn write(out: &mut dyn Write, s: &Summary, lang: Lang) -> io::Result<()> {
    let w = lang.words();
    let m = s.month;
    let pct = |label: String| format!("{label} (%)");
    let header = [
        w.section.to_owned(),
        w.id.to_owned(),
        w.label.to_owned(),
        lang.month_short(m),
        lang.month_short(m.previous()),
        pct(format!("{} / {}", w.change, lang.month_short(m.previous()))),
        lang.month_short(m.year_before()),
        pct(format!(
            "{} / {}",
            w.change,
            lang.month_short(m.year_before())
        )),
        lang.year_to_date(m),
        lang.year_to_date(m.year_before()),
        pct(format!(
            "{} / {}",
            w.change,
            lang.year_to_date(m.year_before())
        )),
        w.events.to_owned(),
    ];
    write_row(out, &header.map(Cell::Text))?;

    let change = |ratio: Option<f64>, current: u64| -> Cell {
        match ratio {
            Some(r) => {
                let text = format!("{:.2}", r * 100.0);
                // "-0.00" says nothing a plain zero does not.
                let text = if text == "-0.00" { "0.00".into() } else { text };
                Cell::Number(match lang {
                    Lang::En => text,
                    Lang::Vi => text.replace('.', ","),
                })
            }
            None if current > 0 => Cell::Text(lang.change(None, current)),
            None => Cell::Empty,
        }
    };
    let n = |v: u64| Cell::Number(v.to_string());
    let figures = |section: &str, id: &str, label: String, f: &Figures| -> [Cell; 12] {
        [
            Cell::Text(section.to_owned()),
            Cell::Text(id.to_owned()),
            Cell::Text(label),
            n(f.this_month),
            n(f.last_month),
            change(f.change.month_over_month, f.this_month),
            n(f.same_month_last_year),
            change(f.change.year_over_year, f.this_month),
            n(f.year_to_date),
            n(f.same_period_last_year),
            change(f.change.year_to_date, f.year_to_date),
            Cell::Empty,
        ]
    };
    write_row(
        out,
        &figures("total", "total", w.total.to_owned(), &s.total),
    )?;
    for c in &s.categories {
        write_row(
            out,
            &figures(
                "category",
                c.category,
                lang.category(c.category),
                &c.figures,
            ),
        )?;
    }
    for v in &s.severities {
        write_row(
            out,
            &figures(
                "severity",
                v.severity,
                lang.severity(v.severity),
                &v.figures,
            ),
        )?;
    }
    let against_last_month = |row: &mut [Cell; 12], c: &MonthCounts| {
        row[3] = n(c.this_month);
        row[4] = n(c.last_month);
        row[5] = change(c.change.month_over_month, c.this_month);
        row[11] = n(c.events);
    };
    for r in &s.top_rules {
        let mut row = item_row("rule", Cell::Text(r.rule.clone()));
        row[2] = Cell::Text(lang.category(&r.category));
        against_last_month(&mut row, &r.counts);
        write_row(out, &row)?;
    }
    for r in &s.top_sources {
        let mut row = item_row("source", Cell::Text(r.src_ip.clone()));
        row[3] = n(r.this_month);
        row[11] = n(r.events);
        write_row(out, &row)?;
    }
    for r in &s.inputs {
        let mut row = item_row("input", r.input.clone().map_or(Cell::Empty, Cell::Text));
        if r.input.is_none() {
            row[2] = Cell::Text(w.unknown_input.to_owned());
        }
        against_last_month(&mut row, &r.counts);
        write_row(out, &row)?;
    }
    for mf in &s.months {
        let mut row = item_row("month", Cell::Text(mf.month.to_string()));
        row[2] = Cell::Text(lang.month_short(mf.month));
        row[3] = n(mf.total);
        write_row(out, &row)?;
    }
    Ok(())
}

enum Cell {
    Text(String),
    Number(String),
    Empty,
}

/// The row of `section` for the item `id`, its figures left to fill in.
fn item_row(section: &str, id: Cell) -> [Cell; 12] {
    let mut row = std::array::from_fn(|_| Cell::Empty);
    row[0] = Cell::Text(section.into());
    row[1] = id;
    row
}

fn write_row(out: &mut dyn Write, cells: &[Cell]) -> io::Result<()> {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match cell {
            Cell::Text(t) => line.push_str(&quote(&neutralise(&crate::visible::show(t)))),
            Cell::Number(t) => line.push_str(&quote(t)),
            Cell::Empty => {}
        }
    }
    // RFC 4180: records end in CRLF.
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

/// Prefixes `'` to text a spreadsheet would evaluate as a formula.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// Quotes a field when RFC 4180 requires it: it holds a comma, a quote, CR
/// or LF (or leading/trailing spaces, which some readers would trim).
fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    let needs =
        field.contains([',', '"', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_fields_quoted() {
        for bad in ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("203.0.113.5"), "203.0.113.5");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(quote("plain"), "plain");
        let mut out = Vec::new();
        write_row(
            &mut out,
            &[
                Cell::Text("=HYPERLINK(\"x\")".into()),
                Cell::Number("-7.82".into()),
                Cell::Empty,
                Cell::Number("11,07".into()),
            ],
        )
        .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "\"'=HYPERLINK(\"\"x\"\")\",-7.82,,\"11,07\"\r\n"
        );
    }
}
