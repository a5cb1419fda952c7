//! Lines as the rules of their input type expect them, and a word when they
//! are not of that type at all.
//!
//! Rules are written for one canonical form of each type, so that one
//! anchored pattern serves every host. Real systems write variants that the
//! matcher would otherwise read and silently never match:
//! - **RFC 5424 syslog in a file** (rsyslog's `RSYSLOG_SyslogProtocol23Format`,
//!   syslog-ng): `<34>1 2020-10-31T23:30:00Z host sshd 42 - - Failed ...`
//!   becomes `2020-10-31T23:30:00Z host sshd[42]: Failed ...`, the line the
//!   syslog receiver makes of the same message;
//! - **access logs with a virtual host first** (Apache's `vhost_combined`,
//!   nginx's `$host` or `$server_name:$server_port` in front):
//!   `www.example.gov:443 203.0.113.5 - - [...]` loses the virtual host;
//! - **access lines that came through syslog** (nginx's `access_log
//!   syslog:`, Apache's piped `logger`) and were written to a file read as an
//!   access log lose the syslog header;
//! - **IIS's W3C extended log** becomes the combined format ([`W3c`]), and so do
//!   **access logs written as JSON** (nginx's `escape=json`, Traefik, Caddy:
//!   [`json_access`]).
//!
//! Each of these is one line in, one line out, so line numbers hold. A
//! syslog input may also carry access lines among other programs' lines
//! (wrapped in a syslog header, or raw, as `/var/log/messages` can), and an
//! access log may carry syslog lines: those are handed back separately
//! ([`Reshaped::foreign`]) for the rules of the type they are, while the
//! input type's rules still see the whole line. A mixed file is read line
//! by line as what each line is, not as what its first lines were.
//!
//! Checking a type costs little: a whole read is copied only when its first
//! line needs it (files are written in one format), RFC 5424 is looked for
//! with one `memmem` per read, and embedded access lines with another.
//!
//! Lines that are not of the input's type at all (a syslog file configured
//! as `nginx`) are counted and the first is kept, so the daemon, `scan` and
//! `check` can say so instead of reporting nothing. Every line of a
//! source's first [`FULL_CHECK_BYTES`] is checked, then the first line of
//! every read: a wrong type shows at once, and a steady check costs nothing.

use crate::input::json_access;
use crate::input::sniff::{recognised, syslog_header_len};
use crate::input::syslog::message;
use crate::input::w3c::W3c;

/// How much of a source is checked line by line.
pub const FULL_CHECK_BYTES: u64 = 64 << 10;

/// How much of a bad line is kept for the warning.
const EXCERPT_BYTES: usize = 120;

/// The first line of a source that was not of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based, in the source's line count.
    pub line: u64,
    /// The line's start, invalid UTF-8 replaced.
    pub excerpt: String,
}

/// What [`Shaper::reshape`] made of a run of lines.
pub struct Reshaped<'a> {
    /// The lines for the input type's rules: the run itself, or the
    /// rewritten copy.
    pub lines: &'a [u8],
    /// Lines of [`Reshaped::foreign_type`] found among the source's own:
    /// for a syslog source, access-log lines (as messages, or raw); for an
    /// access log, syslog lines. Each with its 0-based index in the run.
    pub foreign: &'a [(usize, Vec<u8>)],
    pub foreign_type: Option<&'static str>,
}

/// Per source: the type, how much has been checked, and buffers.
pub struct Shaper {
    input_type: String,
    check: TypeCheck,
    out: Vec<u8>,
    foreign: Vec<(usize, Vec<u8>)>,
    /// An `iis` input's column layout.
    w3c: W3c,
}

/// How much of a source was checked against its type, and what failed.
#[derive(Default)]
struct TypeCheck {
    checked_bytes: u64,
    unrecognised: u64,
    first_bad: Option<BadLine>,
}

impl Shaper {
    pub fn new(input_type: &str) -> Self {
        Shaper {
            input_type: input_type.to_owned(),
            check: TypeCheck::default(),
            out: Vec::new(),
            foreign: Vec::new(),
            w3c: W3c::default(),
        }
    }

    /// Lines found not to be of the input's type so far.
    pub fn unrecognised(&self) -> u64 {
        self.check.unrecognised
    }

