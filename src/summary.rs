//! The monthly summary: the figures of the national center's bulletins for
//! one calendar month, per category and in total. `GET /api/v1/summary`
//! serves it, and `canhgac report --month` renders the same document.
//!
//! # The JSON document (stable: fields are only ever added)
//!
//! ```json
//! {
//!   "schema_version": 2,
//!   "month": "2020-10",
//!   "agency": "so-tttt-hanoi",
//!   "agency_name": "Sở Thông tin và Truyền thông Hà Nội",
//!   "time_zone": "Asia/Ho_Chi_Minh",
//!   "as_of": "2020-10-15T05:00:00Z",
//!   "complete": false,
//!   "periods": {
//!     "this_month":            {"start": "2020-09-30T17:00:00Z", "end": "2020-10-15T05:00:00Z"},
//!     "last_month":            {"start": "2020-08-31T17:00:00Z", "end": "2020-09-30T17:00:00Z"},
//!     "same_month_last_year":  {"start": "2019-09-30T17:00:00Z", "end": "2019-10-31T17:00:00Z"},
//!     "year_to_date":          {"start": "2019-12-31T17:00:00Z", "end": "2020-10-15T05:00:00Z"},
//!     "same_period_last_year": {"start": "2018-12-31T17:00:00Z", "end": "2019-10-15T05:00:00Z"}
//!   },
//!   "total": {
//!     "this_month": 582, "last_month": 524, "same_month_last_year": 580,
//!     "year_to_date": 4161, "same_period_last_year": 4514,
//!     "change": {"month_over_month": 0.1107, "year_over_year": 0.0034, "year_to_date": -0.0782}
//!   },
//!   "categories": [
//!     {"category": "phishing", "label_vi": "Lừa đảo (Phishing)", "this_month": 3, "...": "...",
//!      "change": {"month_over_month": null, "year_over_year": 0.5, "year_to_date": -0.25}}
//!   ]
//! }
//! ```
//!
//! - Counts are incidents whose first event lies in the period, each period
//!   half-open `[start, end)`, months in the configured time zone (times
//!   are printed in UTC).
//! - A month that is over (`complete: true`) compares whole months, and the
//!   year to date runs from January 1 to the end of the month. For the month
//!   in progress the periods end at `as_of` (this month so far, year to date
//!   so far, and the same period last year: January 1 to the same local date
//!   and time a year ago), as in `/metrics`; last month and the same month
//!   last year then run to the same local day and time too (4 December
//!   22:16 compares with 1–4 November until 22:16; the whole month where it
//!   has no such day), so the days compared are the days elapsed. For a
//!   month that is over they are whole months.
//! - `change` holds ratios, `current / base - 1` (0.1107 is +11.07 %), `null`
//!   where the base is zero: month over month compares `this_month` with
//!   `last_month`, year over year with `same_month_last_year`, and year to
//!   date `year_to_date` with `same_period_last_year`.
//! - `categories` lists every category of the taxonomy, in its fixed order,
//!   with zeros where nothing was recorded; `total` is their sum.
//!
//! Added for `canhgac report` (the API serves them too):
//!
//! ```json
//! {
//!   "severities": [{"severity": "critical", "this_month": 4, "...": "...", "change": {"...": null}}],
//!   "top_rules": [{"rule": "ssh-failed-password", "category": "bruteforce", "this_month": 211,
//!                  "events": 4410, "last_month": 190, "change": {"month_over_month": 0.1105}}],
//!   "top_sources": [{"src_ip": "203.0.113.45", "this_month": 3, "events": 61}],
//!   "inputs": [{"input": "auth", "this_month": 300, "events": 5120, "last_month": 280,
//!               "change": {"month_over_month": 0.0714}}],
//!   "months": [{"month": "2019-10", "start": "2019-09-30T17:00:00Z", "end": "2019-10-31T17:00:00Z",
//!               "total": 580, "categories": {"phishing": 0, "deface": 2, "...": 0}}],
//!   "top_limit": 10
//! }
//! ```
//!
//! - `severities`: every severity, most severe first, with the same figures
//!   as a category.
//! - `top_rules`, `top_sources`: the `top_limit` rules and source addresses
//!   (`src_ip`, for incidents whose rule captures one) with the most
//!   incidents this month, most first, then by name; `events` counts their
//!   matched lines; rules also carry last month's count and its change.
//! - `inputs`: every input that recorded something this month or last
//!   month, most this month first; `input` is `null` for incidents whose
//!   input is unknown.
//! - `months`: the 13 months ending with this one, oldest first, per
//!   category in taxonomy order and in total; for the month in progress the
//!   last one ends at `as_of`.
//! - `agencies` (a national center's store only): every agency heard of,
//!   most incidents this month first, with its name, last month's count,
//!   its last heartbeat and whether it is `silent` (no heartbeat within
//!   `silent_after`, 15 minutes unless `report --silent-after` says).

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::category::{Category, Severity};
use crate::months::{change, LiveWindows, Month, Window};
use crate::store::{CenterStore, GroupBy, GroupCount, Store, StoreError};

