//! How keys leave the detector: expiry once their window and cooldown have
//! passed in event time, a flush at the end of a scan, and eviction of the
//! least recently active key when the table is full.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::pending::Phase;
use super::recency::Segment;
use super::{add_sat, linked_target, sub_sat, unindex, Detector, Incident};

impl Detector {
    /// Closes incidents whose key has been quiet for longer than the cooldown
    /// before `now`, and forgets pre-threshold counts older than the window.
    /// `now` is event time: [`Detector::watermark`] during a scan; the daemon
    /// passes the event time every input has reached. A `now` behind the
    /// events expires nothing.
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
                    self.recency.remove(slot.node);
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
                    self.recency.remove(slot.node);
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
        let keys = &mut self.keys;
        self.recency.shrink(|rule, key, node| {
            if let Some(slot) = keys.get_mut(rule).and_then(|m| m.get_mut(&**key)) {
                slot.node = node;
            }
        });
        self.dirty_keys.shrink_to_fit();
        self.dirty_rates.shrink_to_fit();
        self.closed.shrink_to_fit();
    }

    /// Indexes every open incident of a merge class. Should two rules of a
    /// class both hold one for a key (a snapshot from before the rules were
    /// merged), the most recently active is the one others join; the other
    /// runs its course alone.
    pub(super) fn rebuild_owners(&mut self) {
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
    pub(super) fn drop_dead_links(&mut self) {
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
            if let Some(slot) = self.keys[rule].remove(&k) {
                self.recency.remove(slot.node);
                self.tracked -= 1;
                if self.tracking {
                    self.dirty_keys.insert((rule, k));
                }
            }
        }
    }

    /// Evicts the least recently active key; false if there was none. An
    /// evicted open incident is closed; keys linked to it count afresh at
    /// their next event. An evicted linked key held no events of its own.
    pub(super) fn evict_one(&mut self) -> bool {
        while let Some((rule, key, node)) = self
            .recency
            .front()
            .map(|(rule, key, node)| (rule, Arc::clone(key), node))
        {
            self.recency.remove(node);
            // Every removal from the maps frees the key's node, so the
            // front is a live key; a slot of another node is left alone.
            let live = self.keys[rule].get(&key).is_some_and(|s| s.node == node);
            if !live {
                continue;
            }
            if let Some(slot) = self.keys[rule].remove(&key) {
                self.tracked -= 1;
                self.keys_evicted += 1;
                self.remember_evicted(rule, &key);
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

    /// Moves the least recently active protected keys back to probation
    /// while there are more than the cap. Each gets a new generation, so
    /// that a restored detector places it where this one did.
    pub(super) fn demote_over_cap(&mut self) {
        while let Some((rule, key, node)) = self
            .recency
            .oldest_over(Segment::Repeated, self.protected_cap)
            .map(|(rule, key, node)| (rule, Arc::clone(key), node))
        {
            self.recency.move_to_back(node, Segment::Once);
            self.generation += 1;
            if let Some(slot) = self.keys[rule].get_mut(&key) {
                slot.state.repeated = false;
                slot.generation = self.generation;
            }
            if self.tracking {
                self.dirty_keys.insert((rule, key));
            }
        }
    }

    /// Notes that `(rule, key)` was evicted, so that its return is counted
    /// (see [`Detector::keys_returned`]). A direct-mapped table of hash tags
    /// a few times `max_keys` long: a later eviction landing on the same
    /// slot forgets the key, so only recent evictions are remembered, in
    /// fixed memory allocated at the first eviction.
    fn remember_evicted(&mut self, rule: usize, key: &str) {
        if self.evicted_tags.is_empty() {
            // At most 16 MiB: a few percent of what the keys themselves
            // take at any size.
            let slots = (self.max_keys.max(1) * 3).next_power_of_two().min(1 << 22);
            self.evicted_tags = vec![0; slots];
        }
        let (slot, tag) = self.eviction_slot(rule, key);
        self.evicted_tags[slot] = tag;
    }

    /// Counts a new key that was evicted a short while ago.
    pub(super) fn note_return(&mut self, rule: usize, key: &str) {
        if self.evicted_tags.is_empty() {
            return;
        }
        let (slot, tag) = self.eviction_slot(rule, key);
        if self.evicted_tags[slot] == tag {
            self.evicted_tags[slot] = 0;
            self.keys_returned += 1;
        }
    }

    /// The slot and non-zero tag of a key in `evicted_tags` (whose length
    /// is a power of two): low hash bits pick the slot, high bits are the
    /// tag, so two keys are confused once in 2^31.
    fn eviction_slot(&self, rule: usize, key: &str) -> (usize, u32) {
        let print = self.fingerprint(rule, key);
        let slot = (print as usize) & (self.evicted_tags.len() - 1);
        (slot, ((print >> 32) as u32) | 1)
    }

    fn fingerprint(&self, rule: usize, key: &str) -> u64 {
        use std::hash::BuildHasher;
        let hash = self.keys[rule].hasher().hash_one(key);
        hash ^ (rule as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Several incidents closing at once are emitted oldest activity first,
    /// so output does not depend on hash order.
    pub(super) fn close_batch(&mut self, mut batch: Vec<Incident>) {
        batch.sort_by_key(|i| (i.last_seen, i.id));
        self.closed.extend(batch);
    }
}
