//! Following log files as they grow: a path or glob, through rotation,
//! truncation, deletion and restarts, handing out whole lines.
//!
//! [`FileTail`] is synchronous: the daemon drives it from its own pipeline
//! thread, calling [`FileTail::sweep`] on every wakeup from
//! [`super::watch::Wakeup`] and at least once a second, then
//! [`FileTail::read`] until it returns 0:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use canhgac::input::tail::{FileTail, TailOptions};
//! # use canhgac::input::watch::Wakeup;
//! let mut tail = FileTail::new(TailOptions::new("auth", "/var/log/auth.log"), Vec::new())
//!     .expect("valid pattern");
//! let mut wakeup = Wakeup::new();
//! loop {
//!     for notice in tail.sweep() {
//!         eprintln!("{notice}");
//!     }
//!     for notice in wakeup.set_dirs(&tail.watch_dirs()) {
//!         eprintln!("{notice}");
//!     }
//!     while tail.read(1 << 20, &mut |_path, _lines| { /* match, detect */ }) > 0 {}
//!     // store tail.checkpoints() in the same transaction as the incidents
//!     wakeup.wait(Duration::from_secs(1));
//! }
//! ```
//!
//! # Identity
//!
//! A file is known by its device and inode number plus the first
//! [`FINGERPRINT_BYTES`](checkpoint::FINGERPRINT_BYTES) of its content, never by its name: names move under
//! rotation, and an inode number is reused as soon as a deleted file is
//! closed. While a file is tracked its descriptor stays open, so its inode
//! cannot be reused under us; across a restart the fingerprint tells a
//! reused inode from the file we were reading.
//!
//! # What happens to files
//!
//! - **New file under the pattern**: read from the beginning. Only on the
//!   very first start of an input (no checkpoints at all) do the files that
//!   exist at that moment start at their end, if [`TailOptions::start_at_end`]
//!   says so (at the start of the partial last line, if any, so that line is
//!   read once it is complete).
//! - **Rename rotation** (`auth.log` → `auth.log.1`, new `auth.log`): the
//!   descriptor of the old file stays open and is read to its end, including
//!   whatever the writer appends before it reopens. The new file (its
//!   *successor*: same pattern path) is not read while the old one has unread
//!   bytes, so lines come out in the order they were written. The old file is
//!   closed once it has been read to its end and has not grown for
//!   [`TailOptions::rotated_grace`]; a final line it never finished is then
//!   handed out with a `\n` added.
//! - **Delayed compression, deletion, delete-and-recreate**: as rename
//!   rotation. Deleting a file does not free it while we hold it open, so
//!   nothing is lost however soon it is compressed or removed.
//! - **Truncation** (the size fell below our position, or the first bytes
//!   changed): the file is read again from offset 0. This is also checked
//!   after every read, before lines are handed out, so bytes written after a
//!   truncation are never mistaken for the continuation of the old content.
//! - **copytruncate**: when a truncation is detected, the directory is
//!   searched for the copy: a regular file whose first bytes equal the
//!   fingerprint of the truncated file and whose size is at least our offset.
//!   The copy is read from our offset to its end before the truncated file
//!   is read from 0.
//! - **Unreadable file** (permission denied, ...): a [`Notice`] when it
//!   starts and when it ends, `read_errors` counts every failed attempt, and
//!   sweeps try again, after 1 s, then twice as long each time, at most
//!   every 32 s. A file that was unreadable when the input first
//!   started with `start_at_end` starts where its end was then; one that was
//!   unreadable at a restart resumes at its checkpoint.
//! - **Restart**: each checkpoint is matched to its file by identity, under
//!   the pattern or, if it was rotated away while we were stopped, in the
//!   directory of its last path, and read on from its offset. A file created
//!   *and* rotated away while we were stopped (two rotations during the
//!   downtime) is named by no checkpoint and no longer matched by the
//!   pattern: it is found as a rotated file of the same lineage (the longest
//!   start of its name, cut before `.`, `-` or `_`, that the pattern
//!   matches: `auth.log.1` → `auth.log`), not compressed, last written after
//!   the newest rotated file we resumed, and read from its beginning.
//!
//! # What can still be lost or repeated
//!
//! - **copytruncate** is racy by design: lines written after the copy has
//!   been taken and before the original is truncated exist in neither file
//!   once the truncation happens. Only those of them we had already read are
//!   kept. Measured by `copytruncate_loss_is_bounded_and_measured` in
//!   `tests/tail.rs` (a writer appending 3,600–9,000 lines/s in small
//!   bursts, `std::fs::copy` then `set_len(0)` every 30 ms, the reader driven
//!   by [`Wakeup`](super::watch::Wakeup) as in the daemon; debug build, 2
//!   cores): over 20 runs, 400 rotations and 400,000 lines, 60 lines were
//!   written between a copy and its truncation and 43 of them were lost
//!   (0.011 % of all lines, about one line per ten rotations, at most 10 in
//!   one run of 20 rotations); 0 in half the runs. Never anything else: no
//!   line is read twice, and no line outside the window between the end of
//!   the copy and the truncation is lost. Rename-and-create rotation has no
//!   such window: prefer it.
//! - A truncation followed by new content that starts with the very same
//!   bytes as the old and grows past our position before we look is not
//!   detectable; neither is a truncation to a size above our position. In
//!   place truncation to a size that is not 0 is taken as truncation to 0:
//!   the bytes before it may be read twice rather than lost.
//! - A file rotated away while the daemon was not running is looked for in
//!   its directory, then moved (`olddir`) or compressed (`.gz`) in the
//!   directories below and beside it (see `archive.rs`); one found nowhere
//!   (deleted, or compressed in another format) is gone: its checkpoint is
//!   dropped with a notice and counted in `position_lost`. A generation
//!   rotated away while stopped whose name does not follow the lineage rule
//!   above is not found.
//! - Between the end of the read and the check of the first bytes there is
//!   a window of microseconds: if a file is truncated exactly then, the bytes
//!   just read are treated as suspect and read again from the copy if there
//!   is one, else dropped.
//! - The copy is searched in the truncated file's own directory only, and
//!   only if it is not itself matched by the pattern (a pattern that matches
//!   rotated names reads every rotated file as a file of its own).
//! - A file that starts at its end in the middle of a line longer than
//!   `max_line` skips that line; its checkpoint then points inside the line.
//!
//! # Checkpoints
//!
//! [`FileTail::checkpoints`] gives one [`FileCheckpoint`] per tracked file,
//! its offset just past the last complete line handed out, so that a restart
//! from checkpoints stored together with the incidents of those lines reads
//! every line exactly once. An over-long line counts as handed out only once
//! its newline has been seen, when its cut head is handed out.
//!
//! # Where things are
//!
//! This file ties the parts together: [`FileTail`] sweeps and reads.
//! Which files the pattern names is `discovery`'s; which file is which
//! (rotation, deletion, truncation, copies) `identity`'s; where to resume
//! after a restart [`checkpoint`]'s; turning one open file's bytes into
//! lines `reading`'s; what is reported to the caller `notice`'s.

