//! Tells which log format a file holds from its first lines, for
//! `canhgac scan` without `--type`, and whether a line has its input type's
//! shape. The shapes are here; which input type has which, and which wins
//! when several fit, is in the rows of [`super::types`].

use super::types::{self, Sniffed};

/// How many non-empty lines to look at.
const SAMPLE_LINES: usize = 20;

/// The input type most of the first lines look like, or `None` when no
/// format is recognised. Combined-format access logs are reported as
/// `apache`: nginx writes the same format and access-log rules read both.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let mut votes: Vec<(&'static str, usize)> = Vec::new();
    for line in head
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(SAMPLE_LINES)
    {
        if let Some(kind) = classify(line) {
            match votes.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => votes.push((kind, 1)),
            }
        }
    }
    votes.into_iter().max_by_key(|(_, n)| *n).map(|(k, _)| k)
}

/// Whether `line` is written in the format of `input_type`, as an input of
/// that type reads it (a syslog input also holds lines of programs that log
/// an access-log line as their message). Lines of a type that has no shape
/// of its own count as recognised.
pub fn recognised(input_type: &str, line: &[u8]) -> bool {
    types::named(input_type).is_none_or(|t| (t.shape)(line))
}

/// The input type of the lowest sniffing rank whose shape `line` fits.
fn classify(line: &[u8]) -> Option<&'static str> {
    types::ALL
        .iter()
        .filter_map(|t| match t.sniffed {
            Sniffed::Rank(rank) => Some((rank, t)),
            Sniffed::As(_) => None,
        })
        .filter(|(_, t)| (t.shape)(line))
        .min_by_key(|&(rank, _)| rank)
        .map(|(_, t)| t.name)
}

/// An IIS log line: W3C extended, or the combined line it is rewritten to.
pub fn is_iis(line: &[u8]) -> bool {
    super::w3c::is_w3c(line) || is_access(line)
}

/// An application's own log line: one with a dated stamp where such logs write it.
pub fn is_app(line: &[u8]) -> bool {
    crate::timestamp::dated_inside(line)
}

fn digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

fn at(line: &[u8], i: usize, len: usize) -> &[u8] {
    line.get(i..i + len).unwrap_or(&[])
}

/// A month's three letters, in any case. One comparison of the lowered
/// bytes, not twelve: the matcher asks it of every line it finds a tag in.
fn month(b: &[u8]) -> bool {
    let &[x, y, z] = b else {
        return false;
    };
    matches!(
        &[x | 0x20, y | 0x20, z | 0x20],
        b"jan"
            | b"feb"
            | b"mar"
            | b"apr"
            | b"may"
            | b"jun"
            | b"jul"
            | b"aug"
            | b"sep"
            | b"oct"
            | b"nov"
            | b"dec"
    )
}

fn weekday(b: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
    b.len() == 3 && DAYS.iter().any(|d| d.eq_ignore_ascii_case(b))
}

/// `hh:mm:ss` at `i`.
fn clock(line: &[u8], i: usize) -> bool {
    let t = at(line, i, 8);
    t.len() == 8
        && digits(&t[0..2])
        && t[2] == b':'
        && digits(&t[3..5])
        && t[5] == b':'
        && digits(&t[6..8])
}

/// `dd-Mmm-yyyy` at the start of `b`, with `sep` for `-`.
fn day_month_year(b: &[u8], sep: u8) -> bool {
    digits(at(b, 0, 2))
        && at(b, 2, 1) == [sep]
        && month(at(b, 3, 3))
        && at(b, 6, 1) == [sep]
        && digits(at(b, 7, 4))
}

/// `Www Mmm dd hh:mm:ss` (ctime) at `i`.
fn ctime(line: &[u8], i: usize) -> bool {
    weekday(at(line, i, 3))
        && month(at(line, i + 4, 3))
        && at(line, i + 8, 2)
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ')
        && clock(line, i + 11)
}

/// `[Sun Dec 04 04:47:44 2005] [error] ...`
pub(super) fn is_apache_error(line: &[u8]) -> bool {
    line.first() == Some(&b'[') && ctime(line, 1) && memchr::memmem::find(line, b"] [").is_some()
}

