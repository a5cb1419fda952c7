//! What waits to be stored, when a commit is due, and the commit itself: incidents,
//! checkpoints and detector state of the same lines in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tracing::{error, warn};

use super::state::{all_rows, state_rows, DetectorState, COMPACT_FACTOR, COMPACT_SLACK};
use super::{signed, Pipeline};
use crate::detect::Incident;
use crate::input::checkpoint::FileCheckpoint;
use crate::input::source::Position;
use crate::integrity::stored::IntegrityOp;
use crate::store::{Batch, DetectorWrite, IncidentRecord, StoreError};

/// Commits are at least this many times their own duration apart.
pub(super) const COMMIT_GAP_FACTOR: u32 = 10;

/// ... and never further apart than this (while lines wait).
pub(super) const MAX_COMMIT_GAP: Duration = Duration::from_secs(5);

/// Batches' worth of lines after which a commit is due however recent
/// the last one was.
pub(super) const MAX_BATCHES: u64 = 4;

/// Grown incidents written with every commit; more wait for the interval.
pub(super) const GROWN_EVERY_COMMIT: usize = 64;

pub(super) const GROWN_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest pause between commit attempts while the store refuses them.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(5);

/// What has happened since the last commit.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) lines: u64,
    pub(super) since: Option<Instant>,
    /// Incidents opened.
    pub(super) dirty: HashSet<u64>,
    /// Closed incidents not yet stored (kept across failed commits).
    pub(super) closed: Vec<Incident>,
    /// Input of the line that opened each new incident.
    pub(super) opened_by: HashMap<u64, String>,
    /// Web-root integrity: incidents (complete, numbered) and baseline
    /// changes from the watcher.
    pub(super) integrity_incidents: Vec<IncidentRecord>,
    pub(super) integrity_ops: Vec<IntegrityOp>,
    /// The detector's state changed without lines (expiry), or incident
    /// rows wait to be written (a stop).
    pub(super) state_changed: bool,
}

/// A commit the store refused: when to try again, and the pause that led there.
#[derive(Clone, Copy)]
pub(super) struct Retry {
    pub(super) at: Instant,
    pub(super) pause: Duration,
}

impl Pending {
    /// Something waits to be committed.
    pub(super) fn any(&self) -> bool {
        self.lines > 0
            || self.state_changed
            || !self.integrity_ops.is_empty()
            || !self.integrity_incidents.is_empty()
    }

    /// Something an analyst waits for: a new incident. Other changes
    /// (counts, grown incidents, checkpoints) wait for the batch interval,
    /// so that a trickle of lines is not a commit, and a page write, each.
    pub(super) fn urgent(&self) -> bool {
        !self.opened_by.is_empty() || !self.integrity_incidents.is_empty()
    }
}

impl Pipeline {
    /// Whether what waits should be committed now. Caught up, a new incident
    /// is committed at once; otherwise commits are paced (see the module
    /// docs), except past a few batches' worth, which keeps what waits in
    /// memory bounded, and for senders that wait for a commit (RELP): their
    /// window, not our batch, is the limit.
    fn commit_due(&self, read: usize) -> bool {
        let batch = &self.pending;
        let batch_lines = self.config.pipeline.batch_lines as u64;
        let paced = self.last_commit.elapsed() >= self.commit_gap;
        let awaited = self.inputs.iter().any(|i| i.reader.awaiting_commit());
        batch.any()
            && (batch.lines >= MAX_BATCHES * batch_lines
                || (read == 0 && batch.urgent())
                || (awaited && (read == 0 || paced))
                || (paced
                    && (batch.lines >= batch_lines
                        || batch
                            .since
                            .is_none_or(|s| s.elapsed() >= self.config.pipeline.batch_interval))))
    }

    /// Commits when due and the store is not being waited for; a failed
    /// commit is retried after a pause that doubles up to [`MAX_RETRY`],
    /// the batch kept whole meanwhile.
    pub(super) fn commit_when_due(&mut self, read: usize) {
        if !self.commit_due(read) || self.retry.is_some_and(|r| Instant::now() < r.at) {
            return;
        }
        match self.commit() {
            Ok(()) => self.retry = None,
            Err(e) => {
                self.counters.commit_failures += 1;
                self.metrics.commit_failures.inc();
                self.metrics.store_ok.store(false, Ordering::Relaxed);
                let pause = self
                    .retry
                    .map_or(Duration::from_millis(200), |r| (r.pause * 2).min(MAX_RETRY));
                if e.is_retryable() {
                    warn!("commit failed, retrying in {pause:?}: {e}");
                } else {
                    error!("commit failed, retrying in {pause:?}: {e}");
                }
                self.retry = Some(Retry {
                    at: Instant::now() + pause,
                    pause,
                });
            }
        }
    }

