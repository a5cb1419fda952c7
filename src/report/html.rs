//! The report as one self-contained HTML page: no external asset (styles
//! inline, the chart an inline SVG), every text escaped, laid out to print
//! on A4.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::lang::{zone_of, Lang};
use super::text::{heading, tables, Align, Table};
use crate::category::Category;
use crate::summary::Summary;

/// One colour per category, in taxonomy order; all dark enough to read on
/// white and on paper.
const PALETTE: [&str; 9] = [
    "#d62728", "#9467bd", "#8c2d04", "#1f77b4", "#ff7f0e", "#2ca02c", "#e377c2", "#7f7f7f",
    "#bcbd22",
];

/// The chart's x axis. A colour no bar uses, so the chart can be found in a
/// screenshot (tests/report.rs does).
pub const AXIS_COLOUR: &str = "#112233";

const STYLE: &str = "
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: 'DejaVu Sans', 'Noto Sans', 'Liberation Sans', Arial, sans-serif;
       font-size: 10pt; color: #111; background: #fff; margin: 0 auto; max-width: 186mm;
       padding: 8mm 0; }
h1 { font-size: 16pt; margin: 0 0 1mm; }
h2 { font-size: 11.5pt; margin: 5mm 0 1.5mm; }
.sub { color: #555; margin: 0 0 3mm; }
.bulletin { font-size: 11pt; line-height: 1.45; border-left: 3px solid #1f5fa8;
            padding: 1mm 0 1mm 3mm; margin: 0 0 3mm; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th, td { border-bottom: 1px solid #d0d0d0; padding: 0.8mm 1.4mm; vertical-align: top; }
th { background: #eef2f7; text-align: left; font-weight: 600; }
.r { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; border-top: 1.5px solid #333; }
td.none { color: #777; font-style: italic; }
.block { break-inside: avoid; page-break-inside: avoid; }
svg { width: 100%; height: auto; display: block; }
footer { color: #777; font-size: 8pt; margin-top: 5mm; }
@media print {
  body { padding: 0; max-width: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
";

pub fn write(out: &mut dyn Write, s: &Summary, lang: Lang) -> io::Result<()> {
    let mut h = String::with_capacity(32 * 1024);
    let (title, sub) = heading(s, lang);
    let w = lang.words();
    // Writing into a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{}</h1>\n<p class=\"sub\">{}</p>\n<p class=\"bulletin\">{}</p>\n",
        lang.code(),
        esc(&title),
        esc(&title),
        esc(&sub),
        esc(&lang.sentence(s, &zone_of(s)))
    );
    let _ = write!(
        h,
        "<div class=\"block\">\n<h2>{}</h2>\n{}</div>\n",
        esc(w.series),
        chart(s, lang)
    );
    for t in tables(s, lang) {
        let _ = write!(h, "<div class=\"block\">\n<h2>{}</h2>\n", esc(&t.title));
        table_html(&mut h, &t, w.nothing);
        h.push_str("</div>\n");
    }
    let _ = write!(
        h,
        "<footer>{} {}</footer>\n</body>\n</html>\n",
        esc(w.generated),
        esc(&lang.time(s.as_of, &zone_of(s)))
    );
    out.write_all(h.as_bytes())
}

/// One table as HTML, everything escaped; a total row of class `total`.
pub fn table_html(h: &mut String, t: &Table, nothing: &str) {
    h.push_str("<table>\n<thead><tr>");
    for (head, align) in &t.headers {
        let _ = write!(h, "<th{}>{}</th>", class(*align), esc(head));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    if t.rows.is_empty() {
        let _ = writeln!(
            h,
            "<tr><td class=\"none\" colspan=\"{}\">{}</td></tr>",
            t.headers.len(),
            esc(nothing)
        );
    }
    for (i, row) in t.rows.iter().enumerate() {
        let total = t.total_row && i + 1 == t.rows.len();
        h.push_str(if total {
            "<tr class=\"total\">"
        } else {
            "<tr>"
        });
        for (cell, (_, align)) in row.iter().zip(&t.headers) {
            let _ = write!(h, "<td{}>{}</td>", class(*align), esc(cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

fn class(align: Align) -> &'static str {
    match align {
        Align::Left => "",
        Align::Right => " class=\"r\"",
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if crate::visible::is_hidden(c) => {
                out.push_str(&format!("&lt;U+{:04X}&gt;", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Stacked bars, one per month of the series, one colour per category,
/// with the month's total above each bar and a legend below.
fn chart(s: &Summary, lang: Lang) -> String {
    const W: f64 = 700.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 22.0;
    const PLOT: f64 = 210.0;
    let months = &s.months;
    let most = months.iter().map(|m| m.total).max().unwrap_or(0);
    let step = nice_step(most);
    let top = (most.div_ceil(step).max(1) * step) as f64;
    let slot = (W - LEFT - RIGHT) / months.len().max(1) as f64;
    let bar = (slot * 0.62).round();
    let base = TOP + PLOT;
    let used: Vec<usize> = (0..Category::ALL.len())
        .filter(|&i| {
            months
                .iter()
                .any(|m| m.categories.get(i).is_some_and(|c| c.1 > 0))
        })
        .collect();
    let legend_rows = used.len().div_ceil(3).max(1);
    let height = base + 30.0 + 18.0 * legend_rows as f64 + 6.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height}\" \
         role=\"img\" aria-label=\"{}\" font-size=\"11\" \
         font-family=\"DejaVu Sans, Noto Sans, Arial, sans-serif\">",
        esc(lang.words().series)
    );
    // Grid and y labels.
    let mut v = 0;
    while v as f64 <= top {
        let y = (base - v as f64 / top * PLOT).round();
        if v > 0 {
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#e6e6e6\" shape-rendering=\"crispEdges\"/>",
                W - RIGHT
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            esc(&lang.count(v))
        );
        v += step;
    }
    for (i, m) in months.iter().enumerate() {
        let x = (LEFT + i as f64 * slot + (slot - bar) / 2.0).round();
        let mut y = base;
        for (ci, (id, n)) in m.categories.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let h = *n as f64 / top * PLOT;
            let y0 = (y - h).round();
            let _ = writeln!(
                svg,
                "<rect x=\"{x}\" y=\"{y0}\" width=\"{bar}\" height=\"{}\" fill=\"{}\" \
                 shape-rendering=\"crispEdges\"><title>{}: {} {}</title></rect>",
                (y.round() - y0).max(1.0),
                PALETTE[ci % PALETTE.len()],
                esc(&lang.month_short(m.month)),
                esc(&lang.category(id)),
                esc(&lang.count(*n))
            );
            y -= h;
        }
        let cx = x + bar / 2.0;
        if m.total > 0 {
            let _ = writeln!(
                svg,
                "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#222\">{}</text>",
                (y - 5.0).round(),
                esc(&lang.count(m.total))
            );
        }
        let (line1, line2) = match lang {
            Lang::En => {
                let label = lang.month_short(m.month);
                let (mon, year) = label.split_once(' ').unwrap_or((&label, ""));
                (mon.to_owned(), year.to_owned())
            }
            Lang::Vi => (format!("T{}", m.month.month), m.month.year.to_string()),
        };
        let _ = writeln!(
            svg,
            "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>\
             <text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"9\">{}</text>",
            base + 14.0,
            esc(&line1),
            base + 25.0,
            esc(&line2)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"{AXIS_COLOUR}\" \
         stroke-width=\"2\" shape-rendering=\"crispEdges\"/>",
        W - RIGHT
    );
    for (k, &ci) in used.iter().enumerate() {
        let x = LEFT + (k % 3) as f64 * 215.0;
        let y = base + 38.0 + (k / 3) as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"11\" height=\"11\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text>",
            y - 10.0,
            PALETTE[ci],
            x + 16.0,
            y,
            esc(&lang.category(Category::ALL[ci].id()))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round step for the y axis: about five gridlines up to `most`.
fn nice_step(most: u64) -> u64 {
    let raw = (most / 5).max(1);
    let mut magnitude = 1;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    for f in [1, 2, 5, 10] {
        if f * magnitude >= raw {
            return f * magnitude;
        }
    }
    10 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\"\u{1b}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;&lt;U+001B&gt;"
        );
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(582), 200);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(12_345), 5000);
    }
}
