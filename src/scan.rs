//! `canhgac scan`: files through the same matcher and detector as the
//! daemon, without a store.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::analyze::Analyzer;
use crate::detect::{Detector, Incident};
use crate::event::Event;
use crate::input::lines::{LineChunks, LineStats};
use crate::input::sniff::sniff;
use crate::rules::{RuleSet, INPUT_TYPES};
use crate::timestamp::TimeParser;

/// Bytes read from the start of a file to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

pub struct ScanOptions {
    /// Input type for every file; `None` recognises each file's type from its first lines.
    pub input_type: Option<String>,
    pub time_zone: TimeZone,
    /// Year for year-less syslog stamps; `None` infers it from each file's modification time.
    pub year: Option<i16>,
    pub max_line: usize,
    pub max_keys: usize,
}

/// Totals over a scan.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanStats {
    pub lines: LineStats,
    pub events: u64,
    pub files: u64,
}

/// One matched line as `--events` prints it; the shape is an interface.
#[derive(Serialize)]
pub struct EventRecord<'a> {
    pub file: &'a str,
    pub line: u64,
    pub rule: &'a str,
    pub category: &'a str,
    pub severity: &'a str,
    pub time: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A file that could not be scanned; the scan goes on with the others.
#[derive(Debug)]
pub struct FileError {
    pub file: PathBuf,
    pub message: String,
}

pub struct Scanner {
    opts: ScanOptions,
    analyzer: Analyzer,
    incidents: Vec<Incident>,
    lines: LineStats,
    files: u64,
}

impl Scanner {
    pub fn new(rules: Arc<RuleSet>, opts: ScanOptions) -> Self {
        let detector = Detector::new(rules.policies(), opts.max_keys);
        Scanner {
            opts,
            analyzer: Analyzer::new(rules, detector),
            incidents: Vec::new(),
            lines: LineStats::default(),
            files: 0,
        }
    }

    /// Runs one file (`-` for standard input) through matcher and detector,
    /// calling `on_event` for every matched line.
    pub fn scan_path(
        &mut self,
        path: &Path,
        on_event: &mut dyn FnMut(&str, u64, &Event),
    ) -> Result<(), FileError> {
        let err = |message: String| FileError {
            file: path.to_owned(),
            message,
        };
        let (mut reader, reference): (Box<dyn Read>, Timestamp) = if path == Path::new("-") {
            (Box::new(io::stdin().lock()), Timestamp::now())
        } else {
            let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
            let meta = file
                .metadata()
                .map_err(|e| err(format!("cannot stat: {e}")))?;
            if meta.is_dir() {
                return Err(err("is a directory".into()));
            }
            // The last line was written no later than the file's mtime: the
            // right reference for the year of year-less syslog stamps.
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| Timestamp::try_from(t).ok())
                .unwrap_or_else(Timestamp::now);
            (Box::new(file), mtime)
        };
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        reader
            .by_ref()
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        let input_type = match &self.opts.input_type {
            Some(t) => t.clone(),
            None => sniff(&head).map(str::to_owned).ok_or_else(|| {
                err(format!(
                    "cannot tell the log format from the first lines; pass --type ({})",
                    INPUT_TYPES.join(", ")
                ))
            })?,
        };
        let mut times = TimeParser::new(self.opts.time_zone.clone(), reference);
        times.set_year(self.opts.year);
        let mut source = self.analyzer.source(&input_type, times).map_err(err)?;

        let file_name = path.display().to_string();
        let mut chunks = LineChunks::new(io::Cursor::new(head).chain(reader), self.opts.max_line);
        loop {
            let chunk = match chunks.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    return Err(err(format!(
                        "cannot read after line {}: {e}",
                        source.lines()
                    )))
                }
            };
            self.analyzer.feed(
                &mut source,
                chunk.data,
                Timestamp::now(),
                &mut |line, ev, _| on_event(&file_name, line, ev),
            );
        }
        let s = chunks.stats();
        self.lines.lines += s.lines;
        self.lines.bytes += s.bytes;
        self.lines.cut_lines += s.cut_lines;
        self.files += 1;
        self.incidents
            .extend(self.analyzer.detector_mut().take_closed());
        Ok(())
    }

    /// Closes every open incident and returns all incidents, oldest first.
    pub fn finish(mut self) -> (Vec<Incident>, ScanStats, u64) {
        let detector = self.analyzer.detector_mut();
        detector.flush();
        self.incidents.extend(detector.take_closed());
        let evicted = detector.keys_evicted();
        self.incidents
            .sort_by(|a, b| (a.first_seen, a.rule, &a.key).cmp(&(b.first_seen, b.rule, &b.key)));
        let stats = ScanStats {
            lines: self.lines,
            events: self.analyzer.events(),
            files: self.files,
        };
        (self.incidents, stats, evicted)
    }
}

impl EventRecord<'_> {
    pub fn new<'a>(rules: &'a RuleSet, file: &'a str, line: u64, ev: &Event) -> EventRecord<'a> {
        let rule = rules.rule(ev.rule);
        EventRecord {
            file,
            line,
            rule: &rule.id,
            category: rule.category.id(),
            severity: rule.severity.id(),
            time: ev.time.to_string(),
            fields: ev
                .fields
                .iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect(),
        }
    }
}

