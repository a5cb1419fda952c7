//! The integrity watcher: one thread for all web roots.
//!
//! It watches every root recursively with `notify` and collects the paths
//! of changes per root; once a root has been quiet for `debounce` (or the
//! burst has lasted `max_burst`), it reconciles those paths with what is
//! known and hands the pipeline one [`Finding`]: the incidents of the burst
//! and the baseline and flag changes. A queue overflow, a failed watch or a
//! deploy ending triggers a full re-scan; so does `rescan_interval`, the
//! safety net for anything notifications miss.
//!
//! Deploys: a path changed while a deploy is under way (marker present or
//! inside a window, at the moment the change is seen) is reconciled as a
//! deploy change: its new state becomes the baseline. When a deploy ends,
//! the whole root is re-scanned as part of it, so changes whose
//! notifications were lost still land in the baseline. Paths seen after the
//! end are reconciled first, outside the deploy.
//!
//! `canhgac integrity accept` writes the store directly; the watcher polls
//! the accept log every second and reloads what was accepted, so a change
//! accepted before its burst is reconciled raises nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tracing::{info, warn};

use super::flagged::{url_of, FlaggedScripts};
use super::fsstate::Reader;
use super::root::{under, Outcome, RootState, StoredSettings};
use super::select::{Classifier, Selection, Signatures};
use super::settings::{IntegrityConfig, WebRootConfig};
use super::stored;
use super::{incidents, ChangeClass, ChangeKind, Finding};
use crate::input::watch::Waker;
use crate::metrics::Metrics;
use crate::store::Store;

/// How often accepts and deploy markers are looked at.
const TICK: Duration = Duration::from_secs(1);

/// Baseline operations per finding during a long scan: the store gets the
/// baseline in commits of bounded size.
const OPS_PER_FINDING: usize = 5_000;

/// Distinct read errors reported per root before going quiet (they are
/// still counted in the metrics).
const MAX_ERRORS_LOGGED: usize = 100;

enum Msg {
    Event(notify::Result<notify::Event>),
    Stop,
}

/// The running watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
    findings: Receiver<Finding>,
    thread: Option<JoinHandle<()>>,
}

/// What the watcher works with, from the daemon.
pub struct Surroundings {
    pub config: IntegrityConfig,
    pub tz: TimeZone,
    /// The store; it must exist (the pipeline has opened it).
    pub db: PathBuf,
    pub flagged: FlaggedScripts,
    pub metrics: Arc<Metrics>,
    /// Called after each finding.
    pub wake: Waker,
}

impl Watcher {
    /// Starts watching `config.roots`.
    pub fn start(with: Surroundings) -> Result<Watcher, String> {
        let signatures = Signatures::new(&with.config.signatures)?;
        let mut roots = Vec::new();
        for rc in &with.config.roots {
            roots.push(Live::configure(rc)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (found_tx, findings) = mpsc::channel();
        let ctx = Context {
            with,
            signatures,
            stop: Arc::clone(&stop),
            found: found_tx,
        };
        let events = tx.clone();
        let thread = std::thread::Builder::new()
            .name("integrity".into())
            .spawn(move || ctx.run(roots, rx, events))
            .map_err(|e| format!("cannot start the integrity thread: {e}"))?;
        Ok(Watcher {
            stop,
            tx,
            findings,
            thread: Some(thread),
        })
    }

    pub fn try_recv(&self) -> Option<Finding> {
        self.findings.try_recv().ok()
    }

    /// Stops the thread and returns the findings it left.
    pub fn stop(mut self) -> Vec<Finding> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                warn!("the integrity thread panicked");
            }
        }
        self.findings.try_iter().collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
    }
}

struct Context {
    with: Surroundings,
    signatures: Signatures,
    stop: Arc<AtomicBool>,
    found: Sender<Finding>,
}

/// One root while the watcher runs.
struct Live {
    config: WebRootConfig,
    selection: Selection,
    classifier: Classifier,
    settings: StoredSettings,
    state: Option<RootState>,
    /// Paths to reconcile, and whether a deploy was under way when they
    /// were last seen changing (`[]`: the whole root).
    dirty: BTreeMap<Vec<u8>, bool>,
    burst_started: Option<(Instant, Timestamp)>,
    last_event: Instant,
    /// Reconcile without waiting for the burst to settle.
    urgent: bool,
    deploying: bool,
    next_rescan: Instant,
    errors_logged: HashSet<String>,
}