/// (category, severity, incidents) from the store.
type CategorySeverityCount = (String, String, u64);

/// Rows of `top_rules` and `top_sources`.
pub const TOP_LIMIT: u32 = 10;

/// An agency with no heartbeat for this long is silent in a center's
/// report, unless `report --silent-after` says otherwise.
pub const DEFAULT_SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Months in the `months` series: a year and the month itself, so every
/// month of the chart can be compared with the same month a year before.
pub const SERIES_MONTHS: usize = 13;

/// The version of the JSON document: raised when a field changes meaning
/// (2: the month in progress compares the same days of earlier months;
/// `agency`, `agency_name`, `false_positives`).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub schema_version: u32,
    #[serde(serialize_with = "display")]
    pub month: Month,
    /// The agency's id and display name (`agency`, `agency_name` in the
    /// config): the subject of the bulletin. Unknown to a report of a bare
    /// database file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency_name: Option<String>,
    /// The zone the agency's figures are counted in (its config's, or the
    /// one its store recorded), when this report counts in another (`--tz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agency_time_zone: Option<String>,
    /// Incidents of this month an analyst marked false positive: left out
    /// of every figure, and said so.
    pub false_positives: u64,
    pub time_zone: String,
    #[serde(serialize_with = "display")]
    pub as_of: Timestamp,
    /// The month is over: its figures will not change any more (unless
    /// older logs are imported).
    pub complete: bool,
    /// The spans compared: this month, last month, the same month last
    /// year, and the two years to date.
    pub periods: Periods,
    pub total: Figures,
    /// Every category, in the national center's order, zeros included.
    pub categories: Vec<CategoryFigures>,
    pub severities: Vec<SeverityFigures>,
    /// The `top_limit` rules and source addresses with the most incidents
    /// this month.
    pub top_rules: Vec<RuleFigures>,
    pub top_sources: Vec<SourceFigures>,
    pub inputs: Vec<InputFigures>,
    /// The last 13 months, oldest first: a year of trend and its start.
    pub months: Vec<MonthFigures>,
    pub top_limit: u32,
    /// A national center's store: every agency heard of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agencies: Vec<AgencyFigures>,
}

/// One agency in a national center's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgencyFigures {
    pub agency: String,
    pub name: Option<String>,
    #[serde(flatten)]
    pub counts: MonthCounts,
    #[serde(serialize_with = "optional_display")]
    pub last_heartbeat: Option<Timestamp>,
    pub silent: bool,
}

