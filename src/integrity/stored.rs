//! The web-root integrity rows: baselines, flags (changes raised and not
//! accepted) and the log of `canhgac integrity accept`.
//!
//! Integrity owns its rows: the SQL that reads and writes them, and the
//! types they become, live here, and the store knows them only as tables
//! of its schema (migration v6, in the store's one numbered sequence, so a
//! database is upgraded in one place). What this needs of the store is
//! generic: a connection to read, a write transaction, a batch's
//! [`BatchRows`], its value conversions and the uid of an incident. The
//! store names no integrity type, so neither module needs the other to be
//! understood first, and integrity depends on the store, never the reverse.
//!
//! Baseline and flag changes arrive in the daemon's batches
//! ([`Batch::extra_rows`](crate::store::Batch::extra_rows)), written in the
//! same transaction as the incidents they belong to: a change is either
//! raised and flagged, or neither, also across a crash.

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::fsstate::FileState;
use super::root::{Entry, StoredSettings};
use super::{ChangeClass, ChangeKind, Flag};
use crate::store::{
    bits_u64, from_us, incident_uid, to_i64, to_u64, to_us, u64_bits, BatchRows, Store, StoreError,
};

/// A change to the integrity tables, as the daemon's batch carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrityOp {
    /// The root's baseline is complete under these settings.
    Root {
        root: String,
        settings: StoredSettings,
    },
    /// Forget everything of the root (its path changed).
    Reset { root: String },
    /// The file's accepted state; any flag goes.
    Baseline {
        root: String,
        path: Vec<u8>,
        state: FileState,
    },
    /// The file is no longer known (removed during a deploy, or no longer
    /// watched).
    Forget { root: String, path: Vec<u8> },
    /// A raised change (or the new stat of a flagged file whose content did
    /// not change). `incident`: the detector id of the incident raising it
    /// (`None` keeps the stored one). Not stored when the baseline already
    /// holds that state (accepted meanwhile).
    Flag {
        root: String,
        path: Vec<u8>,
        flag: Flag,
        incident: Option<u64>,
    },
}

/// A flag as `canhgac integrity status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagRow {
    pub root: String,
    pub path: Vec<u8>,
    pub flag: Flag,
    pub incident_uid: Option<String>,
    pub flagged_at: Timestamp,
}

/// One `integrity accept`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptRow {
    pub seq: i64,
    pub root: String,
    pub path: Vec<u8>,
}

/// What an accept changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptInfo {
    pub baselined: usize,
    pub forgotten: usize,
    pub unflagged: usize,
}

fn state_params(s: &FileState) -> Result<(bool, i64, i64, i64, i64), StoreError> {
    Ok((
        s.link,
        to_i64(s.size, "file size")?,
        s.mtime_ns,
        s.ctime_ns,
        u64_bits(s.ino),
    ))
}

/// `col` is the index of `link`; size, mtime, ctime, ino, sha256 and
/// signature follow it.
fn state_from_row(row: &Row<'_>, col: usize) -> Result<FileState, StoreError> {
    let sha: Option<Vec<u8>> = row.get(col + 5)?;
    let sha256 = match sha {
        Some(v) => Some(<[u8; 32]>::try_from(v.as_slice()).map_err(|_| {
            StoreError::Invalid(format!("stored SHA-256 has {} bytes, not 32", v.len()))
        })?),
        None => None,
    };
    Ok(FileState {
        link: row.get(col)?,
        size: to_u64(row.get(col + 1)?, "file size")?,
        mtime_ns: row.get(col + 2)?,
        ctime_ns: row.get(col + 3)?,
        ino: bits_u64(row.get(col + 4)?),
        sha256,
        signature: row.get(col + 6)?,
    })
}

fn flag_from_row(row: &Row<'_>, col: usize) -> Result<Flag, StoreError> {
    let kind: String = row.get(col)?;
    let class: String = row.get(col + 1)?;
    let present: bool = row.get(col + 2)?;
    Ok(Flag {
        kind: kind
            .parse::<ChangeKind>()
            .map_err(|_| StoreError::Invalid(format!("stored change kind {kind:?}")))?,
        class: class
            .parse::<ChangeClass>()
            .map_err(|_| StoreError::Invalid(format!("stored change class {class:?}")))?,
        state: if present {
            Some(state_from_row(row, col + 3)?)
        } else {
            None
        },
    })
}

/// `path >= prefix AND path < prefix + 1` for BLOBs: everything below
/// `prefix/` (and `prefix` itself is tested apart).
fn below_bounds(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = prefix.to_vec();
    lo.push(b'/');
    let mut hi = prefix.to_vec();
    hi.push(b'/' + 1);
    (lo, hi)
}

