//! What waits to be stored, when a commit is due, and the batch itself: incidents,
//! checkpoints and detector state of the same lines, for one transaction on the
//! writer's thread.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tracing::{error, warn};

use super::state::{all_changes, DetectorState, COMPACT_FACTOR, COMPACT_SLACK};
use super::writer::{stopped, Done, KeyRows, OwnedBatch};
use super::{signed, Pipeline};
use crate::detect::Incident;
use crate::input::checkpoint::FileCheckpoint;
use crate::input::source::Position;
use crate::integrity::stored::IntegrityOp;
use crate::store::{CommitInfo, IncidentRecord, StoreError};

/// Commits are at least this many times their own duration apart.
pub(super) const COMMIT_GAP_FACTOR: u32 = 10;

/// ... and never further apart than this (while lines wait).
pub(super) const MAX_COMMIT_GAP: Duration = Duration::from_secs(5);

/// Batches' worth of lines after which a commit is due however recent
/// the last one was: what waits in memory grows with them (changed keys,
/// an evicted key's name staying until its row is deleted), as does what
/// a crash makes the restart read again.
pub(super) const MAX_BATCHES: u64 = 4;

/// Grown incidents written with every commit; more wait for the interval.
pub(super) const GROWN_EVERY_COMMIT: usize = 64;

pub(super) const GROWN_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Log a batch needs before the batch interval makes it due: below it, a
/// batch of counts and checkpoints waits up to [`MAX_COMMIT_GAP`]. A
/// commit writes about four pages whatever it holds, 16 KiB with the
/// checkpoint's copy: this keeps that under a third of the log.
pub(super) const TRICKLE_BYTES: u64 = 48 * 1024;

/// Longest pause between commit attempts while the store refuses them.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(5);

