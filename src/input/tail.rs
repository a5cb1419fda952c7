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
//! [`FINGERPRINT_BYTES`] of its content, never by its name: names move under
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
//!   every sweep tries again. A file that was unreadable when the input first
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
//! - A rotated file that is compressed *and* deleted while the daemon is not
//!   running is gone: its checkpoint is dropped with a notice. A generation
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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use memchr::{memchr, memrchr};
use sha2::{Digest, Sha256};

use super::checkpoint::{FileCheckpoint, FINGERPRINT_BYTES};
use super::lines::DEFAULT_MAX_LINE;

const HEAD: usize = FINGERPRINT_BYTES as usize;

/// Bytes asked of the kernel per read: large enough that the syscall costs
/// little per byte, small enough that many files stay cheap (the buffer is
/// shared by all files).
pub const READ_CHUNK: usize = 64 * 1024;

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
}

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
    /// Files held open.
    pub files_open: u64,
    /// Files under the pattern that cannot be opened.
    pub files_unreadable: u64,
    /// Sum over open files of size minus offset: bytes not yet handed out.
    pub bytes_behind: u64,
}

/// What kind of thing a [`Notice`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// A file is now followed.
    Opened,
    /// A file was found again from its checkpoint after a restart.
    Resumed,
    /// A followed file was renamed away from its path.
    Rotated,
    /// A followed file was deleted (it is still read to its end).
    Deleted,
    /// A followed file was truncated.
    Truncated,
    /// The copy of a truncated file was found and is read from our offset.
    CopyFound,
    /// A rotated or deleted file was read to its end and closed.
    Closed,
    /// A file cannot be opened; it is retried on every sweep.
    Unreadable,
    /// A file that could not be opened now can.
    Readable,
    /// Reading or inspecting an open file failed; retried.
    ReadError,
    /// A checkpoint matched no file and was dropped.
    CheckpointDropped,
    /// Expanding the pattern hit an error (e.g. an unreadable directory).
    Pattern,
    /// Watching a directory for changes failed; the periodic sweep covers it.
    Watch,
}

impl NoticeKind {
    /// Whether the notice reports something an operator may have to fix or
    /// may have lost lines over (log it as a warning), as opposed to normal
    /// life of log files.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            NoticeKind::Unreadable
                | NoticeKind::ReadError
                | NoticeKind::CheckpointDropped
                | NoticeKind::Pattern
                | NoticeKind::Watch
        )
    }
}

/// Something that happened to a file, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub path: PathBuf,
    pub kind: NoticeKind,
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

fn notice(path: &Path, kind: NoticeKind, message: impl Into<String>) -> Notice {
    Notice {
        path: path.to_path_buf(),
        kind,
        message: message.into(),
    }
}

/// Invalid pattern given to [`FileTail::new`].
#[derive(Debug, thiserror::Error)]
#[error("invalid file pattern {pattern:?}: {source}")]
pub struct PatternError {
    pub pattern: String,
    #[source]
    pub source: glob::PatternError,
}