mod archive;
pub mod checkpoint;
mod discovery;
mod identity;
mod notice;
mod reading;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::lines::DEFAULT_MAX_LINE;

pub use discovery::{check_pattern, PatternError};
pub use notice::{Notice, NoticeKind};
pub use reading::READ_CHUNK;

use checkpoint::FileCheckpoint;
pub use discovery::base_dir;
use discovery::{parent_dir, Unreadable};
use identity::{Ident, Place};
use notice::notice;
use reading::{ReadFail, Start, Tracked};

/// Default for [`TailOptions::rotated_grace`]: long enough for a daemon to
/// get its reopen signal from logrotate's postrotate and act on it.
pub const DEFAULT_ROTATED_GRACE: Duration = Duration::from_secs(60);

/// What to follow and how.
#[derive(Clone, Debug)]
pub struct TailOptions {
    /// Name of the configured input, copied into checkpoints.
    pub input: String,
    /// A path or a glob (`/var/log/nginx/*access.log`).
    pub pattern: String,
    /// On the very first start of the input (no checkpoints at all), begin
    /// the files that already exist at their end. Files appearing later, and
    /// every file after a restart that has no checkpoint, are read from the
    /// beginning.
    pub start_at_end: bool,
    /// Lines longer than this are cut to `max_line` bytes, the rest of the
    /// line skipped and counted in [`TailStats::cut_lines`].
    pub max_line: usize,
    /// How long a rotated-away or deleted file that has been read to its end
    /// and no longer grows is kept open, for writers that append until they
    /// reopen.
    pub rotated_grace: Duration,
    /// How long after a failed open a file is tried again; doubled at each
    /// failure in a row, up to [`MAX_RETRY_FACTOR`] times this. A file that
    /// stays unreadable then costs an attempt every half-minute, not one at
    /// every wakeup of a busy pipeline.
    pub retry_unreadable: Duration,
}

