//! The outbox to the national center: which incidents changed since the
//! broker last acknowledged them, as messages, and the bookkeeping of
//! delivery and of what the bound drops.
//!
//! The triggers of schema v9 fill `outbox` in the transaction that changes
//! an incident or its status; this module only reads it, marks rows
//! delivered once the broker has acknowledged them, and enforces the
//! bound, each in its own short transaction. A message carries the
//! incident's current state and the revision of that state: if the
//! incident changes while its message is on the way, the row's revision
//! moves on and marking the older one delivered leaves the row pending.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::values::{to_i64, to_u64};
use super::{Store, StoreError};

/// The version of [`IncidentMessage`]'s shape: fields are only added.
pub const MESSAGE_SCHEMA: u32 = 1;

/// One state of one incident, as it travels to the center. JSON on the
/// wire; times are microseconds since the Unix epoch, exact both ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentMessage {
    pub schema: u32,
    pub agency: String,
    /// `{agency}-{UUIDv7}`: the incident's id everywhere.
    pub uid: String,
    /// Grows with every change of the incident; the center keeps the highest.
    pub revision: u64,
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub events: u64,
    pub open: bool,
    /// `new`, `acknowledged`, `handled` or `false-positive`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_us: Option<i64>,
    pub sample: String,
    /// The incident's fields as a JSON object (as stored).
    pub fields: serde_json::Value,
    /// When the agency first stored it.
    pub created_us: i64,
    /// When the agency committed this revision: the start of the
    /// end-to-end latency the center measures.
    pub committed_us: i64,
}

impl IncidentMessage {
    /// `<agency>/<uid>/<revision>`: the broker's deduplication id
    /// (`Nats-Msg-Id`), the same for every attempt to send one revision.
    pub fn message_id(&self) -> String {
        format!("{}/{}/{}", self.agency, self.uid, self.revision)
    }
}

/// A pending outbox row with its message.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The incident's row id: what [`Store::outbox_delivered`] is told.
    pub incident: i64,
    pub message: IncidentMessage,
}

/// The outbox at a glance, for metrics and the heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub enabled: bool,
    pub pending: u64,
    /// When the oldest pending change was committed (µs since the epoch).
    pub oldest_us: Option<i64>,
    /// Rows acknowledged by the broker, ever.
    pub delivered: u64,
    /// Rows given up by the bound, ever.
    pub dropped: u64,
}

/// How far the outbox may grow while the center is out of reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxBound {
    /// Pending changes older than this are dropped (µs).
    pub max_age_us: i64,
    /// At most this many incidents pending; the oldest go first.
    pub max_rows: u64,
}

/// What [`Store::outbox_prune`] gave up, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub too_old: u64,
    pub over_size: u64,
    /// Rows whose incident was deleted locally (purged): nothing to send.
    pub gone: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.too_old + self.over_size
    }
}

