//! CSV for spreadsheets (RFC 4180): quoting, and text that a spreadsheet
//! would run as a formula neutralised. Number cells are written by canhgac
//! itself, never copied from logs, and stay numbers (a negative change
//! starts with `-`).

use std::io::{self, Write};

pub enum Cell {
    Text(String),
    Number(String),
    Empty,
}

pub fn write_row(out: &mut dyn Write, cells: &[Cell]) -> io::Result<()> {
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
pub fn quote(field: &str) -> std::borrow::Cow<'_, str> {
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