/// What has happened since the last commit.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) lines: u64,
    /// Bytes of log those lines came from.
    pub(super) bytes: u64,
    pub(super) since: Option<Instant>,
    /// Incidents opened.
    pub(super) dirty: HashSet<u64>,
    /// Closed incidents not yet in a batch.
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

    /// The detector's state changed, or incident rows wait to be written,
    /// with no line read: a commit is due as a trickle's would be.
    pub(super) fn mark_state_changed(&mut self) {
        self.state_changed = true;
        self.since.get_or_insert_with(Instant::now);
    }

    /// When the batch's age makes it due: `interval` after its first
    /// change, or [`MAX_COMMIT_GAP`] for a trickle (see [`TRICKLE_BYTES`]).
    pub(super) fn due_at(&self, interval: Duration) -> Option<Instant> {
        let wait = if self.bytes >= TRICKLE_BYTES {
            interval
        } else {
            interval.max(MAX_COMMIT_GAP)
        };
        self.since.map(|s| s + wait)
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
            && (self.outgrown()
                || (read == 0 && batch.urgent())
                || (awaited && (read == 0 || paced))
                || (paced
                    && (batch.lines >= batch_lines
                        || batch
                            .due_at(self.config.pipeline.batch_interval)
                            .is_none_or(|at| Instant::now() >= at))))
    }

    /// Past what a batch may hold before it is committed, however recent
    /// the last commit: [`MAX_BATCHES`] batches of lines, or a batch's
    /// worth of incidents (with their samples and fields: a flood of
    /// attacks from fresh addresses opens one a line).
    pub(super) fn outgrown(&self) -> bool {
        let batch_lines = self.config.pipeline.batch_lines;
        let incidents = self.pending.dirty.len()
            + self.pending.closed.len()
            + self.analyzer.detector().closed_count();
        self.pending.lines >= MAX_BATCHES * batch_lines as u64 || incidents >= batch_lines
    }

    /// Hands the batch to the writer when due and none is in flight; takes
    /// the outcome of the one in flight when it is done. A batch past
    /// [`Pipeline::outgrown`] waits for the one in flight (backpressure). A
    /// refused batch is retried after a pause that doubles up to
    /// [`MAX_RETRY`], kept whole meanwhile, before anything newer.
    pub(super) fn commit_when_due(&mut self, read: usize) {
        self.take_outcome(false);
        if self.in_flight {
            if !self.outgrown() {
                return;
            }
            self.take_outcome(true);
        }
        if self.in_flight || self.retry.is_some_and(|r| Instant::now() < r.at) {
            return;
        }
        if let Some(batch) = self.refused.take() {
            self.hand_over(batch);
        } else if self.commit_due(read) {
            self.submit();
        }
    }

    /// Everything read so far, stored: the batch in flight and a refused
    /// one first, then what waits. For a stop and a reload, which need the
    /// store to hold it all before they go on.
    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        if self.pending.any() {
            self.submit();
            self.flush()?;
        }
        Ok(())
    }

    /// Waits for the batch in flight, and retries a refused one once.
    fn flush(&mut self) -> Result<(), StoreError> {
        loop {
            if let Some(Err(e)) = self.take_outcome(true) {
                return Err(e);
            }
            let Some(batch) = self.refused.take() else {
                return Ok(());
            };
            self.hand_over(batch);
            if !self.in_flight {
                // Not even handed over: the writer thread is gone.
                return Err(stopped());
            }
        }
    }

    /// Nothing read waits to be stored, nor is being stored.
    pub(super) fn all_stored(&self) -> bool {
        !self.pending.any() && !self.in_flight && self.refused.is_none()
    }

    /// Prepares the batch (incidents, checkpoints and detector state of the
    /// same lines, for one transaction) and hands it to the writer. From
    /// here on the batch holds what was pending: the detector's changes
    /// are taken, and a refused batch comes back whole.
    fn submit(&mut self) {
        let rules = Arc::clone(self.analyzer.rules());
        let detector = self.analyzer.detector();
        let state = DetectorState {
            rules: rules.rules.iter().map(|r| r.id.clone()).collect(),
            snapshot: detector.header(),
            keyed: true,
        };
        let live = (detector.keys_tracked() + detector.rate_clients()) as u64;
        let compact = self.state_compact
            || self.state_rows + detector.changed() as u64 > COMPACT_FACTOR * live + COMPACT_SLACK;
        let mut header = Vec::new();
        if let Err(e) = serde_json::to_writer(&mut header, &state) {
            // Plain data: this does not happen. Were it to, nothing is
            // taken yet, and the next commit tries again.
            error!("cannot serialise the detector state: {e}");
            return;
        }
        // Serialised on the writer's thread.
        let changes = if compact {
            all_changes(detector.snapshot())
        } else {
            detector.changes()
        };
        let changed = (changes.keys.len() + changes.rates.len()) as u64;
        self.pending
            .closed
            .extend(self.analyzer.detector_mut().take_closed());
        let detector = self.analyzer.detector();
        let mut incidents: Vec<IncidentRecord> = self
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
        incidents.extend(
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
        incidents.append(&mut self.pending.integrity_incidents);
        let inputs: Vec<String> = self.inputs.iter().map(|i| i.config.name.clone()).collect();
        let mut checkpoints: Vec<FileCheckpoint> = Vec::new();
        let mut cursors: Vec<(String, String)> = Vec::new();
        for input in &self.inputs {
            match input.reader.position() {
                Position::Files(cps) => checkpoints.extend(cps),
                Position::Cursor(Some(c)) => cursors.push((input.config.name.clone(), c)),
                Position::Cursor(None) | Position::Unresumable => {}
            }
        }
        let marks = self.inputs.iter().map(|i| i.reader.commit_mark()).collect();
        self.state_rows = if compact {
            live
        } else {
            self.state_rows + changed
        };
        self.state_compact = false;
        self.analyzer.detector_mut().persisted();
        if flush_grown {
            self.grown.clear();
            self.grown_flushed = Instant::now();
            self.flush_grown = false;
        } else {
            for inc in &self.pending.closed {
                self.grown.remove(&inc.id);
            }
        }
        let integrity_ops = std::mem::take(&mut self.pending.integrity_ops);
        self.pending = Pending::default();
        self.publish_detector();
        self.marks = marks;
        self.hand_over(Box::new(OwnedBatch {
            incidents,
            inputs,
            checkpoints,
            cursors,
            header,
            keys: KeyRows::Changes(changes),
            compact,
            integrity_ops,
        }));
    }

    /// The outcome of the batch in flight, if there is one and it is done
    /// (or `wait`).
    fn take_outcome(&mut self, wait: bool) -> Option<Result<(), StoreError>> {
        if !self.in_flight {
            return None;
        }
        let done = if wait {
            self.writer.wait_done()
        } else {
            Some(self.writer.try_done()?)
        };
        self.in_flight = false;
        let Some(Done {
            result,
            batch,
            seconds,
        }) = done
        else {
            // The writer thread is gone (a panic), and the batch with it:
            // nothing can be stored any more. Checkpoints stay where the
            // last commit put them, the watchdog stops, and the restart
            // reads those lines again.
            let e = stopped();
            self.commit_failed(&e);
            return Some(Err(e));
        };
        Some(match result {
            Ok(info) => {
                self.stored(&info, &batch, seconds);
                Ok(())
            }
            Err(e) => {
                self.commit_failed(&e);
                self.refused = Some(batch);
                Err(e)
            }
        })
    }

    fn stored(&mut self, info: &CommitInfo, batch: &OwnedBatch, seconds: f64) {
        self.retry = None;
        for (input, mark) in self.inputs.iter_mut().zip(&self.marks) {
            input.reader.committed(*mark);
        }
        self.metrics.committed(seconds);
        let new: HashSet<u64> = info.inserted.iter().map(|(id, _)| *id).collect();
        for r in batch
            .incidents
            .iter()
            .filter(|r| new.contains(&r.detector_id))
        {
            self.metrics
                .incidents
                .with_label_values(&[&r.category, &r.severity])
                .inc();
        }
        self.counters.commits += 1;
        self.last_commit = Instant::now();
        self.commit_gap =
            (Duration::from_secs_f64(seconds) * COMMIT_GAP_FACTOR).min(MAX_COMMIT_GAP);
    }

    fn hand_over(&mut self, batch: Box<OwnedBatch>) {
        match self.writer.submit(batch) {
            Ok(()) => self.in_flight = true,
            Err((e, batch)) => {
                self.commit_failed(&e);
                self.refused = Some(batch);
            }
        }
    }

    /// A batch was refused (or could not be handed over): counted, logged,
    /// and retried after a pause; reading waits meanwhile.
    fn commit_failed(&mut self, e: &StoreError) {
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

    /// Grown incidents left for the minute's flush are written when it
    /// comes, with or without lines to carry them: a scan that stops does
    /// not leave incident rows behind their counts until the next line.
    pub(super) fn flush_grown_when_due(&mut self) {
        if !self.grown.is_empty() && self.grown_flushed.elapsed() >= GROWN_FLUSH_INTERVAL {
            self.pending.mark_state_changed();
        }
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
            self.pending.mark_state_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_waits_for_the_longest_gap_a_batch_that_pays_for_its_commit_does_not() {
        let interval = Duration::from_secs(1);
        let since = Instant::now();
        let mut batch = Pending {
            since: Some(since),
            bytes: TRICKLE_BYTES - 1,
            ..Pending::default()
        };
        assert_eq!(batch.due_at(interval), Some(since + MAX_COMMIT_GAP));
        batch.bytes = TRICKLE_BYTES;
        assert_eq!(batch.due_at(interval), Some(since + interval));
        // A batch interval set longer than the gap is kept either way.
        let long = MAX_COMMIT_GAP * 2;
        assert_eq!(batch.due_at(long), Some(since + long));
        batch.bytes = 0;
        assert_eq!(batch.due_at(long), Some(since + long));
        assert_eq!(Pending::default().due_at(interval), None);
    }
}
