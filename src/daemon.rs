//! `canhgac run`: inputs, analysis and store wired into one pipeline, under
//! systemd's eye.
//!
//! One thread runs the pipeline: it sweeps and reads the inputs, feeds the
//! [`Analyzer`], and commits a batch (incidents, every input's checkpoints
//! and the detector's state) in one store transaction after `batch_lines`
//! lines, `batch_interval`, or as soon as it has caught up with the files.
//! Being single-threaded is what makes the checkpoints exact: when a batch is
//! committed, the detector state and the checkpoints describe the same lines.
//! The main thread only waits for signals (and later serves HTTP).
//!
//! Exactly once: checkpoints move only in a successful commit, together with
//! the incidents and detector state of the lines before them. A restart
//! restores the detector and reads from the checkpoints, so it sees exactly
//! the lines after the last commit, with exactly the state they would have
//! met. A failed commit is retried with the same (grown) batch and reading
//! pauses meanwhile: backpressure instead of memory.
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
//! written) each.
//!
//! Watchdog: `WATCHDOG=1` goes out from the pipeline loop itself, and only
//! while the pipeline is healthy: nothing waits to be stored, or a commit
//! succeeded within half the watchdog interval. A pipeline stuck in a read or
//! unable to commit stops the pings, and systemd restarts it; nothing is lost
//! by the restart, since checkpoints never passed uncommitted lines.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::analyze::{Analyzer, LineSource, Matchers};
use crate::config::PipelineConfig;
use crate::config::{Config, InputConfig, SourceConfig};
use crate::detect::{Changes, Detector, Incident, Observation, RateCount, SavedKey, Snapshot};
use crate::feeds::reload::Reloader;
use crate::feeds::{Feed, FeedSet, Outcome};
use crate::http;
use crate::input::checkpoint::FileCheckpoint;
use crate::input::journal::{JournalOptions, JournalSource};
use crate::input::source::{Position, Source, SourceStats};
use crate::input::syslog::{Bound, ReceiverOptions, SyslogSource, Transport};
use crate::input::tail::{FileTail, TailOptions};
use crate::input::watch::{Waker, Wakeup, Woken};
use crate::integrity::flagged::FlaggedScripts;
use crate::integrity::stored::IntegrityOp;
use crate::integrity::watch::Watcher;
use crate::integrity::Finding;
use crate::metrics::Metrics;
use crate::rules::matcher::Matcher;
use crate::rules::RuleSet;
use crate::store::{Batch, DetectorWrite, IncidentRecord, StateRow, Store, StoreError};
use crate::timestamp::TimeParser;

/// Commits are at least this many times their own duration apart.
const COMMIT_GAP_FACTOR: u32 = 10;

/// ... and never further apart than this (while lines wait).
const MAX_COMMIT_GAP: Duration = Duration::from_secs(5);

/// Bytes read from one input before the loop looks at signals and batches.
const READ_BUDGET: usize = 1 << 20;

/// Batches' worth of lines after which a commit is due however recent
/// the last one was.
const MAX_BATCHES: u64 = 4;

/// Grown incidents written with every commit; more wait for the interval.
const GROWN_EVERY_COMMIT: usize = 64;
const GROWN_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Bytes read (a burst) after which an idle pipeline gives freed memory back.
const RELEASE_AFTER: u64 = 16 << 20;

/// Longest pause between commit attempts while the store refuses them.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// How long SIGTERM may spend committing the last batch.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const STATUS_EVERY: Duration = Duration::from_secs(5);

/// What the main thread asks of the pipeline.
#[derive(Debug)]
pub enum Control {
    Reload,
    Stop,
}

/// Runs the daemon until SIGTERM or SIGINT. Errors that stop it from
/// starting (config, rules, store) come back as one message.
pub fn run(config_path: &Path) -> Result<(), String> {
    tune_allocator();
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
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
            Metrics::new(config.db_path(), config.time_zone.clone())
                .map_err(|e| format!("cannot set up metrics: {e}"))?,
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let http_shared = http::Shared::new(&config, Arc::clone(&compiled.rules))?;
        let pipeline = Pipeline::start(
            config,
            compiled,
            Arc::clone(&metrics),
            Arc::clone(&http_shared),
        )?;
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
        match tokio::time::timeout(Duration::from_secs(2), server).await {
            Ok(Ok(Err(e))) => warn!("HTTP server: {e}"),
            Ok(_) => {}
            Err(_) => warn!("HTTP server did not stop within 2 s"),
        }
        joined.map_err(|_| "the pipeline thread panicked".to_string())?
    })
}

/// A config's rule set, bound to its feeds (their files not read yet: see
/// [`load_feeds`]), with the matcher of every input type the config uses.
struct Compiled {
    rules: Arc<RuleSet>,
    matchers: Matchers,
}

/// Compiles the rules of `config`; feeds declared as in `previous` keep
/// their indicators. Every input type's matcher is built here, so a pattern
/// that only fails once combined (size limits) is refused here, not mid-run,
/// and the analyzer is handed them built.
fn load_rules(config: &Config, previous: Option<&FeedSet>) -> Result<Compiled, String> {
    let mut rules = RuleSet::load(&config.rules).map_err(|e| e.to_string())?;
    let feeds = FeedSet::new(config.feeds.clone(), previous);
    rules
        .bind_feeds(Arc::new(feeds))
        .map_err(|e| e.to_string())?;
    let mut matchers = Matchers::new();
    for i in &config.inputs {
        if !matchers.contains_key(&i.input_type) {
            let m = Matcher::new(&rules, &i.input_type)?;
            matchers.insert(i.input_type.clone(), Arc::new(m));
        }
    }
    Ok(Compiled {
        rules: Arc::new(rules),
        matchers,
    })
}

