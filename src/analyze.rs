//! Lines to incidents: the matcher and the detector joined, so that `scan`,
//! the daemon and `import` run byte-for-byte the same analysis.
//!
//! Callers hand in runs of whole lines from one source at a time; the source
//! carries what belongs to one file (its input type's matcher, scratch space,
//! time parser and line count), the analyzer what is shared between files
//! (the rule set and the detector, since one attacker spans files).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

use crate::client::{ClientCheck, Verdict};
use crate::detect::{Detector, Observation};
use crate::event::{
    lossy, Event, Fields, DEFAULT_KEY_FIELD, FOLLOWS_FIELDS, IOC_FIELDS, SENDER_FIELD,
};
use crate::input::shape::{BadLine, Shaper};
use crate::input::source::Origin;
use crate::integrity::flagged::FlaggedScripts;
use crate::rules::matcher::{Matcher, Scratch};
use crate::rules::{Rate, RuleSet};
use crate::timestamp::TimeParser;

/// How far ahead of the clock a line may be dated before it is taken as
/// read now, unless configured otherwise: clocks of machines that log to
/// one another drift by seconds, and a log written ahead by more is either
/// misconfigured or forged.
pub const DEFAULT_CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(5 * 60);

/// Compiled matchers by input type.
pub type Matchers = HashMap<String, Arc<Matcher>>;

pub struct Analyzer {
    rules: Arc<RuleSet>,
    sender_field: Arc<str>,
    /// Names of the fields a feed hit adds.
    ioc_names: [Arc<str>; 2],
    /// Built on first use per input type: compiling a type's patterns costs
    /// milliseconds and most deployments read two or three types.
    matchers: Matchers,
    detector: Detector,
    events: u64,
    /// What rules with `flagged_script` check (empty outside the daemon).
    flagged: FlaggedScripts,
    /// Makes every event's `src_ip` an address, or rejects the event.
    client: ClientCheck,
    /// Matched lines whose captured client was no address nor host name.
    rejected_clients: u64,
    /// Names of the fields a `follows` rule adds: the incident it follows.
    follows_names: [Arc<str>; 2],
    /// How far past the clock (`now` of a feed) a line's date may be.
    clock_skew: jiff::SignedDuration,
    /// Matched lines dated beyond it, taken as read at `now`.
    future_lines: u64,
}

/// One stream of lines (a file, standard input): where its state lives
/// between runs of lines.
pub struct LineSource {
    matcher: Arc<Matcher>,
    scratch: Scratch,
    /// The captures of the event being built.
    fields: Fields,
    /// The value a feed check looks up, copied out of `fields`.
    ioc_value: String,
    /// Rules a line already gave an event to, through feeds.
    ioc_emitted: Vec<usize>,
    times: TimeParser,
    /// Lines before the next run, for 1-based line numbers in events.
    lines: u64,
    /// Variants of the type made canonical; lines of another type counted.
    shaper: Shaper,
    /// Where lines of another type found among the source's own go (see
    /// [`crate::input::shape`]), made at the first such line.
    foreign: Option<Box<LineSource>>,
    /// Request-rate rules of an access-log source, and what they count with.
    requests: Requests,
    /// The latest time of an event from this source.
    newest: Option<Timestamp>,
}

/// Per access-log source: the request-rate rules and the last client seen.
#[derive(Default)]
struct Requests {
    rules: Vec<(usize, Rate)>,
    /// The time of requests, read from one line in [`REQUEST_TIME_EVERY`].
    time: Option<Timestamp>,
    /// Lines until the time is read again.
    until_time: u32,
    /// The first word of the previous line and the client it named
    /// (consecutive lines are often one client's).
    last_word: Vec<u8>,
    /// `None` when the word named no client to count.
    last_client: Option<IpAddr>,
    /// Its text, for an event.
    last_text: String,
    /// Scratch for the fields of an event.
    fields: Fields,
}

/// A request's time is read from one access-log line in this many: a
/// burst of 300 requests in 20 s is far coarser than the stamps of 64
/// consecutive lines, and reading every stamp would cost more than the
/// rest of the counting.
const REQUEST_TIME_EVERY: u32 = 64;

impl LineSource {
    /// Lines fed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Drops the matcher's caches (the lazy DFA's states grow to megabytes
    /// in a burst of varied lines): an idle daemon gives them back, and
    /// they grow again as lines come.
    pub fn shrink(&mut self) {
        self.scratch = self.matcher.scratch();
        if let Some(foreign) = &mut self.foreign {
            foreign.shrink();
        }
    }

