//! The SQLite store: incidents, input checkpoints and the detector's state.
//!
//! # One transaction per batch
//!
//! [`Store::commit`] writes a batch of incidents, the checkpoints of the inputs
//! that produced them and the detector's snapshot in one `IMMEDIATE`
//! transaction. Either all of it is in the database or none of it is, so a
//! restart resumes reading exactly after the last line whose incidents are
//! stored: nothing lost, nothing counted twice. A failed commit (busy, disk
//! full, ...) leaves the database exactly as it was; the caller keeps the
//! batch and retries it, and must not move its checkpoints on meanwhile.
//!
//! # Connections
//!
//! A [`Store`] from [`Store::open`] owns the one writer connection. Reports,
//! the API and tests open their own connections with [`Store::open_read`]
//! (`query_only`, never migrates). The database runs in WAL mode, so readers
//! see the last committed batch and never block the writer, nor it them.
//!
//! # Representation
//!
//! * Times are UTC microseconds since the Unix epoch (`INTEGER`), in columns
//!   suffixed `_us`. Microseconds keep the sub-second order of log lines that
//!   carry fractions (RFC 5424, ISO stamps) and still span years ±9999 in an
//!   `i64`; nanoseconds are floored away. Bounds are compared the same way.
//! * `fields` is a JSON object in capture order (`{"src_ip":"…","user":"…"}`),
//!   so analysts can `json_extract(fields, '$.user')`.
//! * `dev` and `ino` of checkpoints are stored as the `i64` with the same bits
//!   as the `u64` (some filesystems hand out inode numbers above `i64::MAX`).
//! * Every incident has a `uid`, `{agency}-{UUIDv7}`, assigned at its first
//!   insert and never changed: the id by which the national center will
//!   deduplicate incidents that later travel through an outbox.
//!
//! # Schema versions
//!
//! `PRAGMA user_version` holds the number of [`MIGRATIONS`] applied; the
//! writer applies the missing ones in one transaction when it opens the
//! database. A database from a newer canhgac is refused, never guessed at.
//! `PRAGMA application_id` marks the file as ours, so a misconfigured path
//! never gets our tables added to someone else's database.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{ffi, params, params_from_iter, Connection, OpenFlags, Row, TransactionBehavior};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::input::checkpoint::FileCheckpoint;

mod integrity;
pub use integrity::{AcceptInfo, AcceptRow, FlagRow, IntegrityOp};

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
    integrity::MIGRATION_V6,
    MIGRATION_V7,
];

/// v7: the detector's keys, one row each, so that a commit writes the keys
/// that changed rather than the whole state (which cost 1.5 µs and two
/// state sizes of writes per tracked key in every commit: 176 ms and 29 MB
/// a commit at 100,000 keys). Rows are appended, never updated in place:
/// a key's latest row holds its state (`state` NULL once it is gone), and
/// appending fills pages one after another, where updating keys spread
/// over a large table would write a whole page for each. The daemon
/// rewrites the table from its live keys ([`DetectorWrite::compact`]) once
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

/// How long a connection waits for another one's lock before giving up with
/// [`StoreError::Busy`]. The daemon is normally the only writer; this covers
/// a concurrent `canhgac import`, WAL checkpoints and WAL recovery.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is truncated back to this size after a checkpoint, so a burst
/// (or a reader that held a checkpoint back) does not leave a large file.
const JOURNAL_SIZE_LIMIT: i64 = 32 * 1024 * 1024;

/// Statements kept prepared per connection: the fixed ones plus the filter
/// combinations of [`Store::incidents`] that are in use.
const STATEMENT_CACHE: usize = 64;

/// Longest agency id accepted. It prefixes every uid, which travels to the
/// national center with each incident.
const MAX_AGENCY_LEN: usize = 64;

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

/// Microseconds in one bucket of `incident_tally`.
const TALLY_BUCKET_US: i64 = 3_600_000_000;

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

/// Why a store operation failed. The daemon retries [`StoreError::Busy`] and
/// [`StoreError::DiskFull`] with the same batch (see
/// [`StoreError::is_retryable`]); the others need a person.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another connection held the lock longer than the busy timeout
    /// (`SQLITE_BUSY` / `SQLITE_LOCKED`).
    #[error("database is busy: another connection holds its lock ({0})")]
    Busy(rusqlite::Error),
    /// The filesystem is full (`SQLITE_FULL`).
    #[error("disk full: cannot write the database ({0})")]
    DiskFull(rusqlite::Error),
    /// The file is damaged or not an SQLite database at all.
    #[error("database is corrupt or not an SQLite database ({0})")]
    Corrupt(rusqlite::Error),
    #[error("{}: schema version {found} is newer than this canhgac knows ({known}); run a newer canhgac", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// Only a reader reports this: it never migrates.
    #[error("{}: schema version {found} is older than this canhgac reads ({known}); start the daemon once to upgrade it", path.display())]
    SchemaTooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A reader found no database, or an empty one no daemon has set up yet.
    #[error("{}: no canhgac database there yet (the daemon creates it on its first start)", path.display())]
    Missing { path: PathBuf },
    /// An SQLite database of some other program (or a negative version).
    #[error("{}: not a canhgac database (application_id {app_id:#x}, schema version {version}); check the state directory", path.display())]
    NotOurs {
        path: PathBuf,
        app_id: i32,
        version: i64,
    },
    /// Creating the state directory or inspecting the file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A value that cannot be stored or read back as it is (an id above
    /// `i64::MAX`, a checkpoint of an input the batch does not list, a reused
    /// detector id, a stored value out of range, an unknown cursor, ...).
    #[error("{0}")]
    Invalid(String),
    /// A write on a store opened with [`Store::open_read`].
    #[error("the store was opened read-only")]
    ReadOnly,
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed: the lock may be
    /// released, space may be freed. The database is unchanged either way.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Busy(_) | StoreError::DiskFull(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked) => {
                StoreError::Busy(e)
            }
            Some(ffi::ErrorCode::DiskFull) => StoreError::DiskFull(e),
            Some(ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// One incident as the daemon hands it to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRecord {
    /// The detector's id ([`crate::detect::Incident::id`]): the upsert key.
    /// 0 for a stored incident whose id the detector has since reused.
    pub detector_id: u64,
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub key: String,
    pub src_ip: Option<String>,
    /// Name of the configured input the opening line came from.
    pub input: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub events: u64,
    pub open: bool,
    pub sample: String,
    pub fields: Vec<(String, String)>,
}

