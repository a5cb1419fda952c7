//! The report's tables, shared by the terminal table, Markdown and HTML.

use std::io::{self, Write};

use super::lang::{zone_of, Lang};
use crate::output::printable;
use crate::summary::{Figures, Summary};

/// Longest cell from the store shown in a table (addresses, rule ids,
/// input names are far shorter; anything longer is not worth a column).
const MAX_CELL: usize = 60;

/// Width of the bar of the 13-month series in the terminal table.
const BAR_WIDTH: u64 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    pub title: String,
    pub headers: Vec<(String, Align)>,
    pub rows: Vec<Vec<String>>,
    /// The last row is a total (printed bold where the format can).
    pub total_row: bool,
}

/// The report's tables, in order.
pub fn tables(s: &Summary, lang: Lang) -> Vec<Table> {
    let w = lang.words();
    let m = s.month;
    let figure_headers = |first: &str| -> Vec<(String, Align)> {
        vec![
            (first.to_owned(), Align::Left),
            (lang.month_short(m), Align::Right),
            (lang.month_short(m.previous()), Align::Right),
            (w.change.to_owned(), Align::Right),
            (lang.month_short(m.year_before()), Align::Right),
            (w.change.to_owned(), Align::Right),
            (lang.year_to_date(m), Align::Right),
            (lang.year_to_date(m.year_before()), Align::Right),
            (w.change.to_owned(), Align::Right),
        ]
    };
    let figure_row = |label: String, f: &Figures| -> Vec<String> {
        vec![
            label,
            lang.count(f.this_month),
            lang.count(f.last_month),
            lang.change(f.change.month_over_month, f.this_month),
            lang.count(f.same_month_last_year),
            lang.change(f.change.year_over_year, f.this_month),
            lang.count(f.year_to_date),
            lang.count(f.same_period_last_year),
            lang.change(f.change.year_to_date, f.year_to_date),
        ]
    };
    let mut out = Vec::new();

    let mut rows: Vec<Vec<String>> = s
        .categories
        .iter()
        .map(|c| figure_row(lang.category(c.category), &c.figures))
        .collect();
    rows.push(figure_row(w.total.to_owned(), &s.total));
    out.push(Table {
        title: w.by_category.to_owned(),
        headers: figure_headers(w.category),
        rows,
        total_row: true,
    });

    out.push(Table {
        title: w.by_severity.to_owned(),
        headers: figure_headers(w.severity),
        rows: s
            .severities
            .iter()
            .map(|v| figure_row(lang.severity(v.severity), &v.figures))
            .collect(),
        total_row: false,
    });

    out.push(Table {
        title: format!("{} ({})", w.top_rules, lang.month_short(m)),
        headers: vec![
            (w.rule.to_owned(), Align::Left),
            (w.category.to_owned(), Align::Left),
            (w.incidents.to_owned(), Align::Right),
            (w.events.to_owned(), Align::Right),
            (lang.month_short(m.previous()), Align::Right),
            (w.change.to_owned(), Align::Right),
        ],
        rows: s
            .top_rules
            .iter()
            .map(|r| {
                vec![
                    printable(&r.rule, MAX_CELL),
                    lang.category(&r.category),
                    lang.count(r.this_month),
                    lang.count(r.events),
                    lang.count(r.last_month),
                    lang.change(r.change.month_over_month, r.this_month),
                ]
            })
            .collect(),
        total_row: false,
    });

    out.push(Table {
        title: format!("{} ({})", w.top_sources, lang.month_short(m)),
        headers: vec![
            (w.source.to_owned(), Align::Left),
            (w.incidents.to_owned(), Align::Right),
            (w.events.to_owned(), Align::Right),
        ],
        rows: s
            .top_sources
            .iter()
            .map(|r| {
                vec![
                    printable(&r.src_ip, MAX_CELL),
                    lang.count(r.this_month),
                    lang.count(r.events),
                ]
            })
            .collect(),
        total_row: false,
    });

    out.push(Table {
        title: w.by_input.to_owned(),
        headers: vec![
            (w.input.to_owned(), Align::Left),
            (lang.month_short(m), Align::Right),
            (w.events.to_owned(), Align::Right),
            (lang.month_short(m.previous()), Align::Right),
            (w.change.to_owned(), Align::Right),
        ],
        rows: s
            .inputs
            .iter()
            .map(|r| {
                vec![
                    r.input
                        .as_deref()
                        .map_or_else(|| w.unknown_input.to_owned(), |i| printable(i, MAX_CELL)),
                    lang.count(r.this_month),
                    lang.count(r.events),
                    lang.count(r.last_month),
                    lang.change(r.change.month_over_month, r.this_month),
                ]
            })
            .collect(),
        total_row: false,
    });
    out
}

