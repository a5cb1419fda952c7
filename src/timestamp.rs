//! Times written in log lines.
//!
//! Every matched line goes through [`TimeParser::parse`], so stamps are read by checking bytes
//! at fixed positions instead of using regexes or a generic `strptime`, without allocating,
//! and the last result is kept: consecutive lines nearly always share their second, and the
//! zone conversion is by far the most expensive step.
//!
//! The formats are data: each is a row of [`STAMP_FORMATS`] whose [`layout`] is compiled when
//! canhgac is, and one walker reads any row. The rows carry their examples,
//! which are the unit tests, so adding a format is adding a row; the input types that use a
//! format name it in [`crate::input::types`].

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

/// Applications' own logs put their stamp after a level, a thread name or a JSON key (a
/// Windows event's XML writes `<TimeCreated SystemTime=...>` some 400 bytes in); a stamp
/// farther in than this is in the message.
const INSIDE_SEARCH_LIMIT: usize = 512;

/// The keys under which applications write a line's time (`time="..."`, `t=...`,
/// `"timestamp":"..."`, `{"$date":"..."}`), compared without case.
const TIME_KEYS: &[&[u8]] = &[
    b"t",
    b"ts",
    b"time",
    b"timestamp",
    b"@timestamp",
    b"$date",
    b"date",
    b"datetime",
    b"asctime",
    b"eventtime",
    b"start_time",
    b"logtime",
    b"systemtime",
];

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
    /// How year-less stamps get their year: from the reference, walked
    /// from a given first year, or by line from a file's [`YearPlan`].
    years: Years,
    /// The line being parsed (see [`TimeParser::set_line`]).
    line_no: u64,
    /// Stamps at the start of the line (after any syslog priority and version).
    head: Cache,
    /// Bracketed access-log stamps, which are found inside the line.
    bracket: Cache,
    /// Whether stamps are also looked for inside the line (see [`Found::Inside`]).
    inside: bool,
    /// Stamps found inside the line.
    inside_cache: Cache,
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
            years: Years::Infer,
            line_no: 0,
            head: Cache::default(),
            bracket: Cache::default(),
            inside: false,
            inside_cache: Cache::default(),
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

    /// The year of the first year-less stamp, later ones walking forward
    /// through rollovers (December, then January: the next year) as the
    /// stamps come; `None` infers each from the reference. For a stream
    /// read once (`scan -`); a file is better served by [`YearPlan`].
    pub fn set_year(&mut self, year: Option<i16>) {
        self.years = match year {
            Some(y) => Years::Walk(YearWalk::new(y)),
            None => Years::Infer,
        };
        // Cached year-less results were computed under the old rule.
        self.head.clear();
    }

    /// The years of a whole file's year-less stamps by line number, from
    /// a pass over every line ([`YearPlanner`]); lines are then numbered
    /// with [`TimeParser::set_line`].
    pub fn set_year_plan(&mut self, plan: YearPlan) {
        self.years = Years::Plan {
            plan,
            next: 0,
            year: None,
        };
        self.head.clear();
    }

    /// The 1-based number of the line the next [`TimeParser::parse`] reads,
    /// for a [`YearPlan`]; ignored otherwise.
    pub fn set_line(&mut self, line_no: u64) {
        self.line_no = line_no;
    }

    /// Also looks for a line's stamp inside it, where applications' own logs write it
    /// ([`Found::Inside`]). Only for the input types whose stamps are there: in other logs
    /// a date inside the line is message text, which a client may have written.
    pub fn read_inside(&mut self) {
        self.inside = true;
    }

    /// The zone applied to stamps written without an offset.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The time written in `line` (bytes, may be invalid UTF-8, has no trailing newline), or None.
    pub fn parse(&mut self, line: &[u8]) -> Option<Timestamp> {
        let priority = match line.first() {
            Some(b'<') => strip_priority(line),
            _ => None,
        };
        let body = match priority {
            // A `<` that opens no priority is the line's own (a Windows event's XML).
            None => line,
            Some(body) => match strip_version(body) {
                // RFC 5424 writes NILVALUE when the sender has no clock; that is "no
                // time", not something to go looking for elsewhere in the line.
                Some(rest) if rest.first() == Some(&b'-') => return None,
                Some(rest) => rest,
                None => body,
            },
        };

        let planned = match &mut self.years {
            Years::Plan { plan, next, year } => {
                let now = plan.year_at(self.line_no, next);
                if *year != Some(now) {
                    // A stamp cached in another year names that year.
                    *year = Some(now);
                    self.head.clear();
                }
                Some(now)
            }
            _ => None,
        };
        if let Some(ts) = self.head.get(body, self.ref_year, self.limit) {
            return Some(ts);
        }
        if let Some((fields, examined, _)) = parse_head(body) {
            let given = match (&mut self.years, fields.year) {
                (_, Some(_)) | (Years::Infer, None) => None,
                (Years::Plan { .. }, None) => planned,
                (Years::Walk(walk), None) => {
                    let (year, rolled) = walk.step(fields.month);
                    if rolled {
                        self.head.clear();
                    }
                    Some(year)
                }
            };
            if let Some(year) = given {
                let ts = self.instant(&fields, year)?;
                // Cached as of a fixed year: a hit repeats the last stamp,
                // in the same year (a change of year cleared the cache).
                self.head.put(body, examined, ts, None);
                return Some(ts);
            }
            let (ts, inferred) = self.resolve(&fields)?;
            self.head.put(body, examined, ts, inferred);
            return Some(ts);
        }
        match self.parse_bracketed(line) {
            None if self.inside => self.parse_inside(line),
            found => found,
        }
    }

    /// Applications' own logs: the first place inside the line where [`inside_starts`] says
    /// a stamp may begin and one with a year does.
    fn parse_inside(&mut self, line: &[u8]) -> Option<Timestamp> {
        for (pos, keyed) in inside_starts(line) {
            let rest = &line[pos..];
            if let Some(ts) = self.inside_cache.get(rest, self.ref_year, self.limit) {
                return Some(ts);
            }
            if let Some((fields, examined, _)) = read_inside(rest, keyed) {
                let ts = self.instant(&fields, fields.year?)?;
                self.inside_cache.put(rest, examined, ts, None);
                return Some(ts);
            }
        }
        None
    }

    /// Access logs: the first `[` within reach that opens a stamp of a
    /// [`Found::Bracketed`] format.
    fn parse_bracketed(&mut self, line: &[u8]) -> Option<Timestamp> {
        let reach = &line[..line.len().min(BRACKET_SEARCH_LIMIT)];
        for pos in memchr::memchr_iter(b'[', reach) {
            let rest = &line[pos..];
            if let Some(ts) = self.bracket.get(rest, self.ref_year, self.limit) {
                return Some(ts);
            }
            if let Some((fields, examined, _)) = walk_rows(Found::Bracketed, rest) {
                let (ts, inferred) = self.resolve(&fields)?;
                self.bracket.put(rest, examined, ts, inferred);
                return Some(ts);
            }
        }
        None
    }

    /// Turns parsed fields into an instant; for year-less stamps also says for which
    /// references the inferred year stays right.
    fn resolve(&self, f: &Fields) -> Option<(Timestamp, Option<Inferred>)> {
        if let Some(year) = f.year {
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

/// Years through a file of year-less stamps, which are written in order:
/// a month more than six before the last one (January after December)
/// starts the next year; a month ten or more after it (a December line
/// among January's, written late) belongs to the year before, without
/// moving the walk. Anything else is the same year: lines a little out of
/// order, and a quiet log's gap of months.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearWalk {
    year: i16,
    last_month: Option<i8>,
}

impl YearWalk {
    pub fn new(first_year: i16) -> YearWalk {
        YearWalk {
            year: first_year,
            last_month: None,
        }
    }

    /// The year of a stamp in `month`, and whether the walk rolled over to
    /// a new year at it.
    pub fn step(&mut self, month: i8) -> (i16, bool) {
        match self.last_month {
            Some(last) if month + 6 < last => {
                self.year = self.year.saturating_add(1);
                self.last_month = Some(month);
                (self.year, true)
            }
            Some(last) if month >= last + 10 => (self.year.saturating_sub(1), false),
            _ => {
                self.last_month = Some(month);
                (self.year, false)
            }
        }
    }
}

/// How a [`TimeParser`] gives year-less stamps their year.
#[derive(Clone, Debug)]
enum Years {
    /// The latest year that puts the stamp no later than the reference.
    Infer,
    Walk(YearWalk),
    /// By line; `next` is the cursor into the plan's rollovers, `year` the
    /// year of the last line looked up.
    Plan {
        plan: YearPlan,
        next: usize,
        year: Option<i16>,
    },
}

/// The year of every line of a file of year-less stamps: the first line's
/// year, the lines where a new year starts, and the lines written late
/// into the next year (a year before the lines around them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YearPlan {
    first: i16,
    /// Line numbers where the year goes up by one, ascending.
    rollovers: Vec<u64>,
    /// Line numbers of stamps of the year before their neighbours'.
    late: Vec<u64>,
}

