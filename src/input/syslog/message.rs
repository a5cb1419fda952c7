//! One received syslog message (RFC 3164 or RFC 5424) turned into the line
//! that a file written by rsyslog would hold for it, so that the `syslog`
//! rules match network messages unchanged:
//!
//! ```text
//! <34>Oct 11 22:14:15 fw1 sshd[42]: Failed password ...       (RFC 3164)
//! <34>1 2003-10-11T22:14:15.003Z fw1 sshd 42 - - Failed ...   (RFC 5424)
//!   -> Oct 11 22:14:15 fw1 sshd[42]: Failed password ...
//!   -> 2003-10-11T22:14:15.003Z fw1 sshd[42]: Failed ...
//! ```
//!
//! - The time is kept as the sender wrote it (the analyzer reads both
//!   forms, a year-less one in the configured zone); a message without one
//!   (RFC 5424 `-`, or an RFC 3164 message that starts with its tag) gets
//!   the time of receipt.
//! - A missing host name (`-`, or an RFC 3164 message without one) becomes
//!   the sender's address.
//! - RFC 5424 structured data is not part of the line (rules read the
//!   message), and a leading byte order mark is dropped.
//! - Control characters are written `#ooo` in octal as rsyslog does (a
//!   newline inside a message is `#012`), so one message is one line.
//! - A message without `<PRI>` is taken as RFC 3164 text (old devices send
//!   such); a `<` that does not open a valid priority, a broken RFC 5424
//!   header and an empty message are [`Malformed`].

use std::fmt;

use crate::input::lines::escape_control as escape;
use crate::timestamp::{strip_priority, strip_version};

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// `<` not followed by 1-3 digits of at most 191 and `>`.
    Priority,
    /// An RFC 5424 header field missing, too long or not printable ASCII,
    /// a time stamp that is not RFC 3339, or broken structured data.
    Header,
    /// Nothing after the header.
    Empty,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Priority => "bad priority",
            Malformed::Header => "bad RFC 5424 header",
            Malformed::Empty => "empty message",
        })
    }
}

/// Appends the line for `msg` (one message, framing removed) and its `\n`
/// to `out`; on error `out` is unchanged. `sender` stands in for a missing
/// host name, `now` (RFC 3339) for a missing time.
pub fn to_line(msg: &[u8], sender: &str, now: &str, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let msg = trim_end(msg);
    let rest = match msg.first() {
        Some(b'<') => strip_priority(msg).ok_or(Malformed::Priority)?,
        Some(_) => msg,
        None => return Err(Malformed::Empty),
    };
    if let Some(after_version) = strip_version(rest) {
        return rfc5424(after_version, sender, now, out);
    }
    rfc3164(rest, sender, now, out)
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let Some((&last, head)) = b.split_last() {
        if matches!(last, b'\n' | b'\r' | b'\0') {
            b = head;
        } else {
            break;
        }
    }
    b
}

fn rfc5424(b: &[u8], sender: &str, now: &str, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let mut rest = b;
    let mut field = |max: usize| -> Result<&[u8], Malformed> {
        let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let value = &rest[..end];
        if value.is_empty() || value.len() > max || !value.iter().all(|c| (33..=126).contains(c)) {
            return Err(Malformed::Header);
        }
        rest = rest.get(end + 1..).unwrap_or(&[]);
        Ok(value)
    };
    let time = field(64)?;
    let host = field(255)?;
    let app = field(48)?;
    let procid = field(128)?;
    let _msgid = field(32)?;
    let sd_len = structured_data(rest).ok_or(Malformed::Header)?;
    let text = match rest.get(sd_len..) {
        None | Some([]) => &[][..],
        Some([b' ', text @ ..]) => text,
        Some(_) => return Err(Malformed::Header),
    };
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    if time != b"-" {
        let valid = std::str::from_utf8(time)
            .ok()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok());
        if !valid {
            return Err(Malformed::Header);
        }
    }
    let start = out.len();
    out.extend_from_slice(if time == b"-" { now.as_bytes() } else { time });
    out.push(b' ');
    out.extend_from_slice(if host == b"-" {
        sender.as_bytes()
    } else {
        host
    });
    out.push(b' ');
    if app != b"-" {
        out.extend_from_slice(app);
        if procid != b"-" {
            out.push(b'[');
            out.extend_from_slice(procid);
            out.push(b']');
        }
        out.extend_from_slice(b": ");
    }
    escape(text, out);
    if text.is_empty() && app == b"-" {
        out.truncate(start);
        return Err(Malformed::Empty);
    }
    out.push(b'\n');
    Ok(())
}

