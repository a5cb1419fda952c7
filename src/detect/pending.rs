//! A key's count below its rule's threshold, in event time, tolerant of
//! events that arrive out of order; and the phases a key goes through.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{queue_room_for_one, room_for_one, sub_sat, Incident, Policy, Threshold};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Phase {
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
pub(super) enum Pending {
    /// Event times in the window, sorted, so pruning is from the front even
    /// when events arrive out of order. At most `count - 1` entries between
    /// events: reaching `count` opens the incident.
    Events(VecDeque<Timestamp>),
    /// Distinct values in the window, at most `count - 1` between events.
    /// A linear list: thresholds are small, and it beats hashing there.
    Distinct(Vec<DistinctValue>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DistinctValue {
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
    pub(super) fn for_threshold(t: &Threshold) -> Self {
        if t.distinct.is_some() {
            Pending::Distinct(Vec::new())
        } else {
            Pending::Events(VecDeque::new())
        }
    }

    pub(super) fn events(&self) -> u64 {
        match self {
            Pending::Events(times) => times.len() as u64,
            Pending::Distinct(values) => values.iter().map(|v| v.events).sum(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Pending::Events(times) => times.is_empty(),
            Pending::Distinct(values) => values.is_empty(),
        }
    }

    pub(super) fn newest(&self) -> Option<Timestamp> {
        match self {
            Pending::Events(times) => times.back().copied(),
            Pending::Distinct(values) => values.iter().map(|v| v.last).max(),
        }
    }

    /// Forgets everything at or before `cutoff`; returns how many events went.
    pub(super) fn prune(&mut self, cutoff: Timestamp) -> u64 {
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
    pub(super) fn add(
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
                    queue_room_for_one(times);
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
                    room_for_one(values);
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
pub(super) struct Tally {
    pub(super) lateness: SignedDuration,
    pub(super) dropped: u64,
    pub(super) late: u64,
}

impl Tally {
    pub(super) fn new(lateness: SignedDuration) -> Self {
        Tally {
            lateness,
            dropped: 0,
            late: 0,
        }
    }
}

/// An empty count for a rule, as after a cooldown.
pub(super) fn fresh_pending(policy: &Policy) -> Pending {
    match &policy.threshold {
        Some(t) => Pending::for_threshold(t),
        None => Pending::Events(VecDeque::new()),
    }
}
