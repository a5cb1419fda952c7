//! Incidents for people and programs: an aligned terminal table and JSON,
//! for `scan` (incidents straight from the detector) and `incidents`
//! (incidents from the store) alike.

use std::io::{self, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::detect::Incident;
use crate::rules::RuleSet;
use crate::store::StoredIncident;

/// One incident as printed. The JSON shape is an interface: fields are only
/// ever added. `uid`, `input` and `open` exist only for stored incidents.
#[derive(Serialize)]
pub struct IncidentView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    pub rule: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    pub category: &'a str,
    pub severity: &'a str,
    pub key: &'a str,
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: Timestamp,
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// `new`, `acknowledged`, `handled` or `false-positive`, for stored
    /// incidents whose status was looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    pub sample: &'a str,
    #[serde(serialize_with = "field_map")]
    pub fields: &'a [(String, String)],
}

impl<'a> IncidentView<'a> {
    pub fn detected(rules: &'a RuleSet, i: &'a Incident) -> Self {
        let rule = rules.rule(i.rule);
        IncidentView {
            uid: None,
            rule: &rule.id,
            title: Some(&rule.title),
            category: rule.category.id(),
            severity: rule.severity.id(),
            key: &i.key,
            first_seen: i.first_seen,
            last_seen: i.last_seen,
            events: i.events,
            input: None,
            open: None,
            status: None,
            sample: &i.sample,
            fields: &i.fields,
        }
    }

