//! The daemon's HTTP side: `/metrics` for Prometheus, `/healthz` (the
//! process answers) and `/readyz` (inputs open and the store accepting
//! commits), for load balancers and probes, and the JSON API under
//! `/api/v1/` for analysts and their tools.
//!
//! Security, as Prometheus exporters offer it (exporter-toolkit's
//! `web.yml`): optional TLS (rustls, certificate and key from the config,
//! reloaded on SIGHUP) and optional authentication of `/metrics`, by bearer
//! token or by basic auth against a bcrypt hash. `/healthz` and `/readyz`
//! never ask for credentials and tell nothing but up/ready. The API always
//! needs a bearer token: with no `api_token_file` configured it is off and
//! every `/api/` path answers 404 saying so, never open. Tokens are checked
//! in constant time ([`crate::auth`]).
//!
//! The API reads the store on blocking threads through read-only
//! connections of its own ([`Store::open_read`]), never the daemon's writer,
//! so a slow query cannot hold up a commit.
//!
//! API errors are JSON, `{"error": "..."}`, with the status that fits: 400
//! for a bad query parameter (the message names it), 401 for a missing or
//! wrong token, 404 for an unknown incident or path (and for the whole API
//! when it is off), 503 when the store cannot be read right now.

mod audit;
mod serve;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::auth::{self, BasicAuth, Tokens};
use crate::category::{Category, Severity};
use crate::config::{Config, HttpConfig, HttpLimits, MetricsAuth};
use crate::metrics::Metrics;
use crate::months::Month;
use crate::output::IncidentView;
use crate::rules::{Role, RuleSet};
use crate::store::{IncidentOrder, IncidentQuery, Store, StoreError};
use crate::summary::{self, SummaryError};

/// What Prometheus expects of the classic text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Incidents per page of `/api/v1/incidents` unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;
/// Most incidents per page.
pub const MAX_PAGE: u32 = 1000;

/// Read connections kept for the API between requests.
const READERS_KEPT: usize = 4;

/// bcrypt checks running at once: each takes tens of milliseconds of CPU,
/// and the pipeline shares the machine.
const BCRYPT_SLOTS: usize = 2;

/// What the HTTP side shares with the daemon: where the store is, the
/// credentials and the rule set, the last two replaced on reload.
pub struct Shared {
    db: PathBuf,
    tz: TimeZone,
    /// The agency's id and display name: the subject of the summary.
    agency: String,
    agency_name: Option<String>,
    rules: RwLock<Arc<RuleSet>>,
    auth: RwLock<Arc<Auth>>,
    /// Present when serving HTTPS; its certificate is replaced on reload.
    tls: Option<Arc<serve::Tls>>,
    /// Fixed at start, as the listener is.
    limits: HttpLimits,
    readers: Mutex<Vec<Store>>,
    bcrypt_slots: tokio::sync::Semaphore,
    audit: audit::Audit,
}

/// Credentials in force.
struct Auth {
    metrics: MetricsGate,
    /// `None` (and no write tokens): the API is off.
    api: Option<Tokens>,
    /// Tokens that may also change incidents (`api_write_token_file`).
    api_write: Option<Tokens>,
}

enum MetricsGate {
    Open,
    Bearer(Tokens),
    Basic(BasicAuth),
}

impl Auth {
    fn from_config(http: &HttpConfig) -> Auth {
        Auth {
            metrics: match &http.metrics_auth {
                MetricsAuth::None => MetricsGate::Open,
                MetricsAuth::Bearer(file) => MetricsGate::Bearer(file.tokens.clone()),
                MetricsAuth::Basic {
                    user,
                    password_hash,
                } => MetricsGate::Basic(BasicAuth::new(user, password_hash.clone())),
            },
            api: http.api_tokens.as_ref().map(|f| f.tokens.clone()),
            api_write: http.api_write_tokens.as_ref().map(|f| f.tokens.clone()),
        }
    }
}

