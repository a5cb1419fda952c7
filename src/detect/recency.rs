//! The order in which tracked keys were last active, for eviction when the
//! key table is full: doubly linked lists threaded through a slab, so that
//! marking a key active (every event) moves one node, hashes nothing and
//! allocates nothing. Each key's slot holds its node's index; the node holds
//! the key, so the least recently active one is found without a search.
//!
//! Two lists (a segmented LRU): keys on probation, which have shown one
//! event, and protected keys, which have shown more (counting toward a
//! threshold, or holding an incident). Eviction takes the least recently
//! active key on probation while there is one. A flood of keys that each
//! appear once (spoofed addresses, a scan of the address space) then cycles
//! through probation and cannot push out an attacker already counting, nor
//! close an open incident, which with one list it did after `max_keys` such
//! lines.
//!
//! The protected list is capped below the table's size (the detector
//! moves its least recently active key back to probation when a promotion
//! passes the cap): uncapped, a table filled with keys of long windows (a
//! day-long slow brute-force rule) left a new key room for no second
//! event, each new key evicting the one before it, so no new attacker ever
//! reached a threshold.
//!
//! (The list replaced a queue with one entry per touch, whose stale entries
//! had to be told from live ones by looking each key up: that compaction
//! was 5 to 9% of scanning an SSH brute-force flood.)

use std::sync::Arc;

/// No node: the ends of the list, and the link of a free node.
const NIL: u32 = u32::MAX;

/// Which list a key is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    /// One event so far: evicted first.
    Once,
    /// More than one, or an incident.
    Repeated,
}

impl Segment {
    fn index(self) -> usize {
        match self {
            Segment::Once => 0,
            Segment::Repeated => 1,
        }
    }
}

#[derive(Debug)]
struct Node {
    prev: u32,
    next: u32,
    segment: Segment,
    rule: usize,
    /// `None` while the node is free.
    key: Option<Arc<str>>,
}

/// Least recently active first, in each [`Segment`].
#[derive(Debug)]
pub(super) struct Recency {
    nodes: Vec<Node>,
    /// Free nodes, linked through `next`.
    free: u32,
    /// Per segment.
    head: [u32; 2],
    tail: [u32; 2],
    /// Keys per segment.
    lens: [usize; 2],
    len: usize,
}

impl Default for Recency {
    fn default() -> Self {
        Recency {
            nodes: Vec::new(),
            free: NIL,
            head: [NIL; 2],
            tail: [NIL; 2],
            lens: [0; 2],
            len: 0,
        }
    }
}