/// The longest wait between two attempts to open an unreadable file, in
/// units of [`TailOptions::retry_unreadable`].
pub const MAX_RETRY_FACTOR: u32 = 32;

impl TailOptions {
    /// Options with the defaults: read from the beginning, lines up to
    /// [`DEFAULT_MAX_LINE`], [`DEFAULT_ROTATED_GRACE`].
    pub fn new(input: impl Into<String>, pattern: impl Into<String>) -> Self {
        TailOptions {
            input: input.into(),
            pattern: pattern.into(),
            start_at_end: false,
            max_line: DEFAULT_MAX_LINE,
            rotated_grace: DEFAULT_ROTATED_GRACE,
            retry_unreadable: Duration::from_secs(1),
        }
    }
}

/// Counters since the tail was created, and gauges as of the last sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Lines handed out.
    pub lines: u64,
    /// File bytes consumed by those lines, including the skipped tails of
    /// cut lines.
    pub bytes: u64,
    /// Lines longer than `max_line`, handed out cut.
    pub cut_lines: u64,
    /// Failed attempts to open, stat or read a file.
    pub read_errors: u64,
    /// Files seen rotated away or deleted.
    pub rotations: u64,
    /// Truncations detected.
    pub truncations: u64,
    /// Checkpointed files found nowhere at restart (gone, nor moved nor
    /// compressed where logrotate puts them): their unread lines are lost.
    pub position_lost: u64,
    /// Files held open.
    pub files_open: u64,
    /// Files under the pattern that cannot be opened.
    pub files_unreadable: u64,
    /// Sum over open files of size minus offset: bytes not yet handed out.
    pub bytes_behind: u64,
}

/// What happened since the tail was created, for [`TailStats`].
#[derive(Default)]
struct Counters {
    lines: u64,
    bytes: u64,
    cut_lines: u64,
    read_errors: u64,
    rotations: u64,
    truncations: u64,
    position_lost: u64,
}

/// Follows the files matching one path or glob. See the module docs.
pub struct FileTail {
    opts: TailOptions,
    /// Sorted by `seq`.
    files: Vec<Tracked>,
    unreadable: HashMap<PathBuf, Unreadable>,
    glob_errors: HashSet<PathBuf>,
    /// The pattern matched no file at the last sweep, and that was said.
    told_nothing_matched: bool,
    /// Directories of the last sweep's matches.
    found_dirs: BTreeSet<PathBuf>,
    base_dir: PathBuf,
    next_seq: u64,
    /// Round-robin start of `read`, so one file with a large backlog does
    /// not hold the others back.
    cursor: usize,
    /// Shared read buffer; its length only grows (no zeroing per read).
    buf: Vec<u8>,
    chunk: usize,
    counters: Counters,
    /// Notices raised outside `sweep`, returned by the next one.
    pending: Vec<Notice>,
    #[cfg(test)]
    deny_open: HashSet<PathBuf>,
}

impl FileTail {
    /// Starts following `opts.pattern`. With `checkpoints` (a restart),
    /// each is matched to its file by identity: among the pattern's current
    /// files, else in the directory of its last path (rotated away while we
    /// were stopped), where it is read on from its offset; a checkpoint
    /// whose file is gone is dropped with a notice. Files are opened here;
    /// notices from that come out of the first [`sweep`](Self::sweep).
    pub fn new(opts: TailOptions, checkpoints: Vec<FileCheckpoint>) -> Result<Self, PatternError> {
        let mut tail = Self::unstarted(opts)?;
        tail.start(checkpoints);
        Ok(tail)
    }

