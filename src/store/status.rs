//! What analysts say about an incident: its status, who set it, when and
//! why, and when it was reported to the national coordinator (Circular
//! 20/2017: within five days of detection). Every change is appended to
//! the incident's history, so a status can be traced, never silently
//! rewritten.
//!
//! An incident has no `incident_status` row until someone sets one: the
//! daemon's hot path never writes here. A false positive leaves every
//! figure (the tally triggers of schema v8, and [`super::tally`]).

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::values::{from_us, to_u64, to_us};
use super::{Store, StoreError};
use crate::ids::id_enum;

id_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Status: "status" {
        New => "new",
        Acknowledged => "acknowledged",
        Handled => "handled",
        FalsePositive => "false-positive",
    }
}

/// Longest note kept; a note is a sentence or two, not a report.
pub const MAX_NOTE_CHARS: usize = 2000;

/// An incident's status as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentStatus {
    pub status: Status,
    /// Who set it: a local account (`canhgac incident ack`) or an API
    /// token's name; `None` while the incident is `new`.
    pub changed_by: Option<String>,
    #[serde(serialize_with = "optional_time")]
    pub changed_at: Option<Timestamp>,
    pub note: Option<String>,
    /// When it was reported to the national coordinator, and by whom.
    #[serde(serialize_with = "optional_time")]
    pub reported_at: Option<Timestamp>,
    pub reported_by: Option<String>,
}

impl Default for IncidentStatus {
    fn default() -> IncidentStatus {
        IncidentStatus {
            status: Status::New,
            changed_by: None,
            changed_at: None,
            note: None,
            reported_at: None,
            reported_by: None,
        }
    }
}

/// One change in an incident's history: a status set, or `reported`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    #[serde(serialize_with = "time")]
    pub at: Timestamp,
    pub by: String,
    pub action: String,
    pub note: Option<String>,
}

/// What [`Store::change_status`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    Status(Status),
    Reported,
    /// Only a note, the status unchanged.
    Note(&'a str),
}

impl Store {
    /// The status of the incident with this uid (`None`: no such incident).
    pub fn status_of(&self, uid: &str) -> Result<Option<IncidentStatus>, StoreError> {
        let Some(id) = incident_id(&self.conn, uid)? else {
            return Ok(None);
        };
        Ok(Some(read_status(&self.conn, id)?))
    }

