//! What `/metrics` serves: incidents for the national monitoring center,
//! and the health of the pipeline for the agency's sysadmin.
//!
//! Names follow DESIGN.md: prefix `canhgac_`, counters end in `_total`, base
//! units in the name, and label values only from bounded sets (categories,
//! severities, rule ids, input names, fixed period names), never from log
//! content: a flood of attacker addresses cannot grow the number of series.
//!
//! Incident figures come from the store, so a restart neither resets nor
//! distorts them: `canhgac_incidents_total` starts from the stored counts,
//! and the calendar-month figures are counted in the store at scrape time
//! (cached until the next commit, and for at most a minute so that "this
//! month" and "the same period last year" move with the clock and a month
//! rolls over at local midnight without a restart).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::category::{Category, Severity};
use crate::months::{change, LiveWindows, Window};
use crate::store::Store;

/// How long monthly figures are reused when nothing was committed.
const MONTHLY_MAX_AGE: Duration = Duration::from_secs(60);

/// The pipeline's instruments. Cheap to update from the pipeline thread
/// (atomics); the HTTP side only reads.
pub struct Metrics {
    registry: Registry,
    pub incidents: IntCounterVec,
    pub input_lines: IntCounterVec,
    pub input_bytes: IntCounterVec,
    pub input_behind: IntGaugeVec,
    pub input_files: IntGaugeVec,
    pub input_read_errors: IntCounterVec,
    pub input_lines_cut: IntCounterVec,
    /// Lines checked and found not to be of the input's type.
    pub input_lines_unrecognised: IntCounterVec,
    /// Matched lines whose client was no address nor host name.
    pub events_rejected: IntCounter,
    /// Syslog receivers: messages dropped, by reason.
    pub input_dropped: IntCounterVec,
    /// Syslog TCP receivers: open connections.
    pub input_connections: IntGaugeVec,
    /// Journal inputs: the journal opened again after a read error.
    pub input_restarts: IntCounterVec,
    /// Journal inputs: stored cursors no longer in the journal.
    pub input_position_lost: IntCounterVec,
    pub input_connections_shed: IntCounterVec,
    pub rule_events: IntCounterVec,
    pub detector_keys: IntGauge,
    pub detector_evicted: IntCounter,
    pub detector_returned: IntCounter,
    pub detector_expired: IntCounter,
    pub events_late: IntCounter,
    pub lines_future_dated: IntCounter,
    pub detector_state_rows: IntGauge,
    pub commit_duration: Histogram,
    pub commit_failures: IntCounter,
    pub commits: IntCounter,
    pub last_commit: Gauge,
    pub rules_loaded: IntGauge,
    pub reloads: IntCounterVec,
    /// 1 while the config and rules in force are those on disk as of the
    /// last reload, 0 after a refused reload (the alert's condition: a
    /// counter would forget a failure once its window passed).
    pub reload_ok: IntGauge,
    /// Indicators in use, per feed.
    pub feed_indicators: IntGaugeVec,
    /// Looks at a changed feed file, per feed and result (`success`,
    /// `failure`: invalid or unreadable, the old set kept; `incomplete`:
    /// still being written, waited for).
    pub feed_loads: IntCounterVec,
    pub feed_last_load: GaugeVec,
    /// Requests refused for missing or wrong credentials, by endpoint
    /// (`metrics`, `api`).
    pub http_auth_failures: IntCounterVec,
    /// Connections to the HTTP listener open now, and those the daemon
    /// closed to keep within its limits, by reason (see `http::serve`).
    pub http_connections: IntGauge,
    pub http_connections_closed: IntCounterVec,
    /// Audit records over the audit trail's rate, not written.
    pub audit_dropped: IntCounter,
    /// Web-root integrity, per configured web root.
    pub integrity_files: IntGaugeVec,
    pub integrity_flagged: IntGaugeVec,
    pub integrity_scan_seconds: GaugeVec,
    pub integrity_hashed: IntCounterVec,
    pub integrity_errors: IntCounterVec,
    pub integrity_changes: IntCounterVec,
    build_info: IntGaugeVec,
    /// Inputs open and the first sweep done.
    pub ready: AtomicBool,
    /// The last commit attempt succeeded (or none failed yet).
    pub store_ok: AtomicBool,
    /// What else keeps the daemon from doing its job, as of the pipeline's
    /// last sweep (an input whose files cannot be opened, one far behind):
    /// a sentence each, for `/readyz`.
    pub degraded: std::sync::Mutex<Vec<String>>,
    /// Commits so far, the monthly cache's key.
    commit_seq: std::sync::Arc<AtomicU64>,
    rules_digest: Mutex<String>,
}

