//! The national center's side of the store: every agency's incidents, at
//! the highest revision received, and every agency's last heartbeat.
//!
//! The center's incidents are rows of `incidents` like an agency's (with a
//! negative `detector_id`, which no detector uses), so tallies, statuses
//! and every report work on a center store unchanged; `center_incidents`
//! says which agency and revision each came from.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};

use super::outbox::IncidentMessage;
use super::values::{to_i64, to_u64};
use super::{Store, StoreError};

/// What one [`Store::center_apply`] did with its messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub updated: u64,
    /// Revisions at or below the one stored: redeliveries, or older states
    /// overtaken by a newer one.
    pub stale: u64,
    /// Messages claiming an incident that another agency sent first.
    pub refused: u64,
}

/// One agency as the center knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgencyRecord {
    pub agency: String,
    pub name: Option<String>,
    pub first_us: i64,
    pub last_heartbeat_us: Option<i64>,
    pub last_incident_us: Option<i64>,
    /// The last heartbeat as received (JSON), for the operator.
    pub heartbeat: Option<serde_json::Value>,
    /// Incidents held for this agency.
    pub incidents: u64,
}

/// An agency's heartbeat as the center received it.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatRecord {
    pub agency: String,
    pub name: Option<String>,
    /// When the broker stored it (µs): the broker's clock, not the
    /// agency's, and the time it was sent even when the center reads it
    /// later.
    pub at_us: i64,
    pub json: serde_json::Value,
}

/// Where the center keeps what it receives. SQLite ([`Store`]) is the one
/// kept today; a server database would implement the same two calls.
pub trait CenterStore {
    /// Applies incidents and heartbeats received at `received_us` in one
    /// transaction: once it returns they may be acknowledged.
    fn apply(
        &mut self,
        incidents: &[IncidentMessage],
        heartbeats: &[HeartbeatRecord],
        received_us: i64,
    ) -> Result<Applied, StoreError>;
    /// Every agency heard of, by id.
    fn agencies(&self) -> Result<Vec<AgencyRecord>, StoreError>;
}

impl CenterStore for Store {
    fn apply(
        &mut self,
        incidents: &[IncidentMessage],
        heartbeats: &[HeartbeatRecord],
        received_us: i64,
    ) -> Result<Applied, StoreError> {
        self.write_transaction(|tx| {
            let mut applied = Applied::default();
            let mut next_id: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM incidents", [], |r| {
                    r.get(0)
                })?;
            let mut heard = std::collections::BTreeSet::new();
            for m in incidents {
                let refused = applied.refused;
                if apply_one(tx, m, received_us, next_id, &mut applied)? {
                    next_id += 1;
                }
                // A refused message says nothing of the agency it names.
                if applied.refused == refused {
                    heard.insert(m.agency.as_str());
                }
            }
            let mut agency = tx.prepare_cached(
                "INSERT INTO center_agencies (agency, first_us, last_incident_us) VALUES (?1, ?2, ?2)
                 ON CONFLICT (agency) DO UPDATE SET last_incident_us = excluded.last_incident_us",
            )?;
            for a in heard {
                agency.execute(params![a, received_us])?;
            }
            let mut beat = tx.prepare_cached(
                "INSERT INTO center_agencies (agency, name, first_us, last_heartbeat_us, heartbeat)
                 VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT (agency) DO UPDATE SET name = COALESCE(excluded.name, name),
                     heartbeat = excluded.heartbeat, last_heartbeat_us = excluded.last_heartbeat_us
                 WHERE last_heartbeat_us IS NULL OR last_heartbeat_us <= excluded.last_heartbeat_us",
            )?;
            for h in heartbeats {
                beat.execute(params![h.agency, h.name, h.at_us, h.json.to_string()])?;
            }
            Ok(applied)
        })
    }

    fn agencies(&self) -> Result<Vec<AgencyRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.agency, a.name, a.first_us, a.last_heartbeat_us, a.last_incident_us, a.heartbeat,
                    (SELECT COUNT(*) FROM center_incidents c WHERE c.agency = a.agency)
             FROM center_agencies a ORDER BY a.agency",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let heartbeat: Option<String> = r.get(5)?;
            out.push(AgencyRecord {
                agency: r.get(0)?,
                name: r.get(1)?,
                first_us: r.get(2)?,
                last_heartbeat_us: r.get(3)?,
                last_incident_us: r.get(4)?,
                heartbeat: heartbeat.and_then(|h| serde_json::from_str(&h).ok()),
                incidents: to_u64(r.get(6)?, "incident count")?,
            });
        }
        Ok(out)
    }
}

