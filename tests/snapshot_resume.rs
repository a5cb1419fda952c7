//! The detector's snapshot is a faithful checkpoint: stopping after any line,
//! saving the state as the daemon stores it (JSON), restoring it and going
//! on must give exactly the incidents of an uninterrupted run.

mod common;

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use canhgac::analyze::{Analyzer, LineSource};
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

/// The moment the corpus is read at: its year-less stamps are of the year
/// before.
fn reference() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().expect("time")
}

/// The rules canhgac ships, behind the `Arc` an analyzer takes.
fn shipped_rules() -> Arc<RuleSet> {
    Arc::new(common::builtin_rules())
}

/// A corpus file's lines, each with its newline.
fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|&b| b == b'\n').collect()
}

/// An analyzer over `rules` with a fresh detector.
fn fresh_analyzer(rules: &Arc<RuleSet>) -> Analyzer {
    Analyzer::new(Arc::clone(rules), Detector::new(rules.policies(), 1000))
}

/// A source of `kind` lines, their stamps in UTC.
fn source(analyzer: &mut Analyzer, kind: &str) -> LineSource {
    analyzer
        .source(kind, TimeParser::new(TimeZone::UTC, reference()))
        .expect("matcher")
}

/// Feeds `data` from `src`; the incidents are what the tests compare, not
/// the events.
fn feed(analyzer: &mut Analyzer, src: &mut LineSource, data: &[u8]) {
    analyzer.feed(src, data, reference(), &mut |_, _, _| {});
}

/// The incidents the detector holds, once it is flushed.
fn flushed(analyzer: &mut Analyzer) -> Vec<Incident> {
    let d = analyzer.detector_mut();
    d.flush();
    d.take_closed()
}

fn run(rules: &Arc<RuleSet>, lines: &[&[u8]], cut: Option<usize>) -> Facts {
    let mut analyzer = fresh_analyzer(rules);
    let mut src = source(&mut analyzer, "syslog");
    let mut closed = Vec::new();
    let split = cut.unwrap_or(lines.len());
    for l in &lines[..split] {
        feed(&mut analyzer, &mut src, l);
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
        src = source(&mut analyzer, "syslog");
    }
    for l in &lines[split..] {
        feed(&mut analyzer, &mut src, l);
    }
    closed.extend(flushed(&mut analyzer));
    facts(closed)
}

#[test]
fn resuming_from_a_snapshot_after_any_line_changes_nothing() {
    let rules = shipped_rules();
    let data = std::fs::read(common::corpus("openssh_2k.log")).expect("corpus");
    let lines = split_lines(&data);
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
    let rules = shipped_rules();
    let data = std::fs::read(common::corpus("openssh_2k.log")).expect("corpus");
    let lines = split_lines(&data);
    let by = |n: usize| {
        let mut analyzer = fresh_analyzer(&rules);
        let mut src = source(&mut analyzer, "syslog");
        for chunk in lines.chunks(n) {
            feed(&mut analyzer, &mut src, &chunk.concat());
        }
        facts(flushed(&mut analyzer))
    };
    let one = by(1);
    for n in [2, 3, 7, 50, 2000] {
        assert_eq!(by(n), one, "chunks of {n} lines");
    }
}

#[test]
fn interleaving_inputs_changes_nothing() {
    let rules = shipped_rules();
    let read = |name: &str| std::fs::read(common::corpus(name)).expect("corpus");
    let auth = read("openssh_2k.log");
    let web = read("apache_access_10k.log");
    let (auth, web) = (split_lines(&auth), split_lines(&web));
    let go = |interleave: bool| {
        let mut analyzer = fresh_analyzer(&rules);
        let mut a = source(&mut analyzer, "syslog");
        let mut w = source(&mut analyzer, "apache");
        if interleave {
            for (ac, wc) in auth.chunks(10).zip(web.chunks(50)) {
                feed(&mut analyzer, &mut a, &ac.concat());
                feed(&mut analyzer, &mut w, &wc.concat());
            }
        } else {
            feed(&mut analyzer, &mut a, &auth.concat());
            feed(&mut analyzer, &mut w, &web.concat());
        }
        facts(flushed(&mut analyzer))
    };
    assert_eq!(go(true), go(false));
}
