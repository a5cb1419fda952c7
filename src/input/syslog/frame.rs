//! Syslog over TCP, split into messages as RFC 6587 describes: each frame
//! is either octet-counted (`LEN SP MSG`, LEN a decimal without leading
//! zero) or newline-terminated (`MSG LF`), decided per frame by its first
//! byte, so a connection may mix both. Stray `LF`, `CR` and `NUL` between
//! frames are skipped.
//!
//! A message longer than the limit is never buffered whole: it is reported
//! as [`Frame::Oversized`] once, and its bytes are skipped (to the end of
//! its count, or to the next newline). A connection that ends inside an
//! octet-counted frame ends with [`Frame::Truncated`]; one that ends inside
//! a newline-terminated frame hands out what it has (senders often close
//! without the last newline).

/// What [`Framer::push`] finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Message(&'a [u8]),
    Oversized,
    Truncated,
}

enum Skip {
    None,
    Bytes(usize),
    ToNewline,
}

/// Frames from one connection's byte stream.
pub struct Framer {
    max: usize,
    buf: Vec<u8>,
    skip: Skip,
}

/// An octet count needs at most this many digits (10 MB is far beyond any
/// limit); more digits mean the frame is text that starts with a number.
const MAX_COUNT_DIGITS: usize = 8;