impl Live {
    fn configure(rc: &WebRootConfig) -> Result<Live, String> {
        let mut exclude = rc.exclude.clone();
        // A marker inside the root is the deploy's, not content.
        if let Some(rel) = rc
            .deploy
            .marker
            .as_ref()
            .and_then(|m| m.strip_prefix(&rc.path).ok())
        {
            exclude.push(glob::Pattern::escape(&rel.to_string_lossy()));
        }
        let selection = Selection::new(&rc.include, &exclude)?;
        let classifier = Classifier::new(&rc.upload_dirs, &rc.index_names, &rc.script_extensions)?;
        Ok(Live {
            settings: StoredSettings {
                path: rc.path.to_string_lossy().into_owned(),
                include: rc.include.clone(),
                exclude,
            },
            config: rc.clone(),
            selection,
            classifier,
            state: None,
            dirty: BTreeMap::new(),
            burst_started: None,
            last_event: Instant::now(),
            urgent: false,
            deploying: false,
            next_rescan: Instant::now(),
            errors_logged: HashSet::new(),
        })
    }

    fn mark(&mut self, rel: Vec<u8>, deploy: bool) {
        let now = Instant::now();
        self.burst_started.get_or_insert((now, Timestamp::now()));
        self.last_event = now;
        self.dirty.insert(rel, deploy);
    }
}

