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
//! # Why `journalctl`, not `sd-journal`
//!
//! The journal is read by following `journalctl --output=export --follow`
//! (parsed in [`export`]) as a supervised child process, not through
//! libsystemd's `sd-journal` API:
//!
//! - no C library to link (`libsystemd-dev` at build time, a matching
//!   `libsystemd0` at run time) and no `unsafe` FFI in a daemon that has
//!   none; the crates that wrap `sd-journal` are thin FFI layers;
//! - `journalctl` is the journal's own reader, maintained with the file
//!   format (compression, compact mode, new fields) by systemd itself, on
//!   every systemd machine;
//! - a crash or hang in reading a corrupt journal file kills a child, which
//!   is restarted, not the daemon.
//!
//! The cost is one serialization per entry (measured in
//! `benches/inputs.sh`: journalctl's own reading is most of the cost of the
//! journal input), and a process to supervise: it is restarted with
//! a backoff (1 s doubling to 30 s, reset after a minute of good running),
//! its standard error is logged, and every restart is counted
//! (`canhgac_input_restarts_total`). A restart resumes after the last
//! entry read, so it loses and repeats nothing.
//!
//! # Cursors
//!
//! `journalctl --cursor=C` starts *at* the entry `C`, which is skipped since
//! it was handed out before. If the first entry is not `C`, `C` is no longer
//! in the journal (vacuumed, or the journal was replaced): reading goes on
//! from where `journalctl` placed us, which after a vacuum is the oldest
//! entry left, with a warning and `canhgac_input_position_lost_total`. A
//! cursor that `journalctl` refuses outright ("Failed to seek to cursor")
//! is dropped the same way, and reading starts at the oldest entry: never
//! an error loop. (`--after-cursor` would skip one entry too many when the
//! cursor is gone, hence `--cursor` and the skip done here.)
//!
//! An input's very first start with `start = "end"` begins at the newest
//! entry that matches its filters, whose cursor is then its position: from
//! then on, entries written while the daemon is down are read at its next
//! start.

mod export;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::lines::escape_control;
use super::source::{Note, Origin, Position, Source, SourceStats};
use super::watch::Waker;
use export::{Entry, ExportReader, Field, Next};

/// Formatted lines are handed over in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting for the pipeline; past that `journalctl` waits (the
/// journal keeps the entries: nothing is lost by waiting).
const QUEUE_CHUNKS: usize = 16;
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long was healthy: the next failure starts the
/// backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    pub input: String,
    /// `journalctl --directory`; `None` reads the system journal.
    pub directory: Option<PathBuf>,
    /// `FIELD=value` and `+`, passed to `journalctl` as they are.
    pub matches: Vec<String>,
    /// Without a stored cursor: begin at the newest entry (true) or at the
    /// oldest (false).
    pub start_at_end: bool,
    /// Bytes of a line at most; the rest is cut off.
    pub max_line: usize,
    /// The zone of the time stamps written at the start of each line.
    pub time_zone: TimeZone,
    /// The `journalctl` to run.
    pub journalctl: PathBuf,
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
            journalctl: PathBuf::from("journalctl"),
        }
    }

    /// `journalctl` with the options every run shares.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.journalctl);
        // Not `--output-fields`: journalctl still reads every field, and
        // filtering them made it slower (0.80 s against 0.49 s for 200 k
        // entries of 7 fields, 1.43 s against 1.29 s for 22 fields).
        cmd.args(["--output=export", "--all", "--no-pager", "--quiet"]);
        match &self.directory {
            Some(dir) => {
                cmd.arg("--directory").arg(dir);
            }
            // The system journal: every journal file on the host (those
            // systemd-journal-remote receives too). Without --merge
            // (journalctl's local-only mode), `--follow` under the unit's
            // sandbox in a container read nothing at all (systemd 252 in
            // nspawn, systemd/boot-test.sh): the service's own /proc shows
            // the host's boot id there, not the container's.
            None => {
                cmd.arg("--merge");
            }
        }
        cmd.stdin(Stdio::null());
        cmd
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
    child: Mutex<Option<Child>>,
    read_errors: AtomicU64,
    restarts: AtomicU64,
    position_lost: AtomicU64,
    cut_lines: AtomicU64,
}

pub struct JournalSource {
    chunks: Option<Receiver<Chunk>>,
    cursor: Option<String>,
    shared: Arc<Shared>,
    lines: u64,
    bytes: u64,
    thread: Option<JoinHandle<()>>,
}