impl Store {
    /// Starts recording changes for the center. The first time (or after
    /// [`Store::outbox_disable`]) every incident changed since `since_us`
    /// is queued, so a center that is added later hears of recent history.
    /// Returns how many were queued.
    pub fn outbox_enable(&mut self, since_us: i64) -> Result<u64, StoreError> {
        self.write_transaction(|tx| {
            let enabled: i64 =
                tx.query_row("SELECT enabled FROM outbox_control WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
            if enabled == 1 {
                return Ok(0);
            }
            tx.execute("UPDATE outbox_control SET enabled = 1 WHERE id = 1", [])?;
            let queued = tx.execute(
                "INSERT INTO outbox (incident, revision, seq, changed_us, pending)
                 SELECT id, 1, (SELECT next_seq FROM outbox_control WHERE id = 1) + row_number() OVER (ORDER BY updated_us, id),
                        CAST(unixepoch('subsec') * 1000000 AS INTEGER), 1
                 FROM incidents WHERE updated_us >= ?1 ORDER BY updated_us, id
                 ON CONFLICT (incident) DO UPDATE SET revision = revision + 1,
                     seq = excluded.seq, changed_us = excluded.changed_us, pending = 1",
                [since_us],
            )?;
            tx.execute(
                "UPDATE outbox_control SET next_seq = next_seq + ?1 WHERE id = 1",
                [i64::try_from(queued).unwrap_or(i64::MAX)],
            )?;
            Ok(queued as u64)
        })
    }

    /// Stops recording changes (no `[forward]` any more). What is pending
    /// stays, to go out if forwarding comes back.
    pub fn outbox_disable(&mut self) -> Result<(), StoreError> {
        self.write_transaction(|tx| {
            tx.execute("UPDATE outbox_control SET enabled = 0 WHERE id = 1", [])?;
            Ok(())
        })
    }

    /// Up to `limit` pending changes, oldest first, each with its
    /// incident's current state.
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        // A writer knows its agency (it wrote it to meta when it opened).
        let agency: String = match &self.agency {
            Some(a) => a.clone(),
            None => self
                .conn
                .query_row("SELECT agency FROM meta WHERE id = 1", [], |r| r.get(0))?,
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.incident, o.revision, o.changed_us,
                    i.uid, i.rule, i.category, i.severity, i.key, i.src_ip, i.input,
                    i.first_seen_us, i.last_seen_us, i.events, i.open, i.sample, i.fields,
                    i.created_us, s.status, s.changed_us, s.reported_us
             FROM outbox o JOIN incidents i ON i.id = o.incident
             LEFT JOIN incident_status s ON s.incident = o.incident
             WHERE o.pending = 1 ORDER BY o.seq LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query([limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(pending_from_row(row, &agency)?);
        }
        Ok(out)
    }

    /// Marks these (incident, revision) pairs delivered: the broker stored
    /// them. A pair whose incident has since moved to a later revision
    /// stays pending. Returns how many rows were marked.
    pub fn outbox_delivered(&mut self, acked: &[(i64, u64)]) -> Result<u64, StoreError> {
        if acked.is_empty() {
            return Ok(0);
        }
        self.write_transaction(|tx| {
            let mut mark = tx.prepare_cached(
                "UPDATE outbox SET pending = 0 WHERE incident = ?1 AND revision = ?2 AND pending = 1",
            )?;
            let mut marked = 0_u64;
            for &(incident, revision) in acked {
                marked += mark.execute(params![incident, to_i64(revision, "revision")?])? as u64;
            }
            tx.execute(
                "UPDATE outbox_control SET delivered = delivered + ?1 WHERE id = 1",
                [to_i64(marked, "delivered")?],
            )?;
            Ok(marked)
        })
    }

    /// Enforces the bound at `now_us`: pending changes older than the
    /// bound's age, then the oldest beyond its size, are given up and
    /// counted in `outbox_control.dropped`. Rows of incidents deleted
    /// locally are cleared without counting: they have nothing to send.
    pub fn outbox_prune(&mut self, bound: OutboxBound, now_us: i64) -> Result<Pruned, StoreError> {
        self.write_transaction(|tx| {
            let gone = tx.execute(
                "UPDATE outbox SET pending = 0 WHERE pending = 1
                 AND NOT EXISTS (SELECT 1 FROM incidents WHERE id = outbox.incident)",
                [],
            )? as u64;
            let too_old = tx.execute(
                "UPDATE outbox SET pending = 0 WHERE pending = 1 AND changed_us < ?1",
                [now_us.saturating_sub(bound.max_age_us)],
            )? as u64;
            let pending: i64 =
                tx.query_row("SELECT COUNT(*) FROM outbox WHERE pending = 1", [], |r| {
                    r.get(0)
                })?;
            let excess = to_u64(pending, "pending")?.saturating_sub(bound.max_rows);
            let over_size = if excess > 0 {
                tx.execute(
                    "UPDATE outbox SET pending = 0 WHERE incident IN
                     (SELECT incident FROM outbox WHERE pending = 1 ORDER BY seq LIMIT ?1)",
                    [to_i64(excess, "excess")?],
                )? as u64
            } else {
                0
            };
            tx.execute(
                "UPDATE outbox_control SET dropped = dropped + ?1 WHERE id = 1",
                [to_i64(too_old + over_size, "dropped")?],
            )?;
            Ok(Pruned {
                too_old,
                over_size,
                gone,
            })
        })
    }

    /// Pending rows, the oldest pending change, and the running totals.
    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let (enabled, delivered, dropped): (i64, i64, i64) = self.conn.query_row(
            "SELECT enabled, delivered, dropped FROM outbox_control WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (pending, oldest_us): (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(changed_us) FROM outbox WHERE pending = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(OutboxStats {
            enabled: enabled == 1,
            pending: to_u64(pending, "pending")?,
            oldest_us,
            delivered: to_u64(delivered, "delivered")?,
            dropped: to_u64(dropped, "dropped")?,
        })
    }

