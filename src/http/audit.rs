//! The audit trail of the HTTP side, for the center's auditors: every API
//! request (which token by name, never the token; from which address; what
//! it asked; the answer) and every refused credential, on `/metrics` too.
//!
//! Records go to the systemd journal as structured fields, through its
//! native socket, so that `journalctl -u canhgac CANHGAC_AUDIT=1 -o json`
//! lists them, and the journal's own retention, sealing and forwarding apply:
//!
//! | field | value |
//! |---|---|
//! | `CANHGAC_AUDIT` | `1` |
//! | `CANHGAC_ENDPOINT` | `api` or `metrics` |
//! | `CANHGAC_TOKEN` | the token's name (its comment line), `none` or `invalid` |
//! | `CANHGAC_PEER` | the client's address and port |
//! | `CANHGAC_METHOD`, `CANHGAC_PATH` | the request (path without the query) |
//! | `CANHGAC_STATUS` | the answer's status code |
//!
//! Without a journal (a container, `canhgac run` by hand) the same record is
//! a line of the daemon's log, at target `audit`.
//!
//! An audit trail must not be a way to flood the machine: at most
//! [`RATE`] records a second (bursts of [`BURST`]); what is over is counted in
//! `canhgac_audit_records_dropped_total`, and the next record says how many
//! were dropped before it.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use tracing::info;

use super::{AppState, MetricsGate, Shared};
use crate::auth;
use crate::metrics::Metrics;

/// Records a second, sustained.
pub const RATE: f64 = 20.0;
/// Records at once after a quiet spell.
pub const BURST: f64 = 200.0;

/// The journal's socket for structured entries.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// One request, as the trail records it.
pub struct Record<'a> {
    pub endpoint: &'static str,
    pub token: &'a str,
    pub peer: Option<SocketAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

pub struct Audit {
    journal: Option<(UnixDatagram, PathBuf)>,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Dropped (over the rate, or refused by the journal) since the last
    /// record written.
    dropped: u64,
}

impl Audit {
    /// Writes to the journal when its socket is there (`CANHGAC_JOURNAL_SOCKET`
    /// names another, for tests), else to the daemon's log.
    pub fn new() -> Audit {
        let path = std::env::var_os("CANHGAC_JOURNAL_SOCKET")
            .map_or_else(|| PathBuf::from(JOURNAL_SOCKET), PathBuf::from);
        // Never blocking: a journal that does not keep up must not hold up
        // an HTTP answer (what it refuses is counted as dropped).
        let journal = path
            .exists()
            .then(UnixDatagram::unbound)
            .and_then(Result::ok)
            .filter(|socket| socket.set_nonblocking(true).is_ok())
            .map(|socket| (socket, path));
        Audit {
            journal,
            bucket: Mutex::new(Bucket {
                tokens: BURST,
                at: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// Records `r`, unless over the rate (then counted).
    pub fn record(&self, r: &Record<'_>, metrics: &Metrics) {
        let dropped_before = {
            let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(b.at).as_secs_f64() * RATE;
            b.tokens = (b.tokens + refill).min(BURST);
            b.at = now;
            if b.tokens < 1.0 {
                b.dropped += 1;
                metrics.audit_dropped.inc();
                return;
            }
            b.tokens -= 1.0;
            std::mem::take(&mut b.dropped)
        };
        let peer = r.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let message = format!(
            "audit: {} {} {} from {peer} token {}: {}{}",
            r.endpoint,
            r.method,
            r.path,
            r.token,
            r.status,
            if dropped_before > 0 {
                format!(" ({dropped_before} records dropped before this one)")
            } else {
                String::new()
            }
        );
        let Some((socket, path)) = &self.journal else {
            info!(
                target: "audit",
                endpoint = r.endpoint,
                token = r.token,
                peer = %peer,
                method = r.method,
                path = r.path,
                status = r.status,
                dropped_before,
                "{message}"
            );
            return;
        };
        let priority = if r.status == 401 { "4" } else { "6" };
        let fields = [
            ("MESSAGE", message.as_str()),
            ("PRIORITY", priority),
            ("SYSLOG_IDENTIFIER", "canhgac"),
            ("CANHGAC_AUDIT", "1"),
            ("CANHGAC_ENDPOINT", r.endpoint),
            ("CANHGAC_TOKEN", r.token),
            ("CANHGAC_PEER", peer.as_str()),
            ("CANHGAC_METHOD", r.method),
            ("CANHGAC_PATH", r.path),
            ("CANHGAC_STATUS", &r.status.to_string()),
            ("CANHGAC_DROPPED_BEFORE", &dropped_before.to_string()),
        ];
        if socket.send_to(&journal_entry(&fields), path).is_err() {
            // The journal is not keeping up (or gone): counted, and said by
            // the next record that gets through; never logged one by one,
            // which would flood the same journal.
            metrics.audit_dropped.inc();
            self.bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dropped += 1;
        }
    }
}

/// Writes the audit record of an API request, or of a refused `/metrics`
/// request.
pub(super) async fn trail(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let endpoint = if path == "/api" || path.starts_with("/api/") {
        "api"
    } else if path == "/metrics" {
        "metrics"
    } else {
        return next.run(req).await;
    };
    let path: String = path.chars().take(256).collect();
    let method = req.method().as_str().to_owned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let token = presented_token(&app.shared, endpoint, req.headers());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    if endpoint == "api" || status == StatusCode::UNAUTHORIZED.as_u16() {
        let record = Record {
            endpoint,
            token: &token,
            peer,
            method: &method,
            path: &path,
            status,
        };
        app.shared.audit.record(&record, &app.metrics);
    }
    response
}

/// Who a request says it is, for the audit trail: the name of the bearer
/// token it presents, `none`, or `invalid`; never the token.
fn presented_token(shared: &Shared, endpoint: &str, headers: &HeaderMap) -> String {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return "none".to_owned();
    };
    let auth = shared.auth();
    // The API takes its read and its write tokens alike.
    let lists: [Option<&auth::Tokens>; 2] = match (endpoint, &auth.metrics) {
        ("api", _) => [auth.api.as_ref(), auth.api_write.as_ref()],
        (_, MetricsGate::Bearer(tokens)) => [Some(tokens), None],
        _ => [None, None],
    };
    let Some(token) = auth::bearer(value.as_bytes()) else {
        return "invalid".to_owned();
    };
    lists
        .iter()
        .flatten()
        .find_map(|tokens| tokens.name_of(token))
        .map_or_else(|| "invalid".to_owned(), str::to_owned)
}

/// An entry in the journal's native format: `KEY=value` lines; a value that
/// holds a newline (none of ours should, but a path could) is sent in the
/// binary form, its length as 64-bit little-endian before it.
fn journal_entry(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_in_the_journal_native_format() {
        let entry = journal_entry(&[("MESSAGE", "hi"), ("CANHGAC_PATH", "/a\nb")]);
        let mut want = b"MESSAGE=hi\nCANHGAC_PATH\n".to_vec();
        want.extend_from_slice(&4u64.to_le_bytes());
        want.extend_from_slice(b"/a\nb\n");
        assert_eq!(entry, want);
    }
}