/// `2020/10/31 23:30:00 [error] 123#0: ...`
pub(super) fn is_nginx_error(line: &[u8]) -> bool {
    digits(at(line, 0, 4))
        && at(line, 4, 1) == b"/"
        && at(line, 7, 1) == b"/"
        && clock(line, 11)
        && at(line, 19, 2) == b" ["
}

/// `Sun Dec  4 04:47:44 2005 -> ...`
pub(super) fn is_clamav(line: &[u8]) -> bool {
    ctime(line, 0) && memchr::memmem::find(line, b" -> ").is_some()
}

/// `10/31/2020-23:30:00.307554  [**] [1:2200074:1] ...` (Suricata's fast.log; Snort's
/// alert_fast, whose stamp may lack the year), or `[Drop] [**]` in IPS mode.
pub(super) fn is_ids_fast(line: &[u8]) -> bool {
    let date = digits(at(line, 0, 2)) && at(line, 2, 1) == b"/" && digits(at(line, 3, 2));
    let clock_at = if at(line, 5, 1) == b"/" && digits(at(line, 6, 4)) && at(line, 10, 1) == b"-" {
        11
    } else if at(line, 5, 1) == b"-" {
        6
    } else {
        return false;
    };
    date && clock(line, clock_at)
        && memchr::memmem::find(at(line, clock_at, 40), b"[**] [").is_some()
}

/// `[2020-10-31 23:30:00] NOTICE[1638] chan_sip.c: ...` or `[Oct 31 23:30:00] NOTICE[1638]: ...`
/// (Asterisk's own `messages`/`full` files; the year-less stamp is its `dateformat` of older
/// releases), the level word in capitals right after the stamp.
pub(super) fn is_asterisk(line: &[u8]) -> bool {
    let dated = digits(at(line, 1, 4))
        && at(line, 5, 1) == b"-"
        && digits(at(line, 6, 2))
        && at(line, 8, 1) == b"-"
        && digits(at(line, 9, 2))
        && at(line, 11, 1) == b" "
        && clock(line, 12);
    let yearless = month(at(line, 1, 3))
        && at(line, 4, 1) == b" "
        && at(line, 5, 2)
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ')
        && at(line, 7, 1) == b" "
        && clock(line, 8);
    if line.first() != Some(&b'[') || !(dated || yearless) {
        return false;
    }
    let Some(close) = line.iter().take(40).position(|&b| b == b']') else {
        return false;
    };
    let rest = at(line, close + 1, 16);
    let level = rest
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    rest.first() == Some(&b' ')
        && level >= 4
        && matches!(at(rest, 1 + level, 2), [b'[', _] | [b' ', b'['])
}

/// `31-Oct-2020 23:30:00.123 ...` (BIND's own channel files).
pub(super) fn is_bind(line: &[u8]) -> bool {
    day_month_year(line, b'-') && clock(line, 12)
}

/// `Sat Oct 31 23:30:00 2020 [pid 1234] ...` (vsftpd's own log file).
pub(super) fn is_vsftpd(line: &[u8]) -> bool {
    let padded = ctime(line, 0) && at(line, 24, 6) == b" [pid ";
    // Some builds write the day unpadded: `Mon Jun 8 12:08:53 2020`.
    let unpadded = weekday(at(line, 0, 3))
        && month(at(line, 4, 3))
        && at(line, 9, 1) == b" "
        && clock(line, 10)
        && at(line, 23, 6) == b" [pid ";
    padded || unpadded
}