    /// The revision the outbox last gave this incident, if any.
    pub fn outbox_revision(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        let rev: Option<i64> = self
            .conn
            .query_row(
                "SELECT o.revision FROM outbox o JOIN incidents i ON i.id = o.incident WHERE i.uid = ?1",
                [uid],
                |r| r.get(0),
            )
            .optional()?;
        rev.map(|r| to_u64(r, "revision")).transpose()
    }
}

fn pending_from_row(row: &Row<'_>, agency: &str) -> Result<Pending, StoreError> {
    let fields: String = row.get(15)?;
    let fields = serde_json::from_str(&fields)
        .map_err(|e| StoreError::Invalid(format!("stored fields are not JSON: {e}")))?;
    let status: Option<String> = row.get(17)?;
    Ok(Pending {
        incident: row.get(0)?,
        message: IncidentMessage {
            schema: MESSAGE_SCHEMA,
            agency: agency.to_owned(),
            revision: to_u64(row.get(1)?, "revision")?,
            committed_us: row.get(2)?,
            uid: row.get(3)?,
            rule: row.get(4)?,
            category: row.get(5)?,
            severity: row.get(6)?,
            key: row.get(7)?,
            src_ip: row.get(8)?,
            input: row.get(9)?,
            first_seen_us: row.get(10)?,
            last_seen_us: row.get(11)?,
            events: to_u64(row.get(12)?, "event count")?,
            open: row.get(13)?,
            sample: row.get(14)?,
            fields,
            created_us: row.get(16)?,
            status: status.unwrap_or_else(|| "new".to_owned()),
            status_changed_us: row.get::<_, Option<i64>>(18)?.filter(|&t| t != 0),
            reported_us: row.get(19)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{commit_incidents, fresh, rec};
    use super::super::{CenterStore, Change, Status};
    use super::*;
    use jiff::Timestamp;

    const HOUR_US: i64 = 3_600_000_000;

    fn pending_revisions(store: &Store) -> Vec<(String, u64)> {
        store
            .outbox_pending(100)
            .expect("pending")
            .into_iter()
            .map(|p| (p.message.key.clone(), p.message.revision))
            .collect()
    }

    #[test]
    fn nothing_is_queued_until_forwarding_is_enabled_then_recent_history_is() {
        let (_dir, _path, mut store) = fresh();
        commit_incidents(&mut store, &[rec(1, 0, "bruteforce")]);
        assert_eq!(store.outbox_stats().expect("stats").pending, 0);
        assert_eq!(store.outbox_enable(0).expect("enable"), 1);
        // Enabling again queues nothing more.
        assert_eq!(store.outbox_enable(0).expect("enable"), 0);
        commit_incidents(&mut store, &[rec(2, 10, "web-attack")]);
        assert_eq!(
            pending_revisions(&store),
            [("10.0.0.1".to_owned(), 1), ("10.0.0.2".to_owned(), 1)]
        );
        store.outbox_disable().expect("disable");
        commit_incidents(&mut store, &[rec(3, 20, "recon")]);
        assert_eq!(store.outbox_stats().expect("stats").pending, 2);
    }

    #[test]
    fn each_change_is_a_new_revision_and_only_the_acknowledged_one_is_delivered() {
        let (_dir, _path, mut store) = fresh();
        store.outbox_enable(0).expect("enable");
        let mut r = rec(1, 0, "bruteforce");
        commit_incidents(&mut store, &[r.clone()]);
        let sent = store.outbox_pending(10).expect("pending");
        assert_eq!(sent.len(), 1);
        let first = &sent[0];
        assert_eq!(first.message.revision, 1);
        assert_eq!(
            first.message.message_id(),
            format!("{}/{}/1", first.message.agency, first.message.uid)
        );
        // The incident grows while revision 1 is on the way.
        r.events = 9;
        commit_incidents(&mut store, &[r.clone()]);
        assert_eq!(
            store
                .outbox_delivered(&[(first.incident, 1)])
                .expect("mark"),
            0,
            "a superseded revision leaves the row pending"
        );
        assert_eq!(pending_revisions(&store), [("10.0.0.1".to_owned(), 2)]);
        // A status change is a change too.
        let uid = first.message.uid.clone();
        store
            .change_status(
                &uid,
                Change::Status(Status::FalsePositive),
                "local:test",
                None,
                Timestamp::now(),
            )
            .expect("status");
        let latest = store.outbox_pending(10).expect("pending");
        assert_eq!(latest[0].message.revision, 3);
        assert_eq!(latest[0].message.status, "false-positive");
        assert_eq!(latest[0].message.events, 9);
        assert_eq!(
            store
                .outbox_delivered(&[(first.incident, 3)])
                .expect("mark"),
            1
        );
        let stats = store.outbox_stats().expect("stats");
        assert_eq!((stats.pending, stats.delivered, stats.dropped), (0, 1, 0));
        assert_eq!(store.outbox_revision(&uid).expect("revision"), Some(3));
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let (_dir, _path, mut store) = fresh();
        store.outbox_enable(0).expect("enable");
        for id in 1..=5 {
            commit_incidents(&mut store, &[rec(id, id as i64, "bruteforce")]);
        }
        let now = Timestamp::now().as_microsecond();
        let roomy = OutboxBound {
            max_age_us: HOUR_US,
            max_rows: 10,
        };
        assert_eq!(
            store.outbox_prune(roomy, now).expect("prune"),
            Pruned::default()
        );
        let three = OutboxBound {
            max_age_us: HOUR_US,
            max_rows: 3,
        };
        let pruned = store.outbox_prune(three, now).expect("prune");
        assert_eq!((pruned.too_old, pruned.over_size), (0, 2));
        assert_eq!(
            pending_revisions(&store)
                .iter()
                .map(|p| p.0.as_str())
                .collect::<Vec<_>>(),
            ["10.0.0.3", "10.0.0.4", "10.0.0.5"],
            "the oldest changes go first"
        );
        let later = store.outbox_prune(three, now + 2 * HOUR_US).expect("prune");
        assert_eq!((later.too_old, later.over_size), (3, 0));
        let stats = store.outbox_stats().expect("stats");
        assert_eq!((stats.pending, stats.dropped), (0, 5));
    }

    #[test]
    fn the_center_keeps_the_highest_revision_of_each_agencys_incident() {
        let (_dir, _path, mut agency) = fresh();
        agency.outbox_enable(0).expect("enable");
        let mut r = rec(1, 0, "bruteforce");
        commit_incidents(&mut agency, &[r.clone()]);
        let v1 = agency.outbox_pending(1).expect("pending")[0]
            .message
            .clone();
        r.events = 7;
        r.open = false;
        commit_incidents(&mut agency, &[r]);
        let v2 = agency.outbox_pending(1).expect("pending")[0]
            .message
            .clone();
        assert_eq!(v2.revision, 2);

        let (_cdir, _cpath, mut center) = fresh();
        let applied = center
            .apply(&[v2.clone(), v1.clone()], &[], 1)
            .expect("apply");
        assert_eq!(
            (applied.inserted, applied.stale),
            (1, 1),
            "an older revision after a newer one changes nothing"
        );
        let again = center
            .apply(std::slice::from_ref(&v2), &[], 2)
            .expect("apply");
        assert_eq!(again.stale, 1, "a redelivery changes nothing");
        let held = center.incident(&v2.uid).expect("query").expect("held");
        assert_eq!((held.record.events, held.record.open), (7, false));
        // Another agency cannot write this agency's incident.
        let forged = IncidentMessage {
            agency: "other".into(),
            revision: 9,
            events: 1,
            ..v2.clone()
        };
        assert_eq!(center.apply(&[forged], &[], 3).expect("apply").refused, 1);
        let agencies = center.agencies().expect("agencies");
        assert_eq!(agencies.len(), 1);
        assert_eq!(agencies[0].incidents, 1);
        // A false positive leaves the center's figures as it left the agency's.
        let fp = IncidentMessage {
            revision: 3,
            status: "false-positive".into(),
            ..v2
        };
        center.apply(&[fp], &[], 4).expect("apply");
        assert_eq!(
            center
                .status_of(&held.uid)
                .expect("status")
                .map(|s| s.status),
            Some(Status::FalsePositive)
        );
    }
}
