//! Backfill: the incidents of one imported file and the record of its
//! import, so that the same content is never imported twice.

use jiff::Timestamp;
use rusqlite::{params, Row, TransactionBehavior};
use uuid::Uuid;

use super::commit::insert_incident;
use super::values::{from_us, to_i64, to_u64, to_us};
use super::{IncidentRecord, Store, StoreError};

/// One file's incidents for [`Store::import`].
#[derive(Clone, Copy, Debug)]
pub struct ImportFile<'a> {
    /// SHA-256 of the file's content, decompressed: its identity.
    pub digest: [u8; 32],
    /// Decompressed bytes.
    pub bytes: u64,
    pub path: &'a str,
    pub input_type: &'a str,
    pub input: Option<&'a str>,
    pub lines: u64,
    /// The digest of the rule set the file was analysed with.
    pub rules: &'a str,
    /// Closed incidents; `detector_id` and `open` are ignored.
    pub incidents: &'a [IncidentRecord],
}

/// An earlier import, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRecord {
    pub bytes: u64,
    pub path: String,
    pub input_type: String,
    pub input: Option<String>,
    pub lines: u64,
    pub incidents: u64,
    pub rules: String,
    pub imported_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Stored {
        incidents: usize,
    },
    /// The same content was imported before; nothing was written.
    AlreadyImported(ImportRecord),
}

impl Store {
    /// Whether some import recorded a file of exactly `bytes` decompressed
    /// bytes (the table is small: one row per imported file).
    pub fn imports_with_size(&self, bytes: u64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM imports WHERE bytes = ?1)")?
            .query_row([to_i64(bytes, "byte count")?], |r| r.get(0))?)
    }

    /// The import of the file whose decompressed content has this SHA-256.
    pub fn import_of(&self, digest: &[u8; 32]) -> Result<Option<ImportRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE digest = ?1"
        ))?;
        let mut rows = stmt.query([&digest[..]])?;
        match rows.next()? {
            Some(row) => Ok(Some(import_from_row(row)?)),
            None => Ok(None),
        }
    }

    /// Stores the incidents of one imported file and the record of its
    /// import in one `IMMEDIATE` transaction, unless a file with the same
    /// digest was imported before (by this or a concurrent import): then
    /// nothing is written and that earlier import comes back.
    ///
    /// Imported incidents are closed facts that no detector will ever grow:
    /// each is stored under the negative of its own row id as detector id,
    /// the space [`Store::commit`] already uses for incidents detached from
    /// the detector. The daemon only ever updates positive ids and numbers
    /// its own above `max_detector_id`, which imports leave alone, so an
    /// import running beside the daemon can neither collide with nor
    /// overwrite the daemon's rows. Row ids are assigned here, under the
    /// write lock, so they cannot race either.
    pub fn import(&mut self, file: &ImportFile<'_>) -> Result<ImportOutcome, StoreError> {
        let Store { conn, agency, .. } = self;
        let agency = agency.as_deref().ok_or(StoreError::ReadOnly)?;
        let now_us = to_us(Timestamp::now())?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = tx
            .prepare_cached(&format!(
                "SELECT {IMPORT_COLUMNS} FROM imports WHERE digest = ?1"
            ))?
            .query_map([&file.digest[..]], |row| Ok(import_from_row(row)))?
            .next()
            .transpose()?
            .transpose()?;
        if let Some(earlier) = existing {
            return Ok(ImportOutcome::AlreadyImported(earlier));
        }
        let mut next_id: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM incidents")?
            .query_row([], |r| r.get(0))?;
        let first_id = next_id;
        for rec in file.incidents {
            let uid = format!("{agency}-{}", Uuid::now_v7());
            insert_incident(&tx, Some(next_id), -next_id, &uid, rec, false, now_us)?;
            next_id += 1;
        }
        let ids = (!file.incidents.is_empty()).then_some((first_id, next_id - 1));
        tx.prepare_cached(
            "INSERT INTO imports (digest, bytes, path, input_type, input, lines, incidents,
                 first_id, last_id, rules, imported_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            &file.digest[..],
            to_i64(file.bytes, "byte count")?,
            file.path,
            file.input_type,
            file.input,
            to_i64(file.lines, "line count")?,
            to_i64(file.incidents.len() as u64, "incident count")?,
            ids.map(|(a, _)| a),
            ids.map(|(_, b)| b),
            file.rules,
            now_us,
        ])?;
        tx.commit()?;
        Ok(ImportOutcome::Stored {
            incidents: file.incidents.len(),
        })
    }
}

