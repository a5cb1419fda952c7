//! `canhgac import`: historical logs (plain, or gzip-compressed as logrotate
//! leaves them) through the same analysis as `scan` and the daemon, into
//! the store.
//!
//! # Time
//!
//! Every incident takes its times from the lines, in the configured zone.
//! Classic syslog stamps carry no year: it is inferred as `scan` does, from
//! the file's modification time (the last line was written no later than
//! that; a rotated and compressed file's mtime is its rotation, later
//! still), or forced with `--year`. A line with no time at all gets the
//! file's mtime rather than the wall clock: an old line counted in the
//! current month would be wrong by months, at the mtime it is wrong by at
//! most the file's span.
//!
//! # One file, one transaction
//!
//! Each file is analysed by a fresh detector and its incidents are stored,
//! together with the record of the import, in one short `IMMEDIATE`
//! transaction once the whole file is read: a file that fails half-way
//! (a corrupt gzip stream, a read error) stores nothing, and the daemon,
//! which may be running on the same store, waits for the lock at most that
//! one transaction (its busy timeout is 5 s; an import of 100,000 incidents
//! commits in well under a second). The price is that a burst spanning two
//! files (a rotation at the wrong moment) is judged in each file apart: it
//! may count as two incidents, or stay below its threshold in both.
//!
//! Imported incidents are closed, and stored under ids the daemon never uses
//! (see [`Store::import`]), so they never collide with or overwrite the
//! daemon's rows.
//!
//! # Counting nothing twice
//!
//! A file's identity is the SHA-256 of its content after decompression,
//! recorded in the `imports` table in the transaction that stores its
//! incidents. Importing the same file again, under any name, or its
//! compressed copy (`auth.log.1` imported, then `auth.log.2.gz` after the
//! next rotation), stores nothing and says so. Two imports racing on the
//! same file cannot both store it: the second finds the first's record under
//! the write lock. Before analysing a file whose decompressed size equals
//! that of an earlier import, its digest is computed first, so re-running an
//! import over a whole directory costs a read, not an analysis, per file.
//!
//! Not deduplicated: files that overlap without being equal. A live
//! `auth.log` imported today and imported again as `auth.log.1` after
//! rotation (the same lines plus the rest of the day) counts the shared
//! lines twice, as does importing a file the daemon has tailed. Import
//! rotated files only, those the daemon never read (it starts at the end of
//! files present at its first start).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::analyze::Analyzer;
use crate::config::{InputConfig, SourceConfig};
use crate::detect::Detector;
use crate::input::lines::LineChunks;
use crate::input::sniff::sniff;
use crate::rules::{RuleSet, INPUT_TYPES};
use crate::scan::ReadOptions;
use crate::store::{ImportFile, ImportOutcome, ImportRecord, IncidentRecord, Store, StoreError};
use crate::timestamp::{TimeParser, YearPlan, YearPlanner};

/// Bytes read from the start of a file to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Share of control bytes in a file's first bytes above which it is taken
/// for binary data rather than a log. Logs after a crash may hold a run of
/// NUL bytes where the filesystem lost a block; that alone is not binary.
const BINARY_SHARE: f64 = 0.3;

/// How long an import waits for the daemon's transaction to end.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct ImportOptions {
    pub read: ReadOptions,
    /// Input name recorded with the incidents; `None`: the configured input
    /// whose path matches the file (rotation suffixes removed).
    pub input: Option<String>,
}

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
pub enum FileOutcome {
    Imported(FileSummary),
    /// The same content was imported before (under this or another name).
    AlreadyImported(ImportRecord),
}

#[derive(Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub input_type: String,
    pub input: Option<String>,
    pub lines: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    pub events: u64,
    pub incidents: usize,
}

/// A file that could not be imported; the others go on.
#[derive(Debug)]
pub struct FileError {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

pub struct Importer {
    store: Store,
    analyzer: Analyzer,
    inputs: Vec<InputConfig>,
    opts: ImportOptions,
    rules_digest: String,
}

impl Importer {
    /// `store` is a writer on the store; `inputs` the configured inputs, to
    /// attribute files to.
    pub fn new(
        store: Store,
        rules: Arc<RuleSet>,
        inputs: Vec<InputConfig>,
        opts: ImportOptions,
    ) -> Result<Importer, StoreError> {
        store.set_busy_timeout(BUSY_TIMEOUT)?;
        let detector = Detector::new(rules.policies(), opts.read.max_keys);
        let rules_digest = rules.digest();
        let mut analyzer = Analyzer::new(rules, detector);
        analyzer.set_trusted_proxies(opts.read.trusted_proxies.clone());
        Ok(Importer {
            rules_digest,
            analyzer,
            store,
            inputs,
            opts,
        })
    }

