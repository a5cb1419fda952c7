//! The SQLite store: incidents, input checkpoints, the detector's state,
//! imports, and the tables other modules keep in the same database.
//!
//! Rooms:
//!
//! * [`schema`]: the one numbered sequence of migrations, and the header
//!   checks that refuse a newer or foreign database;
//! * [`commit`]: the daemon's batch (incidents, checkpoints, detector state)
//!   in one transaction, and the [`Recovery`] read back from it;
//! * [`query`]: incidents by filter and cursor, for the API and reports;
//! * [`tally`]: incidents counted per category, severity and group;
//! * [`status`]: what analysts say of an incident (status, note, reported);
//! * [`import`]: backfilled files, recognised by their digest;
//! * [`outbox`]: changes waiting for the national center, as messages;
//! * [`center`]: the national center's incidents from every agency;
//! * [`values`]: how times, ids and fields become SQLite values.
//!
//! Other modules keep rows here too (web-root integrity): their tables are
//! in [`schema`], so a database is upgraded in one place, but their SQL and
//! types are theirs. They read through [`Store::connection`], write through
//! a batch's [`BatchRows`] or [`Store::write_transaction`], and the store
//! depends on none of them: it can be read, and changed, without them.
//!
//! # Connections
//!
//! A [`Store`] from [`Store::open`] owns the one writer connection. Reports,
//! the API and tests open their own connections with [`Store::open_read`]
//! (`query_only`, never migrates). The database runs in WAL mode, so readers
//! see the last committed batch and never block the writer, nor it them.
//!
//! Every incident has a `uid`, `{agency}-{UUIDv7}`, assigned at its first
//! insert and never changed: the id by which the national center will
//! deduplicate incidents that later travel through an outbox.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{ffi, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::detect::Incident;
use crate::event::DEFAULT_KEY_FIELD;
use crate::rules::Rule;

mod center;
mod commit;
mod import;
mod outbox;
mod query;
mod schema;
mod status;
mod tally;
#[cfg(test)]
mod testing;
mod values;

pub use center::{AgencyRecord, Applied, CenterStore, HeartbeatRecord};
pub use commit::{Batch, BatchRows, CommitInfo, DetectorWrite, Recovery, StateRow};
pub use import::{ImportFile, ImportListing, ImportOutcome, ImportRecord};
pub use outbox::{IncidentMessage, OutboxBound, OutboxStats, Pending, Pruned, MESSAGE_SCHEMA};
pub(crate) use query::incident_uid;
pub use query::{IncidentOrder, IncidentQuery};
pub use schema::{backup_path, check_file, APPLICATION_ID, SCHEMA_VERSION};
pub use status::{Change, HistoryEntry, IncidentStatus, Status, MAX_NOTE_CHARS};
pub use tally::{GroupBy, GroupCount};
pub(crate) use values::{bits_u64, from_us, to_i64, to_u64, to_us, u64_bits};

use schema::check_header;

/// How long a connection waits for another one's lock before giving up with
/// [`StoreError::Busy`]. The daemon is normally the only writer; this covers
/// a concurrent `canhgac import`, WAL checkpoints and WAL recovery.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is truncated back to this size after a checkpoint, so a burst
/// (or a reader that held a checkpoint back) does not leave a large file.
const JOURNAL_SIZE_LIMIT: i64 = 32 * 1024 * 1024;

/// Page size of a new database. The daemon commits small transactions, one
/// per new incident when caught up, and every page a commit touches is
/// written whole to the WAL and again at the checkpoint: a commit touches
/// about fifteen pages (an incident's row and its index entries, the tally,
/// the checkpoints, the detector's header and key rows), so the page size,
/// not the data, sets the bytes written. Measured with `benches/daemon.sh`
/// (2,000 lines/s, 20 new incidents a second): 3.4 bytes written per byte of
/// log at 4 KiB, 2.2 at 2 KiB, 1.5 at 1 KiB; but 1 KiB pages made a
/// catch-up's large commits cost 45% more (2 KiB: 10 to 20%).
const PAGE_SIZE: i64 = 2048;

/// WAL bytes after which a commit copies the WAL into the database:
/// SQLite's default of 1,000 pages at its default 4 KiB page. Counted in
/// pages, the smaller pages would checkpoint four times as often, and a
/// checkpoint's cost is its fsync of the database and the pages it copies,
/// whatever their size.
const WAL_CHECKPOINT_BYTES: i64 = 4096 * 1000;

/// Statements kept prepared per connection: the fixed ones plus the filter
/// combinations of [`Store::incidents`] that are in use.
const STATEMENT_CACHE: usize = 64;