impl YearPlan {
    /// The year of line `line_no`; `next` is a cursor for lines asked in
    /// ascending order (any order is answered right, just slower).
    fn year_at(&self, line_no: u64, next: &mut usize) -> i16 {
        if *next > 0 && self.rollovers.get(*next - 1).is_some_and(|&r| r > line_no) {
            *next = 0;
        }
        while self.rollovers.get(*next).is_some_and(|&r| r <= line_no) {
            *next += 1;
        }
        let year = self.first + i16::try_from(*next).unwrap_or(i16::MAX);
        if self.late.binary_search(&line_no).is_ok() {
            year - 1
        } else {
            year
        }
    }

    /// The year of the first year-less stamp.
    pub fn first_year(&self) -> i16 {
        self.first
    }

    /// How many times the file's stamps roll over into a new year.
    pub fn rollovers(&self) -> usize {
        self.rollovers.len()
    }
}

/// Reads every line of a file, in order, to plan the years of its
/// year-less stamps: [`YearPlanner::anchored`] at its last stamp, or
/// [`YearPlanner::starting`] at a given first year.
#[derive(Default)]
pub struct YearPlanner {
    walk: Option<YearWalk>,
    line_no: u64,
    rollovers: Vec<u64>,
    late: Vec<u64>,
    /// The last year-less stamp and its year counted from the first.
    last: Option<(Fields, i16)>,
}

impl YearPlanner {
    /// The next line of the file (without its newline).
    pub fn line(&mut self, line: &[u8]) {
        self.line_no += 1;
        let body = match line.first() {
            Some(b'<') => match strip_priority(line) {
                Some(body) => strip_version(body).unwrap_or(body),
                None => return,
            },
            _ => line,
        };
        let Some((fields, _, _)) = parse_head(body) else {
            return;
        };
        if fields.year.is_some() {
            return;
        }
        // Walked from year 0: a year is then the rollovers before it.
        let walk = self.walk.get_or_insert(YearWalk::new(0));
        let before = walk.year;
        let (year, rolled) = walk.step(fields.month);
        if rolled {
            self.rollovers.push(self.line_no);
        } else if year < before {
            self.late.push(self.line_no);
        }
        self.last = Some((fields, year));
    }

    /// Whether a line so far started with a year-less stamp.
    pub fn has_yearless(&self) -> bool {
        self.last.is_some()
    }

