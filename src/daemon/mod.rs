//! `canhgac run`: inputs, analysis and store wired into one pipeline, under
//! systemd's eye.
//!
//! One thread runs the pipeline: it sweeps and reads the inputs, feeds the
//! [`Analyzer`], and makes a batch (incidents, every input's checkpoints
//! and the detector's state) after `batch_lines` lines, `batch_interval`, or
//! as soon as it has caught up with the files. The pipeline being one thread
//! is what makes the checkpoints exact: a batch is made between two lines,
//! so its detector state and checkpoints describe the same lines. The
//! `writer` thread commits each batch in one store transaction while the
//! pipeline reads on, one batch at a time and in order. The main thread
//! only waits for signals (and later serves HTTP).
//!
//! Exactly once: checkpoints move only in a successful commit, together with
//! the incidents and detector state of the lines before them. A restart
//! restores the detector and reads from the checkpoints, so it sees exactly
//! the lines after the last commit, with exactly the state they would have
//! met. A failed commit is retried with the same batch, before any later
//! one, and reading pauses meanwhile: backpressure instead of memory.
//!
//! Event time: the detector runs on the time written in the lines, never the
//! wall clock, with two guards. A line dated more than `max_clock_skew` ahead
//! of the clock is taken as read now (and counted), so a forged or mis-set
//! date cannot move an attacker's count into the future and hide the real
//! attempts after it. And events may arrive out of order by up to
//! `max_lateness` (several inputs, a backlog): they still meet the events of
//! their own window. A backlog is read across inputs in event-time order
//! within half that bound, so a restart that finds lines waiting in several
//! inputs makes the incidents that reading them live made. Keys expire at
//! each sweep, once the newest event seen is past their window or cooldown by
//! the lateness: no event the detector would still count can need them.
//!
//! Cost: a commit writes the keys that changed since the last one, appended
//! as rows of `detector_keys` (see [`crate::store`]), never the whole state;
//! the rows are rewritten from the live keys once they outnumber them
//! [`COMPACT_FACTOR`] to one, which each changed key pays for once. Commits
//! are paced: at least [`COMMIT_GAP_FACTOR`] times the last commit's own
//! duration apart, and only as soon as the files are caught up when a new
//! incident waits; counts, grown incidents and checkpoints wait for the
//! batch interval, so a trickle of lines is not a commit (and a page
//! written) each. A commit costs a few pages whatever it holds (the input's
//! checkpoint, the detector's header, the last page of its key rows), so a
//! batch of fewer than [`TRICKLE_BYTES`] of log waits up to
//! [`MAX_COMMIT_GAP`] instead.
//!
//! Watchdog: `WATCHDOG=1` goes out from the pipeline loop itself, and only
//! while the pipeline is healthy: nothing waits to be stored, or a commit
//! succeeded within half the watchdog interval. A pipeline stuck in a read or
//! unable to commit stops the pings, and systemd restarts it; nothing is lost
//! by the restart, since checkpoints never passed uncommitted lines.
//!
//! Rooms: this file holds [`run`] (signals, HTTP, the pipeline thread) and the
//! [`Pipeline`]'s state; its steps live by idea: `pipeline` (start, the loop,
//! reading, the drain), `inputs` (opening them where they left off), `commit`
//! (what waits, when it is due, the batch), `writer` (the thread that runs
//! the transaction), `state` (the detector as
//! stored), `reload` (SIGHUP, feeds), `webroots` (the integrity watcher's
//! findings), `publish` (metrics) and `notify` (sd_notify).

mod commit;
mod inputs;
mod notify;
mod pipeline;
mod publish;
mod reload;
mod state;
mod webroots;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use prometheus::IntCounter;
use tracing::{info, warn};