/// An incident as `scan --format json` prints it.
#[derive(Serialize)]
struct IncidentRecord<'a> {
    rule: &'a str,
    title: &'a str,
    category: &'a str,
    severity: &'a str,
    key: &'a str,
    first_seen: String,
    last_seen: String,
    events: u64,
    sample: &'a str,
    fields: serde_json::Map<String, serde_json::Value>,
}

pub fn write_incidents_json(
    out: &mut dyn Write,
    rules: &RuleSet,
    incidents: &[Incident],
) -> io::Result<()> {
    let records: Vec<IncidentRecord> = incidents
        .iter()
        .map(|i| {
            let rule = rules.rule(i.rule);
            IncidentRecord {
                rule: &rule.id,
                title: &rule.title,
                category: rule.category.id(),
                severity: rule.severity.id(),
                key: &i.key,
                first_seen: i.first_seen.to_string(),
                last_seen: i.last_seen.to_string(),
                events: i.events,
                sample: &i.sample,
                fields: i
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            }
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &records)?;
    writeln!(out)
}

/// An aligned table for a terminal. Log content is sanitised: control
/// characters (escape sequences included) never reach the terminal.
pub fn write_incidents_table(
    out: &mut dyn Write,
    rules: &RuleSet,
    incidents: &[Incident],
    tz: &TimeZone,
) -> io::Result<()> {
    const SAMPLE_WIDTH: usize = 100;
    let header = [
        "RULE",
        "CATEGORY",
        "SEVERITY",
        "KEY",
        "FIRST SEEN",
        "LAST SEEN",
        "EVENTS",
        "SAMPLE",
    ];
    let time = |t: Timestamp| {
        t.to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S%:z")
            .to_string()
    };
    let rows: Vec<[String; 8]> = incidents
        .iter()
        .map(|i| {
            let rule = rules.rule(i.rule);
            [
                rule.id.clone(),
                rule.category.id().to_owned(),
                rule.severity.id().to_owned(),
                printable(&i.key, 45),
                time(i.first_seen),
                time(i.last_seen),
                i.events.to_string(),
                printable(&i.sample, SAMPLE_WIDTH),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    let mut write_row = |out: &mut dyn Write, cells: [&str; 8]| -> io::Result<()> {
        line.clear();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Padded by hand: `{:<w$}` writes its fill a char at a time,
            // which made this table a visible part of a scan's time.
            let pad = w.saturating_sub(cell.chars().count());
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else if i == 6 {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
                line.push_str("  ");
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str("  ");
            }
        }
        out.write_all(line.trim_end().as_bytes())?;
        out.write_all(b"\n")
    };
    write_row(out, header)?;
    for row in &rows {
        write_row(out, row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// Replaces control characters with `?` and shortens to `width` characters.
pub fn printable(s: &str, width: usize) -> String {
    // The same, faster, for printable ASCII, where a char is a byte.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        if s.len() <= width {
            return s.to_owned();
        }
        let mut out = s[..width.saturating_sub(1)].to_owned();
        out.push('…');
        return out;
    }
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(width + 1)
        .collect();
    if out.chars().count() > width {
        out = out.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

/// `lines, bytes, seconds and throughput` for the last line on stderr.
pub fn summary(stats: &ScanStats, incidents: usize, evicted: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let mb = stats.lines.bytes as f64 / 1e6;
    let mut s = format!(
        "canhgac: {} files, {} lines, {} bytes in {:.3} s ({:.1} MB/s, {:.0} lines/s); {} events, {} incidents",
        stats.files,
        stats.lines.lines,
        stats.lines.bytes,
        secs,
        mb / secs,
        stats.lines.lines as f64 / secs,
        stats.events,
        incidents,
    );
    if stats.lines.cut_lines > 0 {
        s.push_str(&format!("; {} over-long lines cut", stats.lines.cut_lines));
    }
    if evicted > 0 {
        s.push_str(&format!("; {evicted} detector keys evicted"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_strips_escapes_and_shortens() {
        assert_eq!(printable("a\x1b[31mb\tc", 20), "a?[31mb?c");
        assert_eq!(printable("abcdef", 4), "abc…");
        assert_eq!(printable("abcd", 4), "abcd");
    }

    #[test]
    fn printable_ascii_shortcut_changes_nothing() {
        // The definition, char by char.
        fn reference(s: &str, width: usize) -> String {
            let mut out: String = s
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(width + 1)
                .collect();
            if out.chars().count() > width {
                out = out.chars().take(width.saturating_sub(1)).collect();
                out.push('…');
            }
            out
        }
        for s in [
            "",
            "a",
            "abcd",
            "abcde",
            "a b~",
            "ab\x7f",
            "ng\u{1b0}\u{1edd}i d\u{f9}ng",
            "x\u{a0}y",
        ] {
            for width in 0..7 {
                assert_eq!(printable(s, width), reference(s, width), "{s:?} in {width}");
            }
        }
    }
}