    /// The latest time of an event from this source: how far its reading
    /// has come in event time.
    pub fn newest(&self) -> Option<Timestamp> {
        self.newest
    }

    pub fn times(&mut self) -> &mut TimeParser {
        &mut self.times
    }

    pub fn input_type(&self) -> &str {
        self.matcher.input_type()
    }

    /// Lines read that are not of the source's type (see [`crate::input::shape`]).
    pub fn unrecognised(&self) -> u64 {
        self.shaper.unrecognised()
    }

    /// The first of them.
    pub fn first_bad(&self) -> Option<&BadLine> {
        self.shaper.first_bad()
    }
}

impl Analyzer {
    pub fn new(rules: Arc<RuleSet>, detector: Detector) -> Self {
        Analyzer {
            rules,
            sender_field: Arc::from(SENDER_FIELD),
            ioc_names: IOC_FIELDS.map(Arc::from),
            matchers: HashMap::new(),
            detector,
            events: 0,
            flagged: FlaggedScripts::default(),
            client: ClientCheck::default(),
            rejected_clients: 0,
            follows_names: FOLLOWS_FIELDS.map(Arc::from),
            clock_skew: DEFAULT_CLOCK_SKEW,
            future_lines: 0,
        }
    }

    /// Matchers built beforehand (off the pipeline thread, on a reload),
    /// by input type; [`Analyzer::source`] builds those missing.
    pub fn set_matchers(&mut self, matchers: Matchers) {
        self.matchers = matchers;
    }

    /// How far past the clock a line may be dated; see [`DEFAULT_CLOCK_SKEW`].
    /// Set before making sources: their year inference follows it.
    pub fn set_clock_skew(&mut self, skew: jiff::SignedDuration) {
        self.clock_skew = skew.max(jiff::SignedDuration::ZERO);
    }

    /// Matched lines dated further ahead of the clock than the skew
    /// allows, whose events took the time they were read instead: one
    /// spoofed datagram dated 2099 must not move an attacker's count (and
    /// so hide the real attempts after it) into the future.
    pub fn future_lines(&self) -> u64 {
        self.future_lines
    }

    /// Reverse proxies whose `X-Forwarded-For` names the client of an
    /// access-log line (see [`crate::client`]).
    pub fn set_trusted_proxies(&mut self, proxies: Vec<crate::network::Network>) {
        self.client = ClientCheck::new(proxies);
    }

    /// Matched lines dropped because what they named as the client was no
    /// address nor host name (forged or garbled).
    pub fn rejected_clients(&self) -> u64 {
        self.rejected_clients
    }

    /// Takes over the counters of the analyzer this one replaces (a
    /// reload), so that they keep counting up.
    pub fn continue_counts(&mut self, old: &Analyzer) {
        self.rejected_clients += old.rejected_clients;
        self.future_lines += old.future_lines;
    }

