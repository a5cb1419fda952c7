//! Turns matched lines into incidents.
//!
//! Events are grouped by (rule, key). A rule with a threshold opens an incident
//! once a key has produced `count` events (or `count` distinct values of one
//! field) within `window`; a rule without a threshold opens one at its first
//! event. Once open, the incident absorbs every later event of the key until the
//! key has been quiet for the rule's cooldown, so a scanner firing a thousand
//! payloads from one address is a single incident rather than a thousand alerts.
//!
//! All times are event times, never the wall clock, so a scan of old files
//! yields the same incidents as tailing them live. Times may run slightly
//! backwards (several files, clock skew); that is tolerated, never a panic.
//!
//! Rules of one merge class ([`Policy::merge`]) share incidents: several rules
//! seeing one attacker (sshd's "Failed password" and its PAM line, say) make
//! one incident per key, not one per rule. Each rule still counts toward its
//! own threshold; on reaching it, a rule joins the class's incident open for
//! the key, if there is one still live, and its key stays linked to it until
//! it closes. A map from (class, key) to the rule holding the incident keeps
//! that one lookup.
//!
//! Memory is bounded by `max_keys`: when a new key would exceed it, the least
//! recently active key is evicted, its open incident closed and emitted.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::event::{Event, Fields, DEFAULT_KEY_FIELD, HOST_KEY_FIELD};

/// A number in the line saying how many attempts it reports (`message
/// repeated 5 times`, `3 incorrect password attempts`): the event counts
/// that many. Absent, empty or not a number: one.
pub const ATTEMPTS_FIELD: &str = "attempts";
/// The process that wrote the line; with a rule's `evidence` kind it tells
/// which lines describe the same attempts.
pub const PID_FIELD: &str = "pid";
/// Most attempts one line may claim: the number is the log's word, and a
/// forged line must not make one event worth millions.
const MAX_ATTEMPTS_PER_LINE: u64 = 1000;
/// How long a process's evidence counts are remembered after its last line
/// (event time): sshd writes an attempt's lines within seconds, and a
/// connection lives at most `LoginGraceTime` (2 minutes by default).
const PROCESS_MEMORY: SignedDuration = SignedDuration::from_secs(600);
/// Processes remembered per key; the oldest goes first. An attacker runs a
/// few connections at a time, each its own process.
const MAX_PROCESSES_PER_KEY: usize = 16;
/// How far behind its key's newest event an event may come and still count
/// (see [`Detector::set_lateness`]), unless configured otherwise: a backlog
/// read one input after another is as far out of order as one read of an
/// input spans, and a clock that drifted minutes is common.
pub const DEFAULT_LATENESS: SignedDuration = SignedDuration::from_secs(30 * 60);

/// When repeated events of one key become an incident.
///
/// `by` lives here, as in the rule format, which allows `by` only inside
/// `threshold`: a rule without a threshold is always keyed on `src_ip`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Events (or distinct values) needed within `window`. 0 is read as 1.
    pub count: u32,
    /// How far back from a key's newest event the count looks. Events with
    /// time > newest - window count. A non-positive window is read as 1ns
    /// (only simultaneous events count together).
    pub window: SignedDuration,
    /// Fields whose values, together, are the key. Empty means `src_ip`,
    /// or `src_host` for an event whose log names the client only by name.
    pub by: Vec<String>,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<String>,
}

/// What the detector needs to know of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub threshold: Option<Threshold>,
    /// Quiet time (event time) after which a key's incident is over. A
    /// negative cooldown is read as zero.
    pub cooldown: SignedDuration,
    /// Merge class. Rules with the same `Some(class)` share incidents per
    /// key: a rule whose key reaches its threshold while another rule of the
    /// class has an incident open and live for that key joins it instead of
    /// opening its own. `None` never merges.
    #[serde(default)]
    pub merge: Option<u32>,
    /// The rule (a group) whose counter and incidents this rule's events go
    /// to, under that rule's policy; `None`: the rule's own.
    #[serde(default)]
    pub counts_toward: Option<usize>,
    /// The kind of evidence this rule's lines are (see [`ATTEMPTS_FIELD`]
    /// and [`PID_FIELD`]): within one process and key, the attempts counted
    /// are the most of any one kind, not the sum over kinds.
    #[serde(default)]
    pub evidence: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique within one detector (and across a snapshot/restore), increasing
    /// in opening order, so a store can upsert by it.
    pub id: u64,
    pub rule: usize,
    pub key: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub events: u64,
    /// The line that opened the incident and its captured fields, for analysts.
    pub sample: String,
    pub fields: Vec<(String, String)>,
}

/// What one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Unknown rule, or a distinct-counting rule's event without the distinct
    /// field before the threshold: attributed to nothing.
    Ignored,
    /// Taken into a key's pre-threshold count (possibly already outside the
    /// window and dropped at once, when its time lags the key's newest).
    Counted,
    /// Opened the incident with this id.
    Opened(u64),
    /// Joined the open incident with this id: the key's own, or one that
    /// another rule of the same merge class opened for the key.
    Joined(u64),
}

/// Per-key state, opaque outside this module but serialisable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    phase: Phase,
    /// Evidence counts per process, for counting each attempt once
    /// whatever number of lines it was logged as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    processes: Vec<ProcessEvidence>,
}

impl KeyState {
    /// The incident the key holds open, if it holds one. Its sample and
    /// fields never change once open: a store that keeps them with the
    /// incident leaves them out of the key's state (see
    /// [`Detector::persisted`]).
    pub fn open_incident_mut(&mut self) -> Option<&mut Incident> {
        match &mut self.phase {
            Phase::Open(inc) => Some(inc),
            Phase::Counting(_) | Phase::Linked { .. } => None,
        }
    }
}

/// How many lines of each evidence kind one process wrote for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ProcessEvidence {
    pid: String,
    /// (kind, attempts), a handful of kinds at most.
    kinds: Vec<(u8, u64)>,
    last: Timestamp,
}

impl ProcessEvidence {
    fn attempts(&self) -> u64 {
        self.kinds.iter().map(|&(_, n)| n).max().unwrap_or(0)
    }
}