/// Checks a path or glob pattern the way [`FileTail::new`] will, for config
/// validation.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    glob::Pattern::new(pattern)
        .map(drop)
        .map_err(|source| PatternError {
            pattern: pattern.to_string(),
            source,
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Ident {
    dev: u64,
    ino: u64,
}

impl Ident {
    fn of(meta: &Metadata) -> Self {
        Ident {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where a line being assembled stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineState {
    /// `carry` holds the start of the current line (at most `max_line`).
    Normal,
    /// The current line is over-long: `carry` holds its first `max_line`
    /// bytes, handed out with a `\n` once the line's own newline is seen;
    /// bytes until then are dropped.
    Cutting,
    /// Started in the middle of a line: drop bytes through the next newline.
    Discarding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Under the pattern.
    Active,
    /// Renamed away from the pattern (rotated), or the copy of a truncated
    /// file: read to its end, then closed after the grace period.
    Moved,
    /// Unlinked while we hold it: as `Moved`.
    Deleted,
}

struct Tracked {
    /// Reading order: a rotated file precedes its successor.
    seq: u64,
    /// Where the file was last seen.
    path: PathBuf,
    /// The pattern path it was found under; files sharing it are one
    /// lineage, read in `seq` order.
    origin: PathBuf,
    file: File,
    id: Ident,
    /// First bytes of the file (up to `HEAD`), for truncation checks and
    /// the fingerprint.
    head: Vec<u8>,
    fingerprint: [u8; 32],
    /// Just past the last complete line handed out.
    offset: u64,
    /// Next byte to read; `carry` holds what lies between `offset` and here
    /// (minus skipped bytes of a cut line).
    pos: u64,
    carry: Vec<u8>,
    state: LineState,
    /// Size and mtime at the last look, to skip rereading `head` when the
    /// file did not change.
    size: u64,
    mtime: (i64, i64),
    nlink: u64,
    last_growth: Instant,
    place: Place,
    /// Read to its end and past its grace: flush and drop on the next read.
    closing: bool,
    /// An error was reported and not yet followed by a success.
    failing: bool,
}

/// Where a file starts being read.
#[derive(Clone, Copy, Debug)]
enum Start {
    Beginning,
    /// At the line that was being written when the file was this long.
    End(u64),
    /// A checkpoint offset.
    At(u64),
}

struct Found {
    path: PathBuf,
    id: Ident,
}

struct Unreadable {
    id: Ident,
    kind: io::ErrorKind,
    /// For a file present at the first start with `start_at_end`: its size
    /// then, where it starts once readable.
    start_at: Option<u64>,
    /// Its checkpoint, for a file that was unreadable when we restarted:
    /// where it resumes once readable, if it is still that file.
    resume: Option<FileCheckpoint>,
}

#[derive(Default)]
struct Counters {
    lines: u64,
    bytes: u64,
    cut_lines: u64,
    read_errors: u64,
    rotations: u64,
    truncations: u64,
}

enum ReadFail {
    Truncated,
    Io(io::Error),
}

impl From<io::Error> for ReadFail {
    fn from(e: io::Error) -> Self {
        ReadFail::Io(e)
    }
}

/// Follows the files matching one path or glob. See the module docs.
pub struct FileTail {
    opts: TailOptions,
    /// Sorted by `seq`.
    files: Vec<Tracked>,
    unreadable: HashMap<PathBuf, Unreadable>,
    glob_errors: HashSet<PathBuf>,
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

        let mut truncated = Vec::new();
        for (i, f) in self.files.iter_mut().enumerate() {
            match f.refresh(now) {
                Ok(false) => f.failing = false,
                Ok(true) => truncated.push(i),
                Err(e) => {
                    self.counters.read_errors += 1;
                    if !f.failing {
                        f.failing = true;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::ReadError,
                            format!("cannot inspect: {e}"),
                        ));
                    }
                }
            }
        }
        self.handle_truncations(&truncated, &mut notices);

        let by_id: HashMap<Ident, &Path> = found.iter().map(|f| (f.id, f.path.as_path())).collect();
        for f in &mut self.files {
            if let Some(&path) = by_id.get(&f.id) {
                if f.path != path {
                    notices.push(notice(
                        &f.path,
                        NoticeKind::Rotated,
                        format!("renamed to {}, still under the pattern", path.display()),
                    ));
                    f.path = path.to_path_buf();
                }
                f.place = Place::Active;
                f.closing = false;
                continue;
            }
            match f.place {
                Place::Active => {
                    self.counters.rotations += 1;
                    // The grace period runs from the rotation: the writer
                    // may not have written for a while before it.
                    f.last_growth = now;
                    if f.nlink == 0 {
                        f.place = Place::Deleted;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Deleted,
                            format!("deleted; reading its last {} bytes", f.unread()),
                        ));
                    } else {
                        f.place = Place::Moved;
                        let old = f.path.clone();
                        let whereto = match find_by_id(&parent_dir(&old), f.id) {
                            Some(p) => {
                                let s = format!("rotated to {}", p.display());
                                f.path = p;
                                s
                            }
                            None => "rotated away".to_string(),
                        };
                        notices.push(notice(
                            &old,
                            NoticeKind::Rotated,
                            format!("{whereto}; reading its last {} bytes", f.unread()),
                        ));
                    }
                }
                Place::Moved if f.nlink == 0 => f.place = Place::Deleted,
                _ => {}
            }
        }

        let tracked: HashSet<Ident> = self.files.iter().map(|f| f.id).collect();
        for f in &found {
            if !tracked.contains(&f.id) {
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

    /// One checkpoint per file still tracked, its offset just past the last
    /// complete line handed to `sink`.
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        self.files
            .iter()
            .map(|f| FileCheckpoint {
                input: self.opts.input.clone(),
                path: f.path.to_string_lossy().into_owned(),
                dev: f.id.dev,
                ino: f.id.ino,
                fingerprint_len: f.head.len() as u64,
                fingerprint: f.fingerprint,
                offset: f.offset,
            })
            .collect()
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

    /// The pattern's regular files, with their identity.
    fn expand(&mut self, notices: &mut Vec<Notice>) -> Vec<Found> {
        let mut found = Vec::new();
        let mut errors = HashSet::new();
        let paths = match glob::glob(&self.opts.pattern) {
            Ok(paths) => paths,
            // Checked in `new`.
            Err(_) => return found,
        };
        for entry in paths {
            match entry {
                Ok(path) => match fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => found.push(Found {
                        id: Ident::of(&meta),
                        path,
                    }),
                    // Directories, FIFOs (opening one would block), sockets.
                    Ok(_) => {}
                    // Gone between listing and stat: the next sweep sees.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        if !self.glob_errors.contains(&path) {
                            notices.push(notice(
                                &path,
                                NoticeKind::Pattern,
                                format!("cannot stat: {e}"),
                            ));
                        }
                        errors.insert(path);
                    }
                },
                Err(e) => {
                    let path = e.path().to_path_buf();
                    if !self.glob_errors.contains(&path) {
                        notices.push(notice(
                            &path,
                            NoticeKind::Pattern,
                            format!("cannot list: {}", e.error()),
                        ));
                    }
                    errors.insert(path);
                }
            }
        }
        self.glob_errors = errors;
        found
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        #[cfg(test)]
        if self.deny_open.contains(path) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        File::open(path)
    }

    /// Starts following a file matched by the pattern, or records why it
    /// cannot be.
    fn open_found(&mut self, found: &Found, start: Start, notices: &mut Vec<Notice>) {
        let path = &found.path;
        let file = match self.open(path) {
            Ok(file) => file,
            Err(e) => {
                self.counters.read_errors += 1;
                let start_at = match start {
                    Start::End(p) => Some(p),
                    _ => self
                        .unreadable
                        .get(path)
                        .filter(|u| u.id == found.id)
                        .and_then(|u| u.start_at),
                };
                let known = self
                    .unreadable
                    .get(path)
                    .is_some_and(|u| u.id == found.id && u.kind == e.kind());
                let resume = self
                    .unreadable
                    .get_mut(path)
                    .filter(|u| u.id == found.id)
                    .and_then(|u| u.resume.take());
                if !known {
                    notices.push(notice(
                        path,
                        NoticeKind::Unreadable,
                        format!("cannot open: {e}; retrying"),
                    ));
                }
                self.unreadable.insert(
                    path.clone(),
                    Unreadable {
                        id: found.id,
                        kind: e.kind(),
                        start_at,
                        resume,
                    },
                );
                return;
            }
        };
        let mut start = start;
        if let Some(u) = self.unreadable.remove(path) {
            if u.id == found.id {
                if let (Start::Beginning, Some(p)) = (start, u.start_at) {
                    start = Start::End(p);
                }
                if let Some(cp) = u.resume {
                    match checkpoint_holds(&file, &cp) {
                        Ok(true) => start = Start::At(cp.offset),
                        _ => notices.push(notice(
                            path,
                            NoticeKind::CheckpointDropped,
                            "changed while unreadable: its checkpoint no longer applies",
                        )),
                    }
                }
            }
            notices.push(notice(path, NoticeKind::Readable, "readable again"));
        }
        let seq = self.take_seq();
        match Tracked::open(
            file,
            path,
            path,
            start,
            Place::Active,
            seq,
            self.opts.max_line.max(1),
        ) {
            Ok(Some(t)) if t.id == found.id => {
                let from = match start {
                    Start::Beginning => "from the beginning".to_string(),
                    _ => format!("from offset {}", t.offset),
                };
                notices.push(notice(
                    path,
                    NoticeKind::Opened,
                    format!("following {from}"),
                ));
                self.insert(t);
            }
            // Replaced between the listing and the open: next sweep.
            Ok(_) => {}
            Err(e) => {
                self.counters.read_errors += 1;
                notices.push(notice(
                    path,
                    NoticeKind::ReadError,
                    format!("cannot read its start: {e}; retrying"),
                ));
            }
        }
    }

    fn restore(
        &mut self,
        checkpoints: Vec<FileCheckpoint>,
        found: &[Found],
        notices: &mut Vec<Notice>,
    ) {
        let max_line = self.opts.max_line.max(1);
        let by_id: HashMap<Ident, &Found> = found.iter().map(|f| (f.id, f)).collect();
        let mut claimed: HashSet<Ident> = HashSet::new();
        // Rotated files and copies first: they precede their successors.
        let mut before: Vec<Tracked> = Vec::new();
        let mut active: Vec<Tracked> = Vec::new();
        for cp in checkpoints {
            let cp_path = PathBuf::from(&cp.path);
            if cp.input != self.opts.input {
                notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "checkpoint belongs to input {:?}, not {:?}",
                        cp.input, self.opts.input
                    ),
                ));
                continue;
            }
            let id = Ident {
                dev: cp.dev,
                ino: cp.ino,
            };
            if !claimed.insert(id) {
                continue;
            }
            if let Some(f) = by_id.get(&id) {
                let file = match self.open(&f.path) {
                    Ok(file) => file,
                    Err(e) => {
                        // Retried by every sweep; resumes at the checkpoint.
                        self.counters.read_errors += 1;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Unreadable,
                            format!("cannot open to resume: {e}; retrying"),
                        ));
                        self.unreadable.insert(
                            f.path.clone(),
                            Unreadable {
                                id,
                                kind: e.kind(),
                                start_at: None,
                                resume: Some(cp),
                            },
                        );
                        continue;
                    }
                };
                match checkpoint_holds(&file, &cp) {
                    Ok(true) => match Tracked::open(
                        file,
                        &f.path,
                        &f.path,
                        Start::At(cp.offset),
                        Place::Active,
                        0,
                        max_line,
                    ) {
                        Ok(Some(t)) if t.id == id => {
                            notices.push(notice(
                                &f.path,
                                NoticeKind::Resumed,
                                format!("resuming at offset {}", cp.offset),
                            ));
                            active.push(t);
                        }
                        _ => {
                            claimed.remove(&id);
                        }
                    },
                    Ok(false) => {
                        // Truncated or rewritten while we were stopped: its
                        // old content may survive in a copy.
                        self.counters.truncations += 1;
                        notices.push(notice(
                            &f.path,
                            NoticeKind::Truncated,
                            format!(
                                "truncated or replaced since offset {} was checkpointed",
                                cp.offset
                            ),
                        ));
                        let skip: HashSet<Ident> = found.iter().map(|f| f.id).collect();
                        if let Some(t) = self.open_copy(
                            &parent_dir(&f.path),
                            &skip,
                            cp.fingerprint_len,
                            &cp.fingerprint,
                            cp.offset,
                            &f.path,
                            notices,
                        ) {
                            before.push(t);
                        }
                        claimed.remove(&id);
                    }
                    Err(e) => {
                        self.counters.read_errors += 1;
                        claimed.remove(&id);
                        notices.push(notice(
                            &f.path,
                            NoticeKind::ReadError,
                            format!("cannot read its start: {e}"),
                        ));
                    }
                }
                continue;
            }
            // Not under the pattern any more: rotated while we were stopped?
            let dir = parent_dir(&cp_path);
            let Some(path) = find_by_id(&dir, id) else {
                notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "file gone (not under the pattern nor in {}); lines after offset {} are lost",
                        dir.display(),
                        cp.offset
                    ),
                ));
                continue;
            };
            let origin = self
                .lineage_origin(&path)
                .unwrap_or_else(|| cp_path.clone());
            let resumed = self.open(&path).and_then(|file| {
                if checkpoint_holds(&file, &cp)? {
                    Tracked::open(
                        file,
                        &path,
                        &origin,
                        Start::At(cp.offset),
                        Place::Moved,
                        0,
                        max_line,
                    )
                } else {
                    Ok(None)
                }
            });
            match resumed {
                Ok(Some(t)) if t.id == id => {
                    notices.push(notice(
                        &cp_path,
                        NoticeKind::Resumed,
                        format!(
                            "rotated to {} while stopped; resuming it at offset {}",
                            path.display(),
                            cp.offset
                        ),
                    ));
                    before.push(t);
                }
                Ok(_) => notices.push(notice(
                    &cp_path,
                    NoticeKind::CheckpointDropped,
                    format!(
                        "its inode now holds another file ({}); lines after offset {} are lost",
                        path.display(),
                        cp.offset
                    ),
                )),
                Err(e) => {
                    self.counters.read_errors += 1;
                    notices.push(notice(
                        &path,
                        NoticeKind::CheckpointDropped,
                        format!("rotated file cannot be read: {e}"),
                    ))
                }
            }
        }
        let mut known: HashSet<Ident> = claimed.clone();
        known.extend(found.iter().map(|f| f.id));
        known.extend(before.iter().chain(&active).map(|t| t.id));
        let between = self.rotated_while_stopped(&before, &known, notices);
        for mut t in before.into_iter().chain(between).chain(active) {
            t.seq = self.take_seq();
            self.files.push(t);
        }
        for f in found {
            if !claimed.contains(&f.id) {
                self.open_found(f, Start::Beginning, notices);
            }
        }
    }

    /// The pattern path a rotated file came from: the longest start of its
    /// name, cut before a `.`, `-` or `_`, that the pattern matches
    /// (`auth.log.2` → `auth.log`, `site.access.log-20240101.1` →
    /// `site.access.log`).
    fn lineage_origin(&self, path: &Path) -> Option<PathBuf> {
        let pattern = glob::Pattern::new(&self.opts.pattern).ok()?;
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        name.char_indices()
            .rev()
            .filter(|&(i, c)| i > 0 && matches!(c, '.' | '-' | '_'))
            .map(|(i, _)| dir.join(&name[..i]))
            .find(|p| pattern.matches_path(p))
    }

    /// Files written and rotated away entirely while we were stopped (two
    /// or more rotations during the downtime): no checkpoint names them and
    /// the pattern no longer matches them. Found, for each lineage resumed
    /// from a rotated file, as the other uncompressed rotated files of that
    /// lineage last written after it; read from the beginning, oldest
    /// first, after it and before the current file.
    fn rotated_while_stopped(
        &mut self,
        resumed: &[Tracked],
        known: &HashSet<Ident>,
        notices: &mut Vec<Notice>,
    ) -> Vec<Tracked> {
        let Ok(pattern) = glob::Pattern::new(&self.opts.pattern) else {
            return Vec::new();
        };
        // Newest resumed rotated file of each lineage.
        let mut newest: HashMap<PathBuf, (i64, i64)> = HashMap::new();
        for t in resumed.iter().filter(|t| t.place == Place::Moved) {
            if self.lineage_origin(&t.path).as_ref() != Some(&t.origin) {
                continue;
            }
            let m = newest.entry(t.origin.clone()).or_insert(t.mtime);
            *m = (*m).max(t.mtime);
        }
        let mut out = Vec::new();
        for (origin, after) in newest {
            let Ok(entries) = fs::read_dir(parent_dir(&origin)) else {
                continue;
            };
            let mut between: Vec<((i64, i64), PathBuf)> = entries
                .flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    let path = e.path();
                    let mtime = (meta.mtime(), meta.mtime_nsec());
                    (meta.is_file()
                        && mtime > after
                        && !known.contains(&Ident::of(&meta))
                        && !pattern.matches_path(&path)
                        && !is_compressed(&path)
                        && self.lineage_origin(&path).as_ref() == Some(&origin))
                    .then_some((mtime, path))
                })
                .collect();
            between.sort();
            for (_, path) in between {
                let Ok(file) = self.open(&path) else { continue };
                if let Ok(Some(t)) = Tracked::open(
                    file,
                    &path,
                    &origin,
                    Start::Beginning,
                    Place::Moved,
                    0,
                    self.opts.max_line.max(1),
                ) {
                    notices.push(notice(
                        &path,
                        NoticeKind::Resumed,
                        format!(
                            "written and rotated away from {} while stopped; reading it from the beginning",
                            origin.display()
                        ),
                    ));
                    out.push(t);
                }
            }
        }
        out
    }

    /// Resets truncated files to offset 0, reading first the copy of their
    /// old content when one is found.
    fn handle_truncations(&mut self, indexes: &[usize], notices: &mut Vec<Notice>) {
        if indexes.is_empty() {
            return;
        }
        let skip: HashSet<Ident> = self.files.iter().map(|f| f.id).collect();
        let mut copies = Vec::new();
        for &i in indexes {
            self.counters.truncations += 1;
            let (dir, head_len, fp, offset, path, origin) = {
                let f = &self.files[i];
                notices.push(notice(
                    &f.path,
                    NoticeKind::Truncated,
                    format!(
                        "truncated (we were at offset {}); reading it from 0",
                        f.offset
                    ),
                ));
                (
                    parent_dir(&f.path),
                    f.head.len() as u64,
                    f.fingerprint,
                    f.offset,
                    f.path.clone(),
                    f.origin.clone(),
                )
            };
            // An empty head matches any file: no way to tell the copy.
            if head_len > 0 && offset > 0 {
                if let Some(mut copy) =
                    self.open_copy(&dir, &skip, head_len, &fp, offset, &path, notices)
                {
                    copy.origin = origin;
                    // The copy takes the file's place in the reading order.
                    copy.seq = self.files[i].seq;
                    copies.push(copy);
                    self.files[i].seq = self.take_seq();
                }
            }
            let f = &mut self.files[i];
            if let Err(e) = f.reset() {
                self.counters.read_errors += 1;
                notices.push(notice(
                    &f.path,
                    NoticeKind::ReadError,
                    format!("cannot read its start after truncation: {e}"),
                ));
            }
        }
        for c in copies {
            self.insert(c);
        }
        self.files.sort_by_key(|f| f.seq);
    }

    /// Finds and opens the copy of a truncated file (copytruncate): a
    /// regular file in `dir`, not one of `skip`, at least `offset` bytes
    /// long, whose first `fp_len` bytes hash to `fp`; the newest if several.
    #[allow(clippy::too_many_arguments)]
    fn open_copy(
        &mut self,
        dir: &Path,
        skip: &HashSet<Ident>,
        fp_len: u64,
        fp: &[u8; 32],
        offset: u64,
        of: &Path,
        notices: &mut Vec<Notice>,
    ) -> Option<Tracked> {
        if fp_len == 0 || fp_len > FINGERPRINT_BYTES {
            return None;
        }
        let entries = fs::read_dir(dir).ok()?;
        let mut best: Option<(std::time::SystemTime, PathBuf, File)> = None;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file()
                || skip.contains(&Ident::of(&meta))
                || meta.len() < offset.max(fp_len)
            {
                continue;
            }
            let path = entry.path();
            let Ok(file) = self.open(&path) else { continue };
            let mut head = [0u8; HEAD];
            let want = fp_len as usize;
            match read_up_to(&file, 0, &mut head[..want]) {
                Ok(n) if n == want && Sha256::digest(&head[..n]).as_slice() == fp => {}
                _ => continue,
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if best.as_ref().is_none_or(|(t, _, _)| mtime > *t) {
                best = Some((mtime, path, file));
            }
        }
        let (_, path, file) = best?;
        let seq = self.take_seq();
        match Tracked::open(
            file,
            &path,
            of,
            Start::At(offset),
            Place::Moved,
            seq,
            self.opts.max_line.max(1),
        ) {
            Ok(Some(t)) => {
                notices.push(notice(
                    &path,
                    NoticeKind::CopyFound,
                    format!(
                        "copy of truncated {}: reading it from offset {offset} ({} bytes)",
                        of.display(),
                        t.size.saturating_sub(offset)
                    ),
                ));
                Some(t)
            }
            _ => None,
        }
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

impl Tracked {
    /// Tracks an open file from `start`. `Ok(None)` if it is not a regular
    /// file (replaced since it was listed).
    fn open(
        file: File,
        path: &Path,
        origin: &Path,
        start: Start,
        place: Place,
        seq: u64,
        max_line: usize,
    ) -> io::Result<Option<Tracked>> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let size = meta.len();
        let (offset, state) = match start {
            Start::Beginning => (0, LineState::Normal),
            Start::At(off) => (off, LineState::Normal),
            Start::End(p) => line_start_before(&file, p.min(size), max_line)?,
        };
        let mut head = vec![0u8; HEAD];
        let n = read_up_to(&file, 0, &mut head)?;
        head.truncate(n);
        let fingerprint = Sha256::digest(&head).into();
        Ok(Some(Tracked {
            seq,
            path: path.to_path_buf(),
            origin: origin.to_path_buf(),
            id: Ident::of(&meta),
            file,
            head,
            fingerprint,
            offset,
            pos: offset,
            carry: Vec::new(),
            state,
            size,
            mtime: (meta.mtime(), meta.mtime_nsec()),
            nlink: meta.nlink(),
            last_growth: Instant::now(),
            place,
            closing: false,
            failing: false,
        }))
    }

    fn unread(&self) -> u64 {
        self.size.max(self.pos) - self.offset
    }

    /// Re-stats the open file. `Ok(true)` if it was truncated.
    fn refresh(&mut self, now: Instant) -> io::Result<bool> {
        let meta = self.file.metadata()?;
        self.nlink = meta.nlink();
        let size = meta.len();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        if size < self.pos {
            return Ok(true);
        }
        if (size, mtime) != (self.size, self.mtime) && !self.check_head()? {
            return Ok(true);
        }
        if size > self.size {
            self.last_growth = now;
            self.closing = false;
        }
        self.size = size;
        self.mtime = mtime;
        Ok(false)
    }

    /// Whether the file still starts with `head`; extends `head` (and the
    /// fingerprint) while the file is shorter than `HEAD`.
    fn check_head(&mut self) -> io::Result<bool> {
        let mut now = [0u8; HEAD];
        let n = read_up_to(&self.file, 0, &mut now)?;
        let known = self.head.len();
        if n < known || now[..known] != self.head[..] {
            return Ok(false);
        }
        if n > known {
            self.head.extend_from_slice(&now[known..n]);
            self.fingerprint = Sha256::digest(&self.head).into();
        }
        Ok(true)
    }

    /// Back to offset 0 after a truncation.
    fn reset(&mut self) -> io::Result<()> {
        self.offset = 0;
        self.pos = 0;
        self.carry.clear();
        self.state = LineState::Normal;
        self.closing = false;
        self.head.clear();
        self.check_head()?;
        self.fingerprint = Sha256::digest(&self.head).into();
        let meta = self.file.metadata()?;
        self.size = meta.len();
        self.mtime = (meta.mtime(), meta.mtime_nsec());
        self.last_growth = Instant::now();
        Ok(())
    }

    /// Reads up to about `budget` bytes and hands out the complete lines.
    /// Returns the bytes read and whether the end of the file was reached.
    fn read_lines(
        &mut self,
        buf: &mut Vec<u8>,
        chunk: usize,
        max_line: usize,
        budget: usize,
        counters: &mut Counters,
        sink: &mut dyn FnMut(&Path, &[u8]),
    ) -> Result<(usize, bool), ReadFail> {
        // buf[..complete]: whole lines to hand out; buf[line_start..w]: the
        // line being assembled; buf[r..end]: read but not yet looked at.
        // Lines are compacted in place (w <= r) when a cut drops bytes.
        let mut w = self.carry.len();
        if buf.len() < w + chunk {
            buf.resize(w + chunk, 0);
        }
        buf[..w].copy_from_slice(&self.carry);
        let mut line_start = 0usize;
        let mut complete = 0usize;
        let mut complete_off = self.offset;
        let mut state = self.state;
        let mut pos = self.pos;
        let (mut lines, mut cut) = (0u64, 0u64);
        let mut read = 0usize;
        let mut eof = false;
        while read < budget {
            let want = chunk.min(budget - read).max(1);
            if buf.len() < w + want {
                buf.resize(w + want, 0);
            }
            let n = read_at(&self.file, &mut buf[w..w + want], pos)?;
            if n == 0 {
                eof = true;
                break;
            }
            let (r0, end, base) = (w, w + n, pos);
            pos += n as u64;
            read += n;
            let mut r = r0;
            while r < end {
                let nl = memchr(b'\n', &buf[r..end]);
                match (state, nl) {
                    (LineState::Normal, Some(i)) => {
                        let have = w - line_start;
                        if have + i <= max_line {
                            if w != r {
                                buf.copy_within(r..r + i + 1, w);
                            }
                            w += i + 1;
                        } else {
                            let keep = max_line - have;
                            if w != r {
                                buf.copy_within(r..r + keep, w);
                            }
                            w += keep;
                            buf[w] = b'\n';
                            w += 1;
                            cut += 1;
                        }
                        r += i + 1;
                        lines += 1;
                    }
                    (LineState::Normal, None) => {
                        let have = w - line_start;
                        let keep = (end - r).min(max_line - have);
                        if w != r {
                            buf.copy_within(r..r + keep, w);
                        }
                        w += keep;
                        if have + (end - r) > max_line {
                            state = LineState::Cutting;
                        }
                        r = end;
                        continue;
                    }
                    (LineState::Cutting, Some(i)) => {
                        r += i + 1;
                        buf[w] = b'\n';
                        w += 1;
                        lines += 1;
                        cut += 1;
                        state = LineState::Normal;
                    }
                    (LineState::Discarding, Some(i)) => {
                        r += i + 1;
                        state = LineState::Normal;
                    }
                    (_, None) => {
                        r = end;
                        continue;
                    }
                }
                line_start = w;
                complete = w;
                complete_off = base + (r - r0) as u64;
            }
        }
        if read > 0 && !self.check_head()? {
            // What was read may belong to new content written after a
            // truncation: hand out nothing from it.
            return Err(ReadFail::Truncated);
        }
        if complete > 0 {
            sink(&self.path, &buf[..complete]);
        }
        self.carry.clear();
        self.carry.extend_from_slice(&buf[complete..w]);
        self.state = state;
        counters.lines += lines;
        counters.cut_lines += cut;
        counters.bytes += complete_off - self.offset;
        self.offset = complete_off;
        self.pos = pos;
        if pos > self.size {
            self.size = pos;
            self.last_growth = Instant::now();
        }
        Ok((read, eof))
    }

    /// Hands out a final line that will never get its newline (the file is
    /// being closed), with one added.
    fn flush_partial(
        &mut self,
        buf: &mut Vec<u8>,
        counters: &mut Counters,
        sink: &mut dyn FnMut(&Path, &[u8]),
    ) {
        let line = match self.state {
            LineState::Normal if !self.carry.is_empty() => true,
            LineState::Cutting => {
                counters.cut_lines += 1;
                true
            }
            _ => false,
        };
        if line {
            buf.clear();
            buf.extend_from_slice(&self.carry);
            buf.push(b'\n');
            sink(&self.path, buf);
            counters.lines += 1;
        }
        counters.bytes += self.pos - self.offset;
        self.offset = self.pos;
        self.carry.clear();
        self.state = LineState::Normal;
    }
}

