//! The order in which tracked keys were last active, for eviction when the
//! key table is full: a doubly linked list threaded through a slab, so that
//! marking a key active (every event) moves one node, hashes nothing and
//! allocates nothing. Each key's slot holds its node's index; the node holds
//! the key, so the least recently active one is found without a search.
//!
//! (The list replaced a queue with one entry per touch, whose stale entries
//! had to be told from live ones by looking each key up: that compaction
//! was 5 to 9% of scanning an SSH brute-force flood.)

use std::sync::Arc;

/// No node: the ends of the list, and the link of a free node.
const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node {
    prev: u32,
    next: u32,
    rule: usize,
    /// `None` while the node is free.
    key: Option<Arc<str>>,
}

/// Least recently active first.
#[derive(Debug)]
pub(super) struct Recency {
    nodes: Vec<Node>,
    /// Free nodes, linked through `next`.
    free: u32,
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for Recency {
    fn default() -> Self {
        Recency {
            nodes: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl Recency {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds a key as the most recently active; returns its node.
    pub(super) fn push_back(&mut self, rule: usize, key: Arc<str>) -> u32 {
        let node = if self.free != NIL {
            let node = self.free;
            self.free = self.nodes[node as usize].next;
            self.nodes[node as usize] = Node {
                prev: NIL,
                next: NIL,
                rule,
                key: Some(key),
            };
            node
        } else {
            let node = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&n| n != NIL)
                .expect("fewer than 2^32 - 1 tracked keys (max_keys is a usize below that)");
            self.nodes.push(Node {
                prev: NIL,
                next: NIL,
                rule,
                key: Some(key),
            });
            node
        };
        self.link_back(node);
        self.len += 1;
        node
    }

    /// Makes `node` the most recently active.
    pub(super) fn move_to_back(&mut self, node: u32) {
        if node == self.tail || !self.is_live(node) {
            return;
        }
        self.unlink(node);
        self.link_back(node);
    }

    /// Forgets `node` (its key left the table).
    pub(super) fn remove(&mut self, node: u32) {
        if !self.is_live(node) {
            return;
        }
        self.unlink(node);
        let n = &mut self.nodes[node as usize];
        n.key = None;
        n.next = self.free;
        self.free = node;
        self.len -= 1;
    }

    /// The least recently active key, its rule and node, without removing it.
    pub(super) fn front(&self) -> Option<(usize, &Arc<str>, u32)> {
        let node = self.nodes.get(self.head as usize)?;
        Some((node.rule, node.key.as_ref()?, self.head))
    }

    /// Every key in order, least recently active first, with its node.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Arc<str>, u32)> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let node = self.nodes.get(at as usize)?;
            let here = at;
            at = node.next;
            Some((node.rule, node.key.as_ref()?, here))
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
        let mut nodes = Vec::with_capacity(self.len);
        let mut at = self.head;
        while let Some(node) = self.nodes.get_mut(at as usize) {
            at = node.next;
            if let Some(key) = node.key.take() {
                let index = nodes.len() as u32;
                renumber(node.rule, &key, index);
                nodes.push(Node {
                    prev: index.wrapping_sub(1),
                    next: index + 1,
                    rule: node.rule,
                    key: Some(key),
                });
            }
        }
        if let Some(first) = nodes.first_mut() {
            first.prev = NIL;
        }
        if let Some(last) = nodes.last_mut() {
            last.next = NIL;
        }
        self.len = nodes.len();
        // An empty list: both NIL.
        self.head = if nodes.is_empty() { NIL } else { 0 };
        self.tail = (nodes.len() as u32).wrapping_sub(1);
        self.free = NIL;
        self.nodes = nodes;
    }

    fn is_live(&self, node: u32) -> bool {
        self.nodes
            .get(node as usize)
            .is_some_and(|n| n.key.is_some())
    }

    fn unlink(&mut self, node: u32) {
        let (prev, next) = {
            let n = &self.nodes[node as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn link_back(&mut self, node: u32) {
        let tail = self.tail;
        {
            let n = &mut self.nodes[node as usize];
            n.prev = tail;
            n.next = NIL;
        }
        match tail {
            NIL => self.head = node,
            t => self.nodes[t as usize].next = node,
        }
        self.tail = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &Recency) -> Vec<String> {
        r.iter().map(|(_, k, _)| k.to_string()).collect()
    }

    #[test]
    fn moves_removals_and_reuse_keep_the_order() {
        let mut r = Recency::default();
        let a = r.push_back(0, Arc::from("a"));
        let b = r.push_back(0, Arc::from("b"));
        let c = r.push_back(1, Arc::from("c"));
        r.move_to_back(a);
        assert_eq!(keys(&r), ["b", "c", "a"]);
        r.remove(c);
        r.remove(c); // twice: nothing more
        assert_eq!(
            (keys(&r), r.len()),
            (vec!["b".to_owned(), "a".to_owned()], 2)
        );
        let d = r.push_back(2, Arc::from("d"));
        assert_eq!(d, c, "a freed node is taken again");
        r.move_to_back(b);
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
        let e = r.push_back(0, Arc::from("e"));
        assert_eq!(keys(&r), ["e"]);
        r.move_to_back(e);
        assert_eq!(keys(&r), ["e"]);
    }

    #[test]
    fn shrink_lays_the_live_nodes_out_again_in_order() {
        let mut r = Recency::default();
        let nodes: Vec<u32> = (0..200)
            .map(|i| r.push_back(i % 3, Arc::from(i.to_string())))
            .collect();
        for &n in nodes.iter().filter(|&&n| n % 10 != 0) {
            r.remove(n);
        }
        r.move_to_back(nodes[0]);
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
        r.move_to_back(0);
        assert_eq!(
            keys(&r).last().map(String::as_str),
            Some(before[0].as_str())
        );
        let f = r.push_back(0, Arc::from("f"));
        assert_eq!(f, 20);
        assert_eq!(keys(&r).len(), 21);
    }
}
