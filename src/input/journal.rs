//! The systemd journal as an input (`type = "journal"`): entries become
//! syslog-format lines that the `syslog` rules match unchanged,
//!
//! ```text
//! 2026-11-23T08:30:00.123456+07:00 web01 sshd[4242]: Failed password for root from ...
//! ```
//!
//! (time from `__REALTIME_TIMESTAMP` in the configured zone, `_HOSTNAME`,
//! `SYSLOG_IDENTIFIER` or `_COMM`, `SYSLOG_PID` or `_PID`, `MESSAGE` with
//! control characters written `#ooo` as rsyslog does), and the journal
//! cursor of the last entry handed out is the input's [`Position`], stored
//! in the same transaction as the incidents.
//!
//! # Read in-process, through `sd-journal`
//!
//! A thread of this input reads the journal files with libsystemd's own
//! reader ([`sd`], loaded with `dlopen`), the same code `journalctl` reads
//! them with, so entries, order, matches and cursors are exactly
//! `journalctl`'s. It used to follow `journalctl --output=export` as a
//! child process; that serialised every field of every entry to text for
//! this side to parse again, and `journalctl` alone could not go past
//! about 400 k entries/s on one core, under half the rate of tailing the
//! same lines from a file (`benches/inputs.sh`). Here only the six fields
//! of the line are copied out, and the cursor is made once per chunk.
//!
//! What the child process gave and this keeps: a read error closes the
//! journal and opens it again after a backoff (1 s doubling to 30 s, reset
//! after a minute of good reading), counted in
//! `canhgac_input_restarts_total`, resuming after the last entry handed
//! out. What it gave and this does not: `sd-journal` maps journal files
//! into memory, so a journal file truncated under it (never done by
//! journald, which only appends, rotates and deletes whole files) would
//! end the daemon with SIGBUS, and systemd restarts it from its stored
//! cursor.
//!
//! # Cursors
//!
//! Reading resumes by seeking the stored cursor; the entry found there is
//! skipped since it was handed out before. If it is not the cursor's own
//! entry, that entry is no longer in the journal (vacuumed, or the journal
//! was replaced): reading goes on from where the seek placed us, which
//! after a vacuum is the oldest entry left, with a warning and
//! `canhgac_input_position_lost_total`. A cursor the journal refuses
//! outright is dropped the same way, and reading starts at the oldest
//! entry: never an error loop.
//!
//! An input's very first start with `start = "end"` begins at the newest
//! entry that matches its filters, whose cursor is then its position: from
//! then on, entries written while the daemon is down are read at its next
//! start.

mod entry;
mod sd;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::lines::escape_control;
use super::source::{Note, Origin, Position, Source, SourceStats};
use super::watch::Waker;
use entry::{Entry, Field};
use sd::Journal;

/// Formatted lines are handed over in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the pipeline; past that the reader waits (the
/// journal keeps the entries: nothing is lost by waiting).
const QUEUE_CHUNKS: usize = 16;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A reader that ran this long was healthy: the next failure starts the
/// backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// The longest wait for a change before looking again anyway: the
/// journal's descriptor is inotify, which a journal on a file system
/// without it (or a missed event) would leave silent.
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    pub input: String,
    /// A directory of journal files; `None` reads the system journal:
    /// every journal file on the host (those systemd-journal-remote
    /// receives too), not only the local machine's. Local-only reading
    /// (journalctl without `--merge`) under the unit's sandbox in a
    /// container read nothing at all (systemd 252 in nspawn,
    /// systemd/boot-test.sh): the service's own /proc shows the host's
    /// boot id there, not the container's.
    pub directory: Option<PathBuf>,
    /// `FIELD=value` and `+`, as `journalctl` takes them.
    pub matches: Vec<String>,
    /// Without a stored cursor: begin at the newest entry (true) or at the
    /// oldest (false).
    pub start_at_end: bool,
    /// Bytes of a line at most; the rest is cut off.
    pub max_line: usize,
    /// The zone of the time stamps written at the start of each line.
    pub time_zone: TimeZone,
}

impl JournalOptions {
    pub fn new(input: impl Into<String>) -> Self {
        JournalOptions {
            input: input.into(),
            directory: None,
            matches: Vec::new(),
            start_at_end: true,
            max_line: super::lines::DEFAULT_MAX_LINE,
            time_zone: TimeZone::UTC,
        }
    }