impl Shared {
    /// The HTTP side of `config`, serving `rules`. Fails when the TLS
    /// certificate or key cannot be loaded.
    pub fn new(config: &Config, rules: Arc<RuleSet>) -> Result<Arc<Shared>, String> {
        let tls = match &config.http.tls {
            Some(paths) => {
                let server = crate::tls::server_config(&paths.cert, &paths.key)
                    .map_err(|e| format!("TLS: {e}"))?;
                Some(Arc::new(serve::Tls::new(server)))
            }
            None => None,
        };
        Ok(Arc::new(Shared {
            db: config.db_path(),
            tz: config.time_zone.clone(),
            agency: config.agency.clone(),
            agency_name: config.agency_name.clone(),
            rules: RwLock::new(rules),
            auth: RwLock::new(Arc::new(Auth::from_config(&config.http))),
            tls,
            limits: config.http.limits.clone(),
            readers: Mutex::new(Vec::new()),
            bcrypt_slots: tokio::sync::Semaphore::new(BCRYPT_SLOTS),
            audit: audit::Audit::new(),
        }))
    }

    /// The rule set `/api/v1/rules` shows; the daemon calls it on every
    /// (re)load.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// SIGHUP: new tokens, password hash and certificate take effect at
    /// once. Turning TLS on or off needs a restart (the listening socket
    /// stays as it is).
    pub fn reload(&self, config: &Config) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Auth::from_config(&config.http));
        match (&self.tls, &config.http.tls) {
            (Some(running), Some(paths)) => {
                match crate::tls::server_config(&paths.cert, &paths.key) {
                    Ok(server) => running.replace(server),
                    Err(e) => warn!("TLS certificate not reloaded, the running one stays: {e}"),
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                warn!("tls_cert and tls_key removed: HTTPS stays on until the next restart")
            }
            (None, Some(_)) => {
                warn!("tls_cert and tls_key added: HTTPS starts at the next restart")
            }
        }
        if self.tz != config.time_zone {
            warn!("time_zone changed: the API's monthly summary follows at the next restart");
        }
    }

    fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn auth(&self) -> Arc<Auth> {
        Arc::clone(&self.auth.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on a blocking thread with a read-only store connection.
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let pooled = shared
                .readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let store = match pooled {
                Some(store) => store,
                None => Store::open_read(&shared.db).map_err(ApiError::store)?,
            };
            let result = f(&store);
            // A connection that failed is not reused.
            if !matches!(result, Err(ApiError { status, .. }) if status.is_server_error()) {
                let mut readers = shared.readers.lock().unwrap_or_else(|e| e.into_inner());
                if readers.len() < READERS_KEPT {
                    readers.push(store);
                }
            }
            result
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")))?
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
}

pub fn router(metrics: Arc<Metrics>, shared: Arc<Shared>) -> Router {
    let state = AppState { metrics, shared };
    let api = Router::new()
        .route("/incidents", get(api_incidents))
        .route("/incidents/{id}", get(api_incident))
        .route("/incidents/{id}/status", post(status::set_status))
        .route("/incidents/{id}/reported", post(status::set_reported))
        .route("/summary", get(api_summary))
        .route("/rules", get(api_rules))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .nest("/api/v1", api)
        // Other versions, or a typo in the prefix, under /api: JSON too.
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::trail,
        ))
        .with_state(state)
}

/// Serves until `shutdown` completes: HTTPS when the config has a
/// certificate, plain HTTP otherwise, within the connection limits of
/// [`serve`].
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    announce(addr, &shared);
    for reason in serve::closed_reasons() {
        metrics.http_connections_closed.with_label_values(&[reason]);
    }
    let (tls, limits) = (shared.tls.clone(), shared.limits.clone());
    let app = router(Arc::clone(&metrics), shared);
    serve::serve(listener, app, tls, limits, metrics, shutdown).await
}

