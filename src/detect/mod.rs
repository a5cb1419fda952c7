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
//! recently active key is evicted, its open incident closed and emitted;
//! keys that have shown one event go before any that has shown more.

//!
//! The rooms: [`policy`] is what the detector knows of a rule and an event's
//! key under it; [`pending`] counts a key's events below its threshold;
//! [`evidence`] counts an attempt once however many lines log it; [`rate`]
//! counts requests of request-rate rules; [`lifetime`] is how keys leave
//! (expiry in event time, eviction); [`persist`] is the state a store keeps.

mod evidence;
mod lifetime;
mod pending;
mod persist;
mod policy;
mod rate;
mod recency;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::event::{Event, Fields};
use evidence::{new_attempts, ProcessEvidence};
use pending::{fresh_pending, Pending, Phase, Tally};
pub use persist::{Changes, SavedKey, Snapshot};
use policy::{attempts_of, key_of, normalise};
pub use policy::{Policy, Threshold, ATTEMPTS_FIELD, PID_FIELD};
pub use rate::RateCount;
use recency::{Recency, Segment};

/// How far behind its key's newest event an event may come and still count
/// (see [`Detector::set_lateness`]), unless configured otherwise: a backlog
/// read one input after another is as far out of order as one read of an
/// input spans, and a clock that drifted minutes is common.
pub const DEFAULT_LATENESS: SignedDuration = SignedDuration::from_secs(30 * 60);

/// One attack by one key, as the store records it.
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
    /// The key has shown more than one event (or an incident) since it was
    /// tracked, and has not been moved back to probation since (see
    /// [`recency`]). Kept, not recomputed, so that a key whose count a
    /// window or a closed incident later took down keeps its place in
    /// eviction order, and a restored detector evicts as the one that saved
    /// it would have.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    repeated: bool,
}

impl KeyState {
    /// Which eviction list the key belongs in: a key that has counted one
    /// event goes before any that has shown more (see [`recency`]).
    fn segment(&self) -> Segment {
        match &self.phase {
            _ if self.repeated => Segment::Repeated,
            Phase::Counting(p) if p.events() <= 1 => Segment::Once,
            Phase::Counting(_) | Phase::Open(_) | Phase::Linked { .. } => Segment::Repeated,
        }
    }

    /// The list the key was last put in: how a restored detector places
    /// it. (Snapshots from before the lists had no flag: every key is
    /// restored on probation, as one list evicted them.)
    fn saved_segment(&self) -> Segment {
        if self.repeated {
            Segment::Repeated
        } else {
            Segment::Once
        }
    }

    /// [`KeyState::segment`], made to stick (see [`KeyState::repeated`]).
    fn settle_segment(&mut self) -> Segment {
        let segment = self.segment();
        self.repeated = segment == Segment::Repeated;
        segment
    }

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

/// A tracked key. The key text is shared with its node in the recency list.
#[derive(Debug)]
struct Slot {
    key: Arc<str>,
    /// When the key was last active, in the detector's own count of
    /// touches: the order a snapshot keeps.
    generation: u64,
    /// Its node in [`Detector::recency`].
    node: u32,
    state: KeyState,
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
    /// Most keys in the protected list: the rest of the table is left to
    /// keys on probation (see [`recency`]).
    protected_cap: usize,
    /// One map per rule, so lookups go by `&str` without building a key.
    keys: Vec<KeyMap<Slot>>,
    tracked: usize,
    /// Every tracked key, least recently active first: who is evicted.
    recency: Recency,
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
    /// New keys that had been evicted a short while before (see
    /// [`Detector::keys_returned`]).
    keys_returned: u64,
    /// Tags of recently evicted keys, to tell a key that returns (see
    /// `remember_evicted`). Not stored: after a restart the count starts
    /// from what is evicted then.
    evicted_tags: Vec<u32>,
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
        // The recency list numbers its nodes in a u32.
        let max_keys = max_keys.clamp(1, u32::MAX as usize - 1);
        Detector {
            policies,
            max_keys,
            protected_cap: protected_cap(max_keys),
            keys,
            tracked: 0,
            recency: Recency::default(),
            generation: 0,
            class_of,
            owners,
            closed: Vec::new(),
            watermark: None,
            next_id: 1,
            keys_evicted: 0,
            keys_returned: 0,
            evicted_tags: Vec::new(),
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
        let seen = self.observe_key(ev);
        self.demote_over_cap();
        seen
    }

