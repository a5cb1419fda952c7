//! The daemon's batch: incidents, the checkpoints of the inputs that
//! produced them and the detector's state, in one transaction.
//!
//! [`Store::commit`] writes a batch in one `IMMEDIATE` transaction. Either
//! all of it is in the database or none of it is, so a restart resumes
//! reading exactly after the last line whose incidents are stored: nothing
//! lost, nothing counted twice. A failed commit (busy, disk full, ...)
//! leaves the database exactly as it was; the caller keeps the batch and
//! retries it, and must not move its checkpoints on meanwhile.
//!
//! Rows that another module keeps in this database and that belong with a
//! batch's incidents (a web-root flag names the incident that raised it)
//! ride along as [`Batch::extra_rows`] and are written in the same
//! transaction, after the incidents, so they too are stored exactly once.
//! The store calls them through [`BatchRows`] and never knows their types:
//! it depends on no module that keeps rows here.
//! [`Store::recovery`] reads back, in one snapshot, what the daemon resumes
//! from.

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;
use rusqlite::{params, Connection, Row, Transaction, TransactionBehavior};
use uuid::Uuid;

use super::values::{
    bits_u64, from_us, is_unique_violation, to_i64, to_u64, to_us, u64_bits, FieldsRef,
};
use super::{IncidentRecord, Store, StoreError};
use crate::input::checkpoint::FileCheckpoint;

/// What one [`Store::commit`] writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    /// Upserted by `detector_id` (with the same rule and key; a stored
    /// incident whose id now names another one is kept under a negative id);
    /// a later record of the same id in the batch wins.
    pub incidents: &'a [IncidentRecord],
    /// Inputs whose checkpoints this batch replaces entirely: a file of one
    /// of these inputs without a checkpoint in `checkpoints` is forgotten.
    pub inputs: &'a [String],
    /// Every checkpoint's `input` must be listed in `inputs`.
    pub checkpoints: &'a [FileCheckpoint],
    /// `(input, cursor)` of inputs that resume from a cursor; each input
    /// must be listed in `inputs`, at most once.
    pub cursors: &'a [(String, String)],
    /// The detector's state; `None` keeps the stored one.
    pub detector: Option<DetectorWrite<'a>>,
    /// Rows another module keeps (web-root baselines and flags), written
    /// after the incidents, which they may name.
    pub extra_rows: Option<&'a dyn BatchRows>,
}

/// Rows another module keeps in this database, written in the transaction
/// of a batch, after its incidents and checkpoints: what a module must
/// record exactly once along with the incidents it raised (a web-root flag
/// and the incident it points at) is then stored with them or not at all.
/// The module owns its rows; the store only owns the transaction.
pub trait BatchRows: fmt::Debug {
    /// Writes the rows in `tx`; `now_us` is the batch's commit time (see
    /// [`to_us`]). An error rolls the whole batch back.
    fn write(&self, tx: &Transaction<'_>, now_us: i64) -> Result<(), StoreError>;
}

/// The detector's state as one commit writes it: the header (everything
/// but the keys) replaced, key rows appended over the stored ones.
#[derive(Clone, Copy, Debug)]
pub struct DetectorWrite<'a> {
    pub header: &'a [u8],
    pub rows: &'a [StateRow],
    /// `rows` are all the keys there are: the stored rows go.
    pub compact: bool,
}

/// One detector key (or request-rate client) as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRow {
    /// 0: a detector key; 1: a request-rate client.
    pub kind: u8,
    pub rule: u32,
    pub key: String,
    /// `None`: the key is gone.
    pub state: Option<Vec<u8>>,
}

/// What a successful commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Commits made to this database so far, this one included.
    pub commit: u64,
    pub committed_at: Timestamp,
    /// `(detector_id, uid)` of the incidents this commit inserted.
    pub inserted: Vec<(u64, String)>,
    /// How many incident records updated an already stored incident.
    pub updated: usize,
}

/// What the daemon needs to resume, read in one snapshot: checkpoints and
/// detector state come from the same commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Inputs named in some committed batch: they have started before.
    pub known_inputs: Vec<String>,
    /// Ordered by input, then path.
    pub checkpoints: Vec<FileCheckpoint>,
    /// `(input, cursor)`, ordered by input.
    pub cursors: Vec<(String, String)>,
    /// The detector header of the last commit that carried one.
    pub detector: Option<Vec<u8>>,
    /// The keys' latest rows, the gone ones left out, in the order they
    /// were written.
    pub detector_rows: Vec<StateRow>,
    /// Rows stored, the superseded ones included: what a
    /// [`DetectorWrite::compact`] would shrink.
    pub detector_rows_stored: u64,
    /// Highest detector id ever committed: a detector started without the
    /// blob must number its incidents above it.
    pub max_detector_id: Option<u64>,
    pub commits: u64,
    pub last_commit: Option<Timestamp>,
}