impl JournalSource {
    /// Starts following the journal after `cursor` (the stored position),
    /// or as [`JournalOptions::start_at_end`] says when there is none.
    pub fn start(
        opts: JournalOptions,
        cursor: Option<String>,
        waker: Waker,
    ) -> std::io::Result<JournalSource> {
        let shared = Arc::new(Shared::default());
        let cursor = match cursor {
            Some(c) => Some(c),
            None if opts.start_at_end => newest_cursor(&opts, &shared),
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE_CHUNKS);
        let thread = {
            let shared = Arc::clone(&shared);
            let cursor = cursor.clone();
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || supervise(&opts, cursor, &shared, &tx, &waker))?
        };
        Ok(JournalSource {
            chunks: Some(rx),
            cursor,
            shared,
            lines: 0,
            bytes: 0,
            thread: Some(thread),
        })
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // A supervisor blocked handing over a chunk sees the channel closed.
        self.chunks = None;
        kill_child(&self.shared);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn kill_child(shared: &Shared) {
    let mut child = shared.child.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
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

/// The cursor of the newest entry matching the filters, if any.
fn newest_cursor(opts: &JournalOptions, shared: &Shared) -> Option<String> {
    let mut cmd = opts.command();
    cmd.args(["--lines=1"]).args(&opts.matches);
    let out = match cmd.stderr(Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) => {
            shared.read_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(input = %opts.input, "cannot run {}: {e}", opts.journalctl.display());
            return None;
        }
    };
    let mut reader = ExportReader::new(out.stdout.as_slice(), 64 * 1024, opts.max_line);
    let mut entry = Entry::default();
    let mut newest = None;
    while let Ok(Next::Entry | Next::NoCursor) = reader.next(&mut entry) {
        if !entry.cursor.is_empty() {
            newest = Some(std::mem::take(&mut entry.cursor));
        }
    }
    newest
}

/// Runs `journalctl` until stopped, restarting it when it ends.
fn supervise(
    opts: &JournalOptions,
    mut cursor: Option<String>,
    shared: &Shared,
    tx: &SyncSender<Chunk>,
    waker: &Waker,
) {
    let mut backoff = MIN_BACKOFF;
    let mut first_run = true;
    while !shared.stop.load(Ordering::Relaxed) {
        if !first_run {
            shared.restarts.fetch_add(1, Ordering::Relaxed);
        }
        first_run = false;
        let started = Instant::now();
        match follow(opts, &mut cursor, shared, tx, waker) {
            Ended::Stopped => return,
            Ended::CursorRefused(c) => {
                shared.position_lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    input = %opts.input,
                    "journal cursor {c:?} refused by journalctl; reading from the oldest entry"
                );
                cursor = None;
                continue;
            }
            Ended::Failed(why) => {
                shared.read_errors.fetch_add(1, Ordering::Relaxed);
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(
                    input = %opts.input,
                    "journalctl: {why}; restarting in {}s",
                    backoff.as_secs()
                );
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    Stopped,
    /// `journalctl` would not seek to this cursor.
    CursorRefused(String),
    Failed(String),
}

/// One run of `journalctl --follow`, from `cursor` (updated to the last
/// entry read).
fn follow(
    opts: &JournalOptions,
    cursor: &mut Option<String>,
    shared: &Shared,
    tx: &SyncSender<Chunk>,
    waker: &Waker,
) -> Ended {
    let mut cmd = opts.command();
    cmd.args(["--follow", "--no-tail"]);
    if let Some(c) = cursor.as_deref() {
        cmd.arg(format!("--cursor={c}"));
    }
    cmd.args(&opts.matches);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot run {}: {e}", opts.journalctl.display())),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Ended::Failed("no pipes to journalctl".into());
    };
    *shared.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    if shared.stop.load(Ordering::Relaxed) {
        kill_child(shared);
    }
    let refused = Arc::new(AtomicBool::new(false));
    let errors = {
        let refused = Arc::clone(&refused);
        let input = opts.input.clone();
        std::thread::Builder::new()
            .name("journal-stderr".into())
            .spawn(move || log_stderr(stderr, &input, &refused))
            .ok()
    };
    let outcome = read_entries(opts, stdout, cursor, shared, tx, waker);
    let status = {
        let mut child = shared.child.lock().unwrap_or_else(|e| e.into_inner());
        let status = child.as_mut().map(|c| {
            if outcome.is_some() {
                // We stop reading: the child must not outlive us.
                let _ = c.kill();
            }
            c.wait()
        });
        *child = None;
        status
    };
    if let Some(t) = errors {
        let _ = t.join();
    }
    if shared.stop.load(Ordering::Relaxed) || matches!(outcome, Some(Ended::Stopped)) {
        return Ended::Stopped;
    }
    if let Some(o) = outcome {
        return o;
    }
    if refused.load(Ordering::Relaxed) {
        if let Some(c) = cursor.take() {
            return Ended::CursorRefused(c);
        }
    }
    match status {
        Some(Ok(s)) => Ended::Failed(format!("exited ({s})")),
        Some(Err(e)) => Ended::Failed(format!("cannot wait for it: {e}")),
        None => Ended::Failed("gone".into()),
    }
}

fn log_stderr(stderr: impl Read, input: &str, refused: &AtomicBool) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("seek to cursor") {
            refused.store(true, Ordering::Relaxed);
        }
        tracing::warn!(input = %input, "journalctl: {line}");
    }
}

