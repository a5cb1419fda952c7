//! Incidents counted: per category for monthly figures (from the hourly
//! `incident_tally` where whole hours allow), per category and severity
//! over a report's windows, per group for top lists, and in total for the
//! counters a restart resumes.

use jiff::Timestamp;
use rusqlite::params;

use super::values::{to_u64, to_us};
use super::{Store, StoreError};

/// Microseconds in one bucket of `incident_tally`.
const TALLY_BUCKET_US: i64 = 3_600_000_000;

/// Leaves out incidents an analyst marked false positive (a handful, so the
/// subquery is one small lookup table for the whole statement).
const NOT_FALSE_POSITIVE: &str =
    "id NOT IN (SELECT incident FROM incident_status WHERE status = 'false-positive')";

/// What [`Store::count_by`] groups incidents by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Rule,
    SrcIp,
    Input,
    /// The agency a center store received the incident from.
    Agency,
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

impl Store {
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
            let mut raw = self.conn.prepare_cached(&format!(
                "SELECT category, COUNT(*) FROM incidents
                 WHERE first_seen_us >= ?1 AND first_seen_us < ?2 AND {NOT_FALSE_POSITIVE}
                 GROUP BY category"
            ))?;
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
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT first_seen_us, category, severity FROM incidents INDEXED BY incidents_period
             WHERE first_seen_us >= ?1 AND first_seen_us < ?2 AND {NOT_FALSE_POSITIVE}
             ORDER BY first_seen_us"
        ))?;
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
            GroupBy::Agency => (
                "(SELECT agency FROM center_incidents c WHERE c.incident = incidents.id)",
                " AND id IN (SELECT incident FROM center_incidents)",
            ),
        };
        let sql = format!(
            "SELECT {column}, COUNT(*), SUM(events), MIN(category) FROM incidents
             WHERE first_seen_us >= ?1 AND first_seen_us < ?2{filter} AND {NOT_FALSE_POSITIVE}
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?3"
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

    /// Every incident the daemon detected, counted per (category,
    /// severity): what the incident counters start from, so a restart does
    /// not reset them. Imported history is left out: the counters count
    /// detections as they happen, and a year of backfill appearing in them
    /// at the next restart would read as a spike to every rate alert.
    /// False positives stay in: a counter never goes down.
    pub fn totals(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut counts = std::collections::BTreeMap::<(String, String), i64>::new();
        let mut add = |rows: &mut rusqlite::Rows<'_>, sign: i64| -> Result<(), StoreError> {
            while let Some(row) = rows.next()? {
                *counts.entry((row.get(0)?, row.get(1)?)).or_default() +=
                    sign * row.get::<_, i64>(2)?;
            }
            Ok(())
        };
        add(
            &mut self
                .conn
                .prepare_cached("SELECT category, severity, COUNT(*) FROM incidents GROUP BY 1, 2")?
                .query([])?,
            1,
        )?;
        // Each import inserted one run of ids in its own transaction: a
        // rowid range per import, not a probe per incident.
        let mut ranges = self.conn.prepare_cached(
            "SELECT first_id, last_id FROM imports WHERE first_id IS NOT NULL AND last_id IS NOT NULL",
        )?;
        let ranges: Vec<(i64, i64)> = ranges
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut imported = self.conn.prepare_cached(
            "SELECT category, severity, COUNT(*) FROM incidents WHERE id BETWEEN ?1 AND ?2 GROUP BY 1, 2",
        )?;
        for (first, last) in ranges {
            add(&mut imported.query(params![first, last])?, -1)?;
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((category, severity), n)| Ok((category, severity, to_u64(n, "incident count")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::*;

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
}
