//! Connections, served so that no client can starve the daemon.
//!
//! Any local account can open sockets to the metrics port. Served naively,
//! thousands of idle or slow ("slowloris") connections use up the daemon's
//! file descriptors, and then new and rotated log files cannot be opened: the
//! monitor is blind while it looks up. So:
//!
//! - At most `max_connections` are open. When a new one arrives at the cap,
//!   the connection idle the longest (no request being answered: never sent
//!   one, between keep-alive requests, or still dribbling its headers) is
//!   closed to admit it; only when every connection is busy answering is the
//!   new one refused. A flood of idle sockets thus churns among itself, and a
//!   scrape still gets in. The cap is kept within a quarter of the
//!   process's file limit (see [`crate::admission::within_file_limit`]).
//! - A client has `header_timeout` to finish its request headers, and as long
//!   for a TLS handshake; a connection with nothing in flight is closed after
//!   `idle_timeout`. Request headers are capped at [`MAX_HEADER_BYTES`].
//! - HTTP/1.1 only: no HTTP/2 (nor its prior-knowledge form on the plain
//!   port), whose streams would need limits of their own and which no client
//!   of ours needs.
//!
//! Every connection closed for one of these reasons is counted in
//! `canhgac_http_connections_closed_total{reason}`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::admission::{Admission, Admitted, Connection};
use crate::config::HttpLimits;
use crate::metrics::Metrics;

/// Largest request head accepted (request line and headers): far above any
/// scrape or API call, far below what would cost memory.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long connections get to finish on shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Why the daemon closed a connection (the `reason` label).
#[derive(Clone, Copy)]
enum Closed {
    /// Idle the longest when the cap was reached: closed for a new one.
    Shed,
    /// At the cap with every connection busy: the new one was not served.
    Refused,
    Idle,
    HeaderTimeout,
    HandshakeTimeout,
}

impl Closed {
    const ALL: [Closed; 5] = [
        Closed::Shed,
        Closed::Refused,
        Closed::Idle,
        Closed::HeaderTimeout,
        Closed::HandshakeTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::Shed => "shed",
            Closed::Refused => "refused",
            Closed::Idle => "idle",
            Closed::HeaderTimeout => "header_timeout",
            Closed::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// The reasons `canhgac_http_connections_closed_total` may carry, so the
/// series exist at zero from the start.
pub fn closed_reasons() -> impl Iterator<Item = &'static str> {
    Closed::ALL.into_iter().map(Closed::label)
}

/// The certificate served, replaced on reload for new connections.
pub struct Tls(RwLock<Arc<rustls::ServerConfig>>);

impl Tls {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Tls {
        Tls(RwLock::new(config))
    }

    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()));
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn count(metrics: &Metrics, reason: Closed) {
    metrics
        .http_connections_closed
        .with_label_values(&[reason.label()])
        .inc();
}

/// Serves `app` on `listener` until `shutdown` completes, over TLS when
/// `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let table = Arc::new(Admission::new(crate::admission::within_file_limit(
        "[http] max_connections",
        limits.max_connections,
    )));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            // Reaps finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (or a like transient error): the
                // pending connection stays in the kernel's queue; trying
                // again at once would spin.
                warn!("HTTP: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = match table.admit() {
            Admitted::In { conn, shed } => {
                if shed {
                    count(&metrics, Closed::Shed);
                }
                metrics.http_connections.set(table.len() as i64);
                conn
            }
            Admitted::Refused => {
                count(&metrics, Closed::Refused);
                drop(stream);
                continue;
            }
        };
        let served = Served {
            app: app.clone(),
            limits: limits.clone(),
            metrics: Arc::clone(&metrics),
            conn,
            peer,
            stopping: stopping.clone(),
        };
        let (tls, table) = (tls.clone(), Arc::clone(&table));
        tasks.spawn(async move {
            let conn = Arc::clone(&served.conn);
            let metrics = Arc::clone(&served.metrics);
            served.run(stream, tls).await;
            metrics.http_connections.set(table.remove(&conn) as i64);
        });
    }
    let _ = stop.send(true);
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One connection and what serving it needs.
struct Served {
    app: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    conn: Arc<Connection>,
    peer: SocketAddr,
    stopping: watch::Receiver<bool>,
}

impl Served {
    async fn run(self, stream: TcpStream, tls: Option<Arc<Tls>>) {
        let Some(tls) = tls else {
            return self.http(stream).await;
        };
        let handshake = tls.acceptor().accept(stream);
        let closed = self.conn.shed();
        tokio::select! {
            done = tokio::time::timeout(self.limits.header_timeout, handshake) => match done {
                Ok(Ok(stream)) => self.http(stream).await,
                Ok(Err(e)) => debug!("HTTPS: handshake with {} failed: {e}", self.peer),
                Err(_) => count(&self.metrics, Closed::HandshakeTimeout),
            },
            () = closed => {}
        }
    }

    async fn http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Served {
            app,
            limits,
            metrics,
            conn,
            peer,
            mut stopping,
        } = self;
        let inner = TowerToHyperService::new(app);
        let tracked = Arc::clone(&conn);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tracked.begin();
            let answer = inner.call(req);
            let tracked = Arc::clone(&tracked);
            async move {
                let response = answer.await;
                tracked.end();
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let mut check = tokio::time::interval(IDLE_CHECK);
        let mut closing: Option<Instant> = None;
        loop {
            tokio::select! {
                done = connection.as_mut() => {
                    if let Err(e) = done {
                        if e.is_timeout() {
                            count(&metrics, Closed::HeaderTimeout);
                        } else {
                            debug!("HTTP: connection from {peer} ended: {e}");
                        }
                    }
                    return;
                }
                // Shed: nothing in flight to finish.
                () = conn.shed() => return,
                Ok(()) = stopping.changed(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                _ = check.tick() => {
                    if closing.is_some_and(|since| since.elapsed() > SHUTDOWN_GRACE) {
                        return;
                    }
                    let idle = conn.idle_since().is_some_and(|t| t.elapsed() > limits.idle_timeout);
                    if idle && closing.is_none() {
                        count(&metrics, Closed::Idle);
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                }
            }
        }
    }
}
