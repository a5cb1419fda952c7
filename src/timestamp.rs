//! Times written in log lines.
//!
//! Every matched line goes through [`TimeParser::parse`], so the parsers here check bytes at
//! fixed positions instead of using regexes or a generic `strptime`, never allocate, and keep
//! the last result: consecutive lines nearly always share their second, and the zone
//! conversion is by far the most expensive step.

use jiff::{
    civil::DateTime,
    tz::{Offset, TimeZone},
    SignedDuration, Timestamp,
};

/// How far the clock that wrote a year-less syslog stamp may run ahead of the reference
/// before we prefer the previous year (a slightly fast writer, or a reader with a slow clock).
const YEAR_INFERENCE_SLACK: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Access logs put the client address, identity and user before the stamp; anything farther
/// than this is a request path or a message, not the stamp.
const BRACKET_SEARCH_LIMIT: usize = 200;

/// Longest stamp we remember; longer ones (absurd fractions) are parsed but not cached.
const KEY_CAP: usize = 64;

/// Parses times from log lines. Holds the zone for times without an offset and a reference
/// time for year inference; caches the last parse because consecutive lines usually share a second.
pub struct TimeParser {
    tz: TimeZone,
    /// The reference's year in `tz`, and the instants where that year starts and ends, so a
    /// reference that moves within the year costs no zone conversion.
    ref_year: i16,
    ref_year_span: (Timestamp, Timestamp),
    /// `reference + slack`: the latest instant a year-less stamp may denote.
    limit: Timestamp,
    reference: Timestamp,
    /// How far ahead of the reference a year-less stamp may lie and still be of the
    /// reference's year (see [`TimeParser::set_slack`]).
    slack: SignedDuration,
    forced_year: Option<i16>,
    /// Stamps at the start of the line (after any syslog priority and version).
    head: Cache,
    /// Bracketed access-log stamps, which are found inside the line.
    bracket: Cache,
}

impl TimeParser {
    /// `tz`: zone for times written without an offset. `reference`: "now" for year inference
    /// of year-less syslog stamps (the daemon passes the current time; a file scan passes the file's mtime).
    pub fn new(tz: TimeZone, reference: Timestamp) -> Self {
        let mut parser = TimeParser {
            tz,
            ref_year: 0,
            ref_year_span: (Timestamp::MAX, Timestamp::MIN),
            limit: reference,
            reference,
            slack: YEAR_INFERENCE_SLACK,
            forced_year: None,
            head: Cache::default(),
            bracket: Cache::default(),
        };
        parser.set_reference(reference);
        parser
    }

    /// Moves "now" for year inference. Cheap when the year (in the parser's zone) stays the same.
    pub fn set_reference(&mut self, reference: Timestamp) {
        self.reference = reference;
        self.limit = reference
            .saturating_add(self.slack)
            .unwrap_or(Timestamp::MAX);
        let (start, end) = self.ref_year_span;
        if reference < start || reference >= end {
            self.ref_year = self.tz.to_datetime(reference).year();
            self.ref_year_span = year_span(&self.tz, self.ref_year);
        }
        // The head cache need not be cleared: a year-less entry records the range of
        // references for which its inferred year holds, and is checked on every hit.
    }

    /// How far ahead of the reference a year-less stamp may lie before it is taken as the
    /// previous year's. Where the reference is when lines were read (a daemon) or written
    /// (a file's mtime), a stamp beyond the clock skew allowed for dated lines is more likely
    /// last year's than this year's; the default, a week, suits a reference that is only
    /// roughly "now".
    pub fn set_slack(&mut self, slack: SignedDuration) {
        self.slack = slack.max(SignedDuration::ZERO);
        self.set_reference(self.reference);
    }

    /// Force the year for year-less stamps (historical import with --year); None = infer.
    pub fn set_year(&mut self, year: Option<i16>) {
        if self.forced_year != year {
            self.forced_year = year;
            // Cached year-less results were computed under the old rule.
            self.head.clear();
        }
    }

    /// The zone applied to stamps written without an offset.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The time written in `line` (bytes, may be invalid UTF-8, has no trailing newline), or None.
    pub fn parse(&mut self, line: &[u8]) -> Option<Timestamp> {
        let body = match line.first() {
            Some(b'<') => {
                let body = strip_priority(line)?;
                match strip_version(body) {
                    // RFC 5424 writes NILVALUE when the sender has no clock; that is "no
                    // time", not something to go looking for elsewhere in the line.
                    Some(rest) if rest.first() == Some(&b'-') => return None,
                    Some(rest) => rest,
                    None => body,
                }
            }
            _ => line,
        };

        if let Some(ts) = self.head.get(body, self.ref_year, self.limit) {
            return Some(ts);
        }
        if let Some((fields, examined)) = parse_head(body) {
            let (ts, inferred) = self.resolve(&fields)?;
            self.head.put(body, examined, ts, inferred);
            return Some(ts);
        }
        self.parse_bracketed(line)
    }

    /// Common/combined log format: the first `[` within reach that opens a
    /// `dd/Mon/yyyy:hh:mm:ss +zzzz]` group.
    fn parse_bracketed(&mut self, line: &[u8]) -> Option<Timestamp> {
        let reach = &line[..line.len().min(BRACKET_SEARCH_LIMIT)];
        for pos in memchr::memchr_iter(b'[', reach) {
            let rest = &line[pos..];
            if let Some(ts) = self.bracket.get_exact(rest) {
                return Some(ts);
            }
            if let Some((fields, len)) = parse_clf(rest) {
                // CLF always carries an offset, so there is nothing to infer.
                let (ts, _) = self.resolve(&fields)?;
                self.bracket.put(rest, len, ts, None);
                return Some(ts);
            }
        }
        None
    }

    /// Turns parsed fields into an instant; for year-less stamps also says for which
    /// references the inferred year stays right.
    fn resolve(&self, f: &Fields) -> Option<(Timestamp, Option<Inferred>)> {
        if let Some(year) = f.year.or(self.forced_year) {
            return Some((self.instant(f, year)?, None));
        }
        // Candidates from latest to earliest: the first one not after the limit wins, and
        // the one tried before it (the next later year that exists) bounds the limit from above.
        let mut later: Option<Timestamp> = None;
        for year in [self.ref_year + 1, self.ref_year, self.ref_year - 1] {
            let Some(ts) = self.instant(f, year) else {
                // Feb 29 outside leap years, or out of jiff's range.
                continue;
            };
            if ts <= self.limit {
                let inferred = Inferred {
                    ref_year: self.ref_year,
                    earliest_limit: ts,
                    limit_below: later,
                };
                return Some((ts, Some(inferred)));
            }
            later = Some(ts);
        }
        None
    }

    fn instant(&self, f: &Fields, year: i16) -> Option<Timestamp> {
        let dt = DateTime::new(year, f.month, f.day, f.hour, f.minute, f.second, f.nano).ok()?;
        match f.offset {
            Some(secs) => Offset::from_seconds(secs).ok()?.to_timestamp(dt).ok(),
            None => self.tz.to_timestamp(dt).ok(),
        }
    }
}