/// MySQL / MariaDB error log: `201031  1:45:18 [Warning] ...` (5.x) or
/// `2020-10-31T01:45:18.920566Z 2 [Note] ...` (8.0: thread id, then the level).
pub(super) fn is_mysql(line: &[u8]) -> bool {
    let old = digits(at(line, 0, 6))
        && at(line, 6, 1) == b" "
        && at(line, 9, 1) == b":"
        && memchr::memmem::find(&line[..line.len().min(40)], b" [").is_some();
    if old {
        return true;
    }
    // `2020-10-31T01:45:18Z 2 [Note]` (8.0), `2015-10-07 06:09:42 5907 [Warning]`
    // (5.6, MariaDB 10), `2015-10-07  8:25:38 139845 [Warning]` (MariaDB).
    let iso = digits(at(line, 0, 4)) && at(line, 4, 1) == b"-" && at(line, 7, 1) == b"-";
    let clock_at = match at(line, 10, 2) {
        b"T0" | b"T1" | b"T2" => 11,
        [b' ', b' '] => 12,
        [b' ', _] => 11,
        _ => return false,
    };
    if !iso || at(line, clock_at + if clock_at == 12 { 1 } else { 2 }, 1) != b":" {
        return false;
    }
    let after_time = &line[clock_at..];
    let Some(space) = after_time.iter().take(40).position(|&b| b == b' ') else {
        return false;
    };
    let rest = &after_time[space + 1..];
    let thread = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    thread > 0 && rest[thread..].starts_with(b" [")
}

/// `[31-Oct-2020 23:30:00 +0200]: ...` (Roundcube's logs; PHP's error log).
pub(super) fn is_roundcube(line: &[u8]) -> bool {
    line.first() == Some(&b'[')
        && digits(at(line, 1, 2))
        && at(line, 3, 1) == b"-"
        && month(at(line, 4, 3))
        && at(line, 7, 1) == b"-"
        && clock(line, 13)
}

/// `[1604161800] unbound[1234:0] info: ...`
pub(super) fn is_unbound(line: &[u8]) -> bool {
    let Some(close) = line.iter().take(13).position(|&b| b == b']') else {
        return false;
    };
    line.first() == Some(&b'[')
        && close > 1
        && digits(&line[1..close])
        && line[close..].starts_with(b"] unbound[")
}

/// `host ident user [31/Oct/2020:23:30:00 +0700] "GET / HTTP/1.1" ...`, or a JSON access-log
/// object that reads as one.
pub(super) fn is_access(line: &[u8]) -> bool {
    if line.first() == Some(&b'{') {
        return super::json_access::is_json_access(line);
    }
    let Some(open) = memchr::memchr(b'[', &line[..line.len().min(300)]) else {
        return false;
    };
    let stamp = at(line, open + 1, 20);
    stamp.len() == 20
        && day_month_year(stamp, b'/')
        && stamp[11] == b':'
        && memchr::memmem::find(&line[open..], b"] \"").is_some()
}

/// Classic BSD syslog, RFC 3339-stamped (rsyslog) or RFC 5424, with or without `<PRI>`.
pub(super) fn is_syslog(line: &[u8]) -> bool {
    let mut rest = line;
    let mut rfc5424 = false;
    if rest.first() == Some(&b'<') {
        let Some(close) = rest.iter().take(6).position(|&b| b == b'>') else {
            return false;
        };
        rest = &rest[close + 1..];
        if rest.starts_with(b"1 ") {
            rest = &rest[2..];
            rfc5424 = true;
        }
    }
    // Cisco and other devices put the year after the day: `Oct 31 2020 23:30:00`.
    let classic = || {
        month(at(rest, 0, 3))
            && at(rest, 3, 1) == b" "
            && (clock(rest, 7) || (digits(at(rest, 7, 4)) && clock(rest, 12)))
    };
    let rfc3339 = || {
        digits(at(rest, 0, 4))
            && at(rest, 4, 1) == b"-"
            && at(rest, 7, 1) == b"-"
            && matches!(at(rest, 10, 1), b"T" | b" ")
            && clock(rest, 11)
            // Applications start their own lines with the same stamps; a syslog line has a
            // program tag after it (RFC 5424 has fields of its own instead).
            && (rfc5424 || iso_stamp_len(rest).is_some_and(|n| tagged(&rest[n..])))
    };
    classic() || rfc3339()
}

