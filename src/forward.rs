//! The forwarder: this agency's outbox, published to the national center's
//! NATS JetStream, in order, each change exactly once at the center.
//!
//! It runs beside the pipeline on its own store connection and never
//! holds it up: the daemon starts, detects and stores whether the center
//! is reachable or not. A row is marked delivered only after JetStream
//! acknowledged it (a duplicate acknowledgement counts: the stream has
//! it), in a transaction of its own; a crash in between sends the same
//! message id again, which the stream or the center drops. While the
//! center is out of reach the outbox is bounded by `[forward] max_age`
//! and `max_pending`; what the bound gives up is logged and counted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use jiff::Timestamp;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};
use tracing::{info, warn};

use crate::broker::{self, Heartbeat, HEARTBEAT_SCHEMA};
use crate::config::ForwardConfig;
use crate::metrics::Metrics;
use crate::store::{OutboxBound, Pending, Store, StoreError};

/// Messages published before their acknowledgements are awaited.
const BATCH: usize = 256;
/// How often the outbox is looked at while it is empty.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often the bound is enforced.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The forwarder's instruments on the daemon's `/metrics`.
#[derive(Clone)]
pub struct ForwardMetrics {
    pending: IntGauge,
    oldest_age: Gauge,
    published: IntCounter,
    duplicates: IntCounter,
    failures: IntCounterVec,
    dropped: IntCounterVec,
    last_ack: Gauge,
    connected: IntGauge,
}

impl ForwardMetrics {
    pub fn new(metrics: &Metrics) -> Result<ForwardMetrics, prometheus::Error> {
        let m = ForwardMetrics {
            pending: IntGauge::new(
                "canhgac_forward_pending",
                "Incidents whose latest change waits for the center's broker to acknowledge it.",
            )?,
            oldest_age: Gauge::new(
                "canhgac_forward_oldest_pending_age_seconds",
                "Age of the oldest change waiting for the broker (0 when none waits).",
            )?,
            published: IntCounter::new(
                "canhgac_forward_published_total",
                "Incident changes the broker acknowledged (duplicates included).",
            )?,
            duplicates: IntCounter::new(
                "canhgac_forward_duplicates_total",
                "Acknowledgements that said the broker already had the message (a resend after a crash or a lost acknowledgement).",
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "canhgac_forward_failures_total",
                    "Failed attempts, retried with backoff, by stage: connect, publish, store.",
                ),
                &["stage"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "canhgac_forward_dropped_total",
                    "Changes given up by the outbox bound, never sent, by reason: max_age, max_pending.",
                ),
                &["reason"],
            )?,
            last_ack: Gauge::new(
                "canhgac_forward_last_ack_timestamp_seconds",
                "Unix time of the broker's last acknowledgement (0: none since start).",
            )?,
            connected: IntGauge::new(
                "canhgac_forward_connected",
                "1 while connected to the center's NATS server.",
            )?,
        };
        for stage in ["connect", "publish", "store"] {
            m.failures.with_label_values(&[stage]);
        }
        for reason in ["max_age", "max_pending"] {
            m.dropped.with_label_values(&[reason]);
        }
        metrics.register(Box::new(m.pending.clone()))?;
        metrics.register(Box::new(m.oldest_age.clone()))?;
        metrics.register(Box::new(m.published.clone()))?;
        metrics.register(Box::new(m.duplicates.clone()))?;
        metrics.register(Box::new(m.failures.clone()))?;
        metrics.register(Box::new(m.dropped.clone()))?;
        metrics.register(Box::new(m.last_ack.clone()))?;
        metrics.register(Box::new(m.connected.clone()))?;
        Ok(m)
    }
}

pub struct Forwarder {
    config: ForwardConfig,
    agency: String,
    agency_name: Option<String>,
    store: Arc<Mutex<Store>>,
    metrics: Arc<Metrics>,
    instruments: ForwardMetrics,
}