    /// Imports one file. `progress(read, total)` is called now and then with
    /// the bytes of the file (as stored on disk, compressed or not) read so far.
    pub fn import_path(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<FileOutcome, FileError> {
        let err = |message: String| FileError {
            file: path.to_owned(),
            message,
        };
        let mut file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| err(format!("cannot stat: {e}")))?;
        if meta.is_dir() {
            return Err(err("is a directory".into()));
        }
        let total = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or_else(Timestamp::now);
        let mut magic = [0u8; 6];
        let got =
            read_up_to(&mut file, &mut magic).map_err(|e| err(format!("cannot read: {e}")))?;
        let compression = Compression::of(&magic[..got]).map_err(err)?;
        let decompressed_size = match compression {
            Compression::None => Some(total),
            Compression::Gzip => gzip_size(&mut file, total),
        };

        // Seen before? Only a file as large as an earlier import can be one:
        // hash it first, so that a re-run skips it without analysing.
        let same_size = match decompressed_size {
            Some(n) => self
                .store
                .imports_with_size(n)
                .map_err(|e| err(format!("cannot read the store: {e}")))?,
            None => true,
        };
        if same_size {
            let digest = self
                .digest(&mut file, compression, total, progress)
                .map_err(|e| err(e.to_string()))?;
            if let Some(earlier) = self
                .store
                .import_of(&digest)
                .map_err(|e| err(format!("cannot read the store: {e}")))?
            {
                return Ok(FileOutcome::AlreadyImported(earlier));
            }
        }

        let plan = self
            .year_plan(&mut file, compression, total, mtime)
            .map_err(err)?;
        let mut hashing = hashed_from_start(file, compression, total, progress).map_err(err)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut hashing)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| err(read_error(compression, 0, &e)))?;
        if looks_binary(&head) {
            return Err(err(
                "looks like binary data, not a log (at its start, more than 30% of bytes \
                 are control bytes or not text)"
                    .into(),
            ));
        }
        let matched = self.matching_input(path);
        let input_type = match (&self.opts.read.input_type, matched) {
            (Some(t), _) => t.clone(),
            (None, Some(i)) => i.input_type.clone(),
            (None, None) => sniff(&head).map(str::to_owned).ok_or_else(|| {
                err(format!(
                    "cannot tell the log format from the first lines; pass --type ({})",
                    INPUT_TYPES.join(", ")
                ))
            })?,
        };
        let input = self
            .opts
            .input
            .clone()
            .or_else(|| matched.map(|i| i.name.clone()));