    /// The history of the incident with this uid, oldest first.
    pub fn history(&self, uid: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let Some(id) = incident_id(&self.conn, uid)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT at_us, by, action, note FROM incident_history WHERE incident = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(HistoryEntry {
                at: from_us(row.get(0)?)?,
                by: row.get(1)?,
                action: row.get(2)?,
                note: row.get(3)?,
            });
        }
        Ok(out)
    }

    /// Records `change` to the incident with this uid, by `by`, with an
    /// optional note, in one transaction with its history entry. `None`:
    /// no such incident.
    pub fn change_status(
        &mut self,
        uid: &str,
        change: Change<'_>,
        by: &str,
        note: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<IncidentStatus>, StoreError> {
        let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect::<String>());
        let at_us = to_us(at)?;
        self.write_transaction(|tx| {
            let Some(id) = incident_id(tx, uid)? else {
                return Ok(None);
            };
            let before = read_status(tx, id)?;
            let (action, after) = match change {
                Change::Status(status) => (
                    status.id().to_owned(),
                    IncidentStatus {
                        status,
                        changed_by: Some(by.to_owned()),
                        changed_at: Some(at),
                        note: note.clone(),
                        ..before
                    },
                ),
                // When it was first sent stays: a second report (a
                // follow-up) is in the history.
                Change::Reported => (
                    "reported".to_owned(),
                    IncidentStatus {
                        reported_at: before.reported_at.or(Some(at)),
                        reported_by: before.reported_by.clone().or_else(|| Some(by.to_owned())),
                        ..before
                    },
                ),
                Change::Note(text) => (
                    "note".to_owned(),
                    IncidentStatus {
                        note: Some(text.chars().take(MAX_NOTE_CHARS).collect()),
                        ..before
                    },
                ),
            };
            write_status(tx, id, &after)?;
            let history_note = match change {
                Change::Note(text) => Some(text.chars().take(MAX_NOTE_CHARS).collect()),
                _ => note.clone(),
            };
            tx.prepare_cached(
                "INSERT INTO incident_history (incident, at_us, by, action, note)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, at_us, by, action, history_note])?;
            Ok(Some(after))
        })
    }

    /// A mark that moves whenever figures change outside the daemon's own
    /// commits: the last status change and the number of imports (two
    /// lookups of a table's last row).
    pub fn change_mark(&self) -> Result<(i64, i64), StoreError> {
        let last = |sql: &str| -> Result<i64, StoreError> {
            Ok(self
                .conn
                .prepare_cached(sql)?
                .query_row([], |r| r.get::<_, Option<i64>>(0))?
                .unwrap_or(0))
        };
        Ok((
            last("SELECT MAX(seq) FROM incident_history")?,
            last("SELECT COUNT(*) FROM imports")?,
        ))
    }

    /// Incidents first seen in `[from, to)` that are marked false positive.
    pub fn count_false_positives(&self, from: Timestamp, to: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM incident_status s JOIN incidents i ON i.id = s.incident
                 WHERE s.status = 'false-positive' AND i.first_seen_us >= ?1 AND i.first_seen_us < ?2",
            )?
            .query_row(params![to_us(from)?, to_us(to)?], |r| r.get(0))?;
        to_u64(n, "incident count")
    }

    /// Incidents first seen in `[from, to)` per category, false positives
    /// left out: `(category, all, handled, handled and never reported,
    /// reported to the national coordinator)`, the columns of the
    /// coordinator's summary form.
    pub fn count_by_outcome(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, [u64; 4])>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.category, COUNT(*),
                    SUM(s.status = 'handled'),
                    SUM(s.status = 'handled' AND s.reported_us IS NULL),
                    SUM(s.reported_us IS NOT NULL)
             FROM incidents i LEFT JOIN incident_status s ON s.incident = i.id
             WHERE i.first_seen_us >= ?1 AND i.first_seen_us < ?2
               AND (s.status IS NULL OR s.status != 'false-positive')
             GROUP BY i.category ORDER BY i.category",
        )?;
        let mut rows = stmt.query(params![to_us(from)?, to_us(to)?])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut n = [0u64; 4];
            for (i, slot) in n.iter_mut().enumerate() {
                let v: Option<i64> = row.get(i + 1)?;
                *slot = to_u64(v.unwrap_or(0), "incident count")?;
            }
            out.push((row.get(0)?, n));
        }
        Ok(out)
    }

    /// When the incident with this uid was recorded: when canhgac detected
    /// it (an import records history when it runs).
    pub fn recorded_at(&self, uid: &str) -> Result<Option<Timestamp>, StoreError> {
        self.conn
            .prepare_cached("SELECT created_us FROM incidents WHERE uid = ?1")?
            .query_row([uid], |r| r.get::<_, i64>(0))
            .optional()?
            .map(from_us)
            .transpose()
    }

    /// The statuses of these incidents (by uid); absent: `new`. One pass
    /// over the status rows, which are as few as analysts' decisions,
    /// rather than two lookups per incident listed.
    pub fn statuses(
        &self,
        uids: &[&str],
    ) -> Result<std::collections::HashMap<String, IncidentStatus>, StoreError> {
        let wanted: std::collections::HashSet<&str> = uids.iter().copied().collect();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT i.uid, {STATUS_COLUMNS} FROM incident_status s JOIN incidents i ON i.id = s.incident"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = std::collections::HashMap::new();
        while let Some(row) = rows.next()? {
            let uid: String = row.get(0)?;
            if wanted.contains(uid.as_str()) {
                out.insert(uid, status_from_row(row, 1)?);
            }
        }
        Ok(out)
    }
}

const STATUS_COLUMNS: &str =
    "s.status, s.changed_by, s.changed_us, s.note, s.reported_us, s.reported_by";

/// The status of a row whose `STATUS_COLUMNS` start at column `at`.
fn status_from_row(row: &rusqlite::Row<'_>, at: usize) -> Result<IncidentStatus, StoreError> {
    let status: String = row.get(at)?;
    Ok(IncidentStatus {
        status: status
            .parse()
            .map_err(|e: String| StoreError::Invalid(format!("stored status: {e}")))?,
        changed_by: row.get(at + 1)?,
        changed_at: row
            .get::<_, Option<i64>>(at + 2)?
            .map(from_us)
            .transpose()?,
        note: row.get(at + 3)?,
        reported_at: row
            .get::<_, Option<i64>>(at + 4)?
            .map(from_us)
            .transpose()?,
        reported_by: row.get(at + 5)?,
    })
}

fn incident_id(conn: &rusqlite::Connection, uid: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM incidents WHERE uid = ?1")?
        .query_row([uid], |r| r.get(0))
        .optional()?)
}

fn read_status(conn: &rusqlite::Connection, id: i64) -> Result<IncidentStatus, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STATUS_COLUMNS} FROM incident_status s WHERE s.incident = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => status_from_row(row, 0),
        None => Ok(IncidentStatus::default()),
    }
}

fn write_status(tx: &Transaction<'_>, id: i64, s: &IncidentStatus) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO incident_status (incident, status, changed_by, changed_us, note, reported_us, reported_by)
         VALUES (?1, ?2, COALESCE(?3, ''), COALESCE(?4, 0), ?5, ?6, ?7)
         ON CONFLICT (incident) DO UPDATE SET
             status = excluded.status, changed_by = excluded.changed_by,
             changed_us = excluded.changed_us, note = excluded.note,
             reported_us = excluded.reported_us, reported_by = excluded.reported_by",
    )?
    .execute(params![
        id,
        s.status.id(),
        s.changed_by,
        s.changed_at.map(to_us).transpose()?,
        s.note,
        s.reported_at.map(to_us).transpose()?,
        s.reported_by,
    ])?;
    Ok(())
}

fn time<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