/// An import as `canhgac import --list` shows it: its id (the first 16 hex
/// digits of the content's SHA-256), the record, and the span of its
/// incidents' first events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportListing {
    pub id: String,
    pub record: ImportRecord,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
}

/// Hex digits of the digest that name an import.
const IMPORT_ID_LEN: usize = 16;

impl Store {
    /// Every import, oldest first.
    pub fn imports(&self) -> Result<Vec<ImportListing>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {IMPORT_COLUMNS}, digest,
                 (SELECT MIN(first_seen_us) FROM incidents WHERE id BETWEEN first_id AND last_id),
                 (SELECT MAX(first_seen_us) FROM incidents WHERE id BETWEEN first_id AND last_id)
             FROM imports ORDER BY imported_us"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let digest: Vec<u8> = row.get(8)?;
            out.push(ImportListing {
                id: hex(&digest)[..IMPORT_ID_LEN].to_owned(),
                record: import_from_row(row)?,
                first_seen: row.get::<_, Option<i64>>(9)?.map(from_us).transpose()?,
                last_seen: row.get::<_, Option<i64>>(10)?.map(from_us).transpose()?,
            });
        }
        Ok(out)
    }

    /// Removes the import `id` names (its id or a longer prefix of its
    /// digest, at least 8 hex digits) and every incident it stored, with
    /// what analysts said of them, in one transaction, so that a corrected
    /// import of the same file can follow. Returns the import removed and
    /// how many incidents went; `Ok(None)` when no import has that id.
    pub fn forget_import(&mut self, id: &str) -> Result<Option<(ImportRecord, u64)>, StoreError> {
        let id = id.to_ascii_lowercase();
        if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!(
                "import id {id:?}: expected at least 8 hex digits, as `canhgac import --list` shows"
            )));
        }
        self.write_transaction(|tx| {
            let mut matches = Vec::new();
            {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {IMPORT_COLUMNS}, digest, first_id, last_id FROM imports"
                ))?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let digest: Vec<u8> = row.get(8)?;
                    if hex(&digest).starts_with(&id) {
                        let range: (Option<i64>, Option<i64>) = (row.get(9)?, row.get(10)?);
                        matches.push((import_from_row(row)?, digest, range));
                    }
                }
            }
            let (record, digest, range) = match matches.len() {
                0 => return Ok(None),
                1 => matches.remove(0),
                n => {
                    return Err(StoreError::Invalid(format!(
                        "import id {id:?} names {n} imports: give more of it"
                    )))
                }
            };
            let mut removed = 0u64;
            if let (Some(first), Some(last)) = range {
                // Statuses first: a false positive's trigger puts it back
                // into the tally, from which deleting the incident takes it.
                tx.execute(
                    "DELETE FROM incident_status WHERE incident BETWEEN ?1 AND ?2",
                    params![first, last],
                )?;
                tx.execute(
                    "DELETE FROM incident_history WHERE incident BETWEEN ?1 AND ?2",
                    params![first, last],
                )?;
                removed = to_u64(
                    tx.execute(
                        "DELETE FROM incidents WHERE id BETWEEN ?1 AND ?2 AND detector_id < 0",
                        params![first, last],
                    )? as i64,
                    "incident count",
                )?;
            }
            tx.execute("DELETE FROM imports WHERE digest = ?1", [&digest])?;
            Ok(Some((record, removed)))
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const IMPORT_COLUMNS: &str = "bytes, path, input_type, input, lines, incidents, rules, imported_us";

fn import_from_row(row: &Row<'_>) -> Result<ImportRecord, StoreError> {
    Ok(ImportRecord {
        bytes: to_u64(row.get(0)?, "byte count")?,
        path: row.get(1)?,
        input_type: row.get(2)?,
        input: row.get(3)?,
        lines: to_u64(row.get(4)?, "line count")?,
        incidents: to_u64(row.get(5)?, "incident count")?,
        rules: row.get(6)?,
        imported_at: from_us(row.get(7)?)?,
    })
}