/// An incident as stored. After the first insert, upserts change only
/// `last_seen`, `events`, `open` and (only ever earlier) `first_seen`:
/// `record` keeps the opening's `rule`, `key`, `sample`, `fields` and so on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredIncident {
    /// `{agency}-{UUIDv7}`, assigned at the first insert, never changed.
    pub uid: String,
    pub record: IncidentRecord,
}

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
    /// Web-root baseline and flag changes, applied after the incidents (a
    /// flag names the incident that raised it by detector id).
    pub integrity: &'a [IntegrityOp],
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

/// What [`Store::count_by`] groups incidents by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Rule,
    SrcIp,
    Input,
}

/// One group of [`Store::count_by`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCount {
    pub value: Option<String>,
    pub incidents: u64,
    /// Events (matched lines) of those incidents.
    pub events: u64,
    /// The category of the group's incidents (the first in id order when
    /// they differ, as they may for a source address or an input).
    pub category: String,
}

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

/// Filters of [`Store::incidents`]; `Default` selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentQuery {
    /// `first_seen >= since`.
    pub since: Option<Timestamp>,
    /// `first_seen < until`.
    pub until: Option<Timestamp>,
    pub category: Option<String>,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub src_ip: Option<String>,
    /// Page size; `None` returns every match.
    pub limit: Option<u32>,
    /// Cursor: the `uid` of the last incident of the previous page. Results
    /// continue strictly after it in `order`.
    pub after: Option<String>,
    pub order: IncidentOrder,
}

/// The order of [`Store::incidents`], and so what a cursor promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncidentOrder {
    /// By first event, then insertion: for reading a period. Pages do not
    /// repeat or skip while incidents arrive in time order (a tailing
    /// daemon), but an incident recorded later with an earlier first event
    /// (a backfill, late log lines, a rule joining an incident with an
    /// older event) falls behind a client's cursor and that client does not
    /// see it.
    #[default]
    FirstSeen,
    /// In the order incidents were recorded: for a client that must see
    /// every incident (a SIEM pulling them). A stored incident's place
    /// never changes and new ones always come last, so pages never repeat
    /// or skip, whatever arrives.
    Recorded,
}

/// A connection to the store: the writer from [`Store::open`], or a reader
/// from [`Store::open_read`].
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The agency id prefixing new uids; `None` for a reader.
    agency: Option<String>,
}

impl Store {
    /// Opens (creating file and parent directory if needed) the database as
    /// its writer, and brings its schema up to date.
    ///
    /// Durability: WAL with `synchronous=FULL`, i.e. one fsync of the WAL per
    /// commit. `NORMAL` would survive `kill -9` (a committed transaction is in
    /// the WAL file, i.e. in the OS's hands) but may lose the last commits on
    /// power loss or a kernel crash. Losing them would be consistent (the
    /// checkpoints roll back with the incidents), yet not harmless: lines from
    /// sources that cannot be re-read (syslog over the network, planned) would
    /// be gone, and a re-detected incident gets a new uid, so one that the
    /// planned outbox had already delivered would be counted twice by the
    /// national center. The daemon commits per batch, a few times a second at
    /// most, so one fsync each is cheap (see the commit timings in the tests).
    pub fn open(path: &Path, agency: &str) -> Result<Store, StoreError> {
        validate_agency(agency)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // No SQLITE_OPEN_URI: a configured path is a path, even if it starts
        // with "file:".
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            agency: Some(agency.to_owned()),
        };
        store.configure()?;
        // Refuse a newer or foreign database before changing anything in it,
        // not even its journal mode.
        check_header(&store.conn, path, false)?;

