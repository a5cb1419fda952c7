//! IIS's W3C extended log format, rewritten into the combined format the access-log rules
//! read.
//!
//! IIS (and what runs on it: Exchange's Outlook on the web, SharePoint, ASP.NET portals)
//! writes one request a line, its fields in the order of the file's last `#Fields:`
//! directive, separated by spaces, `-` for an empty field and `+` for a space in the user
//! agent, times in UTC:
//!
//! ```text
//! #Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken
//! 2020-10-31 16:30:00 10.0.0.5 GET /default.aspx id=1'+or+'1'='1 443 - 203.0.113.5 sqlmap/1.7 - 200 0 0 15
//! ```
//!
//! becomes `203.0.113.5 - - [31/Oct/2020:16:30:00 +0000] "GET /default.aspx?id=1'+or+'1'='1
//! HTTP/1.1" 200 - "-" "sqlmap/1.7"`, so one set of web rules serves Apache, nginx and IIS.
//! Directive lines become empty lines, so line numbers hold. A file read from the middle
//! (a restart resumes at its offset) has not seen its `#Fields:`; until it does, the fields
//! are IIS's default set, which is what most servers log.

use super::combined::{Request, MONTHS};

/// One W3C field the combined line is made of; `Other` is kept only to count columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Date,
    Time,
    ClientIp,
    User,
    Method,
    Stem,
    Query,
    Version,
    Status,
    Bytes,
    Referer,
    UserAgent,
    Other,
}

impl Field {
    fn named(name: &[u8]) -> Field {
        match name.to_ascii_lowercase().as_slice() {
            b"date" => Field::Date,
            b"time" => Field::Time,
            b"c-ip" => Field::ClientIp,
            b"cs-username" => Field::User,
            b"cs-method" => Field::Method,
            b"cs-uri-stem" => Field::Stem,
            b"cs-uri-query" => Field::Query,
            b"cs-version" => Field::Version,
            b"sc-status" => Field::Status,
            b"sc-bytes" => Field::Bytes,
            b"cs(referer)" => Field::Referer,
            b"cs(user-agent)" => Field::UserAgent,
            _ => Field::Other,
        }
    }
}

/// IIS's default `#Fields:` since IIS 7.
const DEFAULT_FIELDS: &[u8] = b"date time s-ip cs-method cs-uri-stem cs-uri-query s-port \
cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// The column layout of one W3C file, from its last `#Fields:` directive.
pub struct W3c {
    fields: Vec<Field>,
    /// Where each field of the line being rewritten is (reused: no allocation a line).
    columns: Vec<(usize, usize)>,
}

impl Default for W3c {
    fn default() -> Self {
        W3c {
            fields: fields_of(DEFAULT_FIELDS),
            columns: Vec::new(),
        }
    }
}

fn fields_of(list: &[u8]) -> Vec<Field> {
    list.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(Field::named)
        .collect()
}

impl W3c {
    /// Appends the combined-format form of `line` (no `\n`) to `out`: nothing for a directive
    /// (a `#Fields:` one changes the layout). False, with nothing appended, when `line` is
    /// neither a directive nor a request line of the layout.
    pub fn rewrite(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        if let Some(directive) = line.strip_prefix(b"#") {
            if let Some(list) = directive.strip_prefix(b"Fields:") {
                self.fields = fields_of(list);
            }
            return true;
        }
        self.combined(line, out)
    }

    /// Writes the combined line; false (and nothing written) if `line` lacks a field the
    /// combined line needs or is not a request of this layout.
    fn combined(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        self.columns.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(b' ', line).chain(std::iter::once(line.len())) {
            self.columns.push((start, end));
            start = end + 1;
        }
        let (fields, columns) = (&self.fields, &self.columns);
        let value = |field: Field| {
            let column = fields.iter().position(|&f| f == field)?;
            columns
                .get(column)
                .map(|&(a, b)| &line[a..b])
                .filter(|v| !v.is_empty())
        };
        let (Some(date), Some(time), Some(client), Some(method), Some(stem), Some(status)) = (
            value(Field::Date),
            value(Field::Time),
            value(Field::ClientIp),
            value(Field::Method),
            value(Field::Stem),
            value(Field::Status),
        ) else {
            return false;
        };
        let Some(stamp) = clf_stamp(date, time) else {
            return false;
        };
        let request = Request {
            client,
            user: present(value(Field::User)),
            stamp: &stamp,
            method,
            path: stem,
            query: present(value(Field::Query)),
            protocol: present(value(Field::Version)),
            status,
            bytes: present(value(Field::Bytes)),
            referer: present(value(Field::Referer)),
            user_agent: present(value(Field::UserAgent)),
            forwarded_for: None,
        };
        if !request.is_request() {
            return false;
        }
        request.write(true, out);
        true
    }
}

/// A W3C field that holds a value: `-` is none.
fn present(v: Option<&[u8]>) -> Option<&[u8]> {
    v.filter(|v| *v != b"-")
}