    /// The first of them.
    pub fn first_bad(&self) -> Option<&BadLine> {
        self.check.first_bad.as_ref()
    }

    /// `data` holds whole lines; `lines_before` is how many lines the
    /// source had before them.
    pub fn reshape<'a>(&'a mut self, data: &'a [u8], lines_before: u64) -> Reshaped<'a> {
        self.foreign.clear();
        let access_type = matches!(self.input_type.as_str(), "nginx" | "apache");
        let syslog_type = self.input_type == "syslog";
        let iis_type = self.input_type == "iis";
        let first = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let rewrite = iis_type
            || (access_type && (first.first() == Some(&b'{') || access_line(first) != first))
            || (syslog_type && memchr::memmem::find(data, b">1 ").is_some());
        let lines = if rewrite {
            self.out.clear();
            for line in split_lines(data) {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                if iis_type {
                    let body = body.strip_suffix(b"\r").unwrap_or(body);
                    if !self.w3c.rewrite(body, &mut self.out) {
                        // Already combined (IIS's NCSA format, or a forwarder's rewrite).
                        self.out.extend_from_slice(access_line(body));
                    }
                } else if access_type {
                    if !json_access::rewrite(body, &mut self.out) {
                        self.out.extend_from_slice(access_line(body));
                    }
                } else if !rfc5424(body, &mut self.out) {
                    self.out.extend_from_slice(body);
                }
                if line.ends_with(b"\n") {
                    self.out.push(b'\n');
                }
            }
            &self.out[..]
        } else {
            data
        };
        let foreign_type = if syslog_type {
            Some("apache")
        } else if access_type {
            Some("syslog")
        } else {
            None
        };
        if syslog_type && memchr::memmem::find(lines, b"] \"").is_some() {
            for (i, line) in split_lines(lines).enumerate() {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                if let Some(inner) = embedded_access(body) {
                    self.foreign.push((i, inner.to_vec()));
                } else if recognised("apache", body) && !recognised("syslog", body) {
                    self.foreign.push((i, access_line(body).to_vec()));
                }
            }
        }
        if access_type {
            // The syslog test looks at a line's first bytes (a month, a
            // year, `<`), where an access line has its client: it rejects
            // an access line at once.
            for (i, line) in split_lines(lines).enumerate() {
                if !may_be_syslog(line) {
                    continue;
                }
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                if recognised("syslog", body) && !recognised(&self.input_type, body) {
                    self.foreign.push((i, body.to_vec()));
                }
            }
        }
        self.check
            .check(&self.input_type, foreign_type, lines, lines_before);
        Reshaped {
            lines,
            foreign: &self.foreign,
            foreign_type,
        }
    }
}

impl TypeCheck {
    /// Lines of `foreign` type are read as what they are, not counted.
    fn check(&mut self, input_type: &str, foreign: Option<&str>, lines: &[u8], lines_before: u64) {
        for (i, line) in split_lines(lines).enumerate() {
            let full = self.checked_bytes < FULL_CHECK_BYTES;
            if i > 0 && !full {
                break;
            }
            self.checked_bytes += line.len() as u64;
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.iter().all(u8::is_ascii_whitespace)
                || recognised(input_type, body)
                || foreign.is_some_and(|t| recognised(t, body))
            {
                continue;
            }
            self.unrecognised += 1;
            if self.first_bad.is_none() {
                let cut = body.len().min(EXCERPT_BYTES);
                self.first_bad = Some(BadLine {
                    line: lines_before + i as u64 + 1,
                    excerpt: String::from_utf8_lossy(&body[..cut]).into_owned(),
                });
            }
        }
    }
}

/// Whether a line may start as syslog does (`<PRI>`, a month, a year and
/// `-`), by its first bytes alone: an access line starts with its client,
/// an address (whose first dot comes before a fifth byte) or a host name
/// in lower case.
fn may_be_syslog(line: &[u8]) -> bool {
    match line.first() {
        Some(b'<' | b'A'..=b'Z') => true,
        Some(b'0'..=b'9') => line.get(4) == Some(&b'-'),
        _ => false,
    }
}

/// The lines of `data`, each with its `\n` if it has one.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
}