/// Applies one message; true when it took the row id `new_id`.
fn apply_one(
    tx: &Transaction<'_>,
    m: &IncidentMessage,
    received_us: i64,
    new_id: i64,
    applied: &mut Applied,
) -> Result<bool, StoreError> {
    let revision = to_i64(m.revision, "revision")?;
    let known: Option<(i64, String, i64)> = tx
        .prepare_cached(
            "SELECT i.id, c.agency, c.revision FROM incidents i
             JOIN center_incidents c ON c.incident = i.id WHERE i.uid = ?1",
        )?
        .query_row([&m.uid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let id = match known {
        Some((_, agency, _)) if agency != m.agency => {
            applied.refused += 1;
            return Ok(false);
        }
        Some((_, _, stored)) if stored >= revision => {
            applied.stale += 1;
            return Ok(false);
        }
        Some((id, _, _)) => {
            applied.updated += 1;
            id
        }
        None => {
            applied.inserted += 1;
            new_id
        }
    };
    // A new incident takes a row id of our own and a detector id no
    // detector uses; a known one keeps them, and takes this revision's
    // state (its uid and creation stay).
    tx.prepare_cached(
        "INSERT INTO incidents (id, uid, detector_id, rule, category, severity, key, src_ip,
             input, first_seen_us, last_seen_us, events, open, sample, fields,
             created_us, updated_us)
         VALUES (?1, ?2, -?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, category = excluded.category,
             severity = excluded.severity, key = excluded.key, src_ip = excluded.src_ip,
             input = excluded.input, first_seen_us = excluded.first_seen_us,
             last_seen_us = excluded.last_seen_us, events = excluded.events, open = excluded.open,
             sample = excluded.sample, fields = excluded.fields, updated_us = excluded.updated_us",
    )?
    .execute(params![
        id,
        m.uid,
        m.rule,
        m.category,
        m.severity,
        m.key,
        m.src_ip,
        m.input,
        m.first_seen_us,
        m.last_seen_us,
        to_i64(m.events, "event count")?,
        m.open,
        m.sample,
        m.fields.to_string(),
        m.created_us,
        m.committed_us,
    ])?;
    tx.prepare_cached(
        "INSERT INTO center_incidents (incident, agency, revision, received_us) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (incident) DO UPDATE SET revision = excluded.revision, received_us = excluded.received_us",
    )?
    .execute(params![id, m.agency, revision, received_us])?;
    // The agency's status travels with the incident: a false positive
    // leaves the national figures as it left the agency's.
    if m.status == "new" && m.reported_us.is_none() {
        tx.prepare_cached("DELETE FROM incident_status WHERE incident = ?1")?
            .execute([id])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO incident_status (incident, status, changed_by, changed_us, reported_us, reported_by)
             VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 IS NULL THEN NULL ELSE ?3 END)
             ON CONFLICT (incident) DO UPDATE SET status = excluded.status,
                 changed_by = excluded.changed_by, changed_us = excluded.changed_us,
                 reported_us = excluded.reported_us, reported_by = excluded.reported_by",
        )?
        .execute(params![
            id,
            m.status,
            format!("agency:{}", m.agency),
            m.status_changed_us.unwrap_or(0),
            m.reported_us,
        ])?;
    }
    Ok(known.is_none())
}

impl Store {
    /// Copies one agency's incidents (and their statuses) from this center
    /// store into a new store at `into`, which must not exist: every report
    /// of an agency's store then works on the center's copy of it
    /// (`report --agency`). Returns the copy, open for reading, and the
    /// agency's name if its heartbeat gave one; `None` if the agency is
    /// unknown here.
    pub fn extract_agency(
        &self,
        agency: &str,
        into: &Path,
    ) -> Result<Option<(Store, Option<String>)>, StoreError> {
        let known: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT name FROM center_agencies WHERE agency = ?1",
                [agency],
                |r| r.get(0),
            )
            .optional()?;
        let Some(name) = known else {
            return Ok(None);
        };
        let zone = self.time_zone()?;
        let source = self.path.to_str().ok_or_else(|| {
            StoreError::Invalid(format!("{}: not a UTF-8 path", self.path.display()))
        })?;
        let mut copy = Store::open(into, agency)?;
        copy.record_identity(zone.as_deref(), name.as_deref())?;
        copy.conn
            .execute("ATTACH DATABASE ?1 AS center", [source])?;
        let copied = copy.write_transaction(|tx| {
            tx.execute(
                "INSERT INTO main.incidents SELECT * FROM center.incidents
                 WHERE id IN (SELECT incident FROM center.center_incidents WHERE agency = ?1)",
                [agency],
            )?;
            tx.execute(
                "INSERT INTO main.incident_status SELECT * FROM center.incident_status
                 WHERE incident IN (SELECT incident FROM center.center_incidents WHERE agency = ?1)",
                [agency],
            )?;
            Ok(())
        });
        copy.conn.execute("DETACH DATABASE center", [])?;
        copied?;
        drop(copy);
        Ok(Some((Store::open_read(into)?, name)))
    }
}
