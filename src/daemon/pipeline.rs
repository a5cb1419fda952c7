//! The pipeline thread: start from the store, then a loop of named steps (controls,
//! reloads, sweep, read, findings, commit, memory, watchdog, wait), and the drain at SIGTERM.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::commit::Pending;
use super::inputs::{Input, Opener, Resume};
use super::notify::Notifier;
use super::reload::{load_feeds, start_reloader, Compiled};
use super::state::{new_analyzer, rebuild_detector, stored_snapshot};
use super::writer::Writer;
use super::{signed, Control, Counters, DetectorCounts, Pipeline};
use crate::config::{Config, SourceConfig};
use crate::detect::{Observation, Snapshot};
use crate::http;
use crate::input::watch::{Wakeup, Woken};
use crate::integrity::flagged::FlaggedScripts;
use crate::metrics::Metrics;
use crate::store::Store;

/// Bytes read from one input before the loop looks at signals and batches.
pub(super) const READ_BUDGET: usize = 1 << 20;

/// Bytes read (a burst) after which an idle pipeline gives freed memory back.
pub(super) const RELEASE_AFTER: u64 = 16 << 20;

/// How long SIGTERM may spend committing the last batch.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Pipeline {
    pub(super) fn start(
        config: Config,
        Compiled { rules, matchers }: Compiled,
        metrics: Arc<Metrics>,
        http: Arc<http::Shared>,
    ) -> Result<Pipeline, String> {
        let db = config.db_path();
        let mut store = Store::open(&db, &config.agency)
            .map_err(|e| format!("cannot open the store {}: {e}", db.display()))?;
        let zone = config.time_zone.iana_name();
        match store.record_identity(zone, config.agency_name.as_deref()) {
            Ok(Some(before)) => tracing::info!(
                "time zone {} recorded in the store (it said {before}): monthly figures count months in it",
                zone.unwrap_or("system")
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot record the time zone and agency name in the store: {e}"),
        }
        let recovery = store
            .recovery()
            .map_err(|e| format!("cannot read the store {}: {e}", db.display()))?;
        metrics.restore_incidents(
            &store
                .totals()
                .map_err(|e| format!("cannot read the store {}: {e}", db.display()))?,
        );
        let floor = recovery.max_detector_id.unwrap_or(0);
        let pipeline = &config.pipeline;
        let stored = recovery
            .detector
            .as_deref()
            .map(|h| stored_snapshot(h, &recovery.detector_rows));
        let ids: Vec<String> = rules.rules.iter().map(|r| r.id.clone()).collect();
        // The stored rows are rewritten whole at the first commit when they
        // are not exactly the keys the detector now holds.
        let (detector, compact) = match stored {
            // Open incidents come back without their sample and fields: the
            // incident rows hold them (see `Detector::persisted`).
            Some(Ok((state, unreadable))) => {
                if unreadable > 0 {
                    warn!(
                        "{unreadable} stored detector keys unreadable; they start counting afresh"
                    );
                }
                let same_rules = state.rules == ids;
                let keyed = state.keyed;
                let d = rebuild_detector(&rules, pipeline, &state.rules, state.snapshot, floor);
                let live = d.keys_tracked() + d.rate_clients();
                let exact = keyed && same_rules && live == recovery.detector_rows.len();
                (d, !exact)
            }
            Some(Err(e)) => {
                warn!("stored detector state unreadable ({e}); starting with none: keys below their threshold start counting afresh");
                let d = rebuild_detector(&rules, pipeline, &[], Snapshot::default(), floor);
                (d, true)
            }
            None => {
                let d = rebuild_detector(&rules, pipeline, &[], Snapshot::default(), floor);
                (d, true)
            }
        };
        load_feeds(&rules.feeds, &metrics);
        let feed_reloader = start_reloader(
            &rules.feeds,
            &metrics,
            config.pipeline.sweep_interval,
            false,
        )?;
        let flagged = FlaggedScripts::new();
        let mut analyzer = new_analyzer(&config, rules, matchers, detector, &flagged);
        let wakeup = Wakeup::new();
        let inherited = crate::input::syslog::activation::inherited();
        let mut inputs = Vec::new();
        {
            let opener = Opener {
                config: &config,
                waker: wakeup.waker(),
                inherited: &inherited,
            };
            for input in &config.inputs {
                let mut input = input.clone();
                // "end" is for an input's very first start only: one that ran
                // before reads files that appeared while it was down from their
                // beginning.
                if recovery.known_inputs.contains(&input.name) {
                    input.source.not_first_start();
                }
                inputs.push(opener.open(
                    &mut analyzer,
                    &input,
                    Resume::stored(&recovery, &input.name),
                )?);
            }
        }
        info!(
            agency = %config.agency,
            rules = analyzer.rules().rules.len(),
            digest = %analyzer.rules().digest(),
            inputs = inputs.len(),
            store = %db.display(),
            commits = recovery.commits,
            "canhgac starting"
        );
        let writer = Writer::start(store, wakeup.waker())?;
        let returned_at_start = analyzer.detector().keys_returned();
        let mut pipeline = Pipeline {
            config,
            writer,
            in_flight: false,
            refused: None,
            marks: Vec::new(),
            analyzer,
            inputs,
            wakeup,
            inherited,
            pending: Pending::default(),
            counters: Counters::default(),
            last_commit: Instant::now(),
            commit_gap: Duration::ZERO,
            state_compact: compact,
            state_rows: recovery.detector_rows_stored,
            next_expiry: Instant::now(),
            next_sweep: Instant::now(),
            retry: None,
            read_since_release: 0,
            grown: HashSet::new(),
            grown_flushed: Instant::now(),
            flush_grown: false,
            notifier: Notifier::from_env(),
            metrics,
            http,
            rule_events: Vec::new(),
            detector_published: DetectorCounts::default(),
            returned_unwarned_since: Some(returned_at_start),
            integrity: None,
            flagged,
            integrity_restart: false,
            feed_reloader,
            preparing: None,
            feed_names: Vec::new(),
        };
        // A crash may have lost the rows of incidents grown since they were
        // last written (their counts are in the detector's keys).
        pipeline.grown = pipeline
            .analyzer
            .detector()
            .open_incidents()
            .map(|i| i.id)
            .collect();
        pipeline.rules_changed();
        pipeline.start_integrity()?;
        Ok(pipeline)
    }

    /// The pipeline's loop, one turn a read: each step below is a method
    /// named for what it does, in the order a turn takes them.
    pub(super) fn run(mut self, control: Receiver<Control>) -> Result<(), String> {
        self.become_ready();
        while self.take_controls(&control) {
            self.reload_when_prepared();
            self.sweep_when_due();
            // While the store refuses commits, reading more would only grow
            // what waits in memory.
            let read = if self.retry.is_none() { self.read() } else { 0 };
            self.take_findings();
            self.commit_when_due(read);
            if read == 0 && self.all_stored() {
                self.release_memory();
            }
            self.restart_integrity_when_stored();
            self.report_health();
            if read == 0 || self.retry.is_some() {
                self.wait_for_work();
            }
        }
        self.drain()
    }

    fn become_ready(&mut self) {
        self.sweep();
        self.next_sweep = Instant::now() + self.config.pipeline.sweep_interval;
        self.metrics.ready.store(true, Ordering::Relaxed);
        self.notifier.ready(&self.status());
        info!("ready: {}", self.status());
    }

    /// Starts the reloads the main thread asked for; `false` once it asked
    /// for a stop.
    fn take_controls(&mut self, control: &Receiver<Control>) -> bool {
        let mut stop = false;
        while let Ok(c) = control.try_recv() {
            match c {
                Control::Reload => self.prepare_reload(),
                Control::Stop => stop = true,
            }
        }
        !stop
    }

    fn sweep_when_due(&mut self) {
        let now = Instant::now();
        if now >= self.next_sweep {
            self.sweep();
            self.next_sweep = now + self.config.pipeline.sweep_interval;
        }
    }

    /// A reload that changed `[integrity]` starts the new watcher once what
    /// the old one found is stored: it loads its state from the store.
    fn restart_integrity_when_stored(&mut self) {
        if self.integrity_restart && self.all_stored() {
            if let Err(e) = self.start_integrity() {
                error!("integrity watcher not restarted: {e}");
            }
        }
    }

    /// The watchdog ping (only while healthy: see the module docs) and the
    /// status line.
    fn report_health(&mut self) {
        let healthy = self.all_stored()
            || self
                .notifier
                .watchdog
                .is_some_and(|w| self.last_commit.elapsed() < w / 2);
        self.notifier.watchdog(healthy);
        if self.notifier.status_due() {
            let status = self.status();
            self.notifier.status(&status);
        }
    }

    /// Sleeps until the next thing due (a sweep, a commit retry, a paced
    /// commit, a watchdog ping) or until an input has news.
    fn wait_for_work(&mut self) {
        let mut until = self.next_sweep;
        if let Some(retry) = self.retry {
            until = until.min(retry.at);
        }
        if self.pending.any() {
            let mut at = self.last_commit + self.commit_gap;
            if let Some(due) = self.pending.due_at(self.config.pipeline.batch_interval) {
                at = at.max(due);
            }
            until = until.min(at);
        }
        if let Some(w) = self.notifier.watchdog {
            until = until.min(Instant::now() + w / 4);
        }
        // New content is read by the next turn; only a change of files
        // brings the sweep forward (not every datagram).
        let woken = self
            .wakeup
            .wait(until.saturating_duration_since(Instant::now()));
        if woken == Woken::Changed {
            self.next_sweep = Instant::now();
        }
    }

    /// SIGTERM: read what the files hold already (for up to
    /// [`DRAIN_TIMEOUT`]), commit it, then stop. Lines written just before
    /// the stop are stored, not left for the next start: the stop request
    /// often wins the race against the wakeup for them.
    pub(super) fn drain(mut self) -> Result<(), String> {
        self.notifier.stopping();
        if let Some(r) = self.feed_reloader.take() {
            r.stop();
        }
        for input in &mut self.inputs {
            input.reader.begin_drain();
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while Instant::now() < deadline {
            // Asked before the read: a receiver done by then has handed
            // over all it took, so a read that then finds nothing is the end.
            let drained = self.inputs.iter().all(|i| i.reader.drained());
            let read = self.read();
            if read == 0 && drained {
                break;
            }
            // What is read is analysed into the pending batch; past a few
            // batches it is committed on the way, as when running.
            if self.outgrown() {
                if let Err(e) = self.commit() {
                    warn!("commit while stopping failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if read == 0 {
                self.wakeup.wait(Duration::from_millis(20));
            }
        }
        self.flush_grown = true;
        if !self.grown.is_empty() {
            self.pending.mark_state_changed();
        }
        if let Some(w) = self.integrity.take() {
            for f in w.stop() {
                self.pending_finding(f);
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while !self.all_stored() {
            match self.commit() {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    warn!("final commit failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    // Checkpoints did not move: the next start reads these lines again.
                    return Err(format!("stopping without the last batch stored: {e}"));
                }
            }
        }
        info!(
            lines = self.counters.lines,
            commits = self.counters.commits,
            "stopped"
        );
        Ok(())
    }

    pub(super) fn sweep(&mut self) {
        // Expiry reads every key: at the sweep interval, not at every
        // wakeup that brings a sweep forward.
        if Instant::now() >= self.next_expiry {
            self.expire_keys();
            self.next_expiry = Instant::now() + self.config.pipeline.sweep_interval;
        }
        self.flush_grown_when_due();
        let mut dirs = Vec::new();
        for input in &mut self.inputs {
            for n in input.reader.sweep() {
                let stand_in = match &input.config.source {
                    SourceConfig::Files { path, .. } if n.nothing_matched => {
                        self.config.stands_in_for(path)
                    }
                    _ => None,
                };
                if let Some(other) = stand_in {
                    info!(input = %input.config.name, "{}; input {} reads the same lines", n.message, other.name);
                } else if n.problem {
                    warn!(input = %input.config.name, config = %input.config.at.0, "{}", n.message);
                } else {
                    info!(input = %input.config.name, "{}", n.message);
                }
            }
            dirs.extend(input.reader.watch_dirs());
        }
        dirs.sort();
        dirs.dedup();
        for n in self.wakeup.set_dirs(&dirs) {
            warn!("{n}");
        }
        self.publish_input_stats();
    }

    /// One read from every input; bytes handed to the analyzer.
    pub(super) fn read(&mut self) -> usize {
        let Pipeline {
            analyzer,
            inputs,
            pending,
            counters,
            rule_events,
            read_since_release,
            grown,
            ..
        } = self;
        let mut total = 0;
        // A backlog is read in event-time order across inputs, within a
        // bound: an input whose reading is ahead of another that is behind
        // waits for it, so that one attacker's lines in two inputs meet in
        // the detector as they would live, within its lateness.
        let stats: Vec<(u64, Option<Timestamp>)> = inputs
            .iter()
            .map(|i| (i.reader.stats().bytes_behind, i.source.newest()))
            .collect();
        let slowest = stats
            .iter()
            .filter(|(behind, _)| *behind > 0)
            .filter_map(|(_, newest)| *newest)
            .min();
        let ahead_by = signed(self.config.pipeline.max_lateness) / 2;
        let waits: Vec<bool> = stats
            .iter()
            .map(|&(behind, newest)| match (slowest, newest) {
                (Some(slowest), Some(newest)) if behind > 0 => {
                    newest.duration_since(slowest) > ahead_by
                }
                _ => false,
            })
            .collect();
        // Should the inputs that hold the others back give nothing (their
        // size was stale), the others are read all the same: waiting must
        // never stop reading.
        let passes = [false, true];
        for second in passes {
            if second && (total > 0 || !waits.contains(&true)) {
                break;
            }
            for (input, &wait) in inputs.iter_mut().zip(&waits) {
                if wait != second {
                    continue;
                }
                let Input {
                    config,
                    reader,
                    source,
                    clock,
                    ..
                } = input;
                let now = Timestamp::now();
                source.times().set_reference(now);
                let before = source.lines();
                let mut on_event = |_line: u64, ev: &crate::event::Event, seen: Observation| {
                    if let Some(c) = rule_events.get(ev.rule) {
                        c.inc();
                    }
                    match seen {
                        Observation::Opened(id) => {
                            pending.dirty.insert(id);
                            pending.opened_by.insert(id, config.name.clone());
                            counters.incidents_opened += 1;
                        }
                        Observation::Joined(id) => {
                            grown.insert(id);
                        }
                        Observation::Counted | Observation::Ignored => {}
                    }
                };
                let n = reader.read(READ_BUDGET, &mut |origin, lines| {
                    analyzer.feed_from(source, lines, now, origin, &mut on_event);
                });
                if let Some(newest) = source.newest() {
                    if clock.is_none_or(|(t, _)| t < newest) {
                        *clock = Some((newest, Instant::now()));
                    }
                }
                if n > 0 {
                    let lines = source.lines() - before;
                    pending.lines += lines;
                    pending.bytes += n as u64;
                    pending.since.get_or_insert_with(Instant::now);
                    counters.lines += lines;
                    counters.bytes += n as u64;
                    *read_since_release += n as u64;
                    total += n;
                }
            }
        }
        if total > 0 {
            self.publish_input_stats();
        }
        total
    }

    /// Gives the memory freed after a burst back to the system, once the
    /// pipeline is idle again. glibc keeps what a burst freed for later
    /// allocations (a burst of 1 GB left 300 MB resident for good); its
    /// `malloc_trim` returns the free pages of every arena.
    pub(super) fn release_memory(&mut self) {
        if self.read_since_release < RELEASE_AFTER {
            return;
        }
        self.read_since_release = 0;
        for input in &mut self.inputs {
            input.reader.shrink();
            input.source.shrink();
        }
        self.analyzer.detector_mut().shrink();
        self.grown.shrink_to_fit();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes no pointers and has no preconditions;
        // glibc locks each arena while it trims it, so other threads may
        // allocate meanwhile. It only changes which free pages the process
        // keeps mapped.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