        let mut times = TimeParser::new(self.opts.read.time_zone.clone(), mtime);
        match plan {
            Some(plan) => times.set_year_plan(plan),
            None => times.set_year(self.opts.read.year),
        }
        let rules = Arc::clone(self.analyzer.rules());
        *self.analyzer.detector_mut() = Detector::new(rules.policies(), self.opts.read.max_keys);
        let events_before = self.analyzer.events();
        let mut source = self.analyzer.source(&input_type, times).map_err(err)?;
        let (lines, cut) = {
            let mut chunks = LineChunks::new(
                io::Cursor::new(head).chain(&mut hashing),
                self.opts.read.max_line,
            );
            loop {
                let chunk = match chunks.next_chunk() {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) => return Err(err(read_error(compression, source.lines(), &e))),
                };
                self.analyzer
                    .feed(&mut source, chunk.data, mtime, &mut |_, _, _| {});
            }
            let s = chunks.stats();
            (s.lines, s.cut_lines)
        };
        if cut > 0 {
            tracing::warn!("{}: {cut} over-long lines cut", path.display());
        }
        let digest: [u8; 32] = hashing.hasher.finalize().into();
        let bytes = hashing.bytes;
        let detector = self.analyzer.detector_mut();
        detector.flush();
        let incidents: Vec<IncidentRecord> = detector
            .take_closed()
            .iter()
            .map(|inc| IncidentRecord {
                // Numbered by the store at import: no detector id.
                detector_id: 0,
                ..IncidentRecord::new(rules.rule(inc.rule), inc, false, input.clone())
            })
            .collect();
        let path_text = path.display().to_string();
        let outcome = self
            .store
            .import(&ImportFile {
                digest,
                bytes,
                path: &path_text,
                input_type: &input_type,
                input: input.as_deref(),
                lines,
                rules: &self.rules_digest,
                incidents: &incidents,
            })
            .map_err(|e| err(format!("cannot store its incidents (nothing stored): {e}")))?;
        Ok(match outcome {
            ImportOutcome::Stored { incidents } => FileOutcome::Imported(FileSummary {
                input_type,
                input,
                lines,
                bytes,
                events: self.analyzer.events() - events_before,
                incidents,
            }),
            ImportOutcome::AlreadyImported(earlier) => FileOutcome::AlreadyImported(earlier),
        })
    }

    /// The SHA-256 of the file's content, decompressed.
    fn digest(
        &self,
        file: &mut File,
        compression: Compression,
        total: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<[u8; 32], String> {
        let mut hashing = hashed_from_start(file, compression, total, progress)?;
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| read_error(compression, 0, &e))?;
        Ok(hashing.hasher.finalize().into())
    }

    /// The years of the file's year-less syslog stamps, from one pass over
    /// its lines: from `--year` for the first, else anchored so that the
    /// last lies at or before the file's mtime; later ones follow the
    /// file's own rollovers. `None` when its first lines have no year-less
    /// stamp (then nothing needs a year).
    fn year_plan(
        &self,
        file: &mut File,
        compression: Compression,
        total: u64,
        mtime: Timestamp,
    ) -> Result<Option<YearPlan>, String> {
        let mut no_progress = |_: u64, _: u64| {};
        let reader = hashed_from_start(file, compression, total, &mut no_progress)?;
        let mut chunks = LineChunks::new(reader, self.opts.read.max_line);
        let mut planner = YearPlanner::default();
        let mut first = true;
        loop {
            let chunk = match chunks.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(read_error(compression, 0, &e)),
            };
            let data = chunk.data.strip_suffix(b"\n").unwrap_or(chunk.data);
            for line in data.split(|&b| b == b'\n') {
                planner.line(line.strip_suffix(b"\r").unwrap_or(line));
            }
            if first && !planner.has_yearless() {
                return Ok(None);
            }
            first = false;
        }
        Ok(match self.opts.read.year {
            Some(year) => Some(planner.starting(year)),
            None => planner.anchored(&self.opts.read.time_zone, mtime),
        })
    }

    /// The configured input this file belongs to: the explicit `--input`,
    /// else one whose path (or glob) matches the file's path or name once
    /// rotation suffixes (`.1`, `.2.gz`, `-20201031`) are removed.
    fn matching_input(&self, path: &Path) -> Option<&InputConfig> {
        if let Some(name) = &self.opts.input {
            return self.inputs.iter().find(|i| &i.name == name);
        }
        let full = path.to_string_lossy();
        let base = unrotated(&full);
        let file_name = Path::new(&base)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())?;
        self.inputs.iter().find(|i| {
            // Only file inputs have paths a historical file can belong to.
            let SourceConfig::Files {
                path: input_path, ..
            } = &i.source
            else {
                return false;
            };
            let Ok(pattern) = glob::Pattern::new(input_path) else {
                return false;
            };
            let pattern_name = Path::new(input_path)
                .file_name()
                .and_then(|n| glob::Pattern::new(&n.to_string_lossy()).ok());
            pattern.matches(&full)
                || pattern.matches(&base)
                || pattern_name.is_some_and(|p| p.matches(&file_name))
        })
    }
}

/// `path` without the suffixes logrotate adds: a compression extension,
/// then a number (`.1`) or a date (`-20201031`, `.20201031`).
pub fn unrotated(path: &str) -> String {
    let mut p = path;
    for ext in [".gz", ".xz", ".bz2", ".zst"] {
        if let Some(s) = p.strip_suffix(ext) {
            p = s;
            break;
        }
    }
    if let Some(i) = p.rfind(['.', '-']) {
        let tail = &p[i + 1..];
        if !tail.is_empty() && tail.len() <= 10 && tail.bytes().all(|b| b.is_ascii_digit()) {
            p = &p[..i];
        }
    }
    p.to_owned()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

impl Compression {
    /// Recognised by the first bytes, not the name: rotated files get
    /// renamed, and a `.gz` that is not gzip should say so.
    fn of(magic: &[u8]) -> Result<Compression, String> {
        let unsupported = |what: &str| {
            Err(format!(
                "compressed with {what}, which canhgac does not read; decompress it first \
                 (canhgac reads plain and gzip files)"
            ))
        };
        match magic {
            [0x1f, 0x8b, ..] => Ok(Compression::Gzip),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00] => unsupported("xz"),
            [b'B', b'Z', b'h', ..] => unsupported("bzip2"),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => unsupported("zstd"),
            _ => Ok(Compression::None),
        }
    }
}

