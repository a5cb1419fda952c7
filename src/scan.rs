//! `canhgac scan`: files through the same matcher and detector as the
//! daemon, without a store.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::analyze::Analyzer;
use crate::detect::Detector;
use crate::event::Event;
use crate::input::lines::{LineChunks, LineStats};
use crate::input::shape::BadLine;
use crate::input::sniff::sniff;
use crate::network::Network;
use crate::rules::{RuleSet, INPUT_TYPES};
use crate::timestamp::TimeParser;

mod incidents;
pub use incidents::Incidents;

/// Bytes read from the start of a file to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// How files are read and analysed, by `scan` and by `import` alike.
pub struct ReadOptions {
    /// Input type for every file; `None` recognises each file's type from
    /// its first lines (`import`: the matching configured input's first).
    pub input_type: Option<String>,
    pub time_zone: TimeZone,
    /// Year for year-less syslog stamps; `None` infers it from each file's modification time.
    pub year: Option<i16>,
    /// Bytes of a line at most; the rest is skipped and counted.
    pub max_line: usize,
    /// Keys the detector tracks at most (see [`crate::detect`]).
    pub max_keys: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see [`crate::client`]).
    pub trusted_proxies: Vec<Network>,
}

pub struct ScanOptions {
    pub read: ReadOptions,
    /// Whether the incidents are wanted at the end (not with `--events`):
    /// if not, they are only counted.
    pub keep_incidents: bool,
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
    incidents: Incidents,
    lines: LineStats,
    files: u64,
    /// Files whose lines are not of their type, said as `FILE:LINE:COL: message`.
    warnings: Vec<String>,
}

impl Scanner {
    pub fn new(rules: Arc<RuleSet>, opts: ScanOptions) -> Self {
        let detector = Detector::new(rules.policies(), opts.read.max_keys);
        let mut analyzer = Analyzer::new(rules, detector);
        analyzer.set_trusted_proxies(opts.read.trusted_proxies.clone());
        let incidents = Incidents::new(opts.keep_incidents);
        Scanner {
            opts,
            analyzer,
            incidents,
            lines: LineStats::default(),
            files: 0,
            warnings: Vec::new(),
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
        let input_type = match &self.opts.read.input_type {
            Some(t) => t.clone(),
            None => sniff(&head).map(str::to_owned).ok_or_else(|| {
                err(format!(
                    "cannot tell the log format from the first lines; pass --type ({})",
                    INPUT_TYPES.join(", ")
                ))
            })?,
        };
        let mut times = TimeParser::new(self.opts.read.time_zone.clone(), reference);
        times.set_year(self.opts.read.year);
        let mut source = self.analyzer.source(&input_type, times).map_err(err)?;

        let file_name = path.display().to_string();
        let mut chunks =
            LineChunks::new(io::Cursor::new(head).chain(reader), self.opts.read.max_line);
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
            // As they close: a flood from many addresses closes an incident
            // for each, and the detector would hold them to the file's end.
            self.incidents
                .add(self.analyzer.detector_mut().take_closed());
        }
        let s = chunks.stats();
        self.lines.lines += s.lines;
        self.lines.bytes += s.bytes;
        self.lines.cut_lines += s.cut_lines;
        self.files += 1;
        if let Some(bad) = source.first_bad() {
            self.warnings.push(unrecognised_warning(
                &file_name,
                &input_type,
                source.unrecognised(),
                bad,
            ));
        }
        self.incidents
            .add(self.analyzer.detector_mut().take_closed());
        Ok(())
    }

    /// Warnings about the files scanned since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Closes every open incident and returns all incidents.
    pub fn finish(mut self) -> (Incidents, ScanStats, u64) {
        let detector = self.analyzer.detector_mut();
        detector.flush();
        let closed = detector.take_closed();
        let evicted = detector.keys_evicted();
        self.incidents.add(closed);
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

/// `FILE:LINE:COL: message` for a file whose lines are not of its type.
pub fn unrecognised_warning(file: &str, input_type: &str, count: u64, bad: &BadLine) -> String {
    format!(
        "{file}:{}:1: not a {input_type} line, so no {input_type} rule can match it ({count} such line(s) among those checked; is the type right?): {:?}",
        bad.line, bad.excerpt
    )
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