    /// Stores the batch: incidents, checkpoints and detector state in one
    /// transaction. On error the batch stays pending, whole.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.pending
            .closed
            .extend(self.analyzer.detector_mut().take_closed());
        let rules = Arc::clone(self.analyzer.rules());
        let detector = self.analyzer.detector();
        let mut records: Vec<IncidentRecord> = self
            .pending
            .closed
            .iter()
            .map(|inc| {
                let input = self.pending.opened_by.get(&inc.id).cloned();
                IncidentRecord::new(rules.rule(inc.rule), inc, false, input)
            })
            .collect();
        let flush_grown = self.flush_grown
            || self.grown.len() <= GROWN_EVERY_COMMIT
            || self.grown_flushed.elapsed() >= GROWN_FLUSH_INTERVAL;
        records.extend(
            detector
                .open_incidents()
                .filter(|inc| {
                    self.pending.dirty.contains(&inc.id)
                        || (flush_grown && self.grown.contains(&inc.id))
                })
                .map(|inc| {
                    let input = self.pending.opened_by.get(&inc.id).cloned();
                    IncidentRecord::new(rules.rule(inc.rule), inc, true, input)
                }),
        );
        records.extend(self.pending.integrity_incidents.iter().cloned());
        let state = DetectorState {
            rules: rules.rules.iter().map(|r| r.id.clone()).collect(),
            snapshot: detector.header(),
            keyed: true,
        };
        self.state_buf.clear();
        serde_json::to_writer(&mut self.state_buf, &state)
            .map_err(|e| StoreError::Invalid(format!("cannot serialise detector state: {e}")))?;
        let live = (detector.keys_tracked() + detector.rate_clients()) as u64;
        let compact = self.state_compact
            || self.state_rows + detector.changed() as u64 > COMPACT_FACTOR * live + COMPACT_SLACK;
        let rows = if compact {
            all_rows(detector.snapshot())?
        } else {
            state_rows(detector.changes())?
        };
        let names: Vec<String> = self.inputs.iter().map(|i| i.config.name.clone()).collect();
        let mut checkpoints: Vec<FileCheckpoint> = Vec::new();
        let mut cursors: Vec<(String, String)> = Vec::new();
        for input in &self.inputs {
            match input.reader.position() {
                Position::Files(cps) => checkpoints.extend(cps),
                Position::Cursor(Some(c)) => cursors.push((input.config.name.clone(), c)),
                Position::Cursor(None) | Position::Unresumable => {}
            }
        }
        let info = self.store.commit(&Batch {
            incidents: &records,
            inputs: &names,
            checkpoints: &checkpoints,
            cursors: &cursors,
            detector: Some(DetectorWrite {
                header: &self.state_buf,
                rows: &rows,
                compact,
            }),
            extra_rows: Some(&self.pending.integrity_ops),
        })?;
        self.analyzer.detector_mut().persisted();
        for input in &mut self.inputs {
            input.reader.committed();
        }
        self.state_rows = if compact {
            live
        } else {
            self.state_rows + rows.len() as u64
        };
        self.state_compact = false;
        self.metrics.committed(started.elapsed().as_secs_f64());
        let new: HashSet<u64> = info.inserted.iter().map(|(id, _)| *id).collect();
        for r in records.iter().filter(|r| new.contains(&r.detector_id)) {
            self.metrics
                .incidents
                .with_label_values(&[&r.category, &r.severity])
                .inc();
        }
        self.publish_detector();
        if flush_grown {
            self.grown.clear();
            self.grown_flushed = Instant::now();
            self.flush_grown = false;
        } else {
            for inc in &self.pending.closed {
                self.grown.remove(&inc.id);
            }
        }
        self.pending = Pending::default();
        self.counters.commits += 1;
        self.last_commit = Instant::now();
        self.commit_gap = (started.elapsed() * COMMIT_GAP_FACTOR).min(MAX_COMMIT_GAP);
        Ok(())
    }

    /// Forgets keys whose window and cooldown have passed, in event time,
    /// by more than the lateness before the time every input has reached,
    /// so that no event the detector would still count can need them.
    ///
    /// An input's time is that of its newest event, moved on by the time
    /// it has been quiet since: one whose clock runs hours behind (a host
    /// in the wrong zone) holds expiry back while it logs, so its attackers'
    /// counts are not cut every sweep; a quiet one does not hold it back
    /// for ever.
    pub(super) fn expire_keys(&mut self) {
        let reached = self
            .inputs
            .iter()
            .filter_map(|i| i.clock)
            .map(|(t, at)| t.saturating_add(signed(at.elapsed())).unwrap_or(t))
            .min();
        let d = self.analyzer.detector_mut();
        let (Some(reached), Some(newest)) = (reached, d.watermark()) else {
            return;
        };
        let now = reached
            .min(newest)
            .checked_sub(d.lateness())
            .unwrap_or(Timestamp::MIN);
        let before = d.expired_keys();
        d.expire(now);
        if d.expired_keys() != before {
            self.pending.state_changed = true;
            self.pending.since.get_or_insert_with(Instant::now);
        }
    }
}