use crate::analyze::Analyzer;
use crate::config::Config;
use crate::feeds::reload::Reloader;
use crate::forward::Forwarder;
use crate::http;
use crate::input::syslog::Bound;
use crate::input::watch::Wakeup;
use crate::integrity::flagged::FlaggedScripts;
use crate::integrity::watch::Watcher;
use crate::metrics::Metrics;
use crate::store::Store;
use commit::{Pending, Retry};
use inputs::Input;
use notify::Notifier;
use reload::{load_rules, PreparingReload};
use writer::{OwnedBatch, Writer};

/// What the main thread asks of the pipeline.
#[derive(Debug)]
pub enum Control {
    Reload,
    Stop,
}

/// Says which inputs the config leaves out on this host, and why: an input
/// that reads nothing must not look like a quiet one.
pub(crate) fn log_inputs_left_out(config: &Config) {
    for (name, file) in &config.inputs_left_out {
        info!(
            input = %name,
            "not read: {} exists, and the same lines are read there",
            file.display()
        );
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Errors that stop it from
/// starting (config, rules, store) come back as one message.
pub fn run(config_path: &Path) -> Result<(), String> {
    tune_allocator();
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    log_inputs_left_out(&config);
    let compiled = load_rules(&config, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;

        let metrics = Arc::new(
            Metrics::new(
                config.db_path(),
                config.time_zone.clone(),
                config.organisation.report_within_days,
            )
            .map_err(|e| format!("cannot set up metrics: {e}"))?,
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let http_shared = http::Shared::new(&config, Arc::clone(&compiled.rules))?;
        let forward = config.forward.clone();
        let (agency, agency_name, db) = (
            config.agency.clone(),
            config.agency_name.clone(),
            config.db_path(),
        );
        let pipeline = Pipeline::start(
            config,
            compiled,
            Arc::clone(&metrics),
            Arc::clone(&http_shared),
        )?;
        // After the pipeline opened (and migrated) the store.
        let (forward_stop, forward_stopped) = tokio::sync::oneshot::channel::<()>();
        let forwarder = match forward {
            Some(f) => {
                let forwarder = Forwarder::open(f, &agency, agency_name, db, Arc::clone(&metrics))?;
                Some(tokio::spawn(forwarder.run(async move {
                    let _ = forward_stopped.await;
                })))
            }
            None => {
                disable_outbox(&db, &agency);
                None
            }
        };
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, metrics, http_shared, async move {
            let _ = http_stopped.await;
        }));
        let waker = pipeline.wakeup.waker();
        let (control_tx, control_rx) = mpsc::channel();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        let worker = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let result = pipeline.run(control_rx);
                let _ = done_tx.send(());
                result
            })
            .map_err(|e| format!("cannot start the pipeline thread: {e}"))?;
        let send = |c: Control, tx: &Sender<Control>| {
            // The pipeline may have ended already; its result says why.
            let _ = tx.send(c);
            waker.wake();
        };
        loop {
            tokio::select! {
                _ = hup.recv() => send(Control::Reload, &control_tx),
                _ = term.recv() => { send(Control::Stop, &control_tx); break; }
                _ = int.recv() => { send(Control::Stop, &control_tx); break; }
                _ = &mut done_rx => break,
            }
        }
        let joined = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| format!("pipeline thread: {e}"))?;
        let _ = http_stop.send(());
        let _ = forward_stop.send(());
        if let Some(f) = forwarder {
            let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
        }
        match tokio::time::timeout(Duration::from_secs(2), server).await {
            Ok(Ok(Err(e))) => warn!("HTTP server: {e}"),
            Ok(_) => {}
            Err(_) => warn!("HTTP server did not stop within 2 s"),
        }
        joined.map_err(|_| "the pipeline thread panicked".to_string())?
    })
}

/// Without `[forward]` the store stops filling its outbox (it may have
/// forwarded before). A failure only costs outbox rows, so it is logged.
fn disable_outbox(db: &Path, agency: &str) {
    match Store::open(db, agency).and_then(|mut s| {
        if s.outbox_stats()?.enabled {
            s.outbox_disable()?;
            info!("no [forward] configured: incident changes are no longer queued for the center");
        }
        Ok(())
    }) {
        Ok(()) => {}
        Err(e) => warn!("turning the outbox off: {e}"),
    }
}

