//! What the store's tests share: sample records and checkpoints, a fresh
//! database, and a dump of every table for "exactly as before" checks.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::Connection;
use tempfile::TempDir;

use super::*;
use crate::input::checkpoint::FileCheckpoint;

pub(super) const AGENCY: &str = "bo-tt-tt";
/// 2020-10-01T00:00:00Z: a month boundary, as monthly figures use.
pub(super) const OCT_2020: i64 = 1_601_510_400;

pub(super) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(OCT_2020 + secs).expect("test time in range")
}

pub(super) fn rec(detector_id: u64, first: i64, category: &str) -> IncidentRecord {
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

pub(super) fn cp(input: &str, ino: u64, offset: u64) -> FileCheckpoint {
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

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) fn header_only(header: &[u8]) -> DetectorWrite<'_> {
    DetectorWrite {
        header,
        rows: &[],
        compact: false,
    }
}

pub(super) fn row(kind: u8, rule: u32, key: &str, state: Option<&str>) -> StateRow {
    StateRow {
        kind,
        rule,
        key: key.to_owned(),
        state: state.map(|s| s.as_bytes().to_vec()),
    }
}

pub(super) fn commit_rows(store: &mut Store, rows: &[StateRow], compact: bool) {
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

pub(super) fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("state").join("canhgac.db")
}

/// A refusal of bad input, with `why` in its message.
pub(super) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, why: &str) {
    let err = result.expect_err(why);
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains(why)),
        "{err}"
    );
}

pub(super) fn fresh() -> (TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db(&dir);
    let store = Store::open(&path, AGENCY).expect("open");
    (dir, path, store)
}

pub(super) fn commit_incidents(store: &mut Store, incidents: &[IncidentRecord]) -> CommitInfo {
    store
        .commit(&Batch {
            incidents,
            ..Batch::default()
        })
        .expect("commit")
}

/// Every row of every table, for "exactly as before" comparisons.
pub(super) fn dump(path: &Path) -> Vec<Vec<Value>> {
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
