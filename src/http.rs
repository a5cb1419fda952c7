//! The daemon's HTTP side: `/metrics` for Prometheus, `/healthz` (the
//! process answers) and `/readyz` (inputs open and the store accepting
//! commits), for load balancers and probes.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What Prometheus expects of the classic text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    // The monthly figures are counted in SQLite: off the async threads.
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let inputs = metrics.ready.load(Ordering::Relaxed);
    let store = metrics.store_ok.load(Ordering::Relaxed);
    match (inputs, store) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: inputs not open yet\n",
        ),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store not writable: the last commit failed (see the log)\n",
        ),
    }
}
