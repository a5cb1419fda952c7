//! The schema: one numbered sequence of migrations for every table in the
//! database, and the header checks that keep us out of files we do not own.
//!
//! `PRAGMA user_version` holds the number of [`MIGRATIONS`] applied; the
//! writer applies the missing ones in one transaction when it opens the
//! database. A database from a newer canhgac is refused, never guessed at.
//! `PRAGMA application_id` marks the file as ours, so a misconfigured path
//! never gets our tables added to someone else's database.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::{params, Connection, TransactionBehavior};

use super::values::to_us;
use super::{Store, StoreError};

/// `PRAGMA application_id` of a canhgac database: "cgac" in ASCII.
pub const APPLICATION_ID: i32 = 0x6367_6163;

/// Schema migrations, in order: `MIGRATIONS[i]` takes the schema from version
/// `i` to `i + 1`. Append only; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    MIGRATION_V1,
    MIGRATION_V2,
    MIGRATION_V3,
    MIGRATION_V4,
    MIGRATION_V5,
    MIGRATION_V6,
    MIGRATION_V7,
    MIGRATION_V8,
    MIGRATION_V9,
    MIGRATION_V10,
];

/// The body of every outbox trigger: the incident `$id` gets its next
/// revision, pending, at the end of the order.
macro_rules! outbox_enqueue {
    ($id:literal) => {
        concat!(
            "BEGIN
    UPDATE outbox_control SET next_seq = next_seq + 1 WHERE id = 1;
    INSERT INTO outbox (incident, revision, seq, changed_us, pending)
        VALUES (",
            $id,
            ", 1, (SELECT next_seq FROM outbox_control WHERE id = 1),
                CAST(unixepoch('subsec') * 1000000 AS INTEGER), 1)
        ON CONFLICT (incident) DO UPDATE SET revision = revision + 1, seq = excluded.seq,
            changed_us = excluded.changed_us, pending = 1;
END;"
        )
    };
}

/// v10: the index that the overdue count (every scrape after a commit)
/// needs, and one index fewer to write per incident.
///
/// `incidents_overdue` holds the high and critical incidents by commit time:
/// counting those past the reporting deadline read every incident's row
/// (the commit time comes after the sample and fields, often on overflow
/// pages), 0.12 s with 156,000 incidents; the index makes it 0.02 s.
/// `incidents_first_seen` goes: `incidents_period` starts with the same
/// column and serves every query by first-event time as well.
const MIGRATION_V10: &str = "
CREATE INDEX incidents_overdue ON incidents (created_us) WHERE severity IN ('high', 'critical');
DROP INDEX incidents_first_seen;
";