impl Framer {
    pub fn new(max: usize) -> Self {
        Framer {
            max,
            buf: Vec::new(),
            skip: Skip::None,
        }
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes of the stream; complete frames go to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut dyn FnMut(Frame<'_>)) {
        self.buf.extend_from_slice(data);
        let consumed = self.frames(out);
        self.buf.drain(..consumed);
    }

    /// The stream ended: a last newline-less message, or a truncated frame.
    pub fn finish(&mut self, out: &mut dyn FnMut(Frame<'_>)) {
        let rest = std::mem::take(&mut self.buf);
        let rest = trim_start(&rest);
        match self.skip {
            Skip::Bytes(_) | Skip::ToNewline => {}
            Skip::None if rest.is_empty() => {}
            Skip::None => match octet_count(rest) {
                Count::Frame { .. } | Count::NeedMore => out(Frame::Truncated),
                Count::NotCounted => out(Frame::Message(rest)),
            },
        }
        self.skip = Skip::None;
    }

    /// Hands out every complete frame in `buf`; returns the bytes consumed.
    fn frames(&mut self, out: &mut dyn FnMut(Frame<'_>)) -> usize {
        let buf = &self.buf[..];
        let mut pos = 0;
        loop {
            match self.skip {
                Skip::Bytes(n) => {
                    let take = n.min(buf.len() - pos);
                    pos += take;
                    if take < n {
                        self.skip = Skip::Bytes(n - take);
                        return pos;
                    }
                    self.skip = Skip::None;
                }
                Skip::ToNewline => match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(nl) => {
                        pos += nl + 1;
                        self.skip = Skip::None;
                    }
                    None => return buf.len(),
                },
                Skip::None => {}
            }
            while pos < buf.len() && matches!(buf[pos], b'\n' | b'\r' | b'\0') {
                pos += 1;
            }
            let rest = &buf[pos..];
            if rest.is_empty() {
                return pos;
            }
            match octet_count(rest) {
                Count::NeedMore => return pos,
                Count::Frame { header, len } if len > self.max => {
                    out(Frame::Oversized);
                    pos += header;
                    self.skip = Skip::Bytes(len);
                }
                Count::Frame { header, len } => {
                    if rest.len() < header + len {
                        return pos;
                    }
                    out(Frame::Message(&rest[header..header + len]));
                    pos += header + len;
                }
                Count::NotCounted => match memchr::memchr(b'\n', rest) {
                    Some(nl) if nl > self.max => {
                        out(Frame::Oversized);
                        pos += nl + 1;
                    }
                    Some(nl) => {
                        out(Frame::Message(&rest[..nl]));
                        pos += nl + 1;
                    }
                    None if rest.len() > self.max => {
                        out(Frame::Oversized);
                        self.skip = Skip::ToNewline;
                        return buf.len();
                    }
                    None => return pos,
                },
            }
        }
    }
}

enum Count {
    /// `header` bytes of `LEN SP`, then `len` bytes of message.
    Frame {
        header: usize,
        len: usize,
    },
    /// Only digits so far.
    NeedMore,
    NotCounted,
}

fn octet_count(b: &[u8]) -> Count {
    if !matches!(b.first(), Some(b'1'..=b'9')) {
        return Count::NotCounted;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > MAX_COUNT_DIGITS {
        return Count::NotCounted;
    }
    match b.get(digits) {
        None => Count::NeedMore,
        Some(b' ') => {
            let len = b[..digits]
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
            Count::Frame {
                header: digits + 1,
                len,
            }
        }
        Some(_) => Count::NotCounted,
    }
}

fn trim_start(mut b: &[u8]) -> &[u8] {
    while let [b'\n' | b'\r' | b'\0', rest @ ..] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum F {
        M(String),
        Big,
        Cut,
    }

    fn run(max: usize, pieces: &[&[u8]]) -> Vec<F> {
        let mut got = Vec::new();
        let mut framer = Framer::new(max);
        let mut sink = |f: Frame<'_>| {
            got.push(match f {
                Frame::Message(m) => F::M(String::from_utf8_lossy(m).into_owned()),
                Frame::Oversized => F::Big,
                Frame::Truncated => F::Cut,
            })
        };
        for p in pieces {
            framer.push(p, &mut sink);
        }
        framer.finish(&mut sink);
        got
    }

    fn m(s: &str) -> F {
        F::M(s.into())
    }

    #[test]
    fn both_framings_mixed_on_one_connection() {
        let stream: &[u8] = b"<13>one\n10 <13>two\nxy<13>three\r\n\n\x0014 <13>four\nfive\n";
        let want = vec![
            m("<13>one"),
            m("<13>two\nxy"),
            m("<13>three\r"),
            m("<13>four\nfive\n"),
        ];
        assert_eq!(run(1024, &[stream]), want);
        // Every split of the stream gives the same frames.
        for cut in 0..stream.len() {
            assert_eq!(
                run(1024, &[&stream[..cut], &stream[cut..]]),
                want,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(1024, &bytes), want);
    }

    #[test]
    fn text_starting_with_digits_is_newline_framed() {
        assert_eq!(
            run(100, &[b"2020-10-31T23:30:00Z host app: x\n123456789 y\n"]),
            vec![m("2020-10-31T23:30:00Z host app: x"), m("123456789 y")]
        );
    }

    #[test]
    fn oversized_frames_are_skipped_without_buffering_them() {
        let mut big = b"30 ".to_vec();
        big.extend_from_slice(&[b'a'; 30]);
        big.extend_from_slice(b"<13>after\n");
        big.extend_from_slice(&[b'b'; 50]);
        big.extend_from_slice(b"\n<13>last\n");
        assert_eq!(
            run(10, &[&big]),
            vec![F::Big, m("<13>after"), F::Big, m("<13>last")]
        );
        // Fed in small pieces, the framer never holds much more than the limit.
        let mut framer = Framer::new(10);
        let mut n = 0;
        for piece in big.chunks(3) {
            framer.push(piece, &mut |_| n += 1);
            assert!(framer.buffered() <= 10 + 3, "{}", framer.buffered());
        }
        assert_eq!(n, 4);
        // An endless line without a newline is one oversized frame.
        let endless = vec![b'x'; 1000];
        let pieces: Vec<&[u8]> = endless.chunks(7).collect();
        assert_eq!(run(10, &pieces), vec![F::Big]);
    }

    #[test]
    fn end_of_stream() {
        assert_eq!(run(100, &[b"<13>no newline"]), vec![m("<13>no newline")]);
        assert_eq!(run(100, &[b"20 <13>short"]), vec![F::Cut]);
        assert_eq!(run(100, &[b"12"]), vec![F::Cut]);
        assert_eq!(run(100, &[b"\n\r\n"]), vec![]);
    }
}
