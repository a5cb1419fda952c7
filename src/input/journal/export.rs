//! Entries read from `journalctl --output=export`, the journal's own
//! serialization (systemd's `JOURNAL_EXPORT_FORMATS`).
//!
//! An entry is a run of fields ended by an empty line. A field is either
//! `NAME=value\n`, or, when the value holds control characters or is not
//! UTF-8, `NAME\n`, a 64-bit little-endian length, the raw bytes and `\n`.
//! A field may appear more than once; like `journalctl -o json`'s first
//! array element, the first value counts.
//!
//! Export is read rather than JSON because it is what `journalctl` writes
//! fastest and what needs no decoding: no escapes, no arrays of byte
//! numbers, no allocation per field (measured in `benches/inputs.sh`:
//! `journalctl -o json` alone took 5.6 s for 500 k entries, `-o export`
//! 1.4 s). Only the fields a line is made of are kept, and each only up to
//! a cap past the line limit, so a hostile multi-megabyte field costs
//! reading, never memory.

use std::io::{self, BufRead, BufReader, Read};

/// The fields a line is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Realtime,
    Hostname,
    Identifier,
    Comm,
    SyslogPid,
    Pid,
    Message,
}

const FIELDS: usize = 7;

impl Field {
    fn from_name(name: &[u8]) -> Option<Field> {
        Some(match name {
            b"__REALTIME_TIMESTAMP" => Field::Realtime,
            b"_HOSTNAME" => Field::Hostname,
            b"SYSLOG_IDENTIFIER" => Field::Identifier,
            b"_COMM" => Field::Comm,
            b"SYSLOG_PID" => Field::SyslogPid,
            b"_PID" => Field::Pid,
            b"MESSAGE" => Field::Message,
            _ => return None,
        })
    }
}

/// One entry; reused from entry to entry so reading allocates nothing once
/// warm.
#[derive(Default)]
pub struct Entry {
    pub cursor: String,
    values: [Vec<u8>; FIELDS],
    seen: [bool; FIELDS],
}

impl Entry {
    /// The field's first value, if the entry had it (possibly cut to the
    /// reader's cap).
    pub fn get(&self, field: Field) -> Option<&[u8]> {
        let i = field as usize;
        self.seen[i].then(|| self.values[i].as_slice())
    }

    fn clear(&mut self) {
        self.cursor.clear();
        self.seen = [false; FIELDS];
        for v in &mut self.values {
            v.clear();
        }
    }

    #[cfg(test)]
    pub fn with(fields: &[(Field, &[u8])]) -> Entry {
        let mut e = Entry {
            cursor: "c".into(),
            ..Entry::default()
        };
        for (f, v) in fields {
            e.seen[*f as usize] = true;
            e.values[*f as usize] = v.to_vec();
        }
        e
    }
}

/// What [`ExportReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Entry,
    /// An entry without a cursor (not one `journalctl` writes): skipped.
    NoCursor,
    End,
}

pub struct ExportReader<R> {
    reader: BufReader<R>,
    /// Bytes kept of a field's value: anything past it is read and dropped.
    cap: usize,
    line: Vec<u8>,
}

impl<R: Read> ExportReader<R> {
    /// Reads `inner` through a buffer of `buffer` bytes.
    pub fn new(inner: R, buffer: usize, cap: usize) -> Self {
        ExportReader {
            reader: BufReader::with_capacity(buffer, inner),
            cap,
            line: Vec::new(),
        }
    }

    /// True when nothing is buffered: `journalctl` has written nothing more
    /// for now.
    pub fn drained(&self) -> bool {
        self.reader.buffer().is_empty()
    }

    /// Reads the next entry into `entry`. [`Next::End`] at the end of the
    /// output; an entry cut short by the end is dropped (its writer died
    /// mid-entry, and a restart reads it again from the cursor).
    pub fn next(&mut self, entry: &mut Entry) -> io::Result<Next> {
        entry.clear();
        let mut any = false;
        let mut has_cursor = false;
        loop {
            self.line.clear();
            let Some(len) = read_line(&mut self.reader, &mut self.line, self.cap + 64)? else {
                return Ok(Next::End);
            };
            if len == 0 {
                if !any {
                    // Blank lines between entries are not entries.
                    continue;
                }
                return Ok(if has_cursor {
                    Next::Entry
                } else {
                    Next::NoCursor
                });
            }
            any = true;
            if let Some(eq) = memchr::memchr(b'=', &self.line) {
                let (name, value) = (&self.line[..eq], &self.line[eq + 1..]);
                if name == b"__CURSOR" {
                    if !has_cursor {
                        entry.cursor = String::from_utf8_lossy(value).into_owned();
                        has_cursor = true;
                    }
                } else if let Some(f) = Field::from_name(name) {
                    let i = f as usize;
                    if !entry.seen[i] {
                        entry.seen[i] = true;
                        let keep = value.len().min(self.cap);
                        entry.values[i].extend_from_slice(&value[..keep]);
                    }
                }
                continue;
            }
            // A binary field: the line is its name.
            let mut size = [0u8; 8];
            self.reader.read_exact(&mut size)?;
            let size = u64::from_le_bytes(size);
            let field = Field::from_name(&self.line).filter(|f| !entry.seen[*f as usize]);
            let sink = field.map(|f| {
                entry.seen[f as usize] = true;
                &mut entry.values[f as usize]
            });
            read_value(&mut self.reader, size, sink, self.cap)?;
            let mut newline = [0u8; 1];
            self.reader.read_exact(&mut newline)?;
            if newline[0] != b'\n' {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "binary journal field not followed by a newline",
                ));
            }
        }
    }
}

