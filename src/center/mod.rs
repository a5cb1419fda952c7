//! `canhgac center`: the national center's consumer. It creates (or checks)
//! the JetStream stream the agencies publish to, reads it with a durable
//! pull consumer, writes each batch into the center store in one
//! transaction, and acknowledges the batch's messages (double ack: it
//! waits for the server to confirm) only after that commit. A crash before
//! the acknowledgements redelivers the batch, whose revisions the store
//! then already holds: nothing is lost, and nothing counted twice.
//!
//! Rooms: [`ingest`] says what a message is; `metrics` serves the center's
//! `/metrics`; this file runs the loop.

pub mod ingest;
mod metrics;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use futures_util::StreamExt;
use jiff::Timestamp;
use tracing::{info, warn};

use crate::broker;
use crate::config::CenterConfig;
use crate::store::{CenterStore, HeartbeatRecord, IncidentMessage, Store, StoreError};
use ingest::{classify, Inbound, Subjects};
use metrics::CenterMetrics;

/// Messages read and committed at once.
const BATCH: usize = 1000;
/// The center store's page cache.
const CACHE_MIB: u32 = 16;
/// How often the heartbeat stream is read.
const HEARTBEATS_EVERY: Duration = Duration::from_secs(1);
/// How long one fetch waits for its batch to fill.
const FETCH_WAIT: Duration = Duration::from_millis(200);

/// Up to `max` messages of `consumer`: those there now, or the first to
/// come within `wait`.
async fn fetch(
    consumer: &consumer::PullConsumer,
    max: usize,
    wait: Duration,
) -> Result<Vec<jetstream::Message>, String> {
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .expires(wait)
        .messages()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let mut messages = Vec::new();
    while let Some(m) = batch.next().await {
        messages.push(m.map_err(|e| format!("fetch: {e}"))?);
    }
    Ok(messages)
}

/// Runs the center until SIGTERM or SIGINT.
pub fn run(config: CenterConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut store =
            Store::open(&config.db_path(), &config.center).map_err(|e| e.to_string())?;
        // Each batch touches index pages all over a store of millions of
        // incidents: more cache, fewer reads (see benches/center.sh).
        store.set_cache_mib(CACHE_MIB).map_err(|e| e.to_string())?;
        let zone = config
            .time_zone
            .iana_name()
            .unwrap_or(&config.time_zone_name)
            .to_owned();
        store
            .record_identity(Some(&zone), config.name.as_deref())
            .map_err(|e| e.to_string())?;
        let metrics = Arc::new(CenterMetrics::new(&config).map_err(|e| format!("metrics: {e}"))?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        info!(listen = %config.listen, store = %config.db_path().display(), "center started");
        let server = tokio::spawn(metrics::serve(listener, Arc::clone(&metrics)));
        let center = Center {
            config,
            store: Arc::new(Mutex::new(store)),
            metrics,
        };
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
                warn!("sd_notify: {e}");
            }
        }
        tokio::select! {
            _ = center.serve() => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        server.abort();
        info!("center stopped");
        Ok(())
    })
}

struct Center {
    config: CenterConfig,
    store: Arc<Mutex<Store>>,
    metrics: Arc<CenterMetrics>,
}

impl Center {
    async fn serve(&self) {
        let mut failures = 0_u32;
        loop {
            match self.consume(&mut failures).await {
                Ok(()) => {}
                Err(e) => {
                    self.metrics.failures.inc();
                    warn!("center: {e}; retrying");
                }
            }
            self.metrics.connected.set(0);
            tokio::time::sleep(broker::backoff(failures)).await;
            failures = failures.saturating_add(1);
        }
    }

    async fn consume(&self, failures: &mut u32) -> Result<(), String> {
        let client = broker::connect(
            &self.config.nats,
            &format!("canhgac center {}", self.config.center),
        )
        .await?;
        let js = jetstream::new(client);
        let s = &self.config.stream;
        // Incidents are kept for the stream's age; of heartbeats only each
        // agency's last, so 5,000 agencies a minute never fill a disk.
        let incidents = self
            .consumer(&js, &s.name, &s.incidents_subject, 0, &s.consumer)
            .await?;
        let heartbeats = self
            .consumer(
                &js,
                &s.heartbeat_stream,
                &s.heartbeat_subject,
                1,
                &format!("{}-heartbeats", s.consumer),
            )
            .await?;
        info!(stream = %s.name, heartbeats = %s.heartbeat_stream, consumer = %s.consumer, "center: consuming");
        self.metrics.connected.set(1);
        let mut next_beats = std::time::Instant::now();
        loop {
            let mut messages = fetch(&incidents, BATCH, FETCH_WAIT).await?;
            // A second late is nothing for a heartbeat sent every minute,
            // and asking for them each time would delay the incidents.
            if std::time::Instant::now() >= next_beats {
                messages.extend(fetch(&heartbeats, BATCH, Duration::from_millis(1)).await?);
                next_beats = std::time::Instant::now() + HEARTBEATS_EVERY;
            }
            if messages.is_empty() {
                self.metrics.refresh(&self.store);
                continue;
            }
            self.ingest(messages).await?;
            *failures = 0;
        }
    }