impl Store {
    /// Reads everything the daemon resumes from, in one read transaction.
    pub fn recovery(&self) -> Result<Recovery, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut checkpoints = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT input, path, dev, ino, fingerprint_len, fingerprint, byte_offset
                 FROM checkpoints ORDER BY input, path, dev, ino",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                checkpoints.push(checkpoint_from_row(row)?);
            }
        }
        let cursors: Vec<(String, String)> = tx
            .prepare_cached("SELECT input, cursor FROM input_cursors ORDER BY input")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let known_inputs: Vec<String> = tx
            .prepare_cached("SELECT name FROM inputs ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let detector: Option<Vec<u8>> = tx
            .prepare_cached("SELECT state FROM detector_state WHERE id = 1")?
            .query_map([], |r| r.get(0))?
            .next()
            .transpose()?;
        let (detector_rows, detector_rows_stored) = latest_rows(&tx)?;
        let (commits, last_commit_us, meta_max): (i64, Option<i64>, Option<i64>) = tx
            .prepare_cached(
                "SELECT commits, last_commit_us, max_detector_id FROM meta WHERE id = 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        // The meta high-water mark is authoritative; the table's maximum is
        // a second opinion that costs one index lookup. Negative ids (rows
        // detached from the detector, imported incidents) are no detector's.
        let table_max: Option<i64> = tx
            .prepare_cached("SELECT MAX(detector_id) FROM incidents WHERE detector_id > 0")?
            .query_row([], |r| r.get(0))?;
        tx.commit()?;
        let max_detector_id = match meta_max.max(table_max) {
            Some(id) => Some(to_u64(id, "detector id")?),
            None => None,
        };
        Ok(Recovery {
            checkpoints,
            cursors,
            known_inputs,
            detector,
            detector_rows,
            detector_rows_stored,
            max_detector_id,
            commits: to_u64(commits, "commit count")?,
            last_commit: last_commit_us.map(from_us).transpose()?,
        })
    }

    /// Writes a batch in one `IMMEDIATE` transaction (see the module docs).
    /// On error nothing of the batch is stored.
    pub fn commit(&mut self, batch: &Batch<'_>) -> Result<CommitInfo, StoreError> {
        let Store { conn, agency, .. } = self;
        let agency = agency.as_deref().ok_or(StoreError::ReadOnly)?;
        check_inputs_listed(batch)?;
        let committed_at = Timestamp::now();
        let now_us = to_us(committed_at)?;

        // IMMEDIATE takes the write lock at BEGIN, so a busy database fails
        // here (after busy_timeout), before any work, and never half-way
        // through as a deferred transaction upgrading its lock could.
        // Dropping `tx` on any error below rolls everything back.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written = upsert_incidents(&tx, agency, batch.incidents, now_us)?;
        replace_positions(&tx, batch, now_us)?;
        if let Some(rows) = batch.extra_rows {
            rows.write(&tx, now_us)?;
        }
        if let Some(state) = batch.detector {
            write_detector(&tx, &state, now_us)?;
        }
        let commit: i64 = tx
            .prepare_cached(
                "UPDATE meta SET commits = commits + 1, last_commit_us = ?1,
                     max_detector_id = CASE
                         WHEN ?2 IS NULL THEN max_detector_id
                         WHEN max_detector_id IS NULL OR ?2 > max_detector_id THEN ?2
                         ELSE max_detector_id END
                 WHERE id = 1
                 RETURNING commits",
            )?
            .query_row(params![now_us, written.max_id], |r| r.get(0))?;
        // Should COMMIT itself fail, `tx` is dropped still open and rolls back.
        tx.commit()?;
        Ok(CommitInfo {
            commit: to_u64(commit, "commit count")?,
            committed_at,
            inserted: written.inserted,
            updated: written.updated,
        })
    }
}

/// Refuses positions of inputs the batch does not list: a checkpoint of an
/// unlisted input would survive next to the old checkpoints of its input
/// instead of replacing them.
fn check_inputs_listed(batch: &Batch<'_>) -> Result<(), StoreError> {
    if let Some(cp) = batch
        .checkpoints
        .iter()
        .find(|cp| !batch.inputs.contains(&cp.input))
    {
        return Err(StoreError::Invalid(format!(
            "checkpoint of {} for input {:?}, which the batch does not list in its inputs",
            cp.path, cp.input
        )));
    }
    if let Some((input, _)) = batch
        .cursors
        .iter()
        .find(|(input, _)| !batch.inputs.contains(input))
    {
        return Err(StoreError::Invalid(format!(
            "cursor for input {input:?}, which the batch does not list in its inputs"
        )));
    }
    Ok(())
}

/// What [`upsert_incidents`] did.
struct Upserted {
    /// `(detector_id, uid)` of the new incidents.
    inserted: Vec<(u64, String)>,
    updated: usize,
    /// The highest detector id of the batch.
    max_id: Option<i64>,
}