/// Logs what is served where, and warns when it is exposed.
fn announce(addr: SocketAddr, shared: &Shared) {
    let auth = shared.auth();
    let scheme = if shared.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let metrics_auth = match auth.metrics {
        MetricsGate::Open => "none",
        MetricsGate::Bearer(_) => "bearer token",
        MetricsGate::Basic(_) => "basic auth",
    };
    let api = match (&auth.api, &auth.api_write) {
        (_, Some(_)) => "on (bearer token; status changes with write tokens)",
        (Some(_), None) => "on (bearer token, read-only)",
        (None, None) => "off (no api_token_file)",
    };
    info!("serving /metrics (auth: {metrics_auth}), /healthz, /readyz and the API /api/v1/ ({api}) on {scheme}://{addr}");
    let open = matches!(auth.metrics, MetricsGate::Open);
    if let Some(warning) = exposure(addr, shared.tls.is_some(), open) {
        warn!("{warning}");
    }
}

/// What is wrong with serving on `addr` (with TLS or not, `/metrics` open
/// or not), beyond loopback; `None` when nothing is. The daemon logs it at
/// start, `check` at `listen` in the config.
pub fn exposure(addr: SocketAddr, tls: bool, metrics_open: bool) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let problem = match (tls, metrics_open) {
        (false, true) => "with neither TLS nor authentication: anyone who reaches it reads /metrics; set tls_cert/tls_key and metrics_auth in [http]",
        (false, false) => "without TLS: credentials and metrics cross the network in clear text; set tls_cert and tls_key in [http]",
        (true, true) => "without authentication: anyone who reaches it reads /metrics; set metrics_auth in [http]",
        (true, false) => return None,
    };
    Some(format!("listening on {addr}, beyond loopback, {problem}"))
}

// ---------------------------------------------------------------- /metrics

async fn metrics_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = metrics_allowed(&app.shared, &headers).await {
        app.metrics
            .http_auth_failures
            .with_label_values(&["metrics"])
            .inc();
        return refusal;
    }
    let metrics = app.metrics;
    // The monthly figures are counted in SQLite: off the async threads.
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn metrics_allowed(shared: &Arc<Shared>, headers: &HeaderMap) -> Result<(), Response> {
    let auth = shared.auth();
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let unauthorized = |challenge: &'static str, why: &str| {
        debug!("/metrics refused: {why}");
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, challenge),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            format!("unauthorized: {why}\n"),
        )
            .into_response()
    };
    match &auth.metrics {
        MetricsGate::Open => Ok(()),
        MetricsGate::Bearer(tokens) => {
            const CHALLENGE: &str = "Bearer realm=\"canhgac\"";
            match presented.and_then(auth::bearer) {
                None => Err(unauthorized(CHALLENGE, "send Authorization: Bearer TOKEN")),
                Some(token) if tokens.verify(token) => Ok(()),
                Some(_) => Err(unauthorized(CHALLENGE, "wrong token")),
            }
        }
        MetricsGate::Basic(_) => {
            const CHALLENGE: &str = "Basic realm=\"canhgac\", charset=\"UTF-8\"";
            let Some((user, password)) = presented.and_then(auth::basic) else {
                return Err(unauthorized(CHALLENGE, "send basic auth credentials"));
            };
            let Ok(_slot) = shared.bcrypt_slots.acquire().await else {
                return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
            };
            let checked = Arc::clone(&auth);
            let ok = tokio::task::spawn_blocking(move || match &checked.metrics {
                MetricsGate::Basic(basic) => basic.verify(&user, &password),
                _ => false,
            })
            .await
            .unwrap_or(false);
            if ok {
                Ok(())
            } else {
                Err(unauthorized(CHALLENGE, "wrong user or password"))
            }
        }
    }
}