impl Summary {
    /// Marks the agencies with no heartbeat within `after` of `as_of` silent.
    pub fn mark_silent(&mut self, after: std::time::Duration) {
        let cutoff =
            self.as_of.as_microsecond() - i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
        for a in &mut self.agencies {
            a.silent = a.last_heartbeat.is_none_or(|t| t.as_microsecond() < cutoff);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeverityFigures {
    pub severity: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleFigures {
    pub rule: String,
    pub category: String,
    #[serde(flatten)]
    pub counts: MonthCounts,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceFigures {
    pub src_ip: String,
    pub this_month: u64,
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputFigures {
    pub input: Option<String>,
    #[serde(flatten)]
    pub counts: MonthCounts,
}

/// A rule's or an input's incidents and events this month, against its
/// incidents last month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonthCounts {
    pub this_month: u64,
    pub events: u64,
    pub last_month: u64,
    pub change: MonthChange,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MonthChange {
    pub month_over_month: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonthFigures {
    #[serde(serialize_with = "display")]
    pub month: Month,
    #[serde(serialize_with = "display")]
    pub start: Timestamp,
    #[serde(serialize_with = "display")]
    pub end: Timestamp,
    pub total: u64,
    /// Per category, in taxonomy order.
    #[serde(serialize_with = "ordered_map")]
    pub categories: Vec<(&'static str, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Periods {
    pub this_month: Period,
    pub last_month: Period,
    pub same_month_last_year: Period,
    pub year_to_date: Period,
    pub same_period_last_year: Period,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(serialize_with = "display")]
    pub start: Timestamp,
    #[serde(serialize_with = "display")]
    pub end: Timestamp,
}

impl From<Window> for Period {
    fn from(w: Window) -> Period {
        Period {
            start: w.start,
            end: w.end,
        }
    }
}

impl Period {
    fn window(self) -> Window {
        Window {
            start: self.start,
            end: self.end,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub this_month: u64,
    pub last_month: u64,
    pub same_month_last_year: u64,
    pub year_to_date: u64,
    pub same_period_last_year: u64,
    pub change: Changes,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changes {
    pub month_over_month: Option<f64>,
    pub year_over_year: Option<f64>,
    pub year_to_date: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryFigures {
    pub category: &'static str,
    pub label_vi: &'static str,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("month {0} has not begun yet")]
    Future(Month),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Figures {
    pub(crate) fn from_counts(counts: [u64; 5]) -> Figures {
        let [this_month, last_month, same_month_last_year, year_to_date, same_period_last_year] =
            counts;
        Figures {
            this_month,
            last_month,
            same_month_last_year,
            year_to_date,
            same_period_last_year,
            change: Changes {
                month_over_month: change(this_month, last_month),
                year_over_year: change(this_month, same_month_last_year),
                year_to_date: change(year_to_date, same_period_last_year),
            },
        }
    }
}

/// The periods of `month` as seen at `now`; `None` for a month that has
/// not begun.
pub fn periods(month: Month, tz: &TimeZone, now: Timestamp) -> Option<(Periods, bool)> {
    let window = month.window(tz);
    if now < window.start {
        return None;
    }
    if now < window.end {
        let live = LiveWindows::at(now, tz);
        return Some((
            Periods {
                this_month: live.this_month.into(),
                last_month: live.last_month_to_date.into(),
                same_month_last_year: live.same_month_last_year_to_date.into(),
                year_to_date: live.year_to_date.into(),
                same_period_last_year: live.same_period_last_year.into(),
            },
            false,
        ));
    }
    let year_ago = month.year_before();
    Some((
        Periods {
            this_month: window.into(),
            last_month: month.previous().window(tz).into(),
            same_month_last_year: year_ago.window(tz).into(),
            year_to_date: month.year_to_date(tz).into(),
            same_period_last_year: year_ago.year_to_date(tz).into(),
        },
        true,
    ))
}

/// The summary of `month` in `tz`, counted in `store` now.
pub fn monthly(store: &Store, month: Month, tz: &TimeZone) -> Result<Summary, SummaryError> {
    // Not rounded to the second: log times are whole seconds, and a period
    // ending at the start of this second would leave out its incidents.
    monthly_at(store, month, tz, Timestamp::now())
}

/// [`monthly`] as seen at `now`.
pub fn monthly_at(
    store: &Store,
    month: Month,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Summary, SummaryError> {
    let (periods, complete) = periods(month, tz, now).ok_or(SummaryError::Future(month))?;
    let windows = [
        periods.this_month,
        periods.last_month,
        periods.same_month_last_year,
        periods.year_to_date,
        periods.same_period_last_year,
    ];
    let mut series = Vec::with_capacity(SERIES_MONTHS);
    let mut m = month;
    for _ in 1..SERIES_MONTHS {
        m = m.previous();
    }
    for _ in 0..SERIES_MONTHS {
        let mut w = m.window(tz);
        w.end = w.end.min(periods.this_month.end);
        series.push((m, w));
        m = m.next();
    }
    // Every window is a run of the intervals between all windows' edges:
    // the store counts those in one pass, and each window sums its own.
    let mut edges: Vec<Timestamp> = windows
        .iter()
        .map(|p| p.window())
        .chain(series.iter().map(|(_, w)| *w))
        .flat_map(|w| [w.start, w.end])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let tally = store.count_by_category_severity_in(&edges)?;
    let counts_in = |w: Window| -> Vec<CategorySeverityCount> {
        let mut out: Vec<CategorySeverityCount> = Vec::new();
        for (i, c, s, n) in &tally {
            if edges[*i] < w.start || edges[*i + 1] > w.end {
                continue;
            }
            match out.iter_mut().find(|(oc, os, _)| oc == c && os == s) {
                Some(entry) => entry.2 += n,
                None => out.push((c.clone(), s.clone(), *n)),
            }
        }
        out
    };
    let counts: Vec<Vec<CategorySeverityCount>> =
        windows.iter().map(|p| counts_in(p.window())).collect();
    let sum = |i: usize, keep: &dyn Fn(&str, &str) -> bool| -> u64 {
        counts[i]
            .iter()
            .filter(|(c, s, _)| keep(c, s))
            .map(|(_, _, n)| n)
            .sum()
    };
    let categories: Vec<CategoryFigures> = Category::ALL
        .iter()
        .map(|c| CategoryFigures {
            category: c.id(),
            label_vi: c.label_vi(),
            figures: Figures::from_counts(std::array::from_fn(|i| sum(i, &|cat, _| cat == c.id()))),
        })
        .collect();
    let severities: Vec<SeverityFigures> = Severity::ALL
        .iter()
        .rev()
        .map(|s| SeverityFigures {
            severity: s.id(),
            figures: Figures::from_counts(std::array::from_fn(|i| sum(i, &|_, sev| sev == s.id()))),
        })
        .collect();
    // Every stored category is one of the taxonomy's (rules are validated
    // against it), but the total counts what the store holds regardless.
    let total = Figures::from_counts(std::array::from_fn(|i| sum(i, &|_, _| true)));

    let months: Vec<MonthFigures> = series
        .iter()
        .map(|&(m, w)| {
            let c = counts_in(w);
            let of = |id: &str| -> u64 {
                c.iter()
                    .filter(|(cat, _, _)| cat == id)
                    .map(|(_, _, n)| n)
                    .sum()
            };
            MonthFigures {
                month: m,
                start: w.start,
                end: w.end,
                total: c.iter().map(|(_, _, n)| n).sum(),
                categories: Category::ALL.iter().map(|c| (c.id(), of(c.id()))).collect(),
            }
        })
        .collect();

    let this = periods.this_month.window();
    let last = periods.last_month.window();
    let top_rules = with_last_month(
        store.count_by(GroupBy::Rule, this.start, this.end, Some(TOP_LIMIT))?,
        &store.count_by(GroupBy::Rule, last.start, last.end, None)?,
    )
    .into_iter()
    .map(|(g, counts)| RuleFigures {
        rule: g.value.unwrap_or_default(),
        category: g.category,
        counts,
    })
    .collect();
    let top_sources = store
        .count_by(GroupBy::SrcIp, this.start, this.end, Some(TOP_LIMIT))?
        .into_iter()
        .map(|g| SourceFigures {
            src_ip: g.value.unwrap_or_default(),
            this_month: g.incidents,
            events: g.events,
        })
        .collect();
    let mut inputs_now = store.count_by(GroupBy::Input, this.start, this.end, None)?;
    let inputs_before = store.count_by(GroupBy::Input, last.start, last.end, None)?;
    // Inputs silent this month but not last month belong in the table too.
    for g in &inputs_before {
        if !inputs_now.iter().any(|n| n.value == g.value) {
            inputs_now.push(GroupCount {
                incidents: 0,
                events: 0,
                ..g.clone()
            });
        }
    }
    let inputs = with_last_month(inputs_now, &inputs_before)
        .into_iter()
        .map(|(g, counts)| InputFigures {
            input: g.value,
            counts,
        })
        .collect();
    let agencies = agencies(store, this, last)?;
    let mut summary = Summary {
        schema_version: SCHEMA_VERSION,
        month,
        agency: None,
        agency_name: None,
        agency_time_zone: None,
        false_positives: store.count_false_positives(this.start, this.end)?,
        time_zone: tz.iana_name().unwrap_or("system").to_owned(),
        as_of: now,
        complete,
        periods,
        total,
        categories,
        severities,
        top_rules,
        top_sources,
        inputs,
        months,
        top_limit: TOP_LIMIT,
        agencies,
    };
    summary.mark_silent(DEFAULT_SILENT_AFTER);
    Ok(summary)
}

/// A center store's agencies, with their incidents this month and last.
fn agencies(store: &Store, this: Window, last: Window) -> Result<Vec<AgencyFigures>, StoreError> {
    let known = store.agencies()?;
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let mut now = store.count_by(GroupBy::Agency, this.start, this.end, None)?;
    let before = store.count_by(GroupBy::Agency, last.start, last.end, None)?;
    for a in &known {
        if !now
            .iter()
            .any(|g| g.value.as_deref() == Some(a.agency.as_str()))
        {
            now.push(GroupCount {
                value: Some(a.agency.clone()),
                incidents: 0,
                events: 0,
                category: String::new(),
            });
        }
    }
    Ok(with_last_month(now, &before)
        .into_iter()
        .filter_map(|(g, counts)| {
            let id = g.value?;
            let record = known.iter().find(|a| a.agency == id);
            Some(AgencyFigures {
                name: record.and_then(|a| a.name.clone()),
                last_heartbeat: record
                    .and_then(|a| a.last_heartbeat_us)
                    .and_then(|us| Timestamp::from_microsecond(us).ok()),
                agency: id,
                counts,
                silent: false,
            })
        })
        .collect())
}

/// Pairs each group with its counts against its incidents in `before` (0
/// when absent).
fn with_last_month(now: Vec<GroupCount>, before: &[GroupCount]) -> Vec<(GroupCount, MonthCounts)> {
    now.into_iter()
        .map(|g| {
            let last_month = before
                .iter()
                .find(|b| b.value == g.value)
                .map_or(0, |b| b.incidents);
            let counts = MonthCounts {
                this_month: g.incidents,
                events: g.events,
                last_month,
                change: MonthChange {
                    month_over_month: change(g.incidents, last_month),
                },
            };
            (g, counts)
        })
        .collect()
}

fn ordered_map<S: serde::Serializer>(v: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, n)| (k, n)))
}

fn optional_display<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, IncidentRecord};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn month(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    fn record(id: u64, first: Timestamp, category: &str) -> IncidentRecord {
        IncidentRecord {
            detector_id: id,
            rule: format!("rule-{category}"),
            category: category.into(),
            severity: "medium".into(),
            key: format!("198.51.100.{}", id % 250),
            src_ip: None,
            input: None,
            first_seen: first,
            last_seen: first,
            events: 1,
            open: false,
            sample: "line".into(),
            fields: Vec::new(),
        }
    }

    /// A store with incidents at these times, and the directory it is in
    /// (removed when that is dropped).
    fn store_with(incidents: &[(&str, &str)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("canhgac.db");
        let mut store = Store::open(&path, "test").expect("store");
        let records: Vec<IncidentRecord> = (1..)
            .zip(incidents)
            .map(|(id, (t, c))| record(id, ts(t), c))
            .collect();
        store
            .commit(&Batch {
                incidents: &records,
                inputs: &[],
                checkpoints: &[],
                cursors: &[],
                detector: None,
                extra_rows: None,
            })
            .expect("commit");
        let reader = Store::open_read(&path).expect("reader");
        (dir, reader)
    }

    /// A category's five counts, in the order the bulletin gives them.
    fn counts(f: &Figures) -> (u64, u64, u64, u64, u64) {
        (
            f.this_month,
            f.last_month,
            f.same_month_last_year,
            f.year_to_date,
            f.same_period_last_year,
        )
    }

    fn category<'a>(s: &'a Summary, id: &str) -> &'a Figures {
        &s.categories
            .iter()
            .find(|c| c.category == id)
            .expect("category listed")
            .figures
    }

    #[test]
    fn a_complete_month_in_local_time() {
        let (_dir, store) = store_with(&[
            // October 2020 in Hanoi, the last one 23:30 on the 31st.
            ("2020-10-01T00:00:00+07:00", "phishing"),
            ("2020-10-15T12:00:00+07:00", "phishing"),
            ("2020-10-31T23:30:00+07:00", "malware"),
            // November in Hanoi, still October in UTC.
            ("2020-11-01T00:30:00+07:00", "phishing"),
            // September 2020.
            ("2020-09-30T23:59:59+07:00", "phishing"),
            // October 2019, and earlier in 2019.
            ("2019-10-10T10:00:00+07:00", "phishing"),
            ("2019-10-11T10:00:00+07:00", "deface"),
            ("2019-03-01T10:00:00+07:00", "phishing"),
            // November 2019: after the same period last year.
            ("2019-11-01T00:00:00+07:00", "phishing"),
            // 2020 before September.
            ("2020-01-01T00:00:00+07:00", "malware"),
            // 2018: in no window.
            ("2018-10-10T10:00:00+07:00", "phishing"),
        ]);
        let tz = TimeZone::get("Asia/Ho_Chi_Minh").expect("zone");
        let s =
            monthly_at(&store, month("2020-10"), &tz, ts("2021-02-01T00:00:00Z")).expect("summary");
        assert!(s.complete);
        assert_eq!(s.time_zone, "Asia/Ho_Chi_Minh");
        assert_eq!(s.periods.this_month.start, ts("2020-09-30T17:00:00Z"));
        assert_eq!(s.periods.this_month.end, ts("2020-10-31T17:00:00Z"));
        assert_eq!(s.periods.year_to_date.start, ts("2019-12-31T17:00:00Z"));
        assert_eq!(
            s.periods.same_period_last_year.end,
            ts("2019-10-31T17:00:00Z")
        );
        let p = category(&s, "phishing");
        assert_eq!(counts(p), (2, 1, 1, 3, 2));
        assert_eq!(p.change.month_over_month, Some(1.0));
        assert_eq!(p.change.year_over_year, Some(1.0));
        assert_eq!(p.change.year_to_date, Some(0.5));
        let m = category(&s, "malware");
        assert_eq!((m.this_month, m.year_to_date), (1, 2));
        assert_eq!(m.change.month_over_month, None);
        assert_eq!(m.change.year_to_date, None);
        let d = category(&s, "deface");
        assert_eq!((d.this_month, d.same_month_last_year), (0, 1));
        assert_eq!(d.change.year_over_year, Some(-1.0));
        assert_eq!(s.categories.len(), Category::ALL.len());
        assert_eq!(s.categories[0].category, "phishing");
        let t = &s.total;
        assert_eq!(counts(t), (3, 1, 2, 5, 3));
        assert_eq!(t.change.month_over_month, Some(2.0));
    }

    #[test]
    fn the_month_in_progress_ends_now() {
        let (_dir, store) = store_with(&[
            ("2020-10-10T00:00:00Z", "recon"),
            // After `now`: not yet counted (imports may add such).
            ("2020-10-20T00:00:00Z", "recon"),
            ("2019-10-14T00:00:00Z", "recon"),
            ("2019-10-16T00:00:00Z", "recon"),
        ]);
        let now = ts("2020-10-15T00:00:00Z");
        let s = monthly_at(&store, month("2020-10"), &TimeZone::UTC, now).expect("summary");
        assert!(!s.complete);
        assert_eq!(s.as_of, now);
        assert_eq!(s.periods.this_month.end, now);
        assert_eq!(
            s.periods.same_period_last_year.end,
            ts("2019-10-15T00:00:00Z")
        );
        let r = category(&s, "recon");
        assert_eq!(
            (
                r.this_month,
                r.same_month_last_year,
                r.year_to_date,
                r.same_period_last_year
            ),
            (1, 1, 1, 1),
            "the same month last year only to the same day and time"
        );
        assert_eq!(
            s.periods.same_month_last_year.end,
            ts("2019-10-15T00:00:00Z")
        );
        assert_eq!(s.periods.last_month.end, ts("2020-09-15T00:00:00Z"));
        assert_eq!(r.change.year_over_year, Some(0.0));
        assert_eq!(r.change.year_to_date, Some(0.0));
        assert!(matches!(
            monthly_at(&store, month("2020-11"), &TimeZone::UTC, now),
            Err(SummaryError::Future(_))
        ));
    }

    #[test]
    fn json_shape() {
        let (_dir, store) = store_with(&[("2020-10-10T00:00:00Z", "dos")]);
        let s = monthly_at(
            &store,
            month("2020-10"),
            &TimeZone::UTC,
            ts("2020-12-01T00:00:00Z"),
        )
        .expect("summary");
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["month"], "2020-10");
        assert_eq!(v["time_zone"], "UTC");
        assert_eq!(v["as_of"], "2020-12-01T00:00:00Z");
        assert_eq!(v["complete"], true);
        assert_eq!(v["periods"]["last_month"]["start"], "2020-09-01T00:00:00Z");
        assert_eq!(v["periods"]["last_month"]["end"], "2020-10-01T00:00:00Z");
        assert_eq!(v["total"]["this_month"], 1);
        assert!(v["total"]["change"]["month_over_month"].is_null());
        let dos = &v["categories"][6];
        assert_eq!(dos["category"], "dos");
        assert_eq!(dos["label_vi"], "Từ chối dịch vụ");
        assert_eq!(dos["this_month"], 1);
        assert_eq!(dos["year_to_date"], 1);
        assert!(dos["change"]["year_over_year"].is_null());
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "as_of",
                "categories",
                "complete",
                "false_positives",
                "inputs",
                "month",
                "months",
                "periods",
                "schema_version",
                "severities",
                "time_zone",
                "top_limit",
                "top_rules",
                "top_sources",
                "total"
            ]
        );
        let months = v["months"].as_array().expect("months");
        assert_eq!(months.len(), SERIES_MONTHS);
        assert_eq!(months[0]["month"], "2019-10");
        assert_eq!(months[12]["month"], "2020-10");
        assert_eq!(months[12]["total"], 1);
        assert_eq!(months[12]["categories"]["dos"], 1);
        let order: Vec<&str> = months[12]["categories"]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(order.len(), Category::ALL.len());
        assert_eq!(v["severities"][0]["severity"], "critical");
        assert_eq!(v["severities"][2]["this_month"], 1, "medium");
        assert_eq!(v["top_rules"][0]["rule"], "rule-dos");
        assert_eq!(v["top_rules"][0]["this_month"], 1);
        assert!(v["top_rules"][0]["change"]["month_over_month"].is_null());
        assert_eq!(v["inputs"][0]["input"], serde_json::Value::Null);
        assert_eq!(v["top_sources"], serde_json::json!([]));
    }
}