        let mode: String =
            store
                .conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "{}: SQLite cannot use WAL mode here (journal mode stays {mode}); \
                 put the state directory on a local filesystem",
                path.display()
            )));
        }
        store.conn.pragma_update(None, "synchronous", "FULL")?;
        store
            .conn
            .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database for reading only (`query_only`). Never
    /// creates or migrates: a missing database, or one whose schema is older
    /// or newer than this binary's, is an error.
    pub fn open_read(path: &Path) -> Result<Store, StoreError> {
        match fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        // Read-write without CREATE, plus query_only: a WAL reader needs to
        // write the shared-memory index (-shm), which SQLITE_OPEN_READ_ONLY
        // makes fragile; query_only refuses every change to the database.
        // SQLite falls back to read-only by itself where file permissions
        // deny writing.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            agency: None,
        };
        store.configure()?;
        store.conn.pragma_update(None, "query_only", true)?;
        check_header(&store.conn, path, true)?;
        Ok(store)
    }

    /// Changes how long this connection waits for a lock before a write (or,
    /// rarely, a read) fails with [`StoreError::Busy`].
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The agency id of new uids; `None` for a reader.
    pub fn agency(&self) -> Option<&str> {
        self.agency.as_deref()
    }

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
        // A checkpoint of an unlisted input would survive next to the old
        // checkpoints of its input instead of replacing them.
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
        let committed_at = Timestamp::now();
        let now_us = to_us(committed_at)?;

        // IMMEDIATE takes the write lock at BEGIN, so a busy database fails
        // here (after busy_timeout), before any work, and never half-way
        // through as a deferred transaction upgrading its lock could.
        // Dropping `tx` on any error below rolls everything back.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut inserted = Vec::new();
        let mut updated = 0;
        let mut max_id: Option<i64> = None;
        {
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
            let mut insert = tx.prepare_cached(
                "INSERT INTO incidents (uid, detector_id, rule, category, severity, key, src_ip,
                     input, first_seen_us, last_seen_us, events, open, sample, fields,
                     created_us, updated_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
            )?;
            for rec in batch.incidents {
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
                let fields = serde_json::to_string(&FieldsRef(&rec.fields))
                    .map_err(|e| StoreError::Invalid(format!("fields of incident {id}: {e}")))?;
                let result = insert.execute(params![
                    uid,
                    id,
                    rec.rule,
                    rec.category,
                    rec.severity,
                    rec.key,
                    rec.src_ip,
                    rec.input,
                    first_us,
                    last_us,
                    events,
                    rec.open,
                    rec.sample,
                    fields,
                    now_us,
                ]);
                result?;
                inserted.push((rec.detector_id, uid));
            }
        }
        {
            let mut delete = tx.prepare_cached("DELETE FROM checkpoints WHERE input = ?1")?;
            let mut delete_cursor =
                tx.prepare_cached("DELETE FROM input_cursors WHERE input = ?1")?;
            let mut known =
                tx.prepare_cached("INSERT OR IGNORE INTO inputs (name, first_us) VALUES (?1, ?2)")?;
            let now_us = to_us(Timestamp::now())?;
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
        }
        integrity::apply(&tx, batch.integrity, now_us)?;
        if let Some(state) = batch.detector {
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
            .query_row(params![now_us, max_id], |r| r.get(0))?;
        // Should COMMIT itself fail, `tx` is dropped still open and rolls back.
        tx.commit()?;
        Ok(CommitInfo {
            commit: to_u64(commit, "commit count")?,
            committed_at,
            inserted,
            updated,
        })
    }

    /// Incidents matching `q`, ordered by first_seen, then insertion order.
    pub fn incidents(&self, q: &IncidentQuery) -> Result<Vec<StoredIncident>, StoreError> {
        // One read transaction: the cursor lookup and the page see the same
        // snapshot.
        let tx = self.conn.unchecked_transaction()?;
        // Only the filters in use go into the SQL, so each combination gets
        // its own plan on the right index (`?1 IS NULL OR col = ?1` would
        // defeat them). Values are always bound, never spliced in.
        let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(since) = q.since {
            sql.push_str(" AND first_seen_us >= ?");
            args.push(Value::Integer(to_us(since)?));
        }
        if let Some(until) = q.until {
            sql.push_str(" AND first_seen_us < ?");
            args.push(Value::Integer(to_us(until)?));
        }
        for (column, value) in [
            ("category", &q.category),
            ("severity", &q.severity),
            ("rule", &q.rule),
            ("src_ip", &q.src_ip),
        ] {
            if let Some(value) = value {
                sql.push_str(" AND ");
                sql.push_str(column);
                sql.push_str(" = ?");
                args.push(Value::Text(value.clone()));
            }
        }
        if let Some(after) = &q.after {
            let position: Option<(i64, i64)> = tx
                .prepare_cached("SELECT first_seen_us, id FROM incidents WHERE uid = ?1")?
                .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
                .next()
                .transpose()?;
            let Some((first_seen_us, id)) = position else {
                return Err(StoreError::Invalid(format!(
                    "unknown cursor: no incident has uid {after:?}"
                )));
            };
            match q.order {
                IncidentOrder::FirstSeen => {
                    sql.push_str(" AND (first_seen_us, id) > (?, ?)");
                    args.push(Value::Integer(first_seen_us));
                }
                IncidentOrder::Recorded => sql.push_str(" AND id > ?"),
            }
            args.push(Value::Integer(id));
        }
        sql.push_str(match q.order {
            IncidentOrder::FirstSeen => " ORDER BY first_seen_us, id",
            IncidentOrder::Recorded => " ORDER BY id",
        });
        if let Some(limit) = q.limit {
            sql.push_str(" LIMIT ?");
            args.push(Value::Integer(i64::from(limit)));
        }
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            while let Some(row) = rows.next()? {
                out.push(incident_from_row(row)?);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The incident with this uid.
    pub fn incident(&self, uid: &str) -> Result<Option<StoredIncident>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE uid = ?1"
        ))?;
        let mut rows = stmt.query([uid])?;
        match rows.next()? {
            Some(row) => Ok(Some(incident_from_row(row)?)),
            None => Ok(None),
        }
    }

    /// Incidents per category whose first_seen lies in `[from, to)`, ordered
    /// by category; categories without incidents are absent.
    pub fn count_by_category(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let (from, to) = (to_us(from)?, to_us(to)?);
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        if from < to {
            // Whole hours from the tally; the ragged ends (a bound inside an
            // hour: "so far", or a zone with a half-hour offset) from the
            // incidents, at most an hour's worth on each side.
            let first_hour =
                from.div_euclid(TALLY_BUCKET_US) + i64::from(from.rem_euclid(TALLY_BUCKET_US) != 0);
            let end_hour = to.div_euclid(TALLY_BUCKET_US);
            let mut add = |rows: &mut rusqlite::Rows<'_>| -> Result<(), StoreError> {
                while let Some(row) = rows.next()? {
                    *counts.entry(row.get(0)?).or_default() += row.get::<_, i64>(1)?;
                }
                Ok(())
            };
            let mut raw = self.conn.prepare_cached(
                "SELECT category, COUNT(*) FROM incidents
                 WHERE first_seen_us >= ?1 AND first_seen_us < ?2
                 GROUP BY category",
            )?;
            if first_hour < end_hour {
                let mut tally = self.conn.prepare_cached(
                    "SELECT category, SUM(n) FROM incident_tally
                     WHERE hour >= ?1 AND hour < ?2 GROUP BY category",
                )?;
                add(&mut tally.query(params![first_hour, end_hour])?)?;
                add(&mut raw.query(params![from, first_hour * TALLY_BUCKET_US])?)?;
                add(&mut raw.query(params![end_hour * TALLY_BUCKET_US, to])?)?;
            } else {
                add(&mut raw.query(params![from, to])?)?;
            }
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(category, n)| Ok((category, to_u64(n, "incident count")?)))
            .collect()
    }

    /// Incidents per (category, severity) in each interval `[edges[i],
    /// edges[i + 1])` of ascending `edges`, as `(i, category, severity,
    /// count)`, absent where zero.
    ///
    /// One walk of the covering `incidents_period` index from the first edge
    /// to the last, bucketed here: SQLite's `GROUP BY` over a time range sorts
    /// every row into a temporary b-tree, which made a report's windows (a
    /// year to date and its year-ago twin, hundreds of thousands of rows
    /// each) cost seconds; the walk reads each row once, in index order.
    pub fn count_by_category_severity_in(
        &self,
        edges: &[Timestamp],
    ) -> Result<Vec<(usize, String, String, u64)>, StoreError> {
        let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else {
            return Ok(Vec::new());
        };
        let bounds: Vec<i64> = edges.iter().map(|&t| to_us(t)).collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT first_seen_us, category, severity FROM incidents INDEXED BY incidents_period
             WHERE first_seen_us >= ?1 AND first_seen_us < ?2 ORDER BY first_seen_us",
        )?;
        let mut rows = stmt.query(params![to_us(first)?, to_us(last)?])?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        // counts[pair][interval]
        let mut counts: Vec<Vec<u64>> = Vec::new();
        let mut interval = 0usize;
        while let Some(row) = rows.next()? {
            let us: i64 = row.get(0)?;
            // Rows come in time order: the interval only moves forward.
            while interval + 2 < bounds.len() && us >= bounds[interval + 1] {
                interval += 1;
            }
            let category = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let severity = row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            let pair = match pairs
                .iter()
                .position(|(c, s)| c == category && s == severity)
            {
                Some(p) => p,
                None => {
                    pairs.push((category.to_owned(), severity.to_owned()));
                    counts.push(vec![0; bounds.len().saturating_sub(1)]);
                    pairs.len() - 1
                }
            };
            counts[pair][interval] += 1;
        }
        let mut out = Vec::new();
        for ((category, severity), per) in pairs.into_iter().zip(counts) {
            for (i, n) in per.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                out.push((i, category.clone(), severity.clone(), n));
            }
        }
        Ok(out)
    }

    /// Incidents and their events in `[from, to)` grouped by `by`, most
    /// incidents first (ties by value), at most `limit` groups (`None`: all).
    /// Incidents without a value (no `src_ip`, no input) form no group when
    /// grouping by source address, and the `None` group otherwise.
    pub fn count_by(
        &self,
        by: GroupBy,
        from: Timestamp,
        to: Timestamp,
        limit: Option<u32>,
    ) -> Result<Vec<GroupCount>, StoreError> {
        // The column comes from the enum, never from input.
        let (column, filter) = match by {
            GroupBy::Rule => ("rule", ""),
            GroupBy::SrcIp => ("src_ip", " AND src_ip IS NOT NULL"),
            GroupBy::Input => ("input", ""),
        };
        let sql = format!(
            "SELECT {column}, COUNT(*), SUM(events), MIN(category) FROM incidents
             WHERE first_seen_us >= ?1 AND first_seen_us < ?2{filter}
             GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let limit = limit.map_or(-1, i64::from);
        let mut rows = stmt.query(params![to_us(from)?, to_us(to)?, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(GroupCount {
                value: row.get(0)?,
                incidents: to_u64(row.get(1)?, "incident count")?,
                events: to_u64(row.get::<_, Option<i64>>(2)?.unwrap_or(0), "event count")?,
                category: row.get(3)?,
            });
        }
        Ok(out)
    }

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
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO incidents (id, uid, detector_id, rule, category, severity, key,
                     src_ip, input, first_seen_us, last_seen_us, events, open, sample, fields,
                     created_us, updated_us)
                 VALUES (?1, ?2, -?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, ?14, ?14)",
            )?;
            for rec in file.incidents {
                let fields = serde_json::to_string(&FieldsRef(&rec.fields)).map_err(|e| {
                    StoreError::Invalid(format!("fields of incident {}: {e}", rec.key))
                })?;
                insert.execute(params![
                    next_id,
                    format!("{agency}-{}", Uuid::now_v7()),
                    rec.rule,
                    rec.category,
                    rec.severity,
                    rec.key,
                    rec.src_ip,
                    rec.input,
                    to_us(rec.first_seen)?,
                    to_us(rec.last_seen)?,
                    to_i64(rec.events, "event count")?,
                    rec.sample,
                    fields,
                    now_us,
                ])?;
                next_id += 1;
            }
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

    /// Every stored incident counted per (category, severity): what the
    /// incident counters start from, so a restart does not reset them.
    pub fn totals(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT category, severity, COUNT(*) FROM incidents
             GROUP BY category, severity ORDER BY category, severity",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let count: i64 = row.get(2)?;
            out.push((row.get(0)?, row.get(1)?, to_u64(count, "incident count")?));
        }
        Ok(out)
    }

    /// Connection settings shared by writer and readers.
    fn configure(&self) -> Result<(), StoreError> {
        self.conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)?;
        // Statement journals (an insert whose tally trigger may fail half
        // way keeps one) in memory, not in a temporary file: `import` of
        // attack-heavy history wrote one per incident, ten pages each.
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    }

    /// Applies the missing migrations and records the agency, in one
    /// IMMEDIATE transaction: a second process opening the database at the
    /// same moment waits, then finds the schema current.
    fn migrate(&mut self) -> Result<(), StoreError> {
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

const IMPORT_COLUMNS: &str = "bytes, path, input_type, input, lines, incidents, rules, imported_us";

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

const INCIDENT_COLUMNS: &str = "uid, detector_id, rule, category, severity, key, src_ip, input, \
     first_seen_us, last_seen_us, events, open, sample, fields";

fn incident_from_row(row: &Row<'_>) -> Result<StoredIncident, StoreError> {
    let fields_json: String = row.get(13)?;
    let fields = serde_json::from_str::<FieldsOwned>(&fields_json)
        .map_err(|e| StoreError::Invalid(format!("stored fields are not a JSON object: {e}")))?
        .0;
    Ok(StoredIncident {
        uid: row.get(0)?,
        record: IncidentRecord {
            // Negative: detached from the detector (see commit); 0 says so.
            detector_id: to_u64(row.get::<_, i64>(1)?.max(0), "detector id")?,
            rule: row.get(2)?,
            category: row.get(3)?,
            severity: row.get(4)?,
            key: row.get(5)?,
            src_ip: row.get(6)?,
            input: row.get(7)?,
            first_seen: from_us(row.get(8)?)?,
            last_seen: from_us(row.get(9)?)?,
            events: to_u64(row.get(10)?, "event count")?,
            open: row.get(11)?,
            sample: row.get(12)?,
            fields,
        },
    })
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

/// Checks `user_version` and `application_id`. A writer accepts an empty
/// database (it creates the schema) and older versions; a reader only the
/// current version.
fn check_header(conn: &Connection, path: &Path, reader: bool) -> Result<(), StoreError> {
    let (version, app_id) = read_header(conn)?;
    let path = path.to_path_buf();
    if app_id == 0 && version == 0 && !has_tables(conn)? {
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

/// The agency id goes into every uid and travels to the national center:
/// keep it to characters that need no escaping anywhere.
fn validate_agency(agency: &str) -> Result<(), StoreError> {
    let ok = !agency.is_empty()
        && agency.len() <= MAX_AGENCY_LEN
        && agency
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "agency id {agency:?} must be 1 to {MAX_AGENCY_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.'"
        )))
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(err) if err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Microseconds since the epoch, rounded down (also before 1970), so an
/// instant stays on the same side of any whole-microsecond bound.
fn to_us(ts: Timestamp) -> Result<i64, StoreError> {
    let us = ts.as_nanosecond().div_euclid(1_000);
    i64::try_from(us).map_err(|_| StoreError::Invalid(format!("time {ts} out of range")))
}

fn from_us(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us)
        .map_err(|e| StoreError::Invalid(format!("stored time {us} out of range: {e}")))
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| {
        StoreError::Invalid(format!("{what} {v} exceeds the database's integer range"))
    })
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Invalid(format!("stored {what} is negative: {v}")))
}