/// Longest agency id accepted. It prefixes every uid, which travels to the
/// national center with each incident.
const MAX_AGENCY_LEN: usize = 64;

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
    #[error("{}: schema version {found} is newer than this canhgac knows ({known}); run a newer canhgac, or go back to the copy the newer one took before migrating ({}.schema-{known}.bak; docs/install.md, \"Going back to an older version\")", path.display(), path.display())]
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
    /// Id of the rule (or group) whose events these are.
    pub rule: String,
    /// The rule's [`Category::id`](crate::category::Category::id).
    pub category: String,
    /// The rule's [`Severity::id`](crate::category::Severity::id).
    pub severity: String,
    /// What the rule counts by: its `by` fields' values joined by a space, else the client's
    /// address or host name.
    pub key: String,
    /// The attacking address, when the key names one (not for a user name
    /// or a web root).
    pub src_ip: Option<String>,
    /// Name of the configured input the opening line came from.
    pub input: Option<String>,
    /// Event time of its first and last events, never the time of reading.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub events: u64,
    /// Still taking events: its cooldown has not passed in event time.
    pub open: bool,
    /// The line that opened it.
    pub sample: String,
    /// The fields captured from that line.
    pub fields: Vec<(String, String)>,
}

impl IncidentRecord {
    /// The row of a detector's incident raised by `rule`; `input`: where
    /// its opening line came from.
    pub fn new(rule: &Rule, inc: &Incident, open: bool, input: Option<String>) -> Self {
        IncidentRecord {
            detector_id: inc.id,
            rule: rule.id.clone(),
            category: rule.category.id().to_owned(),
            severity: rule.severity.id().to_owned(),
            key: inc.key.clone(),
            src_ip: inc
                .fields
                .iter()
                .find(|(k, _)| k == DEFAULT_KEY_FIELD)
                .map(|(_, v)| v.clone()),
            input,
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            events: inc.events,
            open,
            sample: inc.sample.clone(),
            fields: inc.fields.clone(),
        }
    }
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
        // Only a database with no content yet takes it; an existing one
        // keeps the size it was made with.
        store.conn.pragma_update(None, "page_size", PAGE_SIZE)?;

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
        let page: i64 = store
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        store.conn.pragma_update(
            None,
            "wal_autocheckpoint",
            WAL_CHECKPOINT_BYTES / page.max(512),
        )?;
        store.back_up_before_migration()?;
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

    /// Lets this connection keep up to `mib` MiB of pages in memory
    /// (SQLite's default is 2 MiB): for the center, whose batches touch
    /// pages all over a large store.
    pub fn set_cache_mib(&self, mib: u32) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "cache_size", -(i64::from(mib) * 1024))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The agency id of new uids; `None` for a reader.
    pub fn agency(&self) -> Option<&str> {
        self.agency.as_deref()
    }

    /// The IANA zone the agency's months are counted in, as the daemon or
    /// an import last recorded it (`None`: a store no writer has opened
    /// with a config since schema v8).
    pub fn time_zone(&self) -> Result<Option<String>, StoreError> {
        self.meta_text("time_zone")
    }

    /// The agency's display name (`agency_name`), as last recorded.
    pub fn agency_name(&self) -> Result<Option<String>, StoreError> {
        self.meta_text("agency_name")
    }

    /// The agency id recorded in the store (a reader's [`Store::agency`]
    /// is `None`: it gives no uids).
    pub fn recorded_agency(&self) -> Result<Option<String>, StoreError> {
        self.meta_text("agency")
    }

    /// Records the zone and the display name of the config this writer
    /// runs with, so that a report of the bare database file (`report
    /// --db`) counts the months and names the agency as the agency's own
    /// reports do. Returns the zone it replaced, if another was recorded.
    pub fn record_identity(
        &mut self,
        zone: Option<&str>,
        agency_name: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let (zone_before, name_before) = (self.time_zone()?, self.agency_name()?);
        let zone = zone.map(str::to_owned).or(zone_before.clone());
        let name = agency_name.map(str::to_owned);
        if zone != zone_before || name != name_before {
            self.write_transaction(|tx| {
                tx.execute(
                    "UPDATE meta SET time_zone = ?1, agency_name = ?2 WHERE id = 1",
                    rusqlite::params![zone, name],
                )?;
                Ok(())
            })?;
        }
        Ok(zone_before.filter(|b| Some(b) != zone.as_ref()))
    }

    /// A text column of `meta` (the name comes from this module, never
    /// from input).
    fn meta_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {column} FROM meta WHERE id = 1"))?
            .query_row([], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// The connection, for reading the rows another module keeps here
    /// (writes go through [`Store::write_transaction`] or a batch's
    /// [`BatchRows`]).
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `write` in one `IMMEDIATE` transaction of the writer, for rows
    /// another module keeps here and writes outside the daemon's batches:
    /// committed if it returns `Ok`, rolled back otherwise.
    pub(crate) fn write_transaction<T>(
        &mut self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.agency.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = write(&tx)?;
        tx.commit()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    #[test]
    fn bad_agency_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for agency in ["", "has space", "ấp", &"x".repeat(65)] {
            let err = Store::open(&db(&dir), agency).err().expect("refused");
            assert!(matches!(err, StoreError::Invalid(_)), "{agency:?}: {err}");
        }
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
}
