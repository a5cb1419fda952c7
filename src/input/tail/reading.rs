//! Reading one open file: whole lines out of the bytes past our position,
//! over-long lines cut, a partial last line held back until its newline.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use memchr::{memchr, memrchr};
use sha2::{Digest, Sha256};

use super::identity::{Ident, Place, HEAD};
use super::Counters;

/// Bytes asked of the kernel per read: large enough that the syscall costs
/// little per byte, small enough that many files stay cheap (the buffer is
/// shared by all files).
pub const READ_CHUNK: usize = 64 * 1024;

/// Where a line being assembled stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LineState {
    /// `carry` holds the start of the current line (at most `max_line`).
    Normal,
    /// The current line is over-long: `carry` holds its first `max_line`
    /// bytes, handed out with a `\n` once the line's own newline is seen;
    /// bytes until then are dropped.
    Cutting,
    /// Started in the middle of a line: drop bytes through the next newline.
    Discarding,
}

/// A file followed: its identity, how far it is read, what is read of
/// the line not yet complete.
pub(super) struct Tracked {
    /// Reading order: a rotated file precedes its successor.
    pub(super) seq: u64,
    /// Where the file was last seen.
    pub(super) path: PathBuf,
    /// The pattern path it was found under; files sharing it are one
    /// lineage, read in `seq` order.
    pub(super) origin: PathBuf,
    pub(super) file: File,
    pub(super) id: Ident,
    /// First bytes of the file (up to `HEAD`), for truncation checks and
    /// the fingerprint.
    pub(super) head: Vec<u8>,
    pub(super) fingerprint: [u8; 32],
    /// Just past the last complete line handed out.
    pub(super) offset: u64,
    /// Next byte to read; `carry` holds what lies between `offset` and here
    /// (minus skipped bytes of a cut line).
    pub(super) pos: u64,
    pub(super) carry: Vec<u8>,
    pub(super) state: LineState,
    /// Size and mtime at the last look, to skip rereading `head` when the
    /// file did not change.
    pub(super) size: u64,
    pub(super) mtime: (i64, i64),
    pub(super) nlink: u64,
    pub(super) last_growth: Instant,
    pub(super) place: Place,
    /// Read to its end and past its grace: flush and drop on the next read.
    pub(super) closing: bool,
    /// An error was reported and not yet followed by a success.
    pub(super) failing: bool,
    /// Its path cannot be looked at (its directory made unreadable): where
    /// it is now is unknown, so it is read on where it was.
    pub(super) unseen: bool,
}

/// Where a file starts being read.
#[derive(Clone, Copy, Debug)]
pub(super) enum Start {
    Beginning,
    /// At the line that was being written when the file was this long.
    End(u64),
    /// A checkpoint offset.
    At(u64),
}

/// Why a read handed out nothing.
pub(super) enum ReadFail {
    Truncated,
    Io(io::Error),
}

impl From<io::Error> for ReadFail {
    fn from(e: io::Error) -> Self {
        ReadFail::Io(e)
    }
}

impl Tracked {
    /// Tracks an open file from `start`. `Ok(None)` if it is not a regular
    /// file (replaced since it was listed).
    pub(super) fn open(
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
            unseen: false,
        }))
    }

    pub(super) fn unread(&self) -> u64 {
        self.size.max(self.pos) - self.offset
    }

    /// Reads up to about `budget` bytes and hands out the complete lines.
    /// Returns the bytes read and whether the end of the file was reached.
    pub(super) fn read_lines(
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
    pub(super) fn flush_partial(
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

/// Where to start reading so as to begin with the line that contains
/// position `p` (or starts there), and in what state.
pub(super) fn line_start_before(
    file: &File,
    p: u64,
    max_line: usize,
) -> io::Result<(u64, LineState)> {
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

pub(super) fn read_at(file: &File, out: &mut [u8], off: u64) -> io::Result<usize> {
    loop {
        match file.read_at(out, off) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Fills `out` from `off` until full or at the end of the file.
pub(super) fn read_up_to(file: &File, mut off: u64, out: &mut [u8]) -> io::Result<usize> {
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