/// The attempts an event adds, given what its process already logged: the
/// growth of the largest per-kind count. sshd's `Failed password` and the
/// PAM line of the same try are two kinds, so the second adds nothing;
/// two tries of one kind add two.
fn new_attempts(
    processes: &mut Vec<ProcessEvidence>,
    pid: &str,
    kind: u8,
    attempts: u64,
    time: Timestamp,
) -> u64 {
    let forget = sub_sat(time, PROCESS_MEMORY);
    processes.retain(|p| p.last > forget);
    let at = match processes.iter().position(|p| p.pid == pid) {
        Some(at) => at,
        None => {
            if processes.len() >= MAX_PROCESSES_PER_KEY {
                let oldest = processes
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, p)| p.last)
                    .map_or(0, |(i, _)| i);
                processes.swap_remove(oldest);
            }
            processes.push(ProcessEvidence {
                pid: pid.to_owned(),
                kinds: Vec::new(),
                last: time,
            });
            processes.len() - 1
        }
    };
    let p = &mut processes[at];
    let before = p.attempts();
    match p.kinds.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n = n.saturating_add(attempts),
        None => p.kinds.push((kind, attempts)),
    }
    p.last = p.last.max(time);
    p.attempts() - before
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Below threshold. Never empty while tracked: an empty count is a dead key.
    Counting(Pending),
    /// Boxed: most keys never reach their threshold, and an inline incident
    /// would make every key's slot four times the size of a count.
    Open(Box<Incident>),
    /// Reached the threshold while another rule of its merge class had an
    /// incident open for the key, and joined it: the incident `id`, held in
    /// the slot of (`owner`, same key). Later events join it while it is
    /// open and live; after that the key counts afresh. Holds no events.
    Linked { owner: usize, id: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Pending {
    /// Event times in the window, sorted, so pruning is from the front even
    /// when events arrive out of order. At most `count - 1` entries between
    /// events: reaching `count` opens the incident.
    Events(VecDeque<Timestamp>),
    /// Distinct values in the window, at most `count - 1` between events.
    /// A linear list: thresholds are small, and it beats hashing there.
    Distinct(Vec<DistinctValue>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DistinctValue {
    value: String,
    first: Timestamp,
    last: Timestamp,
    /// Repeats of the value. They belong to the incident if it opens: they
    /// are real attempts, even if they do not advance the distinct count.
    /// The value leaves the window (with its repeats) once its newest repeat
    /// does.
    events: u64,
}

impl Pending {
    fn for_threshold(t: &Threshold) -> Self {
        if t.distinct.is_some() {
            Pending::Distinct(Vec::new())
        } else {
            Pending::Events(VecDeque::new())
        }
    }

    fn events(&self) -> u64 {
        match self {
            Pending::Events(times) => times.len() as u64,
            Pending::Distinct(values) => values.iter().map(|v| v.events).sum(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Pending::Events(times) => times.is_empty(),
            Pending::Distinct(values) => values.is_empty(),
        }
    }

    fn newest(&self) -> Option<Timestamp> {
        match self {
            Pending::Events(times) => times.back().copied(),
            Pending::Distinct(values) => values.iter().map(|v| v.last).max(),
        }
    }

    /// Forgets everything at or before `cutoff`; returns how many events went.
    fn prune(&mut self, cutoff: Timestamp) -> u64 {
        match self {
            Pending::Events(times) => {
                let before = times.len();
                while times.front().is_some_and(|&t| t <= cutoff) {
                    times.pop_front();
                }
                (before - times.len()) as u64
            }
            Pending::Distinct(values) => {
                let mut gone = 0;
                values.retain(|v| {
                    let keep = v.last > cutoff;
                    if !keep {
                        gone += v.events;
                    }
                    keep
                });
                gone
            }
        }
    }

    /// Adds an event worth `weight` attempts (at least 1); returns the
    /// events of the incident to open, and its first event, when the
    /// threshold is reached within one window that holds this event.
    /// `value` is the distinct field's value (ignored for plain counting;
    /// the caller has made sure it is present for distinct counting).
    ///
    /// Events arrive out of order (several inputs, a backlog read one file
    /// after another, a line dated ahead of its neighbours): the count
    /// keeps what lies within `window + lateness` of the key's newest
    /// event, so that an event up to `lateness` behind still meets the
    /// events of its own window. An event further behind is `late`.
    fn add(
        &mut self,
        time: Timestamp,
        value: Option<&str>,
        weight: u64,
        t: &Threshold,
        tally: &mut Tally,
    ) -> Option<(u64, Timestamp)> {
        let newest = self.newest().map_or(time, |n| n.max(time));
        let horizon = sub_sat(sub_sat(newest, t.window), tally.lateness);
        tally.dropped += self.prune(horizon);
        if time <= horizon {
            tally.late += weight;
            return None;
        }
        let count = t.count as usize;
        match self {
            Pending::Events(times) => {
                // More copies than the threshold would only be held to be
                // counted: the surplus goes straight to the incident.
                let held = weight.min(count as u64) as usize;
                let at = times.partition_point(|&x| x <= time);
                for _ in 0..held {
                    times.insert(at, time);
                }
                // The first `count` consecutive events within one window
                // that take in one of the new copies.
                let lowest = (at + held).saturating_sub(count);
                let start = (lowest..at + held).find(|&i| {
                    times
                        .get(i + count - 1)
                        .is_some_and(|&last| last.duration_since(times[i]) < t.window)
                });
                if let Some(start) = start {
                    // The incident takes every event within the window that
                    // ends where the threshold was reached, and those held
                    // after it (which arrived before these late ones);
                    // held events before it never met enough others.
                    let end = times[start + count - 1];
                    let from = times.partition_point(|&x| end.duration_since(x) >= t.window);
                    tally.dropped += from as u64;
                    let first = times[from];
                    let events = (times.len() - from) as u64 + (weight - held as u64);
                    return Some((events, first));
                }
                // Bounded: what no window can reach any more goes first.
                while times.len() > max_held(count) {
                    times.pop_front();
                    tally.dropped += 1;
                }
                None
            }
            Pending::Distinct(values) => {
                let value = value.unwrap_or("");
                if let Some(v) = values.iter_mut().find(|v| v.value == value) {
                    v.first = v.first.min(time);
                    v.last = v.last.max(time);
                    v.events += weight;
                } else {
                    values.push(DistinctValue {
                        value: value.to_owned(),
                        first: time,
                        last: time,
                        events: weight,
                    });
                }
                // The window ending at the key's newest event, and the one
                // ending at this event (when it came late).
                for end in [newest, time] {
                    let from = sub_sat(end, t.window);
                    let inside = |v: &DistinctValue| v.last > from && v.first <= end;
                    if values.iter().filter(|v| inside(v)).count() >= count {
                        let mut events = 0;
                        let mut first = end;
                        values.retain(|v| {
                            if inside(v) {
                                events += v.events;
                                first = first.min(v.first);
                                true
                            } else {
                                tally.dropped += v.events;
                                false
                            }
                        });
                        return Some((events, first));
                    }
                }
                if values.len() > max_held(count) {
                    values.sort_by_key(|v| v.last);
                    let surplus = values.len() - max_held(count);
                    tally.dropped += values.drain(..surplus).map(|v| v.events).sum::<u64>();
                }
                None
            }
        }
    }
}

/// Most events (or distinct values) a count holds: those of one window
/// open an incident before there are `count`, so more than this only ever
/// accumulate from events spread wider than a window.
fn max_held(count: usize) -> usize {
    2 * count + 16
}

/// What adding to a count tells the detector's counters, and how far
/// behind an event may come.
struct Tally {
    lateness: SignedDuration,
    dropped: u64,
    late: u64,
}

impl Tally {
    fn new(lateness: SignedDuration) -> Self {
        Tally {
            lateness,
            dropped: 0,
            late: 0,
        }
    }
}

/// A tracked key. The key text is shared with the LRU queue so that touching
/// a key on every event costs a reference count, not an allocation.
#[derive(Debug)]
struct Slot {
    key: Arc<str>,
    /// Matches the LRU queue entry that is this key's current one.
    generation: u64,
    state: KeyState,
}

/// The detector's whole state, for crash recovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Least recently active first, so a restore rebuilds the eviction order.
    pub keys: Vec<SavedKey>,
    /// Closed incidents not yet taken with [`Detector::take_closed`].
    pub closed: Vec<Incident>,
    pub watermark: Option<Timestamp>,
    pub next_id: u64,
    pub keys_evicted: u64,
    pub dropped_events: u64,
    #[serde(default)]
    pub late_events: u64,
    #[serde(default)]
    pub expired_keys: u64,
    /// Request counts of request-rate rules: (rule, client, count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<(usize, String, RateCount)>,
}

/// One client's requests for a request-rate rule: the counts of the
/// current fixed window (`slot`, of the rule's length) and the one before,
/// whose weighted sum estimates the sliding window (the estimate rate
/// limiters use: two numbers a client, whatever the rate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCount {
    slot: i64,
    current: u64,
    previous: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedKey {
    pub rule: usize,
    pub key: String,
    pub state: KeyState,
    /// Its place in the eviction order (higher: more recently active);
    /// 0 in snapshots from before it was kept, whose order is their list's.
    #[serde(default)]
    pub generation: u64,
}

/// What changed since the last [`Detector::persisted`]: each key and
/// request-rate client with its state now, or `None` once it is gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub keys: Vec<(usize, String, Option<SavedKey>)>,
    pub rates: Vec<(usize, String, Option<RateCount>)>,
}

impl Snapshot {
    /// Rewrites rule indices for another rule set (a reload, or a restart
    /// with edited rules): `new_index(old)` gives a rule's new index, `None`
    /// when the rule is gone, and then its state is dropped. (Closed
    /// incidents are dropped too: a rule index is all they say of their
    /// rule; the daemon stores closed incidents in the same transaction as
    /// the snapshot, so its snapshots hold none.)
    pub fn renumber(&mut self, new_index: impl Fn(usize) -> Option<usize>) {
        self.keys.retain_mut(|k| {
            let Some(rule) = new_index(k.rule) else {
                return false;
            };
            k.rule = rule;
            match &mut k.state.phase {
                Phase::Open(inc) => {
                    inc.rule = rule;
                    true
                }
                Phase::Linked { owner, .. } => match new_index(*owner) {
                    Some(o) => {
                        *owner = o;
                        true
                    }
                    None => false,
                },
                Phase::Counting(_) => true,
            }
        });
        self.closed.retain_mut(|inc| match new_index(inc.rule) {
            Some(rule) => {
                inc.rule = rule;
                true
            }
            None => false,
        });
        self.rates
            .retain_mut(|(rule, _, _)| match new_index(*rule) {
                Some(r) => {
                    *rule = r;
                    true
                }
                None => false,
            });
    }
}

/// A rule's keys. Attackers choose them, so the hash is seeded at random
/// per process (foldhash, hashbrown's default), which costs a fraction of
/// SipHash: a flood of web attacks looks a key up several times per event.
type KeyMap<V> = hashbrown::HashMap<Arc<str>, V>;

pub struct Detector {
    /// Normalised at construction (count >= 1, window > 0, cooldown >= 0) so
    /// the hot path need not care.
    policies: Vec<Policy>,
    max_keys: usize,
    /// One map per rule, so lookups go by `&str` without building a key.
    keys: Vec<KeyMap<Slot>>,
    tracked: usize,
    /// Lazy LRU: one entry per touch, oldest first. An entry is live only if
    /// its generation is still the key's current one; stale entries are
    /// skipped on eviction and compacted away when they outnumber live keys.
    lru: VecDeque<(usize, Arc<str>, u64)>,
    generation: u64,
    /// Each rule's merge class, renumbered densely (`None`: never merges).
    class_of: Vec<Option<usize>>,
    /// Per merge class, key -> the rule whose slot holds the class's open
    /// incident for that key: one lookup finds what a rule may join. An entry
    /// exists exactly while that slot is open (kept so on every close).
    owners: Vec<KeyMap<usize>>,
    closed: Vec<Incident>,
    watermark: Option<Timestamp>,
    next_id: u64,
    keys_evicted: u64,
    dropped_events: u64,
    /// Request counts of request-rate rules, per rule, by client (a faster
    /// hash than the std one: this is looked up on every access-log line).
    /// Keyed by the address's bits (IPv4 as IPv4-mapped IPv6): hashing
    /// and comparing an integer, not a string.
    rates: Vec<hashbrown::HashMap<u128, RateCount>>,
    /// Clients in `rates`, all rules together (bounded by `max_keys`).
    rate_clients: usize,
    /// Per rule, the slot at which a look for idle clients (the table
    /// full) found none. None can turn idle for that rule before its slot
    /// moves on or a client is added (slots only grow), so a flood of new
    /// clients against a full table is refused in O(1), not by a scan of
    /// every tracked client per line.
    no_idle_rates: Vec<Option<i64>>,
    /// Incidents that an event of the current line already added to (see
    /// [`Detector::begin_line`]; `None` until it is first called): another
    /// rule's event of the same line joins without adding its attempts again.
    joined_this_line: Option<Vec<u64>>,
    /// How far behind its key's newest event an event may come and still
    /// count (see [`Detector::set_lateness`]).
    lateness: SignedDuration,
    late_events: u64,
    expired_keys: u64,
    /// Keys and request-rate clients changed since the last
    /// [`Detector::persisted`], so that a store writes only those.
    dirty_keys: hashbrown::HashSet<(usize, Arc<str>)>,
    dirty_rates: hashbrown::HashSet<(usize, u128)>,
    /// Whether to keep the two above (see [`Detector::track_changes`]).
    tracking: bool,
}

impl Detector {
    /// `policies[i]` is the policy of rule `i`. `max_keys` is read as at least 1.
    pub fn new(policies: Vec<Policy>, max_keys: usize) -> Self {
        let policies: Vec<Policy> = policies.into_iter().map(normalise).collect();
        let keys = policies.iter().map(|_| KeyMap::default()).collect();
        let mut classes: HashMap<u32, usize> = HashMap::new();
        let class_of = policies
            .iter()
            .map(|p| {
                p.merge.map(|c| {
                    let next = classes.len();
                    *classes.entry(c).or_insert(next)
                })
            })
            .collect();
        let owners = (0..classes.len()).map(|_| KeyMap::default()).collect();
        Detector {
            policies,
            max_keys: max_keys.max(1),
            keys,
            tracked: 0,
            lru: VecDeque::new(),
            generation: 0,
            class_of,
            owners,
            closed: Vec::new(),
            watermark: None,
            next_id: 1,
            keys_evicted: 0,
            dropped_events: 0,
            joined_this_line: None,
            rates: Vec::new(),
            rate_clients: 0,
            no_idle_rates: Vec::new(),
            lateness: DEFAULT_LATENESS,
            late_events: 0,
            expired_keys: 0,
            dirty_keys: hashbrown::HashSet::new(),
            dirty_rates: hashbrown::HashSet::new(),
            tracking: false,
        }
    }

    /// Keeps the keys that change, for [`Detector::changes`]: a store that
    /// writes only those needs it; a scan would pay a hash insert an event
    /// for nothing.
    pub fn track_changes(&mut self) {
        self.tracking = true;
    }

    /// How far behind the newest event of its key an event may arrive and
    /// still be counted with the events of its own window: the disorder
    /// that several inputs (or a backlog read file after file) bring. An
    /// event later than that is counted in [`Detector::late_events`].
    pub fn set_lateness(&mut self, lateness: SignedDuration) {
        self.lateness = lateness.max(SignedDuration::ZERO);
    }

    pub fn lateness(&self) -> SignedDuration {
        self.lateness
    }

    /// Events that came more than the lateness behind their key's newest
    /// event, and so were not counted.
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    /// Keys forgotten by [`Detector::expire`]: their window and cooldown
    /// had passed.
    pub fn expired_keys(&self) -> u64 {
        self.expired_keys
    }

    /// Counts one request of `client` for the request-rate rule `rule`
    /// (`count` requests within `window`). Returns the attempts of an event
    /// to observe when the client has reached `count` (`count`: the
    /// requests it stands for), and starts counting afresh. Cheap: it runs
    /// on every access-log line.
    pub fn count_request(
        &mut self,
        rule: usize,
        client: std::net::IpAddr,
        time: Timestamp,
        count: u32,
        window: SignedDuration,
    ) -> Option<u64> {
        // Nanoseconds fit an i64 until 2262; beyond, the window's clamped.
        let width = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX).max(1);
        let at = i64::try_from(time.as_nanosecond()).unwrap_or(i64::MAX);
        let slot = at.div_euclid(width);
        if self.rates.len() <= rule {
            self.rates.resize_with(rule + 1, hashbrown::HashMap::new);
        }
        let client = address_bits(client);
        if self.rate_clients >= self.max_keys
            && !self.rates[rule].contains_key(&client)
            && !self.forget_idle_rates(rule, slot)
        {
            // Every tracked client is active: this one is not counted.
            self.dropped_events += 1;
            return None;
        }
        if self.tracking {
            self.dirty_rates.insert((rule, client));
        }
        let c = match self.rates[rule].entry(client) {
            hashbrown::hash_map::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_map::Entry::Vacant(v) => {
                self.rate_clients += 1;
                self.no_idle_rates.clear();
                v.insert(RateCount::default())
            }
        };
        match slot - c.slot {
            0 => c.current += 1,
            1 => {
                c.previous = c.current;
                c.current = 1;
            }
            // Out of order (several files): counted in its window.
            d if d < 0 => {}
            _ => {
                c.previous = 0;
                c.current = 1;
            }
        }
        c.slot = c.slot.max(slot);
        if c.previous + c.current < u64::from(count) {
            // Cannot reach the rate whatever the weighting: the usual case.
            return None;
        }
        let into = (at - slot * width) as f64 / width as f64;
        let estimate = c.previous as f64 * (1.0 - into) + c.current as f64;
        if estimate >= f64::from(count) {
            c.previous = 0;
            c.current = 0;
            return Some(u64::from(count));
        }
        None
    }

    /// Forgets clients whose counts are older than the window before
    /// `slot` of `rule` (they estimate zero); whether any went.
    fn forget_idle_rates(&mut self, rule: usize, slot: i64) -> bool {
        if self
            .no_idle_rates
            .get(rule)
            .copied()
            .flatten()
            .is_some_and(|none_at| slot <= none_at)
        {
            return false;
        }
        let before = self.rate_clients;
        for (rule, map) in self.rates.iter_mut().enumerate() {
            map.retain(|&client, c| {
                let keep = c.slot >= slot - 1;
                if !keep && self.tracking {
                    self.dirty_rates.insert((rule, client));
                }
                keep
            });
        }
        self.rate_clients = self.rates.iter().map(hashbrown::HashMap::len).sum();
        let forgot = self.rate_clients < before;
        if !forgot {
            if self.no_idle_rates.len() <= rule {
                self.no_idle_rates.resize(rule + 1, None);
            }
            self.no_idle_rates[rule] = Some(slot);
        }
        forgot
    }

    /// Marks the start of the events of one line. Rules of one merge class
    /// that both match a line (a fast and a slow brute-force group) feed one
    /// incident: the line's attempts count once. Without calls, every event
    /// stands alone.
    pub fn begin_line(&mut self) {
        self.joined_this_line.get_or_insert_with(Vec::new).clear();
    }

    /// Feed one event. Returns what changed, so a store can persist it.
    /// Incidents it closed (cooldown elapsed, eviction) wait in
    /// [`Detector::take_closed`].
    pub fn observe(&mut self, ev: &Event) -> Observation {
        let Some(own) = self.policies.get(ev.rule) else {
            return Observation::Ignored;
        };
        let rule = own
            .counts_toward
            .filter(|&group| group < self.policies.len())
            .unwrap_or(ev.rule);
        // Without a process id, a kind's lines are told apart within the
        // key as a whole (one scope for the source): daemons whose own
        // line and PAM line come from different processes.
        let process = own
            .evidence
            .map(|kind| (kind, ev.field(PID_FIELD).unwrap_or("")));
        let policy = &self.policies[rule];
        let key = key_of(policy, &ev.fields);
        let attempts = attempts_of(ev);
        // `None` when the rule does not count distinct values at all.
        let distinct = policy
            .threshold
            .as_ref()
            .and_then(|t| t.distinct.as_deref())
            .map(|f| ev.field(f));
        self.watermark = Some(self.watermark.map_or(ev.time, |w| w.max(ev.time)));

        let Some(slot) = self.keys[rule].get_mut(&*key) else {
            return self.observe_new(rule, &key, ev, distinct, attempts, process);
        };
        let weight = match process {
            Some((kind, pid)) => {
                new_attempts(&mut slot.state.processes, pid, kind, attempts, ev.time)
            }
            None => attempts,
        };
        self.generation += 1;
        let generation = self.generation;
        let cooldown = self.policies[rule].cooldown;
        match &mut slot.state.phase {
            Phase::Open(inc) => {
                if ev.time <= add_sat(inc.last_seen, cooldown) {
                    inc.events += once_per_line(&mut self.joined_this_line, inc.id, weight);
                    inc.last_seen = inc.last_seen.max(ev.time);
                    inc.first_seen = inc.first_seen.min(ev.time);
                    let id = inc.id;
                    slot.generation = generation;
                    let k = Arc::clone(&slot.key);
                    self.touch(rule, k, generation);
                    return Observation::Joined(id);
                }
                // Quiet for longer than the cooldown: that attack is over,
                // this event starts counting afresh.
                let fresh = Phase::Counting(fresh_pending(&self.policies[rule]));
                if let Phase::Open(old) = std::mem::replace(&mut slot.state.phase, fresh) {
                    unindex(&mut self.owners, self.class_of[rule], &old.key, rule);
                    self.closed.push(*old);
                }
            }
            Phase::Linked { owner, id } => {
                let (owner, id) = (*owner, *id);
                if let Some(id) =
                    self.join_open(owner, Some(id), &key, ev.time, ev.time, ev.time, weight)
                {
                    self.touch_key(rule, &key);
                    return Observation::Joined(id);
                }
                // That incident is over (or no longer live for this event):
                // count afresh for this rule, as after a cooldown.
                let fresh = Phase::Counting(fresh_pending(&self.policies[rule]));
                match self.keys[rule].get_mut(&*key) {
                    Some(slot) => slot.state.phase = fresh,
                    None => return Observation::Ignored,
                }
            }
            Phase::Counting(_) => {}
        }
        let Some(slot) = self.keys[rule].get_mut(&*key) else {
            return Observation::Ignored;
        };
        if distinct == Some(None) {
            // Does not count toward distinct; drop the key if the close
            // above left it with nothing.
            let empty = matches!(&slot.state.phase, Phase::Counting(p) if p.is_empty());
            let k = Arc::clone(&slot.key);
            if empty {
                self.keys[rule].remove(&*key);
                self.tracked -= 1;
            }
            if self.tracking {
                self.dirty_keys.insert((rule, k));
            }
            return Observation::Ignored;
        }
        if weight > 0 {
            let Some(t) = self.policies[rule].threshold.as_ref() else {
                // A rule without a threshold, whose incident just closed.
                return self.settle(rule, &key, ev, ev.time, ev.time, weight);
            };
            let Phase::Counting(pending) = &mut slot.state.phase else {
                // Handled above: an open phase either joined or was reset.
                return Observation::Ignored;
            };
            let mut tally = Tally::new(self.lateness);
            let added = pending.add(ev.time, distinct.flatten(), weight, t, &mut tally);
            let last = pending.newest().unwrap_or(ev.time).max(ev.time);
            self.dropped_events += tally.dropped;
            self.late_events += tally.late;
            if let Some((events, first)) = added {
                return self.settle(rule, &key, ev, first, last, events);
            }
        }
        slot.generation = generation;
        let k = Arc::clone(&slot.key);
        self.touch(rule, k, generation);
        Observation::Counted
    }

    /// [`Detector::observe`] for a key the rule does not track (yet, or any
    /// more).
    fn observe_new(
        &mut self,
        rule: usize,
        key: &str,
        ev: &Event,
        distinct: Option<Option<&str>>,
        attempts: u64,
        process: Option<(u8, &str)>,
    ) -> Observation {
        if distinct == Some(None) {
            return Observation::Ignored;
        }
        let mut processes = Vec::new();
        if let Some((kind, pid)) = process {
            new_attempts(&mut processes, pid, kind, attempts, ev.time);
        }
        let (pending, reached) = match self.policies[rule].threshold.as_ref() {
            Some(t) if t.count > 1 => {
                let mut pending = Pending::for_threshold(t);
                // A lone event is its key's newest, so always in the window.
                let mut tally = Tally::new(self.lateness);
                let reached = pending.add(ev.time, distinct.flatten(), attempts, t, &mut tally);
                (pending, reached)
            }
            _ => (Pending::Events(VecDeque::new()), Some((attempts, ev.time))),
        };
        while self.tracked >= self.max_keys {
            if !self.evict_one() {
                break;
            }
        }
        self.generation += 1;
        let generation = self.generation;
        let k: Arc<str> = Arc::from(key);
        self.keys[rule].insert(
            Arc::clone(&k),
            Slot {
                key: Arc::clone(&k),
                generation,
                state: KeyState {
                    phase: Phase::Counting(pending),
                    processes,
                },
            },
        );
        self.tracked += 1;
        self.touch(rule, k, generation);
        if let Some((events, _)) = reached {
            return self.settle(rule, key, ev, ev.time, ev.time, events);
        }
        Observation::Counted
    }

    /// The tracked key (`rule`, `key`) has reached its rule's threshold with
    /// `events` events between `first` and `last`: they join the open
    /// incident of the rule's merge class for this key, if one is live for
    /// `ev`, and the slot stays linked to it; otherwise they open the rule's
    /// own incident.
    fn settle(
        &mut self,
        rule: usize,
        key: &str,
        ev: &Event,
        first: Timestamp,
        last: Timestamp,
        events: u64,
    ) -> Observation {
        let joined = self.class_of[rule].and_then(|class| {
            let owner = *self.owners[class].get(key)?;
            if owner == rule {
                // Cannot be: the rule's own open slot is not counting.
                return None;
            }
            let id = self.join_open(owner, None, key, ev.time, first, last, events);
            if id.is_none() && self.owners[class].get(key) == Some(&owner) {
                // Not a live open incident: a stale entry, drop it.
                self.owners[class].remove(key);
            }
            id.map(|id| (owner, id))
        });
        let (phase, result) = match joined {
            Some((owner, id)) => (Phase::Linked { owner, id }, Observation::Joined(id)),
            None => {
                let mut inc = open(&mut self.next_id, rule, key, ev, first, events);
                inc.last_seen = last.max(inc.last_seen);
                let id = inc.id;
                once_per_line(&mut self.joined_this_line, id, 0);
                (Phase::Open(Box::new(inc)), Observation::Opened(id))
            }
        };
        self.generation += 1;
        let generation = self.generation;
        let Some(slot) = self.keys[rule].get_mut(key) else {
            // Cannot be (joining never removes the joiner's slot); never
            // lose an incident all the same.
            if let Phase::Open(inc) = phase {
                self.closed.push(*inc);
            }
            return result;
        };
        slot.state.phase = phase;
        slot.generation = generation;
        let k = Arc::clone(&slot.key);
        if let (Observation::Opened(_), Some(class)) = (result, self.class_of[rule]) {
            self.owners[class].insert(Arc::clone(&k), rule);
        }
        self.touch(rule, k, generation);
        result
    }

    /// Adds `events` (between `first` and `last`) to the incident open in
    /// the slot (`owner`, `key`), if it is incident `id` (any, for `None`)
    /// and still live at `time` by the owner's cooldown; returns its id. A
    /// matching incident that is no longer live is closed, as the owner's own
    /// next event would close it.
    #[allow(clippy::too_many_arguments)]
    fn join_open(
        &mut self,
        owner: usize,
        id: Option<u64>,
        key: &str,
        time: Timestamp,
        first: Timestamp,
        last: Timestamp,
        events: u64,
    ) -> Option<u64> {
        let cooldown = self.policies.get(owner)?.cooldown;
        let slot = self.keys[owner].get_mut(key)?;
        let Phase::Open(inc) = &mut slot.state.phase else {
            return None;
        };
        if id.is_some_and(|id| id != inc.id) {
            return None;
        }
        if time <= add_sat(inc.last_seen, cooldown) {
            inc.events += once_per_line(&mut self.joined_this_line, inc.id, events);
            inc.first_seen = inc.first_seen.min(first);
            inc.last_seen = inc.last_seen.max(last);
            let id = inc.id;
            // The attack goes on: the incident's slot is active too.
            self.generation += 1;
            slot.generation = self.generation;
            let k = Arc::clone(&slot.key);
            self.touch(owner, k, self.generation);
            return Some(id);
        }
        if let Some(slot) = self.keys[owner].remove(key) {
            self.tracked -= 1;
            if self.tracking {
                self.dirty_keys.insert((owner, slot.key));
            }
            if let Phase::Open(inc) = slot.state.phase {
                unindex(&mut self.owners, self.class_of[owner], key, owner);
                self.closed.push(*inc);
            }
        }
        None
    }

    /// Marks a tracked key as just active.
    fn touch_key(&mut self, rule: usize, key: &str) {
        self.generation += 1;
        let generation = self.generation;
        if let Some(slot) = self.keys[rule].get_mut(key) {
            slot.generation = generation;
            let k = Arc::clone(&slot.key);
            self.touch(rule, k, generation);
        }
    }

    /// Closes incidents whose key has been quiet for longer than the cooldown
    /// before `now`, and forgets pre-threshold counts older than the window.
    /// `now` is event time: pass [`Detector::watermark`] during a scan, or the
    /// clock while tailing. A `now` behind the events expires nothing.
    /// Linked keys whose incident is over are forgotten too.
    pub fn expire(&mut self, now: Timestamp) {
        let mut batch = Vec::new();
        for (rule, map) in self.keys.iter_mut().enumerate() {
            let Some(policy) = self.policies.get(rule) else {
                continue;
            };
            let mut dead: Vec<Arc<str>> = Vec::new();
            for slot in map.values_mut() {
                match &mut slot.state.phase {
                    Phase::Open(inc) => {
                        if now > add_sat(inc.last_seen, policy.cooldown) {
                            dead.push(Arc::clone(&slot.key));
                        }
                    }
                    Phase::Counting(pending) => {
                        let window = policy
                            .threshold
                            .as_ref()
                            .map_or(SignedDuration::ZERO, |t| t.window);
                        let gone = pending.prune(sub_sat(now, window));
                        if gone > 0 {
                            self.dropped_events += gone;
                            if self.tracking {
                                self.dirty_keys.insert((rule, Arc::clone(&slot.key)));
                            }
                        }
                        if pending.is_empty() {
                            dead.push(Arc::clone(&slot.key));
                        }
                    }
                    // Settled below, once the open incidents are.
                    Phase::Linked { .. } => {}
                }
            }
            for k in dead {
                if let Some(slot) = map.remove(&k) {
                    self.tracked -= 1;
                    self.expired_keys += 1;
                    if self.tracking {
                        self.dirty_keys.insert((rule, k.clone()));
                    }
                    if let Phase::Open(inc) = slot.state.phase {
                        unindex(&mut self.owners, self.class_of[rule], &k, rule);
                        batch.push(*inc);
                    }
                }
            }
        }
        self.close_batch(batch);
        self.drop_dead_links();
        self.compact();
    }

    /// Closes every open incident (end of a file scan). Pre-threshold counts
    /// stay: the next file may continue the same attack.
    pub fn flush(&mut self) {
        let mut batch = Vec::new();
        for (rule, map) in self.keys.iter_mut().enumerate() {
            let settled: Vec<Arc<str>> = map
                .values()
                .filter(|s| !matches!(s.state.phase, Phase::Counting(_)))
                .map(|s| Arc::clone(&s.key))
                .collect();
            for k in settled {
                if let Some(slot) = map.remove(&k) {
                    self.tracked -= 1;
                    if self.tracking {
                        self.dirty_keys.insert((rule, k));
                    }
                    if let Phase::Open(inc) = slot.state.phase {
                        batch.push(*inc);
                    }
                }
            }
        }
        for owners in &mut self.owners {
            owners.clear();
        }
        self.close_batch(batch);
        self.compact();
    }

    /// An id from the detector's own sequence for an incident made outside
    /// it (web-root integrity): stored with the snapshot, so it is never
    /// given to another incident, across restarts too.
    pub fn reserve_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Incidents closed since the last call (by cooldown, expiry, eviction or
    /// flush), in close order.
    pub fn take_closed(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.closed)
    }

    /// Incidents currently open, in no particular order. A merged incident
    /// appears once.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.keys
            .iter()
            .flat_map(|m| m.values())
            .filter_map(|s| match &s.state.phase {
                Phase::Open(inc) => Some(&**inc),
                Phase::Counting(_) | Phase::Linked { .. } => None,
            })
    }

    /// The open incident that one key's events go to, if any: its own, or
    /// the one of another rule of its merge class that it joined.
    pub fn incident(&self, rule: usize, key: &str) -> Option<&Incident> {
        match &self.keys.get(rule)?.get(key)?.state.phase {
            Phase::Open(inc) => Some(inc),
            Phase::Linked { owner, id } => linked_target(&self.keys, *owner, key, *id),
            Phase::Counting(_) => None,
        }
    }

    /// The incident of `rule` open and live at `time` for the key that
    /// `fields` give under that rule's policy (its own, or the one of its
    /// merge class it joined), if any.
    pub fn open_incident(
        &self,
        rule: usize,
        fields: &Fields,
        time: Timestamp,
    ) -> Option<&Incident> {
        let policy = self.policies.get(rule)?;
        let key = key_of(policy, fields);
        if key.is_empty() {
            return None;
        }
        let inc = self.incident(rule, &key)?;
        let cooldown = self
            .policies
            .get(inc.rule)
            .map_or(policy.cooldown, |p| p.cooldown);
        (time <= add_sat(inc.last_seen, cooldown)).then_some(inc)
    }

    pub fn keys_tracked(&self) -> usize {
        self.tracked
    }

    pub fn keys_evicted(&self) -> u64 {
        self.keys_evicted
    }

    /// Events counted toward a threshold and later forgotten without joining
    /// an incident (slid out of the window, expired, or evicted).
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Events currently held in pre-threshold counts.
    pub fn pending_events(&self) -> u64 {
        self.keys
            .iter()
            .flat_map(|m| m.values())
            .map(|s| match &s.state.phase {
                Phase::Counting(p) => p.events(),
                Phase::Open(_) | Phase::Linked { .. } => 0,
            })
            .sum()
    }

    /// The newest event time seen: the detector's notion of "now" in a scan.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// The whole state, for persisting. Allocates; meant for checkpoints,
    /// not for every event.
    pub fn snapshot(&self) -> Snapshot {
        let mut keys: Vec<(u64, SavedKey)> = self
            .keys
            .iter()
            .enumerate()
            .flat_map(|(rule, m)| {
                m.values().map(move |s| {
                    (
                        s.generation,
                        SavedKey {
                            rule,
                            key: s.key.to_string(),
                            state: s.state.clone(),
                            generation: s.generation,
                        },
                    )
                })
            })
            .collect();
        keys.sort_by_key(|(g, _)| *g);
        Snapshot {
            keys: keys.into_iter().map(|(_, k)| k).collect(),
            closed: self.closed.clone(),
            watermark: self.watermark,
            next_id: self.next_id,
            keys_evicted: self.keys_evicted,
            dropped_events: self.dropped_events,
            late_events: self.late_events,
            expired_keys: self.expired_keys,
            rates: {
                let mut rates: Vec<(usize, String, RateCount)> = self
                    .rates
                    .iter()
                    .enumerate()
                    .flat_map(|(rule, m)| {
                        m.iter()
                            .map(move |(k, c)| (rule, client_text(*k), c.clone()))
                    })
                    .collect();
                rates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                rates
            },
        }
    }

    /// The snapshot without its keys and request counts: what a store
    /// writes with every batch, next to the [`Detector::changes`].
    pub fn header(&self) -> Snapshot {
        Snapshot {
            keys: Vec::new(),
            closed: self.closed.clone(),
            watermark: self.watermark,
            next_id: self.next_id,
            keys_evicted: self.keys_evicted,
            dropped_events: self.dropped_events,
            late_events: self.late_events,
            expired_keys: self.expired_keys,
            rates: Vec::new(),
        }
    }

    /// Keys and request-rate clients changed since the last
    /// [`Detector::persisted`] (with [`Detector::track_changes`]), with
    /// their state now. Together with the
    /// [`Detector::header`], written over the stored state, they make the
    /// [`Detector::snapshot`].
    pub fn changes(&self) -> Changes {
        let keys = self
            .dirty_keys
            .iter()
            .map(|(rule, key)| {
                let saved = self.keys[*rule].get(key).map(|s| SavedKey {
                    rule: *rule,
                    key: key.to_string(),
                    state: s.state.clone(),
                    generation: s.generation,
                });
                (*rule, key.to_string(), saved)
            })
            .collect();
        let rates = self
            .dirty_rates
            .iter()
            .map(|&(rule, client)| {
                let count = self.rates.get(rule).and_then(|m| m.get(&client)).cloned();
                (rule, client_text(client), count)
            })
            .collect();
        Changes { keys, rates }
    }

    /// How many keys and clients [`Detector::changes`] would return.
    pub fn changed(&self) -> usize {
        self.dirty_keys.len() + self.dirty_rates.len()
    }

    /// The changes so far are stored: forget them.
    ///
    /// Open incidents among the changes give up their sample and fields: the
    /// store wrote them into the incident's row when it opened, and later
    /// commits of a known incident update only its counts and times. This is
    /// most of an open incident's memory (a line and its fields, against a
    /// few numbers), so 20,000 open incidents fit the daemon's memory bound.
    pub fn persisted(&mut self) {
        for (rule, key) in self.dirty_keys.drain() {
            let slot = self.keys.get_mut(rule).and_then(|m| m.get_mut(&key));
            if let Some(Phase::Open(inc)) = slot.map(|s| &mut s.state.phase) {
                inc.sample = String::new();
                inc.fields = Vec::new();
            }
        }
        self.dirty_rates.clear();
    }

    /// Rebuilds a detector from a snapshot. Keys of rules that no longer
    /// exist, or whose pre-threshold count no longer fits the rule's
    /// threshold (rules edited meanwhile), are dropped; open incidents of
    /// existing rules are kept. Links to another rule's incident are kept
    /// while both rules are still of one merge class and the incident is
    /// open. If `max_keys` shrank, the least recently active keys are
    /// evicted as usual.
    pub fn restore(policies: Vec<Policy>, max_keys: usize, snap: Snapshot) -> Self {
        let mut d = Detector::new(policies, max_keys);
        d.closed = snap.closed;
        d.watermark = snap.watermark;
        d.next_id = snap.next_id;
        d.keys_evicted = snap.keys_evicted;
        d.dropped_events = snap.dropped_events;
        d.late_events = snap.late_events;
        d.expired_keys = snap.expired_keys;
        let mut keys = snap.keys;
        // Stable: snapshots without generations keep their list's order.
        keys.sort_by_key(|k| k.generation);
        for (rule, client, count) in snap.rates {
            if rule >= d.policies.len() || d.rate_clients >= d.max_keys {
                continue;
            }
            let Ok(client) = client.parse::<std::net::IpAddr>() else {
                continue;
            };
            let client = address_bits(client);
            if d.rates.len() <= rule {
                d.rates.resize_with(rule + 1, hashbrown::HashMap::new);
            }
            if d.rates[rule].insert(client, count).is_none() {
                d.rate_clients += 1;
            }
        }
        for saved in keys {
            let Some(policy) = d.policies.get(saved.rule) else {
                continue;
            };
            match &saved.state.phase {
                Phase::Counting(p) => {
                    let fits = match (&policy.threshold, p) {
                        (Some(t), Pending::Events(_)) => t.distinct.is_none(),
                        (Some(t), Pending::Distinct(_)) => t.distinct.is_some(),
                        (None, _) => false,
                    };
                    if !fits || p.is_empty() {
                        d.dropped_events += p.events();
                        continue;
                    }
                }
                Phase::Linked { owner, .. } => {
                    // Holds no events: dropping it loses nothing.
                    let class = d.class_of[saved.rule];
                    let same = *owner != saved.rule
                        && class.is_some()
                        && d.class_of.get(*owner) == Some(&class);
                    if !same {
                        continue;
                    }
                }
                Phase::Open(_) => {}
            }
            while d.tracked >= d.max_keys {
                if !d.evict_one() {
                    break;
                }
            }
            // Kept as saved, so that the keys a store does not rewrite keep
            // their place among those it does.
            d.generation = d.generation.max(saved.generation.saturating_sub(1)) + 1;
            let generation = d.generation;
            let k: Arc<str> = Arc::from(saved.key);
            // A duplicate key in a hand-edited snapshot replaces the earlier one.
            if let Some(old) = d.keys[saved.rule].insert(
                Arc::clone(&k),
                Slot {
                    key: Arc::clone(&k),
                    generation,
                    state: saved.state,
                },
            ) {
                d.tracked -= 1;
                if let Phase::Open(inc) = old.state.phase {
                    d.closed.push(*inc);
                }
            }
            d.tracked += 1;
            d.touch(saved.rule, k, generation);
        }
        d.rebuild_owners();
        d.drop_dead_links();
        d.compact();
        // Restored as stored: nothing to write. (What restoring dropped,
        // the caller sees in the counts and rewrites whole.)
        d.persisted();
        d
    }

    /// Gives back what maps and queues grew to in a burst beyond what the
    /// keys now tracked need.
    pub fn shrink(&mut self) {
        for map in &mut self.keys {
            map.shrink_to_fit();
        }
        for map in &mut self.owners {
            map.shrink_to_fit();
        }
        for map in &mut self.rates {
            map.shrink_to_fit();
        }
        self.compact();
        self.lru.shrink_to_fit();
        self.dirty_keys.shrink_to_fit();
        self.dirty_rates.shrink_to_fit();
        self.closed.shrink_to_fit();
    }

    /// Clients tracked by request-rate rules.
    pub fn rate_clients(&self) -> usize {
        self.rate_clients
    }

    /// Indexes every open incident of a merge class. Should two rules of a
    /// class both hold one for a key (a snapshot from before the rules were
    /// merged), the most recently active is the one others join; the other
    /// runs its course alone.
    fn rebuild_owners(&mut self) {
        for owners in &mut self.owners {
            owners.clear();
        }
        for (rule, map) in self.keys.iter().enumerate() {
            let Some(class) = self.class_of.get(rule).copied().flatten() else {
                continue;
            };
            for slot in map.values() {
                if !matches!(slot.state.phase, Phase::Open(_)) {
                    continue;
                }
                let owners = &mut self.owners[class];
                let newer = owners.get(&slot.key).is_none_or(|&other| {
                    self.keys[other]
                        .get(&slot.key)
                        .is_none_or(|s| s.generation < slot.generation)
                });
                if newer {
                    owners.insert(Arc::clone(&slot.key), rule);
                }
            }
        }
    }

    /// Forgets linked keys whose incident is no longer open.
    fn drop_dead_links(&mut self) {
        let mut dead: Vec<(usize, Arc<str>)> = Vec::new();
        for (rule, map) in self.keys.iter().enumerate() {
            for slot in map.values() {
                if let Phase::Linked { owner, id } = slot.state.phase {
                    if linked_target(&self.keys, owner, &slot.key, id).is_none() {
                        dead.push((rule, Arc::clone(&slot.key)));
                    }
                }
            }
        }
        for (rule, k) in dead {
            if self.keys[rule].remove(&k).is_some() {
                self.tracked -= 1;
                if self.tracking {
                    self.dirty_keys.insert((rule, k));
                }
            }
        }
    }

    fn touch(&mut self, rule: usize, key: Arc<str>, generation: u64) {
        if self.tracking {
            self.dirty_keys.insert((rule, Arc::clone(&key)));
        }
        // Already the most recent (half the events of an attack log repeat
        // the previous event's rule and key): renew that entry in place.
        // The key's slot still holds this Arc, so the entry is its live one.
        if let Some(back) = self.lru.back_mut() {
            if back.0 == rule && Arc::ptr_eq(&back.1, &key) {
                back.2 = generation;
                return;
            }
        }
        self.lru.push_back((rule, key, generation));
        // Keeps the queue within a constant factor of the live keys; each
        // compaction is paid for by the pushes since the previous one.
        if self.lru.len() > 2 * self.tracked + 64 {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let keys = &self.keys;
        self.lru.retain(|(rule, key, generation)| {
            keys[*rule]
                .get(key)
                .is_some_and(|s| s.generation == *generation)
        });
    }

    /// Evicts the least recently active key; false if there was none. An
    /// evicted open incident is closed; keys linked to it count afresh at
    /// their next event. An evicted linked key held no events of its own.
    fn evict_one(&mut self) -> bool {
        while let Some((rule, key, generation)) = self.lru.pop_front() {
            let live = self.keys[rule]
                .get(&key)
                .is_some_and(|s| s.generation == generation);
            if !live {
                continue;
            }
            if let Some(slot) = self.keys[rule].remove(&key) {
                self.tracked -= 1;
                self.keys_evicted += 1;
                if self.tracking {
                    self.dirty_keys.insert((rule, Arc::clone(&key)));
                }
                match slot.state.phase {
                    Phase::Open(inc) => {
                        unindex(&mut self.owners, self.class_of[rule], &key, rule);
                        self.closed.push(*inc);
                    }
                    Phase::Counting(p) => self.dropped_events += p.events(),
                    Phase::Linked { .. } => {}
                }
                return true;
            }
        }
        false
    }

    /// Several incidents closing at once are emitted oldest activity first,
    /// so output does not depend on hash order.
    fn close_batch(&mut self, mut batch: Vec<Incident>) {
        batch.sort_by_key(|i| (i.last_seen, i.id));
        self.closed.extend(batch);
    }
}

/// The attempts an event adds to incident `id`: none if another event of
/// the same line already added to it (when lines are marked at all).
fn once_per_line(joined: &mut Option<Vec<u64>>, id: u64, attempts: u64) -> u64 {
    match joined {
        Some(ids) if ids.contains(&id) => 0,
        Some(ids) => {
            ids.push(id);
            attempts
        }
        None => attempts,
    }
}

/// An address as one number: IPv6 bits, IPv4 as IPv4-mapped IPv6.
/// A request-rate client's address as text, as [`address_bits`] took it.
fn client_text(bits: u128) -> String {
    std::net::Ipv6Addr::from(bits).to_canonical().to_string()
}

fn address_bits(addr: std::net::IpAddr) -> u128 {
    match addr {
        std::net::IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An empty count for a rule, as after a cooldown.
fn fresh_pending(policy: &Policy) -> Pending {
    match &policy.threshold {
        Some(t) => Pending::for_threshold(t),
        None => Pending::Events(VecDeque::new()),
    }
}

/// Forgets that `rule` holds its class's open incident for `key` (if the
/// index says so: after a restore, another rule may be the indexed one).
fn unindex(owners: &mut [KeyMap<usize>], class: Option<usize>, key: &str, rule: usize) {
    if let Some(owners) = class.and_then(|c| owners.get_mut(c)) {
        if owners.get(key) == Some(&rule) {
            owners.remove(key);
        }
    }
}

/// The incident `id`, if still open in the slot (`owner`, `key`).
fn linked_target<'a>(
    keys: &'a [KeyMap<Slot>],
    owner: usize,
    key: &str,
    id: u64,
) -> Option<&'a Incident> {
    match &keys.get(owner)?.get(key)?.state.phase {
        Phase::Open(inc) if inc.id == id => Some(inc),
        _ => None,
    }
}

fn normalise(mut p: Policy) -> Policy {
    if p.cooldown.is_negative() {
        p.cooldown = SignedDuration::ZERO;
    }
    if let Some(t) = &mut p.threshold {
        t.count = t.count.max(1);
        if t.window <= SignedDuration::ZERO {
            t.window = SignedDuration::from_nanos(1);
        }
    }
    p
}

/// The key of an event under `policy`: its `by` fields joined by a space
/// (the first field's value alone, borrowed, when there is one), or the
/// client's address, or its host name when the log gives only that.
fn key_of<'e>(policy: &Policy, fields: &'e Fields) -> Cow<'e, str> {
    let by = policy.threshold.as_ref().map_or(&[][..], |t| &t.by[..]);
    match by {
        [] => Cow::Borrowed(client_key(fields)),
        [one] if one == DEFAULT_KEY_FIELD => Cow::Borrowed(client_key(fields)),
        [one] => Cow::Borrowed(fields.get(one).unwrap_or("")),
        many => {
            let values: Vec<&str> = many.iter().map(|f| fields.get(f).unwrap_or("")).collect();
            Cow::Owned(values.join(" "))
        }
    }
}