/// `2020-10-31` and `16:30:00` (UTC, as W3C logs write it) as `31/Oct/2020:16:30:00 +0000`.
fn clf_stamp(date: &[u8], time: &[u8]) -> Option<Vec<u8>> {
    let &[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = date else {
        return None;
    };
    let digits = [y1, y2, y3, y4, m1, m2, d1, d2];
    if !digits.iter().all(u8::is_ascii_digit) || time.len() != 8 {
        return None;
    }
    let month = usize::from((m1 - b'0') * 10 + (m2 - b'0'));
    let name = MONTHS.get(month.checked_sub(1)?)?;
    let mut stamp = vec![d1, d2, b'/'];
    stamp.extend_from_slice(*name);
    stamp.extend_from_slice(&[b'/', y1, y2, y3, y4, b':']);
    stamp.extend_from_slice(time);
    stamp.extend_from_slice(b" +0000");
    Some(stamp)
}

/// Whether `line` is a W3C extended log line: a directive, or a request dated
/// `YYYY-MM-DD hh:mm:ss` with an HTTP method among its next fields.
pub fn is_w3c(line: &[u8]) -> bool {
    if line.starts_with(b"#Software:")
        || line.starts_with(b"#Version:")
        || line.starts_with(b"#Date:")
        || line.starts_with(b"#Fields:")
    {
        return true;
    }
    let mut words = line.split(|&b| b == b' ');
    let (Some(date), Some(time)) = (words.next(), words.next()) else {
        return false;
    };
    if clf_stamp(date, time).is_none() {
        return false;
    }
    // A method followed by its path, among the fields that come before the client's text.
    let mut previous: &[u8] = b"";
    for word in words.take(8) {
        if is_method(previous) && matches!(word.first(), Some(b'/' | b'*')) {
            return true;
        }
        previous = word;
    }
    false
}

fn is_method(word: &[u8]) -> bool {
    matches!(
        word,
        b"GET"
            | b"POST"
            | b"HEAD"
            | b"PUT"
            | b"DELETE"
            | b"OPTIONS"
            | b"PATCH"
            | b"PROPFIND"
            | b"CONNECT"
            | b"TRACE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(w: &mut W3c, line: &str) -> String {
        let mut out = Vec::new();
        if !w.rewrite(line.as_bytes(), &mut out) {
            assert!(out.is_empty());
            return line.to_owned();
        }
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn requests_in_the_default_layout_become_combined_lines() {
        let mut w = W3c::default();
        assert_eq!(
            rewritten(
                &mut w,
                "2020-10-31 16:30:00 10.0.0.5 GET /default.aspx id=1'+or+'1'='1 443 - 203.0.113.5 Mozilla/5.0+(Windows+NT+10.0) https://www.example.gov/ 200 0 0 15"
            ),
            r#"203.0.113.5 - - [31/Oct/2020:16:30:00 +0000] "GET /default.aspx?id=1'+or+'1'='1 HTTP/1.1" 200 - "https://www.example.gov/" "Mozilla/5.0 (Windows NT 10.0)""#
        );
        assert_eq!(
            rewritten(
                &mut w,
                "2020-10-31 16:30:01 10.0.0.5 POST /owa/auth.owa - 443 CORP\\ketoan 2001:db8::5 - - 302 0 0 31"
            ),
            r#"2001:db8::5 - CORP\ketoan [31/Oct/2020:16:30:01 +0000] "POST /owa/auth.owa HTTP/1.1" 302 - "-" "-""#
        );
    }

    #[test]
    fn a_fields_directive_changes_the_layout_and_directives_become_empty_lines() {
        let mut w = W3c::default();
        assert_eq!(
            rewritten(
                &mut w,
                "#Software: Microsoft Internet Information Services 10.0"
            ),
            ""
        );
        assert_eq!(
            rewritten(&mut w, "#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes cs-version cs(User-Agent)"),
            ""
        );
        assert_eq!(
            rewritten(
                &mut w,
                r#"2020-10-31 16:30:00 203.0.113.5 GET /a"b\c 404 1234 HTTP/2 curl/8"#
            ),
            r#"203.0.113.5 - - [31/Oct/2020:16:30:00 +0000] "GET /a\"b\\c HTTP/2" 404 1234 "-" "curl/8""#
        );
    }

    #[test]
    fn lines_that_are_no_request_of_the_layout_stay_as_they_are() {
        let mut w = W3c::default();
        for line in [
            "2020-10-31 16:30:00 short line",
            "2020-13-31 16:30:00 10.0.0.5 GET / - 443 - 203.0.113.5 - - 200 0 0 15",
            "2020-10-31 16:30:00 10.0.0.5 G3T / - 443 - 203.0.113.5 - - 200 0 0 15",
            "Oct 31 23:30:00 web01 sshd[1]: Failed password for root from 203.0.113.5 port 22 ssh2",
        ] {
            assert_eq!(rewritten(&mut w, line), line);
        }
    }

    #[test]
    fn w3c_lines_are_told_from_others() {
        assert!(is_w3c(
            b"#Software: Microsoft Internet Information Services 10.0"
        ));
        assert!(is_w3c(
            b"2020-10-31 16:30:00 10.0.0.5 GET / - 443 - 203.0.113.5 - - 200 0 0 15"
        ));
        assert!(!is_w3c(b"2020-10-31 16:30:00 host sshd[1]: GET"));
        assert!(!is_w3c(b"# a comment"));
        assert!(!is_w3c(
            br#"203.0.113.5 - - [31/Oct/2020:16:30:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#
        ));
    }
}