const ENTRY_SELECT: &str = "
    SELECT p.path, f.link, f.size, f.mtime_ns, f.ctime_ns, f.ino, f.sha256, f.signature,
           g.kind, g.class, g.present, g.link, g.size, g.mtime_ns, g.ctime_ns, g.ino,
           g.sha256, g.signature
    FROM (SELECT path FROM integrity_files WHERE root = ?1 AND (?2 OR path = ?3 OR (path >= ?4 AND path < ?5))
          UNION
          SELECT path FROM integrity_flags WHERE root = ?1 AND (?2 OR path = ?3 OR (path >= ?4 AND path < ?5))) p
    LEFT JOIN integrity_files f ON f.root = ?1 AND f.path = p.path
    LEFT JOIN integrity_flags g ON g.root = ?1 AND g.path = p.path
    ORDER BY p.path";

/// The stored settings of a web root's baseline, if it has one.
pub fn settings(store: &Store, root: &str) -> Result<Option<StoredSettings>, StoreError> {
    let json: Option<String> = store
        .connection()
        .prepare_cached("SELECT settings FROM integrity_roots WHERE name = ?1")?
        .query_row([root], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::Invalid(format!("stored settings of web root {root}: {e}")))
    })
    .transpose()
}

/// Everything known under `prefix` (all of the root when empty).
pub fn entries(
    store: &Store,
    root: &str,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, Entry)>, StoreError> {
    let (lo, hi) = below_bounds(prefix);
    let mut stmt = store.connection().prepare_cached(ENTRY_SELECT)?;
    let mut rows = stmt.query(params![root, prefix.is_empty(), prefix, lo, hi])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let path: Vec<u8> = row.get(0)?;
        let has_file: Option<bool> = row.get(1)?;
        let has_flag: Option<String> = row.get(8)?;
        out.push((
            path,
            Entry {
                baseline: has_file.map(|_| state_from_row(row, 1)).transpose()?,
                flag: has_flag.map(|_| flag_from_row(row, 8)).transpose()?,
            },
        ));
    }
    Ok(out)
}

/// The flags of one web root, or of all.
pub fn flags(store: &Store, root: Option<&str>) -> Result<Vec<FlagRow>, StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT root, path, incident_uid, flagged_us, kind, class, present, link, size,
                mtime_ns, ctime_ns, ino, sha256, signature
         FROM integrity_flags WHERE ?1 IS NULL OR root = ?1 ORDER BY root, path",
    )?;
    let mut rows = stmt.query([root])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(FlagRow {
            root: row.get(0)?,
            path: row.get(1)?,
            incident_uid: row.get(2)?,
            flagged_at: from_us(row.get(3)?)?,
            flag: flag_from_row(row, 4)?,
        });
    }
    Ok(out)
}

