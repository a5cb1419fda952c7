//! The API's only writes: an incident's status, and that it was reported.
//!
//! `POST /api/v1/incidents/{id}/status` with `{"status": "acknowledged",
//! "note": "..."}` and `POST /api/v1/incidents/{id}/reported` with an
//! optional `{"note": "..."}`. Both need a token from
//! `api_write_token_file`: a read token gets 403, and stays read-only. The
//! change is recorded as made by `api:` and the token's name (the comment
//! line above it in the token file), logged with that name, and answered
//! with the incident's status as it now is.
//!
//! Writes go through a writer connection of their own, opened per request
//! on a blocking thread: status changes are rare, and SQLite serialises
//! them with the daemon's commits (the busy timeout waits out a commit).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use serde::Deserialize;
use tracing::info;

use super::{json, ApiAccess, ApiError, AppState, MAX_TEXT_PARAM};
use crate::store::{Change, Status, Store, MAX_NOTE_CHARS};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportedBody {
    note: Option<String>,
}

/// The JSON body, or a 400 saying what is wrong with it.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes, empty: Option<T>) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(default) = empty {
            return Ok(default);
        }
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

fn checked_note(note: Option<String>) -> Result<Option<String>, ApiError> {
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("note: at most {MAX_NOTE_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

pub(super) async fn set_status(
    access: ApiAccess,
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: StatusBody = body(&bytes, None)?;
    let status: Status = request
        .status
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, format!("status: {e}")))?;
    let note = checked_note(request.note)?;
    change(access, app, id, Change::Status(status), note).await
}

pub(super) async fn set_reported(
    access: ApiAccess,
    State(app): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: ReportedBody = body(&bytes, Some(ReportedBody { note: None }))?;
    let note = checked_note(request.note)?;
    change(access, app, id, Change::Reported, note).await
}

async fn change(
    access: ApiAccess,
    app: AppState,
    id: String,
    change: Change<'static>,
    note: Option<String>,
) -> Result<Response, ApiError> {
    if !access.write {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token may only read: changing an incident needs a token from api_write_token_file",
        ));
    }
    if id.is_empty() || id.len() > MAX_TEXT_PARAM {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident has id {id:?}"),
        ));
    }
    let by = format!("api:{}", access.token);
    let (db, agency) = (app.shared.db.clone(), app.shared.agency.clone());
    let (who, what) = (by.clone(), id.clone());
    let after = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&db, &agency).map_err(ApiError::store)?;
        store
            .change_status(&what, change, &who, note.as_deref(), Timestamp::now())
            .map_err(ApiError::store)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")))??;
    let Some(after) = after else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident has id {id:?}"),
        ));
    };
    match change {
        Change::Reported => {
            info!(incident = %id, token = %access.token, "API: incident marked reported")
        }
        _ => {
            info!(incident = %id, token = %access.token, status = %after.status, "API: incident status changed")
        }
    }
    Ok(json(&after))
}