/// The 13-month series as a table (the terminal and Markdown have no chart).
fn series_table(s: &Summary, lang: Lang, bars: bool) -> Table {
    let w = lang.words();
    let most = s.months.iter().map(|m| m.total).max().unwrap_or(0).max(1);
    let mut headers = vec![
        (w.month.to_owned(), Align::Left),
        (w.incidents.to_owned(), Align::Right),
    ];
    if bars {
        headers.push((String::new(), Align::Left));
    }
    Table {
        title: w.series.to_owned(),
        headers,
        rows: s
            .months
            .iter()
            .map(|m| {
                let mut row = vec![lang.month_short(m.month), lang.count(m.total)];
                if bars {
                    let n = (m.total * BAR_WIDTH).div_ceil(most);
                    row.push("#".repeat(usize::try_from(n).unwrap_or(0)));
                }
                row
            })
            .collect(),
        total_row: false,
    }
}

/// The heading lines: title, month, zone, and whether the month is over.
pub fn heading(s: &Summary, lang: Lang) -> (String, String) {
    let w = lang.words();
    let tz = zone_of(s);
    let title = format!("{}: {}", w.title, lang.month_long(s.month));
    let mut sub = format!("{} {}", w.time_zone, s.time_zone);
    if !s.complete {
        sub.push_str(&format!("; {} {}", w.in_progress, lang.time(s.as_of, &tz)));
    }
    (title, sub)
}

pub fn table(out: &mut dyn Write, s: &Summary, lang: Lang) -> io::Result<()> {
    let (title, sub) = heading(s, lang);
    writeln!(out, "{title}")?;
    writeln!(out, "({sub})")?;
    writeln!(out)?;
    writeln!(out, "{}", lang.sentence(s, &zone_of(s)))?;
    let mut all = tables(s, lang);
    all.push(series_table(s, lang, true));
    for t in &all {
        writeln!(out)?;
        writeln!(out, "{}", t.title)?;
        let none = vec![vec![lang.words().nothing.to_owned()]];
        let rows = if t.rows.is_empty() { &none } else { &t.rows };
        let mut widths: Vec<usize> = t.headers.iter().map(|(h, _)| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut line = String::new();
            for (i, ((cell, w), (_, align))) in
                cells.iter().zip(&widths).zip(&t.headers).enumerate()
            {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            line.trim_end().to_owned()
        };
        let headers: Vec<String> = t.headers.iter().map(|(h, _)| h.clone()).collect();
        writeln!(out, "{}", line(&headers))?;
        let rule_width = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        writeln!(out, "{}", "-".repeat(rule_width))?;
        for (i, row) in rows.iter().enumerate() {
            if t.total_row && i + 1 == rows.len() {
                writeln!(out, "{}", "-".repeat(rule_width))?;
            }
            writeln!(out, "{}", line(row))?;
        }
    }
    Ok(())
}

/// Escapes text for a Markdown table cell: no markup, no HTML, no pipes,
/// no line breaks, no control characters.
fn md(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    for c in cell.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn markdown(out: &mut dyn Write, s: &Summary, lang: Lang) -> io::Result<()> {
    let (title, sub) = heading(s, lang);
    writeln!(out, "# {}", md(&title))?;
    writeln!(out)?;
    writeln!(out, "_{}_", md(&sub))?;
    writeln!(out)?;
    writeln!(out, "{}", md(&lang.sentence(s, &zone_of(s))))?;
    let mut all = tables(s, lang);
    all.push(series_table(s, lang, false));
    for t in &all {
        writeln!(out)?;
        writeln!(out, "## {}", md(&t.title))?;
        writeln!(out)?;
        let headers: Vec<String> = t.headers.iter().map(|(h, _)| md(h)).collect();
        writeln!(out, "| {} |", headers.join(" | "))?;
        let rule: Vec<&str> = t
            .headers
            .iter()
            .map(|(_, a)| match a {
                Align::Left => ":---",
                Align::Right => "---:",
            })
            .collect();
        writeln!(out, "|{}|", rule.join("|"))?;
        if t.rows.is_empty() {
            let mut cells = vec![md(lang.words().nothing)];
            cells.resize(t.headers.len(), String::new());
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
        for (i, row) in t.rows.iter().enumerate() {
            let bold = t.total_row && i + 1 == t.rows.len();
            let cells: Vec<String> = row
                .iter()
                .map(|c| {
                    if bold {
                        format!("**{}**", md(c))
                    } else {
                        md(c)
                    }
                })
                .collect();
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
    }
    Ok(())
}