/// The accepts after `seq`, oldest first.
pub fn accepts_after(store: &Store, seq: i64) -> Result<Vec<AcceptRow>, StoreError> {
    let mut stmt = store.connection().prepare_cached(
        "SELECT seq, root, path FROM integrity_accepts WHERE seq > ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([seq], |r| {
        Ok(AcceptRow {
            seq: r.get(0)?,
            root: r.get(1)?,
            path: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest accept's sequence number (0 before any).
pub fn last_accept(store: &Store) -> Result<i64, StoreError> {
    Ok(store
        .connection()
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM integrity_accepts")?
        .query_row([], |r| r.get(0))?)
}

/// `canhgac integrity accept`: makes `states` (every watched file under
/// `prefix` as it is now) the baseline under `prefix`, forgets known
/// files there that are gone, drops the flags there, and logs the accept
/// for the daemon, in one transaction.
pub fn accept(
    store: &mut Store,
    root: &str,
    prefix: &[u8],
    states: &[(Vec<u8>, FileState)],
) -> Result<AcceptInfo, StoreError> {
    let now_us = to_us(Timestamp::now())?;
    store.write_transaction(|tx| {
        let (lo, hi) = below_bounds(prefix);
        let scope = "root = ?1 AND (?2 OR path = ?3 OR (path >= ?4 AND path < ?5))";
        let scope_params = params![root, prefix.is_empty(), prefix, lo, hi];
        let before: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM integrity_files WHERE {scope}"),
            scope_params,
            |r| r.get(0),
        )?;
        let unflagged = tx.execute(
            &format!("DELETE FROM integrity_flags WHERE {scope}"),
            scope_params,
        )?;
        tx.execute(
            &format!("DELETE FROM integrity_files WHERE {scope}"),
            scope_params,
        )?;
        for (path, state) in states {
            upsert_baseline(tx, root, path, state, now_us)?;
        }
        let forgotten = usize::try_from(before)
            .unwrap_or(0)
            .saturating_sub(states.len());
        tx.execute(
            "INSERT INTO integrity_accepts (root, path, files, unflagged, accepted_us)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                root,
                prefix,
                to_i64(states.len() as u64, "file count")?,
                to_i64(unflagged as u64, "flag count")?,
                now_us
            ],
        )?;
        Ok(AcceptInfo {
            baselined: states.len(),
            forgotten,
            unflagged,
        })
    })
}

fn upsert_baseline(
    tx: &Transaction<'_>,
    root: &str,
    path: &[u8],
    s: &FileState,
    now_us: i64,
) -> Result<(), StoreError> {
    let (link, size, mtime, ctime, ino) = state_params(s)?;
    tx.prepare_cached(
        "INSERT INTO integrity_files (root, path, link, size, mtime_ns, ctime_ns, ino, sha256,
             signature, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (root, path) DO UPDATE SET link = excluded.link, size = excluded.size,
             mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, ino = excluded.ino,
             sha256 = excluded.sha256, signature = excluded.signature,
             updated_us = excluded.updated_us",
    )?
    .execute(params![
        root,
        path,
        link,
        size,
        mtime,
        ctime,
        ino,
        s.sha256.as_ref().map(|h| &h[..]),
        s.signature,
        now_us
    ])?;
    Ok(())
}

/// A batch's integrity operations, applied after its incidents are in
/// (a flag names the incident that raised it by detector id).
impl BatchRows for Vec<IntegrityOp> {
    fn write(&self, tx: &Transaction<'_>, now_us: i64) -> Result<(), StoreError> {
        self.iter().try_for_each(|op| apply(tx, op, now_us))
    }
}

fn apply(tx: &Transaction<'_>, op: &IntegrityOp, now_us: i64) -> Result<(), StoreError> {
    match op {
        IntegrityOp::Root { root, settings } => {
            let json = serde_json::to_string(settings)
                .map_err(|e| StoreError::Invalid(format!("settings of {root}: {e}")))?;
            tx.prepare_cached(
                "INSERT INTO integrity_roots (name, settings, baselined_us, updated_us)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET settings = excluded.settings,
                     updated_us = excluded.updated_us",
            )?
            .execute(params![root, json, now_us])?;
        }
        IntegrityOp::Reset { root } => {
            for sql in [
                "DELETE FROM integrity_files WHERE root = ?1",
                "DELETE FROM integrity_flags WHERE root = ?1",
                "DELETE FROM integrity_roots WHERE name = ?1",
            ] {
                tx.execute(sql, [root])?;
            }
        }
        IntegrityOp::Baseline { root, path, state } => {
            upsert_baseline(tx, root, path, state, now_us)?;
            tx.prepare_cached("DELETE FROM integrity_flags WHERE root = ?1 AND path = ?2")?
                .execute(params![root, path])?;
        }
        IntegrityOp::Forget { root, path } => {
            for sql in [
                "DELETE FROM integrity_files WHERE root = ?1 AND path = ?2",
                "DELETE FROM integrity_flags WHERE root = ?1 AND path = ?2",
            ] {
                tx.prepare_cached(sql)?.execute(params![root, path])?;
            }
        }
        IntegrityOp::Flag {
            root,
            path,
            flag,
            incident,
        } => {
            // Accepted meanwhile (`integrity accept` hashed the same
            // content): the baseline already says it, no flag.
            let baseline: Option<FileState> = tx
                .prepare_cached(
                    "SELECT link, size, mtime_ns, ctime_ns, ino, sha256, signature
                     FROM integrity_files WHERE root = ?1 AND path = ?2",
                )?
                .query_row(params![root, path], |r| Ok(state_from_row(r, 0)))
                .optional()?
                .transpose()?;
            let accepted = match (&baseline, &flag.state) {
                (Some(b), Some(s)) => b.same_content(s),
                (None, None) => true,
                _ => false,
            };
            if accepted {
                return Ok(());
            }
            let uid = match incident {
                Some(id) => incident_uid(tx, *id)?,
                None => None,
            };
            let s = flag.state.as_ref();
            let p = s.map(state_params).transpose()?;
            tx.prepare_cached(
                "INSERT INTO integrity_flags (root, path, kind, class, present, link, size,
                     mtime_ns, ctime_ns, ino, sha256, signature, incident_uid, flagged_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (root, path) DO UPDATE SET kind = excluded.kind,
                     class = excluded.class, present = excluded.present,
                     link = excluded.link, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
                     ino = excluded.ino, sha256 = excluded.sha256,
                     signature = excluded.signature,
                     incident_uid = COALESCE(excluded.incident_uid, incident_uid),
                     flagged_us = CASE WHEN excluded.incident_uid IS NULL
                         THEN flagged_us ELSE excluded.flagged_us END",
            )?
            .execute(params![
                root,
                path,
                flag.kind.id(),
                flag.class.id(),
                s.is_some(),
                p.map(|p| p.0),
                p.map(|p| p.1),
                p.map(|p| p.2),
                p.map(|p| p.3),
                p.map(|p| p.4),
                s.and_then(|s| s.sha256.as_ref().map(|h| h.to_vec())),
                s.and_then(|s| s.signature.clone()),
                uid,
                now_us
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, IncidentRecord};

    fn state(size: u64, sha: u8) -> FileState {
        FileState {
            link: false,
            size,
            mtime_ns: 1,
            ctime_ns: 1,
            ino: 7,
            sha256: Some([sha; 32]),
            signature: None,
        }
    }

    fn incident(events: u64) -> IncidentRecord {
        IncidentRecord {
            detector_id: 1,
            rule: "integrity-deface".to_owned(),
            category: "deface".to_owned(),
            severity: "high".to_owned(),
            key: "www".to_owned(),
            src_ip: None,
            input: None,
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            events,
            open: false,
            sample: "index.html".to_owned(),
            fields: Vec::new(),
        }
    }

    /// A flag is stored with the incident it names, in one commit, or not
    /// at all; accepting the change takes the flag back.
    #[test]
    fn flags_commit_with_their_incident_and_go_on_accept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("canhgac.db");
        let mut store = Store::open(&path, "test").expect("open");
        let www = || "www".to_owned();
        let index = || b"index.html".to_vec();
        let settings_www = StoredSettings {
            path: "/srv/www".to_owned(),
            include: Vec::new(),
            exclude: Vec::new(),
        };
        let baseline = vec![
            IntegrityOp::Root {
                root: www(),
                settings: settings_www.clone(),
            },
            IntegrityOp::Baseline {
                root: www(),
                path: index(),
                state: state(10, 1),
            },
        ];
        store
            .commit(&Batch {
                extra_rows: Some(&baseline),
                ..Batch::default()
            })
            .expect("baseline");
        let raised = Flag {
            kind: ChangeKind::Modified,
            class: ChangeClass::Index,
            state: Some(state(11, 2)),
        };
        let flag = vec![IntegrityOp::Flag {
            root: www(),
            path: index(),
            flag: raised.clone(),
            incident: Some(1),
        }];

        // The incident cannot be stored: its flag is not stored either.
        store
            .commit(&Batch {
                incidents: &[incident(u64::MAX)],
                extra_rows: Some(&flag),
                ..Batch::default()
            })
            .expect_err("event count out of range");
        assert!(flags(&store, None).expect("flags").is_empty());

        let info = store
            .commit(&Batch {
                incidents: &[incident(1)],
                extra_rows: Some(&flag),
                ..Batch::default()
            })
            .expect("commit");
        let stored = flags(&store, Some("www")).expect("flags");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].flag, raised);
        assert_eq!(
            stored[0].incident_uid.as_deref(),
            Some(info.inserted[0].1.as_str())
        );
        assert_eq!(
            settings(&store, "www").expect("settings"),
            Some(settings_www)
        );
        assert_eq!(
            entries(&store, "www", b"").expect("entries"),
            [(
                index(),
                Entry {
                    baseline: Some(state(10, 1)),
                    flag: Some(raised),
                }
            )]
        );

        let accepted = accept(&mut store, "www", b"", &[(index(), state(11, 2))]).expect("accept");
        assert_eq!(
            accepted,
            AcceptInfo {
                baselined: 1,
                forgotten: 0,
                unflagged: 1,
            }
        );
        assert!(flags(&store, None).expect("flags").is_empty());
        assert_eq!(last_accept(&store).expect("last accept"), 1);
        assert_eq!(
            accepts_after(&store, 0).expect("accepts"),
            [AcceptRow {
                seq: 1,
                root: www(),
                path: Vec::new(),
            }]
        );
        let mut reader = Store::open_read(&path).expect("reader");
        assert!(matches!(
            accept(&mut reader, "www", b"", &[]),
            Err(StoreError::ReadOnly)
        ));
    }
}
