//! How Rust values become SQLite values and back.
//!
//! * Times are UTC microseconds since the Unix epoch (`INTEGER`), in columns
//!   suffixed `_us`. Microseconds keep the sub-second order of log lines that
//!   carry fractions (RFC 5424, ISO stamps) and still span years ±9999 in an
//!   `i64`; nanoseconds are floored away. Bounds are compared the same way.
//! * `fields` is a JSON object in capture order (`{"src_ip":"…","user":"…"}`),
//!   so analysts can `json_extract(fields, '$.user')`.
//! * `dev` and `ino` of checkpoints are stored as the `i64` with the same bits
//!   as the `u64` (some filesystems hand out inode numbers above `i64::MAX`).
//! * Counts and ids are `u64` in Rust and `INTEGER` (`i64`) in SQLite: a
//!   value that does not fit is an error, never wrapped.

use jiff::Timestamp;
use rusqlite::ffi;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::StoreError;

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(err) if err.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            || err.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Microseconds since the epoch, rounded down (also before 1970), so an
/// instant stays on the same side of any whole-microsecond bound.
pub(crate) fn to_us(ts: Timestamp) -> Result<i64, StoreError> {
    let us = ts.as_nanosecond().div_euclid(1_000);
    i64::try_from(us).map_err(|_| StoreError::Invalid(format!("time {ts} out of range")))
}

pub(crate) fn from_us(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us)
        .map_err(|e| StoreError::Invalid(format!("stored time {us} out of range: {e}")))
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| {
        StoreError::Invalid(format!("{what} {v} exceeds the database's integer range"))
    })
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Invalid(format!("stored {what} is negative: {v}")))
}

/// Device and inode numbers are identities, not quantities: stored as the
/// `i64` with the same bits, so all of `u64` round-trips.
pub(crate) fn u64_bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(crate) fn bits_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// Serialises fields as a JSON object in their order (serde's default for a
/// `Vec` of pairs is an array of arrays, which SQL's JSON functions cannot
/// address by name).
pub(super) struct FieldsRef<'a>(pub(super) &'a [(String, String)]);

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
pub(super) struct FieldsOwned(pub(super) Vec<(String, String)>);

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
    use rusqlite::Connection;

    use crate::store::testing::*;

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
}