/// Whether an open file is still the one a checkpoint describes and holds
/// at least its offset.
fn checkpoint_holds(file: &File, cp: &FileCheckpoint) -> io::Result<bool> {
    if cp.fingerprint_len > FINGERPRINT_BYTES {
        return Ok(false);
    }
    let mut head = [0u8; HEAD];
    let want = cp.fingerprint_len as usize;
    let n = read_up_to(file, 0, &mut head[..want])?;
    let size = file.metadata()?.len();
    Ok(n == want && Sha256::digest(&head[..n]).as_slice() == cp.fingerprint && size >= cp.offset)
}

/// Where to start reading so as to begin with the line that contains
/// position `p` (or starts there), and in what state.
fn line_start_before(file: &File, p: u64, max_line: usize) -> io::Result<(u64, LineState)> {
    if p == 0 {
        return Ok((0, LineState::Normal));
    }
    let window = p.min(max_line as u64 + 1);
    let mut tail = vec![0u8; window as usize];
    let n = read_up_to(file, p - window, &mut tail)?;
    tail.truncate(n);
    Ok(match memrchr(b'\n', &tail) {
        Some(i) => (p - window + i as u64 + 1, LineState::Normal),
        None if window == p => (0, LineState::Normal),
        // Longer than a line may be: it would be cut anyway; skip it.
        None => (p, LineState::Discarding),
    })
}