fn upsert_incidents(
    tx: &Transaction<'_>,
    agency: &str,
    incidents: &[IncidentRecord],
    now_us: i64,
) -> Result<Upserted, StoreError> {
    let mut inserted = Vec::new();
    let mut updated = 0;
    let mut max_id: Option<i64> = None;
    let mut update = tx.prepare_cached(
        "UPDATE incidents SET last_seen_us = ?2, events = ?3, open = ?4, updated_us = ?5
         WHERE detector_id = ?1 AND rule = ?6 AND key = ?7",
    )?;
    // first_seen only ever moves earlier: a merged incident takes the
    // first event of a rule that joins it later. Apart, because
    // setting an indexed column rewrites its index entries (five
    // indexes hold first_seen) even when the value stays.
    let mut earlier = tx.prepare_cached(
        "UPDATE incidents SET first_seen_us = ?2 WHERE detector_id = ?1 AND first_seen_us > ?2",
    )?;
    // An incident stored under an id that the detector, restarted
    // from an older snapshot, now gives to another incident: the
    // lines that made the stored one are gone (a file deleted while
    // the daemon was down). It stays, as a fact, under a negative id
    // (minus its row id) that no detector ever uses.
    let mut detach =
        tx.prepare_cached("UPDATE incidents SET detector_id = -id WHERE detector_id = ?1")?;
    for rec in incidents {
        let id = to_i64(rec.detector_id, "detector id")?;
        let first_us = to_us(rec.first_seen)?;
        let last_us = to_us(rec.last_seen)?;
        let events = to_i64(rec.events, "event count")?;
        max_id = max_id.max(Some(id));
        // Updating first makes the common case (a known incident
        // growing) one statement and generates a uid only for new
        // ones. Matching rule and key as well catches a detector that
        // reuses an id for another incident: its insert then hits the
        // UNIQUE detector_id instead of silently merging the two.
        if update.execute(params![
            id, last_us, events, rec.open, now_us, rec.rule, rec.key
        ])? == 1
        {
            earlier.execute(params![id, first_us])?;
            updated += 1;
            continue;
        }
        if detach.execute([id])? == 1 {
            tracing::warn!(
                "incident with detector id {id} was derived from lines no longer \
                 readable; kept, and the id goes to ({}, {})",
                rec.rule,
                rec.key
            );
        }
        let uid = format!("{agency}-{}", Uuid::now_v7());
        insert_incident(tx, None, id, &uid, rec, rec.open, now_us)?;
        inserted.push((rec.detector_id, uid));
    }
    Ok(Upserted {
        inserted,
        updated,
        max_id,
    })
}

/// Writes a new incident row. `row_id`: `None` lets SQLite number it;
/// `detector_id`: the detector's id, or a negative one no detector uses.
pub(super) fn insert_incident(
    tx: &Transaction<'_>,
    row_id: Option<i64>,
    detector_id: i64,
    uid: &str,
    rec: &IncidentRecord,
    open: bool,
    now_us: i64,
) -> Result<(), StoreError> {
    let fields = serde_json::to_string(&FieldsRef(&rec.fields)).map_err(|e| {
        StoreError::Invalid(format!("fields of incident {} {}: {e}", rec.rule, rec.key))
    })?;
    tx.prepare_cached(
        "INSERT INTO incidents (id, uid, detector_id, rule, category, severity, key, src_ip,
             input, first_seen_us, last_seen_us, events, open, sample, fields,
             created_us, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
    )?
    .execute(params![
        row_id,
        uid,
        detector_id,
        rec.rule,
        rec.category,
        rec.severity,
        rec.key,
        rec.src_ip,
        rec.input,
        to_us(rec.first_seen)?,
        to_us(rec.last_seen)?,
        to_i64(rec.events, "event count")?,
        open,
        rec.sample,
        fields,
        now_us,
    ])?;
    Ok(())
}

/// Replaces the checkpoints and cursors of the batch's inputs, and records
/// the inputs as having run.
fn replace_positions(
    tx: &Transaction<'_>,
    batch: &Batch<'_>,
    now_us: i64,
) -> Result<(), StoreError> {
    let mut delete = tx.prepare_cached("DELETE FROM checkpoints WHERE input = ?1")?;
    let mut delete_cursor = tx.prepare_cached("DELETE FROM input_cursors WHERE input = ?1")?;
    let mut known =
        tx.prepare_cached("INSERT OR IGNORE INTO inputs (name, first_us) VALUES (?1, ?2)")?;
    for input in batch.inputs {
        delete.execute([input])?;
        delete_cursor.execute([input])?;
        known.execute(params![input, now_us])?;
    }
    let mut cursor = tx.prepare_cached(
        "INSERT INTO input_cursors (input, cursor, updated_us) VALUES (?1, ?2, ?3)",
    )?;
    for (input, c) in batch.cursors {
        match cursor.execute(params![input, c, now_us]) {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Invalid(format!(
                    "two cursors for input {input:?}"
                )))
            }
            other => other?,
        };
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO checkpoints (input, dev, ino, path, fingerprint_len, fingerprint,
             byte_offset, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for cp in batch.checkpoints {
        let result = insert.execute(params![
            cp.input,
            u64_bits(cp.dev),
            u64_bits(cp.ino),
            cp.path,
            to_i64(cp.fingerprint_len, "fingerprint length")?,
            &cp.fingerprint[..],
            to_i64(cp.offset, "checkpoint offset")?,
            now_us,
        ]);
        match result {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Invalid(format!(
                    "two checkpoints of input {:?} for one file (dev {}, ino {}, {})",
                    cp.input, cp.dev, cp.ino, cp.path
                )))
            }
            other => other?,
        };
    }
    Ok(())
}

