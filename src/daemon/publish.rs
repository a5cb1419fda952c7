//! What the pipeline tells the metrics and systemd's status line: per-input counters,
//! detector gauges and the series that follow the rule set. Labels come from the
//! configuration (input, rule and feed names), never from log content.

use std::sync::Arc;

use prometheus::IntCounterVec;
use tracing::warn;

use super::{DetectorCounts, Pipeline};
use crate::config::SourceConfig;
use crate::input::source::SourceStats;
use crate::input::syslog::Transport;

impl Pipeline {
    /// Metrics that follow the rule set and inputs.
    pub(super) fn rules_changed(&mut self) {
        let rules = self.analyzer.rules();
        self.metrics.set_rules(rules.rules.len(), &rules.digest());
        self.http.set_rules(Arc::clone(rules));
        self.rule_events = rules
            .rules
            .iter()
            .map(|r| self.metrics.rule_events.with_label_values(&[&r.id]))
            .collect();
        let names: Vec<String> = rules
            .feeds
            .feeds()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let dropped: Vec<String> = self
            .feed_names
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        let current: Vec<&str> = names.iter().map(String::as_str).collect();
        self.metrics.set_feeds(&current, &dropped);
        for feed in rules.feeds.feeds() {
            self.metrics
                .feed_indicators
                .with_label_values(&[feed.name()])
                .set(feed.len() as i64);
        }
        self.feed_names = names;
        for input in &self.inputs {
            let name = [input.config.name.as_str()];
            // Series exist from the start, at 0, so rates work from the first scrape.
            let m = &self.metrics;
            m.input_lines.with_label_values(&name);
            m.input_bytes.with_label_values(&name);
            m.input_read_errors.with_label_values(&name);
            m.input_lines_cut.with_label_values(&name);
            m.input_lines_unrecognised.with_label_values(&name);
            match &input.config.source {
                SourceConfig::Files { .. } => {}
                SourceConfig::Journal { .. } => {
                    m.input_restarts.with_label_values(&name);
                    m.input_position_lost.with_label_values(&name);
                }
                SourceConfig::Syslog { transport, .. } => {
                    for reason in crate::input::source::Drops::REASONS {
                        m.input_dropped.with_label_values(&[name[0], reason]);
                    }
                    if *transport != Transport::Udp {
                        m.input_connections.with_label_values(&name);
                    }
                }
            }
        }
    }

    pub(super) fn publish_input_stats(&mut self) {
        let m = &self.metrics;
        let mut degraded = Vec::new();
        for input in &mut self.inputs {
            let now = input.reader.stats();
            let was = input.published;
            let name = [input.config.name.as_str()];
            degraded.extend(input_problems(name[0], &now));
            let add = |counter: &IntCounterVec, n: u64, w: u64| {
                counter.with_label_values(&name).inc_by(growth(n, w));
            };
            add(&m.input_lines, now.lines, was.lines);
            add(&m.input_bytes, now.bytes, was.bytes);
            add(&m.input_read_errors, now.read_errors, was.read_errors);
            add(&m.input_lines_cut, now.cut_lines, was.cut_lines);
            if matches!(input.config.source, SourceConfig::Files { .. }) {
                m.input_behind
                    .with_label_values(&name)
                    .set(now.bytes_behind as i64);
                m.input_files
                    .with_label_values(&name)
                    .set(now.files_open as i64);
            }
            if let SourceConfig::Syslog { transport, .. } = &input.config.source {
                for ((reason, n), (_, w)) in now
                    .dropped
                    .by_reason()
                    .into_iter()
                    .zip(was.dropped.by_reason())
                {
                    if n != w {
                        m.input_dropped
                            .with_label_values(&[name[0], reason])
                            .inc_by(growth(n, w));
                    }
                }
                if *transport != Transport::Udp {
                    m.input_connections
                        .with_label_values(&name)
                        .set(now.connections as i64);
                    add(
                        &m.input_connections_shed,
                        now.connections_shed,
                        was.connections_shed,
                    );
                }
            }
            if matches!(input.config.source, SourceConfig::Journal { .. }) {
                add(&m.input_restarts, now.restarts, was.restarts);
            }
            add(&m.input_position_lost, now.position_lost, was.position_lost);
            input.published = now;
            let bad = input.source.unrecognised();
            m.input_lines_unrecognised
                .with_label_values(&name)
                .inc_by(bad.saturating_sub(input.unrecognised_published));
            input.unrecognised_published = bad;
            if let (false, Some(first)) = (input.unrecognised_warned, input.source.first_bad()) {
                input.unrecognised_warned = true;
                warn!(
                    "input {}: line {} read since start is not a {} line, so no {} rule can match it; check the input's type (canhgac_input_lines_unrecognised_total counts such lines): {:?}",
                    input.config.name,
                    first.line,
                    input.config.input_type,
                    input.config.input_type,
                    first.excerpt
                );
            }
        }
        let rejected = self.analyzer.rejected_clients();
        let published = self.metrics.events_rejected.get();
        self.metrics
            .events_rejected
            .inc_by(rejected.saturating_sub(published));
        *m.degraded.lock().unwrap_or_else(|e| e.into_inner()) = degraded;
    }