impl Forwarder {
    /// Opens the forwarder's own connection to the store and turns the
    /// outbox on (queueing the `backfill` period the first time).
    pub fn open(
        config: ForwardConfig,
        agency: &str,
        agency_name: Option<String>,
        db: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Result<Forwarder, String> {
        let mut store = Store::open(&db, agency).map_err(|e| format!("forward: {e}"))?;
        let since = Timestamp::now()
            .as_microsecond()
            .saturating_sub(i64::try_from(config.backfill.as_micros()).unwrap_or(i64::MAX));
        let queued = store
            .outbox_enable(since)
            .map_err(|e| format!("forward: {e}"))?;
        if queued > 0 {
            info!(
                queued,
                "forward: outbox enabled; incidents of the backfill period queued for the center"
            );
        }
        let instruments =
            ForwardMetrics::new(&metrics).map_err(|e| format!("forward metrics: {e}"))?;
        Ok(Forwarder {
            config,
            agency: agency.to_owned(),
            agency_name,
            store: Arc::new(Mutex::new(store)),
            metrics,
            instruments,
        })
    }

    /// Runs until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        tokio::select! {
            _ = &mut stop => {}
            _ = self.serve() => {}
        }
    }

    async fn serve(&self) {
        let mut failures = 0_u32;
        loop {
            self.prune().await;
            self.publish_stats().await;
            match broker::connect(&self.config.nats, &format!("canhgac {}", self.agency)).await {
                Ok(client) => {
                    info!(servers = %self.config.nats.servers.join(","), "forward: connected to the center");
                    self.instruments.connected.set(1);
                    let err = self.forward(client, &mut failures).await;
                    self.instruments.connected.set(0);
                    warn!("forward: {err}; retrying");
                }
                Err(e) => {
                    self.instruments
                        .failures
                        .with_label_values(&["connect"])
                        .inc();
                    if failures == 0 {
                        warn!("forward: {e}; local monitoring goes on, the outbox keeps what the center has not acknowledged");
                    }
                }
            }
            tokio::time::sleep(broker::backoff(failures)).await;
            failures = failures.saturating_add(1);
        }
    }

    /// Publishes while the connection serves; returns why it stopped.
    async fn forward(&self, client: async_nats::Client, failures: &mut u32) -> String {
        let js = jetstream::new(client.clone());
        let mut next_prune = Instant::now() + PRUNE_EVERY;
        let mut next_heartbeat = Instant::now();
        loop {
            if Instant::now() >= next_heartbeat {
                if let Err(e) = self.heartbeat(&js).await {
                    self.instruments
                        .failures
                        .with_label_values(&["publish"])
                        .inc();
                    return format!("heartbeat: {e}");
                }
                next_heartbeat = Instant::now() + self.config.heartbeat;
            }
            if Instant::now() >= next_prune {
                self.prune().await;
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            let batch = match self.with_store(|s| s.outbox_pending(BATCH)).await {
                Ok(b) => b,
                Err(e) => {
                    self.instruments
                        .failures
                        .with_label_values(&["store"])
                        .inc();
                    return format!("reading the outbox: {e}");
                }
            };
            if batch.is_empty() {
                self.publish_stats().await;
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            let (acked, error) = self.publish(&js, &batch).await;
            if !acked.is_empty() {
                *failures = 0;
                self.instruments
                    .last_ack
                    .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
                if let Err(e) = self.with_store(move |s| s.outbox_delivered(&acked)).await {
                    self.instruments
                        .failures
                        .with_label_values(&["store"])
                        .inc();
                    return format!("marking delivered: {e}");
                }
            }
            self.publish_stats().await;
            if let Some(e) = error {
                self.instruments
                    .failures
                    .with_label_values(&["publish"])
                    .inc();
                return e;
            }
        }
    }

    /// Sends the batch in order, then waits for every acknowledgement.
    /// Returns the acknowledged (incident, revision) pairs and the first
    /// failure, if any.
    async fn publish(
        &self,
        js: &jetstream::Context,
        batch: &[Pending],
    ) -> (Vec<(i64, u64)>, Option<String>) {
        let subject = format!("{}.{}", self.config.subject, self.agency);
        let mut waiting = Vec::with_capacity(batch.len());
        let mut error = None;
        for p in batch {
            let payload = match serde_json::to_vec(&p.message) {
                Ok(p) => p,
                Err(e) => {
                    error = Some(format!("encoding {}: {e}", p.message.uid));
                    break;
                }
            };
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(p.message.message_id());
            match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => waiting.push((p.incident, p.message.revision, ack)),
                Err(e) => {
                    error = Some(format!("publishing: {e}"));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(waiting.len());
        for (incident, revision, ack) in waiting {
            match ack.await {
                Ok(ack) => {
                    self.instruments.published.inc();
                    if ack.duplicate {
                        self.instruments.duplicates.inc();
                    }
                    acked.push((incident, revision));
                }
                Err(e) => {
                    error.get_or_insert_with(|| format!("no acknowledgement: {e}"));
                }
            }
        }
        (acked, error)
    }

    async fn heartbeat(&self, js: &jetstream::Context) -> Result<(), String> {
        let stats = self
            .with_store(|s| s.outbox_stats())
            .await
            .map_err(|e| e.to_string())?;
        let now = Timestamp::now().as_microsecond();
        let beat = Heartbeat {
            schema: HEARTBEAT_SCHEMA,
            agency: self.agency.clone(),
            name: self.agency_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            rules_digest: self.metrics.rules_digest(),
            inputs_behind_bytes: self.metrics.inputs_behind_bytes(),
            outbox_pending: stats.pending,
            outbox_oldest_us: stats.oldest_us,
            outbox_dropped: stats.dropped,
            sent_us: now,
        };
        let payload = serde_json::to_vec(&beat).map_err(|e| e.to_string())?;
        let subject = format!("{}.{}", self.config.heartbeat_subject, self.agency);
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("{}/heartbeat/{now}", self.agency));
        js.send_publish(subject, publish)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn prune(&self) {
        let bound = OutboxBound {
            max_age_us: i64::try_from(self.config.max_age.as_micros()).unwrap_or(i64::MAX),
            max_rows: self.config.max_pending,
        };
        let now = Timestamp::now().as_microsecond();
        match self.with_store(move |s| s.outbox_prune(bound, now)).await {
            Ok(p) => {
                if p.total() > 0 {
                    warn!(
                        too_old = p.too_old,
                        over_size = p.over_size,
                        "forward: the center has not acknowledged these incident changes within the outbox bound ([forward] max_age, max_pending); they are dropped and will not reach it unless the incidents change again"
                    );
                }
                self.instruments
                    .dropped
                    .with_label_values(&["max_age"])
                    .inc_by(p.too_old);
                self.instruments
                    .dropped
                    .with_label_values(&["max_pending"])
                    .inc_by(p.over_size);
            }
            Err(e) => {
                self.instruments
                    .failures
                    .with_label_values(&["store"])
                    .inc();
                warn!("forward: enforcing the outbox bound: {e}");
            }
        }
    }

    async fn publish_stats(&self) {
        if let Ok(stats) = self.with_store(|s| s.outbox_stats()).await {
            self.instruments.pending.set(stats.pending as i64);
            let age = stats.oldest_us.map_or(0.0, |t| {
                (Timestamp::now().as_microsecond() - t).max(0) as f64 / 1e6
            });
            self.instruments.oldest_age.set(age);
        }
    }

    /// Runs a store call off the runtime's thread (SQLite blocks).
    async fn with_store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let mut guard = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            call(&mut guard)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Invalid(format!("store task: {e}"))))
    }
}