    pub fn stored(i: &'a StoredIncident) -> Self {
        let r = &i.record;
        IncidentView {
            uid: Some(&i.uid),
            rule: &r.rule,
            title: None,
            category: &r.category,
            severity: &r.severity,
            key: &r.key,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            events: r.events,
            input: r.input.as_deref(),
            open: Some(r.open),
            status: None,
            sample: &r.sample,
            fields: &r.fields,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

fn field_map<S: serde::Serializer>(fields: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(fields.iter().map(|(k, v)| (k, v)))
}

pub fn write_json(out: &mut dyn Write, incidents: &[IncidentView<'_>]) -> io::Result<()> {
    crate::visible::write_json(out, &incidents, true)
}

/// An aligned table for a terminal. Log content is sanitised: control
/// characters (escape sequences included) never reach the terminal. Stored
/// incidents get an ID column first, and STATUS where it was looked up.
pub fn write_table(
    out: &mut dyn Write,
    incidents: &[IncidentView<'_>],
    tz: &TimeZone,
) -> io::Result<()> {
    let ids = incidents.iter().any(|i| i.uid.is_some());
    let status = incidents.iter().any(|i| i.status.is_some());
    write_columns(out, incidents, Table::with_columns(tz, ids, status))
}

/// [`write_table`] of stored incidents: the ID and STATUS columns even
/// when there is no row, so the header says what a listing holds.
pub fn write_stored_table(
    out: &mut dyn Write,
    incidents: &[IncidentView<'_>],
    tz: &TimeZone,
) -> io::Result<()> {
    write_columns(out, incidents, Table::with_columns(tz, true, true))
}

fn write_columns(
    out: &mut dyn Write,
    incidents: &[IncidentView<'_>],
    mut table: Table<'_>,
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = incidents.iter().map(|i| table.row(i)).collect();
    for row in &rows {
        table.fit(row);
    }
    table.write_header(out)?;
    for row in &rows {
        table.write_row(out, row)?;
    }
    Ok(())
}

/// Stored incidents as one CSV table (RFC 4180, formulas neutralised),
/// with column names that never change: `id,rule,category,severity,key,
/// src_ip,input,first_seen,last_seen,events,status,sample`; times in
/// RFC 3339 UTC. `bom` starts it with the byte order mark Excel needs to
/// read UTF-8.
pub fn write_csv(out: &mut dyn Write, incidents: &[IncidentView<'_>], bom: bool) -> io::Result<()> {
    use crate::spreadsheet::{write_row, Cell};
    if bom {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let header = [
        "id",
        "rule",
        "category",
        "severity",
        "key",
        "src_ip",
        "input",
        "first_seen",
        "last_seen",
        "events",
        "status",
        "sample",
    ];
    write_row(out, &header.map(|h| Cell::Text(h.to_owned())))?;
    let text = |v: Option<&str>| v.map_or(Cell::Empty, |v| Cell::Text(v.to_owned()));
    for i in incidents {
        let src_ip = i
            .fields
            .iter()
            .find(|(k, _)| k == "src_ip")
            .map(|(_, v)| v.as_str());
        write_row(
            out,
            &[
                text(i.uid),
                Cell::Text(i.rule.to_owned()),
                Cell::Text(i.category.to_owned()),
                Cell::Text(i.severity.to_owned()),
                Cell::Text(i.key.to_owned()),
                text(src_ip),
                text(i.input),
                Cell::Text(i.first_seen.to_string()),
                Cell::Text(i.last_seen.to_string()),
                Cell::Number(i.events.to_string()),
                text(i.status),
                Cell::Text(i.sample.to_owned()),
            ],
        )?;
    }
    Ok(())
}

/// [`write_table`] in steps, for incidents that are not all in memory:
/// every row is fitted before the first is written.
pub struct Table<'t> {
    tz: &'t TimeZone,
    ids: bool,
    status: bool,
    header: Vec<&'static str>,
    widths: Vec<usize>,
}

const TABLE_HEADER: [&str; 8] = [
    "RULE",
    "CATEGORY",
    "SEVERITY",
    "KEY",
    "FIRST SEEN",
    "LAST SEEN",
    "EVENTS",
    "SAMPLE",
];

impl<'t> Table<'t> {
    /// The columns of incidents straight from the detector (`scan`).
    pub fn new(tz: &'t TimeZone) -> Self {
        Table::with_columns(tz, false, false)
    }

    /// With an ID column first, and a STATUS column after SEVERITY.
    pub fn with_columns(tz: &'t TimeZone, ids: bool, status: bool) -> Self {
        let mut header: Vec<&'static str> = Vec::with_capacity(TABLE_HEADER.len() + 2);
        if ids {
            header.push("ID");
        }
        for h in TABLE_HEADER {
            header.push(h);
            if h == "SEVERITY" && status {
                header.push("STATUS");
            }
        }
        let widths = header.iter().map(|h| h.chars().count()).collect();
        Table {
            tz,
            ids,
            status,
            header,
            widths,
        }
    }

    /// The cells of an incident's row.
    pub fn row(&self, i: &IncidentView<'_>) -> Vec<String> {
        const SAMPLE_WIDTH: usize = 100;
        let time = |t: Timestamp| {
            t.to_zoned(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S%:z")
                .to_string()
        };
        let mut row = Vec::with_capacity(self.header.len());
        if self.ids {
            row.push(printable(i.uid.unwrap_or("-"), 80));
        }
        row.extend([
            printable(i.rule, 60),
            i.category.to_owned(),
            i.severity.to_owned(),
        ]);
        if self.status {
            row.push(i.status.unwrap_or("new").to_owned());
        }
        row.extend([
            printable(i.key, 45),
            time(i.first_seen),
            time(i.last_seen),
            i.events.to_string(),
            printable(i.sample, SAMPLE_WIDTH),
        ]);
        row
    }

    /// Widens the columns to hold `row`.
    pub fn fit(&mut self, row: &[String]) {
        for (w, cell) in self.widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }

    pub fn write_header(&self, out: &mut dyn Write) -> io::Result<()> {
        self.write_cells(out, &self.header)
    }

    pub fn write_row(&self, out: &mut dyn Write, row: &[String]) -> io::Result<()> {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        self.write_cells(out, &cells)
    }

    fn write_cells(&self, out: &mut dyn Write, cells: &[&str]) -> io::Result<()> {
        let events_column = self.header.iter().position(|h| *h == "EVENTS");
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&self.widths).enumerate() {
            let w = *w;
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else if Some(i) == events_column {
                line.push_str(&format!("{cell:>w$}  "));
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())
    }
}

/// Shows control and invisible characters (see [`crate::visible`]) and
/// shortens to `width` characters.
pub fn printable(s: &str, width: usize) -> String {
    let mut out = crate::visible::show_prefix(s, width + 1);
    if out.chars().count() > width {
        out = out.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_strips_escapes_and_shortens() {
        assert_eq!(printable("a\x1b[31mb\tc", 30), "a<U+001B>[31mb<U+0009>c");
        assert_eq!(printable("\u{202E}nimda", 30), "<U+202E>nimda");
        assert_eq!(printable("abcdef", 4), "abc…");
        assert_eq!(printable("abcd", 4), "abcd");
    }
}