    /// The journal opened with this input's filters.
    fn open(&self) -> io::Result<Journal> {
        let mut j = Journal::open(self.directory.as_deref())?;
        // Set up the change notification before the first read, so that
        // nothing appended in between is missed.
        j.fd()?;
        // A field is kept only up to a little past the line limit: the
        // journal need not decompress more of it.
        j.set_data_threshold(self.field_cap() + 64)?;
        for m in &self.matches {
            if m == "+" {
                j.add_disjunction()?;
            } else {
                j.add_match(m.as_bytes())?;
            }
        }
        Ok(j)
    }

    /// Bytes kept of a field's value: anything past it is cut off the line.
    fn field_cap(&self) -> usize {
        self.max_line + 64
    }
}

/// Formatted entries, with the cursor of the last one.
struct Chunk {
    data: Vec<u8>,
    lines: u64,
    cursor: String,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    read_errors: AtomicU64,
    restarts: AtomicU64,
    position_lost: AtomicU64,
    cut_lines: AtomicU64,
}

pub struct JournalSource {
    chunks: Option<Receiver<Chunk>>,
    cursor: Option<String>,
    shared: Arc<Shared>,
    /// A byte written here wakes the reader to stop.
    stop: UnixStream,
    lines: u64,
    bytes: u64,
    thread: Option<JoinHandle<()>>,
}