impl Context {
    fn run(self, mut roots: Vec<Live>, rx: Receiver<Msg>, events: Sender<Msg>) {
        let mut watcher = match notify::recommended_watcher(move |res| {
            let _ = events.send(Msg::Event(res));
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "integrity: no file change notifications ({e}); re-scanning every {:?} only",
                    self.with.config.rescan_interval
                );
                None
            }
        };
        let store = loop {
            match Store::open_read(&self.with.db) {
                Ok(s) => break s,
                Err(e) => {
                    warn!("integrity: cannot read the store ({e}); retrying");
                    if self.sleep(&rx, Duration::from_secs(5)) {
                        return;
                    }
                }
            }
        };
        let mut last_accept = stored::last_accept(&store).unwrap_or_else(|e| {
            warn!("integrity: cannot read the accept log: {e}");
            0
        });
        // Watches first, then the scans: a change during a scan is seen.
        for live in &mut roots {
            if let Some(w) = watcher.as_mut() {
                if let Err(e) = w.watch(&live.config.path, RecursiveMode::Recursive) {
                    warn!(
                        "integrity: web root {}: cannot watch {} ({e}; for inotify, raise fs.inotify.max_user_watches); relying on re-scans every {:?}",
                        live.config.name,
                        live.config.path.display(),
                        self.with.config.rescan_interval
                    );
                }
            }
            live.deploying = live.config.deploy.active(Timestamp::now(), &self.with.tz);
            live.mark(Vec::new(), live.deploying);
            live.urgent = true;
        }
        let mut reader = Reader::new(self.with.config.max_file_bytes, &self.signatures)
            .with_stop(Arc::clone(&self.stop));
        let mut next_tick = Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                self.poll_accepts(&store, &mut roots, &mut last_accept);
                for live in &mut roots {
                    let active = live.config.deploy.active(Timestamp::now(), &self.with.tz);
                    if live.deploying && !active {
                        info!(
                            "integrity: web root {}: deploy over, re-scanning it into the baseline",
                            live.config.name
                        );
                        live.mark(Vec::new(), true);
                    }
                    live.deploying = active;
                    if Instant::now() >= live.next_rescan {
                        live.mark(Vec::new(), active);
                        live.urgent = true;
                    }
                }
            }
            for live in &mut roots {
                let due = !live.dirty.is_empty()
                    && (live.urgent
                        || live.last_event.elapsed() >= self.with.config.debounce
                        || live
                            .burst_started
                            .is_some_and(|(t, _)| t.elapsed() >= self.with.config.max_burst));
                if due {
                    if live.state.is_none() && !self.load(&store, live) {
                        live.urgent = false;
                        live.next_rescan = Instant::now()
                            + self
                                .with
                                .config
                                .rescan_interval
                                .min(Duration::from_secs(60));
                        continue;
                    }
                    // An accept made during the burst counts.
                    self.poll_accepts(&store, std::slice::from_mut(live), &mut last_accept);
                    self.process(live, &mut reader);
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
            let mut until = next_tick;
            for live in &roots {
                if !live.dirty.is_empty() {
                    let settle = live.last_event + self.with.config.debounce;
                    let cap = live
                        .burst_started
                        .map_or(settle, |(t, _)| t + self.with.config.max_burst);
                    until = until.min(settle.min(cap));
                }
            }
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Event(ev)) => {
                    let mut deploy_now: HashMap<usize, bool> = HashMap::new();
                    let mut pending = vec![ev];
                    pending.extend(rx.try_iter().filter_map(|m| match m {
                        Msg::Event(ev) => Some(ev),
                        Msg::Stop => {
                            self.stop.store(true, Ordering::Relaxed);
                            None
                        }
                    }));
                    for ev in pending {
                        self.note(ev, &mut roots, &mut deploy_now);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Sleeps, unless told to stop (then returns true).
    fn sleep(&self, rx: &Receiver<Msg>, d: Duration) -> bool {
        matches!(
            rx.recv_timeout(d),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected)
        ) || self.stop.load(Ordering::Relaxed)
    }

    /// A notification: mark the paths it names.
    fn note(
        &self,
        ev: notify::Result<notify::Event>,
        roots: &mut [Live],
        deploy_now: &mut HashMap<usize, bool>,
    ) {
        let mut deploy = |i: usize, live: &Live| {
            *deploy_now
                .entry(i)
                .or_insert_with(|| live.config.deploy.active(Timestamp::now(), &self.with.tz))
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                warn!("integrity: notification error ({e}); re-scanning");
                for (i, live) in roots.iter_mut().enumerate() {
                    let d = deploy(i, live);
                    live.mark(Vec::new(), d);
                }
                return;
            }
        };
        if let EventKind::Access(kind) = ev.kind {
            // Our own reads open and close files; only a close after
            // writing says something changed.
            if kind != AccessKind::Close(AccessMode::Write) {
                return;
            }
        }
        if ev.need_rescan() {
            for (i, live) in roots.iter_mut().enumerate() {
                let d = deploy(i, live);
                live.mark(Vec::new(), d);
            }
            return;
        }
        for path in &ev.paths {
            for (i, live) in roots.iter_mut().enumerate() {
                let Ok(rel) = path.strip_prefix(&live.config.path) else {
                    continue;
                };
                let rel = std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()).to_vec();
                let wanted = live.state.as_ref().is_none_or(|s| s.wants(&rel));
                if wanted {
                    let d = deploy(i, live);
                    // Seen at work: its end triggers the closing re-scan
                    // even if it ended before the next tick.
                    live.deploying |= d;
                    live.mark(rel, d);
                }
            }
        }
    }

    /// Loads a root's known state from the store. False (logged) when the
    /// store cannot be read.
    fn load(&self, store: &Store, live: &mut Live) -> bool {
        let name = &live.config.name;
        let stored = match stored::settings(store, name) {
            Ok(Some(settings)) => match stored::entries(store, name, b"") {
                Ok(entries) => Some((settings, entries)),
                Err(e) => {
                    warn!("integrity: web root {name}: cannot read its baseline: {e}");
                    return false;
                }
            },
            Ok(None) => None,
            Err(e) => {
                warn!("integrity: web root {name}: cannot read its baseline: {e}");
                return false;
            }
        };
        match RootState::new(
            name.clone(),
            live.config.path.clone(),
            live.selection.clone(),
            live.classifier.clone(),
            live.settings.clone(),
            stored,
        ) {
            Ok((state, ops)) => {
                if state.is_first() {
                    info!(
                        "integrity: web root {name}: no baseline yet; recording one of {}",
                        live.config.path.display()
                    );
                }
                if !ops.is_empty() {
                    warn!(
                        "integrity: web root {name}: its path changed; the baseline starts afresh"
                    );
                    self.send(Finding {
                        ops,
                        incidents: Vec::new(),
                    });
                }
                live.state = Some(state);
                self.publish_flags(live);
                true
            }
            Err(e) => {
                warn!("integrity: web root {name}: {e}");
                false
            }
        }
    }

    fn poll_accepts(&self, store: &Store, roots: &mut [Live], last: &mut i64) {
        let accepts = match stored::accepts_after(store, *last) {
            Ok(a) => a,
            Err(e) => {
                warn!("integrity: cannot read the accept log: {e}");
                return;
            }
        };
        for a in accepts {
            if let Some(live) = roots.iter_mut().find(|l| l.config.name == a.root) {
                if let Some(state) = live.state.as_mut() {
                    match stored::entries(store, &a.root, &a.path) {
                        Ok(entries) => {
                            state.replace_under(&a.path, entries);
                            info!(
                                "integrity: web root {}: accepted {:?} as the new baseline",
                                a.root,
                                String::from_utf8_lossy(&a.path)
                            );
                        }
                        Err(e) => {
                            warn!("integrity: cannot read what was accepted: {e}");
                            return;
                        }
                    }
                }
                self.publish_flags(live);
            }
            // Roots other watchers (an earlier config) own are skipped too.
            *last = a.seq;
        }
    }

    fn process(&self, live: &mut Live, reader: &mut Reader) {
        let Some(state) = live.state.as_mut() else {
            return;
        };
        let name = live.config.name.clone();
        let full = live.dirty.contains_key(&Vec::new());
        if full && !live.config.path.is_dir() {
            let msg = format!(
                "integrity: web root {name}: {} is not a readable directory; nothing compared (is it mounted?)",
                live.config.path.display()
            );
            if live.errors_logged.insert(msg.clone()) {
                warn!("{msg}");
            }
            self.with
                .metrics
                .integrity_errors
                .with_label_values(&[&name])
                .inc();
            live.dirty.clear();
            live.burst_started = None;
            live.urgent = false;
            live.next_rescan = Instant::now() + self.with.config.rescan_interval;
            return;
        }
        let started = Instant::now();
        let (_, first_seen) = live
            .burst_started
            .take()
            .unwrap_or((started, Timestamp::now()));
        let dirty = std::mem::take(&mut live.dirty);
        live.urgent = false;
        let mut out = Outcome::default();
        // Paths seen outside a deploy first: the re-scan that ends a deploy
        // must not absorb a change made after it.
        for deploy in [false, true] {
            let mut done: Vec<&Vec<u8>> = Vec::new();
            for (path, _) in dirty.iter().filter(|(_, d)| **d == deploy) {
                if done.iter().any(|d| under(path, d)) {
                    continue;
                }
                state.reconcile(path, deploy, reader, &mut out);
                done.push(path);
                if out.ops.len() >= OPS_PER_FINDING && out.raised.is_empty() {
                    self.send(Finding {
                        ops: std::mem::take(&mut out.ops),
                        incidents: Vec::new(),
                    });
                }
            }
        }
        if full {
            live.next_rescan = Instant::now() + self.with.config.rescan_interval;
            self.with
                .metrics
                .integrity_scan_seconds
                .with_label_values(&[&name])
                .set(started.elapsed().as_secs_f64());
        }
        let m = &self.with.metrics;
        let out_hashed = out.hashed;
        m.integrity_hashed
            .with_label_values(&[&name])
            .inc_by(out.hashed);
        m.integrity_errors
            .with_label_values(&[&name])
            .inc_by(out.errors.len() as u64);
        for (outcome, n) in [
            ("raised", out.raised.len()),
            ("expected", out.expected),
            ("restored", out.restored),
        ] {
            m.integrity_changes
                .with_label_values(&[&name, outcome])
                .inc_by(n as u64);
        }
        for e in &out.errors {
            if live.errors_logged.len() < MAX_ERRORS_LOGGED && live.errors_logged.insert(e.clone())
            {
                warn!("integrity: web root {name}: cannot read {e}");
            }
        }
        if out.expected > 0 {
            info!(
                "integrity: web root {name}: {} change(s) taken into the baseline",
                out.expected
            );
        }
        if out.restored > 0 {
            info!(
                "integrity: web root {name}: {} flagged file(s) back to their baseline content",
                out.restored
            );
        }
        let root_path = live.config.path.display().to_string();
        let incidents = incidents(&name, &root_path, &out.raised, first_seen, Timestamp::now());
        if !out.raised.is_empty() {
            let worst = out
                .raised
                .iter()
                .map(|r| r.class)
                .max()
                .unwrap_or(ChangeClass::Content);
            warn!(
                "integrity: web root {name}: {} file(s) changed outside a deploy (worst: {worst}); incident recorded",
                out.raised.len()
            );
        }
        if !out.ops.is_empty() || !incidents.is_empty() {
            self.send(Finding {
                ops: out.ops,
                incidents,
            });
        }
        for rel in out.retry {
            // Being written: once it settles.
            let deploy = live.config.deploy.active(Timestamp::now(), &self.with.tz);
            live.mark(rel, deploy);
        }
        let files = live.state.as_ref().map_or(0, RootState::files);
        m.integrity_files
            .with_label_values(&[&name])
            .set(files as i64);
        self.publish_flags(live);
        if full {
            // After the finding went to the pipeline: whoever reads this
            // line knows the scan's results are on their way to the store.
            info!(
                "integrity: web root {name}: scanned, {files} file(s) known, {} read, in {:.3}s",
                out_hashed,
                started.elapsed().as_secs_f64()
            );
        }
    }

    /// The flagged scripts of a root, as URLs, and the flag count.
    fn publish_flags(&self, live: &Live) {
        let Some(state) = live.state.as_ref() else {
            return;
        };
        let mut urls = HashSet::new();
        let mut count = 0;
        for (path, flag) in state.flagged() {
            count += 1;
            if matches!(flag.class, ChangeClass::Webshell | ChangeClass::Script)
                && flag.kind != ChangeKind::Removed
            {
                urls.insert(url_of(&live.config.url_prefix, path));
            }
        }
        self.with.flagged.replace(&live.config.name, urls);
        self.with
            .metrics
            .integrity_flagged
            .with_label_values(&[&live.config.name])
            .set(count);
    }

    fn send(&self, finding: Finding) {
        if self.found.send(finding).is_ok() {
            self.with.wake.wake();
        }
    }
}