impl Metrics {
    /// `report_within_days`: the deadline of `canhgac_incidents_overdue`.
    pub fn new(
        db: PathBuf,
        tz: TimeZone,
        report_within_days: u32,
    ) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let m = Metrics {
            incidents: counter_vec(
                "canhgac_incidents_total",
                "Incidents recorded in the store, by category and severity (restored from the store at start).",
                &["category", "severity"],
            )?,
            input_lines: counter_vec(
                "canhgac_input_lines_total",
                "Lines read, per configured input.",
                &["input"],
            )?,
            input_bytes: counter_vec(
                "canhgac_input_bytes_total",
                "Bytes read, per configured input.",
                &["input"],
            )?,
            input_behind: gauge_vec(
                "canhgac_input_behind_bytes",
                "Bytes written to the input's files and not yet read (file size minus offset).",
                &["input"],
            )?,
            input_files: gauge_vec(
                "canhgac_input_files",
                "Files tailed (held open), per input.",
                &["input"],
            )?,
            input_read_errors: counter_vec(
                "canhgac_input_read_errors_total",
                "Failed attempts to open, stat or read a file of the input (retried).",
                &["input"],
            )?,
            input_lines_cut: counter_vec(
                "canhgac_input_lines_cut_total",
                "Lines longer than max_line_bytes, cut to it.",
                &["input"],
            )?,
            input_lines_unrecognised: counter_vec(
                "canhgac_input_lines_unrecognised_total",
                "Lines checked and found not to be of the input's type (a wrong `type`, or a log format canhgac does not read): every line of each source's first 64 KiB, then the first line of every read.",
                &["input"],
            )?,
            events_rejected: IntCounter::new(
                "canhgac_events_rejected_total",
                "Matched lines not counted because the client address they name is neither an IP address nor a host name (garbled or forged).",
            )?,
            input_dropped: counter_vec(
                "canhgac_input_dropped_total",
                "Syslog messages received and dropped, by reason: oversized (max_message_bytes), malformed, queue_full (UDP while the store is behind), socket_buffer (dropped by the kernel before we read them: a burst longer than the socket's receive buffer).",
                &["input", "reason"],
            )?,
            input_connections: gauge_vec(
                "canhgac_input_connections",
                "Open TCP connections of a syslog receiver.",
                &["input"],
            )?,
            input_restarts: counter_vec(
                "canhgac_input_restarts_total",
                "Times a journal input opened the journal again after a read error.",
                &["input"],
            )?,
            input_position_lost: counter_vec(
                "canhgac_input_position_lost_total",
                "Stored positions found nowhere: a journal cursor vacuumed (reading resumed at the oldest entry), or a checkpointed file gone at restart, neither moved nor compressed where logrotate puts them (its unread lines lost).",
                &["input"],
            )?,
            input_connections_shed: counter_vec(
                "canhgac_input_connections_shed_total",
                "Syslog TCP connections closed at the connection cap, the quietest first, to admit a new one.",
                &["input"],
            )?,
            rule_events: counter_vec(
                "canhgac_rule_events_total",
                "Lines matched, per rule.",
                &["rule"],
            )?,
            detector_keys: IntGauge::new(
                "canhgac_detector_keys",
                "(rule, key) pairs the detector tracks.",
            )?,
            detector_evicted: IntCounter::new(
                "canhgac_detector_keys_evicted_total",
                "Keys evicted because max_keys was reached (their open incidents are closed, not lost).",
            )?,
            detector_returned: IntCounter::new(
                "canhgac_detector_keys_returned_total",
                "Keys tracked again soon after their eviction: attackers forgotten between two of their tries, because more are active at once than [pipeline] max_keys holds; raise it.",
            )?,
            detector_expired: IntCounter::new(
                "canhgac_detector_keys_expired_total",
                "Keys forgotten because their window and cooldown had passed in event time (their open incidents are closed).",
            )?,
            events_late: IntCounter::new(
                "canhgac_detector_events_late_total",
                "Events not counted because they came more than max_lateness behind their key's newest event.",
            )?,
            lines_future_dated: IntCounter::new(
                "canhgac_lines_future_dated_total",
                "Matched lines dated more than max_clock_skew ahead of the clock, taken as read when they were read.",
            )?,
            detector_state_rows: IntGauge::new(
                "canhgac_detector_state_rows",
                "Detector key rows in the store, superseded ones included (rewritten from the live keys once they outnumber them).",
            )?,
            commit_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "canhgac_store_commit_duration_seconds",
                    "Time to commit one batch (incidents, checkpoints, detector state) to the store.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            commit_failures: IntCounter::new(
                "canhgac_store_commit_failures_total",
                "Batch commits that failed (database busy, disk full, ...) and were retried.",
            )?,
            commits: IntCounter::new(
                "canhgac_store_commits_total",
                "Batches committed to the store.",
            )?,
            last_commit: Gauge::new(
                "canhgac_store_last_commit_timestamp_seconds",
                "Unix time of the last successful commit.",
            )?,
            rules_loaded: IntGauge::new("canhgac_rules_loaded", "Rules loaded.")?,
            reloads: counter_vec(
                "canhgac_reloads_total",
                "Reloads of config and rules (SIGHUP), by result.",
                &["result"],
            )?,
            reload_ok: IntGauge::new(
                "canhgac_config_last_reload_successful",
                "1 if the last reload of config and rules (or the start) succeeded, 0 if it was refused and the previous set still runs.",
            )?,
            feed_indicators: gauge_vec(
                "canhgac_feed_indicators",
                "Indicators in use, per IoC feed.",
                &["feed"],
            )?,
            feed_loads: counter_vec(
                "canhgac_feed_loads_total",
                "Loads of a new version of a feed file, by result: success, failure (bad lines or unreadable; the previous indicators stay in use), incomplete (still being written; waited for).",
                &["feed", "result"],
            )?,
            feed_last_load: GaugeVec::new(
                Opts::new(
                    "canhgac_feed_last_load_timestamp_seconds",
                    "Unix time of the feed's last successful load.",
                ),
                &["feed"],
            )?,
            http_auth_failures: counter_vec(
                "canhgac_http_auth_failures_total",
                "HTTP requests refused for missing or wrong credentials, by endpoint (metrics, api).",
                &["endpoint"],
            )?,
            http_connections: IntGauge::new(
                "canhgac_http_connections",
                "Connections to the HTTP listener open now.",
            )?,
            http_connections_closed: counter_vec(
                "canhgac_http_connections_closed_total",
                "HTTP connections the daemon closed to stay within its limits, by reason (shed: idle the longest when a new one came at max_connections; refused: at max_connections with every connection busy; idle; header_timeout; handshake_timeout).",
                &["reason"],
            )?,
            audit_dropped: IntCounter::new(
                "canhgac_audit_records_dropped_total",
                "Audit records of HTTP requests not written: over the audit trail's rate.",
            )?,
            integrity_files: gauge_vec(
                "canhgac_integrity_files",
                "Files in the baseline of each web root.",
                &["root"],
            )?,
            integrity_flagged: gauge_vec(
                "canhgac_integrity_flagged_files",
                "Files changed outside a deploy, raised and not yet accepted (canhgac integrity status).",
                &["root"],
            )?,
            integrity_scan_seconds: GaugeVec::new(
                Opts::new(
                    "canhgac_integrity_scan_duration_seconds",
                    "Duration of the last full scan of each web root.",
                ),
                &["root"],
            )?,
            integrity_hashed: counter_vec(
                "canhgac_integrity_files_hashed_total",
                "Files read and hashed (new, or their size or times changed), per web root.",
                &["root"],
            )?,
            integrity_errors: counter_vec(
                "canhgac_integrity_read_errors_total",
                "Files or directories of a web root that could not be read.",
                &["root"],
            )?,
            integrity_changes: counter_vec(
                "canhgac_integrity_changes_total",
                "Changes seen in web roots: raised (outside a deploy), expected (deploy, uploads, first scan) or restored.",
                &["root", "outcome"],
            )?,
            build_info: gauge_vec(
                "canhgac_build_info",
                "Always 1: the version of canhgac and the digest of its loaded rule set.",
                &["version", "rules_digest"],
            )?,
            ready: AtomicBool::new(false),
            store_ok: AtomicBool::new(true),
            degraded: std::sync::Mutex::new(Vec::new()),
            commit_seq: std::sync::Arc::new(AtomicU64::new(0)),
            rules_digest: Mutex::new(String::new()),
            registry,
        };
        for c in Category::ALL {
            for s in Severity::ALL {
                m.incidents.with_label_values(&[c.id(), s.id()]);
            }
        }
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]);
        }
        m.reload_ok.set(1);
        for endpoint in ["metrics", "api"] {
            m.http_auth_failures.with_label_values(&[endpoint]);
        }
        let monthly = MonthlyCollector::new(
            db,
            tz,
            std::sync::Arc::clone(&m.commit_seq),
            report_within_days,
        )?;
        let r = &m.registry;
        r.register(Box::new(m.incidents.clone()))?;
        r.register(Box::new(m.input_lines.clone()))?;
        r.register(Box::new(m.input_bytes.clone()))?;
        r.register(Box::new(m.input_behind.clone()))?;
        r.register(Box::new(m.input_files.clone()))?;
        r.register(Box::new(m.input_read_errors.clone()))?;
        r.register(Box::new(m.input_lines_cut.clone()))?;
        r.register(Box::new(m.input_lines_unrecognised.clone()))?;
        r.register(Box::new(m.events_rejected.clone()))?;
        r.register(Box::new(m.input_dropped.clone()))?;
        r.register(Box::new(m.input_connections.clone()))?;
        r.register(Box::new(m.input_restarts.clone()))?;
        r.register(Box::new(m.input_connections_shed.clone()))?;
        r.register(Box::new(m.input_position_lost.clone()))?;
        r.register(Box::new(m.rule_events.clone()))?;
        r.register(Box::new(m.detector_keys.clone()))?;
        r.register(Box::new(m.detector_evicted.clone()))?;
        r.register(Box::new(m.detector_returned.clone()))?;
        r.register(Box::new(m.detector_expired.clone()))?;
        r.register(Box::new(m.events_late.clone()))?;
        r.register(Box::new(m.lines_future_dated.clone()))?;
        r.register(Box::new(m.detector_state_rows.clone()))?;
        // process_resident_memory_bytes and the rest, for the unit's MemoryMax.
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        r.register(Box::new(m.commit_duration.clone()))?;
        r.register(Box::new(m.commit_failures.clone()))?;
        r.register(Box::new(m.commits.clone()))?;
        r.register(Box::new(m.last_commit.clone()))?;
        r.register(Box::new(m.rules_loaded.clone()))?;
        r.register(Box::new(m.reloads.clone()))?;
        r.register(Box::new(m.reload_ok.clone()))?;
        r.register(Box::new(m.http_auth_failures.clone()))?;
        r.register(Box::new(m.http_connections.clone()))?;
        r.register(Box::new(m.http_connections_closed.clone()))?;
        r.register(Box::new(m.audit_dropped.clone()))?;
        r.register(Box::new(m.integrity_files.clone()))?;
        r.register(Box::new(m.integrity_flagged.clone()))?;
        r.register(Box::new(m.integrity_scan_seconds.clone()))?;
        r.register(Box::new(m.integrity_hashed.clone()))?;
        r.register(Box::new(m.integrity_errors.clone()))?;
        r.register(Box::new(m.integrity_changes.clone()))?;
        r.register(Box::new(m.feed_indicators.clone()))?;
        r.register(Box::new(m.feed_loads.clone()))?;
        r.register(Box::new(m.feed_last_load.clone()))?;
        r.register(Box::new(m.build_info.clone()))?;
        r.register(Box::new(monthly))?;
        Ok(m)
    }

    /// Adds instruments kept elsewhere (the forwarder's) to `/metrics`.
    pub fn register(&self, c: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(c)
    }

    /// The digest of the rules in force, as `canhgac_build_info` gives it.
    pub fn rules_digest(&self) -> String {
        self.rules_digest
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Bytes written to every input and not yet read.
    pub fn inputs_behind_bytes(&self) -> u64 {
        self.input_behind
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_gauge().get_value().max(0.0) as u64)
            .sum()
    }

    /// The rule set's identity, replaced on reload.
    pub fn set_rules(&self, count: usize, digest: &str) {
        if let Ok(mut d) = self.rules_digest.lock() {
            digest.clone_into(&mut d);
        }
        self.rules_loaded.set(count as i64);
        self.build_info.reset();
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), digest])
            .set(1);
    }

    /// Series of the declared feeds (at 0 until something happens), and
    /// none of feeds no longer declared.
    pub fn set_feeds(&self, names: &[&str], dropped: &[String]) {
        for name in dropped {
            let _ = self.feed_indicators.remove_label_values(&[name]);
            let _ = self.feed_last_load.remove_label_values(&[name]);
            for result in ["success", "failure", "incomplete"] {
                let _ = self.feed_loads.remove_label_values(&[name, result]);
            }
        }
        for name in names {
            self.feed_indicators.with_label_values(&[name]);
            for result in ["success", "failure", "incomplete"] {
                self.feed_loads.with_label_values(&[name, result]);
            }
        }
    }

    /// Starts `canhgac_incidents_total` from what the store holds.
    pub fn restore_incidents(&self, totals: &[(String, String, u64)]) {
        for (category, severity, n) in totals {
            let c = self.incidents.with_label_values(&[category, severity]);
            c.reset();
            c.inc_by(*n);
        }
    }

    pub fn committed(&self, seconds: f64) {
        self.commits.inc();
        self.commit_duration.observe(seconds);
        self.last_commit
            .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
        self.commit_seq.fetch_add(1, Ordering::Relaxed);
        self.store_ok.store(true, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        encode(&self.registry)
    }
}