/// 200 `ready`, or 503 with every reason the daemon is not doing its job,
/// one a line: a probe or an operator reads why.
async fn ready(State(app): State<AppState>) -> impl IntoResponse {
    let m = &app.metrics;
    let mut reasons = Vec::new();
    if !m.ready.load(Ordering::Relaxed) {
        reasons.push("starting: inputs not open yet".to_owned());
    }
    if !m.store_ok.load(Ordering::Relaxed) {
        reasons.push("store not writable: the last commit failed (see the log)".to_owned());
    }
    reasons.extend(
        m.degraded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    if reasons.is_empty() {
        return (StatusCode::OK, "ready\n".to_owned());
    }
    let body: String = reasons.iter().map(|r| format!("{r}\n")).collect();
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

// ---------------------------------------------------------------- the API

/// An API error: its status and `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            challenge: None,
        }
    }

    fn bad_param(name: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("query parameter {name}: {problem}"),
        )
    }

    fn store(e: StoreError) -> ApiError {
        let status = match e {
            StoreError::Busy(_) | StoreError::Missing { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        warn!("API: cannot read the store: {e}");
        ApiError::new(status, format!("cannot read the store: {e}"))
    }
}

/// A JSON body, hidden characters escaped (see [`crate::visible`]).
fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/json")],
            crate::visible::json(text),
        )
            .into_response(),
        Err(e) => {
            warn!("API: cannot serialise a response: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            json(&serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// A request that presented a valid API token. As the first extractor of
/// every API handler, it answers before any parameter is looked at. A
/// write token reads too; `write` says which kind was shown, `token` its
/// name for the audit trail.
struct ApiAccess {
    token: String,
    write: bool,
}

impl FromRequestParts<AppState> for ApiAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let auth = app.shared.auth();
        if auth.api.is_none() && auth.api_write.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "the API is off: no api_token_file is configured in [http]",
            ));
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(auth::bearer);
        let refusal = match presented {
            Some(token) => {
                // Both lists are always looked through, so the time taken
                // does not tell which kind a token is.
                let write = auth.api_write.as_ref().and_then(|t| t.name_of(token));
                let read = auth.api.as_ref().and_then(|t| t.name_of(token));
                match (write, read) {
                    (Some(name), _) => {
                        return Ok(ApiAccess {
                            token: name.to_owned(),
                            write: true,
                        })
                    }
                    (None, Some(name)) => {
                        return Ok(ApiAccess {
                            token: name.to_owned(),
                            write: false,
                        })
                    }
                    (None, None) => ApiError {
                        status: StatusCode::UNAUTHORIZED,
                        message: "wrong token".into(),
                        challenge: Some("Bearer realm=\"canhgac\", error=\"invalid_token\""),
                    },
                }
            }
            None => ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "the API needs a token: send Authorization: Bearer TOKEN".into(),
                challenge: Some("Bearer realm=\"canhgac\""),
            },
        };
        app.metrics
            .http_auth_failures
            .with_label_values(&["api"])
            .inc();
        debug!("API request refused: {}", refusal.message);
        Err(refusal)
    }
}

async fn api_not_found(_: ApiAccess) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such API endpoint; there are /api/v1/incidents, /api/v1/incidents/{id} (POST .../status and .../reported with a write token), /api/v1/summary and /api/v1/rules",
    )
}

async fn api_method_not_allowed(_: ApiAccess) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "use GET; POST only to /api/v1/incidents/{id}/status and /api/v1/incidents/{id}/reported",
    )
}

/// Query parameters as given, each name at most once and every name known.
fn params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad query string: {}", e.body_text()),
        )
    })?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown query parameter {name:?}; expected {}",
                    known.join(", ")
                ),
            ));
        }
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::bad_param(name, "given more than once"));
        }
    }
    Ok(pairs)
}

fn timestamp_param(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.parse::<Timestamp>().map_err(|e| {
        // A '+' of an offset left unescaped in the URL arrives as a space.
        let hint = if value.contains(' ') {
            " (write the '+' of an offset as %2B in a URL)"
        } else {
            ""
        };
        ApiError::bad_param(
            name,
            format!(
                "{value:?} is not an RFC 3339 time such as 2020-10-31T23:30:00+07:00 or 2020-10-31T16:30:00Z: {e}{hint}"
            ),
        )
    })
}