/// Reads one line without its `\n`, keeping at most `cap` bytes of it.
/// `None` at the end of input (a last line without `\n` counts as cut off).
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>, cap: usize) -> io::Result<Option<usize>> {
    let mut len = 0;
    loop {
        let buf = match r.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&buf[..take.min(room)]);
        len += take;
        r.consume(take + usize::from(done));
        if done {
            return Ok(Some(len));
        }
    }
}

/// Reads `size` bytes, appending up to `cap` of them to `sink`.
fn read_value(
    r: &mut impl BufRead,
    mut size: u64,
    mut sink: Option<&mut Vec<u8>>,
    cap: usize,
) -> io::Result<()> {
    while size > 0 {
        let buf = match r.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = usize::try_from(size).map_or(buf.len(), |s| s.min(buf.len()));
        if let Some(out) = sink.as_deref_mut() {
            let room = cap.saturating_sub(out.len());
            out.extend_from_slice(&buf[..take.min(room)]);
        }
        r.consume(take);
        size -= take as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = format!("{name}\n").into_bytes();
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    /// What was read of an entry: host name, message, pid.
    type Got = (Next, String, Vec<Option<Vec<u8>>>);

    fn read_all(input: &[u8], cap: usize) -> Vec<Got> {
        let mut r = ExportReader::new(input, 7, cap);
        let mut out = Vec::new();
        let mut e = Entry::default();
        loop {
            let next = r.next(&mut e).expect("readable");
            if next == Next::End {
                return out;
            }
            let fields = [Field::Hostname, Field::Message, Field::Pid]
                .iter()
                .map(|f| e.get(*f).map(<[u8]>::to_vec))
                .collect();
            out.push((next, e.cursor.clone(), fields));
        }
    }

    #[test]
    fn text_and_binary_fields_first_value_wins() {
        let mut input = b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1\n_HOSTNAME=web01\n".to_vec();
        input.extend(binary("MESSAGE", b"bin\xff\nary"));
        input.extend(b"MESSAGE=second\n_BOOT_ID=x\n\n__CURSOR=s=1;i=2\n_PID=7\n\n");
        let got = read_all(&input, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, "s=1;i=1");
        assert_eq!(
            got[0].2,
            vec![
                Some(b"web01".to_vec()),
                Some(b"bin\xff\nary".to_vec()),
                None
            ]
        );
        assert_eq!(got[1].2, vec![None, None, Some(b"7".to_vec())]);
    }

    #[test]
    fn long_values_are_read_through_but_kept_only_to_the_cap() {
        let big = vec![b'x'; 100_000];
        let mut input = b"__CURSOR=a\n".to_vec();
        input.extend(binary("MESSAGE", &big));
        input.extend(binary("UNKNOWN_BLOB", &big));
        input.extend(b"_HOSTNAME=");
        input.extend(&big);
        input.extend(b"\n\n__CURSOR=b\nMESSAGE=after\n\n");
        let got = read_all(&input, 10);
        assert_eq!(got[0].2[0].as_ref().map(Vec::len), Some(10));
        assert_eq!(got[0].2[1].as_ref().map(Vec::len), Some(10));
        assert_eq!(
            (got[1].1.as_str(), got[1].2[1].as_deref()),
            ("b", Some(&b"after"[..]))
        );
    }

    #[test]
    fn an_entry_cut_short_or_without_cursor() {
        let got = read_all(b"_HOSTNAME=h\n\n__CURSOR=a\nMESSAGE=m", 10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Next::NoCursor);
        let mut r = ExportReader::new(&b"__CURSOR=a\nMESSAGE\n\x05\0\0"[..], 64, 10);
        assert!(r.next(&mut Entry::default()).is_err());
    }
}