/// Length of RFC 5424 STRUCTURED-DATA at the start of `b`: `-`, or one or
/// more `[id param="value" ...]` with `\"`, `\\` and `\]` escaped inside
/// values.
fn structured_data(b: &[u8]) -> Option<usize> {
    if b.first() == Some(&b'-') {
        return Some(1);
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match *b.get(i)? {
                b'\\' if quoted => i += 2,
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b']' if !quoted => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    (i > 0).then_some(i)
}

fn rfc3164(b: &[u8], sender: &str, now: &str, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let (time, rest) = match bsd_time_len(b).or_else(|| rfc3339_len(b)) {
        Some(n) => (&b[..n], b.get(n + 1..).unwrap_or(&[])),
        None => (now.as_bytes(), b),
    };
    let has_time = time.as_ptr() != now.as_ptr();
    // After a time stamp comes the host name, unless the sender left it out
    // and went straight to its tag (`sshd[42]:`, `su:`).
    let host_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let word = &rest[..host_len];
    let is_host = has_time && !word.is_empty() && !word.ends_with(b":") && !word.contains(&b'[');
    let (host, text) = if is_host {
        (word, rest.get(host_len + 1..).unwrap_or(&[]))
    } else {
        (sender.as_bytes(), rest)
    };
    if text.is_empty() {
        return Err(Malformed::Empty);
    }
    out.extend_from_slice(time);
    out.push(b' ');
    out.extend_from_slice(host);
    out.push(b' ');
    escape(text, out);
    out.push(b'\n');
    Ok(())
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss` (day space-padded), optionally with a fraction, at the
/// start of `b` and followed by a space or the end.
fn bsd_time_len(b: &[u8]) -> Option<usize> {
    let head = b.get(..15)?;
    let month: &[u8; 3] = head[..3].try_into().ok()?;
    let digit = |i: usize| head[i].is_ascii_digit();
    let ok = MONTHS.contains(&month)
        && head[3] == b' '
        && (head[4] == b' ' || digit(4))
        && digit(5)
        && head[6] == b' '
        && digit(7)
        && digit(8)
        && head[9] == b':'
        && digit(10)
        && digit(11)
        && head[12] == b':'
        && digit(13)
        && digit(14);
    if !ok {
        return None;
    }
    let mut n = 15;
    if b.get(n) == Some(&b'.') {
        let digits = b[n + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            n += 1 + digits;
        }
    }
    matches!(b.get(n), None | Some(b' ')).then_some(n)
}

/// An RFC 3339 time stamp as the first word (rsyslog's high-precision
/// format inside an RFC 3164 frame).
fn rfc3339_len(b: &[u8]) -> Option<usize> {
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    let n = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
    let word = std::str::from_utf8(&b[..n]).ok()?;
    word.parse::<jiff::Timestamp>().ok().map(|_| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-23T08:00:00.000000+07:00";

    fn line(msg: &[u8]) -> Result<String, Malformed> {
        let mut out = b"kept".to_vec();
        let r = to_line(msg, "192.0.2.7", NOW, &mut out);
        if r.is_err() {
            assert_eq!(out, b"kept", "untouched on error");
        }
        r.map(|()| String::from_utf8_lossy(&out[4..]).into_owned())
    }

    /// Each message and the line it must become.
    fn assert_lines(cases: &[(&[u8], &str)]) {
        for &(msg, want) in cases {
            let context = String::from_utf8_lossy(msg);
            assert_eq!(line(msg).as_deref(), Ok(want), "{context}");
        }
    }

    #[test]
    fn rfc3164_forms() {
        assert_lines(&[
            (
                b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8\n",
                "Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8\n",
            ),
            // What `logger --rfc3164` sends.
            (
                b"<13>Nov  3 09:05:01 web01 sshd[42]: Failed password for root from 203.0.113.5 port 22 ssh2",
                "Nov  3 09:05:01 web01 sshd[42]: Failed password for root from 203.0.113.5 port 22 ssh2\n",
            ),
            // No host name: the tag follows the time.
            (
                b"<13>Nov  3 09:05:01 sshd[42]: hi",
                "Nov  3 09:05:01 192.0.2.7 sshd[42]: hi\n",
            ),
            // No time, no host.
            (
                b"<13>sshd[42]: hi",
                &format!("{NOW} 192.0.2.7 sshd[42]: hi\n"),
            ),
            // No priority at all: taken as text.
            (
                b"Nov  3 09:05:01 fw kernel: DROP",
                "Nov  3 09:05:01 fw kernel: DROP\n",
            ),
            // rsyslog's RFC 3339 stamps in the classic frame, fractions on BSD stamps.
            (
                b"<13>2020-10-31T23:30:00.123+07:00 host app: x",
                "2020-10-31T23:30:00.123+07:00 host app: x\n",
            ),
            (
                b"<13>Oct 31 23:30:00.250 host app: x",
                "Oct 31 23:30:00.250 host app: x\n",
            ),
        ]);
    }

    #[test]
    fn rfc5424_forms() {
        assert_lines(&[
            (
                b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...",
                "2003-10-11T22:14:15.003Z mymachine.example.com evntslog: An application event log entry...\n",
            ),
            (
                b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su 77 ID47 - 'su root' failed",
                "2003-10-11T22:14:15.003Z mymachine.example.com su[77]: 'su root' failed\n",
            ),
            // Nil time and host; escaped brackets and quotes inside SD values.
            (
                br#"<13>1 - - sshd 9 - [a@1 x="q\"]\\" y="]"][b@2] msg"#,
                &format!("{NOW} 192.0.2.7 sshd[9]: msg\n"),
            ),
            // No message after structured data: a line of its own still.
            (
                b"<13>1 2003-10-11T22:14:15Z h app - - [x@1 a=\"b\"]",
                "2003-10-11T22:14:15Z h app: \n",
            ),
        ]);
    }

    #[test]
    fn control_characters_are_escaped_as_rsyslog_does() {
        assert_eq!(
            line(b"<13>Oct 11 22:14:15 h app: a\nb\tc\x00d\x7f\r\n"),
            Ok("Oct 11 22:14:15 h app: a#012b\tc#000d#177\n".into())
        );
    }

    #[test]
    fn malformed_messages() {
        for (msg, why) in [
            (&b""[..], Malformed::Empty),
            (b"\r\n", Malformed::Empty),
            (b"<13>", Malformed::Empty),
            (b"<13>Oct 11 22:14:15 host", Malformed::Empty),
            (b"<192>Oct 11 22:14:15 h a: x", Malformed::Priority),
            (b"<1x>a", Malformed::Priority),
            (b"<>a", Malformed::Priority),
            (b"<1234>a", Malformed::Priority),
            (b"<13", Malformed::Priority),
            (b"<13>1 2003-10-11T22:14:15Z host", Malformed::Header),
            (b"<13>1 yesterday host app - - - x", Malformed::Header),
            (b"<13>1 - host app - - [unterminated x", Malformed::Header),
            (b"<13>1 - host app - - -x", Malformed::Header),
            (b"<13>1 - host \xff\xfe - - - x", Malformed::Header),
            (b"<13>1 - - - - - -", Malformed::Empty),
        ] {
            assert_eq!(line(msg), Err(why), "{}", String::from_utf8_lossy(msg));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"<>0123456789 -[]\"\\=:abcJanOct\n\r\x00\xff.TZ+";
        let mut out = Vec::new();
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let msg: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 50)) as usize + i * 7) % alphabet.len()])
                .collect();
            out.clear();
            if to_line(&msg, "s", NOW, &mut out).is_ok() {
                assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
                assert_eq!(out.last(), Some(&b'\n'));
            }
        }
    }
}