/// v9: the outbox to the national center, and the center's own tables.
///
/// `outbox` has one row per incident the center should hear of: its
/// revision (1 at the first change, one more at each change after, never
/// reused, so `<agency>/<uid>/<revision>` names one state of one
/// incident), the global order of its last change (`seq`), when that
/// change was committed, and whether it still waits for the broker's
/// acknowledgement. Triggers write it in the transaction that changes the
/// incident or its status, whoever writes (daemon, `canhgac incident`, the
/// API), so an incident never changes without its outbox row, nor the
/// reverse. They fire only while `outbox_control.enabled` is set (the
/// daemon sets it when `[forward]` is configured): a store that forwards
/// nothing writes nothing more. Several changes before one delivery make
/// one pending row at the latest revision: the center keeps the highest
/// revision, so the states in between would be overwritten anyway.
///
/// `center_incidents` and `center_agencies` are the national center's
/// (`canhgac center`): which agency and revision each incident came from,
/// and each agency's last heartbeat. The center's incidents live in
/// `incidents` like an agency's, so every report reads them as it is.
const MIGRATION_V9: &str = concat!("
CREATE TABLE outbox_control (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    enabled   INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    next_seq  INTEGER NOT NULL,
    dropped   INTEGER NOT NULL CHECK (dropped >= 0),
    delivered INTEGER NOT NULL CHECK (delivered >= 0)
) STRICT;
INSERT INTO outbox_control (id, enabled, next_seq, dropped, delivered) VALUES (1, 0, 0, 0, 0);

CREATE TABLE outbox (
    incident   INTEGER PRIMARY KEY,
    revision   INTEGER NOT NULL CHECK (revision > 0),
    seq        INTEGER NOT NULL,
    changed_us INTEGER NOT NULL,
    pending    INTEGER NOT NULL CHECK (pending IN (0, 1))
) STRICT;
CREATE INDEX outbox_pending ON outbox (seq) WHERE pending = 1;

CREATE TRIGGER outbox_incident_insert AFTER INSERT ON incidents
WHEN (SELECT enabled FROM outbox_control WHERE id = 1) = 1
", outbox_enqueue!("NEW.id"), "

CREATE TRIGGER outbox_incident_update AFTER UPDATE OF first_seen_us, last_seen_us, events, open, severity ON incidents
WHEN (SELECT enabled FROM outbox_control WHERE id = 1) = 1
  AND (OLD.first_seen_us IS NOT NEW.first_seen_us OR OLD.last_seen_us IS NOT NEW.last_seen_us
       OR OLD.events IS NOT NEW.events OR OLD.open IS NOT NEW.open OR OLD.severity IS NOT NEW.severity)
", outbox_enqueue!("NEW.id"), "

CREATE TRIGGER outbox_status_insert AFTER INSERT ON incident_status
WHEN (SELECT enabled FROM outbox_control WHERE id = 1) = 1
", outbox_enqueue!("NEW.incident"), "

CREATE TRIGGER outbox_status_update AFTER UPDATE ON incident_status
WHEN (SELECT enabled FROM outbox_control WHERE id = 1) = 1
", outbox_enqueue!("NEW.incident"), "

CREATE TABLE center_incidents (
    incident    INTEGER PRIMARY KEY,
    agency      TEXT    NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision > 0),
    received_us INTEGER NOT NULL
) STRICT;
CREATE INDEX center_incidents_agency ON center_incidents (agency);

CREATE TABLE center_agencies (
    agency            TEXT    PRIMARY KEY,
    name              TEXT,
    first_us          INTEGER NOT NULL,
    last_heartbeat_us INTEGER,
    last_incident_us  INTEGER,
    heartbeat         TEXT CHECK (heartbeat IS NULL OR json_valid(heartbeat))
) STRICT;
");

/// v8: what analysts say about incidents, and the store's time zone.
///
/// `incident_status` holds an incident's status once someone set one (no
/// row: `new`), who set it, when and why, and when it was reported to the
/// national coordinator; `incident_history` every change, in order. A
/// false positive leaves the figures: the tally triggers take it out of
/// (and put it back into) `incident_tally`, and the counts made from the
/// incidents themselves skip it ([`super::tally`]). The incident triggers
/// of v3 are remade so that an incident already taken out is not taken out
/// twice when it is deleted or its first event moves.
///
/// `meta.time_zone` and `meta.agency_name`: the zone the agency's months are
/// counted in and the name its reports give it, recorded by the daemon and
/// by imports, so a report of the bare database file counts the same
/// months and names the same agency.
const MIGRATION_V8: &str = "
ALTER TABLE meta ADD COLUMN time_zone TEXT;
ALTER TABLE meta ADD COLUMN agency_name TEXT;

CREATE TABLE incident_status (
    incident    INTEGER PRIMARY KEY,
    status      TEXT    NOT NULL
                CHECK (status IN ('new', 'acknowledged', 'handled', 'false-positive')),
    changed_by  TEXT    NOT NULL,
    changed_us  INTEGER NOT NULL,
    note        TEXT,
    reported_us INTEGER,
    reported_by TEXT
) STRICT;
CREATE INDEX incident_status_status ON incident_status (status);

CREATE TABLE incident_history (
    seq      INTEGER PRIMARY KEY,
    incident INTEGER NOT NULL,
    at_us    INTEGER NOT NULL,
    by       TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    note     TEXT
) STRICT;
CREATE INDEX incident_history_incident ON incident_history (incident, seq);