/// Replaces the detector's header and appends its key rows (over all the
/// stored ones when compacting).
fn write_detector(
    tx: &Transaction<'_>,
    state: &DetectorWrite<'_>,
    now_us: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO detector_state (id, state, updated_us) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state,
             updated_us = excluded.updated_us",
    )?
    .execute(params![state.header, now_us])?;
    if state.compact {
        tx.execute("DELETE FROM detector_keys", [])?;
    }
    let mut append = tx.prepare_cached(
        "INSERT INTO detector_keys (kind, rule, key, state) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for row in state.rows {
        if state.compact && row.state.is_none() {
            continue;
        }
        append.execute(params![row.kind, row.rule, row.key, row.state])?;
    }
    Ok(())
}

/// The latest row of every detector key still there, in write order, and
/// how many rows are stored.
fn latest_rows(conn: &Connection) -> Result<(Vec<StateRow>, u64), StoreError> {
    /// (kind, rule, key) -> (seq, state) of its latest row.
    type Latest = HashMap<(u8, u32, String), (i64, Option<Vec<u8>>)>;
    let mut latest = Latest::new();
    let mut stored = 0u64;
    let mut stmt =
        conn.prepare_cached("SELECT seq, kind, rule, key, state FROM detector_keys ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        stored += 1;
        let seq: i64 = row.get(0)?;
        let kind: u8 = row.get(1)?;
        let rule: u32 = row.get(2)?;
        latest.insert((kind, rule, row.get(3)?), (seq, row.get(4)?));
    }
    let mut live: Vec<(i64, StateRow)> = latest
        .into_iter()
        .filter_map(|((kind, rule, key), (seq, state))| {
            state.map(|s| {
                let row = StateRow {
                    kind,
                    rule,
                    key,
                    state: Some(s),
                };
                (seq, row)
            })
        })
        .collect();
    live.sort_unstable_by_key(|(seq, _)| *seq);
    Ok((live.into_iter().map(|(_, r)| r).collect(), stored))
}

