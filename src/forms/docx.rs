//! Mẫu số 03 as a Word document (Office Open XML, `docx-rs`), the way the
//! national coordinator's forms circulate: A4, Times New Roman 13 pt, a
//! two-column table per section, the evidence in a fixed-width font. It
//! opens in Word and LibreOffice (`tests/forms.rs` converts it to PDF with
//! LibreOffice).

use std::io::Cursor;

use docx_rs::{
    AlignmentType, Docx, LineSpacing, PageMargin, Paragraph, Run, RunFonts, Table, TableCell,
    TableRow, WidthType,
};

use super::initial::InitialReport;
use super::{label, FormSet};
use crate::report::Lang;

/// A4 in twentieths of a point.
const A4: (u32, u32) = (11_906, 16_838);
/// Text width on A4 with the margins below: 210 mm − 30 mm − 20 mm.
const TEXT_WIDTH: usize = 9_071;
const LABEL_WIDTH: usize = 3_600;
/// Sizes in half-points.
const BODY: usize = 26;
const TITLE: usize = 28;
const EVIDENCE: usize = 18;

fn font(name: &str) -> RunFonts {
    RunFonts::new()
        .ascii(name)
        .hi_ansi(name)
        .cs(name)
        .east_asia(name)
}

fn text(t: &str) -> Run {
    Run::new().add_text(t)
}

/// The report as the bytes of a `.docx` file.
pub fn write(report: &InitialReport, forms: &FormSet, lang: Lang) -> Result<Vec<u8>, String> {
    let l = |key: &str| label(&forms.initial.labels, key, lang).to_owned();
    let mut doc = Docx::new()
        .page_size(A4.0, A4.1)
        .page_margin(
            PageMargin::new()
                .top(1_134)
                .bottom(1_134)
                .left(1_701)
                .right(1_134),
        )
        .default_fonts(font("Times New Roman"))
        .default_size(BODY)
        .add_paragraph(
            Paragraph::new()
                .align(AlignmentType::Right)
                .add_run(text(&format!("{} \u{2013} {}", report.form, report.circular)).italic()),
        )
        .add_paragraph(
            Paragraph::new()
                .align(AlignmentType::Center)
                .add_run(text(&report.title).bold().size(TITLE)),
        )
        .add_paragraph(
            Paragraph::new()
                .add_run(text(&format!("{}: ", l("recipient"))).bold())
                .add_run(text(&report.recipients.join("; "))),
        )
        .add_paragraph(
            Paragraph::new()
                .add_run(text(&format!("{}: ", l("subject"))).bold())
                .add_run(text(&report.subject)),
        );
    for section in &report.sections {
        if section.key == "closing" {
            doc = evidence(doc, report, forms, lang);
        }
        doc = doc.add_paragraph(heading(&section.title));
        let rows = section
            .rows
            .iter()
            .map(|row| {
                let value = row.value.clone().unwrap_or_else(|| l("not_given"));
                let value_run = if row.value.is_none() {
                    text(&value).italic()
                } else {
                    text(&value)
                };
                TableRow::new(vec![
                    TableCell::new()
                        .width(LABEL_WIDTH, WidthType::Dxa)
                        .add_paragraph(Paragraph::new().add_run(text(&row.label))),
                    TableCell::new()
                        .width(TEXT_WIDTH - LABEL_WIDTH, WidthType::Dxa)
                        .add_paragraph(Paragraph::new().add_run(value_run)),
                ])
            })
            .collect();
        doc = doc.add_table(
            Table::new(rows)
                .width(TEXT_WIDTH, WidthType::Dxa)
                .set_grid(vec![LABEL_WIDTH, TEXT_WIDTH - LABEL_WIDTH]),
        );
    }
    doc = doc.add_paragraph(
        Paragraph::new()
            .align(AlignmentType::Right)
            .add_run(text(&report.signature).italic()),
    );
    let mut out = Cursor::new(Vec::new());
    doc.pack(&mut out)
        .map_err(|e| format!("cannot write the .docx: {e}"))?;
    Ok(out.into_inner())
}

/// The evidence section: its heading and the lines in a fixed-width font.
fn evidence(mut doc: Docx, report: &InitialReport, forms: &FormSet, lang: Lang) -> Docx {
    doc = doc.add_paragraph(heading(label(&forms.initial.sections, "evidence", lang)));
    for line in &report.evidence {
        doc = doc.add_paragraph(
            Paragraph::new().add_run(text(line).fonts(font("Courier New")).size(EVIDENCE)),
        );
    }
    doc
}

/// A section's heading: bold, space above, kept with what follows.
fn heading(title: &str) -> Paragraph {
    Paragraph::new()
        .keep_next(true)
        .line_spacing(LineSpacing::new().before(240).after(60))
        .add_run(text(title).bold())
}