impl JournalSource {
    /// Starts following the journal after `cursor` (the stored position),
    /// or as [`JournalOptions::start_at_end`] says when there is none.
    /// Fails when the journal cannot be read at all on this machine (no
    /// libsystemd); a journal that cannot be opened for now is retried.
    pub fn start(opts: JournalOptions, cursor: Option<String>, waker: Waker) -> io::Result<Self> {
        readable().map_err(io::Error::other)?;
        let shared = Arc::new(Shared::default());
        let cursor = match cursor {
            Some(c) => Some(c),
            None if opts.start_at_end => newest_cursor(&opts, &shared),
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE_CHUNKS);
        let (stop, stop_rx) = UnixStream::pair()?;
        let thread = {
            let shared = Arc::clone(&shared);
            let cursor = cursor.clone();
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || supervise(&opts, cursor, &shared, &tx, &waker, &stop_rx))?
        };
        Ok(JournalSource {
            chunks: Some(rx),
            cursor,
            shared,
            stop,
            lines: 0,
            bytes: 0,
            thread: Some(thread),
        })
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // A reader blocked handing over a chunk sees the channel closed;
        // one waiting for the journal, the byte.
        self.chunks = None;
        let _ = self.stop.write_all(b"x");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Source for JournalSource {
    fn sweep(&mut self) -> Vec<Note> {
        Vec::new()
    }

    fn read(&mut self, max_bytes: usize, sink: &mut dyn FnMut(&Origin, &[u8])) -> usize {
        let Some(chunks) = &self.chunks else {
            return 0;
        };
        let mut total = 0;
        while total < max_bytes {
            match chunks.try_recv() {
                Ok(chunk) => {
                    sink(&Origin::LOCAL, &chunk.data);
                    total += chunk.data.len();
                    self.lines += chunk.lines;
                    self.bytes += chunk.data.len() as u64;
                    self.cursor = Some(chunk.cursor);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        total
    }

    fn position(&self) -> Position {
        Position::Cursor(self.cursor.clone())
    }

    fn stats(&self) -> SourceStats {
        let s = &self.shared;
        SourceStats {
            lines: self.lines,
            bytes: self.bytes,
            cut_lines: s.cut_lines.load(Ordering::Relaxed),
            read_errors: s.read_errors.load(Ordering::Relaxed),
            restarts: s.restarts.load(Ordering::Relaxed),
            position_lost: s.position_lost.load(Ordering::Relaxed),
            ..SourceStats::default()
        }
    }
}

/// Whether journal inputs can be read on this machine: `Err` says why not
/// (no libsystemd).
pub fn readable() -> Result<(), String> {
    sd::available()
}

/// The cursor of the newest entry matching the filters, if any.
fn newest_cursor(opts: &JournalOptions, shared: &Shared) -> Option<String> {
    let newest = || -> io::Result<Option<String>> {
        let mut j = opts.open()?;
        j.seek_tail()?;
        if j.previous()? {
            j.cursor().map(Some)
        } else {
            Ok(None)
        }
    };
    newest().unwrap_or_else(|e| {
        shared.read_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(input = %opts.input, "cannot find the journal's newest entry: {e}");
        None
    })
}

/// Reads the journal until stopped, opening it again after a failure.
fn supervise(
    opts: &JournalOptions,
    mut cursor: Option<String>,
    shared: &Shared,
    tx: &SyncSender<Chunk>,
    waker: &Waker,
    stop: &UnixStream,
) {
    let mut backoff = MIN_BACKOFF;
    let mut first_run = true;
    while !shared.stop.load(Ordering::Relaxed) {
        if !first_run {
            shared.restarts.fetch_add(1, Ordering::Relaxed);
        }
        first_run = false;
        let started = Instant::now();
        let why = match follow(opts, &mut cursor, shared, tx, waker, stop) {
            Ok(()) => return,
            Err(e) => e,
        };
        shared.read_errors.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() >= HEALTHY_RUN {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(
            input = %opts.input,
            "journal: {why}; opening it again in {}s",
            backoff.as_secs()
        );
        if stopped_within(stop, backoff) {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Waits `wait` for the stop byte (or the source gone): true if it came.
fn stopped_within(stop: &UnixStream, wait: Duration) -> bool {
    if stop
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .is_err()
    {
        std::thread::sleep(wait);
        return false;
    }
    // A byte, or the end when the source's side is dropped.
    let mut byte = [0u8];
    (&*stop).read(&mut byte).is_ok()
}

/// Reads from `cursor` (updated to the last entry handed out) until told
/// to stop (`Ok`) or the journal fails.
fn follow(
    opts: &JournalOptions,
    cursor: &mut Option<String>,
    shared: &Shared,
    tx: &SyncSender<Chunk>,
    waker: &Waker,
    stop: &UnixStream,
) -> io::Result<()> {
    let mut j = opts.open()?;
    // The entry the seek lands on was handed out before, if it is still
    // there.
    let mut expect = None;
    match cursor.as_deref() {
        None => j.seek_head()?,
        Some(c) => match j.seek_cursor(c) {
            Ok(()) => expect = Some(c.to_owned()),
            Err(e) => {
                shared.position_lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    input = %opts.input,
                    "journal cursor {c:?} refused ({e}); reading from the oldest entry"
                );
                *cursor = None;
                j.seek_head()?;
            }
        },
    }
    let cap = opts.field_cap();
    let mut entry = Entry::default();
    let mut data = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut lines = 0u64;
    let mut formatter = Formatter::new(opts);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let more = j.next()?;
        if more {
            if let Some(want) = expect.take() {
                if j.test_cursor(&want)? {
                    continue;
                }
                shared.position_lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    input = %opts.input,
                    "journal cursor {want:?} is no longer in the journal (vacuumed?); \
                     resuming at the oldest entry after it"
                );
            }
            entry.clear();
            entry.realtime = j.realtime_usec().ok();
            j.for_each_field(|d| entry.add(d, cap))?;
            if formatter.line(&entry, &mut data) {
                shared.cut_lines.fetch_add(1, Ordering::Relaxed);
            }
            lines += 1;
        }
        // Hand over when full, or when the journal has nothing more for
        // now. At the end the current entry is still the last one read,
        // whose cursor the chunk carries.
        if !data.is_empty() && (data.len() >= CHUNK_BYTES || !more) {
            let c = j.cursor()?;
            *cursor = Some(c.clone());
            let chunk = Chunk {
                data: std::mem::replace(&mut data, Vec::with_capacity(CHUNK_BYTES + 4096)),
                lines: std::mem::take(&mut lines),
                cursor: c,
            };
            if tx.send(chunk).is_err() {
                return Ok(());
            }
            waker.wake();
        }
        if !more && j.wait(stop.as_raw_fd(), RECHECK)? {
            return Ok(());
        }
    }
}

/// Writes entries as lines; remembers the last second's formatted time.
struct Formatter {
    tz: TimeZone,
    max_line: usize,
    second: Option<(i64, String)>,
}

impl Formatter {
    fn new(opts: &JournalOptions) -> Self {
        Formatter {
            tz: opts.time_zone.clone(),
            max_line: opts.max_line,
            second: None,
        }
    }

    /// Appends the entry's line; true if it had to be cut.
    fn line(&mut self, e: &Entry, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ts = e
            .realtime
            .and_then(|us| Timestamp::from_microsecond(i64::try_from(us).ok()?).ok())
            .unwrap_or_else(Timestamp::now);
        self.time(ts, out);
        out.push(b' ');
        let word = |f: Field| e.get(f).filter(|b| !b.is_empty());
        match word(Field::Hostname) {
            Some(h) => escape_control(h, out),
            None => out.push(b'-'),
        }
        out.push(b' ');
        if let Some(ident) = word(Field::Identifier).or_else(|| word(Field::Comm)) {
            escape_control(ident, out);
            if let Some(pid) = word(Field::SyslogPid).or_else(|| word(Field::Pid)) {
                out.push(b'[');
                escape_control(pid, out);
                out.push(b']');
            }
            out.extend_from_slice(b": ");
        }
        if let Some(msg) = e.get(Field::Message) {
            escape_control(msg, out);
        }
        let cut = out.len() - start > self.max_line;
        if cut {
            out.truncate(start + self.max_line);
        }
        out.push(b'\n');
        cut
    }

    fn time(&mut self, ts: Timestamp, out: &mut Vec<u8>) {
        let second = ts.as_second();
        let cached = match &self.second {
            Some((s, text)) if *s == second => text,
            _ => {
                let text = ts
                    .to_zoned(self.tz.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string();
                &self.second.insert((second, text)).1
            }
        };
        // Microseconds go between the seconds and the offset.
        let (head, offset) = cached.split_at(19);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(format!(".{:06}", ts.subsec_microsecond()).as_bytes());
        out.extend_from_slice(offset.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Field::*;

    fn line(realtime: u64, fields: &[(Field, &[u8])], tz: &str) -> String {
        String::from_utf8_lossy(&line_bytes(realtime, fields, tz)).into_owned()
    }

    fn line_bytes(realtime: u64, fields: &[(Field, &[u8])], tz: &str) -> Vec<u8> {
        let mut opts = JournalOptions::new("j");
        opts.time_zone = TimeZone::get(tz).expect("zone");
        opts.max_line = 120;
        let mut out = Vec::new();
        Formatter::new(&opts).line(&Entry::with(realtime, fields), &mut out);
        out
    }

    #[test]
    fn entries_become_syslog_lines() {
        assert_eq!(
            line(
                1_700_000_000_123_456,
                &[
                    (Hostname, b"web01"),
                    (Identifier, b"sshd"),
                    (Pid, b"42"),
                    (Comm, b"sshd-session"),
                    (Message, b"Failed password for root from 203.0.113.5 port 22 ssh2"),
                ],
                "Asia/Ho_Chi_Minh"
            ),
            "2023-11-15T05:13:20.123456+07:00 web01 sshd[42]: Failed password for root from 203.0.113.5 port 22 ssh2\n"
        );
        // SYSLOG_PID wins over _PID; _COMM stands in for a missing identifier.
        assert_eq!(
            line(
                1_700_000_000_000_000,
                &[
                    (Hostname, b"h"),
                    (Comm, b"sudo"),
                    (SyslogPid, b"7"),
                    (Pid, b"8"),
                    (Message, b"x"),
                ],
                "UTC"
            ),
            "2023-11-14T22:13:20.000000+00:00 h sudo[7]: x\n"
        );
    }

    #[test]
    fn binary_empty_and_long_messages() {
        // Not UTF-8 and a newline: control characters written as rsyslog does.
        assert_eq!(
            line_bytes(0, &[(Identifier, b"app"), (Message, b"bin\xff\na")], "UTC"),
            b"1970-01-01T00:00:00.000000+00:00 - app: bin\xff#012a\n"
        );
        let long = vec![b'x'; 500];
        let cut = line(0, &[(Hostname, b"h"), (Message, &long)], "UTC");
        assert_eq!(cut.len(), 121);
        // No MESSAGE at all.
        assert_eq!(
            line(0, &[(Hostname, b"h"), (Identifier, b"a")], "UTC"),
            "1970-01-01T00:00:00.000000+00:00 h a: \n"
        );
    }
}