/// What a SIGHUP asks for, read and compiled on a thread of its own: with a
/// large rule set that takes longer than the pipeline may stand still.
struct Prepared {
    config: Config,
    compiled: Compiled,
}

/// A reload being prepared.
struct PreparingReload {
    result: Receiver<Result<Prepared, String>>,
    /// Another SIGHUP came meanwhile: the files may have changed again
    /// after they were read, so they are read once more.
    again: bool,
}

impl PreparingReload {
    fn start(file: PathBuf, previous: Arc<FeedSet>, waker: Waker) -> Result<Self, String> {
        let (tx, result) = mpsc::channel();
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let prepared = Config::load(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|config| {
                        let compiled = load_rules(&config, Some(&previous))?;
                        Ok(Prepared { config, compiled })
                    });
                // The pipeline may have stopped meanwhile.
                let _ = tx.send(prepared);
                waker.wake();
            })
            .map_err(|e| format!("cannot start the reload thread: {e}"))?;
        Ok(PreparingReload {
            result,
            again: false,
        })
    }
}

/// Reads every feed file that changed, now, reporting as the reloader does.
fn load_feeds(feeds: &FeedSet, metrics: &Metrics) {
    for (i, outcome) in feeds.refresh(true) {
        if let Some(feed) = feeds.get(i) {
            report_feed(metrics, feed, &outcome);
        }
    }
}

/// A feed file's news, in the log and the metrics. Refused files are
/// logged with every bad line as `file:line:col: message`, as `check`
/// prints them.
fn report_feed(metrics: &Metrics, feed: &Feed, outcome: &Outcome) {
    let name = feed.name();
    let result = match outcome {
        Outcome::Loaded {
            indicators,
            skipped,
            elapsed,
        } => {
            info!(
                feed = name,
                indicators,
                skipped,
                seconds = elapsed.as_secs_f64(),
                "feed loaded"
            );
            metrics
                .feed_last_load
                .with_label_values(&[name])
                .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
            "success"
        }
        Outcome::Invalid {
            errors,
            bad_lines,
            kept,
        } => {
            for e in errors {
                error!("{e}");
            }
            error!(
                feed = name,
                bad_lines, "feed file refused; the {kept} indicators loaded before stay in use"
            );
            "failure"
        }
        Outcome::Unreadable { message, kept } => {
            error!(
                feed = name,
                "{message}; the {kept} indicators loaded before stay in use"
            );
            "failure"
        }
        Outcome::Incomplete { reason, kept } => {
            warn!(
                feed = name,
                "{reason}; the {kept} indicators loaded before stay in use"
            );
            "incomplete"
        }
    };
    metrics.feed_loads.with_label_values(&[name, result]).inc();
    metrics
        .feed_indicators
        .with_label_values(&[name])
        .set(feed.len() as i64);
}