    /// The durable pull consumer `name` of the stream `stream` of the
    /// subjects `<subject>.*`, both created, or brought to the config's
    /// limits (subjects, duplicate window, age, messages kept per subject:
    /// 0 for all).
    async fn consumer(
        &self,
        js: &jetstream::Context,
        stream: &str,
        subject: &str,
        per_subject: i64,
        name: &str,
    ) -> Result<consumer::PullConsumer, String> {
        let s = &self.config.stream;
        let wanted = stream::Config {
            name: stream.to_owned(),
            subjects: vec![format!("{subject}.*")],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: s.max_age,
            duplicate_window: s.duplicate_window,
            max_messages_per_subject: per_subject,
            ..Default::default()
        };
        let stream = match js.get_stream(stream).await {
            Ok(mut existing) => {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| format!("stream {stream}: {e}"))?;
                let have = &info.config;
                if have.subjects != wanted.subjects
                    || have.max_age != wanted.max_age
                    || have.duplicate_window != wanted.duplicate_window
                    || have.max_messages_per_subject != wanted.max_messages_per_subject
                {
                    info!(
                        stream,
                        "center: updating the stream's subjects and limits to the config's"
                    );
                    js.update_stream(wanted)
                        .await
                        .map_err(|e| format!("updating stream {stream}: {e}"))?;
                }
                existing
            }
            Err(_) => js
                .get_or_create_stream(wanted)
                .await
                .map_err(|e| format!("creating stream {stream}: {e}"))?,
        };
        stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("consumer {name}: {e}"))
    }

    /// Commits one batch, then acknowledges it.
    async fn ingest(&self, messages: Vec<jetstream::Message>) -> Result<(), String> {
        let subjects = Subjects {
            incidents: &self.config.stream.incidents_subject,
            heartbeat: &self.config.stream.heartbeat_subject,
        };
        let mut incidents: Vec<IncidentMessage> = Vec::new();
        let mut heartbeats: Vec<HeartbeatRecord> = Vec::new();
        let mut refused = Vec::new();
        let mut pending = 0;
        for (i, m) in messages.iter().enumerate() {
            let (published_us, left) = match m.info() {
                Ok(info) => (
                    i64::try_from(info.published.unix_timestamp_nanos() / 1000).unwrap_or(0),
                    info.pending,
                ),
                Err(_) => (Timestamp::now().as_microsecond(), 0),
            };
            pending = left;
            match classify(&subjects, m.subject.as_str(), &m.payload, published_us) {
                Inbound::Incident(msg) => incidents.push(*msg),
                Inbound::Heartbeat(h) => heartbeats.push(h),
                Inbound::Refused(reason) => {
                    self.metrics.refused(reason);
                    refused.push(i);
                }
            }
        }
        if !refused.is_empty() {
            warn!(count = refused.len(), "center: messages refused (see canhgac_center_refused_total); they are terminated, not redelivered");
        }
        let received_us = Timestamp::now().as_microsecond();
        let started = std::time::Instant::now();
        let committed_us: Vec<i64> = incidents.iter().map(|m| m.committed_us).collect();
        let (n_incidents, n_heartbeats) = (incidents.len(), heartbeats.len());
        let store = Arc::clone(&self.store);
        let applied = tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            s.apply(&incidents, &heartbeats, received_us)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Invalid(format!("store task: {e}"))));
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                // Not acknowledged: redelivered after a pause.
                for m in &messages {
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                }
                return Err(format!("storing a batch: {e}"));
            }
        };
        let done_us = Timestamp::now().as_microsecond();
        let latencies: Vec<f64> = committed_us
            .iter()
            .map(|&t| (done_us - t).max(0) as f64 / 1e6)
            .collect();
        self.metrics.committed(
            started.elapsed().as_secs_f64(),
            &applied,
            n_incidents,
            n_heartbeats,
            &latencies,
            pending,
        );
        // All at once: one round trip for the batch, not one per message.
        // An acknowledgement lost here means a redelivery, which the store
        // recognises by its revision.
        let refused = &refused;
        let acks = messages.iter().enumerate().map(|(i, m)| async move {
            if refused.binary_search(&i).is_ok() {
                m.ack_with(AckKind::Term).await
            } else {
                m.double_ack().await
            }
        });
        for result in futures_util::future::join_all(acks).await {
            if let Err(e) = result {
                return Err(format!("acknowledging: {e}"));
            }
        }
        self.metrics.refresh(&self.store);
        Ok(())
    }
}
