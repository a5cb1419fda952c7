use std::borrow::Cow;

use super::policy::MAX_ATTEMPTS_PER_LINE;
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
        rank: 0,
    }
}

fn plain(cooldown: i64) -> Policy {
    Policy {
        threshold: None,
        cooldown: secs(cooldown),
        merge: None,
        counts_toward: None,
        evidence: None,
        rank: 0,
    }
}

fn merged(mut p: Policy, class: u32) -> Policy {
    p.merge = Some(class);
    p
}

/// [`counting`] distinct values of `field`.
fn counting_distinct(field: &str, count: u32, window: i64, cooldown: i64) -> Policy {
    let mut policy = counting(count, window, cooldown);
    policy.threshold.as_mut().expect("a threshold").distinct = Some(field.into());
    policy
}

/// Two rules of merge class 0 that count alike.
fn twins(count: u32, window: i64, cooldown: i64) -> Vec<Policy> {
    vec![
        merged(counting(count, window, cooldown), 0),
        merged(counting(count, window, cooldown), 0),
    ]
}

/// First and last seen, and events, of rule 0's open incident of `key`.
fn span(d: &Detector, key: &str) -> (Timestamp, Timestamp, u64) {
    let inc = d.incident(0, key).expect("open");
    (inc.first_seen, inc.last_seen, inc.events)
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
    // The recency list holds each tracked key once, at its slot's node.
    assert_eq!(d.recency.len(), d.tracked);
    for (rule, key, node, segment) in d.recency.iter() {
        let slot = d.keys[rule].get(key);
        assert_eq!(
            slot.map(|s| (s.node, s.state.saved_segment())),
            Some((node, segment))
        );
    }
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
    let request =
        |d: &mut Detector, last: u8, secs: i64| d.count_request(0, ip(last), ts(secs), 100, window);
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
    let mut d = Detector::new(vec![counting_distinct("user", 3, 60, 300)], 100);
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
    let mut d = Detector::new(vec![counting_distinct("path", 3, 10, 300)], 100);
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
        rank: 0,
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
fn recency_list_holds_each_key_once() {
    let mut d = Detector::new(vec![plain(3600)], 10);
    for i in 0..10_000 {
        d.observe(&ip(0, i, "hot"));
    }
    assert_eq!(d.recency.len(), d.keys_tracked());
    assert_eq!(d.incident(0, "hot").map(|i| i.events), Some(10_000));
}

#[test]
fn a_flood_of_one_shot_keys_cannot_push_out_an_attacker_counting_nor_close_its_incident() {
    // 100 keys at most; between two tries of the attacker, 500 addresses
    // appear once each (spoofed datagrams, a scan of the address space).
    let mut d = Detector::new(vec![counting(5, 600, 600)], 100);
    let attacker = "203.0.113.7";
    d.observe(&ip(0, 0, attacker));
    d.observe(&ip(0, 1, attacker));
    for attempt in 0..8 {
        for j in 0..500 {
            d.observe(&ip(
                0,
                2 + attempt * 10,
                &format!("10.{attempt}.{}.{}", j / 256, j % 256),
            ));
        }
        d.observe(&ip(0, 10 + attempt * 10, attacker));
    }
    assert_eq!(d.incident(0, attacker).map(|i| i.events), Some(10));
    assert!(d.take_closed().is_empty(), "the incident stays open");
    assert_eq!(d.keys_evicted(), 8 * 500 - 99);
    assert_eq!(d.keys_returned(), 0, "the one-shot keys never came back");
    assert_index_consistent(&d);

    // Restored from its snapshot, the detector evicts the same keys next.
    let snap = d.snapshot();
    let mut restored = Detector::restore(vec![counting(5, 600, 600)], 100, snap);
    for j in 0..150 {
        let line = ip(0, 200, &format!("10.9.{}.{}", j / 256, j % 256));
        assert_eq!(d.observe(&line), restored.observe(&line));
    }
    assert_eq!(restored.incident(0, attacker).map(|i| i.events), Some(10));
    assert_eq!(restored.snapshot(), d.snapshot());
}

#[test]
fn new_attackers_reach_their_threshold_in_a_table_full_of_long_window_keys() {
    // Rule 0 counts over a day (a slow brute-force rule), rule 1 over ten
    // minutes; address after address tries five times in a row. The
    // day-long keys, each with five events, fill the table: with no cap on
    // the protected list, every new key evicted the one made just before
    // it, and no attacker after the first 50 reached a threshold.
    let rules = || vec![counting(50, 86_400, 86_400), counting(5, 600, 600)];
    let mut d = Detector::new(rules(), 100);
    let mut opened = 0;
    for a in 0..400_i64 {
        let addr = format!("10.0.{}.{}", a / 256, a % 256);
        for t in 0..5 {
            d.observe(&ip(0, a * 6 + t, &addr));
            if let Observation::Opened(_) = d.observe(&ip(1, a * 6 + t, &addr)) {
                opened += 1;
            }
        }
    }
    assert_eq!(opened, 400);
    assert!(d.keys_evicted() > 0, "the table was full");
    assert_index_consistent(&d);

    // Restored from its snapshot, it evicts and demotes as the saver does.
    let mut restored = Detector::restore(rules(), 100, d.snapshot());
    assert_eq!(restored.snapshot(), d.snapshot());
    for a in 400..460_i64 {
        let addr = format!("10.0.{}.{}", a / 256, a % 256);
        for t in 0..5 {
            for rule in 0..2 {
                let line = ip(rule, a * 6 + t, &addr);
                assert_eq!(d.observe(&line), restored.observe(&line));
            }
        }
    }
    assert_eq!(restored.snapshot(), d.snapshot());
}

#[test]
fn a_key_tracked_again_soon_after_its_eviction_is_counted() {
    let mut d = Detector::new(vec![counting(5, 600, 600)], 2);
    for (t, addr) in [(0, "a"), (1, "b"), (2, "c")] {
        d.observe(&ip(0, t, addr));
    }
    assert_eq!((d.keys_evicted(), d.keys_returned()), (1, 0));
    // "a" comes back: forgotten between two tries.
    d.observe(&ip(0, 3, "a"));
    assert_eq!((d.keys_evicted(), d.keys_returned()), (2, 1));
    // A key never seen before is no return.
    d.observe(&ip(0, 4, "z"));
    assert_eq!((d.keys_evicted(), d.keys_returned()), (3, 1));
    let restored = Detector::restore(vec![counting(5, 600, 600)], 2, d.snapshot());
    assert_eq!(restored.keys_returned(), 1);
}

#[test]
fn shrink_after_a_burst_keeps_the_eviction_order() {
    let mut d = Detector::new(vec![counting(5, 60, 60)], 1000);
    for i in 0..1000 {
        d.observe(&ip(0, i, &format!("k{i}")));
    }
    // Only the keys of the last minute stay.
    d.expire(ts(1030));
    let left = d.keys_tracked();
    assert!((29..=31).contains(&left), "{left}");
    d.shrink();
    assert_index_consistent(&d);
    let oldest = format!("k{}", 1000 - left);
    let next = format!("k{}", 1001 - left);
    // The oldest is active again: the one after it goes first.
    d.observe(&ip(0, 1031, &oldest));
    for i in 0..1000 - left {
        d.observe(&ip(0, 1031, &format!("n{i}")));
    }
    assert_eq!(d.keys_evicted(), 0);
    d.observe(&ip(0, 1032, "x"));
    assert_eq!(d.keys_evicted(), 1);
    assert!(d.keys[0].get(next.as_str()).is_none());
    assert!(d.keys[0].get(oldest.as_str()).is_some());
    assert_index_consistent(&d);
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
    assert_eq!(d.recency.len(), 0);
}

#[test]
fn out_of_order_times_do_not_panic_and_still_count() {
    let mut d = Detector::new(vec![counting(3, 60, 60)], 100);
    d.observe(&ip(0, 50, "a"));
    d.observe(&ip(0, 40, "a"));
    assert!(matches!(d.observe(&ip(0, 45, "a")), Observation::Opened(_)));
    assert_eq!(span(&d, "a"), (ts(40), ts(50), 3));
    // Joining from the past widens first_seen, never lowers last_seen.
    d.observe(&ip(0, 30, "a"));
    assert_eq!(span(&d, "a"), (ts(30), ts(50), 4));
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
    assert_eq!(span(&d, "b"), (ts(0), ts(1000), 4));
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
            rank: 0,
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
        rank: 0,
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
    let base = [
        plain(30),
        counting(4, 20, 30),
        counting_distinct("user", 3, 40, 30),
    ];
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
                rank: 0,
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
        merged(counting_distinct("user", 3, 600, 600), 3),
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
    let policies = twins(3, 60, 60);
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
    assert_eq!(d.recency.len(), 0);
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
    let policies = twins(2, 60, 60);
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
            rank: 0,
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

/// A more severe rule of a merge class never joins a lesser incident: the
/// lesser one ends, the severe one opens its own, and lesser findings after
/// it join that. A lesser rule still joins a more severe incident.
#[test]
fn a_more_severe_finding_opens_its_own_incident() {
    let mut high = merged(counting(2, 60, 300), 0);
    high.rank = 3;
    let mut critical = merged(counting(2, 60, 300), 0);
    critical.rank = 4;
    let mut d = Detector::new(vec![high.clone(), critical.clone()], 100);
    d.observe(&ip(0, 0, "10.0.0.44"));
    let Observation::Opened(lesser) = d.observe(&ip(0, 1, "10.0.0.44")) else {
        panic!("the high rule opens");
    };
    d.observe(&ip(1, 2, "10.0.0.44"));
    let Observation::Opened(severe) = d.observe(&ip(1, 3, "10.0.0.44")) else {
        panic!("the critical rule opens its own incident");
    };
    assert_ne!(lesser, severe);
    assert_index_consistent(&d);
    let closed = d.take_closed();
    assert_eq!(closed.len(), 1, "the high incident ended");
    assert_eq!((closed[0].id, closed[0].events), (lesser, 2));
    // The high rule's next finding joins the critical incident.
    d.observe(&ip(0, 4, "10.0.0.44"));
    assert_eq!(
        d.observe(&ip(0, 5, "10.0.0.44")),
        Observation::Joined(severe)
    );
    assert_index_consistent(&d);

    // The other way round: critical first, and the high rule joins it.
    let mut d = Detector::new(vec![high, critical], 100);
    d.observe(&ip(1, 0, "10.0.0.45"));
    let Observation::Opened(severe) = d.observe(&ip(1, 1, "10.0.0.45")) else {
        panic!("the critical rule opens");
    };
    d.observe(&ip(0, 2, "10.0.0.45"));
    assert_eq!(
        d.observe(&ip(0, 3, "10.0.0.45")),
        Observation::Joined(severe)
    );
    assert!(d.take_closed().is_empty());
}