/// The system's zone: $TZ if set and valid, else /etc/localtime via jiff, else UTC. Never panics.
pub fn system_time_zone() -> TimeZone {
    if let Ok(tz) = TimeZone::try_system() {
        return tz;
    }
    // try_system refuses outright when $TZ is set but bad, without looking at /etc/localtime.
    localtime_zone().unwrap_or(TimeZone::UTC)
}

fn localtime_zone() -> Option<TimeZone> {
    const LOCALTIME: &str = "/etc/localtime";
    if let Ok(target) = std::fs::read_link(LOCALTIME) {
        let target = target.to_string_lossy();
        if let Some(idx) = target.find("zoneinfo/") {
            if let Ok(tz) = TimeZone::get(&target[idx + "zoneinfo/".len()..]) {
                return Some(tz);
            }
        }
    }
    let data = std::fs::read(LOCALTIME).ok()?;
    TimeZone::tzif("Local", &data).ok()
}

/// Zone by IANA name, with an error message naming the bad zone.
pub fn zone_by_name(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// The first and one-past-last instants of `year` in `tz`; an empty span if the year cannot
/// be represented, so that every reference recomputes rather than trusting a wrong year.
fn year_span(tz: &TimeZone, year: i16) -> (Timestamp, Timestamp) {
    let start = |y: i16| {
        DateTime::new(y, 1, 1, 0, 0, 0, 0)
            .ok()
            .and_then(|dt| tz.to_timestamp(dt).ok())
    };
    match (start(year), year.checked_add(1).and_then(start)) {
        (Some(a), Some(b)) => (a, b),
        _ => (Timestamp::MAX, Timestamp::MIN),
    }
}

/// A stamp's fields as written. `year` is None for classic syslog; `offset` (seconds east
/// of UTC) is None when the stamp is in the configured zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    year: Option<i16>,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    nano: i32,
    offset: Option<i32>,
}

impl Fields {
    /// A date and time of day without an offset: local to the configured zone.
    fn local(year: Option<i16>, month: i8, day: i8, time: (i8, i8, i8, i32)) -> Fields {
        let (hour, minute, second, nano) = time;
        Fields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nano,
            offset: None,
        }
    }
}

/// For which references a cached inferred year still holds: the reference year (which fixes
/// the candidate years) must be the same, and the limit must not have moved before the chosen
/// instant nor reached the next later candidate.
#[derive(Debug, Clone, Copy)]
struct Inferred {
    ref_year: i16,
    earliest_limit: Timestamp,
    limit_below: Option<Timestamp>,
}

impl Inferred {
    fn holds(&self, ref_year: i16, limit: Timestamp) -> bool {
        self.ref_year == ref_year
            && self.earliest_limit <= limit
            && self.limit_below.is_none_or(|t| limit < t)
    }
}

/// The last stamp parsed. `key` holds every byte the parser looked at, including the one that
/// ended the stamp; `key_past_end` means the parser looked past the end of the line, so only
/// a line of exactly those bytes is guaranteed to parse the same way.
struct Cache {
    key: [u8; KEY_CAP],
    len: usize,
    key_past_end: bool,
    ts: Timestamp,
    inferred: Option<Inferred>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            key: [0; KEY_CAP],
            len: 0,
            key_past_end: false,
            ts: Timestamp::UNIX_EPOCH,
            inferred: None,
        }
    }
}

impl Cache {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn get(&self, bytes: &[u8], ref_year: i16, limit: Timestamp) -> Option<Timestamp> {
        if self.len == 0 {
            return None;
        }
        let key = &self.key[..self.len];
        let same = if self.key_past_end {
            bytes == key
        } else {
            bytes.starts_with(key)
        };
        if !same {
            return None;
        }
        match self.inferred {
            Some(inf) if !inf.holds(ref_year, limit) => None,
            _ => Some(self.ts),
        }
    }

    /// For stamps whose extent is fixed by their own closing byte (the `]` of CLF).
    fn get_exact(&self, bytes: &[u8]) -> Option<Timestamp> {
        if self.len != 0 && bytes.starts_with(&self.key[..self.len]) {
            Some(self.ts)
        } else {
            None
        }
    }

    fn put(&mut self, bytes: &[u8], examined: usize, ts: Timestamp, inferred: Option<Inferred>) {
        let n = examined.min(bytes.len());
        if n == 0 || n > KEY_CAP {
            self.len = 0;
            return;
        }
        self.key[..n].copy_from_slice(&bytes[..n]);
        self.len = n;
        self.key_past_end = examined > bytes.len();
        self.ts = ts;
        self.inferred = inferred;
    }
}

/// `<PRI>` with 1-3 digits and PRI <= 191 (facility 23, severity 7); None when malformed.
fn strip_priority(line: &[u8]) -> Option<&[u8]> {
    let mut pri: u32 = 0;
    for i in 1..=4 {
        match *line.get(i)? {
            c @ b'0'..=b'9' if i <= 3 => pri = pri * 10 + u32::from(c - b'0'),
            b'>' if i >= 2 && pri <= 191 => return Some(&line[i + 1..]),
            _ => return None,
        }
    }
    None
}

