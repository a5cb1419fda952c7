//! The center's `/metrics`: the national period counts and changes per
//! category (the agencies' own collector, on the center store), agencies
//! reporting and silent, and how far ingestion lags. No label comes from
//! an agency: agency ids would let one agency grow the series without
//! bound; the per-agency view is `canhgac report` on the center store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use jiff::Timestamp;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::ingest::Refusal;
use crate::config::CenterConfig;
use crate::store::{Applied, CenterStore, Store};

/// How often the agencies' states are recounted.
const AGENCIES_EVERY: Duration = Duration::from_secs(5);

pub(super) struct CenterMetrics {
    registry: Registry,
    pub connected: IntGauge,
    pub failures: IntCounter,
    messages: IntCounterVec,
    refused: IntCounterVec,
    incidents: IntCounterVec,
    delivery: Histogram,
    commit: Histogram,
    consumer_pending: IntGauge,
    last_commit: Gauge,
    agencies: IntGaugeVec,
    commit_seq: Arc<AtomicU64>,
    silent_after_us: i64,
    last_count: Mutex<Option<Instant>>,
}

impl CenterMetrics {
    pub fn new(config: &CenterConfig) -> Result<CenterMetrics, prometheus::Error> {
        let commit_seq = Arc::new(AtomicU64::new(0));
        let m = CenterMetrics {
            registry: Registry::new(),
            connected: IntGauge::new(
                "canhgac_center_connected",
                "1 while the center consumes the stream.",
            )?,
            failures: IntCounter::new(
                "canhgac_center_failures_total",
                "Connections, fetches, commits or acknowledgements that failed (retried with backoff).",
            )?,
            messages: IntCounterVec::new(
                Opts::new(
                    "canhgac_center_messages_total",
                    "Messages committed to the center store, by kind (incident, heartbeat).",
                ),
                &["kind"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "canhgac_center_refused_total",
                    "Messages refused and terminated, by reason: subject, malformed, agency_mismatch, invalid.",
                ),
                &["reason"],
            )?,
            incidents: IntCounterVec::new(
                Opts::new(
                    "canhgac_center_incident_changes_total",
                    "Incident messages by outcome: inserted (a new incident), updated (a higher revision), stale (a revision already held: a redelivery), refused (an incident another agency sent first).",
                ),
                &["outcome"],
            )?,
            delivery: Histogram::with_opts(
                HistogramOpts::new(
                    "canhgac_center_delivery_seconds",
                    "From the agency's commit of an incident change to the center's commit of it (clocks of both sides): the histogram of the end-to-end delay.",
                )
                .buckets(vec![
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                    3600.0,
                ]),
            )?,
            commit: Histogram::with_opts(
                HistogramOpts::new(
                    "canhgac_center_commit_duration_seconds",
                    "Time to commit one batch of received messages to the center store.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            consumer_pending: IntGauge::new(
                "canhgac_center_consumer_pending_messages",
                "Messages in the stream the center has not read yet, as of its last batch.",
            )?,
            last_commit: Gauge::new(
                "canhgac_center_last_commit_timestamp_seconds",
                "Unix time of the center's last commit of received messages.",
            )?,
            agencies: IntGaugeVec::new(
                Opts::new(
                    "canhgac_center_agencies",
                    "Agencies heard of, by state: reporting (a heartbeat within silent_after), silent (none since).",
                ),
                &["state"],
            )?,
            commit_seq: Arc::clone(&commit_seq),
            silent_after_us: i64::try_from(config.silent_after.as_micros()).unwrap_or(i64::MAX),
            last_count: Mutex::new(None),
        };
        for kind in ["incident", "heartbeat"] {
            m.messages.with_label_values(&[kind]);
        }
        for r in Refusal::ALL {
            m.refused.with_label_values(&[r.label()]);
        }
        for outcome in ["inserted", "updated", "stale", "refused"] {
            m.incidents.with_label_values(&[outcome]);
        }
        for state in ["reporting", "silent"] {
            m.agencies.with_label_values(&[state]);
        }
        let r = &m.registry;
        r.register(Box::new(m.connected.clone()))?;
        r.register(Box::new(m.failures.clone()))?;
        r.register(Box::new(m.messages.clone()))?;
        r.register(Box::new(m.refused.clone()))?;
        r.register(Box::new(m.incidents.clone()))?;
        r.register(Box::new(m.delivery.clone()))?;
        r.register(Box::new(m.commit.clone()))?;
        r.register(Box::new(m.consumer_pending.clone()))?;
        r.register(Box::new(m.last_commit.clone()))?;
        r.register(Box::new(m.agencies.clone()))?;
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        r.register(crate::metrics::monthly_collector(
            config.db_path(),
            config.time_zone.clone(),
            commit_seq,
            5,
        )?)?;
        Ok(m)
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused.with_label_values(&[reason.label()]).inc();
    }

    pub fn committed(
        &self,
        seconds: f64,
        applied: &Applied,
        incidents: usize,
        heartbeats: usize,
        latencies: &[f64],
        pending: u64,
    ) {
        self.messages
            .with_label_values(&["incident"])
            .inc_by(incidents as u64);
        self.messages
            .with_label_values(&["heartbeat"])
            .inc_by(heartbeats as u64);
        for (outcome, n) in [
            ("inserted", applied.inserted),
            ("updated", applied.updated),
            ("stale", applied.stale),
            ("refused", applied.refused),
        ] {
            self.incidents.with_label_values(&[outcome]).inc_by(n);
        }
        self.commit.observe(seconds);
        for &l in latencies {
            self.delivery.observe(l);
        }
        self.consumer_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.last_commit
            .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
        self.commit_seq.fetch_add(1, Ordering::Relaxed);
    }

    /// Recounts reporting and silent agencies, at most every few seconds.
    pub fn refresh(&self, store: &Mutex<Store>) {
        {
            let Ok(mut last) = self.last_count.lock() else {
                return;
            };
            if last.is_some_and(|t| t.elapsed() < AGENCIES_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let agencies = match store.lock() {
            Ok(s) => s.agencies(),
            Err(_) => return,
        };
        let Ok(agencies) = agencies else { return };
        let cutoff = Timestamp::now().as_microsecond() - self.silent_after_us;
        let reporting = agencies
            .iter()
            .filter(|a| a.last_heartbeat_us.is_some_and(|t| t >= cutoff))
            .count();
        self.agencies
            .with_label_values(&["reporting"])
            .set(reporting as i64);
        self.agencies
            .with_label_values(&["silent"])
            .set((agencies.len() - reporting) as i64);
    }

    fn render(&self) -> Vec<u8> {
        crate::metrics::encode(&self.registry)
    }
}

/// `/metrics` and `/healthz` until the task is aborted.
pub(super) async fn serve(listener: tokio::net::TcpListener, metrics: Arc<CenterMetrics>) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    let body = tokio::task::spawn_blocking(move || metrics.render())
                        .await
                        .unwrap_or_default();
                    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("center HTTP: {e}");
    }
}
