//! The detector's snapshot is a faithful checkpoint: stopping after any line,
//! saving the state as the daemon stores it (JSON), restoring it and going
//! on must give exactly the incidents of an uninterrupted run.

mod common;

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use canhgac::analyze::Analyzer;
use canhgac::detect::{Detector, Incident, Snapshot};
use canhgac::rules::RuleSet;
use canhgac::timestamp::TimeParser;

type Facts = Vec<(usize, String, Timestamp, u64)>;

fn facts(mut incidents: Vec<Incident>) -> Facts {
    let mut f: Facts = incidents
        .drain(..)
        .map(|i| (i.rule, i.key, i.first_seen, i.events))
        .collect();
    f.sort();
    f
}

fn run(rules: &Arc<RuleSet>, lines: &[&[u8]], cut: Option<usize>) -> Facts {
    let reference: Timestamp = "2026-11-23T00:00:00Z".parse().expect("time");
    let times = || TimeParser::new(TimeZone::UTC, reference);
    let mut analyzer = Analyzer::new(Arc::clone(rules), Detector::new(rules.policies(), 1000));
    let mut src = analyzer.source("syslog", times()).expect("matcher");
    let mut closed = Vec::new();
    let split = cut.unwrap_or(lines.len());
    for l in &lines[..split] {
        analyzer.feed(&mut src, l, reference, &mut |_, _, _| {});
    }
    if cut.is_some() {
        closed.extend(analyzer.detector_mut().take_closed());
        let json = serde_json::to_vec(&analyzer.detector().snapshot()).expect("serialise");
        let mut snap: Snapshot = serde_json::from_slice(&json).expect("deserialise");
        // As the daemon restores it: renumbered for the (same) rule set, and
        // numbering above every id already stored.
        snap.renumber(Some);
        snap.next_id += 7;
        analyzer = Analyzer::new(
            Arc::clone(rules),
            Detector::restore(rules.policies(), 1000, snap),
        );
        src = analyzer.source("syslog", times()).expect("matcher");
    }
    for l in &lines[split..] {
        analyzer.feed(&mut src, l, reference, &mut |_, _, _| {});
    }
    let d = analyzer.detector_mut();
    d.flush();
    closed.extend(d.take_closed());
    facts(closed)
}

#[test]
fn resuming_from_a_snapshot_after_any_line_changes_nothing() {
    let rules = Arc::new(common::builtin_rules());
    let data = std::fs::read(common::corpus("openssh_2k.log")).expect("corpus");
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let whole = run(&rules, &lines, None);
    assert!(whole.len() >= 10);
    let mut bad = Vec::new();
    for cut in (0..lines.len()).filter(|c| (280..320).contains(c) || c % 50 == 0) {
        if run(&rules, &lines, Some(cut)) != whole {
            bad.push(cut);
        }
    }
    assert!(
        bad.is_empty(),
        "snapshot after these lines changes the incidents: {bad:?}"
    );
}

#[test]
fn chunking_changes_nothing() {
    let rules = Arc::new(common::builtin_rules());
    let data = std::fs::read(common::corpus("openssh_2k.log")).expect("corpus");
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let reference: Timestamp = "2026-11-23T00:00:00Z".parse().expect("time");
    let by = |n: usize| {
        let mut analyzer = Analyzer::new(Arc::clone(&rules), Detector::new(rules.policies(), 1000));
        let mut src = analyzer
            .source("syslog", TimeParser::new(TimeZone::UTC, reference))
            .expect("matcher");
        for chunk in lines.chunks(n) {
            let buf: Vec<u8> = chunk.concat();
            analyzer.feed(&mut src, &buf, reference, &mut |_, _, _| {});
        }
        let d = analyzer.detector_mut();
        d.flush();
        facts(d.take_closed())
    };
    let one = by(1);
    for n in [2, 3, 7, 50, 2000] {
        assert_eq!(by(n), one, "chunks of {n} lines");
    }
}

#[test]
fn interleaving_inputs_changes_nothing() {
    let rules = Arc::new(common::builtin_rules());
    let read = |name: &str| std::fs::read(common::corpus(name)).expect("corpus");
    let auth = read("openssh_2k.log");
    let web = read("apache_access_10k.log");
    let auth: Vec<&[u8]> = auth.split_inclusive(|&b| b == b'\n').collect();
    let web: Vec<&[u8]> = web.split_inclusive(|&b| b == b'\n').collect();
    let reference: Timestamp = "2026-11-23T00:00:00Z".parse().expect("time");
    let go = |interleave: bool| {
        let mut analyzer = Analyzer::new(Arc::clone(&rules), Detector::new(rules.policies(), 1000));
        let mut a = analyzer
            .source("syslog", TimeParser::new(TimeZone::UTC, reference))
            .expect("matcher");
        let mut w = analyzer
            .source("apache", TimeParser::new(TimeZone::UTC, reference))
            .expect("matcher");
        if interleave {
            for (ac, wc) in auth.chunks(10).zip(web.chunks(50)) {
                analyzer.feed(&mut a, &ac.concat(), reference, &mut |_, _, _| {});
                analyzer.feed(&mut w, &wc.concat(), reference, &mut |_, _, _| {});
            }
        } else {
            analyzer.feed(&mut a, &auth.concat(), reference, &mut |_, _, _| {});
            analyzer.feed(&mut w, &web.concat(), reference, &mut |_, _, _| {});
        }
        let d = analyzer.detector_mut();
        d.flush();
        facts(d.take_closed())
    };
    assert_eq!(go(true), go(false));
}