    /// The flagged scripts that `flagged_script` rules check against.
    pub fn set_flagged_scripts(&mut self, flagged: FlaggedScripts) {
        self.flagged = flagged;
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    /// Events (matched line and rule pairs) so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// A new source of lines of `input_type`, its times read by `times`.
    pub fn source(
        &mut self,
        input_type: &str,
        mut times: TimeParser,
    ) -> Result<LineSource, String> {
        // A year-less stamp further ahead than a dated line may be is
        // last year's, not a date to take as read now.
        times.set_slack(self.clock_skew);
        if crate::input::types::named(input_type).is_some_and(|t| t.reads_inside()) {
            times.read_inside();
        }
        let matcher = match self.matchers.get(input_type) {
            Some(m) => Arc::clone(m),
            None => {
                let m = Arc::new(Matcher::new(&self.rules, input_type)?);
                self.matchers.insert(input_type.to_owned(), Arc::clone(&m));
                m
            }
        };
        Ok(LineSource {
            scratch: matcher.scratch(),
            fields: Fields::default(),
            ioc_value: String::new(),
            ioc_emitted: Vec::new(),
            shaper: Shaper::new(input_type),
            matcher,
            times,
            lines: 0,
            newest: None,
            foreign: None,
            requests: Requests {
                rules: self.rules.rates_for(input_type),
                ..Requests::default()
            },
        })
    }

    /// Runs whole lines (each ending in `\n`, except perhaps the last) from
    /// `src` through matcher and detector. `on_event(line_no, event, what
    /// the detector did)` sees every event. Lines without a time of their
    /// own get `now`.
    pub fn feed(
        &mut self,
        src: &mut LineSource,
        data: &[u8],
        now: Timestamp,
        on_event: &mut dyn FnMut(u64, &Event, Observation),
    ) {
        self.feed_from(src, data, now, &Origin::LOCAL, on_event);
    }

    /// [`Analyzer::feed`] for lines that came from `origin`: a rule with
    /// `senders` sees only lines from those senders, and the sender's
    /// address is added to the fields of every event as `sender`.
    pub fn feed_from(
        &mut self,
        src: &mut LineSource,
        data: &[u8],
        now: Timestamp,
        origin: &Origin,
        on_event: &mut dyn FnMut(u64, &Event, Observation),
    ) {
        let lines_before = src.lines;
        let reshaped = src.shaper.reshape(data, lines_before);
        let data = reshaped.lines;
        if let (false, None, Some(kind)) = (
            reshaped.foreign.is_empty(),
            &src.foreign,
            reshaped.foreign_type,
        ) {
            let times = TimeParser::new(src.times.time_zone().clone(), now);
            if let Ok(inner) = self.source(kind, times) {
                src.foreign = Some(Box::new(inner));
            }
        }
        let clock = Clock {
            now,
            limit: now.saturating_add(self.clock_skew).unwrap_or(now),
        };
        if !src.requests.rules.is_empty() {
            count_requests(
                &mut self.detector,
                &mut self.events,
                &self.client,
                &mut src.requests,
                &mut src.times,
                data,
                lines_before,
                &clock,
                &mut self.future_lines,
                on_event,
            );
        }
        let sender = origin.sender.map(|ip| (ip, ip.to_string()));
        let sender_field = &self.sender_field;
        let LineSource {
            matcher,
            scratch,
            fields,
            ioc_value,
            ioc_emitted,
            times,
            lines,
            foreign,
            newest,
            shaper: _,
            requests: _,
        } = src;
        let detector = &mut self.detector;
        let events = &mut self.events;
        let rules = &*self.rules;
        let flagged = &self.flagged;
        let client = &mut self.client;
        let rejected_clients = &mut self.rejected_clients;
        let future_lines = &mut self.future_lines;
        let [follows_name, since_name] = &self.follows_names;
        let access_log = crate::input::types::is_access_log(matcher.input_type());
        let mut since = String::new();
        let [feed_name, indicator_name] = &self.ioc_names;
        // Line numbers are counted only up to matched lines, incrementally.
        let mut counted_to = 0usize;
        matcher.for_each_match(scratch, data, |offset, line, hits, caps| {
            *lines += memchr::memchr_iter(b'\n', &data[counted_to..offset]).count() as u64;
            counted_to = offset;
            let line_no = *lines + 1;
            detector.begin_line();
            caps.new_line();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            times.set_line(line_no);
            let time = clock.time_of(times.parse(line), future_lines);
            *newest = Some(newest.map_or(time, |n| n.max(time)));
            // Borrowed, not copied, when the line is valid UTF-8.
            let text = lossy(line);
            let mut emit = |detector: &mut Detector, rule: usize, fields: &Fields| {
                let ev = Event {
                    rule,
                    time,
                    fields: Cow::Borrowed(fields),
                    line: Cow::Borrowed(&text),
                };
                *events += 1;
                let seen = detector.observe(&ev);
                on_event(line_no, &ev, seen);
            };
            for &hit in hits {
                let rule = rules.rule(hit.rule);
                if let Some(allowed) = &rule.senders {
                    let from = sender.as_ref().map(|(ip, _)| *ip);
                    if !from.is_some_and(|ip| allowed.iter().any(|n| n.contains(ip))) {
                        continue;
                    }
                }
                matcher.fields(caps, hit, line, fields);
                if let Some(field) = &rule.flagged_script {
                    if !fields
                        .get(field)
                        .is_some_and(|v| flagged.contains_target(v))
                    {
                        continue;
                    }
                }
                if client.settle(fields, line, access_log) == Verdict::Rejected {
                    *rejected_clients += 1;
                    continue;
                }
                if let Some(target) = rule.follows {
                    let Some(inc) = detector.open_incident(target, fields, time) else {
                        continue;
                    };
                    since.clear();
                    since.push_str(&inc.first_seen.to_string());
                    let target_id = rules.rule(inc.rule).id.as_str();
                    fields.push(follows_name, target_id.as_bytes());
                    fields.push(since_name, since.as_bytes());
                }
                if let Some((_, text)) = &sender {
                    fields.push(sender_field, text.as_bytes());
                }
                let checks = &rule.ioc;
                if checks.is_empty() {
                    emit(detector, hit.rule, fields);
                    continue;
                }
                // A rule with feed checks: an event per feed that holds a
                // checked field, of the rule bound to that feed.
                let captured = fields.len();
                ioc_emitted.clear();
                for check in checks {
                    ioc_value.clear();
                    match fields.get(&check.field) {
                        Some(v) => ioc_value.push_str(v),
                        None => continue,
                    }
                    for b in &check.bound {
                        if ioc_emitted.contains(&b.rule) {
                            continue;
                        }
                        let Some(feed) = rules.feeds.get(b.feed) else {
                            continue;
                        };
                        let Some(indicator) = feed.lookup(ioc_value) else {
                            continue;
                        };
                        ioc_emitted.push(b.rule);
                        fields.truncate(captured);
                        fields.push(feed_name, feed.name().as_bytes());
                        fields.push(indicator_name, indicator.as_bytes());
                        emit(detector, b.rule, fields);
                    }
                }
            }
        });
        *lines += memchr::memchr_iter(b'\n', &data[counted_to..]).count() as u64;
        if data.last().is_some_and(|&b| b != b'\n') {
            *lines += 1;
        }
        // Lines of another type, each under its own line number, through
        // the rules of that type.
        if let Some(inner) = foreign {
            for (i, line) in reshaped.foreign {
                inner.lines = lines_before + *i as u64;
                self.feed_from(inner, line, now, origin, on_event);
            }
        }
    }
}

/// The time events of a feed are read at, and the latest date a line may
/// carry (the time plus the allowed clock skew).
struct Clock {
    now: Timestamp,
    limit: Timestamp,
}

impl Clock {
    /// The time of an event from a line dated `parsed`: its date, or the
    /// time it was read when it has none or one beyond the limit.
    fn time_of(&self, parsed: Option<Timestamp>, future_lines: &mut u64) -> Timestamp {
        match parsed {
            Some(t) if t > self.limit => {
                *future_lines += 1;
                self.now
            }
            Some(t) => t,
            None => self.now,
        }
    }
}

/// Counts every access-log line of `data` for its client toward the
/// request-rate rules, and observes an event for a client that reaches a
/// rule's rate. Runs on every line, so it reads only the first word of each
/// (the client) and one time stamp in [`REQUEST_TIME_EVERY`] lines.
#[allow(clippy::too_many_arguments)]
fn count_requests(
    detector: &mut Detector,
    events: &mut u64,
    client: &ClientCheck,
    requests: &mut Requests,
    times: &mut TimeParser,
    data: &[u8],
    lines_before: u64,
    clock: &Clock,
    future_lines: &mut u64,
    on_event: &mut dyn FnMut(u64, &Event, Observation),
) {
    let src_ip: Arc<str> = Arc::from(DEFAULT_KEY_FIELD);
    let attempts: Arc<str> = Arc::from(crate::detect::ATTEMPTS_FIELD);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for (i, end) in ends.enumerate() {
        let line = &data[start..end];
        start = end + 1;
        let Some(space) = memchr::memchr(b' ', &line[..line.len().min(64)]) else {
            continue;
        };
        if requests.until_time == 0 || requests.time.is_none() {
            if let Some(t) = times.parse(line) {
                requests.time = Some(clock.time_of(Some(t), future_lines));
            }
            requests.until_time = REQUEST_TIME_EVERY;
        }
        requests.until_time -= 1;
        let word = &line[..space];
        // Behind a trusted proxy the client is in the rest of the line.
        if word != requests.last_word.as_slice() || client.has_proxies() {
            requests.last_word.clear();
            requests.last_word.extend_from_slice(word);
            requests.last_client = std::str::from_utf8(word)
                .ok()
                .and_then(|w| client.request_client(w, line));
        }
        let Some(who) = requests.last_client else {
            continue;
        };
        let time = requests.time.unwrap_or(clock.now);
        for &(rule, rate) in &requests.rules {
            let Some(n) = detector.count_request(rule, who, time, rate.count, rate.window) else {
                continue;
            };
            requests.last_text.clear();
            let _ = write!(requests.last_text, "{who}");
            let fields = &mut requests.fields;
            fields.clear();
            fields.push(&src_ip, requests.last_text.as_bytes());
            fields.push(&attempts, n.to_string().as_bytes());
            let text = lossy(line);
            let ev = Event {
                rule,
                time,
                fields: Cow::Borrowed(fields),
                line: Cow::Borrowed(text.strip_suffix('\r').unwrap_or(&text)),
            };
            *events += 1;
            detector.begin_line();
            let seen = detector.observe(&ev);
            on_event(lines_before + i as u64 + 1, &ev, seen);
        }
    }
}