/// Everything `registry` holds, in the Prometheus text exposition format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail on I/O; a family the encoder rejects
    // would be a bug in this module, and an empty page says so more clearly
    // than half a page.
    if TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        out.clear();
    }
    out
}

/// The calendar-month figures of the store at `db` (`canhgac_incidents_period`,
/// `canhgac_incidents_change_ratio`, overdue), recounted when `commit_seq`
/// moves and at least every minute: the center's national figures are the
/// same collector on the center's store.
pub fn monthly_collector(
    db: PathBuf,
    tz: TimeZone,
    commit_seq: std::sync::Arc<AtomicU64>,
    report_within_days: u32,
) -> Result<Box<dyn Collector>, prometheus::Error> {
    Ok(Box::new(MonthlyCollector::new(
        db,
        tz,
        commit_seq,
        report_within_days,
    )?))
}

/// The calendar-month figures per category, counted in the store.
struct MonthlyCollector {
    db: PathBuf,
    tz: TimeZone,
    commit_seq: std::sync::Arc<AtomicU64>,
    period: IntGaugeVec,
    change: GaugeVec,
    /// Serious incidents past the reporting deadline, and that deadline.
    overdue: IntGauge,
    report_within: jiff::SignedDuration,
    descs: Vec<Desc>,
    state: Mutex<MonthlyState>,
}