CREATE TRIGGER incident_status_tally_insert AFTER INSERT ON incident_status
WHEN NEW.status = 'false-positive'
BEGIN
    UPDATE incident_tally SET n = n - 1
        WHERE (category, hour) IN (
            SELECT category, (first_seen_us - (((first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000
            FROM incidents WHERE id = NEW.incident);
END;

CREATE TRIGGER incident_status_tally_update AFTER UPDATE OF status ON incident_status
WHEN (OLD.status = 'false-positive') != (NEW.status = 'false-positive')
BEGIN
    UPDATE incident_tally SET n = n + (CASE WHEN NEW.status = 'false-positive' THEN -1 ELSE 1 END)
        WHERE (category, hour) IN (
            SELECT category, (first_seen_us - (((first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000
            FROM incidents WHERE id = NEW.incident);
END;

CREATE TRIGGER incident_status_tally_delete AFTER DELETE ON incident_status
WHEN OLD.status = 'false-positive'
BEGIN
    UPDATE incident_tally SET n = n + 1
        WHERE (category, hour) IN (
            SELECT category, (first_seen_us - (((first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000
            FROM incidents WHERE id = OLD.incident);
END;

DROP TRIGGER incident_tally_delete;
CREATE TRIGGER incident_tally_delete AFTER DELETE ON incidents
WHEN NOT EXISTS (SELECT 1 FROM incident_status WHERE incident = OLD.id AND status = 'false-positive')
BEGIN
    UPDATE incident_tally SET n = n - 1
        WHERE category = OLD.category
          AND hour = (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000;
END;

DROP TRIGGER incident_tally_update;
CREATE TRIGGER incident_tally_update AFTER UPDATE OF category, first_seen_us ON incidents
WHEN (OLD.category IS NOT NEW.category
  OR (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000))
     != (NEW.first_seen_us - (((NEW.first_seen_us % 3600000000) + 3600000000) % 3600000000)))
  AND NOT EXISTS (SELECT 1 FROM incident_status WHERE incident = NEW.id AND status = 'false-positive')
BEGIN
    UPDATE incident_tally SET n = n - 1
        WHERE category = OLD.category
          AND hour = (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000;
    INSERT INTO incident_tally (category, hour, n)
        VALUES (NEW.category,
                (NEW.first_seen_us - (((NEW.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000,
                1)
        ON CONFLICT (hour, category) DO UPDATE SET n = n + 1;
END;
";

/// v7: the detector's keys, one row each, so that a commit writes the keys
/// that changed rather than the whole state (which cost 1.5 µs and two
/// state sizes of writes per tracked key in every commit: 176 ms and 29 MB
/// a commit at 100,000 keys). Rows are appended, never updated in place:
/// a key's latest row holds its state (`state` NULL once it is gone), and
/// appending fills pages one after another, where updating keys spread
/// over a large table would write a whole page for each. The daemon
/// rewrites the table from its live keys ([`DetectorWrite::compact`](super::DetectorWrite::compact)) once
/// it holds several times more rows than keys, so its size stays
/// proportional to the keys and its cost to what changed. `kind` tells a
/// detector key (0) from a request-rate client (1); `rule` is the index in
/// the rule list of the `detector_state` row of the same commit.
const MIGRATION_V7: &str = "
CREATE TABLE detector_keys (
    seq   INTEGER PRIMARY KEY,
    kind  INTEGER NOT NULL CHECK (kind IN (0, 1)),
    rule  INTEGER NOT NULL CHECK (rule >= 0),
    key   TEXT    NOT NULL,
    state BLOB
) STRICT;
";

/// v6: web-root integrity: each root's baseline (the accepted state of
/// every watched file), the flags (changes raised and not yet accepted)
/// and the log of `canhgac integrity accept`. Paths are the bytes of the
/// file name relative to the web root (`BLOB`), so names that are not
/// UTF-8 are kept exactly. The integrity module writes and reads these
/// rows; the daemon's batch carries its changes ([`super::BatchRows`]).
const MIGRATION_V6: &str = "
CREATE TABLE integrity_roots (
    name         TEXT    PRIMARY KEY,
    settings     TEXT    NOT NULL CHECK (json_valid(settings)),
    baselined_us INTEGER NOT NULL,
    updated_us   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE integrity_files (
    root       TEXT    NOT NULL,
    path       BLOB    NOT NULL,
    link       INTEGER NOT NULL CHECK (link IN (0, 1)),
    size       INTEGER NOT NULL CHECK (size >= 0),
    mtime_ns   INTEGER NOT NULL,
    ctime_ns   INTEGER NOT NULL,
    ino        INTEGER NOT NULL,
    sha256     BLOB    CHECK (sha256 IS NULL OR length(sha256) = 32),
    signature  TEXT,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (root, path)
) STRICT, WITHOUT ROWID;

-- A change raised as an incident and not accepted: the state it left
-- (present = 0: the file was removed).
CREATE TABLE integrity_flags (
    root         TEXT    NOT NULL,
    path         BLOB    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('new', 'modified', 'removed')),
    class        TEXT    NOT NULL,
    present      INTEGER NOT NULL CHECK (present IN (0, 1)),
    link         INTEGER,
    size         INTEGER,
    mtime_ns     INTEGER,
    ctime_ns     INTEGER,
    ino          INTEGER,
    sha256       BLOB    CHECK (sha256 IS NULL OR length(sha256) = 32),
    signature    TEXT,
    incident_uid TEXT,
    flagged_us   INTEGER NOT NULL,
    PRIMARY KEY (root, path)
) STRICT, WITHOUT ROWID;

-- Every `canhgac integrity accept`: the daemon applies the ones after the
-- last it has seen; analysts read who accepted what, when.
CREATE TABLE integrity_accepts (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    root        TEXT    NOT NULL,
    path        BLOB    NOT NULL,
    files       INTEGER NOT NULL,
    unflagged   INTEGER NOT NULL,
    accepted_us INTEGER NOT NULL
) STRICT;
";

/// v5: the position of inputs that resume from an opaque cursor rather than
/// file offsets (the journal's `__CURSOR`), one per input, replaced with the
/// input's checkpoints in every commit.
const MIGRATION_V5: &str = "
CREATE TABLE input_cursors (
    input      TEXT    PRIMARY KEY,
    cursor     TEXT    NOT NULL,
    updated_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

/// v2: the inputs that have ever committed, so that an input that has run
/// before but had no file yet does not skip, at its next start, the lines of
/// a file that appeared while the daemon was down (`start = "end"` applies
/// only to an input's very first start).
const MIGRATION_V2: &str = "
CREATE TABLE inputs (
    name     TEXT    PRIMARY KEY,
    first_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT OR IGNORE INTO inputs (name, first_us)
    SELECT input, MIN(updated_us) FROM checkpoints GROUP BY input;
";

/// v4: backfill and reports.
///
/// `imports` records every file `canhgac import` has stored, by the SHA-256
/// of its decompressed content, in the same transaction as its incidents:
/// a file imported again (or its compressed copy after rotation) is
/// recognised and skipped. `first_id` / `last_id` bound the rows it
/// inserted, so a bad import can be found (and removed) by hand.
///
/// `incidents_period` covers the monthly counts by category and severity:
/// the report's year-to-date windows read hundreds of thousands of index
/// entries and no table row.
const MIGRATION_V4: &str = "
CREATE TABLE imports (
    digest      BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    path        TEXT    NOT NULL,
    input_type  TEXT    NOT NULL,
    input       TEXT,
    lines       INTEGER NOT NULL CHECK (lines >= 0),
    incidents   INTEGER NOT NULL CHECK (incidents >= 0),
    first_id    INTEGER,
    last_id     INTEGER,
    rules       TEXT    NOT NULL,
    imported_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX incidents_period ON incidents (first_seen_us, category, severity);
";

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATION_V1: &str = "
CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    agency          TEXT    NOT NULL,
    created_us      INTEGER NOT NULL,
    commits         INTEGER NOT NULL DEFAULT 0,
    last_commit_us  INTEGER,
    -- Highest detector id ever committed, kept even if incidents are purged
    -- later, so a detector started afresh never reuses an id.
    max_detector_id INTEGER
) STRICT;

CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY,
    uid           TEXT    NOT NULL UNIQUE,
    detector_id   INTEGER NOT NULL UNIQUE,
    rule          TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    severity      TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    src_ip        TEXT,
    input         TEXT,
    first_seen_us INTEGER NOT NULL,
    last_seen_us  INTEGER NOT NULL,
    events        INTEGER NOT NULL CHECK (events >= 0),
    open          INTEGER NOT NULL CHECK (open IN (0, 1)),
    sample        TEXT    NOT NULL,
    fields        TEXT    NOT NULL CHECK (json_valid(fields)),
    created_us    INTEGER NOT NULL,
    updated_us    INTEGER NOT NULL
) STRICT;

-- Every index ends in first_seen_us (and implicitly the rowid), the order in
-- which queries return incidents and in which monthly figures bound them.
CREATE INDEX incidents_first_seen ON incidents (first_seen_us);
CREATE INDEX incidents_category   ON incidents (category, first_seen_us);
CREATE INDEX incidents_rule       ON incidents (rule, first_seen_us);
CREATE INDEX incidents_src_ip     ON incidents (src_ip, first_seen_us);

CREATE TABLE checkpoints (
    input           TEXT    NOT NULL,
    dev             INTEGER NOT NULL,
    ino             INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    fingerprint_len INTEGER NOT NULL CHECK (fingerprint_len >= 0),
    fingerprint     BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    byte_offset     INTEGER NOT NULL CHECK (byte_offset >= 0),
    updated_us      INTEGER NOT NULL,
    PRIMARY KEY (input, dev, ino)
) STRICT, WITHOUT ROWID;

CREATE TABLE detector_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    state      BLOB    NOT NULL,
    updated_us INTEGER NOT NULL
) STRICT;
";

/// v3: incidents counted per category and UTC hour of their first event,
/// kept by triggers in the transaction that writes the incident (whoever
/// writes: daemon, import, a later tool), so that monthly figures cost a sum
/// over at most 8,784 hours a year per category instead of a pass over
/// every incident (a scrape with a year of 120,000 incidents spent 135 ms
/// of CPU counting them). Hours, not days: a month starts at local
/// midnight, which is a whole UTC hour in all but a few zones; bounds
/// inside an hour are counted from the incidents themselves (see
/// [`Store::count_by_category`]). Buckets are floored, also before 1970.
const MIGRATION_V3: &str = "
CREATE TABLE incident_tally (
    category TEXT    NOT NULL,
    hour     INTEGER NOT NULL,
    n        INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (hour, category)
) STRICT, WITHOUT ROWID;

INSERT INTO incident_tally (category, hour, n)
    SELECT category,
           (first_seen_us - (((first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000,
           COUNT(*)
    FROM incidents GROUP BY 1, 2;

CREATE TRIGGER incident_tally_insert AFTER INSERT ON incidents BEGIN
    INSERT INTO incident_tally (category, hour, n)
        VALUES (NEW.category,
                (NEW.first_seen_us - (((NEW.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000,
                1)
        ON CONFLICT (hour, category) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER incident_tally_delete AFTER DELETE ON incidents BEGIN
    UPDATE incident_tally SET n = n - 1
        WHERE category = OLD.category
          AND hour = (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000;
END;

CREATE TRIGGER incident_tally_update AFTER UPDATE OF category, first_seen_us ON incidents
WHEN OLD.category IS NOT NEW.category
  OR (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000))
     != (NEW.first_seen_us - (((NEW.first_seen_us % 3600000000) + 3600000000) % 3600000000))
BEGIN
    UPDATE incident_tally SET n = n - 1
        WHERE category = OLD.category
          AND hour = (OLD.first_seen_us - (((OLD.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000;
    INSERT INTO incident_tally (category, hour, n)
        VALUES (NEW.category,
                (NEW.first_seen_us - (((NEW.first_seen_us % 3600000000) + 3600000000) % 3600000000)) / 3600000000,
                1)
        ON CONFLICT (hour, category) DO UPDATE SET n = n + 1;
END;
";

/// Where the copy of a store taken before migrating it from `version` goes.
pub fn backup_path(db: &Path, version: i64) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".schema-{version}.bak"));
    name.into()
}

impl Store {
    /// Before a migration changes an existing store: a consistent copy of
    /// it beside the database (`VACUUM INTO`), so that going back to the
    /// previous canhgac is a copy back, never a guess. Said in the log,
    /// with where the copy is.
    pub(super) fn back_up_before_migration(&self) -> Result<(), StoreError> {
        let (version, _) = read_header(&self.conn)?;
        if version == 0 || version >= SCHEMA_VERSION {
            return Ok(());
        }
        let backup = backup_path(&self.path, version);
        // A copy left by a migration that failed is older than the store.
        match std::fs::remove_file(&backup) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: backup,
                    source,
                })
            }
        }
        let target = backup.to_str().ok_or_else(|| {
            StoreError::Invalid(format!("{}: not a UTF-8 path", backup.display()))
        })?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        tracing::info!(
            store = %self.path.display(),
            backup = %backup.display(),
            "migrating the store from schema {version} to {SCHEMA_VERSION}; the store as it was is copied to the backup (to go back to the previous canhgac: stop it, copy the backup over the store, remove the store's -wal and -shm files)"
        );
        Ok(())
    }

    /// Applies the missing migrations and records the agency, in one
    /// IMMEDIATE transaction: a second process opening the database at the
    /// same moment waits, then finds the schema current.
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let agency = self.agency.clone().ok_or(StoreError::ReadOnly)?;
        // The header is checked again under the lock: another process may
        // have created or upgraded the database since open() looked.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_header(&tx, &self.path, false)?;
        let (version, _) = read_header(&tx)?;
        let applied = usize::try_from(version).unwrap_or(0);
        for (version_after, migration) in (1_i64..).zip(MIGRATIONS).skip(applied) {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", version_after)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        // The agency of new uids is the configured one; uids already given
        // keep theirs, being stable ids.
        tx.execute(
            "INSERT INTO meta (id, agency, created_us) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET agency = excluded.agency",
            params![agency, to_us(Timestamp::now())?],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Checks `user_version` and `application_id`. A writer accepts an empty
/// database (it creates the schema) and older versions; a reader only the
/// current version.
pub(super) fn check_header(conn: &Connection, path: &Path, reader: bool) -> Result<(), StoreError> {
    let (version, app_id) = read_header(conn)?;
    let fresh = app_id == 0 && version == 0 && !has_tables(conn)?;
    judge_header(path, version, app_id, fresh, reader)
}

/// What [`Store::open`] would say of the database file at `path`, for
/// `check`, which runs before the daemon (and before every reload, while
/// the daemon writes). Run as the store's owner (the unit's
/// `ExecStartPre=`), SQLite reads the header as the daemon will, WAL
/// included. Run as anyone else it must not open the store (opening makes
/// its WAL files, which would then belong to the wrong account): the header
/// bytes on disk are judged instead, where a store not yet checkpointed
/// looks fresh and is let pass (the daemon says the rest).
pub fn check_file(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let io_error = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    let owner = file.metadata().map_err(io_error)?.uid();
    if owner == crate::secret::current_uid() {
        // No SQLITE_OPEN_CREATE: it exists; and nothing is written.
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        return check_header(&conn, path, false);
    }
    let mut header = Vec::with_capacity(100);
    file.take(100).read_to_end(&mut header).map_err(io_error)?;
    // SQLite's file format: a 16-byte magic string, then big-endian fields;
    // user_version at offset 60, application_id at 68.
    let field = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
    };
    match (field(60), field(68)) {
        (Some(version), Some(app_id)) if header.starts_with(b"SQLite format 3\0") => {
            let fresh = version == 0 && app_id == 0;
            judge_header(path, version.into(), app_id, fresh, false)
        }
        // Empty, or a header still being written: the daemon judges it.
        _ if header.len() < 100 => Ok(()),
        (version, app_id) => Err(StoreError::NotOurs {
            path: path.to_path_buf(),
            app_id: app_id.unwrap_or(0),
            version: version.unwrap_or(0).into(),
        }),
    }
}

fn judge_header(
    path: &Path,
    version: i64,
    app_id: i32,
    fresh: bool,
    reader: bool,
) -> Result<(), StoreError> {
    let path = path.to_path_buf();
    if fresh {
        // A fresh file (SQLite creates the header on the first write).
        return if reader {
            Err(StoreError::Missing { path })
        } else {
            Ok(())
        };
    }
    if app_id != APPLICATION_ID || version < 0 {
        return Err(StoreError::NotOurs {
            path,
            app_id,
            version,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path,
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if reader && version < SCHEMA_VERSION {
        return Err(StoreError::SchemaTooOld {
            path,
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn read_header(conn: &Connection) -> Result<(i64, i32), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    Ok((version, app_id))
}

fn has_tables(conn: &Connection) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::store::testing::*;
    use crate::store::Recovery;

    #[test]
    fn migrations_from_empty() {
        let (_dir, path, store) = fresh();
        assert!(path.exists(), "file and parent dir are created");
        let (version, app_id) = read_header(&store.conn).expect("header");
        assert_eq!((version, app_id), (SCHEMA_VERSION, APPLICATION_ID));
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(
            page_size(&store.conn),
            crate::store::PAGE_SIZE,
            "a new store's pages are small"
        );
        let mut names: Vec<String> = store
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names");
        names.sort();
        assert_eq!(
            names,
            [
                "center_agencies",
                "center_incidents",
                "center_incidents_agency",
                "checkpoints",
                "detector_keys",
                "detector_state",
                "imports",
                "incident_history",
                "incident_history_incident",
                "incident_status",
                "incident_status_status",
                "incident_status_tally_delete",
                "incident_status_tally_insert",
                "incident_status_tally_update",
                "incident_tally",
                "incident_tally_delete",
                "incident_tally_insert",
                "incident_tally_update",
                "incidents",
                "incidents_category",
                "incidents_overdue",
                "incidents_period",
                "incidents_rule",
                "incidents_src_ip",
                "input_cursors",
                "inputs",
                "integrity_accepts",
                "integrity_files",
                "integrity_flags",
                "integrity_roots",
                "meta",
                "outbox",
                "outbox_control",
                "outbox_incident_insert",
                "outbox_incident_update",
                "outbox_pending",
                "outbox_status_insert",
                "outbox_status_update"
            ]
        );
        let recovery = store.recovery().expect("recovery");
        assert_eq!(
            recovery,
            Recovery {
                checkpoints: vec![],
                cursors: vec![],
                known_inputs: vec![],
                detector: None,
                detector_rows: vec![],
                detector_rows_stored: 0,
                max_detector_id: None,
                commits: 0,
                last_commit: None
            }
        );
        // The migration is applied once: a second open finds nothing to do.
        drop(store);
        let again = Store::open(&path, AGENCY).expect("reopen");
        assert_eq!(read_header(&again.conn).expect("header").0, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused() {
        let (_dir, path, store) = fresh();
        // While the daemon holds it, its schema maybe only in the WAL.
        check_file(&path).expect("a store in use passes check");
        drop(store);
        Connection::open(&path)
            .expect("raw")
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        let err = Store::open(&path, AGENCY).err().expect("writer refuses");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        // `check` says the same, from the file's header alone.
        let checked = check_file(&path).expect_err("check refuses");
        assert_eq!(checked.to_string(), err.to_string());
        assert!(check_file(&path.with_extension("missing")).is_ok());
        let err = Store::open_read(&path).err().expect("reader refuses");
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        // Nothing was changed by the refused open.
        let version: i64 = Connection::open(&path)
            .expect("raw")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION + 1);
    }

    #[test]
    fn reader_never_creates_or_migrates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        let err = Store::open_read(&path).err().expect("missing");
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
        assert!(!path.exists());

        // An empty file (never set up by a writer) is reported as missing too.
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, b"").expect("touch");
        let err = Store::open_read(&path).err().expect("empty");
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");

        // An older schema is left for the writer to upgrade.
        let raw = Connection::open(&path).expect("raw");
        raw.pragma_update(None, "application_id", APPLICATION_ID)
            .expect("app id");
        raw.execute_batch("CREATE TABLE older (x)").expect("table");
        drop(raw);
        let err = Store::open_read(&path).err().expect("older");
        assert!(
            matches!(err, StoreError::SchemaTooOld { found: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn foreign_and_garbage_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let foreign = dir.path().join("other.db");
        Connection::open(&foreign)
            .expect("raw")
            .execute_batch("CREATE TABLE users (name TEXT)")
            .expect("table");
        let err = Store::open(&foreign, AGENCY).err().expect("foreign");
        assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");
        let tables: i64 = Connection::open(&foreign)
            .expect("raw")
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
            .expect("count");
        assert_eq!(tables, 1, "nothing added to a foreign database");

        let garbage = dir.path().join("garbage.db");
        fs::write(&garbage, vec![0xAB_u8; 8192]).expect("write");
        let err = Store::open(&garbage, AGENCY).err().expect("garbage");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        let err = Store::open_read(&garbage).err().expect("garbage");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    /// A v2 database with incidents gains its tally when the writer opens
    /// it, and counts as before.
    #[test]
    fn migration_to_v3_tallies_existing_incidents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        fs::create_dir_all(path.parent().expect("state dir")).expect("state dir");
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.pragma_update(None, "page_size", 4096)
                .expect("page size");
            conn.execute_batch(MIGRATION_V1).expect("v1");
            conn.execute_batch(MIGRATION_V2).expect("v2");
            conn.pragma_update(None, "user_version", 2)
                .expect("version");
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("application id");
            for (i, (category, secs)) in [("phishing", 0), ("phishing", 3_599), ("deface", 3_600)]
                .into_iter()
                .enumerate()
            {
                let first = (OCT_2020 + secs) * 1_000_000;
                conn.execute(
                    "INSERT INTO incidents (uid, detector_id, rule, category, severity, key,
                         first_seen_us, last_seen_us, events, open, sample, fields,
                         created_us, updated_us)
                     VALUES (?1, ?2, 'r', ?3, 'high', 'k', ?4, ?4, 1, 0, 's', '{}', ?4, ?4)",
                    params![format!("{AGENCY}-{i}"), i as i64 + 1, category, first],
                )
                .expect("v2 incident");
            }
        }
        let store = Store::open(&path, AGENCY).expect("migrated");
        assert_eq!(
            store.count_by_category(ts(0), ts(7_200)).expect("count"),
            [("deface".to_owned(), 1), ("phishing".to_owned(), 2)]
        );
        // The store as it was, kept beside it: the way back to the older
        // canhgac.
        let backup = Connection::open(backup_path(&path, 2)).expect("backup");
        let version: i64 = backup
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        let incidents: i64 = backup
            .query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))
            .expect("incidents");
        assert_eq!((version, incidents), (2, 3));
        let tally: i64 = store
            .conn
            .query_row("SELECT SUM(n) FROM incident_tally", [], |r| r.get(0))
            .expect("tally");
        assert_eq!(tally, 3);
        assert_eq!(
            page_size(&store.conn),
            4096,
            "an older store keeps its pages"
        );
    }

    fn page_size(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
            .expect("page size")
    }
}
