//! One shape for every place lines come from: a [`Source`] hands out runs of
//! whole lines and says, at any moment, where a restart must resume so that
//! it sees exactly the lines after the last ones it handed out.
//!
//! The pipeline drives every source the same way: [`Source::sweep`] about
//! once a second and whenever files change, [`Source::read`] until nothing
//! comes. The
//! [`Position`] it stores with the incidents comes from
//! [`Source::position`], taken in the same transaction:
//!
//! | source | position | after `kill -9` |
//! |---|---|---|
//! | files ([`super::tail`]) | per file: identity and byte offset | resumes after the last committed line of each file |
//! | journal ([`super::journal`]) | the cursor of the last entry handed out | resumes after that entry |
//! | syslog receivers ([`super::syslog`]) | none: the network has no replay | what the receiver had taken from its sockets and not committed is lost; see there for the bounds |
//!
//! Lines come with an [`Origin`]: what the line cannot say about itself
//! (today, the address of the host that sent it over the network).

use std::net::IpAddr;
use std::path::PathBuf;

use super::checkpoint::FileCheckpoint;
use super::tail::{FileTail, NoticeKind};

/// What is known about a run of lines besides their text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The peer address of a network source (IPv4-mapped IPv6 addresses
    /// unmapped), `None` for local sources.
    pub sender: Option<IpAddr>,
}

impl Origin {
    pub const LOCAL: Origin = Origin { sender: None };
}

/// Where a restart resumes, stored with the incidents of the lines before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// One checkpoint per file followed.
    Files(Vec<FileCheckpoint>),
    /// An opaque cursor; `None` before the first line.
    Cursor(Option<String>),
    /// Nothing to resume from.
    Unresumable,
}

/// Counters since the source was created, and gauges as of now. Fields that
/// do not apply to a kind of source stay 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Lines handed out.
    pub lines: u64,
    /// Bytes read to make them (file bytes, received bytes, journal text).
    pub bytes: u64,
    /// Lines longer than the limit, handed out cut.
    pub cut_lines: u64,
    /// Failed attempts to read (open, stat, read, spawn, parse), retried.
    pub read_errors: u64,
    pub dropped: Drops,
    /// Files held open.
    pub files_open: u64,
    /// Files matched that cannot be opened now (tried again with backoff).
    pub files_unreadable: u64,
    /// Bytes written and not yet read (files only).
    pub bytes_behind: u64,
    /// Open connections (TCP receivers).
    pub connections: u64,
    /// Connections closed at the cap for a newer one (TCP receivers).
    pub connections_shed: u64,
    /// Times the reader was started again after a failure (the journal's).
    pub restarts: u64,
    /// Times the stored position no longer existed and reading resumed at
    /// the oldest data.
    pub position_lost: u64,
}

/// Messages received and not handed out, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Longer than `max_message_bytes`.
    pub oversized: u64,
    /// Not syslog: broken priority, header or framing.
    pub malformed: u64,
    /// The receiver's queue was full (the store behind): UDP only, TCP
    /// waits instead.
    pub queue_full: u64,
    /// Dropped by the kernel before we could read them (UDP receive buffer
    /// full), as the kernel counts them for our socket.
    pub socket_buffer: u64,
}

impl Drops {
    pub const REASONS: [&'static str; 4] =
        ["oversized", "malformed", "queue_full", "socket_buffer"];

    /// `(reason, count)` in the order of [`Drops::REASONS`].
    pub fn by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("oversized", self.oversized),
            ("malformed", self.malformed),
            ("queue_full", self.queue_full),
            ("socket_buffer", self.socket_buffer),
        ]
    }
}

/// Something that happened to a source, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// A warning (something to fix, or lines that may be lost) rather than
    /// normal life.
    pub problem: bool,
    /// The input's path matches no file: a problem unless another input
    /// stands in for it (the journal for a missing auth.log).
    pub nothing_matched: bool,
    pub message: String,
}

/// A source of whole lines with a resumable [`Position`]. See the module
/// docs.
pub trait Source: Send {
    /// Housekeeping: look for new, rotated or vanished files, supervise
    /// readers, refresh gauges.
    fn sweep(&mut self) -> Vec<Note>;

    /// Directories whose changes should wake the pipeline.
    fn watch_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Hands out runs of whole lines, each ending in `\n`, about `max_bytes`
    /// at most, and returns the bytes consumed (0: nothing waiting).
    fn read(&mut self, max_bytes: usize, sink: &mut dyn FnMut(&Origin, &[u8])) -> usize;

    /// Where a restart must resume to see exactly the lines not yet handed
    /// out.
    fn position(&self) -> Position;

    /// The daemon is stopping: stop taking new senders and take in what
    /// those already connected hold. Files need nothing: they are read to
    /// their end anyway.
    fn begin_drain(&mut self) {}

    /// A reload kept this input: files it reads at start (TLS
    /// certificates) are read again.
    fn reload(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// A mark of what has been handed over so far, taken when a batch is
    /// made: [`Source::committed`] gets it back once that batch is stored.
    fn commit_mark(&self) -> u64 {
        0
    }

    /// The store has committed what every line handed over up to `mark`
    /// did (lines handed over since are in a later batch).
    fn committed(&mut self, _mark: u64) {}

    /// Senders wait for a commit of lines handed over (RELP answers): the
    /// pipeline commits as soon as its pacing allows, not when a batch fills.
    fn awaiting_commit(&self) -> bool {
        false
    }

    /// After [`Source::begin_drain`]: nothing more will come beyond what
    /// the next reads hand out.
    fn drained(&self) -> bool {
        true
    }

    fn stats(&self) -> SourceStats;

    /// The daemon is idle after a burst: give back buffers that grew to
    /// its size. They grow again as lines come.
    fn shrink(&mut self) {}
}

impl Source for FileTail {
    fn sweep(&mut self) -> Vec<Note> {
        FileTail::sweep(self)
            .into_iter()
            .map(|n| Note {
                problem: n.kind.is_problem(),
                nothing_matched: n.kind == NoticeKind::NothingMatched,
                message: n.to_string(),
            })
            .collect()
    }

    fn watch_dirs(&self) -> Vec<PathBuf> {
        FileTail::watch_dirs(self)
    }

    fn read(&mut self, max_bytes: usize, sink: &mut dyn FnMut(&Origin, &[u8])) -> usize {
        FileTail::read(self, max_bytes, &mut |_path, lines| {
            sink(&Origin::LOCAL, lines)
        })
    }

    fn position(&self) -> Position {
        Position::Files(self.checkpoints())
    }

    fn stats(&self) -> SourceStats {
        let tail = FileTail::stats(self);
        SourceStats {
            lines: tail.lines,
            bytes: tail.bytes,
            cut_lines: tail.cut_lines,
            read_errors: tail.read_errors,
            files_open: tail.files_open,
            files_unreadable: tail.files_unreadable,
            bytes_behind: tail.bytes_behind,
            position_lost: tail.position_lost,
            ..SourceStats::default()
        }
    }

    fn shrink(&mut self) {
        FileTail::shrink(self)
    }
}