#[derive(Default)]
struct MonthlyState {
    reader: Option<Store>,
    /// (commit sequence, the store's outside changes, month, when) of the
    /// figures now in the gauges.
    computed: Option<(u64, (i64, i64), crate::months::Month, Instant)>,
}

impl MonthlyCollector {
    fn new(
        db: PathBuf,
        tz: TimeZone,
        commit_seq: std::sync::Arc<AtomicU64>,
        report_within_days: u32,
    ) -> Result<Self, prometheus::Error> {
        let period = IntGaugeVec::new(
            Opts::new(
                "canhgac_incidents_period",
                "Incidents first seen in a calendar period, in the configured time zone: this_month (so far), last_month, same_month_last_year, year_to_date, same_period_last_year (January 1 to this instant a year ago), last_month_to_date and same_month_last_year_to_date (from the 1st to this day and time of that month). False positives are left out.",
            ),
            &["category", "period"],
        )?;
        let change = GaugeVec::new(
            Opts::new(
                "canhgac_incidents_change_ratio",
                "Change of incidents as a ratio (0.1107 is +11.07%): month_over_month (this month so far against last month to the same day and time), year_over_year (against the same month last year to the same day and time), year_to_date (against the same period last year). Absent where the base is zero.",
            ),
            &["category", "comparison"],
        )?;
        let overdue = IntGauge::new(
            "canhgac_incidents_overdue",
            "Incidents of severity high or critical recorded longer ago than [organisation] report_within_days (default 5, Circular 20/2017) and neither reported to the national coordinator (canhgac incident reported ID) nor marked false positive; imported history is never overdue. canhgac incidents --overdue lists them.",
        )?;
        let descs = period
            .desc()
            .into_iter()
            .chain(change.desc())
            .chain(overdue.desc())
            .cloned()
            .collect();
        Ok(MonthlyCollector {
            db,
            tz,
            commit_seq,
            period,
            change,
            overdue,
            report_within: jiff::SignedDuration::from_hours(24 * i64::from(report_within_days)),
            descs,
            state: Mutex::new(MonthlyState::default()),
        })
    }

