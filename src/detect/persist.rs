//! The detector's state as a store keeps it: a whole snapshot, or the keys
//! changed since the last commit, and a detector rebuilt from them.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::pending::{Pending, Phase};
use super::rate::{address_bits, client_text, RateCount};
use super::{Detector, Incident, KeyState, Policy, Slot};

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
    #[serde(default)]
    pub keys_returned: u64,
    pub dropped_events: u64,
    #[serde(default)]
    pub late_events: u64,
    #[serde(default)]
    pub expired_keys: u64,
    /// Request counts of request-rate rules: (rule, client, count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<(usize, String, RateCount)>,
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

impl Detector {
    /// Keeps the keys that change, for [`Detector::changes`]: a store that
    /// writes only those needs it; a scan would pay a hash insert an event
    /// for nothing.
    pub fn track_changes(&mut self) {
        self.tracking = true;
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
        Snapshot {
            keys: keys.into_iter().map(|(_, k)| k).collect(),
            rates,
            ..self.header()
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
            keys_returned: self.keys_returned,
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
        d.keys_returned = snap.keys_returned;
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
            let node = d
                .recency
                .push_back(saved.rule, Arc::clone(&k), saved.state.saved_segment());
            // A duplicate key in a hand-edited snapshot replaces the earlier one.
            if let Some(old) = d.keys[saved.rule].insert(
                Arc::clone(&k),
                Slot {
                    key: k,
                    generation,
                    node,
                    state: saved.state,
                },
            ) {
                d.recency.remove(old.node);
                d.tracked -= 1;
                if let Phase::Open(inc) = old.state.phase {
                    d.closed.push(*inc);
                }
            }
            d.tracked += 1;
        }
        d.demote_over_cap();
        d.rebuild_owners();
        d.drop_dead_links();
        // Restored as stored: nothing to write. (What restoring dropped,
        // the caller sees in the counts and rewrites whole.)
        d.persisted();
        d
    }
}