/// RFC 5424's VERSION (1-3 digits, no leading zero) and the space after it.
fn strip_version(body: &[u8]) -> Option<&[u8]> {
    if !matches!(body.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let digits = body
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits <= 3 && body.get(digits) == Some(&b' ') {
        Some(&body[digits + 1..])
    } else {
        None
    }
}

/// Stamps at the start of `b`. Returns the fields and how many bytes decided them (which may
/// exceed `b.len()` by one when the parser found the end of the line where a byte could be).
fn parse_head(b: &[u8]) -> Option<(Fields, usize)> {
    match *b.first()? {
        b'0'..=b'9' => match *b.get(4)? {
            b'-' => parse_iso(b),
            b'/' => parse_nginx(b),
            _ if b.get(2) == Some(&b'-') => parse_bind(b),
            _ if b.get(6) == Some(&b' ') => parse_mysql(b),
            _ => None,
        },
        b'[' if b.get(1).is_some_and(u8::is_ascii_digit) => {
            if b.get(3) == Some(&b'-') {
                parse_php(b)
            } else {
                parse_epoch(b)
            }
        }
        b'[' => {
            let (fields, close) = parse_ctime(b, 1)?;
            (b.get(close) == Some(&b']')).then_some((fields, close + 1))
        }
        c if c.is_ascii_alphabetic() => {
            if month_at(b, 0).is_some() {
                parse_bsd(b)
            } else {
                let (fields, end) = parse_ctime(b, 0)?;
                at_boundary(b, end).then_some((fields, end + 1))
            }
        }
        _ => None,
    }
}

/// `Mmm dd hh:mm:ss[.frac]` or `Mmm dd yyyy hh:mm:ss[.frac]`; the day may be space padded
/// or (as some senders write it) unpadded.
fn parse_bsd(b: &[u8]) -> Option<(Fields, usize)> {
    let month = month_at(b, 0)?;
    expect(b, 3, b' ')?;
    let (day, mut i) = match (*b.get(4)?, *b.get(5)?) {
        (b' ', d) if d.is_ascii_digit() => (d - b'0', 6),
        (d1, d2) if d1.is_ascii_digit() && d2.is_ascii_digit() => {
            ((d1 - b'0') * 10 + (d2 - b'0'), 6)
        }
        (d, b' ') if d.is_ascii_digit() => (d - b'0', 5),
        _ => return None,
    };
    expect(b, i, b' ')?;
    i += 1;
    let year = if b.get(i + 4) == Some(&b' ') {
        let y = num(b, i, 4)?;
        i += 5;
        Some(y as i16)
    } else {
        None
    };
    let (hour, minute, second, nano, end) = parse_time(b, i, false)?;
    at_boundary(b, end).then_some((
        Fields::local(year, month, day as i8, (hour, minute, second, nano)),
        end + 1,
    ))
}

/// `Www Mmm dd hh:mm:ss[.frac] yyyy` starting at `start` (asctime, as Apache's error log and
/// ClamAV write it). Returns the fields and the index just past the year.
fn parse_ctime(b: &[u8], start: usize) -> Option<(Fields, usize)> {
    weekday_at(b, start)?;
    expect(b, start + 3, b' ')?;
    let month = month_at(b, start + 4)?;
    expect(b, start + 7, b' ')?;
    // `Jun  8` as asctime pads it, or `Jun 8` as some daemons write it.
    let (day, clock) = match (b.get(start + 8), b.get(start + 9)) {
        (Some(d), Some(b' ')) if d.is_ascii_digit() => (num(b, start + 8, 1)? as i8, start + 10),
        _ => {
            let day = padded2(b, start + 8)?;
            expect(b, start + 10, b' ')?;
            (day, start + 11)
        }
    };
    if day == 0 {
        return None;
    }
    let (hour, minute, second, nano, i) = parse_time(b, clock, false)?;
    expect(b, i, b' ')?;
    let year = num(b, i + 1, 4)? as i16;
    let fields = Fields::local(Some(year), month, day, (hour, minute, second, nano));
    Some((fields, i + 5))
}

/// `yyyy/mm/dd hh:mm:ss` (nginx error log).
fn parse_nginx(b: &[u8]) -> Option<(Fields, usize)> {
    let (year, month, day) = parse_date(b, b'/')?;
    expect(b, 10, b' ')?;
    let (hour, minute, second, nano, end) = parse_time(b, 11, false)?;
    at_boundary(b, end).then_some((
        Fields::local(Some(year), month, day, (hour, minute, second, nano)),
        end + 1,
    ))
}

/// `dd-Mon-yyyy hh:mm:ss[.frac]` (BIND's own log files, `print-time yes`).
fn parse_bind(b: &[u8]) -> Option<(Fields, usize)> {
    let day = num(b, 0, 2)? as i8;
    expect(b, 2, b'-')?;
    let month = month_at(b, 3)?;
    expect(b, 6, b'-')?;
    let year = num(b, 7, 4)? as i16;
    expect(b, 11, b' ')?;
    let (hour, minute, second, nano, end) = parse_time(b, 12, false)?;
    at_boundary(b, end).then_some((
        Fields::local(Some(year), month, day, (hour, minute, second, nano)),
        end + 1,
    ))
}

/// `yymmdd hh:mm:ss`, the hour space-padded (MySQL 5.x and MariaDB error logs:
/// `190906  1:45:18 [Warning] ...`).
fn parse_mysql(b: &[u8]) -> Option<(Fields, usize)> {
    let year = 2000 + num(b, 0, 2)? as i16;
    let month = num(b, 2, 2)?;
    let day = num(b, 4, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    expect(b, 6, b' ')?;
    // ` 1:45:18` or `11:45:18`: made two digits for parse_time.
    let hour_at = 7;
    let mut clock = [0u8; 8];
    clock.copy_from_slice(b.get(hour_at..hour_at + 8)?);
    if clock[0] == b' ' {
        clock[0] = b'0';
    }
    let (hour, minute, second, _, _) = parse_time(&clock, 0, false)?;
    let end = hour_at + 8;
    at_boundary(b, end).then_some((
        Fields::local(
            Some(year),
            month as i8,
            day as i8,
            (hour, minute, second, 0),
        ),
        end + 1,
    ))
}

/// `[dd-Mon-yyyy hh:mm:ss ZONE]`, the stamp of PHP's error log and of the
/// applications that copy it (Roundcube): ZONE is an offset (`+0200`), `UTC`,
/// or a zone name, read as the configured zone (the usual case: PHP's
/// `date.timezone` is the host's).
fn parse_php(b: &[u8]) -> Option<(Fields, usize)> {
    let (mut fields, end) = parse_bind(&b[1..])?;
    // parse_bind's end is one past the byte after the time.
    let i = end;
    expect(b, i, b' ')?;
    let close = i + 1 + b.get(i + 1..)?.iter().take(40).position(|&c| c == b']')?;
    let zone = &b[i + 1..close];
    if zone == b"UTC" || zone == b"GMT" {
        fields.offset = Some(0);
    } else if matches!(zone.first(), Some(b'+' | b'-')) {
        let (offset, after) = parse_offset(b, i + 1)?;
        (after == close).then_some(())?;
        fields.offset = Some(offset);
    } else if !zone
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"/_-+".contains(c))
    {
        return None;
    }
    Some((fields, close + 1))
}

/// `[seconds since the epoch]` (Unbound's own log file).
fn parse_epoch(b: &[u8]) -> Option<(Fields, usize)> {
    let close = b.iter().take(13).position(|&c| c == b']')?;
    let secs: i64 = std::str::from_utf8(&b[1..close]).ok()?.parse().ok()?;
    let dt = Timestamp::from_second(secs)
        .ok()?
        .to_zoned(TimeZone::UTC)
        .datetime();
    Some((
        Fields {
            year: Some(dt.year()),
            month: dt.month(),
            day: dt.day(),
            hour: dt.hour(),
            minute: dt.minute(),
            second: dt.second(),
            nano: 0,
            offset: Some(0),
        },
        close + 1,
    ))
}

/// RFC 3339 and its relatives: `yyyy-mm-dd[Tt ]hh:mm:ss[.frac][Z|±hh[:mm]]`, and after a
/// space-separated date also ` ±hhmm` / ` ±hh:mm`.
fn parse_iso(b: &[u8]) -> Option<(Fields, usize)> {
    let (year, month, day) = parse_date(b, b'-')?;
    let sep = *b.get(10)?;
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    // MariaDB pads a one-digit hour with a space: `2015-10-07  8:25:38`.
    if sep == b' ' && b.get(11) == Some(&b' ') && b.get(13) == Some(&b':') {
        let mut clock = [0u8; 8];
        clock.copy_from_slice(b.get(11..19)?);
        clock[0] = b'0';
        let (hour, minute, second, _, end) = parse_time(&clock, 0, false)?;
        let end = 11 + end;
        let fields = Fields::local(Some(year), month, day, (hour, minute, second, 0));
        return at_boundary(b, end).then_some((fields, end + 1));
    }
    let (hour, minute, second, nano, i) = parse_time(b, 11, true)?;
    let mut fields = Fields::local(Some(year), month, day, (hour, minute, second, nano));
    match b.get(i) {
        Some(b'Z' | b'z') => {
            fields.offset = Some(0);
            at_boundary(b, i + 1).then_some((fields, i + 2))
        }
        // A sign right after the time is an offset; if it is malformed the stamp is wrong,
        // and guessing the configured zone would silently shift it.
        Some(b'+' | b'-') => {
            let (offset, end) = parse_offset(b, i)?;
            fields.offset = Some(offset);
            at_boundary(b, end).then_some((fields, end + 1))
        }
        // The bytes looked at while deciding whether an offset follows the space must all
        // be in the cache key, even when the answer is no.
        Some(b' ') if sep == b' ' => match b.get(i + 1) {
            Some(b'+' | b'-') => match parse_offset(b, i + 1) {
                Some((offset, end)) if at_boundary(b, end) => {
                    fields.offset = Some(offset);
                    Some((fields, end + 1))
                }
                // Something else that starts with a sign ("- message"): the stamp ends at
                // the space. ` ±hh:mm` and the byte after it is the most looked at.
                _ => Some((fields, i + 8)),
            },
            _ => Some((fields, i + 2)),
        },
        _ => at_boundary(b, i).then_some((fields, i + 1)),
    }
}

/// `[dd/Mon/yyyy:hh:mm:ss[.frac] ±hhmm]` at the start of `b`; returns the fields and the
/// length including the closing bracket.
fn parse_clf(b: &[u8]) -> Option<(Fields, usize)> {
    expect(b, 0, b'[')?;
    let day = padded2(b, 1)?;
    expect(b, 3, b'/')?;
    let month = month_at(b, 4)?;
    expect(b, 7, b'/')?;
    let year = num(b, 8, 4)? as i16;
    expect(b, 12, b':')?;
    let (hour, minute, second, nano, i) = parse_time(b, 13, false)?;
    expect(b, i, b' ')?;
    let (offset, end) = parse_offset(b, i + 1)?;
    expect(b, end, b']')?;
    let fields = Fields {
        year: Some(year),
        month,
        day,
        hour,
        minute,
        second,
        nano,
        offset: Some(offset),
    };
    Some((fields, end + 1))
}

/// `yyyy<sep>mm<sep>dd` at the start of `b`.
fn parse_date(b: &[u8], sep: u8) -> Option<(i16, i8, i8)> {
    let year = num(b, 0, 4)? as i16;
    expect(b, 4, sep)?;
    let month = num(b, 5, 2)?;
    expect(b, 7, sep)?;
    let day = num(b, 8, 2)?;
    // Ranges beyond these (and day-of-month) are left to DateTime::new.
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some((year, month as i8, day as i8))
}

/// `hh:mm:ss` at `i`, then an optional fraction (`.` or, for Python-style loggers when
/// `comma` is set, `,`). Returns hour, minute, second, nanoseconds and the index after.
fn parse_time(b: &[u8], i: usize, comma: bool) -> Option<(i8, i8, i8, i32, usize)> {
    let hour = num(b, i, 2)?;
    expect(b, i + 2, b':')?;
    let minute = num(b, i + 3, 2)?;
    expect(b, i + 5, b':')?;
    let second = num(b, i + 6, 2)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // A leap second has no civil representation in jiff; it is at most a second off.
    let second = second.min(59);
    let mut j = i + 8;
    let mut nano: u32 = 0;
    if matches!(b.get(j), Some(b'.')) || (comma && b.get(j) == Some(&b',')) {
        let start = j + 1;
        j = start;
        while let Some(c) = b.get(j).filter(|c| c.is_ascii_digit()) {
            // Digits past nanoseconds are below jiff's precision.
            if j - start < 9 {
                nano = nano * 10 + u32::from(c - b'0');
            }
            j += 1;
        }
        let digits = j - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nano *= 10;
        }
    }
    Some((hour as i8, minute as i8, second as i8, nano as i32, j))
}