/// Appends the classic form of an RFC 5424 line to `out` (without `\n`);
/// false if it is not one (nothing appended).
fn rfc5424(line: &[u8], out: &mut Vec<u8>) -> bool {
    let is_5424 = line.first() == Some(&b'<')
        && line
            .iter()
            .take(6)
            .position(|&b| b == b'>')
            .is_some_and(|close| line[close + 1..].starts_with(b"1 "));
    if !is_5424 {
        return false;
    }
    let start = out.len();
    // A missing host or time stays `-`: a file has no sender, and the
    // analyzer dates a line without a time by when it was read.
    match message::to_line(line, "-", "-", out) {
        Ok(()) => {
            if out.last() == Some(&b'\n') {
                out.pop();
            }
            true
        }
        Err(_) => {
            out.truncate(start);
            false
        }
    }
}

/// The access-log line within `line`: after a syslog header, and without a
/// leading virtual host. A line that is neither, or whose rest is no
/// access line (another program's syslog line), comes back whole.
pub fn access_line(line: &[u8]) -> &[u8] {
    let rest = match syslog_header_len(line) {
        Some(len) => &line[len..],
        None => line,
    };
    let inner = strip_vhost(rest);
    if inner.len() == line.len() || recognised("apache", inner) {
        inner
    } else {
        line
    }
}

/// `vhost[:port] CLIENT ...` to `CLIENT ...`, when the first word is no
/// address and the second is one.
fn strip_vhost(line: &[u8]) -> &[u8] {
    let Some(space) = line.iter().take(256).position(|&b| b == b' ') else {
        return line;
    };
    if is_address(&line[..space]) {
        return line;
    }
    let rest = &line[space + 1..];
    let next = rest
        .iter()
        .take(64)
        .position(|&b| b == b' ')
        .unwrap_or(rest.len());
    if is_address(&rest[..next]) {
        rest
    } else {
        line
    }
}

fn is_address(word: &[u8]) -> bool {
    std::str::from_utf8(word)
        .ok()
        .is_some_and(|w| w.parse::<std::net::IpAddr>().is_ok())
}