fn read_error(compression: Compression, after_line: u64, e: &io::Error) -> String {
    let what = match compression {
        Compression::Gzip => "corrupt or truncated gzip data",
        Compression::None => "cannot read",
    };
    format!("{what} after line {after_line}: {e} (nothing stored from this file)")
}

/// Reads into `buf` until it is full or the file ends.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The decompressed size a gzip file declares in its last four bytes
/// (modulo 2^32, of its last member only). Used only to decide whether a
/// file may have been imported before, so a wrong answer costs time, never
/// correctness: `None` (unknown) makes the caller hash first anyway.
fn gzip_size(file: &mut File, total: u64) -> Option<u64> {
    if total < 18 || total > u64::from(u32::MAX) {
        return None;
    }
    let mut tail = [0u8; 4];
    file.seek(SeekFrom::Start(total - 4)).ok()?;
    file.read_exact(&mut tail).ok()?;
    // Only a single-member file's trailer gives the whole size; a size
    // below the compressed one cannot be right.
    let size = u64::from(u32::from_le_bytes(tail));
    (size >= total / 1032).then_some(size)
}

/// Control bytes and bytes that are not UTF-8 text, against all characters.
/// A log in a legacy 8-bit encoding has some of the latter; random bytes
/// (an image, a database, an archive canhgac does not know) have many.
fn looks_binary(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(head);
    let (mut odd, mut all) = (0usize, 0usize);
    for c in text.chars() {
        all += 1;
        let control = c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c' | '\x1b');
        if control || c == char::REPLACEMENT_CHARACTER {
            odd += 1;
        }
    }
    odd as f64 > all as f64 * BINARY_SHARE
}

/// Counts the bytes read from the file, for progress.
struct Counting<'p, R> {
    inner: R,
    read: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read, self.total);
        Ok(n)
    }
}

/// The file's content from its start, decompressed and hashed as it is
/// read; `progress` hears of the bytes read from the file itself.
fn hashed_from_start<'a, F: Read + Seek + 'a>(
    mut file: F,
    compression: Compression,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
) -> Result<Hashing<Box<dyn Read + 'a>>, String> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read: {e}"))?;
    let counted = Counting {
        inner: file,
        read: 0,
        total,
        progress,
    };
    let decompressed: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(MultiGzDecoder::new(counted)),
    };
    Ok(Hashing {
        inner: decompressed,
        hasher: Sha256::new(),
        bytes: 0,
    })
}

/// Hashes the decompressed bytes as they pass: the file's identity.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_suffixes() {
        for (rotated, live) in [
            ("/var/log/auth.log.2.gz", "/var/log/auth.log"),
            ("/var/log/auth.log.1", "/var/log/auth.log"),
            ("/var/log/auth.log", "/var/log/auth.log"),
            (
                "/var/log/nginx/access.log-20201031.gz",
                "/var/log/nginx/access.log",
            ),
            ("/var/log/syslog.gz", "/var/log/syslog"),
        ] {
            assert_eq!(unrotated(rotated), live, "{rotated}");
        }
    }

    #[test]
    fn compression_by_magic() {
        assert_eq!(Compression::of(&[0x1f, 0x8b, 8, 0]), Ok(Compression::Gzip));
        assert_eq!(Compression::of(b"Oct 31"), Ok(Compression::None));
        assert!(Compression::of(&[0xfd, b'7', b'z', b'X', b'Z', 0])
            .expect_err("xz")
            .contains("xz"));
        assert!(Compression::of(b"BZh91A").is_err());
    }

    #[test]
    fn binary_is_told_from_logs_with_some_nul_bytes() {
        assert!(!looks_binary(b"Oct 31 23:30:00 host sshd[1]: x\n"));
        let mut crashed = b"Oct 31 23:30:00 host sshd[1]: Failed password\n".repeat(20);
        crashed.extend([0u8; 100]);
        assert!(!looks_binary(&crashed));
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
        assert!(looks_binary(&junk));
    }
}