/// Length of the ISO 8601 stamp that starts `b`: one word (`2020-10-31T23:30:00Z`) or two
/// (`2020-10-31 23:30:00,121`).
fn iso_stamp_len(b: &[u8]) -> Option<usize> {
    let from = if at(b, 10, 1) == b" " { 11 } else { 0 };
    Some(from + b[from..].iter().position(|&c| c == b' ')?)
}

/// Whether `after` (from the space after a stamp) holds a program tag, `prog:`, `prog[pid]:`
/// or `prog[pid]`, as its first or second word (after a host name).
fn tagged(after: &[u8]) -> bool {
    let mut words = after.split(|&c| c == b' ').filter(|w| !w.is_empty());
    words.by_ref().take(2).any(is_tag)
}

fn is_tag(word: &[u8]) -> bool {
    // ProFTPD's own SystemLog writes `proftpd[2]` without the colon.
    let (word, colon) = match word.strip_suffix(b":") {
        Some(w) => (w, true),
        None => (word, false),
    };
    let name = match word.strip_suffix(b"]") {
        Some(w) => match w.iter().rposition(|&c| c == b'[') {
            Some(open) if digits(&w[open + 1..]) => &w[..open],
            _ => return false,
        },
        None if colon => word,
        None => return false,
    };
    !name.is_empty()
        // Cisco's `%ASA-4-106023:` is a tag too.
        && name.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'@' | b'%')
        })
}

/// Length of a syslog line's header up to its message: stamp, host, tag
/// and `": "` (`Oct 31 23:30:00 web01 nginx[12]: `), or `None` if `line`
/// does not start with one.
pub fn syslog_header_len(line: &[u8]) -> Option<usize> {
    let i = stamp_end(line)?;
    let rest = line.get(i..)?.strip_prefix(b" ")?;
    let host = rest.iter().take(256).position(|&b| b == b' ')?;
    let tag_start = i + 1 + host + 1;
    let tag = line.get(tag_start..)?;
    let colon = tag.iter().take(64).position(|&b| b == b':' || b == b' ')?;
    (tag.get(colon..colon + 2) == Some(b": ")).then_some(tag_start + colon + 2)
}

/// A syslog line from its tag (the program field) on: after the stamp and
/// the host, or right after the stamp when the word there is already a tag
/// (`Oct 31 23:30:00 sshd[1]: ...` or `[sshd] ...`, written without a host,
/// which never ends in `:` nor starts with `[`); `None` if
/// `line` does not start with a syslog stamp.
pub fn syslog_tag(line: &[u8]) -> Option<&[u8]> {
    let i = stamp_end(line)?;
    let rest = line.get(i..)?.strip_prefix(b" ")?;
    let word = rest.iter().take(256).position(|&b| b == b' ')?;
    if rest[..word].ends_with(b":") || rest.starts_with(b"[") {
        return Some(rest);
    }
    rest.get(word + 1..)
}