    fn observe_key(&mut self, ev: &Event) -> Observation {
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
                    mark_active(
                        &mut self.recency,
                        self.tracking.then_some(&mut self.dirty_keys),
                        rule,
                        slot,
                    );
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
                if let Some(gone) = self.keys[rule].remove(&*key) {
                    self.recency.remove(gone.node);
                    self.tracked -= 1;
                }
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
        mark_active(
            &mut self.recency,
            self.tracking.then_some(&mut self.dirty_keys),
            rule,
            slot,
        );
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
        // Before making room: the eviction of another key for it may land
        // on its own slot of the evicted tags.
        self.note_return(rule, key);
        while self.tracked >= self.max_keys {
            if !self.evict_one() {
                break;
            }
        }
        self.generation += 1;
        let generation = self.generation;
        let k: Arc<str> = Arc::from(key);
        let mut state = KeyState {
            phase: Phase::Counting(pending),
            processes,
            repeated: false,
        };
        let node = self
            .recency
            .push_back(rule, Arc::clone(&k), state.settle_segment());
        if self.tracking {
            self.dirty_keys.insert((rule, Arc::clone(&k)));
        }
        self.keys[rule].insert(
            Arc::clone(&k),
            Slot {
                key: k,
                generation,
                node,
                state,
            },
        );
        self.tracked += 1;
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
        let mut joined = None;
        if let Some(class) = self.class_of[rule] {
            // The rule's own open slot is not counting: an owner is another.
            if let Some(owner) = self.owners[class].get(key).copied().filter(|&o| o != rule) {
                let lesser = self.policies.get(owner).map_or(0, |p| p.rank);
                if self.policies[rule].rank > lesser {
                    // A more severe finding never hides inside a lesser
                    // incident (filed under its severity): that incident
                    // ends here, and this rule opens its own, which later
                    // findings of the class join.
                    self.close_open(owner, key);
                } else {
                    let id = self.join_open(owner, None, key, ev.time, first, last, events);
                    if id.is_none() && self.owners[class].get(key) == Some(&owner) {
                        // Not a live open incident: a stale entry, drop it.
                        self.owners[class].remove(key);
                    }
                    joined = id.map(|id| (owner, id));
                }
            }
        }
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
        if let (Observation::Opened(_), Some(class)) = (result, self.class_of[rule]) {
            self.owners[class].insert(Arc::clone(&slot.key), rule);
        }
        mark_active(
            &mut self.recency,
            self.tracking.then_some(&mut self.dirty_keys),
            rule,
            slot,
        );
        result
    }

    /// Ends the incident open in the slot (`owner`, `key`), as a cooldown
    /// would: the slot counts afresh.
    fn close_open(&mut self, owner: usize, key: &str) {
        let fresh = Phase::Counting(fresh_pending(&self.policies[owner]));
        let Some(slot) = self.keys[owner].get_mut(key) else {
            return;
        };
        if let Phase::Open(old) = std::mem::replace(&mut slot.state.phase, fresh) {
            unindex(&mut self.owners, self.class_of[owner], key, owner);
            self.closed.push(*old);
        }
        if self.tracking {
            self.dirty_keys.insert((owner, Arc::clone(&slot.key)));
        }
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
            mark_active(
                &mut self.recency,
                self.tracking.then_some(&mut self.dirty_keys),
                owner,
                slot,
            );
            return Some(id);
        }
        if let Some(slot) = self.keys[owner].remove(key) {
            self.recency.remove(slot.node);
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
            mark_active(
                &mut self.recency,
                self.tracking.then_some(&mut self.dirty_keys),
                rule,
                slot,
            );
        }
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
    /// Closed incidents waiting for [`Detector::take_closed`].
    pub fn closed_count(&self) -> usize {
        self.closed.len()
    }

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

    /// Keys tracked again soon after their own eviction (most of those
    /// returning within `max_keys` evictions, fewer as more evictions pass):
    /// an attacker forgotten between two of its tries, because more keys were
    /// active at once than the table holds. Counted whatever the key held;
    /// a flood of addresses each seen once (evicted first) never counts.
    pub fn keys_returned(&self) -> u64 {
        self.keys_returned
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

/// Makes room for one more element, doubling from one: most keys of a
/// flood hold one event, one process and one evidence kind, and the
/// standard growth (to four at the first push) made each such key several
/// hundred bytes larger.
fn room_for_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len().max(1));
    }
}

/// [`room_for_one`] for a queue.
fn queue_room_for_one<T>(v: &mut VecDeque<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len().max(1));
    }
}

/// The protected list's cap for a table of `max_keys`: a fifth of the table
/// (at least one key) stays for keys on probation, so that a new key has
/// room for its next events while long-window keys fill the rest.
fn protected_cap(max_keys: usize) -> usize {
    max_keys.saturating_sub((max_keys / 5).max(1))
}

/// The key of `slot` (of `rule`) was just active: it goes last in eviction
/// order, and is among the changes to store when the detector keeps them.
/// (A function of the fields it needs, so that a slot borrowed from the key
/// maps can be passed.)
fn mark_active(
    recency: &mut Recency,
    dirty_keys: Option<&mut hashbrown::HashSet<(usize, Arc<str>)>>,
    rule: usize,
    slot: &mut Slot,
) {
    if let Some(dirty) = dirty_keys {
        dirty.insert((rule, Arc::clone(&slot.key)));
    }
    recency.move_to_back(slot.node, slot.state.settle_segment());
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
mod tests;