/// Whether a name says compressed: such rotated files are not text to us.
fn is_compressed(path: &Path) -> bool {
    const SUFFIXES: [&str; 10] = [
        "gz", "bz2", "xz", "zst", "lz4", "lzma", "lz", "Z", "zip", "br",
    ];
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SUFFIXES.contains(&e))
}

/// The regular file in `dir` with identity `id`, if any.
fn find_by_id(dir: &Path, id: Ident) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let meta = e.metadata().ok()?;
        (meta.is_file() && Ident::of(&meta) == id).then(|| e.path())
    })
}

fn read_at(file: &File, out: &mut [u8], off: u64) -> io::Result<usize> {
    loop {
        match file.read_at(out, off) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Fills `out` from `off` until full or at the end of the file.
fn read_up_to(file: &File, mut off: u64, out: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < out.len() {
        let n = read_at(file, &mut out[got..], off)?;
        if n == 0 {
            break;
        }
        got += n;
        off += n as u64;
    }
    Ok(got)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The deepest directory of a pattern without wildcards: new files can
/// only appear below it.
fn base_dir(pattern: &str) -> PathBuf {
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut wild = false;
    for c in path.components() {
        let s = c.as_os_str().to_string_lossy();
        if matches!(c, Component::Normal(_)) && s.contains(['*', '?', '[']) {
            wild = true;
            break;
        }
        base.push(c);
    }
    if wild {
        if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        }
    } else {
        parent_dir(path)
    }
}

#[cfg(test)]
mod tests;