/// Where a syslog line's stamp ends (`<PRI>` and the RFC 5424 version
/// before it): classic (`Oct 31 23:30:00`, 15 bytes), RFC 3339 (a word) or
/// its form with a space (`2020-10-31 23:30:00`).
fn stamp_end(line: &[u8]) -> Option<usize> {
    if !is_syslog(line) {
        return None;
    }
    let mut i = 0;
    if line.first() == Some(&b'<') {
        i = line.iter().take(6).position(|&b| b == b'>')? + 1;
        if line[i..].starts_with(b"1 ") {
            i += 2;
        }
    }
    if month(at(line, i, 3)) {
        return Some(if clock(line, i + 7) { i + 15 } else { i + 20 });
    }
    // RFC 3339 is one word; `2020-10-31 23:30:00,121` two.
    let date = line[i..].iter().position(|&b| b == b' ')?;
    if date != 10 {
        return Some(i + date);
    }
    let time = line[i + 11..].iter().position(|&b| b == b' ')?;
    Some(i + 11 + time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_recognised_as_their_input_type_or_not() {
        let ssh = b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186";
        let access =
            br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 203 "-" "UA""#;
        assert!(recognised("syslog", ssh));
        assert!(recognised(
            "syslog",
            b"<165>1 2003-10-11T22:14:15.003Z host app - - - msg"
        ));
        assert!(!recognised("syslog", access));
        assert!(recognised("nginx", access));
        assert!(!recognised("nginx", ssh));
        assert!(!recognised("apache-error", ssh));
        assert!(recognised("unknown-type", b"anything"));
    }

    #[test]
    fn syslog_headers_end_at_the_tag() {
        fn len(l: &str) -> Option<&str> {
            syslog_header_len(l.as_bytes()).map(|n| &l[n..])
        }
        assert_eq!(
            len("Oct 31 23:30:00 web01 nginx: 1.2.3.4 - -"),
            Some("1.2.3.4 - -")
        );
        assert_eq!(len("Oct  1 23:30:00 web01 nginx[12]: x"), Some("x"));
        assert_eq!(
            len("2020-10-31T23:30:00+07:00 web01 httpd[1]: x"),
            Some("x")
        );
        assert_eq!(len("<190>Oct 31 23:30:00 web01 nginx: x"), Some("x"));
        assert_eq!(
            len("2020-10-31 23:30:00,121 web01 proftpd[1]: x"),
            Some("x")
        );
        assert_eq!(
            len("Oct 31 23:30:00 web01 kernel message without tag"),
            None
        );
        assert_eq!(
            len("1.2.3.4 - - [31/Oct/2020:23:30:00 +0700] \"GET / HTTP/1.1\""),
            None
        );
    }

    #[test]
    fn months_are_read_in_any_case_and_nothing_else_is() {
        for m in [
            "jan", "Feb", "MAR", "aPr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "Dec",
        ] {
            assert!(month(m.as_bytes()), "{m}");
        }
        for m in ["ja", "janu", "jbn", "j\x01n", "\x0a\x01\x0e", "ja\u{e9}"] {
            assert!(!month(m.as_bytes()), "{m:?}");
        }
    }

    #[test]
    fn a_syslog_tag_follows_the_host_or_the_stamp() {
        fn tag(l: &str) -> Option<&str> {
            syslog_tag(l.as_bytes()).map(|t| std::str::from_utf8(t).expect("ASCII"))
        }
        assert_eq!(tag("Oct 31 23:30:00 srv sshd[1]: x"), Some("sshd[1]: x"));
        assert_eq!(
            tag("Oct 31 23:30:00 sshd[1]: error: x"),
            Some("sshd[1]: error: x")
        );
        assert_eq!(
            tag("Jun 25 23:53:34 [sshd] User root"),
            Some("[sshd] User root")
        );
        assert_eq!(
            tag("2020-10-31 23:30:00,121 novo proftpd[2] x"),
            Some("proftpd[2] x")
        );
        assert_eq!(
            tag("<34>1 2020-10-31T23:30:00Z srv sshd 42 - - x"),
            Some("sshd 42 - - x")
        );
        assert_eq!(tag("sshd[1]: x"), None);
        assert_eq!(
            tag("<166>Oct 31 2020 23:30:00 fw01 : %ASA-4-106023: Deny tcp"),
            Some(": %ASA-4-106023: Deny tcp")
        );
        assert_eq!(
            tag("2020-10-31T23:30:00+07:00 10.0.0.1 %ASA-4-106023: Deny tcp"),
            Some("%ASA-4-106023: Deny tcp")
        );
        // An application's own line: no program tag after its date.
        assert_eq!(
            tag("2020-10-31 23:30:00,357 WARN  [org.keycloak.events] (executor-thread-1) x"),
            None
        );
    }

    #[test]
    fn majority_of_first_lines_wins_and_garbage_is_none() {
        let mixed = "garbage\nDec 10 06:55:46 h sshd[1]: a\nDec 10 06:55:47 h sshd[1]: b\n\n[x]\n";
        assert_eq!(sniff(mixed.as_bytes()), Some("syslog"));
        assert_eq!(sniff(b"hello world\n\xff\xfe\0\0\n"), None);
        assert_eq!(sniff(b""), None);
    }
}