/// `±hh`, `±hhmm` or `±hh:mm` at `i`; returns seconds east of UTC and the index after.
fn parse_offset(b: &[u8], i: usize) -> Option<(i32, usize)> {
    let sign: i32 = match *b.get(i)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = num(b, i + 1, 2)?;
    let (minutes, end) = match b.get(i + 3) {
        Some(b':') => (num(b, i + 4, 2)?, i + 6),
        Some(c) if c.is_ascii_digit() => (num(b, i + 3, 2)?, i + 5),
        _ => (0, i + 3),
    };
    if hours > 25 || minutes > 59 {
        return None;
    }
    Some((sign * (hours as i32 * 3600 + minutes as i32 * 60), end))
}

/// `n` ASCII digits at `i` as a number.
#[inline]
fn num(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let digits = b.get(i..i + n)?;
    let mut v: u32 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Two-character day: `dd` or ` d`, 1..=31.
fn padded2(b: &[u8], i: usize) -> Option<i8> {
    let d = match *b.get(i)? {
        b' ' => num(b, i + 1, 1)?,
        _ => num(b, i, 2)?,
    };
    (1..=31).contains(&d).then_some(d as i8)
}

#[inline]
fn expect(b: &[u8], i: usize, c: u8) -> Option<()> {
    (b.get(i) == Some(&c)).then_some(())
}

/// A stamp must not run into a word or number ("Oct 31 23:30:001" is not a stamp).
#[inline]
fn at_boundary(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Three ASCII letters at `i`, lowercased and packed, or None.
#[inline]
fn word3(b: &[u8], i: usize) -> Option<[u8; 3]> {
    let w = b.get(i..i + 3)?;
    if w.iter().all(u8::is_ascii_alphabetic) {
        Some([w[0] | 0x20, w[1] | 0x20, w[2] | 0x20])
    } else {
        None
    }
}

/// English month abbreviation at `i`, any case, as 1..=12.
fn month_at(b: &[u8], i: usize) -> Option<i8> {
    Some(match &word3(b, i)? {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// English weekday abbreviation at `i`. Only checked, not compared with the date: a stamp
/// whose weekday disagrees is still the best time we have.
fn weekday_at(b: &[u8], i: usize) -> Option<()> {
    matches!(
        &word3(b, i)?,
        b"sun" | b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat"
    )
    .then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test constant is a valid timestamp")
    }

    fn zone(name: &str) -> TimeZone {
        zone_by_name(name).expect("test zone exists in the bundled tzdb")
    }

    fn utc_parser(reference: &str) -> TimeParser {
        TimeParser::new(TimeZone::UTC, ts(reference))
    }

    /// Parses with a parser that has seen nothing, so the cache cannot be involved.
    fn fresh(tz: &TimeZone, reference: Timestamp, line: &[u8]) -> Option<Timestamp> {
        TimeParser::new(tz.clone(), reference).parse(line)
    }

    fn check(p: &mut TimeParser, line: &str, want: &str) {
        assert_eq!(p.parse(line.as_bytes()), Some(ts(want)), "line {line:?}");
    }

    // --- 1. classic BSD syslog ---

    #[test]
    fn bsd_basic_and_padding() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(
            &mut p,
            "Oct 31 23:30:00 host prog[1]: msg",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "Jun  9 06:06:20 host sshd[22]: x",
            "2020-06-09T06:06:20Z",
        );
        check(
            &mut p,
            "Jun 09 06:06:20 host sshd[22]: x",
            "2020-06-09T06:06:20Z",
        );
        // Some senders do not pad the day at all.
        check(
            &mut p,
            "Jun 9 06:06:20 host sshd[22]: x",
            "2020-06-09T06:06:20Z",
        );
        check(&mut p, "Oct 31 23:30:00", "2020-10-31T23:30:00Z");
    }

    #[test]
    fn bsd_fraction() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(
            &mut p,
            "Oct 31 23:30:00.123 host x",
            "2020-10-31T23:30:00.123Z",
        );
        check(
            &mut p,
            "Oct 31 23:30:00.000001 host x",
            "2020-10-31T23:30:00.000001Z",
        );
        check(&mut p, "Oct 31 23:30:00.5", "2020-10-31T23:30:00.5Z");
    }

    #[test]
    fn bsd_with_year() {
        // The reference is far away: an explicit year must not be inferred.
        let mut p = utc_parser("2030-01-01T00:00:00Z");
        check(
            &mut p,
            "Oct 31 2020 23:30:00 host x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "Jun  9 2019 06:06:20 host x",
            "2019-06-09T06:06:20Z",
        );
        check(
            &mut p,
            "Oct 31 2020 23:30:00.25 host x",
            "2020-10-31T23:30:00.25Z",
        );
    }

    #[test]
    fn month_names_any_case() {
        let mut p = utc_parser("2020-12-15T00:00:00Z");
        for (i, m) in [
            "jan", "FEB", "Mar", "aPr", "may", "JUN", "jul", "Aug", "sep", "OCT", "nov", "Dec",
        ]
        .iter()
        .enumerate()
        {
            let line = format!("{m} 10 12:00:00 host x");
            let want = format!("2020-{:02}-10T12:00:00Z", i + 1);
            check(&mut p, &line, &want);
        }
    }

    #[test]
    fn bsd_in_configured_zone() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(&mut p, "Oct 31 23:30:00 host x", "2020-10-31T16:30:00Z");
    }

    // --- 2. priority prefix ---

    #[test]
    fn priority_prefix() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(
            &mut p,
            "<34>Oct 31 23:30:00 host su: x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "<0>Oct 31 23:30:00.5 host x",
            "2020-10-31T23:30:00.5Z",
        );
        check(
            &mut p,
            "<191>Oct 31 2019 23:30:00 host x",
            "2019-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "<13>2020-10-31T23:30:00+07:00 host x",
            "2020-10-31T16:30:00Z",
        );
        assert_eq!(p.parse(b"<192>Oct 31 23:30:00 host x"), None);
        assert_eq!(p.parse(b"<>Oct 31 23:30:00 host x"), None);
        assert_eq!(p.parse(b"<34Oct 31 23:30:00 host x"), None);
    }

    // --- 3. RFC 3339 / rsyslog high precision ---

    #[test]
    fn rfc3339_forms() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(
            &mut p,
            "2020-10-31T23:30:00.123456+07:00 host x",
            "2020-10-31T16:30:00.123456Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00.123456Z host x",
            "2020-10-31T23:30:00.123456Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00Z host x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00+0700 host x",
            "2020-10-31T16:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00-05:30 host x",
            "2020-11-01T05:00:00Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00+07 host x",
            "2020-10-31T16:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31t23:30:00z host x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31T23:30:00.123456789123Z x",
            "2020-10-31T23:30:00.123456789Z",
        );
        // No offset: the configured zone (UTC+7) applies.
        check(&mut p, "2020-10-31T23:30:00 host x", "2020-10-31T16:30:00Z");
        check(&mut p, "2020-10-31T23:30:00.5", "2020-10-31T16:30:00.5Z");
    }

    #[test]
    fn iso_space_forms() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(&mut p, "2020-10-31 23:30:00 host x", "2020-10-31T16:30:00Z");
        check(
            &mut p,
            "2020-10-31 23:30:00.250 host x",
            "2020-10-31T16:30:00.25Z",
        );
        // Python logging (fail2ban) writes a comma before the milliseconds.
        check(
            &mut p,
            "2020-10-31 23:30:00,250 fail2ban.actions",
            "2020-10-31T16:30:00.25Z",
        );
        check(
            &mut p,
            "2020-10-31 23:30:00+00:00 host x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31 23:30:00.1Z host x",
            "2020-10-31T23:30:00.1Z",
        );
        check(
            &mut p,
            "2020-10-31 23:30:00 +0000 host x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31 23:30:00 -01:00 host x",
            "2020-11-01T00:30:00Z",
        );
        // A dash that is not an offset leaves the configured zone in charge.
        check(&mut p, "2020-10-31 23:30:00 - msg", "2020-10-31T16:30:00Z");
        check(&mut p, "2020-10-31 23:30:00 -", "2020-10-31T16:30:00Z");
        // A malformed offset right after the time is refused rather than guessed.
        assert_eq!(p.parse(b"2020-10-31 23:30:00+7 host"), None);
        assert_eq!(p.parse(b"2020-10-31T23:30:00+07:6 host"), None);
    }

    // --- 4. RFC 5424 ---

    #[test]
    fn rfc5424() {
        let mut p = utc_parser("2003-10-20T00:00:00Z");
        check(
            &mut p,
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [x] msg",
            "2003-10-11T22:14:15.003Z",
        );
        check(
            &mut p,
            "<34>1 2003-10-11T22:14:15-07:00 host su - ID47 - msg",
            "2003-10-12T05:14:15Z",
        );
        check(&mut p, "<34>1 2003-10-11T22:14:15Z", "2003-10-11T22:14:15Z");
        assert_eq!(p.parse(b"<165>1 - mymachine evntslog - ID47 - msg"), None);
        assert_eq!(p.parse(b"<165>1 -"), None);
        // NILVALUE means no time, even if something bracketed follows.
        assert_eq!(
            p.parse(b"<165>1 - host app - - [31/Oct/2020:23:30:00 +0700]"),
            None
        );
    }

    // --- 5. common / combined log format ---

    #[test]
    fn clf() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(
            &mut p,
            r#"1.2.3.4 - - [31/Oct/2020:23:30:00 +0700] "GET / HTTP/1.1" 200 12 "-" "curl""#,
            "2020-10-31T16:30:00Z",
        );
        check(
            &mut p,
            r#"::1 - frank [10/oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#,
            "2000-10-10T20:55:36Z",
        );
        check(
            &mut p,
            r#"vhost:443 1.2.3.4 - - [31/Oct/2020:23:30:00.123 +0000] "GET / HTTP/1.1""#,
            "2020-10-31T23:30:00.123Z",
        );
        // An earlier bracket that is not a stamp is skipped.
        check(
            &mut p,
            r#"1.2.3.4 - [weird user] [01/Nov/2020:00:00:01 +0000] "GET /[31/Oct/2020:00:00:00 +0000]""#,
            "2020-11-01T00:00:01Z",
        );
        // Too far into the line to be an access-log stamp.
        let far = format!("{} [31/Oct/2020:23:30:00 +0700]", "x".repeat(250));
        assert_eq!(p.parse(far.as_bytes()), None);
        assert_eq!(p.parse(b"1.2.3.4 - - [31/Oct/2020:23:30:00 +0700"), None);
        assert_eq!(p.parse(b"1.2.3.4 - - [31/Oct/2020:23:30:00]"), None);
        assert_eq!(p.parse(b"1.2.3.4 - - [31/Foo/2020:23:30:00 +0700]"), None);
    }

    // --- 6. Apache error log ---

    #[test]
    fn apache_error() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(
            &mut p,
            "[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] Directory index forbidden",
            "2005-12-03T21:47:44Z",
        );
        check(
            &mut p,
            "[Sun Dec 04 04:47:44.123456 2005] [core:error] [pid 1] AH00126: x",
            "2005-12-03T21:47:44.123456Z",
        );
        check(
            &mut p,
            "[Sun Dec  4 04:47:44 2005] [error] x",
            "2005-12-03T21:47:44Z",
        );
        assert_eq!(p.parse(b"[Sun Dec 04 04:47:44 2005 [error] x"), None);
        assert_eq!(p.parse(b"[Sux Dec 04 04:47:44 2005] [error] x"), None);
    }

    // --- 7. nginx error log ---

    #[test]
    fn nginx_error() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(
            &mut p,
            "2020/10/31 23:30:00 [error] 123#0: *1 open() failed",
            "2020-10-31T16:30:00Z",
        );
        check(
            &mut p,
            "2020/10/31 23:30:00.75 [error] 1#0: x",
            "2020-10-31T16:30:00.75Z",
        );
        assert_eq!(p.parse(b"2020/10/31T23:30:00 [error]"), None);
    }

    // --- 8. ClamAV ---

    #[test]
    fn bind_and_unbound_files() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(
            &mut p,
            "31-Oct-2020 23:30:00.123 client @0x7f1b2c0a1b20 192.0.2.10#53214 (evil.example): query: evil.example IN A +E(0) (192.0.2.53)",
            "2020-10-31T16:30:00.123Z",
        );
        check(
            &mut p,
            "01-Nov-2020 00:00:01.000 queries: info: client 192.0.2.10#1 (x): query: x IN A +",
            "2020-10-31T17:00:01Z",
        );
        check(
            &mut p,
            "[1604161800] unbound[1234:0] info: 192.0.2.10 evil.example. A IN",
            "2020-10-31T16:30:00Z",
        );
        assert_eq!(p.parse(b"31-Oct-20 23:30:00 x"), None);
        assert_eq!(p.parse(b"[12x] unbound"), None);
    }

    #[test]
    fn application_logs_of_their_own() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        // MySQL / MariaDB 5.x error log, hour space-padded; 8.0 writes RFC 3339.
        check(
            &mut p,
            "201031  1:45:18 [Warning] Access denied for user 'root'@'203.0.113.5' (using password: YES)",
            "2020-10-30T18:45:18Z",
        );
        check(&mut p, "201031 23:30:00 [Note] x", "2020-10-31T16:30:00Z");
        check(
            &mut p,
            "2020-10-31T01:45:18.920566Z 2 [Note] Access denied for user 'root'@'203.0.113.5'",
            "2020-10-31T01:45:18.920566Z",
        );
        // Roundcube / PHP: an offset, UTC, or a zone name (the configured zone).
        check(
            &mut p,
            "[31-Oct-2020 23:30:00 +0200]: IMAP Error: Login failed for admin from 203.0.113.5.",
            "2020-10-31T21:30:00Z",
        );
        check(
            &mut p,
            "[31-Oct-2020 23:30:00 UTC] PHP Warning: x",
            "2020-10-31T23:30:00Z",
        );
        check(
            &mut p,
            "[31-Oct-2020 23:30:00 Asia/Ho_Chi_Minh] PHP Warning: x",
            "2020-10-31T16:30:00Z",
        );
        // vsftpd's own log: ctime.
        check(
            &mut p,
            "Sat Oct 31 23:30:00 2020 [pid 1234] [admin] FAIL LOGIN: Client \"203.0.113.5\"",
            "2020-10-31T16:30:00Z",
        );
        check(
            &mut p,
            "2020-10-31  8:25:38 139845 [Warning] Access denied for user 'root'@'203.0.113.5'",
            "2020-10-31T01:25:38Z",
        );
        check(
            &mut p,
            "Sat Oct 3 23:30:00 2020 [pid 1234] [admin] FAIL LOGIN: Client \"203.0.113.5\"",
            "2020-10-03T16:30:00Z",
        );
        assert_eq!(p.parse(b"201331  1:45:18 [Note] x"), None, "month 13");
        assert_eq!(p.parse(b"201031 1:45:18 x"), None);
        assert_eq!(p.parse(b"[31-Oct-2020 23:30:00 <b>] x"), None);
        assert_eq!(p.parse(b"[31-Oct-2020 23:30:00 +0200 x"), None);
    }

    #[test]
    fn clamav() {
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-11-15T00:00:00Z"));
        check(
            &mut p,
            "Sun Dec  4 04:47:44 2005 -> /tmp/eicar.com: Eicar-Signature FOUND",
            "2005-12-03T21:47:44Z",
        );
        check(
            &mut p,
            "Sun Dec 14 04:47:44 2005 -> /x: OK",
            "2005-12-13T21:47:44Z",
        );
        check(&mut p, "sun dec 14 04:47:44 2005", "2005-12-13T21:47:44Z");
        assert_eq!(p.parse(b"Sun Dec 14 04:47:44 20051 -> x"), None);
    }

    // --- year inference ---

    #[test]
    fn december_read_in_january_is_last_year() {
        let mut p = utc_parser("2021-01-02T00:00:00Z");
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
        check(&mut p, "Jan  1 23:30:00 host x", "2021-01-01T23:30:00Z");
    }

    #[test]
    fn new_year_read_by_slow_clock_is_next_year() {
        let mut p = utc_parser("2020-12-31T23:59:59Z");
        check(&mut p, "Jan  1 00:00:01 host x", "2021-01-01T00:00:01Z");
        check(&mut p, "Dec 31 23:59:58 host x", "2020-12-31T23:59:58Z");
    }

    #[test]
    fn inference_limit_is_reference_plus_seven_days() {
        let mut p = utc_parser("2021-06-01T00:00:00Z");
        check(&mut p, "Jun  8 00:00:00 host x", "2021-06-08T00:00:00Z");
        check(
            &mut p,
            "Jun  8 00:00:00.000000001 host x",
            "2020-06-08T00:00:00.000000001Z",
        );
    }

    #[test]
    fn feb_29_inference_skips_non_leap_years() {
        let mut p = utc_parser("2021-03-01T00:00:00Z");
        check(&mut p, "Feb 29 12:00:00 host x", "2020-02-29T12:00:00Z");
        // No leap year among the candidates: no time rather than a wrong one.
        let mut p = utc_parser("2023-03-01T00:00:00Z");
        assert_eq!(p.parse(b"Feb 29 12:00:00 host x"), None);
    }

    #[test]
    fn reference_year_uses_configured_zone() {
        // 2020-12-31T20:00Z is already 2021 in UTC+7, so "Jan 1" is this (local) year.
        let mut p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), ts("2020-12-31T20:00:00Z"));
        check(&mut p, "Jan  1 02:00:00 host x", "2020-12-31T19:00:00Z");
        check(&mut p, "Dec 31 23:00:00 host x", "2020-12-31T16:00:00Z");
    }

    #[test]
    fn set_year_forces_year() {
        let mut p = utc_parser("2021-01-02T00:00:00Z");
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
        p.set_year(Some(2015));
        check(&mut p, "Dec 31 23:30:00 host x", "2015-12-31T23:30:00Z");
        // The forced year does not bend the calendar.
        assert_eq!(p.parse(b"Feb 29 23:30:00 host x"), None);
        p.set_year(Some(2016));
        check(&mut p, "Feb 29 23:30:00 host x", "2016-02-29T23:30:00Z");
        // Stamps with their own year keep it.
        check(&mut p, "2020-10-31T23:30:00Z", "2020-10-31T23:30:00Z");
        check(
            &mut p,
            "Oct 31 2020 23:30:00 host x",
            "2020-10-31T23:30:00Z",
        );
        p.set_year(None);
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
    }

    // --- zones ---

    #[test]
    fn ho_chi_minh_month_boundary() {
        let hcm = zone("Asia/Ho_Chi_Minh");
        let mut p = TimeParser::new(hcm.clone(), ts("2020-11-15T00:00:00Z"));

        let a = p.parse(b"Oct 31 23:30:00 host x").expect("syslog stamp");
        assert_eq!(a, ts("2020-10-31T16:30:00Z"));
        assert_eq!(a.to_zoned(hcm.clone()).month(), 10);

        let b = p
            .parse(b"2020-11-01T00:30:00+07:00 host x")
            .expect("rfc3339 stamp");
        assert_eq!(b, ts("2020-10-31T17:30:00Z"));
        assert_eq!(b.to_zoned(TimeZone::UTC).month(), 10);
        assert_eq!(b.to_zoned(hcm).month(), 11);
    }

    #[test]
    fn dst_gap_and_fold_are_compatible() {
        let mut p = TimeParser::new(zone("America/New_York"), ts("2021-12-01T00:00:00Z"));
        // 02:30 does not exist on that day; compatible moves forward past the gap.
        check(&mut p, "2021-03-14 02:30:00 x", "2021-03-14T07:30:00Z");
        // 01:30 happens twice; compatible takes the earlier (EDT) one.
        check(&mut p, "2021-11-07 01:30:00 x", "2021-11-07T05:30:00Z");
    }

    #[test]
    fn leap_second_is_clamped() {
        let mut p = utc_parser("2017-01-10T00:00:00Z");
        check(&mut p, "2016-12-31T23:59:60Z x", "2016-12-31T23:59:59Z");
    }

    #[test]
    fn zone_lookup() {
        assert!(zone_by_name("Asia/Ho_Chi_Minh").is_ok());
        assert!(zone_by_name("UTC").is_ok());
        let err = zone_by_name("Mars/Olympus_Mons").err().unwrap_or_default();
        assert!(err.contains("Mars/Olympus_Mons"), "{err}");
        let _ = system_time_zone();
        let p = TimeParser::new(zone("Asia/Ho_Chi_Minh"), Timestamp::UNIX_EPOCH);
        assert_eq!(p.time_zone().iana_name(), Some("Asia/Ho_Chi_Minh"));
    }

    // --- garbage ---

    #[test]
    fn garbage_is_none() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        let lines: &[&[u8]] = &[
            b"",
            b"<",
            b"<999999999999>",
            b"<999999999999>Oct 31 23:30:00 host x",
            b"<34>",
            b"<34>1 ",
            b"Oct 32 23:30:00 host x",
            b"Oct 00 23:30:00 host x",
            b"Foo 31 23:30:00 host x",
            b"Oct 31 25:30:00 host x",
            b"Oct 31 23:60:00 host x",
            b"Oct 31 23:30:61 host x",
            b"Oct 31 23:30:001 host x",
            b"Oct 31 23:30:00. host x",
            b"Oct 31 23:30",
            b"Oct 31 23:30:0",
            b"Oct 31",
            b"Oct",
            b"Feb 30 12:00:00 host x",
            b"2020-13-01T00:00:00Z",
            b"2020-00-01T00:00:00Z",
            b"2020-02-30T00:00:00Z",
            b"2021-02-29 00:00:00",
            b"2020-10-31T25:00:00Z",
            b"2020-10-31T23:30:00Q",
            b"2020-10-31X23:30:00Z",
            b"2020-10-31T23:30:00+99:00",
            b"2020-10-31T23:30",
            b"2020-10-3",
            b"2020/13/31 23:30:00 [error]",
            b"[Sun Dec 04 24:47:44 2005] [error]",
            b"Sun Dec 04 04:47:44",
            b"1.2.3.4 - - [31/Oct/2020:24:30:00 +0700] \"GET /\"",
            b"1.2.3.4 - - [32/Oct/2020:23:30:00 +0700] \"GET /\"",
            b"\xff\xfe\xfd Oct 31 23:30:00",
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            b"Oct\x0031 23:30:00 host",
            b"just a message with no time",
            b"12345",
            b"[",
            b"[[[[[[[[[[[[[[[[[[[[",
        ];
        for line in lines {
            assert_eq!(
                p.parse(line),
                None,
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// A tiny deterministic generator, so the mutation test needs no extra crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const SAMPLES: &[&str] = &[
        "Oct 31 23:30:00 host prog[1]: msg",
        "Jun  9 06:06:20.123 host x",
        "Oct 31 2020 23:30:00 host x",
        "<34>Oct 31 23:30:00 host su: x",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - msg",
        "<165>1 - host app - - msg",
        // Offsets other than the test zone's, so that losing one shows.
        "2020-10-31T23:30:00.123456-05:00 host x",
        "2020-10-31 23:30:00 +0100 host x",
        "2020-10-31 23:30:00Z host x",
        "2020-10-31 23:30:00,5 x",
        "1.2.3.4 - - [31/Oct/2020:23:30:00 +0700] \"GET / HTTP/1.1\" 200",
        "[Sun Dec 04 04:47:44.123456 2005] [core:error] x",
        "2020/10/31 23:30:00 [error] 123#0: x",
        "Sun Dec  4 04:47:44 2005 -> /x: Eicar FOUND",
        "Dec 31 23:59:59 host x",
        "Jan  1 00:00:01 host x",
        "Feb 29 00:00:00 host x",
    ];

    /// Truncations and byte mutations of real stamps: never a panic, and the caching parser
    /// must always agree with a parser that has never seen a line.
    #[test]
    fn mutations_never_panic_and_cache_agrees_with_fresh_parse() {
        let tz = zone("Asia/Ho_Chi_Minh");
        let reference = ts("2021-01-02T00:00:00Z");
        let mut p = TimeParser::new(tz.clone(), reference);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alphabet = b" 0123456789:-+./[]<>TZtz,abcJANOct\xff\0";
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for s in SAMPLES {
            let b = s.as_bytes();
            for n in 0..=b.len() {
                lines.push(b[..n].to_vec());
            }
            for _ in 0..600 {
                let mut m = b.to_vec();
                for _ in 0..(1 + rng.next() % 3) {
                    let i = (rng.next() as usize) % (m.len() + 1);
                    let c = alphabet[(rng.next() as usize) % alphabet.len()];
                    match rng.next() % 3 {
                        0 if i < m.len() => m[i] = c,
                        1 if i < m.len() => {
                            m.remove(i);
                        }
                        _ => m.insert(i, c),
                    }
                }
                lines.push(m);
            }
        }
        // First in generated order, where mutants of one stamp follow each other as lines of
        // one log do, then shuffled.
        for round in 0..2 {
            if round == 1 {
                for i in (1..lines.len()).rev() {
                    let j = (rng.next() as usize) % (i + 1);
                    lines.swap(i, j);
                }
            }
            for line in &lines {
                assert_eq!(
                    p.parse(line),
                    fresh(&tz, reference, line),
                    "line {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
        for _ in 0..20_000 {
            let len = (rng.next() % 48) as usize;
            let line: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(p.parse(&line), fresh(&tz, reference, &line));
        }
    }

    // --- cache ---

    #[test]
    fn cache_alternating_stamps() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        for _ in 0..3 {
            check(&mut p, "Oct 31 23:30:00 host a", "2020-10-31T23:30:00Z");
            check(&mut p, "Oct 31 23:30:01 host b", "2020-10-31T23:30:01Z");
            check(&mut p, "Oct 31 23:30:00 host c", "2020-10-31T23:30:00Z");
            check(
                &mut p,
                "2020-10-31T23:30:00+07:00 x",
                "2020-10-31T16:30:00Z",
            );
            check(&mut p, "2020-10-31T23:30:00Z x", "2020-10-31T23:30:00Z");
            check(
                &mut p,
                "1.1.1.1 - - [31/Oct/2020:23:30:00 +0700] x",
                "2020-10-31T16:30:00Z",
            );
            check(
                &mut p,
                "1.1.1.1 - - [31/Oct/2020:23:30:00 +0000] x",
                "2020-10-31T23:30:00Z",
            );
            check(
                &mut p,
                "2.2.2.2 - - [31/Oct/2020:23:30:00 +0700] x",
                "2020-10-31T16:30:00Z",
            );
        }
    }

    #[test]
    fn cache_distinguishes_longer_stamps_with_same_prefix() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(&mut p, "Oct 31 23:30:00 host", "2020-10-31T23:30:00Z");
        check(&mut p, "Oct 31 23:30:00.5 host", "2020-10-31T23:30:00.5Z");
        check(&mut p, "Oct 31 23:30:00", "2020-10-31T23:30:00Z");
        check(&mut p, "Oct 31 23:30:00.25", "2020-10-31T23:30:00.25Z");
        check(&mut p, "2020-10-31 23:30:00", "2020-10-31T23:30:00Z");
        check(
            &mut p,
            "2020-10-31 23:30:00 +0100 x",
            "2020-10-31T22:30:00Z",
        );
        check(&mut p, "2020-10-31 23:30:00 x", "2020-10-31T23:30:00Z");
        check(&mut p, "2020-10-31 23:30:00 +01:00", "2020-10-31T22:30:00Z");
        check(&mut p, "2020-10-31 23:30:00 +0", "2020-10-31T23:30:00Z");
        check(&mut p, "2020-10-31 23:30:00 +01", "2020-10-31T22:30:00Z");
        assert_eq!(p.parse(b"2020-10-31 23:30:001"), None);
    }

    #[test]
    fn cache_follows_reference_changes() {
        let mut p = utc_parser("2020-12-31T23:59:59Z");
        check(&mut p, "Jan  1 00:00:01 host x", "2021-01-01T00:00:01Z");
        // Same line much later in the year being read: now it is this year's January.
        p.set_reference(ts("2021-06-01T00:00:00Z"));
        check(&mut p, "Jan  1 00:00:01 host x", "2021-01-01T00:00:01Z");
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
        // Moving to a reference inside the next year's last week flips the December line.
        p.set_reference(ts("2021-12-25T00:00:00Z"));
        check(&mut p, "Dec 31 23:30:00 host x", "2021-12-31T23:30:00Z");
        p.set_reference(ts("2021-12-24T23:29:59.999999999Z"));
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
        p.set_reference(ts("2021-12-24T23:30:00Z"));
        check(&mut p, "Dec 31 23:30:00 host x", "2021-12-31T23:30:00Z");
        p.set_reference(ts("2022-01-02T00:00:00Z"));
        check(&mut p, "Dec 31 23:30:00 host x", "2021-12-31T23:30:00Z");
    }

    #[test]
    fn cache_invalidated_by_set_year() {
        let mut p = utc_parser("2021-01-02T00:00:00Z");
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
        p.set_year(Some(2018));
        check(&mut p, "Dec 31 23:30:00 host x", "2018-12-31T23:30:00Z");
        p.set_year(None);
        check(&mut p, "Dec 31 23:30:00 host x", "2020-12-31T23:30:00Z");
    }

    #[test]
    fn cache_with_changing_priority() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        check(&mut p, "<34>Oct 31 23:30:00 host x", "2020-10-31T23:30:00Z");
        check(&mut p, "<13>Oct 31 23:30:00 host x", "2020-10-31T23:30:00Z");
        check(&mut p, "Oct 31 23:30:00 host x", "2020-10-31T23:30:00Z");
        assert_eq!(p.parse(b"<999>Oct 31 23:30:00 host x"), None);
    }
}