/// Keeps glibc's heap from holding what a burst freed. By default it
/// raises its mmap threshold as large blocks are freed, so that later read
/// buffers and batches come from the heap, and each thread that allocates
/// gets an arena of its own: after a 1 GB burst that left 300 MB resident.
/// A fixed threshold returns every block of 256 KiB or more to the system
/// when it is freed; two arenas serve the daemon's few threads.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and no pointers; called before the
    // daemon starts any thread, it only changes glibc's allocation policy.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

struct Pipeline {
    config: Config,
    /// The store's writer thread, which owns the pipeline's connection.
    writer: Writer,
    /// A batch is with the writer.
    in_flight: bool,
    /// A batch the store refused, to be tried again before anything newer.
    refused: Option<Box<OwnedBatch>>,
    /// Each input's commit mark (`Source::commit_mark`) when the batch in
    /// flight was made.
    marks: Vec<u64>,
    analyzer: Analyzer,
    inputs: Vec<Input>,
    wakeup: Wakeup,
    /// Sockets from systemd, kept for inputs that a reload reopens.
    inherited: Vec<Bound>,
    pending: Pending,
    counters: Counters,
    last_commit: Instant,
    /// Least time from one commit to the next; see the module docs.
    commit_gap: Duration,
    /// The next commit rewrites the stored keys whole (after a start from
    /// another rule set or an older state, a reload, ...).
    state_compact: bool,
    /// Key rows stored, superseded ones included.
    state_rows: u64,
    next_expiry: Instant,
    next_sweep: Instant,
    /// Set while the store refuses commits.
    retry: Option<Retry>,
    /// Bytes read since memory was last given back to the system.
    read_since_release: u64,
    /// Open incidents grown since their row was last written. A few are
    /// written with every commit; many (a scan spread over thousands of
    /// addresses, each incident a row on its own page) wait for
    /// [`GROWN_FLUSH_INTERVAL`]: their counts are in the detector's key
    /// rows meanwhile, so nothing is lost, and the incident rows lag.
    grown: HashSet<u64>,
    grown_flushed: Instant,
    /// Write every grown incident at the next commit (stop, reload).
    flush_grown: bool,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    /// The HTTP side's view of the rule set and credentials.
    http: Arc<http::Shared>,
    /// `canhgac_rule_events_total` per rule index, resolved once per rule set.
    rule_events: Vec<IntCounter>,
    /// Detector counters already added to the metrics (they carry over a
    /// reload, with the detector's state).
    detector_published: DetectorCounts,
    /// Keys returned after their eviction (see
    /// `Detector::keys_returned`) when the daemon started, until the log
    /// has said once that the key table is too small; then `None`.
    returned_unwarned_since: Option<u64>,
    /// The web-root integrity watcher, when web roots are configured.
    integrity: Option<Watcher>,
    /// Scripts it flagged, for `flagged_script` rules.
    flagged: FlaggedScripts,
    /// A reload changed `[integrity]`: the watcher starts again once what
    /// the old one found is committed (it loads its state from the store).
    integrity_restart: bool,
    /// Watches the feed files; `None` without file feeds.
    feed_reloader: Option<Reloader>,
    /// A SIGHUP's config and rules, being read and compiled.
    preparing: Option<PreparingReload>,
    /// Feed names with series in the metrics.
    feed_names: Vec<String>,
}

#[derive(Default)]
struct Counters {
    lines: u64,
    bytes: u64,
    incidents_opened: u64,
    commits: u64,
    commit_failures: u64,
}

#[derive(Clone, Copy, Default)]
struct DetectorCounts {
    evicted: u64,
    returned: u64,
    expired: u64,
    late: u64,
    future: u64,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Where the demo and tests look for the database of a config.
pub fn db_path(config: &Path) -> Result<PathBuf, String> {
    Config::load(config)
        .map(|c| c.db_path())
        .map_err(|e| e.to_string())
}