/// The access-log line a syslog line carries as its message, if it does.
fn embedded_access(line: &[u8]) -> Option<&[u8]> {
    let len = syslog_header_len(line)?;
    let inner = strip_vhost(&line[len..]);
    let first = inner.iter().position(|&b| b == b' ')?;
    (is_address(&inner[..first]) && recognised("apache", inner)).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str =
        r#"203.0.113.5 - - [31/Oct/2020:23:30:00 +0700] "GET /.env HTTP/1.1" 404 0 "-" "curl/8""#;

    fn reshaped(input_type: &str, text: &str) -> (String, Vec<(usize, String)>, u64) {
        let mut s = Shaper::new(input_type);
        let r = s.reshape(text.as_bytes(), 0);
        let lines = String::from_utf8_lossy(r.lines).into_owned();
        let access = r
            .foreign
            .iter()
            .map(|(i, l)| (*i, String::from_utf8_lossy(l).into_owned()))
            .collect();
        (lines, access, s.unrecognised())
    }

    #[test]
    fn access_lines_lose_virtual_hosts_and_syslog_headers() {
        for prefix in [
            "www.example.gov:443 ",
            "www.example.gov ",
            "Oct 31 23:30:00 web01 nginx: ",
            "2020-10-31T23:30:00+07:00 web01 nginx[12]: www.example.gov:80 ",
        ] {
            let text = format!("{prefix}{ACCESS}\n{prefix}{ACCESS}");
            let (lines, _, bad) = reshaped("nginx", &text);
            assert_eq!(lines, format!("{ACCESS}\n{ACCESS}"), "{prefix:?}");
            assert_eq!(bad, 0);
        }
        let (lines, _, _) = reshaped("apache", &format!("{ACCESS}\n"));
        assert_eq!(lines, format!("{ACCESS}\n"), "a plain log is not copied");
        let ipv6 = ACCESS.replace("203.0.113.5", "2001:db8::5");
        let (lines, _, _) = reshaped("apache", &format!("site:443 {ipv6}"));
        assert_eq!(lines, ipv6);
    }

    #[test]
    fn a_mixed_file_is_read_line_by_line_as_what_each_line_is() {
        let ssh = "Oct 31 23:30:01 web01 sshd[4243]: Failed password for root from 203.0.113.5 port 22 ssh2";
        let text = format!("{ssh}\n{ACCESS}\nOct 31 23:30:02 web01 nginx: {ACCESS}\n{ssh}\n");
        let (_, foreign, bad) = reshaped("syslog", &text);
        assert_eq!(
            foreign,
            vec![(1, ACCESS.to_string()), (2, ACCESS.to_string())]
        );
        assert_eq!(bad, 0);
        // An access log that syslog lines got into: those go to the syslog
        // rules, and none is taken for a wrong type.
        let text = format!("{ACCESS}\n{ssh}\n{ACCESS}\n{ssh}\n");
        let (lines, foreign, bad) = reshaped("nginx", &text);
        assert_eq!(lines, text);
        assert_eq!(foreign, vec![(1, ssh.to_string()), (3, ssh.to_string())]);
        assert_eq!(bad, 0);
        // A plain access log is not looked at line by line.
        let (_, foreign, _) = reshaped("nginx", &format!("{ACCESS}\n{ACCESS}\n"));
        assert!(foreign.is_empty());
    }

    #[test]
    fn rfc5424_lines_in_a_file_become_classic_lines() {
        let text = "<38>1 2020-10-31T23:30:00.123Z web01 sshd 4242 - - Failed password for root from 203.0.113.5 port 22 ssh2\n\
                    Oct 31 23:30:01 web01 sshd[4243]: Failed password for root from 203.0.113.5 port 22 ssh2\n\
                    <38>1 2020-10-31T23:30:02Z web01 sshd-session 4244 - [origin ip=\"192.0.2.1\"] Invalid user x from 203.0.113.5\n";
        let (lines, _, bad) = reshaped("syslog", text);
        assert_eq!(
            lines,
            "2020-10-31T23:30:00.123Z web01 sshd[4242]: Failed password for root from 203.0.113.5 port 22 ssh2\n\
             Oct 31 23:30:01 web01 sshd[4243]: Failed password for root from 203.0.113.5 port 22 ssh2\n\
             2020-10-31T23:30:02Z web01 sshd-session[4244]: Invalid user x from 203.0.113.5\n"
        );
        assert_eq!(bad, 0);
    }

    #[test]
    fn access_lines_inside_syslog_are_handed_back() {
        let text = format!(
            "Oct 31 23:30:00 web01 sshd[1]: Accepted publickey for a from 192.0.2.1 port 1 ssh2\n\
             Oct 31 23:30:01 web01 nginx: {ACCESS}\n\
             Oct 31 23:30:02 web01 app[7]: [31/Oct/2020:23:30:02 +0700] \"not access\"\n"
        );
        let (lines, access, bad) = reshaped("syslog", &text);
        assert_eq!(lines, text, "the syslog rules see every line as it is");
        assert_eq!(access, vec![(1, ACCESS.to_string())]);
        assert_eq!(bad, 0);
    }

    #[test]
    fn lines_of_another_type_are_counted_and_the_first_kept() {
        // An nginx error line: neither access nor syslog.
        let other = "2020/10/31 23:30:00 [error] 12#12: *1 open() failed\n";
        let mut s = Shaper::new("nginx");
        s.reshape(format!("{ACCESS}\n{other}{other}").as_bytes(), 10);
        assert_eq!(s.unrecognised(), 2);
        let bad = s.first_bad().expect("kept");
        assert_eq!((bad.line, bad.excerpt.as_str()), (12, other.trim_end()));
        // Past the first 64 KiB only each read's first line is checked.
        let syslog = "Oct 31 23:30:00 web01 sshd[1]: x\n";
        let mut s = Shaper::new("syslog");
        let many = syslog.repeat((FULL_CHECK_BYTES as usize / syslog.len()) + 10);
        s.reshape(many.as_bytes(), 0);
        s.reshape(format!("{syslog}{other}").as_bytes(), 0);
        assert_eq!(s.unrecognised(), 0);
        s.reshape(format!("{other}{syslog}").as_bytes(), 0);
        assert_eq!(s.unrecognised(), 1);
    }
}