/// Device and inode numbers are identities, not quantities: stored as the
/// `i64` with the same bits, so all of `u64` round-trips.
fn u64_bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn bits_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// Serialises fields as a JSON object in their order (serde's default for a
/// `Vec` of pairs is an array of arrays, which SQL's JSON functions cannot
/// address by name).
struct FieldsRef<'a>(&'a [(String, String)]);

impl Serialize for FieldsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Reads the object back in document order.
struct FieldsOwned(Vec<(String, String)>);

impl<'de> Deserialize<'de> for FieldsOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = FieldsOwned;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldsOwned, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, String>()? {
                    fields.push(entry);
                }
                Ok(FieldsOwned(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tempfile::TempDir;

    const AGENCY: &str = "bo-tt-tt";
    /// 2020-10-01T00:00:00Z: a month boundary, as monthly figures use.
    const OCT_2020: i64 = 1_601_510_400;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(OCT_2020 + secs).expect("test time in range")
    }

    fn rec(detector_id: u64, first: i64, category: &str) -> IncidentRecord {
        IncidentRecord {
            detector_id,
            rule: format!("rule-{category}"),
            category: category.to_owned(),
            severity: "high".to_owned(),
            key: format!("10.0.0.{}", detector_id % 250),
            src_ip: Some(format!("10.0.0.{}", detector_id % 250)),
            input: Some("auth".to_owned()),
            first_seen: ts(first),
            last_seen: ts(first + 5),
            events: 3,
            open: true,
            sample: format!("Failed password for root from 10.0.0.{detector_id}"),
            fields: vec![
                ("src_ip".to_owned(), format!("10.0.0.{}", detector_id % 250)),
                ("user".to_owned(), "root".to_owned()),
            ],
        }
    }

    fn cp(input: &str, ino: u64, offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            input: input.to_owned(),
            path: format!("/var/log/{input}.{ino}"),
            dev: 2049,
            ino,
            fingerprint_len: 1024,
            fingerprint: [ino as u8; 32],
            offset,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn header_only(header: &[u8]) -> DetectorWrite<'_> {
        DetectorWrite {
            header,
            rows: &[],
            compact: false,
        }
    }

    fn row(kind: u8, rule: u32, key: &str, state: Option<&str>) -> StateRow {
        StateRow {
            kind,
            rule,
            key: key.to_owned(),
            state: state.map(|s| s.as_bytes().to_vec()),
        }
    }

    fn commit_rows(store: &mut Store, rows: &[StateRow], compact: bool) {
        store
            .commit(&Batch {
                detector: Some(DetectorWrite {
                    header: b"h",
                    rows,
                    compact,
                }),
                ..Batch::default()
            })
            .expect("commit");
    }

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

    fn db(dir: &TempDir) -> PathBuf {
        dir.path().join("state").join("canhgac.db")
    }

    fn fresh() -> (TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        let store = Store::open(&path, AGENCY).expect("open");
        (dir, path, store)
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
        store
            .commit(&Batch {
                inputs: &inputs,
                cursors: &cursor("s=1;i=5"),
                ..Batch::default()
            })
            .expect("commit");
        store
            .commit(&Batch {
                inputs: &inputs,
                cursors: &cursor("s=1;i=9"),
                ..Batch::default()
            })
            .expect("commit");
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
        let err = store
            .commit(&Batch {
                inputs: &inputs,
                cursors: &twice,
                ..Batch::default()
            })
            .expect_err("two cursors");
        assert!(
            matches!(err, StoreError::Invalid(ref m) if m.contains("two cursors")),
            "{err}"
        );
    }

    fn commit_incidents(store: &mut Store, incidents: &[IncidentRecord]) -> CommitInfo {
        store
            .commit(&Batch {
                incidents,
                ..Batch::default()
            })
            .expect("commit")
    }

    /// Every row of every table, for "exactly as before" comparisons.
    fn dump(path: &Path) -> Vec<Vec<Value>> {
        let conn = Connection::open(path).expect("raw open");
        let mut out = Vec::new();
        for table in [
            "meta",
            "incidents",
            "checkpoints",
            "detector_state",
            "inputs",
            "input_cursors",
        ] {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .expect("prepare dump");
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .expect("dump query");
            for row in rows {
                out.push(row.expect("dump row"));
            }
        }
        out
    }

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
                "checkpoints",
                "detector_keys",
                "detector_state",
                "imports",
                "incident_tally",
                "incident_tally_delete",
                "incident_tally_insert",
                "incident_tally_update",
                "incidents",
                "incidents_category",
                "incidents_first_seen",
                "incidents_period",
                "incidents_rule",
                "incidents_src_ip",
                "input_cursors",
                "inputs",
                "integrity_accepts",
                "integrity_files",
                "integrity_flags",
                "integrity_roots",
                "meta"
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
                integrity: &[],
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
                integrity: &[],
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
                integrity: &[],
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
            integrity: &[],
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
        let err = store
            .commit(&Batch {
                checkpoints: &dup,
                ..batch
            })
            .expect_err("duplicate checkpoint");
        assert!(
            matches!(err, StoreError::Invalid(ref m) if m.contains("two checkpoints")),
            "{err}"
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
            integrity: &[],
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

    #[test]
    fn newer_schema_is_refused() {
        let (_dir, path, store) = fresh();
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

    #[test]
    fn bad_agency_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for agency in ["", "has space", "ấp", &"x".repeat(65)] {
            let err = Store::open(&db(&dir), agency).err().expect("refused");
            assert!(matches!(err, StoreError::Invalid(_)), "{agency:?}: {err}");
        }
    }

    #[test]
    fn pagination_cursor_walks_every_incident_once() {
        let (_dir, _path, mut store) = fresh();
        // Committed out of time order, with ties on first_seen.
        let incidents: Vec<_> = (1..=25)
            .map(|i| {
                rec(
                    i,
                    ((i * 7) % 10) as i64,
                    if i % 3 == 0 { "recon" } else { "dos" },
                )
            })
            .collect();
        commit_incidents(&mut store, &incidents[..12]);
        commit_incidents(&mut store, &incidents[12..]);
        let all = store.incidents(&IncidentQuery::default()).expect("all");
        assert_eq!(all.len(), 25);
        assert!(all
            .windows(2)
            .all(|w| w[0].record.first_seen <= w[1].record.first_seen));

        for filter in [None, Some("recon")] {
            let mut q = IncidentQuery {
                category: filter.map(str::to_owned),
                limit: Some(4),
                ..IncidentQuery::default()
            };
            let mut walked = Vec::new();
            loop {
                let page = store.incidents(&q).expect("page");
                assert!(page.len() <= 4);
                let Some(last) = page.last() else { break };
                q.after = Some(last.uid.clone());
                walked.extend(page);
            }
            let expected: Vec<_> = all
                .iter()
                .filter(|s| filter.is_none_or(|c| s.record.category == c))
                .cloned()
                .collect();
            assert_eq!(walked, expected, "filter {filter:?}");
        }

        let err = store
            .incidents(&IncidentQuery {
                after: Some("bo-tt-tt-unknown".to_owned()),
                ..IncidentQuery::default()
            })
            .expect_err("unknown cursor");
        assert!(
            matches!(err, StoreError::Invalid(ref m) if m.contains("cursor")),
            "{err}"
        );
    }

    #[test]
    fn query_filters() {
        let (_dir, _path, mut store) = fresh();
        let mut a = rec(1, 0, "bruteforce");
        a.src_ip = Some("192.0.2.1".to_owned());
        let mut b = rec(2, 60, "web-attack");
        b.severity = "critical".to_owned();
        b.src_ip = None;
        let c = rec(3, 120, "bruteforce");
        commit_incidents(&mut store, &[a, b, c]);
        let ids = |q: IncidentQuery| -> Vec<u64> {
            store
                .incidents(&q)
                .expect("query")
                .into_iter()
                .map(|s| s.record.detector_id)
                .collect()
        };
        let q = IncidentQuery::default;
        assert_eq!(ids(q()), [1, 2, 3]);
        assert_eq!(
            ids(IncidentQuery {
                since: Some(ts(60)),
                ..q()
            }),
            [2, 3]
        );
        assert_eq!(
            ids(IncidentQuery {
                until: Some(ts(60)),
                ..q()
            }),
            [1]
        );
        assert_eq!(
            ids(IncidentQuery {
                since: Some(ts(1)),
                until: Some(ts(121)),
                ..q()
            }),
            [2, 3]
        );
        assert_eq!(
            ids(IncidentQuery {
                category: Some("bruteforce".into()),
                ..q()
            }),
            [1, 3]
        );
        assert_eq!(
            ids(IncidentQuery {
                severity: Some("critical".into()),
                ..q()
            }),
            [2]
        );
        assert_eq!(
            ids(IncidentQuery {
                rule: Some("rule-web-attack".into()),
                ..q()
            }),
            [2]
        );
        assert_eq!(
            ids(IncidentQuery {
                src_ip: Some("192.0.2.1".into()),
                ..q()
            }),
            [1]
        );
        assert_eq!(
            ids(IncidentQuery {
                category: Some("bruteforce".into()),
                since: Some(ts(1)),
                ..q()
            }),
            [3]
        );
        assert_eq!(
            ids(IncidentQuery {
                limit: Some(0),
                ..q()
            }),
            Vec::<u64>::new()
        );
        // Values are bound, never spliced into the SQL.
        assert!(ids(IncidentQuery {
            category: Some("x' OR '1'='1".into()),
            ..q()
        })
        .is_empty());
    }

    #[test]
    fn count_by_category_bounds_are_half_open() {
        let (_dir, _path, mut store) = fresh();
        let from = ts(0);
        let to = ts(31 * 86_400); // 2020-11-01
        let us = |t: Timestamp, delta_us: i64| {
            Timestamp::from_microsecond(to_us(t).expect("us") + delta_us).expect("ts")
        };
        let mut records = Vec::new();
        for (id, (at, category)) in [
            (us(from, -1), "phishing"), // just before: out
            (us(from, 0), "phishing"),  // at from: in
            (us(to, -1), "deface"),     // last microsecond: in
            (us(to, 0), "deface"),      // at to: out
            (us(from, 5_000_000), "phishing"),
            (us(to, 10), "malware"), // after: out
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = rec(id as u64 + 1, 0, category);
            r.first_seen = at;
            records.push(r);
        }
        commit_incidents(&mut store, &records);
        assert_eq!(
            store.count_by_category(from, to).expect("count"),
            [("deface".to_owned(), 1), ("phishing".to_owned(), 2)]
        );
        assert!(store.count_by_category(to, from).expect("empty").is_empty());
        // Sub-microsecond parts are floored on both sides alike.
        let late = Timestamp::from_nanosecond(to.as_nanosecond() - 1).expect("ts");
        assert_eq!(to_us(late).expect("us"), to_us(to).expect("us") - 1);
    }

    /// The tally answers exactly what counting the incidents answers: for
    /// bounds on and off hour boundaries, within one hour and across many,
    /// before 1970, after first_seen moved earlier (a merge) or an incident
    /// was deleted.
    #[test]
    fn count_by_category_agrees_with_counting_every_incident() {
        let (_dir, _path, mut store) = fresh();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const HOUR: i64 = 3_600_000_000;
        // Times within three days either side of OCT_2020, half of them on
        // or a microsecond off an hour boundary, and a few before 1970.
        let at = |next: &mut dyn FnMut(u64) -> u64| -> i64 {
            let base = match next(10) {
                0 => -5 * HOUR,
                _ => OCT_2020 * 1_000_000,
            };
            let hours = next(144) as i64 - 72;
            let within = match next(4) {
                0 => 0,
                1 => 1,
                2 => HOUR - 1,
                _ => next(HOUR as u64) as i64,
            };
            base + hours * HOUR + within
        };
        let categories = ["phishing", "deface", "malware"];
        let mut records = Vec::new();
        for id in 1..=600u64 {
            let mut r = rec(id, 0, categories[next(3) as usize]);
            r.first_seen = Timestamp::from_microsecond(at(&mut next)).expect("ts");
            r.last_seen = r.first_seen;
            records.push(r);
        }
        commit_incidents(&mut store, &records);
        // A third of them get an earlier first event (a rule joined the
        // incident), some by less than an hour, some by days.
        let mut moved = Vec::new();
        for r in records.iter().filter(|r| r.detector_id % 3 == 0) {
            let mut r = r.clone();
            let back = if r.detector_id % 2 == 0 { 1 } else { 49 * HOUR };
            r.first_seen =
                Timestamp::from_microsecond(to_us(r.first_seen).expect("us") - back).expect("ts");
            moved.push(r);
        }
        commit_incidents(&mut store, &moved);
        store
            .conn
            .execute("DELETE FROM incidents WHERE detector_id % 7 = 0", [])
            .expect("delete");

        let naive = |from: i64, to: i64| -> Vec<(String, u64)> {
            let mut stmt = store
                .conn
                .prepare(
                    "SELECT category, COUNT(*) FROM incidents
                     WHERE first_seen_us >= ?1 AND first_seen_us < ?2
                     GROUP BY category ORDER BY category",
                )
                .expect("prepare");
            stmt.query_map(params![from, to], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
        };
        let mut checked = 0;
        for _ in 0..400 {
            let (a, b) = (at(&mut next), at(&mut next));
            let (from, to) = (a.min(b), a.max(b) + i64::from(next(2) == 0));
            let got = store
                .count_by_category(
                    Timestamp::from_microsecond(from).expect("ts"),
                    Timestamp::from_microsecond(to).expect("ts"),
                )
                .expect("count");
            assert_eq!(got, naive(from, to), "[{from}, {to})");
            checked += got.iter().map(|(_, n)| n).sum::<u64>();
        }
        assert!(
            checked > 10_000,
            "the bounds caught too few incidents: {checked}"
        );
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
        let tally: i64 = store
            .conn
            .query_row("SELECT SUM(n) FROM incident_tally", [], |r| r.get(0))
            .expect("tally");
        assert_eq!(tally, 3);
    }

    #[test]
    fn counts_per_interval_are_half_open() {
        let (_dir, _path, mut store) = fresh();
        let mut records = Vec::new();
        for (id, (at, category, severity)) in [
            (-1, "recon", "low"),  // before the first edge: out
            (0, "recon", "low"),   // at the first edge: interval 0
            (99, "recon", "high"), // interval 0
            (100, "recon", "low"), // second edge: interval 1
            (150, "dos", "low"),   // interval 1
            (199, "recon", "low"), // interval 1
            (200, "recon", "low"), // at the last edge: out
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = rec(id as u64 + 1, at, category);
            r.severity = severity.to_owned();
            records.push(r);
        }
        commit_incidents(&mut store, &records);
        let mut got = store
            .count_by_category_severity_in(&[ts(0), ts(100), ts(200)])
            .expect("count");
        got.sort();
        let own = |i: usize, c: &str, s: &str, n: u64| (i, c.to_owned(), s.to_owned(), n);
        assert_eq!(
            got,
            [
                own(0, "recon", "high", 1),
                own(0, "recon", "low", 1),
                own(1, "dos", "low", 1),
                own(1, "recon", "low", 2),
            ]
        );
        assert!(store
            .count_by_category_severity_in(&[ts(0)])
            .expect("one edge")
            .is_empty());
        assert!(store
            .count_by_category_severity_in(&[])
            .expect("no edge")
            .is_empty());
    }

    #[test]
    fn reader_sees_commits_while_writer_is_open() {
        let (_dir, path, mut store) = fresh();
        let mut reader = Store::open_read(&path).expect("reader");
        assert!(reader
            .incidents(&IncidentQuery::default())
            .expect("empty")
            .is_empty());
        commit_incidents(&mut store, &[rec(1, 0, "phishing")]);
        let seen = reader.incidents(&IncidentQuery::default()).expect("read");
        assert_eq!(seen.len(), 1);
        assert_eq!(
            reader.incident(&seen[0].uid).expect("get"),
            Some(seen[0].clone())
        );
        assert_eq!(reader.recovery().expect("recovery").commits, 1);
        assert_eq!(
            reader.count_by_category(ts(-1), ts(1)).expect("count"),
            [("phishing".to_owned(), 1)]
        );
        // The reader cannot write, whichever way it tries.
        let err = reader.commit(&Batch::default()).expect_err("read-only");
        assert!(matches!(err, StoreError::ReadOnly), "{err}");
        assert!(reader.conn.execute("DELETE FROM incidents", []).is_err());
        assert_eq!(reader.agency(), None);
        assert_eq!(store.agency(), Some(AGENCY));
    }

    #[test]
    fn fields_are_a_json_object_in_order() {
        let (_dir, path, mut store) = fresh();
        let mut r = rec(1, 0, "web-attack");
        r.fields = vec![
            ("url".to_owned(), "/?q=\"'<script>".to_owned()),
            ("src_ip".to_owned(), "2001:db8::1".to_owned()),
            ("agent".to_owned(), "sqlmap/1.7 \u{1F600}".to_owned()),
        ];
        let uid = commit_incidents(&mut store, std::slice::from_ref(&r)).inserted[0]
            .1
            .clone();
        assert_eq!(
            store
                .incident(&uid)
                .expect("get")
                .expect("some")
                .record
                .fields,
            r.fields
        );
        let agent: String = Connection::open(&path)
            .expect("raw")
            .query_row(
                "SELECT json_extract(fields, '$.agent') FROM incidents",
                [],
                |row| row.get(0),
            )
            .expect("json_extract");
        assert_eq!(agent, r.fields[2].1);
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
                    integrity: &[],
                };
                let started = Instant::now();
                let info = store
                    .commit(&Batch {
                        incidents: &incidents,
                        ..batch
                    })
                    .expect("insert batch");
                insert_ms.push(started.elapsed().as_secs_f64() * 1e3);
                assert_eq!(info.inserted.len(), 1000);
                for r in &mut incidents {
                    r.events += 10;
                    r.last_seen = ts(99_999);
                }
                let started = Instant::now();
                let info = store
                    .commit(&Batch {
                        incidents: &incidents,
                        ..batch
                    })
                    .expect("update batch");
                update_ms.push(started.elapsed().as_secs_f64() * 1e3);
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