fn start_reloader(
    feeds: &Arc<FeedSet>,
    metrics: &Arc<Metrics>,
    every: Duration,
    at_once: bool,
) -> Result<Option<Reloader>, String> {
    if feeds
        .feeds()
        .iter()
        .all(|f| !matches!(f.decl().source, crate::feeds::FeedSource::File(_)))
    {
        return Ok(None);
    }
    let m = Arc::clone(metrics);
    Reloader::start(Arc::clone(feeds), every, at_once, move |feed, outcome| {
        report_feed(&m, feed, outcome)
    })
    .map(Some)
    .map_err(|e| format!("cannot start the feed reloader: {e}"))
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

/// The detector as stored: with the rule ids its indices refer to, so a
/// restart or reload with another rule set can renumber it.
#[derive(Serialize, Deserialize)]
struct DetectorState {
    rules: Vec<String>,
    snapshot: Snapshot,
    /// The keys are in the store's key rows, not in `snapshot` (which then
    /// holds everything else). A state from before key rows holds them all.
    #[serde(default)]
    keyed: bool,
}

/// The stored rows hold more than this many times the live keys (plus
/// [`COMPACT_SLACK`]) before a commit rewrites them from the live keys:
/// each rewrite is paid for by as many changed keys as it writes.
const COMPACT_FACTOR: u64 = 2;
const COMPACT_SLACK: u64 = 10_000;

/// A key row's state: the key's place in the eviction order and its state.
type KeyRow = (u64, crate::detect::KeyState);

/// A stored detector: the header and its key rows, taken together. Rows
/// that cannot be read are left out (and counted).
fn stored_snapshot(header: &[u8], rows: &[StateRow]) -> Result<(DetectorState, usize), String> {
    let mut state: DetectorState = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let mut unreadable = 0;
    if state.keyed {
        for row in rows {
            let Some(blob) = &row.state else { continue };
            let rule = row.rule as usize;
            let read = match row.kind {
                0 => serde_json::from_slice::<KeyRow>(blob).map(|(generation, s)| {
                    state.snapshot.keys.push(SavedKey {
                        rule,
                        key: row.key.clone(),
                        state: s,
                        generation,
                    })
                }),
                _ => serde_json::from_slice::<RateCount>(blob)
                    .map(|c| state.snapshot.rates.push((rule, row.key.clone(), c))),
            };
            if read.is_err() {
                unreadable += 1;
            }
        }
    }
    Ok((state, unreadable))
}

/// Rows for `changes`: each key or client with its state, or none to say
/// it is gone.
fn state_rows(changes: Changes) -> Result<Vec<StateRow>, StoreError> {
    let mut rows = Vec::with_capacity(changes.keys.len() + changes.rates.len());
    let rule_no = |rule: usize| {
        u32::try_from(rule).map_err(|_| StoreError::Invalid(format!("rule index {rule}")))
    };
    let json =
        |e: serde_json::Error| StoreError::Invalid(format!("cannot serialise detector state: {e}"));
    for (rule, key, saved) in changes.keys {
        let state = match saved {
            Some(mut k) => {
                // Stored with the incident's row, written when it opened:
                // a key row of an open incident stays as small as a count's.
                if let Some(inc) = k.state.open_incident_mut() {
                    inc.sample = String::new();
                    inc.fields = Vec::new();
                }
                Some(serde_json::to_vec(&(k.generation, &k.state)).map_err(json)?)
            }
            None => None,
        };
        rows.push(StateRow {
            kind: 0,
            rule: rule_no(rule)?,
            key,
            state,
        });
    }
    for (rule, client, count) in changes.rates {
        let state = match count {
            Some(c) => Some(serde_json::to_vec(&c).map_err(json)?),
            None => None,
        };
        rows.push(StateRow {
            kind: 1,
            rule: rule_no(rule)?,
            key: client,
            state,
        });
    }
    Ok(rows)
}

/// Every key of a snapshot, as the rows that replace all stored ones.
fn all_rows(snapshot: Snapshot) -> Result<Vec<StateRow>, StoreError> {
    state_rows(Changes {
        keys: snapshot
            .keys
            .into_iter()
            .map(|k| (k.rule, k.key.clone(), Some(k)))
            .collect(),
        rates: snapshot
            .rates
            .into_iter()
            .map(|(rule, client, c)| (rule, client, Some(c)))
            .collect(),
    })
}

/// A detector for `rules` from a stored or live snapshot taken under the
/// rule ids `old_ids`, never numbering incidents at or below `floor`.
fn rebuild_detector(
    rules: &RuleSet,
    pipeline: &PipelineConfig,
    old_ids: &[String],
    mut snapshot: Snapshot,
    floor: u64,
) -> Detector {
    snapshot.renumber(|old| old_ids.get(old).and_then(|id| rules.by_id(id)));
    snapshot.next_id = snapshot.next_id.max(floor + 1);
    let mut d = Detector::restore(rules.policies(), pipeline.max_keys, snapshot);
    d.set_lateness(signed(pipeline.max_lateness));
    d.track_changes();
    d
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The analyzer of the daemon, as `config` sets it up.
fn new_analyzer(
    config: &Config,
    rules: Arc<RuleSet>,
    matchers: Matchers,
    detector: Detector,
    flagged: &FlaggedScripts,
) -> Analyzer {
    let mut analyzer = Analyzer::new(rules, detector);
    analyzer.set_matchers(matchers);
    analyzer.set_trusted_proxies(config.trusted_proxies.clone());
    analyzer.set_flagged_scripts(flagged.clone());
    analyzer.set_clock_skew(signed(config.pipeline.max_clock_skew));
    analyzer
}

struct Input {
    config: InputConfig,
    /// Where its lines come from.
    reader: Box<dyn Source>,
    /// Where the analyzer keeps its state for them.
    source: LineSource,
    /// Counters already added to the metrics.
    published: SourceStats,
    /// Lines not of the input's type already added to the metrics.
    unrecognised_published: u64,
    /// Whether the first such line has been logged.
    unrecognised_warned: bool,
    /// The newest event time of its lines, and when it was read.
    clock: Option<(Timestamp, Instant)>,
}

/// Where an input resumes: the stored (or, across a reload, the running)
/// position.
#[derive(Default)]
struct Resume {
    checkpoints: Vec<FileCheckpoint>,
    cursor: Option<String>,
}

impl Resume {
    fn stored(recovery: &crate::store::Recovery, input: &str) -> Resume {
        Resume {
            checkpoints: checkpoints_of(&recovery.checkpoints, input),
            cursor: recovery
                .cursors
                .iter()
                .find(|(i, _)| i == input)
                .map(|(_, c)| c.clone()),
        }
    }

    fn from_position(p: Position) -> Resume {
        match p {
            Position::Files(checkpoints) => Resume {
                checkpoints,
                cursor: None,
            },
            Position::Cursor(cursor) => Resume {
                checkpoints: Vec::new(),
                cursor,
            },
            Position::Unresumable => Resume::default(),
        }
    }
}

/// What opening an input needs besides its config.
struct Opener<'a> {
    config: &'a Config,
    waker: Waker,
    /// Sockets systemd passed us (socket activation).
    inherited: &'a [Bound],
}

/// A reload's inputs, opened before the running ones are given up.
#[derive(Default)]
struct NewInputs {
    opened: HashMap<String, Input>,
    /// Line sources under the new rules for the inputs kept running.
    sources: HashMap<String, LineSource>,
}

/// What has happened since the last commit.
#[derive(Default)]
struct Pending {
    lines: u64,
    since: Option<Instant>,
    /// Incidents opened.
    dirty: HashSet<u64>,
    /// Closed incidents not yet stored (kept across failed commits).
    closed: Vec<Incident>,
    /// Input of the line that opened each new incident.
    opened_by: HashMap<u64, String>,
    /// Web-root integrity: incidents (complete, numbered) and baseline
    /// changes from the watcher.
    integrity_incidents: Vec<IncidentRecord>,
    integrity_ops: Vec<IntegrityOp>,
    /// The detector's state changed without lines (expiry), or incident
    /// rows wait to be written (a stop).
    state_changed: bool,
}

impl Pending {
    /// Something waits to be committed.
    fn any(&self) -> bool {
        self.lines > 0
            || self.state_changed
            || !self.integrity_ops.is_empty()
            || !self.integrity_incidents.is_empty()
    }

    /// Something an analyst waits for: a new incident. Other changes
    /// (counts, grown incidents, checkpoints) wait for the batch interval,
    /// so that a trickle of lines is not a commit, and a page write, each.
    fn urgent(&self) -> bool {
        !self.opened_by.is_empty() || !self.integrity_incidents.is_empty()
    }
}

#[derive(Clone, Copy, Default)]
struct DetectorCounts {
    evicted: u64,
    expired: u64,
    late: u64,
    future: u64,
}

#[derive(Default)]
struct Counters {
    lines: u64,
    bytes: u64,
    incidents_opened: u64,
    commits: u64,
    commit_failures: u64,
}

struct Pipeline {
    config: Config,
    store: Store,
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
    /// The detector header, serialised (the buffer kept across commits).
    state_buf: Vec<u8>,
    /// The next commit rewrites the stored keys whole (after a start from
    /// another rule set or an older state, a reload, ...).
    state_compact: bool,
    /// Key rows stored, superseded ones included.
    state_rows: u64,
    next_expiry: Instant,
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

impl Pipeline {
    fn start(
        config: Config,
        Compiled { rules, matchers }: Compiled,
        metrics: Arc<Metrics>,
        http: Arc<http::Shared>,
    ) -> Result<Pipeline, String> {
        let db = config.db_path();
        let store = Store::open(&db, &config.agency)
            .map_err(|e| format!("cannot open the store {}: {e}", db.display()))?;
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
        let mut pipeline = Pipeline {
            config,
            store,
            analyzer,
            inputs,
            wakeup,
            inherited,
            pending: Pending::default(),
            counters: Counters::default(),
            last_commit: Instant::now(),
            commit_gap: Duration::ZERO,
            state_buf: Vec::new(),
            state_compact: compact,
            state_rows: recovery.detector_rows_stored,
            next_expiry: Instant::now(),
            read_since_release: 0,
            grown: HashSet::new(),
            grown_flushed: Instant::now(),
            flush_grown: false,
            notifier: Notifier::from_env(),
            metrics,
            http,
            rule_events: Vec::new(),
            detector_published: DetectorCounts::default(),
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

    /// Starts the integrity watcher for the configured web roots.
    fn start_integrity(&mut self) -> Result<(), String> {
        self.integrity_restart = false;
        let roots = &self.config.integrity.roots;
        for r in roots {
            let name = [r.name.as_str()];
            for m in [
                &self.metrics.integrity_files,
                &self.metrics.integrity_flagged,
            ] {
                m.with_label_values(&name);
            }
            self.metrics.integrity_errors.with_label_values(&name);
            self.metrics.integrity_hashed.with_label_values(&name);
            for outcome in ["raised", "expected", "restored"] {
                self.metrics
                    .integrity_changes
                    .with_label_values(&[&r.name, outcome]);
            }
        }
        if roots.is_empty() {
            return Ok(());
        }
        self.integrity = Some(Watcher::start(
            self.config.integrity.clone(),
            self.config.time_zone.clone(),
            self.config.db_path(),
            self.flagged.clone(),
            Arc::clone(&self.metrics),
            self.wakeup.waker(),
        )?);
        Ok(())
    }

    /// Takes what the integrity watcher found into the pending batch.
    fn take_findings(&mut self) {
        let mut found = Vec::new();
        if let Some(w) = &self.integrity {
            while let Some(f) = w.try_recv() {
                found.push(f);
            }
        }
        for f in found {
            self.pending_finding(f);
        }
    }

    fn pending_finding(&mut self, mut finding: Finding) {
        let detector = self.analyzer.detector_mut();
        finding.number(|| detector.reserve_id());
        if !finding.incidents.is_empty() {
            self.counters.incidents_opened += finding.incidents.len() as u64;
        }
        self.pending.since.get_or_insert_with(Instant::now);
        self.pending.integrity_incidents.extend(finding.incidents);
        self.pending.integrity_ops.extend(finding.ops);
    }

    /// Metrics that follow the rule set and inputs.
    fn rules_changed(&mut self) {
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

    fn publish_input_stats(&mut self) {
        let m = &self.metrics;
        for input in &mut self.inputs {
            let now = input.reader.stats();
            let was = input.published;
            let name = [input.config.name.as_str()];
            // A tail recreated by a reload starts its counters from zero.
            let delta = |n: u64, w: u64| if n >= w { n - w } else { n };
            m.input_lines
                .with_label_values(&name)
                .inc_by(delta(now.lines, was.lines));
            m.input_bytes
                .with_label_values(&name)
                .inc_by(delta(now.bytes, was.bytes));
            m.input_read_errors
                .with_label_values(&name)
                .inc_by(delta(now.read_errors, was.read_errors));
            m.input_lines_cut
                .with_label_values(&name)
                .inc_by(delta(now.cut_lines, was.cut_lines));
            if matches!(input.config.source, SourceConfig::Files { .. }) {
                m.input_behind
                    .with_label_values(&name)
                    .set(now.bytes_behind as i64);
            }
            let is_files = matches!(input.config.source, SourceConfig::Files { .. });
            if is_files {
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
                            .inc_by(delta(n, w));
                    }
                }
                if *transport != Transport::Udp {
                    m.input_connections
                        .with_label_values(&name)
                        .set(now.connections as i64);
                }
            }
            if matches!(input.config.source, SourceConfig::Journal { .. }) {
                m.input_restarts
                    .with_label_values(&name)
                    .inc_by(delta(now.restarts, was.restarts));
                m.input_position_lost
                    .with_label_values(&name)
                    .inc_by(delta(now.position_lost, was.position_lost));
            }
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
    }

    fn run(mut self, control: Receiver<Control>) -> Result<(), String> {
        self.sweep();
        self.metrics.ready.store(true, Ordering::Relaxed);
        self.notifier.ready(&self.status());
        info!("ready: {}", self.status());
        let sweep_every = self.config.pipeline.sweep_interval;
        let mut next_sweep = Instant::now() + sweep_every;
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            let mut stop = false;
            while let Ok(c) = control.try_recv() {
                match c {
                    Control::Reload => self.prepare_reload(),
                    Control::Stop => stop = true,
                }
            }
            if stop {
                break;
            }
            self.reload_when_prepared();
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep();
                next_sweep = now + sweep_every;
            }
            // While the store refuses commits, reading more would only grow
            // what waits in memory.
            let read = if retry.is_none() { self.read() } else { 0 };
            self.take_findings();
            let batch = &self.pending;
            let batch_interval = self.config.pipeline.batch_interval;
            // Past a few batches' worth a commit is due whatever the
            // pacing: what waits in memory stays bounded.
            let batch_lines = self.config.pipeline.batch_lines as u64;
            // Caught up, a new incident is committed at once: the pacing only keeps commits from crowding out
            // reading while there is reading to do.
            // Senders that wait for a commit (RELP) get one as soon as the
            // pacing allows: their window, not our batch, is the limit.
            let awaited = self.inputs.iter().any(|i| i.reader.awaiting_commit());
            let due = batch.any()
                && (batch.lines >= MAX_BATCHES * batch_lines
                    || (read == 0 && batch.urgent())
                    || (awaited && (read == 0 || self.last_commit.elapsed() >= self.commit_gap))
                    || (self.last_commit.elapsed() >= self.commit_gap
                        && (batch.lines >= batch_lines
                            || batch.since.is_none_or(|s| s.elapsed() >= batch_interval))));
            if due && retry.is_none_or(|(at, _)| Instant::now() >= at) {
                match self.commit() {
                    Ok(()) => retry = None,
                    Err(e) => {
                        self.counters.commit_failures += 1;
                        self.metrics.commit_failures.inc();
                        self.metrics.store_ok.store(false, Ordering::Relaxed);
                        let pause = retry
                            .map_or(Duration::from_millis(200), |(_, p)| (p * 2).min(MAX_RETRY));
                        if e.is_retryable() {
                            warn!("commit failed, retrying in {pause:?}: {e}");
                        } else {
                            error!("commit failed, retrying in {pause:?}: {e}");
                        }
                        retry = Some((Instant::now() + pause, pause));
                    }
                }
            }
            if read == 0 && !self.pending.any() {
                self.release_memory();
            }
            if self.integrity_restart && !self.pending.any() {
                if let Err(e) = self.start_integrity() {
                    error!("integrity watcher not restarted: {e}");
                }
            }
            let healthy = !self.pending.any()
                || self
                    .notifier
                    .watchdog
                    .is_some_and(|w| self.last_commit.elapsed() < w / 2);
            self.notifier.watchdog(healthy);
            if self.notifier.status_due() {
                let status = self.status();
                self.notifier.status(&status);
            }
            if read == 0 || retry.is_some() {
                let mut until = next_sweep;
                if let Some((at, _)) = retry {
                    until = until.min(at);
                }
                if self.pending.any() {
                    let mut at = self.last_commit + self.commit_gap;
                    if let Some(since) = self.pending.since {
                        at = at.max(since + batch_interval);
                    }
                    until = until.min(at);
                }
                if let Some(w) = self.notifier.watchdog {
                    until = until.min(Instant::now() + w / 4);
                }
                // New content is read by the next turn; only a change of
                // files brings the sweep forward (not every datagram).
                let woken = self
                    .wakeup
                    .wait(until.saturating_duration_since(Instant::now()));
                if woken == Woken::Changed {
                    next_sweep = Instant::now();
                }
            }
        }
        self.drain()
    }

    /// SIGTERM: read what the files hold already (for up to
    /// [`DRAIN_TIMEOUT`]), commit it, then stop. Lines written just before
    /// the stop are stored, not left for the next start: the stop request
    /// often wins the race against the wakeup for them.
    fn drain(mut self) -> Result<(), String> {
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
            if self.pending.lines >= MAX_BATCHES * self.config.pipeline.batch_lines as u64 {
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
            self.pending.since.get_or_insert_with(Instant::now);
            self.pending.state_changed = true;
        }
        if let Some(w) = self.integrity.take() {
            for f in w.stop() {
                self.pending_finding(f);
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.pending.any() {
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

    fn sweep(&mut self) {
        // Expiry reads every key: at the sweep interval, not at every
        // wakeup that brings a sweep forward.
        if Instant::now() >= self.next_expiry {
            self.expire_keys();
            self.next_expiry = Instant::now() + self.config.pipeline.sweep_interval;
        }
        let mut dirs = Vec::new();
        for input in &mut self.inputs {
            for n in input.reader.sweep() {
                if n.problem {
                    warn!(input = %input.config.name, "{}", n.message);
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
    fn read(&mut self) -> usize {
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
    fn release_memory(&mut self) {
        if self.read_since_release < RELEASE_AFTER {
            return;
        }
        self.read_since_release = 0;
        for input in &mut self.inputs {
            input.source.shrink();
        }
        self.analyzer.detector_mut().shrink();
        self.grown.shrink_to_fit();
        self.state_buf = Vec::new();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes no pointers and has no preconditions;
        // glibc locks each arena while it trims it, so other threads may
        // allocate meanwhile. It only changes which free pages the process
        // keeps mapped.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// The detector's gauges and counters to the metrics.
    fn publish_detector(&mut self) {
        let d = self.analyzer.detector();
        let now = DetectorCounts {
            evicted: d.keys_evicted(),
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
        m.detector_expired
            .inc_by(now.expired.saturating_sub(was.expired));
        m.events_late.inc_by(now.late.saturating_sub(was.late));
        m.lines_future_dated
            .inc_by(now.future.saturating_sub(was.future));
        self.detector_published = now;
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
    fn expire_keys(&mut self) {
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

    /// Stores the batch: incidents, checkpoints and detector state in one
    /// transaction. On error the batch stays pending, whole.
    fn commit(&mut self) -> Result<(), StoreError> {
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
            .map(|inc| record(&rules, inc, false, &self.pending.opened_by))
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
                .map(|inc| record(&rules, inc, true, &self.pending.opened_by)),
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

    /// SIGHUP: the config and rules are read and compiled on a thread of
    /// their own while the inputs go on being read (see
    /// [`Pipeline::reload_when_prepared`]).
    fn prepare_reload(&mut self) {
        if let Some(p) = &mut self.preparing {
            p.again = true;
            return;
        }
        self.notifier.reloading();
        let feeds = Arc::clone(&self.analyzer.rules().feeds);
        match PreparingReload::start(self.config.file.clone(), feeds, self.wakeup.waker()) {
            Ok(p) => self.preparing = Some(p),
            Err(e) => self.reloaded(Err(e)),
        }
    }

    /// Puts a prepared config and rules in place of the running ones.
    /// Anything wrong with them is logged, as `check` would print it, and
    /// the running set stays.
    fn reload_when_prepared(&mut self) {
        let Some(p) = &self.preparing else {
            return;
        };
        let result = match p.result.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err("the reload thread ended without a result".to_owned())
            }
        };
        let again = p.again;
        self.preparing = None;
        let result = result.and_then(|prepared| self.try_reload(prepared));
        self.reloaded(result);
        if again {
            self.prepare_reload();
        }
    }

    fn reloaded(&mut self, result: Result<(), String>) {
        self.metrics
            .reloads
            .with_label_values(&[if result.is_ok() { "success" } else { "failure" }])
            .inc();
        self.metrics.reload_ok.set(i64::from(result.is_ok()));
        match result {
            Ok(()) => info!(
                rules = self.analyzer.rules().rules.len(),
                digest = %self.analyzer.rules().digest(),
                inputs = self.inputs.len(),
                "reloaded"
            ),
            Err(e) => error!("reload refused, the running config and rules stay:\n{e}"),
        }
        let status = self.status();
        self.notifier.ready(&status);
    }

    /// For a reload: the inputs of `config` that are not `kept`, opened
    /// (a changed one resumes where its `closed` self was), and new line
    /// sources for the kept ones under the new analyzer.
    fn open_inputs(
        &self,
        config: &Config,
        analyzer: &mut Analyzer,
        kept: &HashMap<String, Input>,
        closed: &[(InputConfig, Position)],
    ) -> Result<NewInputs, String> {
        let stored = self.store.recovery().ok();
        let opener = Opener {
            config,
            waker: self.wakeup.waker(),
            inherited: &self.inherited,
        };
        let mut new = NewInputs::default();
        for cfg in &config.inputs {
            if kept.contains_key(&cfg.name) {
                let source = analyzer.source(
                    &cfg.input_type,
                    TimeParser::new(config.time_zone.clone(), Timestamp::now()),
                )?;
                new.sources.insert(cfg.name.clone(), source);
                continue;
            }
            let resume = match closed.iter().find(|(c, _)| c.name == cfg.name) {
                Some((_, p)) => Resume::from_position(p.clone()),
                None => stored
                    .as_ref()
                    .map(|r| Resume::stored(r, &cfg.name))
                    .unwrap_or_default(),
            };
            let input = opener.open(analyzer, cfg, resume)?;
            new.opened.insert(cfg.name.clone(), input);
        }
        Ok(new)
    }

    /// A refused reload: the inputs it closed are opened again as they
    /// were, where they were, beside the ones it kept, in the running order.
    fn restore_inputs(
        &mut self,
        mut kept: HashMap<String, Input>,
        closed: Vec<(InputConfig, Position)>,
    ) {
        let opener = Opener {
            config: &self.config,
            waker: self.wakeup.waker(),
            inherited: &self.inherited,
        };
        let mut inputs = Vec::new();
        for cfg in &self.config.inputs {
            if let Some(i) = kept.remove(&cfg.name) {
                inputs.push(i);
            } else if let Some((_, p)) = closed.iter().find(|(c, _)| c.name == cfg.name) {
                match opener.open(&mut self.analyzer, cfg, Resume::from_position(p.clone())) {
                    Ok(i) => inputs.push(i),
                    Err(e) => error!("input {} could not be opened again: {e}", cfg.name),
                }
            }
        }
        self.inputs = inputs;
    }

    fn try_reload(&mut self, prepared: Prepared) -> Result<(), String> {
        let Prepared {
            config,
            compiled: Compiled { rules, matchers },
        } = prepared;
        // Feeds taken over are shared with the running reloader, and keep
        // their indicators; what changed and new feeds are loaded by the new
        // reloader on its thread and swapped in when read, never here.
        let feed_reloader = start_reloader(
            &rules.feeds,
            &self.metrics,
            config.pipeline.sweep_interval,
            true,
        )?;
        for (what, old, new) in [
            ("agency", self.config.agency.clone(), config.agency.clone()),
            (
                "state_dir",
                self.config.state_dir.display().to_string(),
                config.state_dir.display().to_string(),
            ),
            (
                "listen",
                self.config.listen.to_string(),
                config.listen.to_string(),
            ),
        ] {
            if old != new {
                warn!("{what} changed from {old} to {new}: takes effect at the next restart");
            }
        }
        let integrity_changed = config.integrity != self.config.integrity
            || config.time_zone_name != self.config.time_zone_name;
        if integrity_changed {
            // What the old watcher found goes into this commit; the new one
            // starts once it is stored (see `integrity_restart`).
            if let Some(w) = self.integrity.take() {
                for f in w.stop() {
                    self.pending_finding(f);
                }
            }
            self.integrity_restart = true;
        }
        // Store what was read under the old rules, so the new detector
        // starts from stored state; a failure here is not fatal: the batch
        // keeps its ids through the snapshot below.
        self.flush_grown = true;
        if self.pending.any() || !self.grown.is_empty() {
            if let Err(e) = self.commit() {
                warn!("commit before reload failed, the batch stays pending: {e}");
            }
        }
        let old_ids: Vec<String> = self
            .analyzer
            .rules()
            .rules
            .iter()
            .map(|r| r.id.clone())
            .collect();
        let detector = rebuild_detector(
            &rules,
            &config.pipeline,
            &old_ids,
            self.analyzer.detector().snapshot(),
            0,
        );
        // Rule indices may have moved: the stored keys are rewritten.
        self.state_compact = true;
        let mut analyzer = new_analyzer(&config, rules, matchers, detector, &self.flagged);
        analyzer.continue_counts(&self.analyzer);
        // Inputs that change or go are closed before any is opened, so a
        // receiver moved to another input can bind its address again.
        let mut kept: HashMap<String, Input> = HashMap::new();
        let mut closed: Vec<(InputConfig, Position)> = Vec::new();
        for i in self.inputs.drain(..) {
            if config.inputs.contains(&i.config) {
                kept.insert(i.config.name.clone(), i);
            } else {
                closed.push((i.config.clone(), i.reader.position()));
            }
        }
        // Everything that can fail comes before anything is given up: an
        // input that cannot open (a port in use, a journal that will not
        // start) refuses the reload, and the running inputs go on reading.
        let new_inputs = self.open_inputs(&config, &mut analyzer, &kept, &closed);
        let mut new_inputs = match new_inputs {
            Ok(n) => n,
            Err(e) => {
                self.restore_inputs(kept, closed);
                return Err(e);
            }
        };
        let mut inputs = Vec::new();
        for cfg in &config.inputs {
            if let Some(opened) = new_inputs.opened.remove(&cfg.name) {
                inputs.push(opened);
                continue;
            }
            let (Some(mut i), Some(source)) =
                (kept.remove(&cfg.name), new_inputs.sources.remove(&cfg.name))
            else {
                continue;
            };
            // Certificates are read again; one that no longer loads (the
            // config check read it a moment ago) keeps the old.
            if let Err(e) = i.reader.reload() {
                warn!("{e}; the input keeps its running certificate");
            }
            inputs.push(Input {
                source,
                unrecognised_published: 0,
                ..i
            });
        }
        self.inputs = inputs;
        self.analyzer = analyzer;
        if let Some(r) = std::mem::replace(&mut self.feed_reloader, feed_reloader) {
            r.stop();
        }
        self.rules_changed();
        self.http.reload(&config);
        self.config = Config {
            // Settings that need a restart keep their running values.
            agency: self.config.agency.clone(),
            state_dir: self.config.state_dir.clone(),
            listen: self.config.listen,
            ..config
        };
        self.sweep();
        Ok(())
    }

    fn status(&self) -> String {
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

fn checkpoints_of(all: &[FileCheckpoint], input: &str) -> Vec<FileCheckpoint> {
    all.iter().filter(|c| c.input == input).cloned().collect()
}

impl Opener<'_> {
    fn open(
        &self,
        analyzer: &mut Analyzer,
        input: &InputConfig,
        resume: Resume,
    ) -> Result<Input, String> {
        let config = self.config;
        let name = &input.name;
        let reader: Box<dyn Source> = match &input.source {
            SourceConfig::Files { path, start_at_end } => {
                let opts = TailOptions {
                    input: name.clone(),
                    pattern: path.clone(),
                    start_at_end: *start_at_end,
                    max_line: config.pipeline.max_line,
                    rotated_grace: config.pipeline.rotated_grace,
                };
                Box::new(
                    FileTail::new(opts, resume.checkpoints)
                        .map_err(|e| format!("input {name}: {e}"))?,
                )
            }
            SourceConfig::Journal {
                directory,
                matches,
                start_at_end,
            } => {
                let opts = JournalOptions {
                    directory: directory.clone(),
                    matches: matches.clone(),
                    start_at_end: *start_at_end,
                    max_line: config.pipeline.max_line,
                    time_zone: config.time_zone.clone(),
                    ..JournalOptions::new(name.clone())
                };
                Box::new(
                    JournalSource::start(opts, resume.cursor, self.waker.clone())
                        .map_err(|e| format!("input {name}: cannot follow the journal: {e}"))?,
                )
            }
            SourceConfig::Syslog {
                transport,
                listen,
                max_message,
                queue_bytes,
                tls,
            } => {
                let inherited = self.inherited.iter().find(|b| {
                    b.transport() == transport.socket() && b.local_addr().ok() == Some(*listen)
                });
                let bound = match inherited {
                    Some(b) => b.try_clone(),
                    None => Bound::bind(*transport, *listen),
                }
                .map_err(|e| {
                    let hint = if listen.port() < 1024 && e.kind() == std::io::ErrorKind::PermissionDenied {
                        " (ports below 1024 need CAP_NET_BIND_SERVICE or systemd socket activation: see docs/install.md)"
                    } else {
                        ""
                    };
                    format!(
                        "input {name}: cannot listen on {} {listen}: {e}{hint}",
                        transport.name()
                    )
                })?;
                let opts = ReceiverOptions {
                    input: name.clone(),
                    transport: *transport,
                    listen: *listen,
                    max_message: *max_message,
                    queue_bytes: *queue_bytes,
                    time_zone: config.time_zone.clone(),
                    tls: tls.clone(),
                };
                Box::new(
                    SyslogSource::start(opts, bound, self.waker.clone())
                        .map_err(|e| format!("input {name}: cannot start the receiver: {e}"))?,
                )
            }
        };
        let source = analyzer.source(
            &input.input_type,
            TimeParser::new(config.time_zone.clone(), Timestamp::now()),
        )?;
        Ok(Input {
            config: input.clone(),
            reader,
            source,
            published: SourceStats::default(),
            unrecognised_published: 0,
            unrecognised_warned: false,
            clock: None,
        })
    }
}

fn record(
    rules: &RuleSet,
    inc: &Incident,
    open: bool,
    opened_by: &HashMap<u64, String>,
) -> IncidentRecord {
    let rule = rules.rule(inc.rule);
    IncidentRecord {
        detector_id: inc.id,
        rule: rule.id.clone(),
        category: rule.category.id().to_owned(),
        severity: rule.severity.id().to_owned(),
        key: inc.key.clone(),
        src_ip: inc
            .fields
            .iter()
            .find(|(k, _)| k == "src_ip")
            .map(|(_, v)| v.clone()),
        input: opened_by.get(&inc.id).cloned(),
        first_seen: inc.first_seen,
        last_seen: inc.last_seen,
        events: inc.events,
        open,
        sample: inc.sample.clone(),
        fields: inc.fields.clone(),
    }
}

/// sd_notify(3), when `NOTIFY_SOCKET` is set; silent otherwise.
struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: Instant,
}

impl Notifier {
    fn from_env() -> Self {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            last_status: Instant::now(),
        }
    }

    fn send(&self, states: &[sd_notify::NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                warn!("sd_notify: {e}");
            }
        }
    }

    fn ready(&mut self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
        self.last_status = Instant::now();
    }

    /// With `MONOTONIC_USEC=` in the same message: `Type=notify-reload`
    /// (systemd 253+) ignores a `RELOADING=1` without it, and its reload
    /// hangs until it times out.
    fn reloading(&self) {
        if !self.enabled {
            return;
        }
        let status = sd_notify::NotifyState::Status("reloading config and rules");
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[sd_notify::NotifyState::Reloading, now, status]),
            Err(e) => {
                warn!("sd_notify: no monotonic time for RELOADING=1: {e}");
                self.send(&[sd_notify::NotifyState::Reloading, status]);
            }
        }
    }

    fn stopping(&self) {
        self.send(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping: committing the last batch"),
        ]);
    }

    fn status_due(&self) -> bool {
        self.enabled && self.last_status.elapsed() >= STATUS_EVERY
    }

    fn status(&mut self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
        self.last_status = Instant::now();
    }

    /// Pings at a quarter of the interval, and only when `healthy`.
    fn watchdog(&mut self, healthy: bool) {
        let Some(interval) = self.watchdog else {
            return;
        };
        if healthy && self.last_ping.is_none_or(|t| t.elapsed() >= interval / 4) {
            self.send(&[sd_notify::NotifyState::Watchdog]);
            self.last_ping = Some(Instant::now());
        }
    }
}

/// Where the demo and tests look for the database of a config.
pub fn db_path(config: &Path) -> Result<PathBuf, String> {
    Config::load(config)
        .map(|c| c.db_path())
        .map_err(|e| e.to_string())
}