fn checkpoint_from_row(row: &Row<'_>) -> Result<FileCheckpoint, StoreError> {
    let fingerprint: Vec<u8> = row.get(5)?;
    let fingerprint: [u8; 32] = fingerprint.try_into().map_err(|v: Vec<u8>| {
        StoreError::Invalid(format!("stored fingerprint has {} bytes, not 32", v.len()))
    })?;
    Ok(FileCheckpoint {
        input: row.get(0)?,
        path: row.get(1)?,
        dev: bits_u64(row.get(2)?),
        ino: bits_u64(row.get(3)?),
        fingerprint_len: to_u64(row.get(4)?, "fingerprint length")?,
        fingerprint,
        offset: to_u64(row.get(6)?, "checkpoint offset")?,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::fs;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::testing::*;
    use crate::store::{incident_uid, IncidentQuery};

    #[test]
    fn detector_keys_are_their_latest_rows_and_compaction_keeps_only_those() {
        let (_dir, _path, mut store) = fresh();
        commit_rows(
            &mut store,
            &[
                row(0, 1, "10.0.0.1", Some("a1")),
                row(0, 1, "10.0.0.2", Some("b1")),
                row(1, 1, "10.0.0.1", Some("rate")),
            ],
            false,
        );
        // A key changed, one gone, one new; the same key under another
        // rule or kind is another key.
        commit_rows(
            &mut store,
            &[
                row(0, 1, "10.0.0.1", Some("a2")),
                row(0, 1, "10.0.0.2", None),
                row(0, 2, "10.0.0.1", Some("c1")),
            ],
            false,
        );
        let r = store.recovery().expect("recovery");
        assert_eq!(r.detector.as_deref(), Some(&b"h"[..]));
        assert_eq!(
            r.detector_rows,
            vec![
                row(1, 1, "10.0.0.1", Some("rate")),
                row(0, 1, "10.0.0.1", Some("a2")),
                row(0, 2, "10.0.0.1", Some("c1")),
            ]
        );
        assert_eq!(r.detector_rows_stored, 6);
        commit_rows(&mut store, &r.detector_rows, true);
        let again = store.recovery().expect("recovery");
        assert_eq!(again.detector_rows, r.detector_rows);
        assert_eq!(again.detector_rows_stored, 3);
        // A batch without detector state keeps the stored rows.
        store.commit(&Batch::default()).expect("commit");
        assert_eq!(
            store.recovery().expect("recovery").detector_rows,
            r.detector_rows
        );
    }

    #[test]
    fn inputs_are_known_once_committed_even_without_files() {
        let (_dir, path, mut store) = fresh();
        assert!(store.recovery().expect("recovery").known_inputs.is_empty());
        let inputs = strings(&["auth", "web"]);
        store
            .commit(&Batch {
                inputs: &inputs,
                checkpoints: &[cp("auth", 7, 100)],
                ..Batch::default()
            })
            .expect("commit");
        drop(store);
        let store = Store::open(&path, AGENCY).expect("reopen");
        let rec = store.recovery().expect("recovery");
        // "web" had no file: it is still an input that has run.
        assert_eq!(rec.known_inputs, inputs);
        assert_eq!(rec.checkpoints.len(), 1);
    }

    #[test]
    fn cursors_replace_per_input_and_survive_reopening() {
        let (_dir, path, mut store) = fresh();
        let inputs = strings(&["journal", "auth"]);
        let cursor = |c: &str| vec![("journal".to_string(), c.to_string())];
        for c in ["s=1;i=5", "s=1;i=9"] {
            store
                .commit(&Batch {
                    inputs: &inputs,
                    cursors: &cursor(c),
                    ..Batch::default()
                })
                .expect("commit");
        }
        drop(store);
        let mut store = Store::open(&path, AGENCY).expect("reopen");
        assert_eq!(
            store.recovery().expect("recovery").cursors,
            cursor("s=1;i=9")
        );
        // An input listed without a cursor loses it (removed, or not yet read).
        store
            .commit(&Batch {
                inputs: &inputs,
                ..Batch::default()
            })
            .expect("commit");
        assert!(store.recovery().expect("recovery").cursors.is_empty());
        let err = store
            .commit(&Batch {
                inputs: &strings(&["auth"]),
                cursors: &cursor("s=1;i=10"),
                ..Batch::default()
            })
            .expect_err("unlisted input");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let mut twice = cursor("a");
        twice.extend(cursor("b"));
        assert_invalid(
            store.commit(&Batch {
                inputs: &inputs,
                cursors: &twice,
                ..Batch::default()
            }),
            "two cursors",
        );
    }

    #[test]
    fn reopen_keeps_data() {
        let (_dir, path, mut store) = fresh();
        let incidents = [rec(1, 0, "bruteforce"), rec(2, 10, "web-attack")];
        let inputs = strings(&["auth", "nginx"]);
        let checkpoints = [cp("auth", 11, 4096), cp("nginx", 12, 77)];
        let info = store
            .commit(&Batch {
                incidents: &incidents,
                inputs: &inputs,
                checkpoints: &checkpoints,
                cursors: &[],
                detector: Some(header_only(b"detector state")),
                extra_rows: None,
            })
            .expect("commit");
        assert_eq!(info.commit, 1);
        assert_eq!(info.inserted.len(), 2);
        let before = store.incidents(&IncidentQuery::default()).expect("query");
        drop(store);

        let store = Store::open(&path, AGENCY).expect("reopen");
        assert_eq!(
            store.incidents(&IncidentQuery::default()).expect("query"),
            before
        );
        let recovery = store.recovery().expect("recovery");
        assert_eq!(recovery.checkpoints, checkpoints);
        assert_eq!(recovery.detector.as_deref(), Some(&b"detector state"[..]));
        assert_eq!(recovery.max_detector_id, Some(2));
        assert_eq!(recovery.commits, 1);
        assert_eq!(
            recovery.last_commit,
            Some(info.committed_at).map(|t| { from_us(to_us(t).expect("us")).expect("ts") })
        );
        let stored: Vec<IncidentRecord> = before.into_iter().map(|s| s.record).collect();
        assert_eq!(stored, incidents, "every field round-trips");
    }

    #[test]
    fn upsert_keeps_uid_and_sample_and_moves_first_seen_only_earlier() {
        let (_dir, _path, mut store) = fresh();
        let first = rec(7, 100, "bruteforce");
        let info = commit_incidents(&mut store, std::slice::from_ref(&first));
        let [(7, uid)] = info.inserted.as_slice() else {
            panic!("one insert expected: {info:?}");
        };
        let (prefix, uuid) = uid.split_at(AGENCY.len() + 1);
        assert_eq!(prefix, format!("{AGENCY}-"));
        let uuid = Uuid::parse_str(uuid).expect("uuid");
        assert_eq!(uuid.get_version_num(), 7);

        let mut later = first.clone();
        later.first_seen = ts(50);
        later.last_seen = ts(900);
        later.events = 250;
        later.open = false;
        later.sample = "a later line".to_owned();
        later.fields = vec![("src_ip".to_owned(), "changed".to_owned())];
        later.category = "changed".to_owned();
        let info = commit_incidents(&mut store, &[later]);
        assert_eq!((info.inserted.len(), info.updated), (0, 1));

        let stored = store.incident(uid).expect("get").expect("present");
        assert_eq!(&stored.uid, uid);
        let mut expected = first.clone();
        // A rule joining a merged incident brings its earlier first event.
        expected.first_seen = ts(50);
        expected.last_seen = ts(900);
        expected.events = 250;
        expected.open = false;
        assert_eq!(stored.record, expected);
        assert_eq!(
            store
                .incidents(&IncidentQuery::default())
                .expect("all")
                .len(),
            1
        );
        assert!(store.incident("bo-tt-tt-nope").expect("get").is_none());
    }

    #[test]
    fn uids_are_unique_and_time_ordered() {
        let (_dir, _path, mut store) = fresh();
        let incidents: Vec<_> = (1..=200).map(|i| rec(i, 0, "recon")).collect();
        let info = commit_incidents(&mut store, &incidents);
        let uids: Vec<&String> = info.inserted.iter().map(|(_, u)| u).collect();
        let mut sorted = uids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, uids, "unique and increasing in insertion order");
    }

    #[test]
    fn reused_detector_id_for_another_incident_detaches_the_old_one() {
        let (_dir, _path, mut store) = fresh();
        let info = commit_incidents(&mut store, &[rec(1, 0, "bruteforce")]);
        let old_uid = info.inserted[0].1.clone();
        let mut other = rec(1, 60, "web-attack");
        other.key = "10.9.9.9".to_owned();
        let info = commit_incidents(&mut store, &[rec(2, 1, "recon"), other.clone()]);
        assert_eq!(info.inserted.len(), 2);
        let all = store.incidents(&IncidentQuery::default()).expect("all");
        assert_eq!(all.len(), 3, "nothing stored is lost");
        let old = store.incident(&old_uid).expect("get").expect("kept");
        assert_eq!(old.record.rule, "rule-bruteforce");
        assert!(all
            .iter()
            .any(|i| i.record.detector_id == 1 && i.record.key == other.key));
        // The high-water mark still covers every id handed out.
        assert_eq!(store.recovery().expect("recovery").max_detector_id, Some(2));
    }

    #[test]
    fn checkpoints_replace_per_input() {
        let (_dir, _path, mut store) = fresh();
        let all = strings(&["auth", "nginx"]);
        store
            .commit(&Batch {
                inputs: &all,
                checkpoints: &[cp("auth", 1, 10), cp("auth", 2, 20), cp("nginx", 3, 30)],
                ..Batch::default()
            })
            .expect("first");
        // auth's file 1 was rotated away and is no longer tracked; file 2 moved on.
        let auth = strings(&["auth"]);
        store
            .commit(&Batch {
                inputs: &auth,
                checkpoints: &[cp("auth", 2, 25), cp("auth", 4, 0)],
                ..Batch::default()
            })
            .expect("second");
        assert_eq!(
            store.recovery().expect("recovery").checkpoints,
            [cp("auth", 2, 25), cp("auth", 4, 0), cp("nginx", 3, 30)]
        );
        // An input listed without checkpoints loses them all (input removed).
        let nginx = strings(&["nginx"]);
        store
            .commit(&Batch {
                inputs: &nginx,
                ..Batch::default()
            })
            .expect("third");
        assert_eq!(
            store.recovery().expect("recovery").checkpoints,
            [cp("auth", 2, 25), cp("auth", 4, 0)]
        );
        // Identities outside i64 round-trip.
        let mut big = cp("nginx", u64::MAX, u64::MAX >> 1);
        big.dev = u64::MAX - 1;
        store
            .commit(&Batch {
                inputs: &nginx,
                checkpoints: std::slice::from_ref(&big),
                ..Batch::default()
            })
            .expect("big");
        assert!(store
            .recovery()
            .expect("recovery")
            .checkpoints
            .contains(&big));
    }

    #[test]
    fn checkpoint_of_unlisted_input_is_refused() {
        let (_dir, path, mut store) = fresh();
        let before = dump(&path);
        let auth = strings(&["auth"]);
        let err = store
            .commit(&Batch {
                incidents: &[rec(1, 0, "bruteforce")],
                inputs: &auth,
                checkpoints: &[cp("auth", 1, 10), cp("nginx", 3, 30)],
                cursors: &[],
                detector: None,
                extra_rows: None,
            })
            .expect_err("must fail");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert_eq!(dump(&path), before);
    }

    /// A commit that fails midway (the 600th incident of 1000 reuses an id,
    /// or two checkpoints name one file, both after incidents were written)
    /// leaves every table exactly as it was; the corrected batch then lands.
    #[test]
    fn failed_commit_changes_nothing() {
        let (_dir, path, mut store) = fresh();
        let auth = strings(&["auth"]);
        store
            .commit(&Batch {
                incidents: &[rec(1, 0, "bruteforce")],
                inputs: &auth,
                checkpoints: &[cp("auth", 1, 100)],
                cursors: &[],
                detector: Some(header_only(b"v1")),
                extra_rows: None,
            })
            .expect("first");
        let before = dump(&path);
        let recovery_before = store.recovery().expect("recovery");

        let mut incidents: Vec<_> = (2..=1001).map(|i| rec(i, i as i64, "recon")).collect();
        // Unstorable (beyond i64), found only after 600 incidents are written.
        incidents[600].events = u64::MAX;
        let checkpoints = [cp("auth", 1, 5000)];
        let base = Batch {
            incidents: &[],
            inputs: &auth,
            checkpoints: &checkpoints,
            cursors: &[],
            detector: Some(header_only(b"v2")),
            extra_rows: None,
        };
        let err = store
            .commit(&Batch {
                incidents: &incidents,
                ..base
            })
            .expect_err("out of range");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(dump(&path), before);
        assert_eq!(store.recovery().expect("recovery"), recovery_before);
        assert!(store.conn.is_autocommit(), "no transaction left open");

        incidents[600].events = 3;
        let dup = [cp("auth", 1, 5000), cp("auth", 1, 6000)];
        let batch = Batch {
            incidents: &incidents,
            ..base
        };
        assert_invalid(
            store.commit(&Batch {
                checkpoints: &dup,
                ..batch
            }),
            "two checkpoints",
        );
        assert_eq!(dump(&path), before);

        let info = store.commit(&batch).expect("corrected batch");
        assert_eq!((info.inserted.len(), info.updated), (1000, 0));
        let recovery = store.recovery().expect("recovery");
        assert_eq!(recovery.checkpoints, checkpoints);
        assert_eq!(recovery.detector.as_deref(), Some(&b"v2"[..]));
        assert_eq!(recovery.commits, 2);
    }

    /// SQLITE_FULL, simulated with max_page_count (SQLite's own cap on the
    /// file's size), is reported as DiskFull, changes nothing, and the same
    /// batch lands once there is room.
    #[test]
    fn disk_full_is_reported_and_changes_nothing() {
        let (_dir, path, mut store) = fresh();
        commit_incidents(&mut store, &[rec(1, 0, "malware")]);
        let before = dump(&path);
        let pages: i64 = store
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .expect("page_count");
        store
            .conn
            .pragma_update(None, "max_page_count", pages + 2)
            .expect("cap");
        let incidents: Vec<_> = (2..=50).map(|i| rec(i, i as i64, "malware")).collect();
        let blob = vec![7_u8; 256 * 1024];
        let batch = Batch {
            incidents: &incidents,
            detector: Some(header_only(&blob)),
            ..Batch::default()
        };
        let err = store.commit(&batch).expect_err("full");
        assert!(matches!(err, StoreError::DiskFull(_)), "{err}");
        assert!(err.is_retryable());
        assert_eq!(dump(&path), before);

        store
            .conn
            .pragma_update(None, "max_page_count", 1_i64 << 30)
            .expect("uncap");
        store.commit(&batch).expect("retry");
        assert_eq!(store.recovery().expect("recovery").detector, Some(blob));
    }

    /// Another connection holding the write lock makes a commit fail with
    /// Busy after the busy timeout, without a trace; readers still read.
    #[test]
    fn locked_database_is_busy() {
        let (_dir, path, mut store) = fresh();
        commit_incidents(&mut store, &[rec(1, 0, "dos")]);
        let before = dump(&path);
        store
            .set_busy_timeout(Duration::from_millis(50))
            .expect("timeout");

        let other = Connection::open(&path).expect("other");
        other
            .execute_batch("BEGIN EXCLUSIVE; UPDATE meta SET agency = 'other' WHERE id = 1;")
            .expect("lock");
        let incidents = [rec(2, 1, "dos")];
        let auth = strings(&["auth"]);
        let batch = Batch {
            incidents: &incidents,
            inputs: &auth,
            checkpoints: &[cp("auth", 1, 1)],
            cursors: &[],
            detector: Some(header_only(b"x")),
            extra_rows: None,
        };
        let started = Instant::now();
        let err = store.commit(&batch).expect_err("busy");
        assert!(matches!(err, StoreError::Busy(_)), "{err}");
        assert!(err.is_retryable());
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "waited for the lock"
        );

        // WAL: a reader is not blocked by the writer's lock.
        let reader = Store::open_read(&path).expect("reader");
        assert_eq!(
            reader
                .incidents(&IncidentQuery::default())
                .expect("read")
                .len(),
            1
        );

        other.execute_batch("ROLLBACK").expect("release");
        assert_eq!(dump(&path), before);
        store.commit(&batch).expect("retry after release");
        assert_eq!(
            reader
                .incidents(&IncidentQuery::default())
                .expect("read")
                .len(),
            2
        );
    }

    /// Another module's rows see the incidents of their own batch, and a
    /// failure of theirs takes the whole batch back: stored exactly once,
    /// together, or not at all.
    #[test]
    fn extra_rows_commit_with_their_batch_or_not_at_all() {
        #[derive(Debug, Default)]
        struct Probe {
            fail: bool,
            seen_uid: RefCell<Option<String>>,
        }
        impl BatchRows for Probe {
            fn write(&self, tx: &Transaction<'_>, _now_us: i64) -> Result<(), StoreError> {
                *self.seen_uid.borrow_mut() = incident_uid(tx, 1)?;
                tx.execute("UPDATE meta SET agency = 'probed' WHERE id = 1", [])?;
                if self.fail {
                    return Err(StoreError::Invalid("probe failed".to_owned()));
                }
                Ok(())
            }
        }
        let (_dir, path, mut store) = fresh();
        let before = dump(&path);
        let incidents = [rec(1, 0, "deface")];
        let failing = Probe {
            fail: true,
            ..Probe::default()
        };
        let err = store
            .commit(&Batch {
                incidents: &incidents,
                extra_rows: Some(&failing),
                ..Batch::default()
            })
            .expect_err("the probe fails");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(
            failing.seen_uid.borrow().is_some(),
            "the incidents are written before the extra rows"
        );
        assert_eq!(dump(&path), before);

        let probe = Probe::default();
        let info = store
            .commit(&Batch {
                incidents: &incidents,
                extra_rows: Some(&probe),
                ..Batch::default()
            })
            .expect("commit");
        assert_eq!(
            probe.seen_uid.borrow().as_deref(),
            Some(info.inserted[0].1.as_str())
        );
        let agency: String = store
            .conn
            .query_row("SELECT agency FROM meta", [], |r| r.get(0))
            .expect("agency");
        assert_eq!(agency, "probed");
    }

    #[test]
    fn max_detector_id_is_a_high_water_mark() {
        let (_dir, _path, mut store) = fresh();
        commit_incidents(&mut store, &[rec(5, 0, "recon")]);
        commit_incidents(&mut store, &[rec(3, 0, "recon")]);
        store.commit(&Batch::default()).expect("empty batch");
        let recovery = store.recovery().expect("recovery");
        assert_eq!(recovery.max_detector_id, Some(5));
        assert_eq!(recovery.commits, 3);
        let err = store
            .commit(&Batch {
                incidents: &[rec(u64::MAX, 0, "recon")],
                ..Batch::default()
            })
            .expect_err("out of range");
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }

    /// Prints commit times (run with --nocapture); asserts nothing about them.
    #[test]
    fn commit_timing() {
        let (_dir, path, mut store) = fresh();
        let inputs = strings(&["auth", "nginx", "apache"]);
        let checkpoints = [
            cp("auth", 1, 10),
            cp("nginx", 2, 20),
            cp("apache", 3, 30),
            cp("auth", 4, 0),
        ];
        let blob: Vec<u8> = (0..1_048_576_u32).map(|i| (i % 251) as u8).collect();
        let mut report = Vec::new();
        for sync in ["FULL", "NORMAL"] {
            store
                .conn
                .pragma_update(None, "synchronous", sync)
                .expect("sync");
            let base = if sync == "FULL" { 0 } else { 1_000_000 };
            let mut insert_ms = Vec::new();
            let mut update_ms = Vec::new();
            for round in 0..5_u64 {
                let mut incidents: Vec<_> = (1..=1000)
                    .map(|i| {
                        let id = base + round * 1000 + i;
                        IncidentRecord {
                            key: format!("key-{id}"),
                            ..rec(id, i as i64, "bruteforce")
                        }
                    })
                    .collect();
                let batch = Batch {
                    incidents: &[],
                    inputs: &inputs,
                    checkpoints: &checkpoints,
                    cursors: &[],
                    detector: Some(header_only(&blob)),
                    extra_rows: None,
                };
                let mut timed_commit = |incidents: &[IncidentRecord], ms: &mut Vec<f64>| {
                    let started = Instant::now();
                    let info = store.commit(&Batch { incidents, ..batch }).expect("commit");
                    ms.push(started.elapsed().as_secs_f64() * 1e3);
                    info
                };
                let info = timed_commit(&incidents, &mut insert_ms);
                assert_eq!(info.inserted.len(), 1000);
                for r in &mut incidents {
                    r.events += 10;
                    r.last_seen = ts(99_999);
                }
                let info = timed_commit(&incidents, &mut update_ms);
                assert_eq!(info.updated, 1000);
            }
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|ms| format!("{ms:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            report.push(format!(
                "synchronous={sync}: 1000 new incidents + 4 checkpoints + 1 MiB blob: [{}] ms; \
                 1000 updated + same: [{}] ms",
                fmt(&insert_ms),
                fmt(&update_ms)
            ));
        }
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "commit timing ({} build, db {} KiB):\n  {}",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            size / 1024,
            report.join("\n  ")
        );
    }
}