    /// The plan whose last year-less stamp lies at or before `mtime` (the
    /// file was last written then), as late as it can in `tz`; `None` when
    /// no line starts with a year-less stamp.
    pub fn anchored(self, tz: &TimeZone, mtime: Timestamp) -> Option<YearPlan> {
        let (fields, relative) = self.last?;
        let parser = TimeParser::new(tz.clone(), mtime);
        let newest = tz.to_datetime(mtime).year();
        // Eight years back reach a 29 February stamp from any year.
        let last_year = (0..8)
            .map(|back| newest - back)
            .find(|&year| parser.instant(&fields, year).is_some_and(|t| t <= mtime))?;
        Some(self.starting(last_year - relative))
    }

    /// The plan whose first year-less stamp is of `first_year`.
    pub fn starting(self, first_year: i16) -> YearPlan {
        YearPlan {
            first: first_year,
            rollovers: self.rollovers,
            late: self.late,
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

/// What follows a syslog `<PRI>` (1-3 digits, PRI <= 191: facility 23, severity 7); None
/// when malformed.
pub(crate) fn strip_priority(line: &[u8]) -> Option<&[u8]> {
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

/// What follows RFC 5424's VERSION (1-3 digits, no leading zero) and the space after it;
/// None when there is none.
pub(crate) fn strip_version(body: &[u8]) -> Option<&[u8]> {
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

/// Where a format's stamp is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// At the start of the line, after any syslog priority and RFC 5424 version.
    Head,
    /// At a `[` within [`BRACKET_SEARCH_LIMIT`] bytes of the line's start: access logs put
    /// the client, identity and user before their stamp.
    Bracketed,
    /// Inside the line, where applications' own logs write their stamp: after a `[` or the
    /// value mark of a time key (`time=`, `"ts":`), within [`INSIDE_SEARCH_LIMIT`] bytes. There
    /// the rows of this kind are read, and the [`Found::Head`] rows that carry a year. Only
    /// for input types that name a row of this kind or of [`Found::Keyed`] (see
    /// [`TimeParser::read_inside`]).
    Inside,
    /// As [`Found::Inside`], after a time key only: a number in brackets is no time.
    Keyed,
}

/// One time-stamp format: a row of [`STAMP_FORMATS`].
pub struct StampFormat {
    /// What the format is called in [`crate::input::types`] and in test failures.
    pub name: &'static str,
    pub found: Found,
    /// The stamp as written, in the language of [`layout`].
    pub layout: Layout,
    /// When the row fails on a line that fits this, no later row is tried: the line is taken
    /// for a damaged stamp of this format rather than a stamp of another one.
    pub claims: Option<Layout>,
    /// Lines and what they must read as, in [`EXAMPLE_ZONE`] with [`EXAMPLE_REFERENCE`] as
    /// "now": an instant (RFC 3339), or `None` for a line that must not be dated at all.
    pub examples: &'static [(&'static str, Option<&'static str>)],
}

/// The zone examples are read in: seven hours east of UTC, so that a stamp read in the wrong
/// zone cannot pass for a right one.
pub const EXAMPLE_ZONE: &str = "Asia/Ho_Chi_Minh";
/// "Now" for the examples' year-less stamps.
pub const EXAMPLE_REFERENCE: &str = "2020-11-15T00:00:00Z";

mod formats;
pub use formats::STAMP_FORMATS;

/// The stamp at the start of `body`: its fields, how many bytes decided them (one more than
/// `body.len()` when the end of the line did), and the row that read it.
fn parse_head(body: &[u8]) -> Option<(Fields, usize, &'static StampFormat)> {
    walk_rows(Found::Head, body)
}

/// The first row of `found` that fits the start of `b`.
fn walk_rows(found: Found, b: &[u8]) -> Option<(Fields, usize, &'static StampFormat)> {
    let mut reader = Reader { line: b, seen: 0 };
    let first = reader.byte(0);
    for row in STAMP_FORMATS.iter().filter(|row| row.found == found) {
        if !row.layout.first.admits(first) {
            continue;
        }
        if let Some(fields) = row.layout.read(&mut reader) {
            return Some((fields, reader.seen, row));
        }
        if row
            .claims
            .as_ref()
            .is_some_and(|c| c.read(&mut reader).is_some())
        {
            return None;
        }
    }
    None
}

/// Where in `line` a stamp may begin, in order, and whether a time key names it: after a
/// `[`, or after the `=` or `":` (and an opening quote, `"` or `'`) of a key in [`TIME_KEYS`].
fn inside_starts(line: &[u8]) -> impl Iterator<Item = (usize, bool)> + '_ {
    let reach = &line[..line.len().min(INSIDE_SEARCH_LIMIT)];
    memchr::memchr3_iter(b'[', b'=', b':', reach).filter_map(move |i| {
        let value = match reach[i] {
            b'[' => return Some((i + 1, false)),
            b'=' if is_time_key(key_before(reach, i)) => i + 1,
            b':' if i > 0 && reach[i - 1] == b'"' && is_time_key(key_before(reach, i - 1)) => i + 1,
            _ => return None,
        };
        let skip = reach[value..]
            .iter()
            .take_while(|&&c| matches!(c, b' ' | b'"' | b'\''))
            .count();
        Some((value + skip, true))
    })
}

/// The key that ends at `end` (exclusive): the run of key bytes before it.
fn key_before(b: &[u8], end: usize) -> &[u8] {
    let start = b[..end]
        .iter()
        .rposition(|&c| {
            !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@' | b'$' | b'.' | b'-'))
        })
        .map_or(0, |p| p + 1);
    &b[start..end]
}

fn is_time_key(key: &[u8]) -> bool {
    TIME_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// The stamp with a year at the start of `b`, read by a [`Found::Inside`] row (or a
/// [`Found::Keyed`] one, when a time key names the place) or a [`Found::Head`] one, and how
/// many bytes decided it.
fn read_inside(b: &[u8], keyed: bool) -> Option<(Fields, usize, &'static StampFormat)> {
    let mut reader = Reader { line: b, seen: 0 };
    let first = reader.byte(0);
    for row in STAMP_FORMATS.iter().filter(|row| match row.found {
        Found::Head | Found::Inside => true,
        Found::Keyed => keyed,
        Found::Bracketed => false,
    }) {
        if !row.layout.first.admits(first) {
            continue;
        }
        if let Some(fields) = row.layout.read(&mut reader) {
            if fields.year.is_some() {
                return Some((fields, reader.seen, row));
            }
        }
    }
    None
}

/// The name of the row that dates `line`, as [`TimeParser::parse`] would look for it (inside
/// the line too, as for the input types that read there).
#[cfg(test)]
pub(crate) fn stamp_format_of(line: &[u8]) -> Option<&'static str> {
    let body = match line.first() {
        Some(b'<') => strip_priority(line).map(|body| strip_version(body).unwrap_or(body))?,
        _ => line,
    };
    if let Some((_, _, row)) = parse_head(body) {
        return Some(row.name);
    }
    let reach = &line[..line.len().min(BRACKET_SEARCH_LIMIT)];
    memchr::memchr_iter(b'[', reach)
        .find_map(|pos| walk_rows(Found::Bracketed, &line[pos..]))
        .or_else(|| inside_starts(line).find_map(|(pos, keyed)| read_inside(&line[pos..], keyed)))
        .map(|(_, _, row)| row.name)
}

/// Whether `line` carries a stamp with a year where an application's own log writes one:
/// at its start, in brackets, or under a time key.
pub fn dated_inside(line: &[u8]) -> bool {
    parse_head(line).is_some_and(|(fields, _, _)| fields.year.is_some())
        || inside_starts(line).any(|(pos, keyed)| read_inside(&line[pos..], keyed).is_some())
}

/// Most tokens a layout may have.
const MAX_TOKENS: usize = 16;

/// A stamp's shape, compiled from a string by [`layout`] when canhgac is compiled.
pub struct Layout {
    tokens: [Token; MAX_TOKENS],
    len: usize,
    first: FirstByte,
}

/// What a line's first byte must be for the layout to fit: most lines are dated by the
/// cache or by one of the last rows, and one comparison is cheaper than starting a walk.
#[derive(Debug, Clone, Copy)]
enum FirstByte {
    Exactly(u8),
    Digit,
    Letter,
    Any,
}

impl FirstByte {
    const fn of(token: Token) -> FirstByte {
        match token {
            Token::Byte(c) => FirstByte::Exactly(c),
            Token::AnyDigit
            | Token::Year4
            | Token::Year2
            | Token::Month2
            | Token::Day2 { .. }
            | Token::Clock
            | Token::EpochSeconds { .. } => FirstByte::Digit,
            Token::MonthName | Token::Weekday | Token::DateTimeSeparator => FirstByte::Letter,
            _ => FirstByte::Any,
        }
    }

    #[inline]
    fn admits(self, first: Option<u8>) -> bool {
        match (self, first) {
            (FirstByte::Any, _) => true,
            (_, None) => false,
            (FirstByte::Exactly(c), Some(b)) => b == c,
            (FirstByte::Digit, Some(b)) => b.is_ascii_digit(),
            (FirstByte::Letter, Some(b)) => b.is_ascii_alphabetic(),
        }
    }
}

/// The pieces of a layout. Ranges that are checked make a line that breaks them not a stamp
/// of the format, so a later row or the access-log search may still date it; ranges left to
/// the calendar make it a stamp that denotes no time, so the line has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyDigit,
    AnyByte,
    Year4,
    Year2,
    Month2,
    MonthName,
    Weekday,
    Day2 { checked: bool },
    DayPadded { checked: bool },
    Clock,
    ClockPaddedHour,
    Fraction { comma: bool },
    DateTimeSeparator,
    ZoneDesignator,
    Offset,
    ZoneName { until: u8 },
    EpochSeconds { min: usize },
    End,
}

/// The words of the layout language; every other byte stands for itself. The first word
/// that fits is taken, so a word goes before the shorter words it begins with.
const VOCABULARY: &[(&str, Token)] = &[
    // Date
    ("YYYY", Token::Year4),
    ("YY", Token::Year2), // 20YY
    ("MM", Token::Month2),
    ("Mmm", Token::MonthName),
    ("Www", Token::Weekday),
    ("DD", Token::Day2 { checked: true }),
    ("dd", Token::Day2 { checked: false }),
    ("_D", Token::DayPadded { checked: true }),
    ("_d", Token::DayPadded { checked: false }),
    ("T", Token::DateTimeSeparator),
    // Time of day
    ("hh:mm:ss", Token::Clock),
    ("_h:mm:ss", Token::ClockPaddedHour),
    (".,f", Token::Fraction { comma: true }),
    (".f", Token::Fraction { comma: false }),
    // Zone
    ("ZONE", Token::ZoneName { until: 0 }),
    ("Z", Token::ZoneDesignator),
    ("±hh:mm", Token::Offset),
    ("EPOCH10", Token::EpochSeconds { min: 10 }),
    ("EPOCH", Token::EpochSeconds { min: 1 }),
    // Structure
    ("~", Token::End),
    ("#", Token::AnyDigit),
    ("?", Token::AnyByte),
];

/// Compiles a layout; a layout that is not one stops the build.
///
/// | word       | reads                                                                   |
/// |------------|-------------------------------------------------------------------------|
/// | `YYYY`     | the year, four digits                                                   |
/// | `YY`       | a year of this century, two digits                                      |
/// | `MM`       | the month, `01`-`12` checked                                            |
/// | `Mmm`      | the month's English abbreviation, any case                              |
/// | `Www`      | the weekday's English abbreviation, any case; not compared with the date |
/// | `DD`       | the day, two digits, `01`-`31` checked                                  |
/// | `dd`       | the day, two digits, left to the calendar                               |
/// | `_D`       | the day as `dd`, ` d`, or `d` before a space; `1`-`31` checked          |
/// | `_d`       | the day as `_D` reads it, left to the calendar                          |
/// | `T`        | `T` or `t` between date and time                                        |
/// | `hh:mm:ss` | the time of day; a leap second is read as the second before it          |
/// | `_h:mm:ss` | the time of day with a one-digit hour after a space                     |
/// | `.f`       | if a `.` follows, a fraction of at least one digit                      |
/// | `.,f`      | the same after a `.` or a `,`                                           |
/// | `Z`        | if `Z`, `z`, `+` or `-` follows, UTC or an offset as `±hh:mm` reads it  |
/// | `±hh:mm`   | an offset: `±hh`, `±hhmm` or `±hh:mm`                                   |
/// | `ZONE`     | up to the byte after it: `UTC`, `GMT`, an offset or a zone name (read as the configured zone) |
/// | `EPOCH`    | seconds since 1970 in UTC, 1 to 11 digits                               |
/// | `EPOCH10`  | the same, at least 10 digits (since September 2001)                     |
/// | `~`        | the stamp ends: no letter or digit follows                              |
/// | `#`, `?`   | any digit, any byte (for [`StampFormat::claims`])                       |
///
/// Without `Z`, `±hh:mm` or a zone in `ZONE` a stamp is in the configured zone; without a
/// year it is of the year [`TimeParser`] infers.
pub const fn layout(spec: &str) -> Layout {
    let spec = spec.as_bytes();
    let mut tokens = [Token::End; MAX_TOKENS];
    let mut len = 0;
    let mut i = 0;
    while i < spec.len() {
        assert!(len < MAX_TOKENS, "layout has too many tokens");
        let mut token = Token::Byte(spec[i]);
        let mut width = 1;
        let mut w = 0;
        while w < VOCABULARY.len() {
            let word = VOCABULARY[w].0.as_bytes();
            if starts_with_at(spec, i, word) {
                token = VOCABULARY[w].1;
                width = word.len();
                break;
            }
            w += 1;
        }
        if let Token::Byte(c) = token {
            assert!(
                c.is_ascii(),
                "layout has a byte that is neither a word nor ASCII"
            );
        }
        if let Token::ZoneName { .. } = token {
            assert!(
                i + width < spec.len(),
                "ZONE must be followed by the byte that ends it"
            );
            token = Token::ZoneName {
                until: spec[i + width],
            };
        }
        tokens[len] = token;
        len += 1;
        i += width;
    }
    Layout {
        tokens,
        len,
        first: FirstByte::of(tokens[0]),
    }
}

const fn starts_with_at(spec: &[u8], i: usize, word: &[u8]) -> bool {
    if i + word.len() > spec.len() {
        return false;
    }
    let mut k = 0;
    while k < word.len() {
        if spec[i + k] != word[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Longest `ZONE` read, with the byte that ends it.
const ZONE_NAME_REACH: usize = 40;

/// Most digits of `EPOCH`: enough until the year 5138, few enough for an `i64`.
const EPOCH_DIGITS: usize = 11;

impl Layout {
    /// The fields of a stamp of this layout at the start of the reader's line.
    fn read(&self, r: &mut Reader) -> Option<Fields> {
        let mut f = Fields {
            year: None,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            nano: 0,
            offset: None,
        };
        let mut i = 0;
        for token in &self.tokens[..self.len] {
            match *token {
                Token::Byte(c) => {
                    r.expect(i, c)?;
                    i += 1;
                }
                Token::AnyDigit => {
                    r.number(i, 1)?;
                    i += 1;
                }
                Token::AnyByte => {
                    r.byte(i)?;
                    i += 1;
                }
                Token::Year4 => {
                    f.year = Some(r.number(i, 4)? as i16);
                    i += 4;
                }
                Token::Year2 => {
                    f.year = Some(2000 + r.number(i, 2)? as i16);
                    i += 2;
                }
                Token::Month2 => {
                    f.month = r.number(i, 2)? as i8;
                    // Ranges beyond these (and day-of-month) are left to DateTime::new.
                    if !(1..=12).contains(&f.month) {
                        return None;
                    }
                    i += 2;
                }
                Token::MonthName => {
                    f.month = r.month(i)?;
                    i += 3;
                }
                Token::Weekday => {
                    r.weekday(i)?;
                    i += 3;
                }
                Token::Day2 { checked } => {
                    f.day = r.number(i, 2)? as i8;
                    i += 2;
                    if checked && !(1..=31).contains(&f.day) {
                        return None;
                    }
                }
                Token::DayPadded { checked } => {
                    let (day, width) = match (r.byte(i)?, r.byte(i + 1)?) {
                        (b' ', d) if d.is_ascii_digit() => (d - b'0', 2),
                        (d1, d2) if d1.is_ascii_digit() && d2.is_ascii_digit() => {
                            ((d1 - b'0') * 10 + (d2 - b'0'), 2)
                        }
                        (d, b' ') if d.is_ascii_digit() => (d - b'0', 1),
                        _ => return None,
                    };
                    f.day = day as i8;
                    i += width;
                    if checked && !(1..=31).contains(&f.day) {
                        return None;
                    }
                }
                Token::DateTimeSeparator => {
                    if !matches!(r.byte(i)?, b'T' | b't') {
                        return None;
                    }
                    i += 1;
                }
                Token::Clock => {
                    let hour = r.number(i, 2)?;
                    (f.hour, f.minute, f.second) = r.minutes_seconds(i + 2, hour)?;
                    i += 8;
                }
                Token::ClockPaddedHour => {
                    r.expect(i, b' ')?;
                    let hour = r.number(i + 1, 1)?;
                    (f.hour, f.minute, f.second) = r.minutes_seconds(i + 2, hour)?;
                    i += 8;
                }
                Token::Fraction { comma } => {
                    let mark = r.byte(i);
                    if mark == Some(b'.') || (comma && mark == Some(b',')) {
                        (f.nano, i) = r.fraction(i + 1)?;
                    }
                }
                Token::ZoneDesignator => match r.byte(i) {
                    Some(b'Z' | b'z') => {
                        f.offset = Some(0);
                        i += 1;
                    }
                    Some(b'+' | b'-') => (f.offset, i) = r.offset(i).map(|(o, j)| (Some(o), j))?,
                    _ => {}
                },
                Token::Offset => (f.offset, i) = r.offset(i).map(|(o, j)| (Some(o), j))?,
                Token::ZoneName { until } => {
                    let mut close = i;
                    while r.byte(close)? != until {
                        close += 1;
                        if close - i >= ZONE_NAME_REACH {
                            return None;
                        }
                    }
                    f.offset = r.zone_name(i, close)?;
                    i = close;
                }
                Token::EpochSeconds { min } => {
                    let mut secs: i64 = 0;
                    let mut digits = 0;
                    while digits < EPOCH_DIGITS {
                        match r.byte(i + digits) {
                            Some(c) if c.is_ascii_digit() => secs = secs * 10 + i64::from(c - b'0'),
                            _ => break,
                        }
                        digits += 1;
                    }
                    if digits < min {
                        return None;
                    }
                    let dt = TimeZone::UTC.to_datetime(Timestamp::from_second(secs).ok()?);
                    f = Fields {
                        year: Some(dt.year()),
                        month: dt.month(),
                        day: dt.day(),
                        hour: dt.hour(),
                        minute: dt.minute(),
                        second: dt.second(),
                        nano: 0,
                        offset: Some(0),
                    };
                    i += digits;
                }
                Token::End => {
                    if r.byte(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                        return None;
                    }
                }
            }
        }
        Some(f)
    }
}

/// A line being read, and how far into it anything has been looked at: a cached result
/// holds for another line only if every byte a decision looked at is the same.
struct Reader<'a> {
    line: &'a [u8],
    seen: usize,
}

impl Reader<'_> {
    #[inline]
    fn byte(&mut self, i: usize) -> Option<u8> {
        self.seen = self.seen.max(i + 1);
        self.line.get(i).copied()
    }

    #[inline]
    fn expect(&mut self, i: usize, c: u8) -> Option<()> {
        (self.byte(i)? == c).then_some(())
    }

    /// `n` ASCII digits at `i` as a number.
    #[inline]
    fn number(&mut self, i: usize, n: usize) -> Option<u32> {
        let mut v: u32 = 0;
        for k in i..i + n {
            let c = self.byte(k)?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }

    /// `:mm:ss` at `i` after `hour`.
    fn minutes_seconds(&mut self, i: usize, hour: u32) -> Option<(i8, i8, i8)> {
        self.expect(i, b':')?;
        let minute = self.number(i + 1, 2)?;
        self.expect(i + 3, b':')?;
        let second = self.number(i + 4, 2)?;
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        // A leap second has no civil representation in jiff; it is at most a second off.
        Some((hour as i8, minute as i8, second.min(59) as i8))
    }

    /// The digits of a fraction at `i`: nanoseconds and the index after them.
    fn fraction(&mut self, start: usize) -> Option<(i32, usize)> {
        let mut nano: u32 = 0;
        let mut j = start;
        while let Some(c) = self.byte(j).filter(u8::is_ascii_digit) {
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
        Some((nano as i32, j))
    }

    /// `±hh`, `±hhmm` or `±hh:mm` at `i`; seconds east of UTC and the index after.
    fn offset(&mut self, i: usize) -> Option<(i32, usize)> {
        let sign: i32 = match self.byte(i)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let hours = self.number(i + 1, 2)?;
        let (minutes, end) = match self.byte(i + 3) {
            Some(b':') => (self.number(i + 4, 2)?, i + 6),
            Some(c) if c.is_ascii_digit() => (self.number(i + 3, 2)?, i + 5),
            _ => (0, i + 3),
        };
        if hours > 25 || minutes > 59 {
            return None;
        }
        Some((sign * (hours as i32 * 3600 + minutes as i32 * 60), end))
    }

    /// The zone written in `line[start..close]`: `Some(offset)` for UTC, GMT or an offset,
    /// `None` for a zone name (the configured zone stands for it); the outer `None` when it
    /// is none of these.
    fn zone_name(&mut self, start: usize, close: usize) -> Option<Option<i32>> {
        let zone = self.line.get(start..close)?;
        if zone == b"UTC" || zone == b"GMT" {
            Some(Some(0))
        } else if matches!(zone.first(), Some(b'+' | b'-')) {
            let (offset, after) = self.offset(start)?;
            (after == close).then_some(Some(offset))
        } else if zone
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"/_-+".contains(c))
        {
            Some(None)
        } else {
            None
        }
    }

    /// Three ASCII letters at `i`, lowercased, or None.
    #[inline]
    fn word3(&mut self, i: usize) -> Option<[u8; 3]> {
        let w = [self.byte(i)?, self.byte(i + 1)?, self.byte(i + 2)?];
        w.iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| w.map(|c| c | 0x20))
    }

    /// English month abbreviation at `i`, any case, as 1..=12.
    fn month(&mut self, i: usize) -> Option<i8> {
        Some(match &self.word3(i)? {
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

    /// English weekday abbreviation at `i`. Only checked, not compared with the date: a
    /// stamp whose weekday disagrees is still the best time we have.
    fn weekday(&mut self, i: usize) -> Option<()> {
        matches!(
            &self.word3(i)?,
            b"sun" | b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat"
        )
        .then_some(())
    }
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

    /// Every line of `lines` parsed by number under the plan of the whole
    /// file, `year` for the first stamp or anchored at `mtime`.
    fn planned(lines: &[&str], year: Option<i16>, mtime: &str) -> Vec<Timestamp> {
        let mut planner = YearPlanner::default();
        for l in lines {
            planner.line(l.as_bytes());
        }
        let plan = match year {
            Some(y) => planner.starting(y),
            None => planner
                .anchored(&TimeZone::UTC, ts(mtime))
                .expect("year-less stamps"),
        };
        let mut p = utc_parser(mtime);
        p.set_year_plan(plan);
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                p.set_line(i as u64 + 1);
                p.parse(l.as_bytes()).expect("stamp")
            })
            .collect()
    }

    #[test]
    fn a_file_across_new_year_follows_its_rollover() {
        let lines = [
            "Dec 30 23:00:00 h sshd[1]: a",
            "Dec 31 23:59:59 h sshd[1]: b",
            "Jan  1 00:00:01 h sshd[1]: c",
            // Written late, after the new year had begun.
            "Dec 31 23:59:58 h sshd[1]: d",
            "Jan  2 10:00:00 h sshd[1]: e",
        ];
        let want = [
            ts("2021-12-30T23:00:00Z"),
            ts("2021-12-31T23:59:59Z"),
            ts("2022-01-01T00:00:01Z"),
            ts("2021-12-31T23:59:58Z"),
            ts("2022-01-02T10:00:00Z"),
        ];
        // Anchored at the last line, whatever the mtime's year says.
        assert_eq!(planned(&lines, None, "2022-02-01T06:25:00Z"), want);
        // --year is the first line's year, and rolls over with the file.
        assert_eq!(planned(&lines, Some(2021), "2030-01-01T00:00:00Z"), want);
        // The last line is never after the mtime: a file last written on
        // 1 January 2022 cannot hold 2 January 2022.
        let early = planned(&lines, None, "2022-01-01T12:00:00Z");
        assert_eq!(early[4], ts("2021-01-02T10:00:00Z"));
        assert_eq!(early[0], ts("2020-12-30T23:00:00Z"));
    }

    #[test]
    fn a_file_over_two_years_and_lines_of_their_own_years() {
        let lines = [
            "Nov 15 08:00:00 h a",
            "2020-11-16T00:00:00Z h dated lines keep their year",
            "Mar  1 08:00:00 h b",
            "Oct  1 08:00:00 h c",
            "Feb 29 08:00:00 h d",
        ];
        // 2019-11 -> 2020-03 -> 2020-10 -> 2021-02-29 does not exist:
        // anchored so that Feb 29 exists and is before the mtime.
        let got = planned(&lines, None, "2024-06-01T00:00:00Z");
        assert_eq!(got[4], ts("2024-02-29T08:00:00Z"));
        assert_eq!(got[3], ts("2023-10-01T08:00:00Z"));
        assert_eq!(got[2], ts("2023-03-01T08:00:00Z"));
        assert_eq!(got[0], ts("2022-11-15T08:00:00Z"));
        assert_eq!(got[1], ts("2020-11-16T00:00:00Z"));
    }

    #[test]
    fn a_stream_walks_its_rollovers_from_the_given_year() {
        let mut p = utc_parser("2030-01-01T00:00:00Z");
        p.set_year(Some(2021));
        check(&mut p, "Dec 31 23:59:59 h a", "2021-12-31T23:59:59Z");
        check(&mut p, "Jan  1 00:00:00 h b", "2022-01-01T00:00:00Z");
        check(&mut p, "Jan  1 00:00:00 h b", "2022-01-01T00:00:00Z");
        check(&mut p, "Dec 31 23:59:59 h a", "2021-12-31T23:59:59Z");
        check(&mut p, "Feb  3 00:00:00 h c", "2022-02-03T00:00:00Z");
    }

    fn examples() -> impl Iterator<Item = (&'static StampFormat, &'static str, Option<&'static str>)>
    {
        STAMP_FORMATS
            .iter()
            .flat_map(|f| f.examples.iter().map(move |&(line, want)| (f, line, want)))
    }

    // --- the table ---

    /// A row's examples, each through a fresh parser and then all through one
    /// parser, whose cache must not change a result; a line that is dated
    /// must be dated by this row.
    fn check_row(name: &str) {
        let format = STAMP_FORMATS
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        let tz = zone(EXAMPLE_ZONE);
        let reference = ts(EXAMPLE_REFERENCE);
        let inside = matches!(format.found, Found::Inside | Found::Keyed);
        let mut shared = TimeParser::new(tz.clone(), reference);
        if inside {
            shared.read_inside();
        }
        for &(line, want) in format.examples {
            let want = want.map(ts);
            let context = format!("{name} example {line:?}");
            let mut fresh = TimeParser::new(tz.clone(), reference);
            if inside {
                fresh.read_inside();
            }
            assert_eq!(fresh.parse(line.as_bytes()), want, "{context}");
            assert_eq!(shared.parse(line.as_bytes()), want, "{context}, cached");
            if want.is_some() {
                assert_eq!(stamp_format_of(line.as_bytes()), Some(name), "{context}");
            }
        }
    }

    /// One test a row, so that a failure names its format.
    macro_rules! row_tests {
        ($($test:ident => $name:literal),* $(,)?) => {
            $(
                #[test]
                fn $test() {
                    check_row($name);
                }
            )*
        };
    }

    row_tests! {
        rfc3339 => "rfc3339",
        iso_offset_after_space => "iso-offset-after-space",
        iso_space => "iso-space",
        iso_space_padded_hour => "iso-space-padded-hour",
        nginx_error => "nginx-error",
        bind => "bind",
        mysql => "mysql",
        mysql_padded_hour => "mysql-padded-hour",
        php => "php",
        epoch => "epoch",
        apache_error => "apache-error",
        bsd_with_year => "bsd-with-year",
        bsd => "bsd",
        ctime => "ctime",
        fortigate => "fortigate",
        python_http => "python-http",
        epoch_key => "epoch-key",
        clf => "clf",
    }

    /// Every example of every row through one parser (one that looks inside lines for the
    /// rows found there), in table order twice: the cache, warmed by other formats' stamps,
    /// must not change a result.
    #[test]
    fn every_example_reads_as_its_row_says() {
        let tz = zone(EXAMPLE_ZONE);
        let reference = ts(EXAMPLE_REFERENCE);
        let mut shared = TimeParser::new(tz.clone(), reference);
        let mut inside = TimeParser::new(tz.clone(), reference);
        inside.read_inside();
        for _ in 0..2 {
            for (format, line, want) in examples() {
                let context = format!("{} example {line:?}", format.name);
                let parser = match format.found {
                    Found::Inside | Found::Keyed => &mut inside,
                    Found::Head | Found::Bracketed => &mut shared,
                };
                assert_eq!(parser.parse(line.as_bytes()), want.map(ts), "{context}");
            }
        }
    }

    /// Applications' stamps: under their time keys and in brackets, not under other keys,
    /// and not at all for input types that do not look inside lines.
    #[test]
    fn stamps_inside_lines_are_read_only_where_applications_write_them() {
        let tz = zone(EXAMPLE_ZONE);
        let reference = ts(EXAMPLE_REFERENCE);
        let cases = [
            (
                r#"logger=context userId=0 uname= t=2020-10-31T23:30:00.3668+02:00 level=error"#,
                Some("2020-10-31T21:30:00.3668Z"),
            ),
            (
                r#"{"t":{"$date":"2020-10-31T18:00:00.903+02:00"},"s":"I","c":"ACCESS"}"#,
                Some("2020-10-31T16:00:00.903Z"),
            ),
            (
                r#"time="2020-10-31T23:30:00Z" level=warning msg="HTTP: POST /auth/login""#,
                Some("2020-10-31T23:30:00Z"),
            ),
            (
                r#"{"reqId":"U1rs","level":2,"time":"2020-10-31T15:42:37+00:00","remoteAddr":"x"}"#,
                Some("2020-10-31T15:42:37Z"),
            ),
            (
                "W, [2020-10-31T23:30:00.245316 #1]  WARN -- : Failed login for 'user'",
                Some("2020-10-31T16:30:00.245316Z"),
            ),
            (
                "[2020-10-31 23:30:00,562]  WARN {cps.web:1475} Login failed",
                Some("2020-10-31T16:30:00.562Z"),
            ),
            (
                concat!(
                    r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>"#,
                    r#"<Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-"#,
                    r#"4994-a5ba-3e3b0328c30d}" /><EventID>4625</EventID><Version>0</Version>"#,
                    r#"<Level>0</Level><Task>12544</Task><Opcode>0</Opcode><Keywords>0x80100000"#,
                    r#"00000000</Keywords><TimeCreated SystemTime='2020-10-31T12:36:01.9027913Z' />"#,
                ),
                Some("2020-10-31T12:36:01.9027913Z"),
            ),
            // A date under a key that is not a time is the message's.
            (r#"user=2020-10-31T23:30:00Z msg="x""#, None),
            (r#"{"msg":"2020-10-31T23:30:00Z"}"#, None),
            // Seconds since the epoch only under a time key.
            (r#"{"ids":[1604187000]}"#, None),
            (r#"{"ts":1604187000}"#, Some("2020-10-31T23:30:00Z")),
            // Beyond the reach of a stamp, it is in the message.
            (
                concat!(
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx time=2020-10-31T23:30:00Z"
                ),
                None,
            ),
        ];
        for (line, want) in cases {
            let mut p = TimeParser::new(tz.clone(), reference);
            p.read_inside();
            assert_eq!(p.parse(line.as_bytes()), want.map(ts), "{line}");
            let mut plain = TimeParser::new(tz.clone(), reference);
            assert_eq!(
                plain.parse(line.as_bytes()),
                None,
                "{line}: not an app's input"
            );
        }
    }

    #[test]
    fn rows_have_unique_names_and_a_dated_example() {
        crate::ids::assert_distinct("format", STAMP_FORMATS.iter().map(|f| f.name));
        for format in STAMP_FORMATS {
            assert!(
                format.examples.iter().any(|(_, want)| want.is_some()),
                "{} has no example of a dated line",
                format.name
            );
        }
    }

    #[test]
    fn layouts_are_read_word_by_word() {
        let php = layout("[dd-Mmm-YYYY hh:mm:ss.f ZONE]");
        assert_eq!(php.len, 12);
        assert_eq!(php.tokens[10], Token::ZoneName { until: b']' });
        assert_eq!(
            &layout("YYYY-MM-DDThh:mm:ss.,fZ~").tokens[5..9],
            &[
                Token::DateTimeSeparator,
                Token::Clock,
                Token::Fraction { comma: true },
                Token::ZoneDesignator
            ]
        );
        assert_eq!(
            layout("YY±hh:mm").tokens[..2],
            [Token::Year2, Token::Offset]
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

    // --- access-log search ---

    #[test]
    fn access_log_stamps_are_sought_near_the_start_only() {
        let mut p = utc_parser("2020-11-15T00:00:00Z");
        let far = format!("{} [31/Oct/2020:23:30:00 +0700]", "x".repeat(250));
        assert_eq!(p.parse(far.as_bytes()), None);
        let near = format!("{} [31/Oct/2020:23:30:00 +0700]", "x".repeat(150));
        check(&mut p, &near, "2020-10-31T16:30:00Z");
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
        p.set_year(Some(2015));
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

    /// Lines the examples do not cover: priorities, and stamps around a year's end.
    const SAMPLES: &[&str] = &[
        "<34>Oct 31 23:30:00 host su: x",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - msg",
        "<165>1 - host app - - msg",
        "2020-10-31 23:30:00,5 x",
        "Jan  1 00:00:01 host x",
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
        for s in SAMPLES.iter().chain(
            examples()
                .map(|(_, line, _)| line)
                .collect::<Vec<_>>()
                .iter(),
        ) {
            let b = s.as_bytes();
            for n in 0..=b.len() {
                lines.push(b[..n].to_vec());
            }
            for _ in 0..300 {
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