fn optional_time<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    #[test]
    fn a_false_positive_leaves_the_figures_and_comes_back() {
        let (_dir, _path, mut store) = fresh();
        let incidents: Vec<_> = (1..=4)
            .map(|i| rec(i, i as i64 * 10, "bruteforce"))
            .collect();
        commit_incidents(&mut store, &incidents);
        let from = ts(0);
        let to = ts(1_000_000);
        let count = |store: &Store| -> u64 {
            store
                .count_by_category(from, to)
                .expect("count")
                .iter()
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(count(&store), 4);
        let uid = store.incidents(&Default::default()).expect("all")[1]
            .uid
            .clone();
        let at = ts(2_000_000);
        let s = store
            .change_status(
                &uid,
                Change::Status(Status::FalsePositive),
                "analyst",
                Some("scanner of ours"),
                at,
            )
            .expect("change")
            .expect("incident");
        assert_eq!(s.status, Status::FalsePositive);
        assert_eq!(count(&store), 3, "tally without the false positive");
        assert_eq!(store.count_false_positives(from, to).expect("fp"), 1);
        // Ragged bounds are counted from the incidents: skipped there too.
        assert_eq!(
            store
                .count_by_category(ts(1), ts(45))
                .expect("count")
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            3
        );
        // Acknowledging or reporting it again changes nothing of the figures.
        store
            .change_status(&uid, Change::Reported, "analyst", None, at)
            .expect("reported");
        assert_eq!(count(&store), 3);
        store
            .change_status(&uid, Change::Status(Status::Handled), "lead", None, at)
            .expect("change");
        assert_eq!(count(&store), 4, "back in the figures");
        let s = store.status_of(&uid).expect("status").expect("incident");
        assert_eq!(s.status, Status::Handled);
        assert_eq!(s.changed_by.as_deref(), Some("lead"));
        assert_eq!(s.note, None);
        assert_eq!(s.reported_by.as_deref(), Some("analyst"));
        let h = store.history(&uid).expect("history");
        let actions: Vec<&str> = h.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["false-positive", "reported", "handled"]);
        assert_eq!(h[0].note.as_deref(), Some("scanner of ours"));
        assert_eq!(
            store
                .change_status("nope", Change::Status(Status::Handled), "x", None, at)
                .expect("no error"),
            None
        );
    }

    #[test]
    fn overdue_are_serious_unreported_live_incidents_past_the_deadline() {
        let (_dir, _path, mut store) = fresh();
        // `rec` makes high incidents; two of them medium.
        let mut incidents: Vec<_> = (1..=6).map(|i| rec(i, i as i64, "bruteforce")).collect();
        incidents[4].severity = "medium".into();
        incidents[5].severity = "critical".into();
        commit_incidents(&mut store, &incidents);
        // Recorded six days ago.
        store
            .write_transaction(|tx| {
                tx.execute(
                    "UPDATE incidents SET created_us = created_us - 6 * 86400000000",
                    [],
                )?;
                Ok(())
            })
            .expect("age");
        let cutoff = Timestamp::now() - jiff::SignedDuration::from_hours(5 * 24);
        assert_eq!(store.count_overdue(cutoff).expect("count"), 5);
        let uids: Vec<String> = store
            .incidents(&Default::default())
            .expect("all")
            .into_iter()
            .map(|i| i.uid)
            .collect();
        let now = Timestamp::now();
        store
            .change_status(&uids[0], Change::Reported, "a", None, now)
            .expect("reported");
        store
            .change_status(
                &uids[1],
                Change::Status(Status::FalsePositive),
                "a",
                None,
                now,
            )
            .expect("fp");
        store
            .change_status(
                &uids[2],
                Change::Status(Status::Acknowledged),
                "a",
                None,
                now,
            )
            .expect("ack");
        assert_eq!(
            store.count_overdue(cutoff).expect("count"),
            3,
            "acknowledged is still unreported"
        );
        let listed = store
            .incidents(&crate::store::IncidentQuery {
                overdue_before: Some(cutoff),
                ..Default::default()
            })
            .expect("overdue");
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().all(|i| i.record.severity != "medium"));
        // Not yet five days: nothing is overdue.
        let early = Timestamp::now() - jiff::SignedDuration::from_hours(7 * 24);
        assert_eq!(store.count_overdue(early).expect("count"), 0);
    }

    #[test]
    fn deleting_a_false_positive_does_not_take_it_out_twice() {
        let (_dir, _path, mut store) = fresh();
        let incidents: Vec<_> = (1..=3).map(|i| rec(i, 5, "dos")).collect();
        commit_incidents(&mut store, &incidents);
        let uid = store.incidents(&Default::default()).expect("all")[0]
            .uid
            .clone();
        store
            .change_status(
                &uid,
                Change::Status(Status::FalsePositive),
                "a",
                None,
                ts(9),
            )
            .expect("change");
        store
            .write_transaction(|tx| {
                tx.execute("DELETE FROM incidents WHERE uid = ?1", [&uid])?;
                Ok(())
            })
            .expect("delete");
        let n: u64 = store
            .count_by_category(ts(0), ts(3_600_000_000))
            .expect("count")
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(n, 2);
    }
}