    /// The detector's gauges and counters to the metrics.
    pub(super) fn publish_detector(&mut self) {
        let d = self.analyzer.detector();
        let now = DetectorCounts {
            evicted: d.keys_evicted(),
            returned: d.keys_returned(),
            expired: d.expired_keys(),
            late: d.late_events(),
            future: self.analyzer.future_lines(),
        };
        let was = self.detector_published;
        let m = &self.metrics;
        m.detector_keys.set(d.keys_tracked() as i64);
        m.detector_state_rows.set(self.state_rows as i64);
        m.detector_evicted
            .inc_by(now.evicted.saturating_sub(was.evicted));
        m.detector_returned
            .inc_by(now.returned.saturating_sub(was.returned));
        m.detector_expired
            .inc_by(now.expired.saturating_sub(was.expired));
        m.events_late.inc_by(now.late.saturating_sub(was.late));
        m.lines_future_dated
            .inc_by(now.future.saturating_sub(was.future));
        self.detector_published = now;
        if let Some(since) = self.returned_unwarned_since {
            if now.returned > since {
                self.returned_unwarned_since = None;
                warn!(
                    "the key table is too small: {} key(s) evicted came back (attackers forgotten between two of their tries, whose attacks may reach no incident); raise [pipeline] max_keys (now {}) and the unit's MemoryMax= with it (canhgac_detector_keys_returned_total counts them; said once per start)",
                    now.returned - since,
                    self.config.pipeline.max_keys
                );
            }
        }
    }

    pub(super) fn status(&self) -> String {
        let stats: Vec<SourceStats> = self.inputs.iter().map(|i| i.reader.stats()).collect();
        let files: u64 = stats.iter().map(|s| s.files_open).sum();
        let behind: u64 = stats.iter().map(|s| s.bytes_behind).sum();
        format!(
            "{} inputs, {} files; {} lines read, {} incidents opened, {} commits, {} bytes behind",
            self.inputs.len(),
            files,
            self.counters.lines,
            self.counters.incidents_opened,
            self.counters.commits,
            behind
        )
    }
}

/// How much a source's counter grew since it was last published: a source
/// recreated by a reload starts its counters from zero again.
fn growth(now: u64, was: u64) -> u64 {
    if now >= was {
        now - was
    } else {
        now
    }
}

/// Bytes of an input written and not read yet beyond which `/readyz` says
/// the daemon is behind: minutes of reading at the slowest, and far more
/// than a busy agency writes between two sweeps.
const READY_MAX_BEHIND: u64 = 256 << 20;

/// What `/readyz` should say of an input: files it cannot open, or a
/// backlog past [`READY_MAX_BEHIND`].
fn input_problems(name: &str, stats: &SourceStats) -> Vec<String> {
    let mut problems = Vec::new();
    if stats.files_unreadable > 0 {
        problems.push(format!(
            "input {name}: {} file(s) cannot be opened (see the log)",
            stats.files_unreadable
        ));
    }
    if stats.bytes_behind > READY_MAX_BEHIND {
        problems.push(format!(
            "input {name}: behind, {} MiB not read yet",
            stats.bytes_behind >> 20
        ));
    }
    problems
}
