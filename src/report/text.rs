//! The report's tables, shared by the terminal table, Markdown and HTML.

use std::io::{self, Write};

use super::lang::{zone_of, Lang};
use crate::output::printable;
use crate::summary::{Figures, MonthCounts, Period, Summary};

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

impl Table {
    /// A row for each item, none of them a total.
    fn each<T>(
        title: String,
        headers: Vec<(String, Align)>,
        items: &[T],
        row: impl FnMut(&T) -> Vec<String>,
    ) -> Self {
        Self {
            title,
            headers,
            rows: items.iter().map(row).collect(),
            total_row: false,
        }
    }
}

/// Columns of labels (left-aligned), then of figures (right-aligned).
pub fn headers(labels: &[&str], figures: &[&str]) -> Vec<(String, Align)> {
    let labels = labels.iter().map(|&h| (h.to_owned(), Align::Left));
    let figures = figures.iter().map(|&h| (h.to_owned(), Align::Right));
    labels.chain(figures).collect()
}

/// The report's tables, in order.
pub fn tables(s: &Summary, lang: Lang) -> Vec<Table> {
    let w = lang.words();
    let m = s.month;
    // A month in progress is compared day for day, and its headers say
    // which days.
    let tz = zone_of(s);
    let days = |p: &Period| lang.days(p.start, p.end, &tz);
    let p = &s.periods;
    let (this, previous, year_before, to_date, to_date_before) = if s.complete {
        (
            lang.month_short(m),
            lang.month_short(m.previous()),
            lang.month_short(m.year_before()),
            lang.year_to_date(m),
            lang.year_to_date(m.year_before()),
        )
    } else {
        (
            days(&p.this_month),
            days(&p.last_month),
            days(&p.same_month_last_year),
            days(&p.year_to_date),
            days(&p.same_period_last_year),
        )
    };
    let figure_headers = |first: &str| {
        headers(
            &[first],
            &[
                &this,
                &previous,
                w.change,
                &year_before,
                w.change,
                &to_date,
                &to_date_before,
                w.change,
            ],
        )
    };
    let figure_row = |label: String, f: &Figures| -> Vec<String> {
        vec![
            label,
            lang.count(f.this_month),
            lang.count(f.last_month),
            lang.change(f.this_month, f.last_month),
            lang.count(f.same_month_last_year),
            lang.change(f.this_month, f.same_month_last_year),
            lang.count(f.year_to_date),
            lang.count(f.same_period_last_year),
            lang.change(f.year_to_date, f.same_period_last_year),
        ]
    };
    let this_month = |name: &str| format!("{name} ({this})");
    let against_last_month = |mut row: Vec<String>, c: &MonthCounts| -> Vec<String> {
        row.extend([
            lang.count(c.this_month),
            lang.count(c.events),
            lang.count(c.last_month),
            lang.change(c.this_month, c.last_month),
        ]);
        row
    };

    let mut by_category = Table::each(
        w.by_category.to_owned(),
        figure_headers(w.category),
        &s.categories,
        |c| figure_row(lang.category(c.category), &c.figures),
    );
    by_category
        .rows
        .push(figure_row(w.total.to_owned(), &s.total));
    by_category.total_row = true;

    let by_severity = Table::each(
        w.by_severity.to_owned(),
        figure_headers(w.severity),
        &s.severities,
        |v| figure_row(lang.severity(v.severity), &v.figures),
    );

    let top_rules = Table::each(
        this_month(w.top_rules),
        headers(
            &[w.rule, w.category],
            &[w.incidents, w.events, &previous, w.change],
        ),
        &s.top_rules,
        |r| {
            against_last_month(
                vec![printable(&r.rule, MAX_CELL), lang.category(&r.category)],
                &r.counts,
            )
        },
    );

    let top_sources = Table::each(
        this_month(w.top_sources),
        headers(&[w.source], &[w.incidents, w.events]),
        &s.top_sources,
        |r| {
            vec![
                printable(&r.src_ip, MAX_CELL),
                lang.count(r.this_month),
                lang.count(r.events),
            ]
        },
    );

    let by_input = Table::each(
        w.by_input.to_owned(),
        headers(&[w.input], &[&this, w.events, &previous, w.change]),
        &s.inputs,
        |r| {
            let input = r
                .input
                .as_deref()
                .map_or_else(|| w.unknown_input.to_owned(), |i| printable(i, MAX_CELL));
            against_last_month(vec![input], &r.counts)
        },
    );

    let mut all = vec![by_category, by_severity, top_rules, top_sources, by_input];
    if !s.agencies.is_empty() {
        all.push(Table::each(
            w.by_agency.to_owned(),
            headers(
                &[w.agency, w.agency_name],
                &[
                    &this,
                    w.events,
                    &previous,
                    w.change,
                    w.last_heartbeat,
                    w.state,
                ],
            ),
            &s.agencies,
            |a| {
                let mut row = against_last_month(
                    vec![
                        printable(&a.agency, MAX_CELL),
                        a.name
                            .as_deref()
                            .map_or_else(String::new, |n| printable(n, MAX_CELL)),
                    ],
                    &a.counts,
                );
                row.push(
                    a.last_heartbeat
                        .map_or_else(|| w.never.to_owned(), |t| lang.time(t, &tz)),
                );
                row.push(if a.silent { w.silent } else { w.reporting }.to_owned());
                row
            },
        ));
    }
    all
}