/// The longest id, rule or cursor looked up.
const MAX_TEXT_PARAM: usize = 256;

fn text_param(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > MAX_TEXT_PARAM {
        return Err(ApiError::bad_param(
            name,
            format!("must be 1 to {MAX_TEXT_PARAM} characters"),
        ));
    }
    Ok(value)
}

const INCIDENT_PARAMS: &[&str] = &[
    "since", "until", "category", "severity", "rule", "src_ip", "limit", "after", "order",
];

fn incident_query(pairs: Vec<(String, String)>) -> Result<(IncidentQuery, u32), ApiError> {
    let mut q = IncidentQuery::default();
    let mut limit = DEFAULT_PAGE;
    for (name, value) in pairs {
        match name.as_str() {
            "since" => q.since = Some(timestamp_param(&name, &value)?),
            "until" => q.until = Some(timestamp_param(&name, &value)?),
            "category" => {
                value
                    .parse::<Category>()
                    .map_err(|e| ApiError::bad_param(&name, e))?;
                q.category = Some(value);
            }
            "severity" => {
                value
                    .parse::<Severity>()
                    .map_err(|e| ApiError::bad_param(&name, e))?;
                q.severity = Some(value);
            }
            "rule" => q.rule = Some(text_param(&name, value)?),
            "src_ip" => {
                value.parse::<std::net::IpAddr>().map_err(|_| {
                    ApiError::bad_param(&name, format!("{value:?} is not an IP address"))
                })?;
                q.src_ip = Some(value);
            }
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_param(
                            &name,
                            format!("{value:?}: expected a number from 1 to {MAX_PAGE}"),
                        )
                    })?
            }
            "after" => q.after = Some(text_param(&name, value)?),
            "order" => {
                q.order = match value.as_str() {
                    "first_seen" => IncidentOrder::FirstSeen,
                    "recorded" => IncidentOrder::Recorded,
                    _ => {
                        return Err(ApiError::bad_param(
                            &name,
                            format!("{value:?}: expected first_seen or recorded"),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok((q, limit))
}

#[derive(Serialize)]
struct IncidentPage<'a> {
    incidents: Vec<IncidentView<'a>>,
    /// The `after` of the next page; `null` on the last.
    next: Option<&'a str>,
}

fn view<'a>(rules: &'a RuleSet, incident: &'a crate::store::StoredIncident) -> IncidentView<'a> {
    let mut v = IncidentView::stored(incident);
    v.title = rules
        .by_id(&incident.record.rule)
        .map(|i| rules.rule(i).title.as_str())
        .or_else(|| crate::integrity::rule_title(&incident.record.rule));
    v
}

/// `GET /api/v1/incidents`: oldest first (by first event), a page at a time.
async fn api_incidents(
    _: ApiAccess,
    State(app): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (mut q, limit) = incident_query(params(query, INCIDENT_PARAMS)?)?;
    // One more than asked tells whether there is a next page.
    q.limit = Some(limit + 1);
    let mut incidents = app
        .shared
        .read(move |store| {
            if let Some(after) = &q.after {
                if store.incident(after).map_err(ApiError::store)?.is_none() {
                    return Err(ApiError::bad_param(
                        "after",
                        format!(
                            "no incident has id {after:?} (pass the `next` of the previous page)"
                        ),
                    ));
                }
            }
            let incidents = store.incidents(&q).map_err(ApiError::store)?;
            let uids: Vec<&str> = incidents.iter().map(|i| i.uid.as_str()).collect();
            let statuses = store.statuses(&uids).map_err(ApiError::store)?;
            Ok((incidents, statuses))
        })
        .await?;
    let (ref mut incidents, statuses) = incidents;
    let more = incidents.len() > limit as usize;
    incidents.truncate(limit as usize);
    let rules = app.shared.rules();
    let page = IncidentPage {
        incidents: incidents
            .iter()
            .map(|i| {
                let mut v = view(&rules, i);
                v.status = Some(
                    statuses
                        .get(&i.uid)
                        .map_or(crate::store::Status::New, |s| s.status)
                        .id(),
                );
                v
            })
            .collect(),
        next: if more {
            incidents.last().map(|i| i.uid.as_str())
        } else {
            None
        },
    };
    Ok(json(&page))
}

/// One incident with what analysts said of it: the fields of a listed
/// incident, then `status_detail` (who set the status, when, the note, when
/// it was reported) and `history`.
#[derive(Serialize)]
struct IncidentDetail<'a> {
    #[serde(flatten)]
    incident: IncidentView<'a>,
    status_detail: crate::store::IncidentStatus,
    history: Vec<crate::store::HistoryEntry>,
}

/// `GET /api/v1/incidents/{id}`.
async fn api_incident(
    _: ApiAccess,
    State(app): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let not_found =
        |id: &str| ApiError::new(StatusCode::NOT_FOUND, format!("no incident has id {id:?}"));
    if id.is_empty() || id.len() > MAX_TEXT_PARAM {
        return Err(not_found(&id));
    }
    let lookup = id.clone();
    let (incident, status, history) = app
        .shared
        .read(move |store| {
            let Some(incident) = store.incident(&lookup).map_err(ApiError::store)? else {
                return Ok(None);
            };
            let status = store
                .status_of(&lookup)
                .map_err(ApiError::store)?
                .unwrap_or_default();
            let history = store.history(&lookup).map_err(ApiError::store)?;
            Ok(Some((incident, status, history)))
        })
        .await?
        .ok_or_else(|| not_found(&id))?;
    let rules = app.shared.rules();
    let mut v = view(&rules, &incident);
    v.status = Some(status.status.id());
    Ok(json(&IncidentDetail {
        incident: v,
        status_detail: status,
        history,
    }))
}

/// `GET /api/v1/summary?month=YYYY-MM` (default: this month).
async fn api_summary(
    _: ApiAccess,
    State(app): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let pairs = params(query, &["month"])?;
    let tz = app.shared.tz.clone();
    let month = match pairs.first() {
        Some((name, value)) => Month::parse(value).map_err(|e| ApiError::bad_param(name, e))?,
        None => Month::containing(Timestamp::now(), &tz),
    };
    let mut summary = app
        .shared
        .read(move |store| {
            summary::monthly(store, month, &tz).map_err(|e| match e {
                SummaryError::Future(_) => ApiError::bad_param("month", e),
                SummaryError::Store(e) => ApiError::store(e),
            })
        })
        .await?;
    summary.agency = Some(app.shared.agency.clone());
    summary.agency_name = app.shared.agency_name.clone();
    Ok(json(&summary))
}

#[derive(Serialize)]
struct RulesView<'a> {
    digest: String,
    count: usize,
    rules: Vec<RuleView<'a>>,
}

#[derive(Serialize)]
struct RuleView<'a> {
    id: &'a str,
    title: &'a str,
    category: &'static str,
    severity: &'static str,
    types: &'a [String],
    tags: &'a [String],
    /// `rule`, `group` (opens incidents from its members' evidence) or
    /// `member` (its events count toward `group`).
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
}

/// `GET /api/v1/rules`: the rule set the daemon runs now.
async fn api_rules(_: ApiAccess, State(app): State<AppState>) -> Response {
    let rules = app.shared.rules();
    let view = RulesView {
        digest: rules.digest(),
        count: rules.rules.len(),
        rules: rules
            .rules
            .iter()
            .map(|r| RuleView {
                id: &r.id,
                title: &r.title,
                category: r.category.id(),
                severity: r.severity.id(),
                types: &r.types,
                tags: &r.tags,
                kind: match r.role {
                    Role::Rule => "rule",
                    Role::Group => "group",
                    Role::Member(_) => "member",
                },
                group: match r.role {
                    Role::Member(g) => Some(rules.rule(g).id.as_str()),
                    Role::Rule | Role::Group => None,
                },
            })
            .collect(),
    };
    json(&view)
}