/// Every watched file under `prefix` of a web root as it is now: what
/// `canhgac integrity accept` makes the baseline. Errors name the files
/// that could not be read (nothing is accepted then).
pub fn current_states(
    rc: &WebRootConfig,
    config: &IntegrityConfig,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, super::fsstate::FileState)>, Vec<String>> {
    let live = Live::configure(rc).map_err(|e| vec![e])?;
    let signatures = Signatures::new(&config.signatures).map_err(|e| vec![e])?;
    let mut reader = Reader::new(config.max_file_bytes, &signatures);
    let mut states = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<(Vec<u8>, std::fs::Metadata)> = Vec::new();
    for e in super::fsstate::walk(
        &rc.path,
        prefix,
        &|rel| live.selection.skips_dir(&String::from_utf8_lossy(rel)),
        &mut |rel, meta| {
            if live.selection.file(&String::from_utf8_lossy(rel)) {
                files.push((rel.to_vec(), meta.clone()));
            }
        },
    ) {
        errors.push(format!("{}: {}", e.path.display(), e.error));
    }
    for (rel, meta) in files {
        let abs: PathBuf = rc
            .path
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&rel));
        let text = live.classifier.is_text(&String::from_utf8_lossy(&rel));
        // A file being written is read again, a few times.
        let mut tries = 0;
        loop {
            match reader.read(&abs, &meta, text) {
                Ok(state) => {
                    states.push((rel, state));
                    break;
                }
                Err(super::fsstate::ReadError::Vanished) => break,
                Err(super::fsstate::ReadError::Unstable) if tries < 3 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    errors.push(format!("{}: {e}", abs.display()));
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(states)
    } else {
        Err(errors)
    }
}

/// The web root holding `path`, and `path` relative to it.
pub fn locate<'a>(
    config: &'a IntegrityConfig,
    path: &Path,
) -> Option<(&'a WebRootConfig, Vec<u8>)> {
    config
        .roots
        .iter()
        .filter_map(|rc| {
            path.strip_prefix(&rc.path).ok().map(|rel| {
                let rel = std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()).to_vec();
                (rc, rel)
            })
        })
        // The innermost root, should roots nest.
        .max_by_key(|(rc, _)| rc.path.as_os_str().len())
}
