//! Reading incidents back: by filter, page by page behind a cursor, or one
//! by its uid.

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};

use super::values::{from_us, to_i64, to_u64, to_us, FieldsOwned};
use super::{IncidentRecord, Store, StoreError, StoredIncident};

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
    /// Only incidents with this status (`new`: none was set).
    pub status: Option<super::Status>,
    /// Only incidents of severity high or critical, recorded before this
    /// time, neither reported to the national coordinator nor marked false
    /// positive, and not imported history: overdue for their report.
    pub overdue_before: Option<Timestamp>,
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
    /// By first event, newest first: for an analyst reading the latest
    /// incidents (`canhgac incidents`); a cursor continues to older ones.
    NewestFirst,
}

impl Store {
    /// Incidents matching `q`, in `q.order`.
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
        match q.status {
            Some(super::Status::New) => sql.push_str(
                " AND id NOT IN (SELECT incident FROM incident_status WHERE status != 'new')",
            ),
            Some(status) => {
                sql.push_str(" AND id IN (SELECT incident FROM incident_status WHERE status = ?)");
                args.push(Value::Text(status.id().to_owned()));
            }
            None => {}
        }
        if let Some(cutoff) = q.overdue_before {
            sql.push_str(&format!(" AND {OVERDUE}"));
            args.push(Value::Integer(to_us(cutoff)?));
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
                IncidentOrder::NewestFirst => {
                    sql.push_str(" AND (first_seen_us, id) < (?, ?)");
                    args.push(Value::Integer(first_seen_us));
                }
            }
            args.push(Value::Integer(id));
        }
        sql.push_str(match q.order {
            IncidentOrder::FirstSeen => " ORDER BY first_seen_us, id",
            IncidentOrder::Recorded => " ORDER BY id",
            IncidentOrder::NewestFirst => " ORDER BY first_seen_us DESC, id DESC",
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

    /// How many incidents are overdue for their report at `cutoff` (see
    /// [`IncidentQuery::overdue_before`]).
    pub fn count_overdue(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM incidents WHERE {OVERDUE}"))?
            .query_row([to_us(cutoff)?], |r| r.get(0))?;
        to_u64(n, "incident count")
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
}

/// The uid of the incident the detector numbered `detector_id`, for rows
/// that point at an incident of their own batch.
pub(crate) fn incident_uid(
    conn: &Connection,
    detector_id: u64,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT uid FROM incidents WHERE detector_id = ?1")?
        .query_row([to_i64(detector_id, "detector id")?], |r| r.get(0))
        .optional()?)
}

/// Overdue for its report to the national coordinator: serious, recorded
/// before the cutoff (`?`), not reported, not a false positive, and not
/// imported history (backfill was never detected live, so no deadline ran).
/// Its first term is word for word the condition of the partial index
/// `incidents_overdue`, which SQLite uses only then.
const OVERDUE: &str = "severity IN ('high', 'critical') AND created_us < ?
     AND id NOT IN (SELECT incident FROM incident_status
                    WHERE reported_us IS NOT NULL OR status = 'false-positive')
     AND NOT EXISTS (SELECT 1 FROM imports WHERE incidents.id BETWEEN first_id AND last_id)";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

    #[test]
    fn the_overdue_count_reads_its_index_not_every_incident() {
        let (_dir, _path, store) = fresh();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM incidents WHERE {OVERDUE}"
            ))
            .expect("prepare")
            .query_map([0], |r| r.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX incidents_overdue")),
            "{plan:?}"
        );
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

        assert_invalid(
            store.incidents(&IncidentQuery {
                after: Some("bo-tt-tt-unknown".to_owned()),
                ..IncidentQuery::default()
            }),
            "cursor",
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
        let ids_with = |set: fn(&mut IncidentQuery)| -> Vec<u64> {
            let mut q = IncidentQuery::default();
            set(&mut q);
            store
                .incidents(&q)
                .expect("query")
                .into_iter()
                .map(|s| s.record.detector_id)
                .collect()
        };
        assert_eq!(ids_with(|_| {}), [1, 2, 3]);
        assert_eq!(ids_with(|q| q.since = Some(ts(60))), [2, 3]);
        assert_eq!(ids_with(|q| q.until = Some(ts(60))), [1]);
        assert_eq!(
            ids_with(|q| {
                q.since = Some(ts(1));
                q.until = Some(ts(121));
            }),
            [2, 3]
        );
        assert_eq!(ids_with(|q| q.category = Some("bruteforce".into())), [1, 3]);
        assert_eq!(ids_with(|q| q.severity = Some("critical".into())), [2]);
        assert_eq!(ids_with(|q| q.rule = Some("rule-web-attack".into())), [2]);
        assert_eq!(ids_with(|q| q.src_ip = Some("192.0.2.1".into())), [1]);
        assert_eq!(
            ids_with(|q| {
                q.category = Some("bruteforce".into());
                q.since = Some(ts(1));
            }),
            [3]
        );
        assert_eq!(ids_with(|q| q.limit = Some(0)), Vec::<u64>::new());
        // Values are bound, never spliced into the SQL.
        assert!(ids_with(|q| q.category = Some("x' OR '1'='1".into())).is_empty());
    }
}