/// The 13-month series as a table (the terminal and Markdown have no chart).
fn series_table(s: &Summary, lang: Lang, bars: bool) -> Table {
    let w = lang.words();
    let most = s.months.iter().map(|m| m.total).max().unwrap_or(0).max(1);
    let mut columns = headers(&[w.month], &[w.incidents]);
    if bars {
        columns.push((String::new(), Align::Left));
    }
    Table::each(w.series.to_owned(), columns, &s.months, |m| {
        let mut row = vec![lang.month_short(m.month), lang.count(m.total)];
        if bars {
            let n = (m.total * BAR_WIDTH).div_ceil(most);
            row.push("#".repeat(usize::try_from(n).unwrap_or(0)));
        }
        row
    })
}

/// The heading lines: title, month, zone, and whether the month is over.
pub fn heading(s: &Summary, lang: Lang) -> (String, String) {
    let w = lang.words();
    let tz = zone_of(s);
    let title = match &s.agency_name {
        Some(name) => format!("{}: {} \u{2013} {name}", w.title, lang.month_long(s.month)),
        None => format!("{}: {}", w.title, lang.month_long(s.month)),
    };
    let mut sub = lang.zone(&s.time_zone, &tz, s.as_of);
    if let Some(agency_zone) = &s.agency_time_zone {
        sub.push_str(&format!(" ({})", lang.other_zone(agency_zone)));
    }
    if !s.complete {
        sub.push_str(&format!("; {} {}", w.in_progress, lang.time(s.as_of, &tz)));
    }
    if s.false_positives > 0 {
        sub.push_str(&format!(
            "; {}",
            lang.false_positives_left_out(s.false_positives)
        ));
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
        write_aligned(out, t, lang.words().nothing)?;
    }
    Ok(())
}

/// One table aligned for a terminal, under its header and a rule; `nothing`
/// stands for no rows; a total row is set off by a second rule.
pub fn write_aligned(out: &mut dyn Write, t: &Table, nothing: &str) -> io::Result<()> {
    let none = vec![vec![nothing.to_owned()]];
    let rows = if t.rows.is_empty() { &none } else { &t.rows };
    let mut widths: Vec<usize> = t.headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut line = String::new();
        for (i, ((cell, w), (_, align))) in cells.iter().zip(&widths).zip(&t.headers).enumerate() {
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
    Ok(())
}

/// Escapes text for a Markdown table cell: no markup, no HTML, no pipes,
/// no line breaks, no control characters.
pub fn md(cell: &str) -> String {
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
        write_markdown(out, t, lang.words().nothing)?;
    }
    Ok(())
}

/// One table in Markdown, everything escaped; a total row in bold.
pub fn write_markdown(out: &mut dyn Write, t: &Table, nothing: &str) -> io::Result<()> {
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
        let mut cells = vec![md(nothing)];
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
    Ok(())
}
