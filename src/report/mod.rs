//! `canhgac report`: the monthly summary ([`crate::summary`], the document
//! the API serves) rendered for people: an aligned terminal table, CSV for
//! spreadsheets, Markdown, and a self-contained HTML page with a chart.
//! JSON is the document itself.
//!
//! Everything that came from logs (source addresses, input names; rule ids
//! are ours but are treated the same way) is made safe for the format it
//! lands in: control characters never reach a terminal, Markdown and HTML
//! are escaped, and CSV text cells a spreadsheet would read as a formula are
//! neutralised.

mod csv;
mod html;
mod lang;
mod text;

use std::io::{self, Write};

use crate::summary::Summary;

pub use csv::Table as CsvTable;
pub use html::{esc as escape_html, table_html};
pub use lang::Lang;
pub use text::{headers, md as escape_markdown, write_aligned, write_markdown, Align, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    /// One of the CSV tables, with or without the UTF-8 byte order mark.
    Csv {
        table: CsvTable,
        bom: bool,
    },
    Markdown,
    Html,
}

/// Writes `summary` in `format` and `lang` (JSON is the same in every
/// language: the labels it carries are ids plus `label_vi`).
pub fn render(
    out: &mut dyn Write,
    summary: &Summary,
    format: Format,
    lang: Lang,
) -> io::Result<()> {
    match format {
        Format::Json => crate::visible::write_json(out, summary, true),
        Format::Table => text::table(out, summary, lang),
        Format::Markdown => text::markdown(out, summary, lang),
        Format::Csv { table, bom } => csv::write(out, summary, lang, table, bom),
        Format::Html => html::write(out, summary, lang),
    }
}