/// Reads entries until `journalctl` ends (`None`) or we must stop.
fn read_entries(
    opts: &JournalOptions,
    stdout: impl Read,
    cursor: &mut Option<String>,
    shared: &Shared,
    tx: &SyncSender<Chunk>,
    waker: &Waker,
) -> Option<Ended> {
    let mut reader = ExportReader::new(stdout, 256 * 1024, opts.max_line);
    let mut entry = Entry::default();
    let mut data = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut lines = 0u64;
    // With --cursor the first entry is the stored one, already handed out.
    let mut expect = cursor.clone();
    let mut formatter = Formatter::new(opts);
    loop {
        match reader.next(&mut entry) {
            Ok(Next::Entry) => {}
            Ok(Next::End) => return None,
            Ok(Next::NoCursor) => {
                shared.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(input = %opts.input, "journal entry without a cursor skipped");
                continue;
            }
            Err(e) => {
                shared.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(input = %opts.input, "reading journalctl's output: {e}");
                return None;
            }
        }
        if let Some(want) = expect.take() {
            if entry.cursor == want {
                continue;
            }
            shared.position_lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                input = %opts.input,
                "journal cursor {want:?} is no longer in the journal (vacuumed?); \
                 resuming at the oldest entry after it"
            );
        }
        if formatter.line(&entry, &mut data) {
            shared.cut_lines.fetch_add(1, Ordering::Relaxed);
        }
        lines += 1;
        // Hand over when full, or when journalctl has nothing more for now.
        if data.len() >= CHUNK_BYTES || reader.drained() {
            *cursor = Some(entry.cursor.clone());
            let chunk = Chunk {
                data: std::mem::replace(&mut data, Vec::with_capacity(CHUNK_BYTES + 4096)),
                lines: std::mem::take(&mut lines),
                cursor: entry.cursor.clone(),
            };
            if tx.send(chunk).is_err() {
                return Some(Ended::Stopped);
            }
            waker.wake();
        }
        if shared.stop.load(Ordering::Relaxed) {
            return Some(Ended::Stopped);
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
        let micros = e
            .get(Field::Realtime)
            .and_then(|b| std::str::from_utf8(b).ok()?.parse::<i64>().ok());
        let ts = micros
            .and_then(|us| Timestamp::from_microsecond(us).ok())
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

    fn line(fields: &[(Field, &[u8])], tz: &str) -> String {
        String::from_utf8_lossy(&line_bytes(fields, tz)).into_owned()
    }

    fn line_bytes(fields: &[(Field, &[u8])], tz: &str) -> Vec<u8> {
        let mut opts = JournalOptions::new("j");
        opts.time_zone = TimeZone::get(tz).expect("zone");
        opts.max_line = 120;
        let mut out = Vec::new();
        Formatter::new(&opts).line(&Entry::with(fields), &mut out);
        out
    }

    #[test]
    fn entries_become_syslog_lines() {
        assert_eq!(
            line(
                &[
                    (Realtime, b"1700000000123456"),
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
                &[
                    (Realtime, b"1700000000000000"),
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
            line_bytes(
                &[
                    (Realtime, b"0"),
                    (Identifier, b"app"),
                    (Message, b"bin\xff\na")
                ],
                "UTC"
            ),
            b"1970-01-01T00:00:00.000000+00:00 - app: bin\xff#012a\n"
        );
        let long = vec![b'x'; 500];
        let cut = line(
            &[(Realtime, b"0"), (Hostname, b"h"), (Message, &long)],
            "UTC",
        );
        assert_eq!(cut.len(), 121);
        // No MESSAGE at all.
        assert_eq!(
            line(
                &[(Realtime, b"0"), (Hostname, b"h"), (Identifier, b"a")],
                "UTC"
            ),
            "1970-01-01T00:00:00.000000+00:00 h a: \n"
        );
    }
}
