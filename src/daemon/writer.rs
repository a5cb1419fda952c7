//! The store's writer thread: it commits the pipeline's batches while the
//! pipeline reads on.
//!
//! A commit was the pipeline's one long wait: catching up on a backlog,
//! 31% of the pipeline thread went into commits (SQLite and fsync), time in
//! which no line was analysed and a receiver's queue only filled. Now the
//! pipeline prepares a batch (incidents, every input's position, and the
//! detector's changed keys already serialised, all owned) and hands it
//! here; the transaction runs on this thread, on the other core.
//!
//! Exactly once is unchanged. A batch is a snapshot of the pipeline between
//! two lines, and batches are committed one at a time, in the order they
//! were made: the pipeline keeps at most one in flight, and a batch the
//! store refused comes back whole, to be retried before any later one
//! (reading pauses meanwhile, as it did). The thread owns the pipeline's
//! store connection; reads the pipeline still needs (a reload's recovery)
//! are jobs too, so they see every batch handed over before them.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use super::state::state_rows;
use crate::detect::Changes;
use crate::input::checkpoint::FileCheckpoint;
use crate::input::watch::Waker;
use crate::integrity::stored::IntegrityOp;
use crate::store::{
    Batch, CommitInfo, DetectorWrite, IncidentRecord, Recovery, StateRow, Store, StoreError,
};

/// A batch as the pipeline hands it over: everything the transaction
/// writes, owned.
#[derive(Debug, Default)]
pub(super) struct OwnedBatch {
    pub(super) incidents: Vec<IncidentRecord>,
    pub(super) inputs: Vec<String>,
    pub(super) checkpoints: Vec<FileCheckpoint>,
    pub(super) cursors: Vec<(String, String)>,
    /// The detector's header, serialised.
    pub(super) header: Vec<u8>,
    pub(super) keys: KeyRows,
    pub(super) compact: bool,
    pub(super) integrity_ops: Vec<IntegrityOp>,
}

/// The detector keys that changed, serialised here rather than on the
/// pipeline's thread.
#[derive(Debug)]
pub(super) enum KeyRows {
    Changes(Changes),
    Rows(Vec<StateRow>),
}

impl Default for KeyRows {
    fn default() -> Self {
        KeyRows::Rows(Vec::new())
    }
}

impl OwnedBatch {
    /// The batch as the store takes it, its keys serialised first (once:
    /// a refused batch keeps its rows for the retry).
    fn prepared(&mut self) -> Result<Batch<'_>, StoreError> {
        if let KeyRows::Changes(changes) = &mut self.keys {
            self.keys = KeyRows::Rows(state_rows(changes)?);
        }
        let KeyRows::Rows(rows) = &self.keys else {
            return Err(StoreError::Invalid("detector keys not serialised".into()));
        };
        Ok(Batch {
            incidents: &self.incidents,
            inputs: &self.inputs,
            checkpoints: &self.checkpoints,
            cursors: &self.cursors,
            detector: Some(DetectorWrite {
                header: &self.header,
                rows,
                compact: self.compact,
            }),
            extra_rows: Some(&self.integrity_ops),
        })
    }
}

/// A batch's outcome, with the batch: the pipeline counts its new
/// incidents, or keeps it to try again.
pub(super) struct Done {
    pub(super) result: Result<CommitInfo, StoreError>,
    pub(super) batch: Box<OwnedBatch>,
    /// How long the transaction took.
    pub(super) seconds: f64,
}

enum Job {
    Commit(Box<OwnedBatch>),
    Recovery(Sender<Result<Recovery, StoreError>>),
}

pub(super) struct Writer {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread with the pipeline's store; `waker` wakes the
    /// pipeline when a batch is done.
    pub(super) fn start(mut store: Store, waker: Waker) -> Result<Writer, String> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                for job in job_rx {
                    match job {
                        Job::Commit(mut batch) => {
                            let started = Instant::now();
                            let result = batch.prepared().and_then(|b| store.commit(&b));
                            let seconds = started.elapsed().as_secs_f64();
                            if done_tx
                                .send(Done {
                                    result,
                                    batch,
                                    seconds,
                                })
                                .is_err()
                            {
                                return;
                            }
                            waker.wake();
                        }
                        Job::Recovery(reply) => {
                            // The asker may have given up; nothing to do then.
                            let _ = reply.send(store.recovery());
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the store's writer thread: {e}"))?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands a batch over. The pipeline keeps one in flight at a time
    /// (see the module docs); this never blocks.
    pub(super) fn submit(
        &self,
        batch: Box<OwnedBatch>,
    ) -> Result<(), (StoreError, Box<OwnedBatch>)> {
        let Some(jobs) = &self.jobs else {
            return Err((stopped(), batch));
        };
        match jobs.send(Job::Commit(batch)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(Job::Commit(batch))) => Err((stopped(), batch)),
            Err(mpsc::SendError(Job::Recovery(_))) => Err((stopped(), Box::default())),
        }
    }

    /// The outcome of the batch in flight, if it is done.
    pub(super) fn try_done(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }

    /// Waits for the outcome of the batch in flight; `None` if the thread
    /// is gone.
    pub(super) fn wait_done(&self) -> Option<Done> {
        self.done.recv().ok()
    }

    /// What a restart would resume from, after every batch handed over.
    pub(super) fn recovery(&self) -> Result<Recovery, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job::Recovery(tx))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    /// Lets the thread finish what it was given, then joins it.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A batch or a read met a writer thread that is gone (it panicked).
pub(super) fn stopped() -> StoreError {
    StoreError::Invalid("the store's writer thread has stopped".into())
}