    fn unstarted(opts: TailOptions) -> Result<Self, PatternError> {
        check_pattern(&opts.pattern)?;
        let base_dir = base_dir(&opts.pattern);
        Ok(FileTail {
            opts,
            files: Vec::new(),
            unreadable: HashMap::new(),
            glob_errors: HashSet::new(),
            told_nothing_matched: false,
            found_dirs: BTreeSet::new(),
            base_dir,
            next_seq: 0,
            cursor: 0,
            buf: Vec::new(),
            chunk: READ_CHUNK,
            counters: Counters::default(),
            pending: Vec::new(),
            #[cfg(test)]
            deny_open: HashSet::new(),
        })
    }

    fn start(&mut self, checkpoints: Vec<FileCheckpoint>) {
        let mut notices = Vec::new();
        let found = self.expand(&mut notices);
        if checkpoints.is_empty() {
            for f in &found {
                let start = if self.opts.start_at_end {
                    match fs::metadata(&f.path) {
                        Ok(m) => Start::End(m.len()),
                        Err(_) => Start::Beginning,
                    }
                } else {
                    Start::Beginning
                };
                self.open_found(f, start, &mut notices);
            }
        } else {
            self.restore(checkpoints, &found, &mut notices);
        }
        self.pending = notices;
    }

    /// Directories whose changes should wake the pipeline: the pattern's
    /// fixed leading directory, and the directory of every file matched or
    /// held open.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.found_dirs.clone();
        dirs.insert(self.base_dir.clone());
        for f in &self.files {
            dirs.insert(parent_dir(&f.path));
        }
        dirs.into_iter().collect()
    }

    /// Looks at the file system: expands the pattern, opens new files,
    /// notices rotation, deletion, truncation and files that became (un)
    /// readable, and marks rotated files past their grace for closing.
    /// A stat per matched file and, for files that changed, a read of their
    /// first bytes: cheap enough for every wakeup.
    pub fn sweep(&mut self) -> Vec<Notice> {
        let mut notices = std::mem::take(&mut self.pending);
        let found = self.expand(&mut notices);
        let now = Instant::now();

        self.refresh_files(now, &mut notices);
        self.follow_renames(&found, now, &mut notices);

        let tracked: HashSet<Ident> = self.files.iter().map(|f| f.id).collect();
        for f in &found {
            let waiting = self
                .unreadable
                .get(&f.path)
                .is_some_and(|u| u.id == f.id && now < u.retry_at);
            if !tracked.contains(&f.id) && !waiting {
                self.open_found(f, Start::Beginning, &mut notices);
            }
        }
        let still: HashSet<&Path> = found.iter().map(|f| f.path.as_path()).collect();
        self.unreadable.retain(|p, _| still.contains(p.as_path()));

        for f in &mut self.files {
            if f.place != Place::Active
                && f.pos >= f.size
                && now.duration_since(f.last_growth) >= self.opts.rotated_grace
            {
                f.closing = true;
            }
        }
        self.found_dirs = found.iter().map(|f| parent_dir(&f.path)).collect();
        notices
    }

    /// Hands out complete lines: `sink(path, lines)` gets buffers of one or
    /// more whole lines, each ending in `\n` (a final line without one waits
    /// for it; a cut line comes cut, with `\n`). Files are visited in turn,
    /// until about `max_bytes` have been read; a rotated file with unread
    /// bytes is finished before its successor is read. Bytes are passed on
    /// as they are: invalid UTF-8 and NUL included.
    ///
    /// Returns the bytes read from files in this call, skipped tails of cut
    /// lines included: 0 means every file is at its end for now.
    pub fn read(&mut self, max_bytes: usize, sink: &mut dyn FnMut(&Path, &[u8])) -> usize {
        let budget = max_bytes.max(1);
        let mut total = 0;
        // Files closed or reset by a truncation in one pass may let others
        // (their successors, themselves) be read in the next: returning 0
        // before that would wrongly say all is read. Bounded, in case a
        // file keeps changing under us.
        for _ in 0..4 {
            let (read, changed) = self.read_pass(budget - total, sink);
            total += read;
            if !changed || total >= budget {
                break;
            }
        }
        total
    }

    /// One turn over the files; also says whether files were closed or
    /// reset.
    fn read_pass(&mut self, budget: usize, sink: &mut dyn FnMut(&Path, &[u8])) -> (usize, bool) {
        let n = self.files.len();
        if n == 0 {
            return (0, false);
        }
        let start = self.cursor % n;
        self.cursor = self.cursor.wrapping_add(1);
        // Most of the time nothing is rotated: skip the lineage checks.
        let any_rotated = self.files.iter().any(|f| f.place != Place::Active);
        let mut total = 0usize;
        let mut truncated = Vec::new();
        let mut closed = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        for k in 0..n {
            if total >= budget {
                break;
            }
            let i = (start + k) % n;
            if any_rotated && self.waits_for_predecessor(i) {
                continue;
            }
            let f = &mut self.files[i];
            match f.read_lines(
                &mut buf,
                self.chunk,
                self.opts.max_line.max(1),
                budget - total,
                &mut self.counters,
                sink,
            ) {
                Ok((read, eof)) => {
                    f.failing = false;
                    total += read;
                    if eof && f.closing {
                        f.flush_partial(&mut buf, &mut self.counters, sink);
                        closed.push(i);
                    }
                }
                Err(ReadFail::Truncated) => truncated.push(i),
                Err(ReadFail::Io(e)) => {
                    self.counters.read_errors += 1;
                    if !f.failing {
                        f.failing = true;
                        self.pending.push(notice(
                            &f.path,
                            NoticeKind::ReadError,
                            format!("read failed at offset {}: {e}", f.pos),
                        ));
                    }
                }
            }
        }
        self.buf = buf;
        closed.sort_unstable();
        for &i in closed.iter().rev() {
            let f = self.files.remove(i);
            self.pending.push(notice(
                &f.path,
                NoticeKind::Closed,
                format!("read to its end ({} bytes) and closed", f.offset),
            ));
        }
        if !truncated.is_empty() {
            // Closed files were removed above: shift the truncated files'
            // indexes past them (a file is never both).
            let mut pending = std::mem::take(&mut self.pending);
            let shift: Vec<usize> = truncated
                .iter()
                .map(|&t| t - closed.iter().filter(|&&c| c < t).count())
                .collect();
            self.handle_truncations(&shift, &mut pending);
            self.pending = pending;
        }
        (total, !closed.is_empty() || !truncated.is_empty())
    }

    /// Gives back the read buffer, which a burst grows to a whole read's
    /// budget (megabytes), and the partial lines' room.
    pub fn shrink(&mut self) {
        self.buf = Vec::new();
        for f in &mut self.files {
            f.carry.shrink_to_fit();
        }
    }

    pub fn stats(&self) -> TailStats {
        let c = &self.counters;
        TailStats {
            lines: c.lines,
            bytes: c.bytes,
            cut_lines: c.cut_lines,
            read_errors: c.read_errors,
            rotations: c.rotations,
            truncations: c.truncations,
            position_lost: c.position_lost,
            files_open: self.files.len() as u64,
            files_unreadable: self.unreadable.len() as u64,
            bytes_behind: self
                .files
                .iter()
                .map(|f| f.size.max(f.pos) - f.offset)
                .sum(),
        }
    }

    /// Paths and offsets of the tracked files, in reading order (for tests
    /// and diagnostics).
    pub fn files(&self) -> Vec<(PathBuf, u64)> {
        self.files
            .iter()
            .map(|f| (f.path.clone(), f.offset))
            .collect()
    }

    /// Whether file `i` must wait: an earlier file of its lineage (rotated
    /// away from the same path, or the copy of its old content) still has
    /// unread bytes.
    fn waits_for_predecessor(&self, i: usize) -> bool {
        let f = &self.files[i];
        if f.place != Place::Active {
            return false;
        }
        self.files[..i].iter().any(|p| {
            p.place != Place::Active
                && p.origin == f.origin
                // One that cannot be read must not stall its successors.
                && !p.failing
                // A closing file still has its unfinished line to flush.
                && (p.closing
                    || match p.file.metadata() {
                        Ok(m) => p.pos < m.len(),
                        // Its own read reports the error; do not block on it.
                        Err(_) => false,
                    })
        })
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn insert(&mut self, t: Tracked) {
        let at = self.files.partition_point(|f| f.seq < t.seq);
        self.files.insert(at, t);
    }
}

#[cfg(test)]
mod tests;