/// The client an event names: its address, or its host name when the log
/// names it only so.
fn client_key(fields: &Fields) -> &str {
    fields
        .get(DEFAULT_KEY_FIELD)
        .filter(|v| !v.is_empty())
        .or_else(|| fields.get(HOST_KEY_FIELD))
        .unwrap_or("")
}

/// How many attempts an event stands for: its `attempts` field, within
/// reason, or one.
fn attempts_of(ev: &Event) -> u64 {
    ev.field(ATTEMPTS_FIELD)
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(1, |n| n.clamp(1, MAX_ATTEMPTS_PER_LINE))
}

fn open(
    next_id: &mut u64,
    rule: usize,
    key: &str,
    ev: &Event,
    first_seen: Timestamp,
    events: u64,
) -> Incident {
    let id = *next_id;
    *next_id += 1;
    Incident {
        id,
        rule,
        key: key.to_owned(),
        first_seen: first_seen.min(ev.time),
        last_seen: ev.time,
        events,
        sample: ev.line.to_string(),
        fields: ev
            .fields
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn add_sat(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn sub_sat(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_sub(d).unwrap_or(if d.is_negative() {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const BASE: i64 = 1_700_000_000;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(BASE + secs).expect("test time in range")
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    fn ev(rule: usize, at: i64, fields: &[(&str, &str)]) -> Event<'static> {
        Event {
            rule,
            time: ts(at),
            fields: Cow::Owned(fields.iter().copied().collect()),
            line: Cow::Owned(format!("line at {at}")),
        }
    }

    fn ip(rule: usize, at: i64, addr: &str) -> Event<'static> {
        ev(rule, at, &[("src_ip", addr)])
    }

    fn counting(count: u32, window: i64, cooldown: i64) -> Policy {
        Policy {
            threshold: Some(Threshold {
                count,
                window: secs(window),
                by: Vec::new(),
                distinct: None,
            }),
            cooldown: secs(cooldown),
            merge: None,
            counts_toward: None,
            evidence: None,
        }
    }

    fn plain(cooldown: i64) -> Policy {
        Policy {
            threshold: None,
            cooldown: secs(cooldown),
            merge: None,
            counts_toward: None,
            evidence: None,
        }
    }

    fn merged(mut p: Policy, class: u32) -> Policy {
        p.merge = Some(class);
        p
    }

    fn distinct_users(count: u32, window: i64, cooldown: i64) -> Policy {
        Policy {
            threshold: Some(Threshold {
                count,
                window: secs(window),
                by: Vec::new(),
                distinct: Some("user".into()),
            }),
            cooldown: secs(cooldown),
            merge: None,
            counts_toward: None,
            evidence: None,
        }
    }

    /// White-box: the class index names exactly the open slots of merging
    /// rules, at most one per (class, key), and `tracked` is the slot count.
    fn assert_index_consistent(d: &Detector) {
        let mut open_per_class: HashMap<(usize, &str), usize> = HashMap::new();
        for (rule, map) in d.keys.iter().enumerate() {
            for slot in map.values() {
                if let (Phase::Open(_), Some(c)) = (&slot.state.phase, d.class_of[rule]) {
                    *open_per_class.entry((c, &*slot.key)).or_default() += 1;
                    assert_eq!(d.owners[c].get(&slot.key), Some(&rule));
                }
            }
        }
        assert!(open_per_class.values().all(|&n| n == 1));
        let indexed: usize = d.owners.iter().map(KeyMap::len).sum();
        assert_eq!(indexed, open_per_class.len());
        assert_eq!(d.keys.iter().map(KeyMap::len).sum::<usize>(), d.tracked);
    }

    #[test]
    fn a_persisted_open_incident_leaves_its_sample_to_the_store_and_keeps_counting() {
        let mut d = Detector::new(vec![counting(2, 60, 300)], 100);
        d.track_changes();
        d.observe(&ip(0, 0, "1.2.3.4"));
        assert!(matches!(
            d.observe(&ip(0, 1, "1.2.3.4")),
            Observation::Opened(_)
        ));
        let saved = d.changes();
        d.persisted();
        // What the store got still had them, for the incident's row.
        let state = saved.keys[0].2.as_ref().map(|k| k.state.clone());
        assert!(matches!(state.map(|s| s.phase), Some(Phase::Open(i)) if i.sample == "line at 1"));
        let inc = d.incident(0, "1.2.3.4").expect("open");
        assert!(inc.sample.is_empty() && inc.fields.is_empty());
        assert!(matches!(
            d.observe(&ip(0, 2, "1.2.3.4")),
            Observation::Joined(_)
        ));
        d.flush();
        let closed = d.take_closed();
        assert_eq!((closed.len(), closed[0].events), (1, 3));
    }

    #[test]
    fn a_flood_of_new_clients_against_a_full_rate_table_is_refused_until_one_turns_idle() {
        let mut d = Detector::new(vec![counting(2, 60, 300)], 2);
        let window = SignedDuration::from_secs(60);
        let ip = |last: u8| std::net::IpAddr::from([198, 51, 100, last]);
        let request = |d: &mut Detector, last: u8, secs: i64| {
            d.count_request(0, ip(last), ts(secs), 100, window)
        };
        request(&mut d, 1, 0);
        request(&mut d, 2, 1);
        assert_eq!(d.rate_clients(), 2);
        // Both tracked clients are active: newcomers are refused and
        // counted, the scan that found no idle client not repeated.
        for last in 3..200 {
            request(&mut d, last, 2);
        }
        assert_eq!((d.rate_clients(), d.dropped_events()), (2, 197));
        let slot = i64::try_from(ts(2).as_nanosecond() / window.as_nanos()).expect("slot");
        assert_eq!(d.no_idle_rates, [Some(slot)]);
        // Two windows on, both are idle: the next newcomer takes a place.
        request(&mut d, 250, 125);
        assert_eq!((d.rate_clients(), d.dropped_events()), (1, 197));
        assert!(d.no_idle_rates.is_empty());
        request(&mut d, 251, 125);
        request(&mut d, 252, 126);
        assert_eq!((d.rate_clients(), d.dropped_events()), (2, 198));
    }

    #[test]
    fn threshold_reached_exactly_at_count() {
        let mut d = Detector::new(vec![counting(5, 60, 300)], 100);
        for i in 0..4 {
            assert_eq!(d.observe(&ip(0, i, "1.2.3.4")), Observation::Counted);
        }
        assert_eq!(d.open_incidents().count(), 0);
        assert!(matches!(
            d.observe(&ip(0, 10, "1.2.3.4")),
            Observation::Opened(_)
        ));
        let inc = d.incident(0, "1.2.3.4").expect("open");
        // The events that reached the threshold belong to the incident.
        assert_eq!(inc.events, 5);
        assert_eq!(inc.first_seen, ts(0));
        assert_eq!(inc.last_seen, ts(10));
        assert_eq!(inc.sample, "line at 10");
        assert_eq!(
            inc.fields,
            vec![("src_ip".to_string(), "1.2.3.4".to_string())]
        );
    }

    #[test]
    fn events_outside_the_window_do_not_count() {
        let mut d = Detector::new(vec![counting(3, 60, 300)], 100);
        // Window semantics alone: no event is held for a late one.
        d.set_lateness(SignedDuration::ZERO);
        // Spaced exactly one window apart: the older one is on the boundary,
        // which is outside (time > newest - window counts).
        for i in 0..10 {
            assert_eq!(d.observe(&ip(0, i * 60, "a")), Observation::Counted);
        }
        assert_eq!(d.open_incidents().count(), 0);
        assert_eq!(d.pending_events(), 1);
        assert_eq!(d.dropped_events(), 9);
        // Two more inside the window of the last reach three.
        d.observe(&ip(0, 9 * 60 + 1, "a"));
        assert!(matches!(
            d.observe(&ip(0, 9 * 60 + 59, "a")),
            Observation::Opened(_)
        ));
        let inc = d.incident(0, "a").expect("open");
        assert_eq!((inc.events, inc.first_seen), (3, ts(9 * 60)));
    }

    #[test]
    fn distinct_counting() {
        let policy = Policy {
            threshold: Some(Threshold {
                count: 3,
                window: secs(60),
                by: Vec::new(),
                distinct: Some("user".into()),
            }),
            cooldown: secs(300),
            merge: None,
            counts_toward: None,
            evidence: None,
        };
        let mut d = Detector::new(vec![policy], 100);
        let login = |at, user| ev(0, at, &[("src_ip", "9.9.9.9"), ("user", user)]);
        for i in 0..20 {
            assert_eq!(d.observe(&login(i, "root")), Observation::Counted);
        }
        assert_eq!(d.open_incidents().count(), 0);
        // Without the distinct field an event is no evidence of enumeration.
        assert_eq!(d.observe(&ip(0, 20, "9.9.9.9")), Observation::Ignored);
        assert_eq!(d.observe(&login(21, "admin")), Observation::Counted);
        assert!(matches!(
            d.observe(&login(22, "oracle")),
            Observation::Opened(_)
        ));
        let inc = d.incident(0, "9.9.9.9").expect("open");
        assert_eq!(inc.events, 22);
        assert_eq!(inc.first_seen, ts(0));
        // Once open, events without the field are still part of the attack.
        assert!(matches!(
            d.observe(&ip(0, 23, "9.9.9.9")),
            Observation::Joined(_)
        ));
    }

    #[test]
    fn distinct_values_leave_the_window() {
        let policy = Policy {
            threshold: Some(Threshold {
                count: 3,
                window: secs(10),
                by: Vec::new(),
                distinct: Some("path".into()),
            }),
            cooldown: secs(300),
            merge: None,
            counts_toward: None,
            evidence: None,
        };
        let mut d = Detector::new(vec![policy], 100);
        d.set_lateness(SignedDuration::ZERO);
        let get = |at, path| ev(0, at, &[("src_ip", "x"), ("path", path)]);
        d.observe(&get(0, "/a"));
        d.observe(&get(5, "/b"));
        // "/a" is 10s old now: out.
        assert_eq!(d.observe(&get(10, "/c")), Observation::Counted);
        assert_eq!(d.dropped_events(), 1);
        assert!(matches!(d.observe(&get(11, "/d")), Observation::Opened(_)));
    }

    #[test]
    fn no_threshold_rule_opens_on_first_event() {
        let mut d = Detector::new(vec![plain(60)], 100);
        let Observation::Opened(id) = d.observe(&ip(0, 0, "5.5.5.5")) else {
            panic!("expected an incident at the first event");
        };
        assert_eq!(d.observe(&ip(0, 1, "5.5.5.5")), Observation::Joined(id));
        assert_eq!(d.incident(0, "5.5.5.5").map(|i| i.events), Some(2));
    }

    #[test]
    fn thousand_events_within_cooldown_are_one_incident() {
        let mut d = Detector::new(vec![counting(10, 60, 30)], 100);
        for i in 0..1000 {
            d.observe(&ip(0, 100 + i, "6.6.6.6"));
        }
        d.flush();
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].events, 1000);
        assert_eq!(closed[0].first_seen, ts(100));
        assert_eq!(closed[0].last_seen, ts(1099));
        assert_eq!(d.dropped_events(), 0);
    }

    #[test]
    fn quiet_longer_than_cooldown_starts_a_second_incident() {
        let mut d = Detector::new(vec![plain(60)], 100);
        d.observe(&ip(0, 0, "a"));
        // Exactly at last_seen + cooldown still joins.
        assert!(matches!(d.observe(&ip(0, 60, "a")), Observation::Joined(_)));
        assert!(d.take_closed().is_empty());
        assert!(matches!(
            d.observe(&ip(0, 121, "a")),
            Observation::Opened(_)
        ));
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].events, closed[0].last_seen), (2, ts(60)));
        assert_eq!(d.incident(0, "a").map(|i| i.events), Some(1));
    }

    #[test]
    fn after_cooldown_a_threshold_rule_counts_afresh() {
        let mut d = Detector::new(vec![counting(3, 60, 60)], 100);
        for i in 0..3 {
            d.observe(&ip(0, i, "a"));
        }
        assert_eq!(d.observe(&ip(0, 500, "a")), Observation::Counted);
        assert_eq!(d.take_closed().len(), 1);
        assert_eq!(d.open_incidents().count(), 0);
        d.observe(&ip(0, 501, "a"));
        assert!(matches!(
            d.observe(&ip(0, 502, "a")),
            Observation::Opened(_)
        ));
    }

    #[test]
    fn different_keys_are_separate_incidents() {
        let mut d = Detector::new(vec![counting(2, 60, 60), plain(60)], 100);
        for i in 0..2 {
            d.observe(&ip(0, i, "a"));
            d.observe(&ip(0, i, "b"));
        }
        // Same key text under another rule is another incident.
        d.observe(&ip(1, 0, "a"));
        let mut open: Vec<(usize, &str, u64)> = d
            .open_incidents()
            .map(|i| (i.rule, i.key.as_str(), i.events))
            .collect();
        open.sort();
        assert_eq!(open, vec![(0, "a", 2), (0, "b", 2), (1, "a", 1)]);
    }

    #[test]
    fn by_field_is_honoured() {
        let policy = Policy {
            threshold: Some(Threshold {
                count: 2,
                window: secs(60),
                by: vec!["user".into()],
                distinct: None,
            }),
            cooldown: secs(60),
            merge: None,
            counts_toward: None,
            evidence: None,
        };
        let mut d = Detector::new(vec![policy], 100);
        // Password spraying against one account from many addresses.
        d.observe(&ev(0, 0, &[("src_ip", "1.1.1.1"), ("user", "alice")]));
        d.observe(&ev(0, 1, &[("src_ip", "2.2.2.2"), ("user", "alice")]));
        let inc = d.incident(0, "alice").expect("keyed on user");
        assert_eq!(inc.events, 2);
        assert!(d.incident(0, "1.1.1.1").is_none());
        // Lacking the `by` field falls back to the rule-wide key, not src_ip.
        d.observe(&ev(0, 2, &[("src_ip", "3.3.3.3")]));
        d.observe(&ev(0, 3, &[("src_ip", "4.4.4.4")]));
        assert_eq!(d.incident(0, "").map(|i| i.events), Some(2));
    }

    #[test]
    fn key_is_empty_without_src_ip() {
        let mut d = Detector::new(vec![counting(3, 60, 60)], 100);
        d.observe(&ev(0, 0, &[("path", "/etc/passwd")]));
        d.observe(&ev(0, 1, &[]));
        d.observe(&ev(0, 2, &[("user", "bob")]));
        let inc = d.incident(0, "").expect("one key for the rule");
        assert_eq!(inc.events, 3);
        assert_eq!(d.keys_tracked(), 1);
    }

    #[test]
    fn eviction_closes_and_emits_the_open_incident() {
        let mut d = Detector::new(vec![plain(3600), counting(5, 60, 60)], 3);
        d.observe(&ip(0, 0, "victim"));
        d.observe(&ip(0, 1, "victim"));
        d.observe(&ip(1, 2, "partial"));
        d.observe(&ip(1, 3, "partial"));
        d.observe(&ip(0, 4, "c"));
        assert_eq!(d.keys_tracked(), 3);
        d.observe(&ip(0, 5, "d"));
        assert_eq!(d.keys_tracked(), 3);
        assert_eq!(d.keys_evicted(), 1);
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].key.as_str(), closed[0].events), ("victim", 2));
        // The partial count goes next, and is accounted as dropped.
        d.observe(&ip(0, 6, "e"));
        assert_eq!(d.keys_evicted(), 2);
        assert_eq!(d.dropped_events(), 2);
        assert!(d.take_closed().is_empty());
        for i in 0..100 {
            d.observe(&ip(0, 7 + i, &format!("k{i}")));
            assert!(d.keys_tracked() <= 3);
        }
        assert_eq!(d.keys_evicted(), 102);
    }

    #[test]
    fn eviction_takes_the_least_recently_active_key() {
        let mut d = Detector::new(vec![plain(3600)], 2);
        d.observe(&ip(0, 0, "old"));
        d.observe(&ip(0, 1, "young"));
        // Activity makes "old" the most recent again.
        d.observe(&ip(0, 2, "old"));
        d.observe(&ip(0, 3, "new"));
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key, "young");
        assert!(d.incident(0, "old").is_some());
    }

    #[test]
    fn eviction_order_is_exact_lru_with_repeated_keys() {
        // Repeats of the last key renew its queue entry in place; the order
        // of evictions must still be that of a plain LRU list.
        let mut d = Detector::new(vec![plain(1_000_000)], 3);
        let mut lru: Vec<String> = Vec::new();
        let mut evicted = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut key = String::from("k0");
        for at in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed % 2 == 0 {
                key = format!("k{}", (seed >> 8) % 7);
            }
            d.observe(&ip(0, at, &key));
            if let Some(i) = lru.iter().position(|k| *k == key) {
                lru.remove(i);
            } else if lru.len() == 3 {
                evicted.push(lru.remove(0));
            }
            lru.push(key.clone());
        }
        let closed: Vec<String> = d.take_closed().into_iter().map(|i| i.key).collect();
        assert!(closed.len() > 1000);
        assert_eq!(closed, evicted);
    }

    #[test]
    fn lru_queue_stays_bounded_on_a_hot_key() {
        let mut d = Detector::new(vec![plain(3600)], 10);
        for i in 0..10_000 {
            d.observe(&ip(0, i, "hot"));
        }
        assert!(d.lru.len() <= 2 * d.keys_tracked() + 65);
        assert_eq!(d.incident(0, "hot").map(|i| i.events), Some(10_000));
    }

    #[test]
    fn expire_drops_dead_keys() {
        let mut d = Detector::new(vec![plain(60), counting(5, 50, 60)], 100);
        d.observe(&ip(0, 0, "a"));
        d.observe(&ip(0, 100, "b"));
        d.observe(&ip(1, 0, "p"));
        d.observe(&ip(1, 20, "p"));
        d.observe(&ip(1, 100, "q"));
        assert_eq!(d.keys_tracked(), 4);
        // A clock behind the events expires nothing.
        d.expire(ts(-1000));
        assert_eq!(d.keys_tracked(), 4);
        d.expire(ts(61));
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key, "a");
        // "p" lost its first event to the window but is still alive.
        assert_eq!(d.keys_tracked(), 3);
        assert_eq!(d.dropped_events(), 1);
        d.expire(ts(200));
        assert_eq!(d.keys_tracked(), 0);
        assert_eq!(d.take_closed().len(), 1);
        assert_eq!(d.dropped_events(), 3);
        assert!(d.lru.is_empty());
    }

    #[test]
    fn out_of_order_times_do_not_panic_and_still_count() {
        let mut d = Detector::new(vec![counting(3, 60, 60)], 100);
        d.observe(&ip(0, 50, "a"));
        d.observe(&ip(0, 40, "a"));
        assert!(matches!(d.observe(&ip(0, 45, "a")), Observation::Opened(_)));
        let inc = d.incident(0, "a").expect("open");
        assert_eq!(
            (inc.first_seen, inc.last_seen, inc.events),
            (ts(40), ts(50), 3)
        );
        // Joining from the past widens first_seen, never lowers last_seen.
        d.observe(&ip(0, 30, "a"));
        let inc = d.incident(0, "a").expect("open");
        assert_eq!(
            (inc.first_seen, inc.last_seen, inc.events),
            (ts(30), ts(50), 4)
        );
        assert_eq!(d.watermark(), Some(ts(50)));
        // Far behind the key's newest, but within the lateness: held, for
        // events of its own window that may come later still.
        d.observe(&ip(0, 1000, "b"));
        assert_eq!(d.observe(&ip(0, 0, "b")), Observation::Counted);
        assert_eq!((d.dropped_events(), d.late_events()), (0, 0));
        assert!(matches!(d.observe(&ip(0, 30, "b")), Observation::Counted));
        assert!(matches!(d.observe(&ip(0, 20, "b")), Observation::Opened(_)));
        // The events held after that window came first; they are the same
        // attacker's and join it.
        let inc = d.incident(0, "b").expect("open");
        assert_eq!(
            (inc.first_seen, inc.last_seen, inc.events),
            (ts(0), ts(1000), 4)
        );
        // Beyond the lateness: late, and counted as such.
        d.observe(&ip(0, 100_000, "c"));
        assert_eq!(d.observe(&ip(0, 0, "c")), Observation::Counted);
        assert_eq!(d.late_events(), 1);
        // Extreme times and durations saturate rather than overflow.
        let mut d = Detector::new(
            vec![Policy {
                threshold: Some(Threshold {
                    count: 2,
                    window: SignedDuration::MAX,
                    by: Vec::new(),
                    distinct: None,
                }),
                cooldown: SignedDuration::MAX,
                merge: None,
                counts_toward: None,
                evidence: None,
            }],
            10,
        );
        for t in [
            Timestamp::MAX,
            Timestamp::MIN,
            Timestamp::MAX,
            Timestamp::MIN,
        ] {
            let mut e = ip(0, 0, "z");
            e.time = t;
            d.observe(&e);
        }
        d.expire(Timestamp::MAX);
        d.expire(Timestamp::MIN);
        d.flush();
        // MIN lies on the saturated window's edge, so it is outside.
        let in_incidents: u64 = d.take_closed().iter().map(|i| i.events).sum();
        assert_eq!(in_incidents + d.dropped_events() + d.late_events(), 4);
    }

    /// The incidents a stream of (time, key) events makes, as (key, first
    /// seen, events), closed or open.
    fn incidents_of(policy: Policy, events: &[(i64, &str)]) -> Vec<(String, Timestamp, u64)> {
        let mut d = Detector::new(vec![policy], 100);
        for &(at, key) in events {
            d.observe(&ip(0, at, key));
        }
        d.flush();
        let mut found: Vec<_> = d
            .take_closed()
            .into_iter()
            .map(|i| (i.key, i.first_seen, i.events))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_backlog_read_input_by_input_makes_the_incidents_of_live_reading() {
        // One attacker in two logs, a failure every two minutes: five
        // within ten minutes only when both logs are taken together.
        let a = [(0, "x"), (240, "x"), (480, "x"), (720, "x")];
        let b = [(120, "x"), (360, "x"), (600, "x")];
        let mut live: Vec<(i64, &str)> = a.iter().chain(&b).copied().collect();
        live.sort();
        let backlog: Vec<(i64, &str)> = a.iter().chain(&b).copied().collect();
        let reversed: Vec<(i64, &str)> = b.iter().chain(&a).copied().collect();
        let want = incidents_of(counting(5, 600, 300), &live);
        assert_eq!(want, vec![("x".to_string(), ts(0), 7)]);
        assert_eq!(incidents_of(counting(5, 600, 300), &backlog), want);
        assert_eq!(incidents_of(counting(5, 600, 300), &reversed), want);
    }

    #[test]
    fn a_line_dated_ahead_does_not_hide_the_attempts_after_it() {
        let mut events = vec![(660, "x")];
        events.extend((0..20).map(|i| (i, "x")));
        let found = incidents_of(counting(5, 600, 300), &events);
        assert_eq!(found, vec![("x".to_string(), ts(0), 21)]);
    }

    #[test]
    fn degenerate_policies_are_read_sensibly() {
        let policy = Policy {
            threshold: Some(Threshold {
                count: 0,
                window: SignedDuration::ZERO,
                by: Vec::new(),
                distinct: None,
            }),
            cooldown: secs(-5),
            merge: None,
            counts_toward: None,
            evidence: None,
        };
        let mut d = Detector::new(vec![policy], 0);
        assert!(matches!(d.observe(&ip(0, 0, "a")), Observation::Opened(_)));
        assert!(matches!(d.observe(&ip(0, 0, "a")), Observation::Joined(_)));
        assert!(matches!(d.observe(&ip(0, 1, "a")), Observation::Opened(_)));
        assert_eq!(d.observe(&ip(7, 0, "a")), Observation::Ignored);
        assert_eq!(d.keys_tracked(), 1);
    }

    #[test]
    fn flush_emits_all_open() {
        let mut d = Detector::new(vec![plain(60), counting(3, 60, 60)], 100);
        d.observe(&ip(0, 5, "a"));
        d.observe(&ip(0, 1, "b"));
        d.observe(&ip(1, 0, "pending"));
        d.flush();
        let closed = d.take_closed();
        let keys: Vec<&str> = closed.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["b", "a"]);
        assert_eq!(d.open_incidents().count(), 0);
        // The partial count survives for the next file.
        assert_eq!(d.keys_tracked(), 1);
        assert_eq!(d.pending_events(), 1);
        assert!(matches!(d.observe(&ip(0, 6, "a")), Observation::Opened(_)));
    }

    /// xorshift64*: enough randomness for a stream, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_stream_accounts_for_every_event() {
        let base = [plain(30), counting(4, 20, 30), distinct_users(3, 40, 30)];
        // No merging; two kinds sharing a class; all three in one class.
        let classes = [
            [None, None, None],
            [Some(7), Some(7), None],
            [None, Some(2), Some(2)],
            [Some(0), Some(0), Some(0)],
        ];
        for (config, merge) in classes.iter().enumerate() {
            let policies: Vec<Policy> = base
                .iter()
                .zip(merge)
                .map(|(p, m)| Policy {
                    merge: *m,
                    counts_toward: None,
                    evidence: None,
                    ..p.clone()
                })
                .collect();
            // Many addresses: mostly eviction; few: thresholds are reached.
            for addrs in [50, 5] {
                let merges = random_stream(&policies, config as u64, addrs);
                eprintln!("config {config}, {addrs} addresses: {merges} merged events");
                if merge.iter().flatten().count() < 2 {
                    assert_eq!(merges, 0);
                } else if addrs == 5 {
                    assert!(merges > 100);
                }
            }
        }
    }

    /// Runs seeded random streams through a detector, checking that every
    /// counted event ends in exactly one incident or is dropped; returns how
    /// many events joined an incident another rule opened.
    fn random_stream(policies: &[Policy], salt: u64, addrs: u64) -> u64 {
        let mut merges = 0u64;
        for seed in 1..=20u64 {
            let mut rng = Rng((seed + 100 * salt + addrs).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut d = Detector::new(policies.to_vec(), 10);
            d.track_changes();
            // The keys as a store holds them, kept by the changes alone.
            let mut stored: HashMap<(usize, String), SavedKey> = HashMap::new();
            let mut opener: HashMap<u64, usize> = HashMap::new();
            let mut counted = 0u64;
            let mut in_incidents = 0u64;
            let mut clock = 0i64;
            for _ in 0..5_000 {
                clock += rng.below(3) as i64;
                // Occasional skew backwards.
                let at = clock - rng.below(10) as i64 * (rng.below(8) == 0) as i64;
                let rule = rng.below(3) as usize;
                let addr = format!("10.0.0.{}", rng.below(addrs));
                let user = format!("u{}", rng.below(6));
                let e = if rng.below(5) == 0 {
                    ev(rule, at, &[("src_ip", &addr)])
                } else {
                    ev(rule, at, &[("src_ip", &addr), ("user", &user)])
                };
                match d.observe(&e) {
                    Observation::Ignored => {}
                    Observation::Counted => counted += 1,
                    Observation::Opened(id) => {
                        counted += 1;
                        assert!(opener.insert(id, rule).is_none(), "id reused");
                    }
                    Observation::Joined(id) => {
                        counted += 1;
                        if opener.get(&id) != Some(&rule) {
                            merges += 1;
                        }
                    }
                }
                assert!(d.keys_tracked() <= 10);
                if rng.below(50) == 0 {
                    assert_index_consistent(&d);
                }
                if rng.below(500) == 0 {
                    d.expire(ts(clock));
                }
                if rng.below(1000) == 0 {
                    d.flush();
                }
                if rng.below(100) == 0 {
                    persist(&mut stored, &mut d);
                }
                if rng.below(700) == 0 {
                    persist(&mut stored, &mut d);
                    let mut snap = d.header();
                    snap.keys = stored.values().cloned().collect();
                    assert_eq!(by_key(snap.keys.clone()), by_key(d.snapshot().keys));
                    let whole = Detector::restore(policies.to_vec(), 10, d.snapshot());
                    d = Detector::restore(policies.to_vec(), 10, snap);
                    d.track_changes();
                    assert_eq!(d.snapshot(), whole.snapshot(), "seed {seed}");
                    assert_eq!(d.changed(), 0);
                    assert_index_consistent(&d);
                }
                in_incidents += d.take_closed().iter().map(|i| i.events).sum::<u64>();
            }
            d.flush();
            in_incidents += d.take_closed().iter().map(|i| i.events).sum::<u64>();
            assert_eq!(
                in_incidents + d.dropped_events() + d.pending_events(),
                counted,
                "seed {seed}"
            );
            d.expire(Timestamp::MAX);
            assert_eq!(d.keys_tracked(), 0);
            assert_index_consistent(&d);
            assert_eq!(in_incidents + d.dropped_events(), counted, "seed {seed}");
            // The stream must exercise all three fates.
            assert!(d.keys_evicted() > 0 && in_incidents > 0 && d.dropped_events() > 0);
        }
        merges
    }

    /// Applies a detector's changes to a store of its keys, which, like the
    /// daemon's, leaves an open incident's sample and fields to its row.
    fn persist(stored: &mut HashMap<(usize, String), SavedKey>, d: &mut Detector) {
        for (rule, key, saved) in d.changes().keys {
            match saved {
                Some(mut k) => {
                    if let Some(inc) = k.state.open_incident_mut() {
                        inc.sample = String::new();
                        inc.fields = Vec::new();
                    }
                    stored.insert((rule, key), k)
                }
                None => stored.remove(&(rule, key)),
            };
        }
        d.persisted();
    }

    fn by_key(mut keys: Vec<SavedKey>) -> Vec<SavedKey> {
        keys.sort_by(|a, b| (a.rule, &a.key).cmp(&(b.rule, &b.key)));
        keys
    }

    #[test]
    fn snapshot_round_trips_and_resumes() {
        let policies = vec![plain(60), counting(3, 60, 60)];
        let mut d = Detector::new(policies.clone(), 3);
        d.observe(&ip(0, 0, "a"));
        d.observe(&ip(1, 1, "p"));
        d.observe(&ip(0, 2, "b"));
        d.observe(&ip(0, 3, "a"));
        let json = serde_json::to_string(&d.snapshot()).expect("serialise");
        let snap: Snapshot = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(snap, d.snapshot());
        let mut r = Detector::restore(policies, 3, snap);
        assert_eq!(r.keys_tracked(), 3);
        assert_eq!(r.incident(0, "a").map(|i| i.events), Some(2));
        // Pending count carried over: two more reach three.
        r.observe(&ip(1, 2, "p"));
        let Observation::Opened(id) = r.observe(&ip(1, 3, "p")) else {
            panic!("pending count was lost");
        };
        // Ids continue, and LRU order survived: "p" was least recent, but
        // was just touched, so "b" goes first.
        assert!(id > d.incident(0, "b").map_or(0, |i| i.id));
        r.observe(&ip(0, 4, "new"));
        assert_eq!(
            r.take_closed().first().map(|i| i.key.clone()),
            Some("b".into())
        );
    }

    const SSH_FAILED: usize = 0;
    const SSH_PAM: usize = 1;
    const SSH_INVALID_USER: usize = 2;

    /// failed-password and pam, 5 in 10 minutes, and invalid-user, 3
    /// distinct users in 10 minutes: all brute force (class 3).
    fn ssh_rules() -> Vec<Policy> {
        vec![
            merged(counting(5, 600, 600), 3),
            merged(counting(5, 600, 600), 3),
            merged(distinct_users(3, 600, 600), 3),
        ]
    }

    #[test]
    fn rules_of_one_class_make_one_incident_per_attacker() {
        let mut d = Detector::new(ssh_rules(), 100);
        // A pam line long before the attack slides out of pam's window.
        assert_eq!(
            d.observe(&ip(SSH_PAM, -700, "1.2.3.4")),
            Observation::Counted
        );
        let mut opened = None;
        for t in 0..20 {
            let rule = if t % 2 == 0 { SSH_FAILED } else { SSH_PAM };
            let got = d.observe(&ip(rule, t, "1.2.3.4"));
            match t {
                // failed-password reaches 5 at t=8.
                0..=7 => assert_eq!(got, Observation::Counted, "t={t}"),
                8 => {
                    let Observation::Opened(id) = got else {
                        panic!("failed-password should open at its fifth event");
                    };
                    opened = Some(id);
                    assert_eq!(d.incident(SSH_FAILED, "1.2.3.4").map(|i| i.events), Some(5));
                }
                // pam reaches 5 at t=9 and joins with its 5 pending events.
                9 => {
                    assert_eq!(got, Observation::Joined(opened.expect("opened")));
                    assert_eq!(d.incident(SSH_PAM, "1.2.3.4").map(|i| i.events), Some(10));
                }
                _ => assert_eq!(got, Observation::Joined(opened.expect("opened")), "t={t}"),
            }
        }
        assert_eq!(d.open_incidents().count(), 1);
        assert_eq!(d.pending_events(), 0);
        assert_eq!(d.dropped_events(), 1);
        assert_eq!(d.keys_tracked(), 2);
        d.flush();
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        let inc = &closed[0];
        assert_eq!(Some(inc.id), opened);
        assert_eq!(inc.events, 20);
        assert_eq!((inc.first_seen, inc.last_seen), (ts(0), ts(19)));
        // Attributed to the rule that reached its threshold first.
        assert_eq!((inc.rule, inc.sample.as_str()), (SSH_FAILED, "line at 8"));
        assert_eq!(d.keys_tracked(), 0);
    }

    #[test]
    fn the_rule_first_at_its_threshold_owns_the_incident() {
        let mut d = Detector::new(ssh_rules(), 100);
        // pam is more talkative early on and gets there first.
        for t in 0..4 {
            d.observe(&ip(SSH_FAILED, t, "a"));
        }
        for t in 10..15 {
            d.observe(&ip(SSH_PAM, t, "a"));
        }
        let Some(inc) = d.incident(SSH_PAM, "a") else {
            panic!("pam reached its threshold");
        };
        let id = inc.id;
        assert_eq!((inc.rule, inc.events), (SSH_PAM, 5));
        assert!(d.incident(SSH_FAILED, "a").is_none());
        assert_eq!(d.observe(&ip(SSH_FAILED, 20, "a")), Observation::Joined(id));
        let inc = d.incident(SSH_FAILED, "a").expect("linked");
        assert_eq!((inc.id, inc.rule, inc.events), (id, SSH_PAM, 10));
        assert_eq!((inc.first_seen, inc.last_seen), (ts(0), ts(20)));
    }

    #[test]
    fn distinct_user_rule_joins_the_open_incident() {
        let mut d = Detector::new(ssh_rules(), 100);
        for t in 0..5 {
            d.observe(&ip(SSH_FAILED, t, "9.9.9.9"));
        }
        let id = d.incident(SSH_FAILED, "9.9.9.9").expect("open").id;
        let user = |at, user| {
            ev(
                SSH_INVALID_USER,
                at,
                &[("src_ip", "9.9.9.9"), ("user", user)],
            )
        };
        assert_eq!(d.observe(&user(5, "admin")), Observation::Counted);
        assert_eq!(d.observe(&user(6, "admin")), Observation::Counted);
        // Lacking the distinct field before the threshold: no evidence.
        assert_eq!(
            d.observe(&ip(SSH_INVALID_USER, 7, "9.9.9.9")),
            Observation::Ignored
        );
        assert_eq!(d.observe(&user(8, "oracle")), Observation::Counted);
        assert_eq!(d.observe(&user(9, "test")), Observation::Joined(id));
        assert_eq!(d.incident(SSH_FAILED, "9.9.9.9").map(|i| i.events), Some(9));
        // Linked now: any later event of the rule belongs to the attack.
        assert_eq!(
            d.observe(&ip(SSH_INVALID_USER, 10, "9.9.9.9")),
            Observation::Joined(id)
        );
        assert_eq!(d.observe(&user(11, "admin")), Observation::Joined(id));
        assert_eq!(
            d.observe(&ip(SSH_FAILED, 12, "9.9.9.9")),
            Observation::Joined(id)
        );
        let inc = d.incident(SSH_INVALID_USER, "9.9.9.9").expect("linked");
        assert_eq!((inc.id, inc.rule, inc.events), (id, SSH_FAILED, 12));
        assert_eq!(d.open_incidents().count(), 1);
        assert_eq!((d.pending_events(), d.dropped_events()), (0, 0));
    }

    #[test]
    fn different_keys_classes_or_no_class_never_merge() {
        let policies = vec![
            merged(plain(60), 1),
            merged(plain(60), 1),
            plain(60),
            plain(60),
            merged(plain(60), 2),
        ];
        let mut d = Detector::new(policies, 100);
        let Observation::Opened(a) = d.observe(&ip(0, 0, "a")) else {
            panic!("first event of a plain rule opens");
        };
        // Same class, another key.
        assert!(matches!(d.observe(&ip(1, 1, "b")), Observation::Opened(_)));
        // No class, twice.
        assert!(matches!(d.observe(&ip(2, 2, "a")), Observation::Opened(_)));
        assert!(matches!(d.observe(&ip(3, 3, "a")), Observation::Opened(_)));
        // Another class.
        assert!(matches!(d.observe(&ip(4, 4, "a")), Observation::Opened(_)));
        // Same class, same key: merges.
        assert_eq!(d.observe(&ip(1, 5, "a")), Observation::Joined(a));
        let mut open: Vec<(usize, &str, u64)> = d
            .open_incidents()
            .map(|i| (i.rule, i.key.as_str(), i.events))
            .collect();
        open.sort();
        assert_eq!(
            open,
            vec![
                (0, "a", 2),
                (1, "b", 1),
                (2, "a", 1),
                (3, "a", 1),
                (4, "a", 1)
            ]
        );
    }

    #[test]
    fn an_incident_not_live_for_the_event_is_not_joined() {
        let mut d = Detector::new(
            vec![merged(plain(10), 0), merged(counting(2, 600, 10), 0)],
            100,
        );
        let Observation::Opened(a) = d.observe(&ip(0, 0, "k")) else {
            panic!("opens");
        };
        d.observe(&ip(1, 5, "k"));
        // Reaches its threshold at 11 > 0 + 10: the first incident is over.
        let Observation::Opened(b) = d.observe(&ip(1, 11, "k")) else {
            panic!("a stale incident must not be joined");
        };
        assert_ne!(a, b);
        let closed = d.take_closed();
        assert_eq!((closed.len(), closed[0].id, closed[0].events), (1, a, 1));
        assert_eq!(
            d.incident(1, "k").map(|i| (i.events, i.first_seen)),
            Some((2, ts(5)))
        );
        // And rule 0 now joins rule 1's incident.
        assert_eq!(d.observe(&ip(0, 12, "k")), Observation::Joined(b));
        assert_index_consistent(&d);
    }

    #[test]
    fn after_the_merged_incident_closes_a_new_burst_opens_anew() {
        let policies = vec![
            merged(counting(3, 60, 60), 0),
            merged(counting(3, 60, 60), 0),
        ];
        let mut d = Detector::new(policies.clone(), 100);
        for t in 0..3 {
            d.observe(&ip(0, t, "a"));
        }
        let first = d.incident(0, "a").expect("open").id;
        for t in 3..5 {
            assert_eq!(d.observe(&ip(1, t, "a")), Observation::Counted);
        }
        assert_eq!(d.observe(&ip(1, 5, "a")), Observation::Joined(first));
        // Quiet, then the linked rule sees a new burst: it counts afresh,
        // closing the old incident, and opens the new one itself.
        assert_eq!(d.observe(&ip(1, 500, "a")), Observation::Counted);
        let closed = d.take_closed();
        assert_eq!(
            (closed.len(), closed[0].id, closed[0].events),
            (1, first, 6)
        );
        assert_eq!(d.observe(&ip(1, 501, "a")), Observation::Counted);
        let Observation::Opened(second) = d.observe(&ip(1, 502, "a")) else {
            panic!("the linked rule opens the new incident");
        };
        assert!(second > first);
        // The former owner now joins it at its own threshold.
        assert_eq!(d.observe(&ip(0, 503, "a")), Observation::Counted);
        assert_eq!(d.observe(&ip(0, 504, "a")), Observation::Counted);
        assert_eq!(d.observe(&ip(0, 505, "a")), Observation::Joined(second));
        let inc = d.incident(0, "a").expect("linked");
        assert_eq!((inc.id, inc.rule, inc.events), (second, 1, 6));
        assert_index_consistent(&d);

        // Closed by expiry instead: linked slots go with it.
        let mut d = Detector::new(policies, 100);
        for t in 0..3 {
            d.observe(&ip(0, t, "a"));
            d.observe(&ip(1, t, "a"));
        }
        assert_eq!(d.keys_tracked(), 2);
        assert_eq!(d.open_incidents().count(), 1);
        d.expire(ts(62));
        assert!(d.take_closed().is_empty());
        d.expire(ts(63));
        let closed = d.take_closed();
        assert_eq!((closed.len(), closed[0].events), (1, 6));
        assert_eq!(d.keys_tracked(), 0);
        assert!(d.lru.is_empty());
        assert_index_consistent(&d);
        // Then the linked rule opens a new one.
        for t in 100..102 {
            d.observe(&ip(1, t, "a"));
        }
        assert!(matches!(
            d.observe(&ip(1, 102, "a")),
            Observation::Opened(_)
        ));
        assert_eq!(d.incident(1, "a").map(|i| (i.rule, i.events)), Some((1, 3)));
    }

    #[test]
    fn a_linked_key_counts_afresh_after_the_owner_reopens() {
        let mut d = Detector::new(
            vec![merged(plain(10), 0), merged(counting(2, 600, 10), 0)],
            100,
        );
        d.observe(&ip(0, 0, "k"));
        d.observe(&ip(1, 1, "k"));
        assert!(matches!(d.observe(&ip(1, 2, "k")), Observation::Joined(_)));
        // The owner's own event after the cooldown closes and reopens.
        let Observation::Opened(reopened) = d.observe(&ip(0, 100, "k")) else {
            panic!("reopens");
        };
        assert_eq!(d.take_closed().len(), 1);
        // The link was to the closed incident: count afresh, then join.
        assert_eq!(d.observe(&ip(1, 101, "k")), Observation::Counted);
        assert_eq!(d.observe(&ip(1, 102, "k")), Observation::Joined(reopened));
        assert_eq!(d.incident(0, "k").map(|i| i.events), Some(3));
    }

    #[test]
    fn evicting_the_owner_of_a_merged_incident_loses_nothing() {
        let policies = vec![
            merged(counting(2, 60, 3600), 0),
            merged(counting(2, 60, 3600), 0),
            plain(3600),
        ];
        let mut d = Detector::new(policies, 3);
        let mut counted = 0;
        let mut feed = |d: &mut Detector, rule, at, key: &str| {
            let got = d.observe(&ip(rule, at, key));
            if got != Observation::Ignored {
                counted += 1;
            }
            assert!(d.keys_tracked() <= 3);
            got
        };
        feed(&mut d, 0, 0, "v");
        let Observation::Opened(id) = feed(&mut d, 0, 1, "v") else {
            panic!("opens");
        };
        feed(&mut d, 1, 2, "v");
        assert_eq!(feed(&mut d, 1, 3, "v"), Observation::Joined(id));
        // A linked join keeps the owner active too; the linked key is the
        // most recent, so the owner goes first.
        feed(&mut d, 2, 4, "x");
        feed(&mut d, 2, 5, "y");
        assert_eq!(d.keys_evicted(), 1);
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].id, closed[0].events), (id, 4));
        assert_eq!(d.keys_tracked(), 3);
        // The linked key falls back to counting for its own rule.
        assert_eq!(feed(&mut d, 1, 6, "v"), Observation::Counted);
        let Observation::Opened(again) = feed(&mut d, 1, 7, "v") else {
            panic!("the formerly linked rule opens");
        };
        assert_ne!(again, id);
        assert_index_consistent(&d);
        // Now the owner 1 is recent; link rule 0 to it, then evict the link.
        feed(&mut d, 0, 8, "v"); // evicts "x"
        assert_eq!(feed(&mut d, 0, 9, "v"), Observation::Joined(again));
        feed(&mut d, 1, 10, "v"); // owner most recent, link second
        feed(&mut d, 2, 11, "z"); // evicts "y"
        feed(&mut d, 2, 12, "w"); // evicts the link (rule 0, "v")
        assert!(d.take_closed().iter().all(|i| i.id != again));
        assert!(!d.keys[0].contains_key("v"));
        assert_eq!(d.incident(1, "v").map(|i| i.events), Some(5));
        assert_index_consistent(&d);
        d.flush();
        let in_incidents: u64 =
            closed[0].events + d.take_closed().iter().map(|i| i.events).sum::<u64>() + 2; // "x" and "y", evicted incidents taken above
        assert_eq!(
            in_incidents + d.dropped_events() + d.pending_events(),
            counted
        );
    }

    #[test]
    fn snapshot_restore_keeps_links() {
        let policies = vec![
            merged(counting(2, 60, 60), 0),
            merged(counting(2, 60, 60), 0),
        ];
        let mut d = Detector::new(policies.clone(), 10);
        d.observe(&ip(0, 0, "a"));
        d.observe(&ip(0, 1, "a"));
        d.observe(&ip(1, 2, "a"));
        let Observation::Joined(id) = d.observe(&ip(1, 3, "a")) else {
            panic!("joins");
        };
        d.observe(&ip(1, 4, "b"));
        let json = serde_json::to_string(&d.snapshot()).expect("serialise");
        let snap: Snapshot = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(snap, d.snapshot());

        let mut r = Detector::restore(policies.clone(), 10, snap.clone());
        assert_index_consistent(&r);
        assert_eq!(r.keys_tracked(), 3);
        assert_eq!(r.incident(1, "a").map(|i| i.id), Some(id));
        // The link continues...
        assert_eq!(r.observe(&ip(1, 5, "a")), Observation::Joined(id));
        // ...the class index too: "b" joins the incident of rule 0.
        assert_eq!(r.observe(&ip(0, 6, "b")), Observation::Counted);
        let Observation::Opened(b) = r.observe(&ip(0, 7, "b")) else {
            panic!("rule 0 opens for b");
        };
        assert_eq!(r.observe(&ip(1, 8, "b")), Observation::Joined(b));
        // Rule 1's pending event at 4 and its event at 8 join.
        assert_eq!(r.incident(1, "b").map(|i| i.events), Some(4));
        // After the cooldown the linked rule counts afresh.
        assert_eq!(r.observe(&ip(1, 200, "a")), Observation::Counted);
        assert!(matches!(
            r.observe(&ip(1, 201, "a")),
            Observation::Opened(_)
        ));
        r.flush();
        let events: u64 = r.take_closed().iter().map(|i| i.events).sum();
        assert_eq!(events, 5 + 4 + 2);

        // Rules no longer merged: the link is dropped (it held no events),
        // the incident stays.
        let unmerged: Vec<Policy> = policies
            .iter()
            .map(|p| Policy {
                merge: None,
                counts_toward: None,
                evidence: None,
                ..p.clone()
            })
            .collect();
        let mut r = Detector::restore(unmerged, 10, snap);
        assert_eq!(r.keys_tracked(), 2);
        assert!(r.incident(1, "a").is_none());
        assert_eq!(r.incident(0, "a").map(|i| i.events), Some(4));
        assert_eq!(r.observe(&ip(1, 5, "a")), Observation::Counted);
    }

    #[test]
    fn restore_of_two_open_incidents_of_one_class_indexes_one() {
        // A snapshot taken before the rules were merged.
        let policies = vec![plain(60), plain(60), plain(60)];
        let mut d = Detector::new(policies.clone(), 10);
        d.observe(&ip(0, 0, "a"));
        d.observe(&ip(1, 1, "a"));
        let newer = d.incident(1, "a").expect("open").id;
        let merged_now: Vec<Policy> = policies.into_iter().map(|p| merged(p, 4)).collect();
        let mut r = Detector::restore(merged_now, 10, d.snapshot());
        assert_index_consistent_allowing_duplicates(&r);
        // The most recently active is the one a third rule joins.
        assert_eq!(r.observe(&ip(2, 2, "a")), Observation::Joined(newer));
        // The other runs its course alone.
        assert!(matches!(r.observe(&ip(0, 3, "a")), Observation::Joined(_)));
        r.flush();
        let mut events: Vec<u64> = r.take_closed().iter().map(|i| i.events).collect();
        events.sort();
        assert_eq!(events, vec![2, 2]);
    }

    fn assert_index_consistent_allowing_duplicates(d: &Detector) {
        for (c, owners) in d.owners.iter().enumerate() {
            for (key, &rule) in owners {
                assert_eq!(d.class_of[rule], Some(c));
                assert!(matches!(
                    d.keys[rule].get(key).map(|s| &s.state.phase),
                    Some(Phase::Open(_))
                ));
            }
        }
    }

    /// Rule 0 a group (5 in 10 minutes); rules 1 and 2 its members with
    /// evidence kinds 0 and 1 (sshd's own line, its PAM line); rule 3 a
    /// member without a kind.
    fn group_rules() -> Vec<Policy> {
        let member = |evidence| Policy {
            counts_toward: Some(0),
            evidence,
            ..plain(0)
        };
        vec![
            counting(5, 600, 1800),
            member(Some(0)),
            member(Some(1)),
            member(None),
        ]
    }

    fn attempt(rule: usize, at: i64, addr: &str, pid: &str) -> Event<'static> {
        ev(rule, at, &[("src_ip", addr), ("pid", pid)])
    }

    #[test]
    fn every_kind_of_a_group_counts_toward_one_threshold() {
        let mut d = Detector::new(group_rules(), 100);
        // Five failures of three kinds from five connections: no rule of
        // its own would reach five, the group does.
        let kinds = [1, 2, 3, 1, 3];
        let mut seen = Vec::new();
        for (i, rule) in kinds.into_iter().enumerate() {
            seen.push(d.observe(&attempt(rule, i as i64, "203.0.113.5", &format!("{i}"))));
        }
        assert_eq!(&seen[..4], [Observation::Counted; 4]);
        let Observation::Opened(id) = seen[4] else {
            panic!("the fifth attempt opens: {seen:?}");
        };
        let inc = d.incident(0, "203.0.113.5").expect("the group's incident");
        assert_eq!((inc.id, inc.rule, inc.events), (id, 0, 5));
        assert_eq!(d.incident(1, "203.0.113.5"), None, "members hold nothing");
        // A later member event joins the group's incident.
        assert_eq!(
            d.observe(&attempt(2, 10, "203.0.113.5", "9")),
            Observation::Joined(id)
        );
        assert_eq!(d.incident(0, "203.0.113.5").map(|i| i.events), Some(6));
    }

    #[test]
    fn one_attempt_logged_twice_by_one_process_counts_once() {
        let mut d = Detector::new(group_rules(), 100);
        // sshd with PAM: for each try a PAM line and sshd's own line, one
        // process; four tries are four attempts, not eight.
        for t in 0..4 {
            assert_eq!(
                d.observe(&attempt(2, t * 2, "198.51.100.7", "77")),
                Observation::Counted
            );
            assert_eq!(
                d.observe(&attempt(1, t * 2 + 1, "198.51.100.7", "77")),
                Observation::Counted
            );
        }
        assert_eq!(d.pending_events(), 4);
        // The fifth try's first line opens; its echo joins without counting.
        let Observation::Opened(id) = d.observe(&attempt(1, 9, "198.51.100.7", "77")) else {
            panic!("fifth attempt opens");
        };
        assert_eq!(
            d.observe(&attempt(2, 9, "198.51.100.7", "77")),
            Observation::Joined(id)
        );
        assert_eq!(d.incident(0, "198.51.100.7").map(|i| i.events), Some(5));
        // Another process is other attempts, even with the same kinds.
        assert_eq!(
            d.observe(&attempt(1, 10, "198.51.100.7", "78")),
            Observation::Joined(id)
        );
        assert_eq!(d.incident(0, "198.51.100.7").map(|i| i.events), Some(6));
        // Without a pid the source as a whole is the scope: vsftpd's own
        // line and its PAM line (other processes) are still one attempt.
        let mut d = Detector::new(group_rules(), 100);
        for t in 0..4 {
            assert_eq!(d.observe(&ip(1, t, "192.0.2.9")), Observation::Counted);
            assert_eq!(d.observe(&ip(2, t, "192.0.2.9")), Observation::Counted);
        }
        assert!(matches!(
            d.observe(&ip(1, 5, "192.0.2.9")),
            Observation::Opened(_)
        ));
        // A member without an evidence kind counts every line.
        let mut d = Detector::new(group_rules(), 100);
        for t in 0..4 {
            d.observe(&ip(3, t, "192.0.2.9"));
        }
        assert!(matches!(
            d.observe(&ip(3, 5, "192.0.2.9")),
            Observation::Opened(_)
        ));
    }

    #[test]
    fn a_line_reporting_several_attempts_counts_them_all() {
        let mut d = Detector::new(group_rules(), 100);
        let repeated = |at, n: &str| ev(3, at, &[("src_ip", "203.0.113.9"), ("attempts", n)]);
        assert_eq!(d.observe(&repeated(0, "3")), Observation::Counted);
        assert_eq!(d.pending_events(), 3);
        let Observation::Opened(_) = d.observe(&repeated(1, "40")) else {
            panic!("3 + 40 attempts reach five");
        };
        assert_eq!(d.incident(0, "203.0.113.9").map(|i| i.events), Some(43));
        // Forged or absurd numbers: one event is worth at most 1000.
        let mut d = Detector::new(group_rules(), 100);
        d.observe(&ev(
            3,
            0,
            &[("src_ip", "192.0.2.1"), ("attempts", "99999999999")],
        ));
        assert_eq!(
            d.incident(0, "192.0.2.1").map(|i| i.events),
            Some(MAX_ATTEMPTS_PER_LINE)
        );
        for junk in ["", "x", "-3", "0"] {
            let mut d = Detector::new(group_rules(), 100);
            d.observe(&ev(3, 0, &[("src_ip", "192.0.2.1"), ("attempts", junk)]));
            assert_eq!(d.pending_events(), 1, "{junk:?} counts as one");
        }
        // A summary line after the per-try lines of one process (sudo's
        // "3 incorrect password attempts" after three PAM failures) adds
        // nothing.
        let mut d = Detector::new(group_rules(), 100);
        for t in 0..3 {
            d.observe(&attempt(2, t, "192.0.2.2", "5"));
        }
        d.observe(&ev(
            1,
            4,
            &[("src_ip", "192.0.2.2"), ("pid", "5"), ("attempts", "3")],
        ));
        assert_eq!(d.pending_events(), 3);
    }

    #[test]
    fn host_names_key_events_that_name_no_address_and_keys_may_join_fields() {
        let mut d = Detector::new(vec![counting(2, 60, 60)], 100);
        d.observe(&ev(0, 0, &[("src_host", "bad.example")]));
        assert!(matches!(
            d.observe(&ev(0, 1, &[("src_host", "bad.example")])),
            Observation::Opened(_)
        ));
        assert!(d.incident(0, "bad.example").is_some());
        let mut by_two = counting(1, 60, 60);
        if let Some(t) = &mut by_two.threshold {
            t.by = vec!["user".into(), "host".into()];
        }
        let mut d = Detector::new(vec![by_two], 100);
        d.observe(&ev(0, 0, &[("user", "bob"), ("host", "web01")]));
        d.observe(&ev(0, 1, &[("user", "bob"), ("host", "web02")]));
        assert!(d.incident(0, "bob web01").is_some());
        assert!(d.incident(0, "bob web02").is_some());
    }

    #[test]
    fn process_evidence_survives_a_snapshot() {
        let mut d = Detector::new(group_rules(), 100);
        d.observe(&attempt(2, 0, "203.0.113.5", "1"));
        let snap = d.snapshot();
        let json = serde_json::to_string(&snap).expect("serialises");
        let back: Snapshot = serde_json::from_str(&json).expect("reads back");
        let mut r = Detector::restore(group_rules(), 100, back);
        // The echo of the restored attempt still counts once.
        assert_eq!(
            r.observe(&attempt(1, 1, "203.0.113.5", "1")),
            Observation::Counted
        );
        assert_eq!(r.pending_events(), 1);
        // A snapshot from before process evidence reads.
        let mut old: serde_json::Value = serde_json::from_str(&json).expect("json");
        let state = &mut old["keys"][0]["state"];
        assert!(state.get("processes").is_some(), "{state}");
        state.as_object_mut().map(|o| o.remove("processes"));
        let old: Snapshot = serde_json::from_value(old).expect("old snapshot reads");
        assert_eq!(
            Detector::restore(group_rules(), 100, old).pending_events(),
            1
        );
    }

    #[test]
    fn a_line_matched_by_two_merged_rules_adds_its_attempts_once() {
        // A fast and a slow brute-force rule of one class, both matching
        // every line.
        let policies = vec![
            merged(counting(2, 600, 1800), 1),
            merged(counting(3, 21600, 1800), 1),
        ];
        let mut d = Detector::new(policies, 100);
        for t in 0..6 {
            d.begin_line();
            d.observe(&ip(0, t, "203.0.113.5"));
            d.observe(&ip(1, t, "203.0.113.5"));
        }
        d.flush();
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        // Six lines, six attempts: the slow rule links at its threshold on
        // a line the fast rule's incident already took.
        assert_eq!(closed[0].events, 6, "{closed:?}");
        // Without line marks each event stands alone (callers that feed
        // events, not lines).
        let policies = vec![
            merged(counting(2, 600, 1800), 1),
            merged(counting(3, 21600, 1800), 1),
        ];
        let mut d = Detector::new(policies, 100);
        for t in 0..6 {
            d.observe(&ip(0, t, "203.0.113.5"));
            d.observe(&ip(1, t, "203.0.113.5"));
        }
        d.flush();
        assert_eq!(d.take_closed()[0].events, 12);
    }

    #[test]
    fn merge_defaults_to_none_when_absent() {
        let json = r#"{"threshold":null,"cooldown":"PT1M"}"#;
        let p: Policy = serde_json::from_str(json).expect("old policy reads");
        assert_eq!(p.merge, None);
    }
}