    fn refresh(&self, state: &mut MonthlyState) -> Result<(), String> {
        let now = Timestamp::now();
        let windows = LiveWindows::at(now, &self.tz);
        let seq = self.commit_seq.load(Ordering::Relaxed);
        if state.reader.is_none() {
            state.reader = Some(Store::open_read(&self.db).map_err(|e| e.to_string())?);
        }
        let Some(reader) = &state.reader else {
            return Ok(());
        };
        // What changes the figures outside the daemon's commits (a status
        // set from the command line, an import) is seen at the next scrape,
        // not a minute later.
        let outside = reader.change_mark().map_err(|e| e.to_string())?;
        if let Some((s, mark, month, at)) = state.computed {
            if s == seq
                && mark == outside
                && month == windows.month
                && at.elapsed() < MONTHLY_MAX_AGE
            {
                return Ok(());
            }
        }
        let count = |w: Window| -> Result<Vec<(String, u64)>, String> {
            reader
                .count_by_category(w.start, w.end)
                .map_err(|e| e.to_string())
        };
        let periods = [
            ("this_month", count(windows.this_month)?),
            ("last_month", count(windows.last_month)?),
            ("same_month_last_year", count(windows.same_month_last_year)?),
            ("year_to_date", count(windows.year_to_date)?),
            (
                "same_period_last_year",
                count(windows.same_period_last_year)?,
            ),
            ("last_month_to_date", count(windows.last_month_to_date)?),
            (
                "same_month_last_year_to_date",
                count(windows.same_month_last_year_to_date)?,
            ),
        ];
        let cutoff = now.checked_sub(self.report_within).unwrap_or(now);
        let overdue = reader.count_overdue(cutoff).map_err(|e| e.to_string())?;
        self.overdue.set(i64::try_from(overdue).unwrap_or(i64::MAX));
        self.period.reset();
        self.change.reset();
        for category in Category::ALL {
            let id = category.id();
            let n = |i: usize| -> u64 {
                periods[i]
                    .1
                    .iter()
                    .find(|(c, _)| c == id)
                    .map_or(0, |(_, n)| *n)
            };
            for (i, (name, _)) in periods.iter().enumerate() {
                self.period.with_label_values(&[id, name]).set(n(i) as i64);
            }
            // A month in progress against the same days: after four days,
            // against all of last month it would read −88%.
            for (name, cur, base) in [
                ("month_over_month", n(0), n(5)),
                ("year_over_year", n(0), n(6)),
                ("year_to_date", n(3), n(4)),
            ] {
                if let Some(r) = change(cur, base) {
                    self.change.with_label_values(&[id, name]).set(r);
                }
            }
        }
        state.computed = Some((seq, outside, windows.month, Instant::now()));
        Ok(())
    }
}

impl Collector for MonthlyCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.refresh(&mut state) {
            // Before the first commit there is no database to read; later,
            // a failing read keeps the last figures rather than none.
            state.reader = None;
            if state.computed.is_some() {
                tracing::warn!("monthly figures not refreshed: {e}");
            }
        }
        let mut families = self.period.collect();
        families.extend(self.change.collect());
        families.extend(self.overdue.collect());
        families
    }
}