impl Recency {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds a key as the most recently active of `segment`; returns its node.
    pub(super) fn push_back(&mut self, rule: usize, key: Arc<str>, segment: Segment) -> u32 {
        let fresh = Node {
            prev: NIL,
            next: NIL,
            segment,
            rule,
            key: Some(key),
        };
        let node = if self.free != NIL {
            let node = self.free;
            self.free = self.nodes[node as usize].next;
            self.nodes[node as usize] = fresh;
            node
        } else {
            let node = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&n| n != NIL)
                .expect("fewer than 2^32 - 1 tracked keys (max_keys is a usize below that)");
            self.nodes.push(fresh);
            node
        };
        self.link_back(node);
        self.len += 1;
        node
    }

    /// Makes `node` the most recently active of `segment`.
    pub(super) fn move_to_back(&mut self, node: u32, segment: Segment) {
        let Some(n) = self.nodes.get(node as usize).filter(|n| n.key.is_some()) else {
            return;
        };
        if n.segment == segment && node == self.tail[segment.index()] {
            return;
        }
        self.unlink(node);
        self.nodes[node as usize].segment = segment;
        self.link_back(node);
    }

    /// Forgets `node` (its key left the table).
    pub(super) fn remove(&mut self, node: u32) {
        if self
            .nodes
            .get(node as usize)
            .is_none_or(|n| n.key.is_none())
        {
            return;
        }
        self.unlink(node);
        let n = &mut self.nodes[node as usize];
        n.key = None;
        n.next = self.free;
        self.free = node;
        self.len -= 1;
    }

    /// The least recently active key of `segment`, if it holds more than
    /// `cap` keys: its rule and node.
    pub(super) fn oldest_over(
        &self,
        segment: Segment,
        cap: usize,
    ) -> Option<(usize, &Arc<str>, u32)> {
        if self.lens[segment.index()] <= cap {
            return None;
        }
        self.live(self.head[segment.index()])
    }

    /// The key to evict: the least recently active of those seen once, or
    /// of all if none was; its rule and node, without removing it.
    pub(super) fn front(&self) -> Option<(usize, &Arc<str>, u32)> {
        self.live(self.head.into_iter().find(|&h| h != NIL)?)
    }

    /// The rule and key of `node`, with it, if it holds a key.
    fn live(&self, node: u32) -> Option<(usize, &Arc<str>, u32)> {
        let n = self.nodes.get(node as usize)?;
        Some((n.rule, n.key.as_ref()?, node))
    }

    /// Every key in eviction order, with its node and segment.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Arc<str>, u32, Segment)> + '_ {
        let mut heads = self.head.into_iter();
        let mut at = NIL;
        std::iter::from_fn(move || {
            while at == NIL {
                at = heads.next()?;
            }
            let node = self.nodes.get(at as usize)?;
            let here = at;
            at = node.next;
            Some((node.rule, node.key.as_ref()?, here, node.segment))
        })
    }

    /// Gives back the slab's free nodes when they are most of it (after a
    /// burst of keys that have since left): the live nodes are laid out
    /// again in order, and `renumber(rule, key, node)` is told each one's new
    /// index for its slot.
    pub(super) fn shrink(&mut self, mut renumber: impl FnMut(usize, &Arc<str>, u32)) {
        if self.nodes.len() <= 2 * self.len + 64 {
            return;
        }
        let live: Vec<(usize, Arc<str>, Segment)> = self
            .iter()
            .map(|(rule, key, _, segment)| (rule, Arc::clone(key), segment))
            .collect();
        *self = Recency::default();
        self.nodes.reserve_exact(live.len());
        for (rule, key, segment) in live {
            let node = self.push_back(rule, key, segment);
            let Some(key) = self.nodes[node as usize].key.as_ref() else {
                continue;
            };
            renumber(rule, key, node);
        }
    }

    fn unlink(&mut self, node: u32) {
        let (prev, next, segment) = {
            let n = &self.nodes[node as usize];
            (n.prev, n.next, n.segment.index())
        };
        self.lens[segment] -= 1;
        match prev {
            NIL => self.head[segment] = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail[segment] = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn link_back(&mut self, node: u32) {
        let segment = self.nodes[node as usize].segment.index();
        self.lens[segment] += 1;
        let tail = self.tail[segment];
        {
            let n = &mut self.nodes[node as usize];
            n.prev = tail;
            n.next = NIL;
        }
        match tail {
            NIL => self.head[segment] = node,
            t => self.nodes[t as usize].next = node,
        }
        self.tail[segment] = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &Recency) -> Vec<String> {
        r.iter().map(|(_, k, _, _)| k.to_string()).collect()
    }

    #[test]
    fn moves_removals_and_reuse_keep_the_order() {
        let mut r = Recency::default();
        let a = r.push_back(0, Arc::from("a"), Segment::Once);
        let b = r.push_back(0, Arc::from("b"), Segment::Once);
        let c = r.push_back(1, Arc::from("c"), Segment::Once);
        r.move_to_back(a, Segment::Once);
        assert_eq!(keys(&r), ["b", "c", "a"]);
        r.remove(c);
        r.remove(c); // twice: nothing more
        assert_eq!(
            (keys(&r), r.len()),
            (vec!["b".to_owned(), "a".to_owned()], 2)
        );
        let d = r.push_back(2, Arc::from("d"), Segment::Once);
        assert_eq!(d, c, "a freed node is taken again");
        r.move_to_back(b, Segment::Once);
        assert_eq!(keys(&r), ["a", "d", "b"]);
        assert_eq!(
            r.front().map(|(rule, k, n)| (rule, k.to_string(), n)),
            Some((0, "a".to_owned(), a))
        );
        for n in [a, d, b] {
            r.remove(n);
        }
        assert!(r.front().is_none());
        assert_eq!(r.len(), 0);
        let e = r.push_back(0, Arc::from("e"), Segment::Once);
        assert_eq!(keys(&r), ["e"]);
        r.move_to_back(e, Segment::Once);
        assert_eq!(keys(&r), ["e"]);
    }

    #[test]
    fn shrink_lays_the_live_nodes_out_again_in_order() {
        let mut r = Recency::default();
        let nodes: Vec<u32> = (0..200)
            .map(|i| r.push_back(i % 3, Arc::from(i.to_string()), Segment::Once))
            .collect();
        for &n in nodes.iter().filter(|&&n| n % 10 != 0) {
            r.remove(n);
        }
        r.move_to_back(nodes[0], Segment::Once);
        let before = keys(&r);
        let mut renumbered = Vec::new();
        r.shrink(|rule, key, node| renumbered.push((rule, key.to_string(), node)));
        assert_eq!(keys(&r), before);
        assert_eq!(r.nodes.len(), 20);
        assert_eq!(
            renumbered
                .iter()
                .map(|(_, k, _)| k.clone())
                .collect::<Vec<_>>(),
            before
        );
        assert!(renumbered
            .iter()
            .enumerate()
            .all(|(i, (_, _, n))| *n == i as u32));
        // The new numbers are the ones to use from now on.
        r.move_to_back(0, Segment::Once);
        assert_eq!(
            keys(&r).last().map(String::as_str),
            Some(before[0].as_str())
        );
        let f = r.push_back(0, Arc::from("f"), Segment::Once);
        assert_eq!(f, 20);
        assert_eq!(keys(&r).len(), 21);
    }

    #[test]
    fn keys_seen_once_go_first_whatever_their_age() {
        let mut r = Recency::default();
        let old = r.push_back(0, Arc::from("old"), Segment::Once);
        let a = r.push_back(0, Arc::from("a"), Segment::Once);
        r.move_to_back(old, Segment::Repeated);
        let b = r.push_back(1, Arc::from("b"), Segment::Once);
        assert_eq!(keys(&r), ["a", "b", "old"]);
        assert_eq!(r.front().map(|(_, _, n)| n), Some(a));
        r.remove(a);
        assert_eq!(r.front().map(|(_, _, n)| n), Some(b));
        r.remove(b);
        // None seen once: the least recently active of the others.
        assert_eq!(r.front().map(|(_, _, n)| n), Some(old));
        let c = r.push_back(0, Arc::from("c"), Segment::Repeated);
        r.move_to_back(old, Segment::Repeated);
        assert_eq!(r.front().map(|(_, _, n)| n), Some(c));
        let mut renumbered = Vec::new();
        let burst: Vec<u32> = (0..100)
            .map(|i| r.push_back(0, Arc::from(format!("x{i}")), Segment::Once))
            .collect();
        for n in burst {
            r.remove(n);
        }
        r.shrink(|_, key, node| renumbered.push((key.to_string(), node)));
        assert_eq!(keys(&r), ["c", "old"]);
        assert_eq!(renumbered, [("c".to_owned(), 0), ("old".to_owned(), 1)]);
        assert!(r.iter().all(|(_, _, _, s)| s == Segment::Repeated));
    }
}
