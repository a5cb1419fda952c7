//! Splits a byte stream into runs of whole lines, with a cap on line length.
//!
//! Handing the matcher many lines at once (instead of one call per line) is
//! what lets it scan at DFA speed. Memory is bounded by the buffer size
//! whatever the input: a line longer than the cap is cut, its tail skipped
//! and counted, never accumulated.

use std::io::{self, Read};

use memchr::{memchr, memrchr};

pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
pub const DEFAULT_BUFFER: usize = 1 << 20;

/// A run of lines from [`LineChunks::next_chunk`].
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Whole lines, each ending in `\n` except possibly the last one, which
    /// is then either the file's unterminated final line or a cut line.
    pub data: &'a [u8],
    /// Lines in `data`.
    pub lines: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub bytes: u64,
    pub lines: u64,
    /// Lines longer than the cap: their first `max_line` bytes were kept.
    pub cut_lines: u64,
}

/// Appends `text` with control characters (but tab) written `#ooo` in
/// octal, as rsyslog writes them: a message with a newline inside stays one
/// line, and rules see what they would see in a file rsyslog wrote.
pub fn escape_control(text: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for (i, &c) in text.iter().enumerate() {
        if (c < 0x20 && c != b'\t') || c == 0x7f {
            out.extend_from_slice(&text[from..i]);
            out.extend_from_slice(&[b'#', b'0' + (c >> 6), b'0' + ((c >> 3) & 7), b'0' + (c & 7)]);
            from = i + 1;
        }
    }
    out.extend_from_slice(&text[from..]);
}

pub struct LineChunks<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes of `buf` holding data not yet handed out.
    filled: usize,
    /// Bytes at the front of `buf` handed out by the last call.
    consumed: usize,
    max_line: usize,
    /// Inside an over-long line whose head was already handed out.
    skipping: bool,
    eof: bool,
    stats: LineStats,
}

impl<R: Read> LineChunks<R> {
    pub fn new(reader: R, max_line: usize) -> Self {
        Self::with_buffer(reader, max_line, DEFAULT_BUFFER)
    }

    pub fn with_buffer(reader: R, max_line: usize, buffer: usize) -> Self {
        let max_line = max_line.max(1);
        LineChunks {
            reader,
            // Room for a whole maximal line plus its newline, so a line at
            // the cap is never mistaken for an over-long one.
            buf: vec![0; buffer.max(max_line + 1)],
            filled: 0,
            consumed: 0,
            max_line,
            skipping: false,
            eof: false,
            stats: LineStats::default(),
        }
    }

    pub fn stats(&self) -> LineStats {
        self.stats
    }

    /// The next run of lines, or `None` at the end of input. An unterminated
    /// final line is returned at the end: a scanned file is finished.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        self.buf.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        loop {
            if let Some(last) = memrchr(b'\n', &self.buf[..self.filled]) {
                return Ok(Some(self.hand_out(last + 1, 0)));
            }
            if self.filled > self.max_line {
                self.stats.cut_lines += 1;
                self.skipping = true;
                let cut = self.max_line;
                self.consumed = self.filled;
                self.stats.lines += 1;
                self.stats.bytes += self.filled as u64;
                return Ok(Some(Chunk {
                    data: &self.buf[..cut],
                    lines: 1,
                }));
            }
            if self.eof {
                if self.filled == 0 {
                    return Ok(None);
                }
                let n = self.filled;
                return Ok(Some(self.hand_out(n, 1)));
            }
            self.fill()?;
        }
    }

    fn hand_out(&mut self, len: usize, unterminated: u64) -> Chunk<'_> {
        self.consumed = len;
        let data = &self.buf[..len];
        let lines = memchr::memchr_iter(b'\n', data).count() as u64 + unterminated;
        self.stats.lines += lines;
        self.stats.bytes += len as u64;
        Chunk { data, lines }
    }

    fn fill(&mut self) -> io::Result<()> {
        let n = loop {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(());
        }
        let new = self.filled..self.filled + n;
        if self.skipping {
            // The tail of a cut line: drop it up to and including its newline.
            self.stats.bytes += n as u64;
            if let Some(i) = memchr(b'\n', &self.buf[new.clone()]) {
                self.skipping = false;
                let keep = new.start + i + 1..new.end;
                self.stats.bytes -= keep.len() as u64;
                self.buf.copy_within(keep.clone(), self.filled);
                self.filled += keep.len();
            }
        } else {
            self.filled = new.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to exercise
    /// lines split across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(
        data: &[u8],
        step: usize,
        max_line: usize,
        buffer: usize,
    ) -> (Vec<Vec<u8>>, LineStats) {
        let mut chunks = LineChunks::with_buffer(Trickle { data, step }, max_line, buffer);
        let mut lines = Vec::new();
        while let Some(c) = chunks.next_chunk().expect("in-memory read") {
            let mut n = 0;
            for l in c.data.split_inclusive(|&b| b == b'\n') {
                lines.push(l.strip_suffix(b"\n").unwrap_or(l).to_vec());
                n += 1;
            }
            assert_eq!(c.lines, n, "chunk line count");
        }
        (lines, chunks.stats())
    }

    #[test]
    fn whole_lines_whatever_the_read_sizes() {
        let data = b"one\ntwo\n\nfour\nlast-without-newline";
        for step in 1..data.len() {
            let (lines, stats) = collect(data, step, 100, 8);
            assert_eq!(
                lines,
                vec![&b"one"[..], b"two", b"", b"four", b"last-without-newline"],
                "step {step}"
            );
            assert_eq!(stats.lines, 5);
            assert_eq!(stats.bytes, data.len() as u64);
            assert_eq!(stats.cut_lines, 0);
        }
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 10_000));
        data.extend(b"\nafter\n");
        data.extend(std::iter::repeat_n(b'y', 30));
        for step in [1, 7, 64, 100_000] {
            let (lines, stats) = collect(&data, step, 16, 64);
            assert_eq!(
                lines,
                vec![&b"short"[..], &[b'x'; 16], b"after", &[b'y'; 16]],
                "step {step}"
            );
            assert_eq!(stats.cut_lines, 2);
            assert_eq!(stats.lines, 4);
            assert_eq!(stats.bytes, data.len() as u64);
        }
    }

    #[test]
    fn a_line_exactly_at_the_cap_is_whole() {
        let (lines, stats) = collect(b"abcd\nefgh\n", 3, 4, 1);
        assert_eq!(lines, vec![&b"abcd"[..], b"efgh"]);
        assert_eq!(stats.cut_lines, 0);
    }

    #[test]
    fn empty_input() {
        let (lines, stats) = collect(b"", 10, 10, 10);
        assert!(lines.is_empty());
        assert_eq!(stats, LineStats::default());
    }
}
